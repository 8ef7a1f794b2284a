"""Structured logs: one JSON object per line, carrying the id of the request being served.

Records are formatted and written by a background thread (``BatchedWriter``): the event loop only builds
the record and appends it to a deque, so neither the JSON encoding nor a slow stderr pipe holds up requests.
The request id is read where the record is made, since the writer thread has no request context.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
from collections import deque
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
FLUSH_S = 0.05  # how long a line may wait to be written

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


class BatchedWriter(logging.Handler):
    """Keeps records in a deque and formats and writes them from a thread, in batches.

    The thread wakes every ``interval_s``, so a request costs the event loop one append: no formatting, no
    write, and no thread wake-up per line, which on a busy machine costs more than the other two. A warning
    or an error is written at once, with everything before it, by whichever thread logs it: those are rare,
    and must be in the log by the time anyone looks (or the process dies).
    """

    def __init__(self, stream: TextIO, interval_s: float = FLUSH_S) -> None:
        super().__init__()
        self.stream = stream
        self.interval_s = interval_s
        self._records: deque[logging.LogRecord] = deque()
        self._writing = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: appending to a deque is atomic, and emit does nothing else.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if "request_id" not in record.__dict__:  # the writer thread has no request context
            record.request_id = request_id.get()
        self._records.append(record)
        if record.levelno >= logging.WARNING:
            self.write_pending()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.write_pending()

    def write_pending(self) -> None:
        with self._writing:  # the writer thread, or a thread logging an error
            lines = []
            while self._records:
                record = self._records.popleft()
                try:
                    lines.append(self.format(record))
                except Exception:
                    self.handleError(record)
            if lines:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.write_pending()
        super().close()


_writer: BatchedWriter | None = None


def configure_logging(level: str) -> None:
    """Route our loggers and uvicorn's through one JSON handler on stderr, written by a background thread."""
    global _writer
    if _writer is not None:
        _writer.close()
    _writer = BatchedWriter(sys.stderr)
    _writer.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [_writer]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


@atexit.register
def flush_logs() -> None:
    """Write what is still pending before the process exits."""
    global _writer
    if _writer is not None:
        _writer.close()
        _writer = None
