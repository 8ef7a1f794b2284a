"""A bounded soak: many mixed requests over loopback, then errors, memory growth and open files.

    python bench/soak.py --model-dir models                       # 100,000 requests
    python bench/soak.py --model-dir models --requests 5000       # a quick one

Starts `disentangle-serve` (default settings) and sends --requests requests from --clients threads, each
with its own kept-alive connection, cycling through a mix: /decode (JSON, raw PNG, float32), /encode (base64
PNG, multipart upload, float array), /traverse, /synthesize, /models, /healthz, /readyz, /metrics, and bad
requests that must get their 4xx. An error is any other status or a transport error. After the warm-up
(--warmup requests) and at the end it reads the server's resident memory (VmRSS) and counts its open file
descriptors (/proc/PID/fd), with the same connections open both times. Goals of issue 14: 0 errors, RSS
growth after warm-up under 5%, file descriptors flat.
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]

Call = Callable[[httpx.Client], httpx.Response]


def png_bytes(size: int = 64) -> bytes:
    picture = Image.new("L", (size, size))
    ImageDraw.Draw(picture).ellipse((size // 5, size // 4, size // 2, size * 3 // 4), fill=255)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def mix(model: str, latent_dim: int, calibrated: bool) -> list[tuple[str, Call, int]]:
    """(name, request, expected status) for each kind of request in the soak."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1, latent_dim)).round(3).tolist()
    z8 = rng.normal(size=(8, latent_dim)).astype("<f4")
    png = png_bytes()
    image_b64 = base64.b64encode(png).decode()
    array = (np.asarray(Image.open(io.BytesIO(png)), dtype=np.float32) / 255).round(2).tolist()
    requests: list[tuple[str, Call, int]] = [
        ("decode-json", lambda c: c.post("/decode", json={"model": model, "latents": z}), 200),
        (
            "decode-png",
            lambda c: c.post("/decode", json={"model": model, "latents": z}, headers={"Accept": "image/png"}),
            200,
        ),
        (
            "decode-f32",
            lambda c: c.post(
                f"/decode?model={model}",
                content=z8.tobytes(),
                headers={
                    "Content-Type": "application/octet-stream",
                    "X-Shape": f"8,{latent_dim}",
                    "Accept": "application/octet-stream",
                },
            ),
            200,
        ),
        ("encode-b64", lambda c: c.post("/encode", json={"model": model, "images": [image_b64]}), 200),
        (
            "encode-multipart",
            lambda c: c.post("/encode", files=[("images", ("a.png", png, "image/png"))], data={"model": model}),
            200,
        ),
        ("encode-array", lambda c: c.post("/encode", json={"model": model, "images": [array]}), 200),
        ("traverse", lambda c: c.post("/traverse", json={"model": model, "steps": 5}), 200),
        ("models", lambda c: c.get("/models"), 200),
        ("healthz", lambda c: c.get("/healthz"), 200),
        ("readyz", lambda c: c.get("/readyz"), 200),
        ("metrics", lambda c: c.get("/metrics"), 200),
        ("bad-latent", lambda c: c.post("/decode", json={"model": model, "latents": [[0.0]]}), 422),
        ("bad-image", lambda c: c.post("/encode", json={"model": model, "images": [[[]]]}), 422),
        ("unknown-model", lambda c: c.post("/decode", json={"model": "nope", "latents": z}), 404),
    ]
    if calibrated:
        requests.append(("synthesize", lambda c: c.post("/synthesize", json={"model": model, "factors": {}}), 200))
    return requests


def server_status(pid: int) -> tuple[float, int]:
    """(VmRSS in MB, open file descriptors) of the server process."""
    rss = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
    return int(rss.split()[1]) / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=3600, help="stop early after this long")
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env["DISENTANGLE_LOG_LEVEL"] = "warning"
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(args.model_dir.resolve()), "--port", str(port)]
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                ready = httpx.get(f"{url}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("server did not become ready")
            time.sleep(0.1)
        model = ready.json()["default"]
        info = httpx.get(f"{url}/models/{model}").json()
        kinds = mix(model, info["latent_dim"], info.get("calibration") is not None)

        counter = itertools.count()
        lock = threading.Lock()
        statuses: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        checkpoints: dict[str, tuple[float, int]] = {}
        warm = threading.Event()
        stop_at = time.monotonic() + args.max_seconds
        clients = [httpx.Client(base_url=url, timeout=60) for _ in range(args.clients)]

        def work(client: httpx.Client) -> None:
            while time.monotonic() < stop_at:
                n = next(counter)
                if n >= args.requests:
                    return
                if n == args.warmup:
                    warm.set()
                name, call, expected = kinds[n % len(kinds)]
                try:
                    status = str(call(client).status_code)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                with lock:
                    statuses[f"{name} {status}"] += 1
                    if status != str(expected):
                        errors[f"{name} {status}"] += 1

        def watch() -> None:
            warm.wait()
            checkpoints["warm"] = server_status(server.pid)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(work, clients))
        seconds = time.perf_counter() - start
        checkpoints["end"] = server_status(server.pid)  # the same kept-alive connections are still open
        for client in clients:
            client.close()
        done = sum(statuses.values())
        warm_rss, warm_fds = checkpoints.get("warm", checkpoints["end"])
        end_rss, end_fds = checkpoints["end"]
        print(json.dumps({"by_kind": dict(sorted(statuses.items()))}))
        print(
            json.dumps(
                {
                    "requests": done,
                    "seconds": round(seconds, 1),
                    "per_s": round(done / seconds),
                    "errors": sum(errors.values()),
                    "error_kinds": dict(errors),
                    "rss_warm_mb": round(warm_rss, 1),
                    "rss_end_mb": round(end_rss, 1),
                    "rss_growth_pct": round(100 * (end_rss - warm_rss) / warm_rss, 2),
                    "fds_warm": warm_fds,
                    "fds_end": end_fds,
                }
            )
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
