"""multipart/form-data parsing: the plain-shape tokenizer reads every body as python-multipart does.

The fast tokenizer (``_plain_parts``) serves the bodies real clients send; anything else goes to
python-multipart. Each body here is read both ways and must give the same parts, or the same 4xx.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import Rejected
from service.forms import _plain_parts, parse_form

MAX_FILES, MAX_FIELDS = 8, 16


def both(content_type: str, body: bytes) -> tuple[object, object]:
    """What each tokenizer makes of the body: the parts, or the rejection's status and message."""

    def read(plain: bool) -> object:
        try:
            return parse_form(content_type, body, MAX_FILES, MAX_FIELDS, plain=plain)
        except Rejected as error:
            return error.status, error.body()

    return read(True), read(False)


def encoded(fields: dict[str, str], files: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """The Content-Type and body httpx sends for this form (the way a Python client uploads); with no file it
    would send the fields urlencoded."""
    assert files, "a multipart form needs a file"
    request = httpx.Request(
        "POST", "http://test/encode", data=fields, files=[("images", (name, data, "image/png")) for name, data in files]
    )
    return request.headers["content-type"], request.read()


# Part data that looks like the syntax around it: line ends, dashes, a blank line, a fake header.
tricky = st.binary(max_size=64) | st.sampled_from(
    [b"", b"\r\n", b"--", b"\r\n--", b"\r\n\r\n", b"--\r\n", b"Content-Disposition: form-data\r\n\r\n"]
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(st.sampled_from(["model", "resize", "sample", "seed", "über"]), st.text(max_size=12)),
    files=st.lists(st.tuples(st.sampled_from(["a.png", "b c.png", "ü.png"]), tricky), min_size=1, max_size=4),
)
def test_client_bodies_read_the_same_both_ways(fields: dict[str, str], files: list[tuple[str, bytes]]) -> None:
    content_type, body = encoded(fields, files)
    fast, full = both(content_type, body)
    assert fast == full
    if isinstance(full, list):  # and what was sent is what came back
        assert [v for k, v in full if k == "images"] == [data for _, data in files]


def test_a_client_body_takes_the_fast_tokenizer() -> None:
    content_type, body = encoded({"model": "m"}, [("x.png", b"\x89PNG\r\n--\r\n")])
    boundary = content_type.split("boundary=", 1)[1].encode()
    assert _plain_parts(body, boundary) == [
        (b'form-data; name="model"', b"m"),
        (b'form-data; name="images"; filename="x.png"', b"\x89PNG\r\n--\r\n"),
    ]


B = "multipart/form-data; boundary=xyz"
PART = b'Content-Disposition: form-data; name="images"; filename="a.png"\r\n\r\nDATA'


@pytest.mark.parametrize(
    "body",
    [
        b"--xyz\r\n" + PART + b"\r\n--xyz--\r\n",  # plain
        b"--xyz\r\n" + PART + b"\r\n--xyz--",  # no CRLF after the close delimiter
        b"preamble\r\n--xyz\r\n" + PART + b"\r\n--xyz--\r\n",  # a preamble
        b"--xyz\r\n" + PART + b"\r\n--xyz--\r\nepilogue",  # an epilogue
        b"--xyz\r\n" + PART + b"\r\n--xyz\r\n",  # no close delimiter
        b"--xyz\r\n" + PART,  # cut short
        b"--xyz\r\nContent-Type: image/png\r\n\r\nDATA\r\n--xyz--\r\n",  # no Content-Disposition
        b"--xyz\r\nContent-Disposition: form-data\r\n\r\nDATA\r\n--xyz--\r\n",  # no name
        b"--xyz\r\nno colon here\r\n\r\nDATA\r\n--xyz--\r\n",  # a header line without a colon
        b"--xyz\r\n Content-Disposition: form-data; name=a\r\n\r\nx\r\n--xyz--\r\n",  # a folded header
        b"--xyz\r\ncontent-disposition:form-data;name=a\r\n\r\nx\r\n--xyz--\r\n",  # lower case, no spaces
        b"--xyz\n" + PART + b"\n--xyz--\n",  # bare LF line ends
        b"--xyz\r\n" + PART + b"\r\n--xyz--\r\nmore\r\n--xyz--\r\n",  # a close delimiter before the last
        b"--xyz\r\n" + PART + b"\r\n--xyz  \r\n" + PART + b"\r\n--xyz--\r\n",  # padding after a delimiter
        b"--xyz--\r\n",  # no parts
        b"",  # nothing
    ],
)
def test_unusual_bodies_read_the_same_both_ways(body: bytes) -> None:
    fast, full = both(B, body)
    assert fast == full


def test_limits_hold_on_the_fast_tokenizer() -> None:
    content_type, body = encoded({}, [("a.png", b"x")] * (MAX_FILES + 1))
    fast, full = both(content_type, body)
    assert fast == full and isinstance(fast, tuple) and fast[0] == 413
    big = "x" * ((1 << 20) + 1)
    content_type, body = encoded({"model": big}, [("a.png", b"x")])
    fast, full = both(content_type, body)
    assert fast == full and isinstance(fast, tuple) and fast[0] == 413
