"""The latency floor of serving one decode through uvicorn: a bare ASGI function that runs the model and the PNG
writer and nothing else, under the same uvicorn setup as the service (httptools, uvloop, no access log),
against the same call in a loop in process. The difference is what uvicorn, loopback and wrk add before any
of the service's own work.

    python bench/uvicorn_floor.py                  # about 1 minute; needs wrk (apt-get install -y wrk)
    python bench/uvicorn_floor.py --serve PORT     # (internal) the bare server itself
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.contract.images import to_pixels  # noqa: E402
from service.contract.manifest import DECODER_FILE, read_manifest  # noqa: E402
from service.imaging import png  # noqa: E402
from service.runtime import open_session  # noqa: E402
from service.settings import Settings  # noqa: E402

ARTIFACT = REPO / "models" / "dsprites_beta_tcvae"
LUA = """
wrk.method = "POST"
wrk.body = "{}"
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d\\n", summary.requests, latency:percentile(50)))
end
"""


def decode_png() -> Any:
    """The one call both sides make: a fixed latent through the decoder, then the PNG writer."""
    decoder = open_session(ARTIFACT / DECODER_FILE, Settings(model_dir=ARTIFACT.parent))
    z = np.random.default_rng(0).normal(size=(1, read_manifest(ARTIFACT).latent_dim)).astype(np.float32)
    return lambda: png(to_pixels(decoder.run(None, {"z": z})[0])[0])


def serve(port: int) -> None:
    import uvicorn

    call = decode_png()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        body = call()
        headers = [(b"content-type", b"image/png"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", loop="uvloop", log_level="warning",
                access_log=False, lifespan="off")  # fmt: skip


def in_process_p50_ms(seconds: float) -> float:
    call = decode_png()
    for _ in range(200):
        call()
    times = []
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        call()
        times.append(time.perf_counter() - now)
    return 1000 * statistics.median(times)


def wrk_p50_ms(url: str, seconds: float, script: Path) -> float:
    out = subprocess.run(["wrk", "-t1", "-c1", f"-d{round(seconds)}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    match = re.search(r"RESULT (\d+) (\d+)", out)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    return int(match.group(2)) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "post.lua"
            script.write_text(LUA)
            for _ in range(100):  # up to 10 s to start
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            wrk_p50_ms(url, 1, script)  # warm-up
            for _ in range(args.repeats):  # alternating, so both sides see the same machine
                served = wrk_p50_ms(url, args.seconds, script)
                local = in_process_p50_ms(args.seconds)
                rows.append({"uvicorn_p50_ms": served, "in_process_p50_ms": local, "added_ms": served - local})
    finally:
        server.terminate()
        server.wait()
    for row in rows:
        print(json.dumps({k: round(v, 3) for k, v in row.items()}))
    added = [r["added_ms"] for r in rows]
    print(f"uvicorn + loopback + wrk add {statistics.median(added):.3f} ms ({min(added):.3f}-{max(added):.3f}) "
          "to one decode at concurrency 1")  # fmt: skip


if __name__ == "__main__":
    main()
