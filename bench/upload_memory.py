"""Peak memory of the server under the worst uploads its limits allow: nested float arrays at the largest side.

    python bench/upload_memory.py --model-dir models                      # 1, then 12 concurrent uploads
    python bench/upload_memory.py --model-dir models --code-root OTHER    # the same against another checkout

Each upload is ``POST /encode {"images": [<3 x 1024 x 1024 floats>], "resize": true}``, about 12 MiB of JSON
(every number one digit after the point, so that the array fits the default 16 MiB body limit). For each
case a fresh `disentangle-serve` is started on loopback; the script reports its resident memory once it is
ready (VmRSS), its peak over the case (VmHWM, from /proc/PID/status) and what it keeps afterwards, with
the answers' status codes. The goal of issue 14: peak under 400 MB for 12 concurrent uploads.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def worst_upload(side: int) -> bytes:
    values = np.random.default_rng(0).integers(0, 10, size=(3, side, side)) / 10
    return json.dumps({"images": [values.tolist()], "resize": True}, separators=(",", ":")).encode()


def run_case(code_root: Path, model_dir: Path, body: bytes, concurrent: int) -> dict[str, object]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env |= {"DISENTANGLE_LOG_LEVEL": "warning", "PYTHONPATH": str(code_root)}
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(model_dir), "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, cwd=code_root, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"server did not become ready:\n{log.read().decode()}")
                time.sleep(0.1)
            ready_mb = status_mb(server.pid, "VmRSS")

            def post(_: int) -> int:
                headers = {"Content-Type": "application/json"}
                return httpx.post(f"{url}/encode", content=body, headers=headers, timeout=300).status_code

            start = time.perf_counter()
            with ThreadPoolExecutor(concurrent) as pool:
                statuses = sorted(pool.map(post, range(concurrent)))
            seconds = time.perf_counter() - start
            return {
                "concurrent": concurrent,
                "statuses": statuses,
                "ready_rss_mb": round(ready_mb),
                "peak_rss_mb": round(status_mb(server.pid, "VmHWM")),
                "after_rss_mb": round(status_mb(server.pid, "VmRSS")),
                "seconds": round(seconds, 2),
            }
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--code-root", type=Path, default=REPO, help="checkout whose service/ is run")
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1, 12])
    args = parser.parse_args()
    body = worst_upload(args.side)
    print(f"upload: {len(body) / 2**20:.1f} MiB of JSON, 3 x {args.side} x {args.side} numbers; code: {args.code_root}")
    for n in args.concurrent:
        print(json.dumps(run_case(args.code_root.resolve(), args.model_dir.resolve(), body, n)), flush=True)


if __name__ == "__main__":
    main()
