"""The tests whose mechanisms involve time (micro-batching, deadlines, hot reload, admission) pass on a machine
whose every core is busy with other work, as a CI machine or a laptop may be: they are run again, in a
subprocess, while one CPU-bound process per core spins beside them (started and stopped here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from service_harness import REPO

from service.cpus import available_cpus

TIMED = [
    "tests/test_service_batching.py",
    "tests/test_service_deadlines.py",
    "tests/test_service_reload.py",
    "tests/test_service_admission.py",
]
SPIN_S = 900  # an upper bound: the spinners are stopped as soon as the run ends
SPIN = f"import time\nend = time.monotonic() + {SPIN_S}\nwhile time.monotonic() < end:\n    pass\n"


@pytest.mark.slow
def test_the_timed_tests_pass_with_every_core_busy() -> None:
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(available_cpus())]
    try:
        time.sleep(0.5)  # the spinners are running before the first test starts
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *TIMED],
            cwd=REPO,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=SPIN_S,
        )
        assert all(spinner.poll() is None for spinner in spinners), "a spinner stopped before the run ended"
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout.splitlines()[-1]
