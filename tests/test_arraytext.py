"""Number arrays read from JSON text: the same values as json.loads, every malformed array refused with the
reason, and a size over the budget refused before the numbers are read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.arraytext import NotArrayText, numbers, split
from service.errors import Rejected


def read(text: str, max_numbers: int = 1000) -> np.ndarray:
    return numbers(text.encode(), "images[0]", "numbers", max_numbers)


@pytest.mark.parametrize(
    "value",
    [[0.5], [[1, 2], [3, 4]], [[[0.0, 1e-3, -2.5e2]]], np.linspace(0, 1, 24).reshape(2, 3, 4).tolist()],
)
def test_arrays_read_as_json_reads_them(value: list[object]) -> None:
    for text in (json.dumps(value), json.dumps(value, indent=2)):
        np.testing.assert_array_equal(read(text), np.asarray(value, dtype=np.float32))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[[[]]]", "empty list"),
        ("[1,]", "missing entry"),
        ("[[1],[2,3]]", "ragged"),
        ("[1,[2]]", "ragged"),
        ("[1 2]", "not a JSON number"),
        ("[1.2.3]", "not a JSON number"),
        ('[1,"2"]', "other than numbers"),
        ("[true]", "other than numbers"),
    ],
)
def test_malformed_arrays_are_a_422_saying_why(text: str, reason: str) -> None:
    with pytest.raises(Rejected) as rejected:
        read(text)
    assert rejected.value.status == 422 and rejected.value.field == "images[0]"
    assert reason in rejected.value.received


def test_an_array_over_the_budget_is_a_413() -> None:
    with pytest.raises(Rejected) as rejected:
        read(json.dumps(np.zeros((3, 4, 5)).tolist()), max_numbers=59)
    assert rejected.value.status == 413 and "at most 59 numbers" in rejected.value.expected


def test_split_takes_only_the_arrays_of_the_named_list() -> None:
    body = {"model": "x [1, 2]", "images": ["abc", [[0.5, 1]], [[2]]], "other": {"images": [[9]]}}
    parts = split(json.dumps(body).encode(), "images", 256)
    assert json.loads(parts.rest)["images"] == ["abc", [], []]
    assert json.loads(parts.rest)["model"] == "x [1, 2]" and json.loads(parts.rest)["other"] == {"images": [[9]]}
    assert {i: json.loads(text) for i, text in parts.arrays.items()} == {1: [[0.5, 1]], 2: [[2]]}
    with pytest.raises(NotArrayText):
        split(b'{"images": "not a list"}', "images", 256)


@pytest.mark.parametrize("depth", [4, 65, 10_000])
def test_arrays_nested_past_the_allowed_depth_are_a_422_at_the_first_level_too_deep(depth: int) -> None:
    with pytest.raises(Rejected) as refused:
        read("[" * depth + "0.5" + "]" * depth, max_numbers=10)
    assert refused.value.status == 422 and refused.value.field == "images[0][0][0][0]"
    assert "at most 3 levels of lists" in refused.value.expected


def test_a_list_of_more_items_than_allowed_is_a_413_at_the_item_past_the_limit() -> None:
    body = b'{"images": [' + b",".join([b'"a"'] * 1000) + b"]}"
    with pytest.raises(Rejected) as refused:
        split(body, "images", 10)
    assert refused.value.status == 413 and refused.value.field == "images"
    assert refused.value.expected == "at most 10 items per request"
    assert len(split(body, "images", 1000).rest) == len(body)
