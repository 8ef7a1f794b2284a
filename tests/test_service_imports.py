"""The service half never imports torch or training: checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

from service_harness import REPO

PROBE = """
import sys
import service.app, service.cli, service.client, service.registry, service.runtime
service.app.create_app
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "training"))
print(",".join(heavy))
"""


def test_service_imports_neither_torch_nor_training() -> None:
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"service pulled in: {run.stdout}"
