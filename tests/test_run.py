"""The run scaffold as a user meets it: a stopped run keeps its work and says how to continue, a checkpoint
survives a kill at any moment, a run folder is never silently replaced, and a resume keeps its run's settings
and log."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training.checkpoints import CHECKPOINT, LOG, load_checkpoint, read_log
from training.cli import main

REPO = Path(__file__).resolve().parent.parent
TINY = ["--steps", "5", "--batch-size", "8", "--log-every", "5", "--architecture", "mlp", "--precision", "fp32"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def finished_run(tmp_path: Path, name: str) -> tuple[list[str], dict[str, bytes]]:
    """A tiny run of 5 steps: the command that made it, and its folder's files."""
    run = ["fit", "--name", name, "--out-dir", str(tmp_path), *TINY]
    assert main(run) == 0
    return run, snapshot(tmp_path / name)


def logged_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_log(run_dir / LOG) if "event" not in r]


# Each family's run, long enough to be caught running: (the command after `python -m training.cli`, run folder).
def commands(tmp: Path) -> dict[str, tuple[list[str], Path]]:
    runs = str(tmp / "runs")
    every = ["--log-every", "1", "--precision", "fp32"]
    return {
        "vae": (
            ["fit", "--name", "vae", "--out-dir", runs, "--steps", "400", "--batch-size", "8", "--architecture", "mlp",
             *every],
            tmp / "runs" / "vae",
        ),
        "infogan": (
            ["fit", "--objective", "infogan", "--name", "gan", "--out-dir", runs, "--steps", "400", "--batch-size", "8",
             "--width", "2", "--q-hidden", "8", "--noise-dim", "2", "--continuous-codes", "2", "--sample-every", "0",
             *every],
            tmp / "runs" / "gan",
        ),
        "judge": (
            ["judge", "--dataset", "digits", "--out", str(tmp / "judges" / "digits"), "--steps", "400",
             "--batch-size", "8", "--width", "4", "--hidden", "16", "--heldout", "300", *every],
            tmp / "judges" / ".digits.run",
        ),
    }  # fmt: skip


@pytest.mark.timeout(600)
@pytest.mark.parametrize("family", ["vae", "infogan", "judge"])
def test_sigterm_saves_the_step_it_stopped_at_and_the_printed_command_continues_from_there(
    tmp_path: Path, family: str
) -> None:
    argv, run_dir = commands(tmp_path)[family]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "training.cli", *argv], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while len(logged_steps(run_dir)) < 3:  # a few steps in: the run is in its loop
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)
    seen = max(logged_steps(run_dir))
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]

    state = load_checkpoint(run_dir / CHECKPOINT)
    stopped = state["progress"]["step"]
    assert seen <= stopped < 400, "the checkpoint lost steps the run had taken, or the run did not stop"
    assert logged_steps(run_dir) == list(range(1, stopped + 1)), "the step it stopped at is logged, once"
    assert f"stopped by SIGTERM at step {stopped:,} of 400" in err
    printed = err.strip().splitlines()[-1].strip()
    resume = shlex.split(printed)
    assert resume[:3] == ["python", "-m", "training.cli"] and resume[-1] == "--resume", printed
    assert resume[3:-1] == argv

    done = subprocess.run([sys.executable, *resume[1:]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    if family == "judge":
        manifest = json.loads((tmp_path / "judges" / "digits" / "judge.json").read_text())
        assert manifest["steps"] == 400 and not run_dir.exists(), "the judge is written and its run folder gone"
        records = [json.loads(line) for line in (tmp_path / "judges" / "digits" / "training_log.jsonl").open()]
        assert [r["step"] for r in records] == list(range(1, 401))
    else:
        assert load_checkpoint(run_dir / CHECKPOINT)["progress"]["step"] == 400
        assert logged_steps(run_dir) == list(range(1, 401)), "steps after the signal follow on, none twice"


WRITE_THEN_HANG = """
import os, sys, time
import torch
from pathlib import Path
from training.checkpoints import write_checkpoint

path = Path(sys.argv[1])
write_checkpoint(path, {"step": 1, "weights": torch.ones(3)})

def hang(source, target):  # the new checkpoint is on disk, the rename not yet done
    print("written", flush=True)
    time.sleep(600)

os.replace = hang
write_checkpoint(path, {"step": 2, "weights": torch.zeros(3)})
"""


@pytest.mark.timeout(300)
def test_a_kill_between_the_write_and_the_rename_leaves_the_old_checkpoint_loadable(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", WRITE_THEN_HANG, str(path)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "written"
    process.kill()
    process.wait()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["weights"], torch.ones(3))
    assert load_checkpoint(path.with_name(CHECKPOINT + ".tmp"))["step"] == 2, "the new one was whole, not renamed"


def test_a_time_limit_stops_after_a_step_with_a_checkpoint_and_says_how_to_continue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["fit", "--name", "timed", "--out-dir", str(tmp_path), *TINY, "--steps", "1000", "--log-every", "1"]
    assert main([*run, "--time-limit-min", "0.0001"]) == 0
    err = capsys.readouterr().err
    state = load_checkpoint(tmp_path / "timed" / CHECKPOINT)
    assert 1 <= state["progress"]["step"] < 1000
    assert f"stopped at the time limit (0.0001 min) at step {state['progress']['step']:,} of 1,000" in err
    assert err.strip().endswith("--resume") and "--time-limit-min 0.0001" in err


def test_a_fresh_fit_into_a_folder_holding_a_run_is_refused_and_overwrite_starts_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, before = finished_run(tmp_path, "kept")

    assert main([*run, "--steps", "10"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'kept'} already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert snapshot(tmp_path / "kept") == before, "the refusal changed the folder"

    assert main([*run, "--overwrite"]) == 0
    assert logged_steps(tmp_path / "kept") == [5], "the old run's log was appended to"
    assert main([*run, "--resume", "--overwrite"]) == 2
    assert "expected one of them" in capsys.readouterr().err


def test_resume_refuses_changed_settings_unless_overridden_and_logs_the_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, before = finished_run(tmp_path, "run")

    assert main([*run, "--resume", "--steps", "10", "--lr", "0.01", "--beta", "8"]) == 2
    err = capsys.readouterr().err
    assert "changes settings of the run" in err and "lr 0.0005 -> 0.01" in err and "beta 1.0 -> 8.0" in err
    assert "--override beta lr" in err
    assert snapshot(tmp_path / "run") == before

    assert main([*run, "--resume", "--steps", "10", "--lr", "0.01", "--override", "lr", "beta"]) == 0
    records = read_log(tmp_path / "run" / LOG)
    assert [r["step"] for r in records] == [5, 5, 10]
    assert records[1] == {"step": 5, "event": "resume", "overrides": {"lr": {"from": 0.0005, "to": 0.01}}}
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT)["config"]["lr"] == 0.01
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr"] == 0.01
    assert main([*run, "--resume", "--override", "learning_rate"]) == 2
    assert "--override: expected settings of this run, got ['learning_rate']" in capsys.readouterr().err


def test_a_run_resumed_from_an_older_checkpoint_logs_no_step_twice(tmp_path: Path) -> None:
    """A kill after a log write and before the next checkpoint: the resumed run takes those steps again."""
    run = ["fit", "--name", "run", "--out-dir", str(tmp_path), *TINY, "--log-every", "1", "--checkpoint-every", "5"]
    assert main(run) == 0
    older = tmp_path / "step5.pt"
    shutil.copyfile(tmp_path / "run" / CHECKPOINT, older)
    assert main([*run, "--resume", "--steps", "9"]) == 0
    assert logged_steps(tmp_path / "run") == list(range(1, 10))
    shutil.copyfile(older, tmp_path / "run" / CHECKPOINT)  # as if killed at step 9, before its checkpoint

    assert main([*run, "--resume", "--steps", "10"]) == 0
    assert logged_steps(tmp_path / "run") == list(range(1, 11))


@pytest.mark.timeout(600)
def test_a_kill_at_any_moment_leaves_a_checkpoint_no_older_than_the_time_interval(tmp_path: Path) -> None:
    """checkpoint_every far beyond the run: only the time interval (here 0.01 min) writes checkpoints."""
    argv = ["fit", "--name", "run", "--out-dir", str(tmp_path), "--steps", "100000", "--batch-size", "8",
            "--architecture", "mlp", "--precision", "fp32", "--log-every", "1", "--checkpoint-every", "100000",
            "--checkpoint-minutes", "0.01"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "training.cli", *argv], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (tmp_path / "run" / CHECKPOINT).exists() or len(logged_steps(tmp_path / "run")) < 20:
        assert process.poll() is None and time.monotonic() < deadline, "the run ended or never got going"
        time.sleep(0.05)
    process.kill()
    process.wait()
    saved = load_checkpoint(tmp_path / "run" / CHECKPOINT)["progress"]["step"]
    assert 1 <= saved <= max(logged_steps(tmp_path / "run"))
    assert main([*argv, "--resume", "--steps", str(saved + 2)]) == 0
    assert logged_steps(tmp_path / "run") == list(range(1, saved + 3))
