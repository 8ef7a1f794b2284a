"""Print the requirements in pyproject.toml, one a line, for the Dockerfile's `pip install -r` layers.

    python requirements.py pyproject.toml                              # the service's dependencies
    python requirements.py pyproject.toml --extra train                # and the train extra, less torch
    python requirements.py pyproject.toml --extra train --only torch   # the torch pin alone

Installing the dependencies before the code gives them a layer keyed on pyproject.toml alone, so that a code
change rebuilds in seconds. torch is installed apart because its index must be the only one that can serve it:
with PyPI beside it, an unreachable CPU index silently yields PyPI's multi-GB CUDA build.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return match.group(0).lower()


def requirements(pyproject: Path, extras: list[str], only: str | None) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    if only is not None:
        return [line for line in lines if requirement_name(line) == only]
    return [line for line in lines if requirement_name(line) != "torch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extra", action="append", default=[], help="an optional-dependencies group to add")
    parser.add_argument("--only", help="print just this package's requirement (from the chosen groups)")
    args = parser.parse_args()
    print("\n".join(requirements(args.pyproject, args.extra, args.only)))


if __name__ == "__main__":
    main()
