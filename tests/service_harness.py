"""Helpers for the service tests: real `disentangle-serve` processes on loopback, artifact copies to break.

Not a test module: the service test files import it, each starting the servers it needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from contract.manifest import Manifest

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} within {timeout_s:g} s")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_log(model_dir: Path, url: str) -> Path:
    """Where `serve` writes the stdout and stderr of the server at ``url``."""
    return model_dir.parent / f"server-{url.rsplit(':', 1)[1]}.log"


@contextmanager
def serve(model_dir: Path, factory: str | None = None, **settings: object) -> Iterator[str]:
    """Run `disentangle-serve` in its own process; yield its base URL once it answers.

    ``factory`` ("module:function", the module in tests/) serves that app factory with uvicorn instead.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env.update({f"DISENTANGLE_{k.upper()}": str(v) for k, v in settings.items()})
    env.setdefault("DISENTANGLE_LOG_LEVEL", "warning")
    log_path = model_dir.parent / f"server-{port}.log"
    if factory is None:
        command = [sys.executable, "-m", "service.cli", "--model-dir", str(model_dir), "--port", str(port)]
    else:
        env["DISENTANGLE_MODEL_DIR"] = str(model_dir)
        command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--app-dir", str(REPO / "tests")]
        command += ["--port", str(port), "--log-level", "warning"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_answering(
    url: str, path: str, failed: Callable[[], str | None], timeout_s: float, interval_s: float = 0.05
) -> None:
    """Poll ``url + path`` until it answers 200; stop early with ``failed()``'s reason once it gives one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        problem = failed()
        if problem is not None:
            raise AssertionError(problem)
        try:
            if httpx.get(f"{url}{path}", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(interval_s)
    raise AssertionError(f"{url}{path} did not answer 200 within {timeout_s} s")


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    def failed() -> str | None:
        return None if process.poll() is None else f"server exited with {process.returncode}"

    try:
        wait_until_answering(url, "/healthz", failed, START_TIMEOUT_S)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{log_path.read_text()}") from None


def copy_artifact(source: Path, root: Path, name: str, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """A copy of a real artifact under ``root/name``, renamed to ``name``, its manifest optionally edited."""
    target = root / name
    target.mkdir(parents=True)
    for file in source.iterdir():
        if file.is_dir():  # card/
            shutil.copytree(file, target / file.name)
        else:
            (target / file.name).write_bytes(file.read_bytes())
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["name"] = name
    if edit is not None:
        edit(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def add_calibration(manifest: dict[str, Any]) -> None:
    """Give a manifest a factor calibration built from its own statistics and its dataset's factors.

    The real one comes from the evaluation (training/calibrate.py); this one only has to be a valid
    instance of the contract: each factor on one of the most informative dims, its values spread over
    mean +- 2 std of that dim, from the base (the dims' means).
    """
    stats = sorted(manifest["latent_stats"], key=lambda s: -s["kl"])
    base = [s["mean"] for s in manifest["latent_stats"]]
    factors = []
    for stat, factor in zip(stats, manifest["dataset"]["factors"], strict=False):
        n, spread = len(factor["values"]), 2 * max(stat["std"], 0.5)
        codes = [[float(v)] for v in np.linspace(stat["mean"] - spread, stat["mean"] + spread, n)]
        factors.append({"name": factor["name"], "values": factor["values"], "dims": [stat["index"]], "codes": codes})
    manifest["calibration"] = {"base": base, "factors": factors}


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of one metric in Prometheus text format, as (labels, value). Label values may hold any
    character, braces included (an endpoint label is a route template such as "/models/{name}")."""
    found = []
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        found.append((labels, float(match.group(3))))
    return found


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (labels matched as given, in any order)."""
    for found, value in samples(text, name):
        if all(found.get(k) == v for k, v in labels.items()):
            return value
    raise KeyError(f"{name}{labels} not in metrics")


AE = "dsprites_ae"  # a plain autoencoder: no prior
GAN = "digits_infogan"  # continuous codes ~ U(-1, 1)


def priors_folder(root: Path) -> Path:
    """A model folder under ``root`` with the shipped autoencoder and InfoGAN, linked."""
    folder = root / "models"
    folder.mkdir()
    for name in (AE, GAN):
        (folder / name).symlink_to(REPO / "models" / name)
    return folder


def calibrated_request(manifest: Manifest, rng: np.random.Generator) -> dict[str, float | str]:
    """Every factor named, each at a value drawn from its calibration (a number anywhere between its values)."""
    assert manifest.calibration is not None
    request: dict[str, float | str] = {}
    for factor in manifest.calibration.factors:
        if any(isinstance(v, str) for v in factor.values):
            request[factor.name] = str(rng.choice([str(v) for v in factor.values]))
        else:
            numbers = [float(v) for v in factor.values]
            request[factor.name] = float(rng.uniform(min(numbers), max(numbers)))
    return request


def answers_by_endpoint(text: str) -> dict[str, dict[str, float]]:
    """The server's own count of its answers: {endpoint (route template or "unmatched"): {status: count}}."""
    counts: dict[str, dict[str, float]] = {}
    for labels, value in samples(text, "disentangle_requests_total"):
        by_status = counts.setdefault(labels["endpoint"], {})
        by_status[labels["status"]] = by_status.get(labels["status"], 0.0) + value
    return counts
