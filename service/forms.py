"""multipart/form-data bodies, parsed synchronously from bytes already read.

Starlette's form parser is a coroutine fed by the request stream, so it runs on the event loop; with the
body already in memory (it is bounded by ``max_body_bytes``) a plain function can do the same work in a pool
thread instead. Parts with a filename come back as bytes, the others as text, as Starlette would give them.

Two tokenizers feed the same part rules (``_Parts``): ``_plain_parts`` splits a body in the shape every HTTP
client sends (no preamble or epilogue, CRLF line ends, a closing delimiter) with a few ``bytes`` searches, and
python-multipart's state machine reads anything else, errors included. For a one-image upload the first
takes about 0.4 of the time (bench/hot_path_parts.py); the second keeps the messages for malformed bodies what
they were.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import Malformed, Rejected, TooLarge, shown

MAX_FIELD_BYTES = 1 << 20  # a text field (not a file): what Starlette's parser allows too
# Header values up to this long are parsed once and remembered; longer ones (no client sends them) each time,
# so that the cache holds at most a few hundred short strings whatever clients send.
CACHED_HEADER_CHARS = 256


def _parse_options(header: str | bytes) -> tuple[bytes, Mapping[bytes, bytes]]:
    """python-multipart's ``parse_options_header``, remembered for short values: a client sends the same
    Content-Type (its boundary included) and Content-Disposition on every upload, and parsing them again
    was a tenth of what a one-image upload costs the route beyond decoding it (bench/request_layers.py)."""
    if len(header) <= CACHED_HEADER_CHARS:
        return _parse_options_cached(header)
    return parse_options_header(header)


@lru_cache(maxsize=512)
def _parse_options_cached(header: str | bytes) -> tuple[bytes, Mapping[bytes, bytes]]:
    value, params = parse_options_header(header)
    return value, MappingProxyType(params)  # shared between requests: read-only


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
            raise TooLarge("body", "form fields of at most 1 MiB each (send images as files)", "a larger one")

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
        self.begin(self._disposition)

    def begin(self, disposition: bytes) -> None:
        """A part starts; ``disposition`` is the value of its Content-Disposition header."""
        _, options = _parse_options(disposition)
        if b"name" not in options:
            raise _malformed("a part without a name in its Content-Disposition header")
        self._name = _text(options[b"name"], self.charset)
        self._is_file = b"filename" in options
        if self._is_file:
            self.files += 1
        else:
            self.fields += 1
        if self.files > self.max_files or self.fields > self.max_fields:
            raise TooLarge("images", f"at most {self.max_files} images per request", "more")

    def whole(self, disposition: bytes, data: bytes) -> None:
        """A part read in one piece: as the callbacks would see it."""
        self.on_part_begin()
        self.begin(disposition)
        self.on_part_data(data, 0, len(data))
        self.on_part_end()


def _plain_parts(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes]] | None:
    """(Content-Disposition, data) of each part of a body in the plain shape, or None for any other body.

    The plain shape: the first delimiter at the very start, CRLF line ends, every part with a header block
    of ``Name: value`` lines and a Content-Disposition, no other delimiter in any part's data, and the first
    close delimiter at the end (a CRLF after it allowed). A part's data ends at the next CRLF + delimiter, as
    RFC 2046 section 5.1.1 has it.
    """
    delimiter = b"--" + boundary
    close = b"\r\n" + delimiter + b"--"
    end = body.find(close)
    if not body.startswith(delimiter + b"\r\n") or end < 0 or body[end + len(close) :] not in (b"", b"\r\n"):
        return None
    parts = []
    for chunk in body[len(delimiter) + 2 : end].split(b"\r\n" + delimiter + b"\r\n"):
        head, blank, data = chunk.partition(b"\r\n\r\n")
        if not blank:
            return None
        disposition = None
        for line in head.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                return None
            if name.lower() == b"content-disposition":
                disposition = value.strip()
        # A delimiter the split did not take (one with padding after the boundary) is python-multipart's call.
        if disposition is None or b"\r\n" + delimiter in data:
            return None
        parts.append((disposition, data))
    return parts


def _malformed(received: str) -> Rejected:
    return Malformed("body", "a well-formed multipart/form-data body", received)


def parse_form(
    content_type: str, body: bytes, max_files: int, max_fields: int, plain: bool = True
) -> list[tuple[str, str | bytes]]:
    """The parts of a multipart/form-data ``body`` in order, or a 4xx saying what is wrong with it.
    ``plain=False`` reads every body with python-multipart (the tests compare the two tokenizers)."""
    _, params = _parse_options(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise _malformed(f"no boundary in the Content-Type {shown(content_type)}")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    parts = _Parts(charset, max_files, max_fields)
    split = _plain_parts(body, boundary) if plain else None
    if split is not None:
        for disposition, data in split:
            parts.whole(disposition, data)
        return parts.items
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
