"""The serving benchmarks still run end to end: a short pass of each, with real servers and wrk over loopback.

Only that they run and report is checked, never a timing: timings belong to `make bench` on a quiet machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is missing and scripts/install-test-tools.sh could not install it"
)


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_serving_benchmark_runs_and_reports_every_column() -> None:
    # Two workers whatever the CPUs (wrk's own CPU leaves one core on a two-core machine): the memory line
    # then names the supervisor and each worker.
    args = ["--seconds", "2", "--slices", "2", "--warmup", "0.5", "--repeats", "1", "--only", "decode 1"]
    args += ["--workers", "2"]
    out = run("bench/serve_load.py", *args)
    rates, _, cpu = out.partition("CPU time per request")
    for table in (rates, cpu):
        rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| decode 1")}
        assert set(rows) == {"decode 1 latent, c=64", "decode 1 latent, c=1"}, out
        for line in rows.values():
            assert all(c.strip() for c in line.strip("|").split("|")), line  # every column filled
    for line in rates.splitlines():
        if line.startswith("| decode 1"):
            assert line.strip("|").split("|")[-1].strip() == "0", line  # no failed request, service or peer
    assert "Service start to ready" in out
    assert "Each figure: 2 s in 2 slices of 1 s, the three taking turns" in out
    assert re.search(r"core.? the server may use \(CPUs [\d,]+\), wrk on (CPUs? [\d,]+ of its own|the same CPUs)", out)
    # resident and proportional memory of the supervisor and each worker
    assert re.search(r"supervisor \d+ \(PSS \d+\); workers \d+ \(PSS \d+\), \d+ \(PSS \d+\)", out), out


def test_the_latency_floor_reports_every_layer_and_the_goal_share() -> None:
    out = run("bench/uvicorn_floor.py", "--seconds", "1", "--slices", "1", "--repeats", "1")
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    layers = [name for name in rows if name != "layer"]
    assert len(layers) == 6, out
    assert layers[0] == "model call + PNG, in process, back to back"
    assert layers[-1] == "the service: POST /decode, 1 latent, PNG back"
    for line in rows.values():
        p50 = line.split("|")[2].strip()
        assert p50 == "p50 ms" or float(p50.split()[0]) > 0, line  # every layer answered and was timed
    assert "uvicorn + loopback + wrk add" in out
    assert re.search(r"take -?[\d.]+( \(.*\))? ms of the 0.15 ms the goal allows", out), out


def test_the_hot_path_parts_compare_every_piece_with_its_predecessor() -> None:
    out = run("bench/hot_path_parts.py")
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| piece")]
    assert [row.split("|")[1].split("(")[0].strip() for row in rows] == [
        "access-log line",
        "request metrics",
        "1,000 body reads",
        "one-PNG multipart upload",
    ]
    for row in rows:
        assert all(cell.strip() for cell in row.strip("|").split("|")), row


def test_the_request_layers_answer_and_report_each_increment() -> None:
    # Each layer's request must answer 200 (the script stops otherwise), so this also checks that the three
    # layers run the same request the served benchmark sends.
    out = run("bench/request_layers.py", "--repeats", "1", "--calls", "20")
    lines = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| case")]
    rows = {line.split("|")[1].strip(): line for line in lines}
    assert set(rows) == {"decode 1 latent -> PNG", "encode 1 PNG multipart"}, out
    for line in rows.values():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")[1:]]
        assert len(cells) == 5 and all(re.fullmatch(r"-?[\d.]+ \(-?[\d.]+--?[\d.]+\)", c) for c in cells), line
