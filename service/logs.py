"""Structured logs: one JSON object per line, carrying the id of the request being served.

Records are formatted and written by a background thread (``BatchedWriter``): the event loop only appends
to a deque, so neither the JSON encoding nor a slow stderr pipe holds up requests. The request id is read
where the record is made, since the writer thread has no request context.

The access log, one line per request, skips even the LogRecord: ``log_access`` queues a plain tuple
(``AccessEntry``) and the writer thread turns it into the very line a record would have made. Building a
LogRecord (the time, the thread, the process, the caller's frame) costs the event loop about six times as
much (bench/hot_path_parts.py), which at thousands of requests a second is a visible share of a small request.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
from collections import deque
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import NamedTuple, TextIO

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
ACCESS_LOGGER = "disentangle.access"
FLUSH_S = 0.05  # how long a line may wait to be written

# Attributes every LogRecord has; anything else was passed with `extra=` and belongs in the JSON.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "request_id"}
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        rid = record.__dict__.get("request_id") or request_id.get()
        return json_line(record.created, record.levelname.lower(), record.name, record.getMessage(), rid, fields)


def json_line(created: float, level: str, logger: str, message: str, rid: str | None, fields: dict[str, object]) -> str:
    """One log line: time, level, logger, message, the request id when there is one, then ``fields``."""
    entry: dict[str, object] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
    }
    if rid is not None:
        entry["request_id"] = rid
    entry.update(fields)
    return json.dumps(entry, default=str)


class AccessEntry(NamedTuple):
    """One request as the access log records it; formatted into a line by the writer thread."""

    created: float  # time.time() when the request ended
    request_id: str
    method: str
    path: str
    status: int
    endpoint: str  # the route's path template, or "unmatched"
    model: str
    seconds: float

    def fields(self) -> dict[str, object]:
        """What a record of this request carries beyond the standard fields (``extra=``)."""
        return {
            "status": self.status,
            "endpoint": self.endpoint,
            "model": self.model,
            "ms": round(self.seconds * 1000, 3),
        }

    def message(self) -> str:
        return f"{self.method} {self.path} {self.status}"

    def line(self) -> str:
        """The JSON line ``JsonFormatter`` writes for the equivalent record."""
        return json_line(self.created, "info", ACCESS_LOGGER, self.message(), self.request_id, self.fields())


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
        self._records: deque[logging.LogRecord | AccessEntry] = deque()
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

    def access(self, entry: AccessEntry) -> None:
        self._records.append(entry)

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.write_pending()

    def write_pending(self) -> None:
        with self._writing:  # the writer thread, or a thread logging an error
            self._write()

    def _write(self) -> None:
        lines = []
        while self._records:
            record = self._records.popleft()
            if isinstance(record, AccessEntry):
                lines.append(record.line())
                continue
            try:
                lines.append(self.format(record))
            except Exception:
                self.handleError(record)
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    # Around a fork (service/workers.py): the parent writes what is pending and holds the writer still, so the
    # child copies neither a lock held mid-write nor lines to write a second time; the child, which has no
    # thread but the one that forked, starts its own writer.
    def before_fork(self) -> None:
        self._writing.acquire()
        self._write()

    def after_fork_in_parent(self) -> None:
        self._writing.release()

    def after_fork_in_child(self) -> None:
        self._writing = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.write_pending()
        super().close()


_writer: BatchedWriter | None = None


def _before_fork() -> None:
    if _writer is not None:
        _writer.before_fork()


def _after_fork_in_parent() -> None:
    if _writer is not None:
        _writer.after_fork_in_parent()


def _after_fork_in_child() -> None:
    if _writer is not None:
        _writer.after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """Route our loggers and uvicorn's through one JSON handler on ``stream`` (stderr), written by a background
    thread."""
    global _writer
    if _writer is not None:
        _writer.close()
    _writer = BatchedWriter(stream or sys.stderr)
    _writer.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [_writer]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


_access = logging.getLogger(ACCESS_LOGGER)


def log_access(entry: AccessEntry) -> None:
    """Queue one access-log line, if the access logger is on at level info.

    Under ``configure_logging`` the entry goes straight to the writer's queue. An app embedded elsewhere, with
    its own logging set up, gets an ordinary record through its handlers instead.
    """
    if not _access.isEnabledFor(logging.INFO):
        return
    if _writer is not None and not _access.handlers and _access.propagate and logging.root.handlers == [_writer]:
        _writer.access(entry)
        return
    extra = {"request_id": entry.request_id, **entry.fields()}
    record = _access.makeRecord(_access.name, logging.INFO, "", 0, entry.message(), (), None, extra=extra)
    _access.handle(record)


@atexit.register
def flush_logs() -> None:
    """Write what is still pending before the process exits."""
    global _writer
    if _writer is not None:
        _writer.close()
        _writer = None
