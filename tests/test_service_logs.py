"""The structured log: an access entry is written as the very line a log record of the request would make,
in order with the other records, and an app embedded under someone else's logging still gets its records."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from service import logs
from service.logs import ACCESS_LOGGER, AccessEntry, BatchedWriter, JsonFormatter, log_access

ENTRY = AccessEntry(1_765_000_000.123, "rid-1", "POST", "/decode", 200, "/decode", "dsprites_vae", 0.0004567)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Leaves the root logger and the module's writer as the test found them."""
    root = logging.getLogger()
    handlers, level, writer = root.handlers[:], root.level, logs._writer
    yield
    if logs._writer is not None and logs._writer is not writer:
        logs._writer.close()
    root.handlers[:], logs._writer = handlers, writer
    root.setLevel(level)


def test_an_access_entry_is_the_line_its_log_record_would_make() -> None:
    extra = {"request_id": ENTRY.request_id, **ENTRY.fields()}
    log = logging.getLogger(ACCESS_LOGGER)
    record = log.makeRecord(log.name, logging.INFO, "", 0, "%s %s %d", ("POST", "/decode", 200), None, extra=extra)
    record.created = ENTRY.created
    assert ENTRY.line() == JsonFormatter().format(record)
    line = json.loads(ENTRY.line())
    assert line["message"] == "POST /decode 200" and line["ms"] == 0.457 and line["request_id"] == "rid-1"
    assert line["time"] == "2025-12-06T05:46:40.123+00:00" and line["level"] == "info"


def test_access_lines_keep_their_place_among_other_records(root_logging: None) -> None:
    stream = io.StringIO()
    writer = BatchedWriter(stream, interval_s=3600)  # written only when asked
    writer.setFormatter(JsonFormatter())
    logs._writer = writer
    root = logging.getLogger()
    root.handlers[:] = [writer]
    root.setLevel(logging.INFO)
    logging.getLogger("disentangle.runtime").info("before")
    log_access(ENTRY)
    logging.getLogger("disentangle.runtime").info("after")
    writer.write_pending()
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == ["before", "POST /decode 200", "after"]
    writer.close()


def test_an_embedding_apps_logging_gets_an_ordinary_record(root_logging: None) -> None:
    logs._writer = None  # configure_logging never ran: the app lives inside someone else's process
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Collect()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    log_access(ENTRY)
    assert len(seen) == 1
    record = seen[0]
    assert record.name == ACCESS_LOGGER and record.getMessage() == "POST /decode 200"
    assert record.__dict__["request_id"] == "rid-1" and record.__dict__["status"] == 200
    root.setLevel(logging.WARNING)  # and at a level above info there is no access line at all
    log_access(ENTRY)
    assert len(seen) == 1
