"""Large JSON bodies of nested number arrays, read into numpy without one Python object per number.

A (3, 1024, 1024) image sent as nested JSON lists is 12 MiB of text; parsed the usual way it becomes three
million Python floats (about 100 MB, and more on the way to numpy). Here the text of each array is checked
and measured first (its brackets and commas give its shape, before anything is allocated for it), then its
numbers are read by numpy straight into float32.

Only the top level of the body is walked in Python, and inside an array only its brackets: the numbers
themselves are never visited one by one in Python.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import Invalid, TooLarge

WHITESPACE = b" \t\n\r"
NUMBER_CHARS = b"0123456789.eE+-"
BRACKETS_AS_SPACES = bytes.maketrans(b"[]", b"  ")
_HOLE = re.compile(rb"[\[,][ \t\n\r]*[,\]]")  # an empty list, or a comma with no number on one side
_SPACE = re.compile(rb"[ \t\n\r]*")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(rb"[^,\]}\s]+")
_STRUCTURE = re.compile(rb'[\[\]{}"]')


class NotArrayText(ValueError):
    """The body is not a JSON object this reader can split; the caller parses it the ordinary way."""


@dataclass(frozen=True)
class Split:
    """A JSON object whose ``key`` list had its number arrays taken out.

    ``rest`` is the body with each such array replaced by ``[]`` (so that a schema still sees a list there),
    ``arrays`` maps the list's indices to the arrays taken out (still as text; see ``numbers``).
    """

    rest: bytes
    arrays: dict[int, bytes]


def split(body: bytes, key: str, max_items: int) -> Split:
    """Take the nested arrays out of the top-level list ``key`` of the JSON object ``body``; a list of more
    than ``max_items`` items is a 413 once the item past it is reached, before anything else is kept of it."""
    pos = _space(body, 0)
    if body[pos : pos + 1] != b"{":
        raise NotArrayText("not a JSON object")
    pos = _space(body, pos + 1)
    while body[pos : pos + 1] != b"}":
        match = _STRING.match(body, pos)
        if match is None:
            raise NotArrayText(f"a key was expected at byte {pos}")
        name = json.loads(match.group())
        pos = _space(body, match.end())
        if body[pos : pos + 1] != b":":
            raise NotArrayText(f"':' was expected at byte {pos}")
        pos = _space(body, pos + 1)
        if name == key and body[pos : pos + 1] == b"[":
            end, rest_items, arrays = _items(body, pos, key, max_items)
            rest = body[:pos] + b"[" + b",".join(rest_items) + b"]" + body[end:]
            return Split(rest, arrays)
        pos = _space(body, _skip(body, pos))
        if body[pos : pos + 1] == b",":
            pos = _space(body, pos + 1)
        elif body[pos : pos + 1] != b"}":
            raise NotArrayText(f"',' or '}}' was expected at byte {pos}")
    raise NotArrayText(f"no list {key!r} in the object")


def _items(body: bytes, pos: int, key: str, max_items: int) -> tuple[int, list[bytes], dict[int, bytes]]:
    """The list at ``pos``: (the index after it, each item's text with arrays as ``[]``, the arrays' text)."""
    rest: list[bytes] = []
    arrays: dict[int, bytes] = {}
    pos = _space(body, pos + 1)
    while body[pos : pos + 1] != b"]":
        if len(rest) == max_items:
            raise TooLarge(key, f"at most {max_items} items per request", f"more than {max_items}")
        end = _skip(body, pos)
        if body[pos : pos + 1] == b"[":
            arrays[len(rest)] = body[pos:end]
            rest.append(b"[]")
        else:
            rest.append(body[pos:end])
        pos = _space(body, end)
        if body[pos : pos + 1] == b",":
            pos = _space(body, pos + 1)
        elif body[pos : pos + 1] != b"]":
            raise NotArrayText(f"',' or ']' was expected at byte {pos}")
    return pos + 1, rest, arrays


def _space(body: bytes, pos: int) -> int:
    match = _SPACE.match(body, pos)
    return match.end() if match else pos


def _skip(body: bytes, pos: int) -> int:
    """The index just after the JSON value starting at ``pos``, visiting only brackets and strings."""
    first = body[pos : pos + 1]
    if first == b'"':
        match = _STRING.match(body, pos)
        if match is None:
            raise NotArrayText(f"an unterminated string at byte {pos}")
        return match.end()
    if first not in (b"[", b"{"):
        match = _SCALAR.match(body, pos)
        if match is None:
            raise NotArrayText(f"a value was expected at byte {pos}")
        return match.end()
    depth = 0
    while True:
        found = _STRUCTURE.search(body, pos)
        if found is None:
            raise NotArrayText("an unclosed list or object")
        pos = found.start()
        char = body[pos : pos + 1]
        if char == b'"':
            pos = _skip(body, pos)
            continue
        depth += 1 if char in (b"[", b"{") else -1
        pos += 1
        if depth == 0:
            return pos


def numbers(text: bytes, field: str, expected: str, max_numbers: int, max_depth: int = 3) -> np.ndarray:
    """The JSON array ``text`` (numbers only, at most ``max_depth`` levels, rectangular) as float32, or a
    rejection naming ``field``.

    Its size is known and checked against ``max_numbers`` before the numbers are read, and its depth is checked
    on its opening brackets before its shape is measured (a walk that grows with depth times length).
    """
    if text.count(b",") + 1 > max_numbers:
        raise TooLarge(field, f"an array of at most {max_numbers} numbers", f"{text.count(b',') + 1}")
    if _HOLE.search(text):
        raise Invalid(field, expected, "an array holding an empty list or a missing entry")
    # With no empty list left, a list's commas give its length, and numbers never need visiting here.
    skeleton = text.translate(None, NUMBER_CHARS + WHITESPACE)
    depth = len(skeleton) - len(skeleton.lstrip(b"["))
    if depth > max_depth:
        at = field + "[0]" * max_depth
        raise Invalid(at, f"a number ({expected}: at most {max_depth} levels of lists)", "a nested list")
    if skeleton.translate(None, b"[],"):
        raise Invalid(field, expected, "an array holding something other than numbers")
    shape = _shape(skeleton)
    if skeleton != _skeleton(shape):
        raise Invalid(field, expected, "a ragged or malformed array")
    size = math.prod(shape)
    if size > max_numbers:
        raise TooLarge(field, f"an array of at most {max_numbers} numbers", f"shape {shape}")
    try:  # numpy stops at the first entry that is not a number (raising, or in older versions returning early)
        values = np.fromstring(text.translate(BRACKETS_AS_SPACES), dtype=np.float32, sep=",")
    except ValueError:
        values = np.empty(0, np.float32)
    if values.size != size:
        raise Invalid(field, expected, "an array with an entry that is not a JSON number")
    return values.reshape(shape)


def _shape(skeleton: bytes) -> tuple[int, ...]:
    """The shape a rectangular array with this bracket-and-comma skeleton has, read along its first entries."""
    ndim = len(skeleton) - len(skeleton.lstrip(b"["))
    shape = []
    for depth in range(ndim):
        inner = ndim - depth - 1
        end = skeleton.find(b"]" * (inner + 1), depth)
        first_list = skeleton[depth:end]
        if inner == 0:
            shape.append(first_list.count(b",") + 1)
        else:
            shape.append(first_list.count(b"]" * inner + b",") + 1)
    return tuple(shape)


def _skeleton(shape: tuple[int, ...]) -> bytes:
    if not shape:
        return b""
    text = b"[" + b"," * (shape[-1] - 1) + b"]"
    for n in reversed(shape[:-1]):
        text = b"[" + b",".join([text] * n) + b"]"
    return text


def merged(items: list[Any], arrays: dict[int, np.ndarray]) -> list[Any]:
    return [arrays.get(i, item) for i, item in enumerate(items)]
