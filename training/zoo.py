"""Train a set of models from config files, several at once if asked, then export each as an artifact.

    make zoo                                                    # every configs/zoo/*.toml into models-local/
    disentangle-train zoo configs/zoo/dsprites_beta_tcvae.toml  # one model of the zoo, into models-local/
    disentangle-train zoo configs/zoo/*.toml --models models --overwrite   # replace the committed zoo
    disentangle-train zoo configs/zoo/*.toml --parallel 12 --set device=cuda --set cache_on_device=true \\
        --set time_limit_min=7.5 --no-export                    # a GPU box: many small models share one GPU

Each config trains in its own process (`disentangle-train fit --config C`), resuming from its checkpoint when
one exists, so an interrupted zoo picks up where it stopped. Runs land in runs/zoo/NAME, artifacts in
models-local/NAME (the config's `name`; git ignores the folder). An artifact folder that already holds a model
is replaced only with --overwrite, so the committed models/ are not rewritten by accident. A config's notes
(NAME.md beside NAME.toml: the recipes tried and their scores) are copied into the artifact, where the model
card shows them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from contract.manifest import MANIFEST_NAME, NOTES_FILE
from training.checkpoints import CHECKPOINT


@dataclass
class Job:
    config: Path
    name: str
    run_dir: Path
    log: Path


def plan(configs: Sequence[Path], runs: Path) -> list[Job]:
    jobs = []
    for config in configs:
        with config.open("rb") as f:
            name = tomllib.load(f).get("name") or config.stem
        jobs.append(Job(config, name, runs / name, runs / f"{name}.out"))
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"config names must be unique, got {names}")
    return jobs


def command(job: Job, runs: Path, overrides: Sequence[str]) -> list[str]:
    args = [sys.executable, "-m", "training.cli", "fit", "--config", str(job.config), "--out-dir", str(runs)]
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {override!r}")
        args += [f"--{key.replace('_', '-')}", value]
    if (job.run_dir / CHECKPOINT).exists():
        args.append("--resume")
    return args


def train_all(jobs: Sequence[Job], runs: Path, overrides: Sequence[str], parallel: int) -> dict[str, int]:
    """Run the jobs, at most ``parallel`` at a time; return each one's exit code."""
    runs.mkdir(parents=True, exist_ok=True)
    # Share the cores out: several processes each spinning up all cores' worth of threads slow each other down.
    threads = max(1, (os.cpu_count() or 1) // min(parallel, len(jobs)))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    pending = list(jobs)
    running: dict[str, tuple[subprocess.Popen, IO[str]]] = {}
    codes: dict[str, int] = {}
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            log: IO[str] = job.log.open("a")
            print(f"[zoo] start {job.name}", flush=True)
            running[job.name] = (subprocess.Popen(command(job, runs, overrides), stdout=log, stderr=log, env=env), log)
        for name, (process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                codes[name] = process.returncode
                print(f"[zoo] {name} finished with exit code {process.returncode}", flush=True)
                del running[name]
        time.sleep(1)
    return codes


def main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="disentangle-train zoo", description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--runs", type=Path, default=Path("runs/zoo"))
    parser.add_argument(
        "--models", type=Path, default=Path("models-local"), help="artifact folder (default: %(default)s)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace artifacts already in --models")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-export", action="store_true", help="train only")
    args = parser.parse_args(argv)

    jobs = plan(args.configs, args.runs)
    taken = [str(args.models / job.name) for job in jobs if (args.models / job.name / MANIFEST_NAME).exists()]
    if taken and not args.no_export and not args.overwrite:
        print(f"disentangle-train zoo: error: {', '.join(taken)} already hold a model; export elsewhere (--models), "
              "replace them (--overwrite) or train only (--no-export)", file=sys.stderr)  # fmt: skip
        return 2
    codes = train_all(jobs, args.runs, args.overrides, max(1, args.parallel))
    failed = sorted(name for name, code in codes.items() if code)
    if failed:
        print(f"[zoo] failed: {failed}; see {args.runs}/NAME.out", file=sys.stderr)
    if not args.no_export:
        from training.export import export_run

        for job in jobs:
            if job.name not in failed:
                export_run(job.run_dir, args.models / job.name)
                notes = job.config.with_suffix(".md")
                if notes.exists():
                    shutil.copyfile(notes, args.models / job.name / NOTES_FILE)
                print(f"[zoo] exported {args.models / job.name}", flush=True)
    return 1 if failed else 0
