"""`make run` as a new user meets it: a serve-only install (no torch) that serves the models it is pointed at and
never trains. The full install (torch, the browser, the dev tools) belongs to `make test`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from service_harness import REPO


def make(*args: str) -> subprocess.CompletedProcess[str]:
    # Not the make that may be running this suite: its flags (-j, -n) must not leak into ours.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_make_run_installs_the_base_dependencies_alone_and_serves_from_that_venv() -> None:
    # -n prints the recipe without running it; -W pretends pyproject.toml just changed, so the install shows too.
    plan = make("-n", "-W", "pyproject.toml", "run")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    installs = [line for line in lines if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [".venv-serve/bin/pip install --quiet -e ."], installs
    assert lines[-1].endswith(".venv-serve/bin/disentangle-serve --model-dir models"), lines[-1]
    assert not [line for line in lines if ".venv/" in line or "disentangle-train" in line or "[" in line]


def test_make_run_without_models_says_what_to_do_and_trains_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = make("run", f"MODELS={empty}")
    assert done.returncode != 0
    assert f"no model under {empty}/" in done.stderr and "make run MODELS=models-local" in done.stderr
    assert "disentangle-train" not in done.stdout + done.stderr
    assert list(empty.iterdir()) == [], "make run wrote into the model folder"
