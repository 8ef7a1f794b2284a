"""Structured logs: one JSON object per line, carrying the id of the request being served.

Records are formatted and written by a background thread (a ``QueueHandler`` in front of a
``QueueListener``): the event loop only builds the record and appends it to a queue, so neither the JSON
encoding nor a slow stderr pipe holds up requests. The request id is read where the record is made, since
the listener thread has no request context.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and belongs in the JSON.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = record.__dict__.get("request_id") or request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "request_id"})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _Enqueue(QueueHandler):
    """Hands records over unformatted (QueueHandler's default formats them in the caller's thread)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if "request_id" not in record.__dict__:
            record.request_id = request_id.get()
        return record


_listener: QueueListener | None = None


def configure_logging(level: str) -> None:
    """Route our loggers and uvicorn's through one JSON handler on stderr, written by a background thread."""
    global _listener
    if _listener is not None:
        _listener.stop()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = QueueListener(records, handler, respect_handler_level=False)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


@atexit.register
def flush_logs() -> None:
    """Write what is still queued (the listener's stop drains the queue) before the process exits."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
