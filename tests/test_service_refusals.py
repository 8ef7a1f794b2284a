"""Refusals are kinds, and one table gives their HTTP statuses: the batcher, validation and the routes raise a
kind (``Invalid``, ``Busy``, ...) and never name a status (``service.errors.STATUS``)."""

from __future__ import annotations

import ast

from service_harness import REPO

from service import errors
from service.errors import ERROR_MEANINGS, STATUS, Refused, Rejected


def _kinds(cls: type[Rejected]) -> list[type[Rejected]]:
    return [k for sub in cls.__subclasses__() for k in (sub, *_kinds(sub))]


def test_every_kind_of_refusal_has_one_documented_status() -> None:
    kinds = [k for k in _kinds(Rejected) if k is not Refused]  # Refused carries Starlette's own status
    assert set(kinds) == set(STATUS)
    assert len(set(STATUS.values())) == len(STATUS)
    assert set(STATUS.values()) <= set(ERROR_MEANINGS)
    error = errors.Busy("queue", "at most 8 requests queued", "one more")
    assert (
        error.status == 429 and error.body()["detail"] == "queue: expected at most 8 requests queued, received one more"
    )


def test_no_module_but_errors_gives_a_refusal_a_status() -> None:
    """No kind is built with a status, and Starlette's pass-through kind only in service/errors.py."""
    kinds = {k.__name__ for k in _kinds(Rejected)} | {"Rejected"}
    found = []
    for path in sorted((REPO / "service").rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in kinds:
                first = node.args[0] if node.args else None
                if (
                    node.func.id in ("Refused", "Rejected")
                    or isinstance(first, ast.Constant)
                    and isinstance(first.value, int)
                ):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(node)[:60]}")
    assert found == []
