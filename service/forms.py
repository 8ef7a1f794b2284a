"""multipart/form-data bodies, parsed synchronously from bytes already read.

Starlette's form parser is a coroutine fed by the request stream, so it runs on the event loop; with the
body already in memory (it is bounded by ``max_body_bytes``) a plain function can do the same work in a pool
thread instead. Parts with a filename come back as bytes, the others as text, as Starlette would give them.
"""

from __future__ import annotations

import codecs

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import Rejected, shown

MAX_FIELD_BYTES = 1 << 20  # a text field (not a file): what Starlette's parser allows too


def _text(data: bytes | bytearray, charset: str) -> str:
    try:
        return data.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return data.decode("latin-1")


class _Parts:
    """python-multipart's callbacks, collecting (name, value) pairs and enforcing the part counts."""

    def __init__(self, charset: str, max_files: int, max_fields: int) -> None:
        self.charset = charset
        self.max_files = max_files
        self.max_fields = max_fields
        self.items: list[tuple[str, str | bytes]] = []
        self.files = 0
        self.fields = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._data = bytearray()

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._data = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]
        if not self._is_file and len(self._data) > MAX_FIELD_BYTES:
            raise Rejected(413, "body", "form fields of at most 1 MiB each (send images as files)", "a larger one")

    def on_part_end(self) -> None:
        value = bytes(self._data) if self._is_file else _text(self._data, self.charset)
        self.items.append((self._name, value))

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _malformed("a part without a name in its Content-Disposition header")
        self._name = _text(options[b"name"], self.charset)
        self._is_file = b"filename" in options
        if self._is_file:
            self.files += 1
        else:
            self.fields += 1
        if self.files > self.max_files or self.fields > self.max_fields:
            raise Rejected(413, "images", f"at most {self.max_files} images per request", "more")


def _malformed(received: str) -> Rejected:
    return Rejected(400, "body", "a well-formed multipart/form-data body", received)


def parse_form(content_type: str, body: bytes, max_files: int, max_fields: int) -> list[tuple[str, str | bytes]]:
    """The parts of a multipart/form-data ``body`` in order, or a 4xx saying what is wrong with it."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise _malformed(f"no boundary in the Content-Type {shown(content_type)}")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    parts = _Parts(charset, max_files, max_fields)
    callbacks = {
        "on_part_begin": parts.on_part_begin,
        "on_part_data": parts.on_part_data,
        "on_part_end": parts.on_part_end,
        "on_header_field": parts.on_header_field,
        "on_header_value": parts.on_header_value,
        "on_header_end": parts.on_header_end,
        "on_headers_finished": parts.on_headers_finished,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except FormParserError as error:
        raise _malformed(f"invalid multipart data ({error})") from None
    return parts.items
