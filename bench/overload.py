"""Served throughput past the queue depth: does the service keep answering at its peak when overloaded?

    python bench/overload.py --model-dir models                  # needs wrk: apt-get install -y wrk
    python bench/overload.py --code-root OTHER_CHECKOUT          # the same against another version

Starts `disentangle-serve` on loopback (QUEUE_DEPTH and ADMISSION_LIMIT 256, the defaults) and drives
single-latent `POST /decode` (JSON in, `Accept: image/png`) with wrk at 256 connections (the peak: as many
as the queue holds) and at 512 (twice that), each for --seconds, --repeats times, alternating. On a machine
too slow to fill a queue of 256, scale both down: `--queue-depth 16 --connections 16 32`. "served" counts 2xx
answers only. Printed: each run, then the median (and range) per connection count and the ratio of the
medians 512 / 256. The goal of issue 14: served throughput at 512 at least 80% of that at 256.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "image/png"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {{"requests": %d, "seconds": %.6f, "p50_us": %d, "p99_us": %d, ' ..
    '"not_2xx": %d, "socket_errors": %d}}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk(url: str, connections: int, seconds: int, script: Path) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    command.append(url + "/decode")
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    served = raw["requests"] - raw["not_2xx"]
    return {
        "connections": connections,
        "served_per_s": round(served / raw["seconds"]),
        "rejected_per_s": round(raw["not_2xx"] / raw["seconds"]),
        "p50_ms": round(raw["p50_us"] / 1000, 1),
        "p99_ms": round(raw["p99_us"] / 1000, 1),
        "socket_errors": raw["socket_errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--code-root", type=Path, default=REPO, help="checkout whose service/ is run")
    parser.add_argument("--connections", type=int, nargs=2, default=[256, 512], metavar=("PEAK", "OVER"))
    parser.add_argument(
        "--queue-depth", type=int, default=256, help="QUEUE_DEPTH and ADMISSION_LIMIT of the server (defaults: 256)"
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env |= {"DISENTANGLE_LOG_LEVEL": "warning", "PYTHONPATH": str(args.code_root.resolve())}
    env |= {"DISENTANGLE_QUEUE_DEPTH": str(args.queue_depth), "DISENTANGLE_ADMISSION_LIMIT": str(args.queue_depth)}
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(args.model_dir.resolve()), "--port", str(port)]
    server = subprocess.Popen(command, cwd=args.code_root, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                models = httpx.get(f"{url}/readyz", timeout=2)
                if models.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("server did not become ready")
            time.sleep(0.1)
        default = models.json()["default"]
        latent_dim = httpx.get(f"{url}/models/{default}").json()["latent_dim"]
        with tempfile.TemporaryDirectory() as workdir:
            script = Path(workdir) / "decode.lua"
            script.write_text(WRK_SCRIPT.format(body=json.dumps({"latents": [[0.5] * latent_dim]})))
            wrk(url, 16, 2, script)  # warm-up
            runs: dict[int, list[dict[str, float]]] = {n: [] for n in args.connections}
            for _ in range(args.repeats):
                for n in args.connections:
                    run = wrk(url, n, args.seconds, script)
                    runs[n].append(run)
                    print(json.dumps(run), flush=True)
        medians = {}
        for n, results in runs.items():
            served = [r["served_per_s"] for r in results]
            medians[n] = statistics.median(served)
            p99 = [r["p99_ms"] for r in results]
            print(
                f"{n} connections: served {medians[n]:,.0f}/s (range {min(served):,.0f}-{max(served):,.0f}), "
                f"p99 {min(p99)}-{max(p99)} ms"
            )
        peak, over = args.connections
        print(f"served at {over} / served at {peak}: {medians[over] / medians[peak]:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
