"""Load benchmark of the HTTP service against the in-process ceiling, with micro-batching on and off.

    python bench/serve_load.py --model-dir models            # needs wrk: apt-get install -y wrk

For each scenario it first measures the ceiling in this process (the same onnxruntime call plus the PNG
codec, no HTTP), then starts `disentangle-serve` on loopback and drives it with wrk (a separate process) for a
bounded number of requests (about --requests, at most 20 s) at concurrency 1, 16 and 64. Scenarios:
  decode-1    POST /decode, one latent as JSON, `Accept: image/png`: the raw PNG back
  decode-64   POST /decode, 64 float32 latents as application/octet-stream, base64 PNGs in JSON back
  encode-1    POST /encode, one base64 PNG as JSON: mu and logvar back
The whole grid runs twice: batching on (the defaults) and off (DISENTANGLE_BATCH_MAX_SIZE=1).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from service.artifact import DECODER_FILE, ENCODER_FILE, read_manifest
from service.imaging import ImageReader, png, pngs, to_pixels
from service.runtime import open_session
from service.settings import Settings

CONCURRENCY = (1, 16, 64)
CEILING_SECONDS = 2.0
PILOT_SECONDS = 1.0
MAX_SECONDS = 20.0

WRK_SCRIPT = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {{"requests": %d, "seconds": %.6f, "p50_us": %d, "p99_us": %d, ' ..
    '"bad_status": %d, "socket_errors": %d}}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: bytes
    headers: dict[str, str]
    items: int  # images per request
    requests: int  # per measurement
    ceiling: Callable[[], object]  # one in-process call: onnxruntime plus the PNG codec
    network: str


@dataclass(frozen=True)
class Ceiling:
    per_second: float  # requests per second, one after another on one thread
    p50_ms: float


@dataclass(frozen=True)
class Run:
    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    failures: int
    mean_batch: float


def measure_ceiling(call: Callable[[], object]) -> Ceiling:
    for _ in range(20):
        call()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < CEILING_SECONDS:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return Ceiling(len(times) / sum(times), 1000 * float(np.median(times)))


def scenarios(artifact: Path, requests: int) -> list[Scenario]:
    manifest = read_manifest(artifact)
    settings = Settings(model_dir=artifact.parent)
    decoder = open_session(artifact / DECODER_FILE, settings)
    encoder = open_session(artifact / ENCODER_FILE, settings)
    d = manifest.latent_dim
    rng = np.random.default_rng(0)
    one = rng.normal(size=(1, d)).astype(np.float32)
    many = rng.normal(size=(64, d)).astype(np.float32)
    picture = png(to_pixels(decoder.run(None, {"z": one})[0])[0])
    reader = ImageReader(manifest.image_shape, settings.max_image_side, resize=False)
    json_headers = {"Content-Type": "application/json"}
    return [
        Scenario(
            "decode-1",
            "/decode",
            json.dumps({"latents": one.tolist()}).encode(),
            json_headers | {"Accept": "image/png"},
            1,
            requests,
            lambda: png(to_pixels(decoder.run(None, {"z": one})[0])[0]),
            "decoder",
        ),
        Scenario(
            "decode-64",
            "/decode",
            many.astype("<f4").tobytes(),
            {"Content-Type": "application/octet-stream", "X-Shape": f"64,{d}"},
            64,
            max(requests // 20, 50),
            lambda: pngs(decoder.run(None, {"z": many})[0]),
            "decoder",
        ),
        Scenario(
            "encode-1",
            "/encode",
            json.dumps({"images": [base64.b64encode(picture).decode()]}).encode(),
            json_headers,
            1,
            requests,
            lambda: encoder.run(None, {"image": reader.from_bytes(picture, "image")[None]}),
            "encoder",
        ),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(model_dir: Path, model: str, **settings: str) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env |= {"DISENTANGLE_LOG_LEVEL": "warning", "DISENTANGLE_DEFAULT_MODEL": model}
    env |= {f"DISENTANGLE_{k.upper()}": v for k, v in settings.items()}
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(model_dir), "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {process.stderr.read().decode() if process.stderr else ''}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def batch_totals(url: str, model: str, network: str) -> tuple[float, float]:
    """(runs, rows) the server has done so far for one network."""
    totals = {"count": 0.0, "sum": 0.0}
    labels = (f'model="{model}"', f'network="{network}"')
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        for suffix in totals:
            if line.startswith(f"disentangle_batch_size_{suffix}{{") and all(label in line for label in labels):
                totals[suffix] = float(line.rsplit(" ", 1)[1])
    return totals["count"], totals["sum"]


def wrk(url: str, scenario: Scenario, concurrency: int, seconds: float, workdir: Path) -> dict[str, float]:
    body = workdir / f"{scenario.name}.body"
    body.write_bytes(scenario.body)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in scenario.headers.items())
    script = workdir / f"{scenario.name}.lua"
    script.write_text(WRK_SCRIPT.format(body=body, headers=headers))
    # One wrk thread: it drives thousands of requests a second on a fraction of a core, leaving the rest to the
    # server. -d takes whole seconds.
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(round(seconds), 1)}s", "--timeout", "10s", "-s", str(script)]
    out = subprocess.run([*command, url + scenario.path], capture_output=True, text=True, check=True).stdout
    match = re.search(r"RESULT (\{.*\})", out)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    result: dict[str, float] = json.loads(match.group(1))
    return result


def drive(url: str, model: str, scenario: Scenario, concurrency: int, workdir: Path) -> Run:
    """A warm-up, then a one-second pilot that sizes the measurement to about ``scenario.requests`` requests."""
    wrk(url, scenario, concurrency, PILOT_SECONDS, workdir)
    pilot = wrk(url, scenario, concurrency, PILOT_SECONDS, workdir)
    rate = pilot["requests"] / pilot["seconds"]
    runs_before, rows_before = batch_totals(url, model, scenario.network)
    result = wrk(url, scenario, concurrency, min(scenario.requests / rate, MAX_SECONDS), workdir)
    runs, rows = batch_totals(url, model, scenario.network)
    return Run(
        requests=int(result["requests"]),
        per_second=result["requests"] / result["seconds"],
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        failures=int(result["bad_status"] + result["socket_errors"]),
        mean_batch=(rows - rows_before) / max(runs - runs_before, 1),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--model", help="artifact folder name; default: the first")
    parser.add_argument("--requests", type=int, default=4000, help="per single-item measurement")
    parser.add_argument("--only", nargs="*", help="scenario names, e.g. decode-1; default: all")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install -y wrk")
    folders = sorted(p for p in args.model_dir.iterdir() if (p / "manifest.json").is_file())
    artifact = next((p for p in folders if p.name == args.model), None) if args.model else folders[0]
    if artifact is None:
        parser.error(f"no artifact {args.model!r} in {args.model_dir}")
    model = read_manifest(artifact).name

    grid = [s for s in scenarios(artifact, args.requests) if not args.only or s.name in args.only]
    ceilings = {s.name: measure_ceiling(s.ceiling) for s in grid}
    runs: dict[tuple[str, int, str], Run] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, settings in (("on", {}), ("off", {"batch_max_size": "1"})):
            with server(args.model_dir, model, **settings) as url:
                for scenario in grid:
                    for c in CONCURRENCY:
                        runs[scenario.name, c, mode] = drive(url, model, scenario, c, Path(tmp))
    print(report(grid, ceilings, runs, model))
    return 0


def report(
    grid: list[Scenario], ceilings: dict[str, Ceiling], runs: dict[tuple[str, int, str], Run], model: str
) -> str:
    lines = [
        f"model {model}; {os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}; "
        "server log level warning; ceiling = one thread, no HTTP",
        "",
        "| scenario | conc | batching | requests | items/s | % of ceiling | p50 ms | p99 ms | mean batch | failures "
        "| ceiling items/s | ceiling p50 ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in grid:
        ceiling = ceilings[scenario.name]
        for c in CONCURRENCY:
            for mode in ("on", "off"):
                run = runs[scenario.name, c, mode]
                items = run.per_second * scenario.items
                share = run.per_second / ceiling.per_second
                lines.append(
                    f"| {scenario.name} | {c} | {mode} | {run.requests} | {items:,.0f} | {share:.0%} "
                    f"| {run.p50_ms:.2f} | {run.p99_ms:.2f} | {run.mean_batch:.1f} | {run.failures} "
                    f"| {ceiling.per_second * scenario.items:,.0f} | {ceiling.p50_ms:.2f} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
