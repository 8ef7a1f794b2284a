"""The code version an artifact or a judge records: the package's version and the commit it was made from."""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def code_version() -> str:
    try:
        base = version("disentangle")
    except PackageNotFoundError:
        base = "0+unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, cwd=Path(__file__).parent, timeout=5,
        ).stdout.strip()  # fmt: skip
        return f"{base}+g{sha}"
    except (OSError, subprocess.SubprocessError):
        return base
