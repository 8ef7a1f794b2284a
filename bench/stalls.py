"""Stalled clients against the default deadlines: how long until their connections close, and how long a
SIGTERM takes to end the process while such clients hang on.

    python bench/stalls.py --model-dir models
    python bench/stalls.py --code-root OTHER_CHECKOUT --wait 45      # another version, waiting at most 45 s

Opens --connections connections to a fresh `disentangle-serve` on loopback, half of them stopping in the
middle of their headers and half in the middle of a JSON body, and times when the server closes each (a
connection still open after --wait seconds counts as never closed). Then, with the same stalled clients
on a fresh server, sends SIGTERM and times the exit and its status. Goals of issue 14: every stalled
connection closed within 10 s; exit 0 within 10 s of SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
HEADERS = b"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
BODY = b"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"


def start(code_root: Path, model_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env |= {"DISENTANGLE_LOG_LEVEL": "warning", "PYTHONPATH": str(code_root)}
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(model_dir), "--port", str(port)]
    server = subprocess.Popen(command, cwd=code_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return server, port
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("server did not become ready")
        time.sleep(0.1)


def stall(port: int, n: int) -> list[socket.socket]:
    sockets = []
    for k in range(n):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(HEADERS if k % 2 == 0 else BODY)
        sockets.append(sock)
    return sockets


def close_times(sockets: list[socket.socket], since: float, wait_s: float) -> list[float | None]:
    """Seconds from ``since`` until the server closed each socket (None: still open after ``wait_s``)."""
    closed: dict[socket.socket, float] = {}
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    while len(closed) < len(sockets) and time.monotonic() - since < wait_s:
        for key, _ in selector.select(timeout=0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                closed[sock] = time.monotonic() - since
                selector.unregister(sock)
    return [closed.get(sock) for sock in sockets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--code-root", type=Path, default=REPO, help="checkout whose service/ is run")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--wait", type=float, default=45.0)
    args = parser.parse_args()
    code_root, model_dir = args.code_root.resolve(), args.model_dir.resolve()

    server, port = start(code_root, model_dir)
    try:
        begun = time.monotonic()
        sockets = stall(port, args.connections)
        times = close_times(sockets, begun, args.wait)
        done = [t for t in times if t is not None]
        print(
            json.dumps(
                {
                    "stalled": len(sockets),
                    "closed": len(done),
                    "still_open_after_s": args.wait if len(done) < len(sockets) else None,
                    "median_close_s": round(statistics.median(done), 2) if done else None,
                    "max_close_s": round(max(done), 2) if done else None,
                }
            ),
            flush=True,
        )
        for sock in sockets:
            sock.close()
    finally:
        server.kill()
        server.wait()

    server, port = start(code_root, model_dir)
    sockets = stall(port, args.connections)
    begun = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        status: int | None = server.wait(timeout=args.wait)
    except subprocess.TimeoutExpired:
        status = None
        server.kill()
        server.wait()
    print(
        json.dumps(
            {
                "sigterm_with_stalled": len(sockets),
                "exit_status": status,
                "exit_s": round(time.monotonic() - begun, 2) if status is not None else f"> {args.wait}",
            }
        ),
        flush=True,
    )
    for sock in sockets:
        sock.close()


if __name__ == "__main__":
    main()
