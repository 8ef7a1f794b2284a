"""Requests built to hurt, against a fresh `disentangle-serve` on loopback: one table of what each probe got
and what it cost the server (issues 31 and 33).

    python bench/abuse.py --model-dir models                          # the full sizes of issue 31
    python bench/abuse.py --code-root OTHER_CHECKOUT                  # another version of the service
    python bench/abuse.py --scale 0.01 --tricklers 40 --sigterm-runs 1 --only nested,traverse   # a short pass

Every probe goes to 127.0.0.1 only, bounded in count and time. Per probe: the statuses answered, how many were
5xx, the worst /healthz latency seen meanwhile (a client asking every 20 ms on a connection of its own), the
peak resident memory over the server's idle RSS (VmHWM reset before the probe), and the server's CPU time.
Then the SIGTERM runs: a long request and 16 clients in flight, the time to exit, the exit status and what the
long request got. Goals (issue 31): 0 5xx; /healthz < 100 ms; < 200 MB over idle for a single refused request,
< 400 MB for 12 concurrent; < 0.5 s of server CPU for a refused request; trickling clients closed within 15 s
with 0 failures for the others; exit 0 within the deadline after SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only, whatever the arguments
MODELS = "dsprites_vae,dsprites_beta_vae"  # the default first; the second is the one corrupted (10 latents each)
CLK_TCK = os.sysconf("SC_CLK_TCK")
ORIGIN = "http://page.test"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    health_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def status(self, key: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start(code_root: Path, model_dir: Path, default: str, liveness: bool = False) -> Server:
    port = free_port()
    health_port = free_port() if liveness else None
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env |= {"DISENTANGLE_LOG_LEVEL": "error", "PYTHONPATH": str(code_root), "DISENTANGLE_CORS_ORIGINS": ORIGIN}
    env |= {"DISENTANGLE_DEFAULT_MODEL": default}
    if health_port is not None:  # a setting older versions do not know, so only when asked for
        env["DISENTANGLE_HEALTH_PORT"] = str(health_port)
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(model_dir), "--host", HOST, "--port", str(port)]
    process = subprocess.Popen(command, cwd=code_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://{HOST}:{port}/readyz", timeout=2).status_code == 200:
                return Server(process, port, health_port)
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("server did not become ready")
        time.sleep(0.1)


def _watch(url: str, worst: Synchronized[float], failed: Synchronized[int], first: EventType, stop: EventType) -> None:
    with httpx.Client(timeout=30) as http:
        while not stop.is_set():
            began = time.perf_counter()
            try:
                ok = http.get(url + "/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            worst.value = max(worst.value, time.perf_counter() - began)
            failed.value += not ok
            first.set()
            time.sleep(0.02)


class HealthWatch:
    """/healthz every 20 ms on a connection of its own while a probe runs; the worst latency seen. It runs in
    a process of its own, so the probe's clients never hold it up (they would, sharing its GIL)."""

    def __init__(self, url: str) -> None:
        self._worst = multiprocessing.Value("d", 0.0)
        self._failed = multiprocessing.Value("i", 0)
        self._first = multiprocessing.Event()
        self._stop = multiprocessing.Event()
        args = (url, self._worst, self._failed, self._first, self._stop)
        self._process = multiprocessing.Process(target=_watch, args=args, daemon=True)

    @property
    def worst(self) -> float:
        return float(self._worst.value)

    @property
    def failed(self) -> int:
        return int(self._failed.value)

    def __enter__(self) -> HealthWatch:
        self._process.start()
        self._first.wait(30)  # the probe starts once the watch has its connection
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._process.join()


@dataclass
class Row:
    probe: str
    statuses: Counter[str] = field(default_factory=Counter)
    healthz_ms: float = 0.0
    peak_mb: float = 0.0
    cpu_s: float = 0.0
    note: str = ""

    def line(self) -> str:
        answered = ", ".join(f"{n}x {s}" for s, n in sorted(self.statuses.items()))
        fives = sum(n for s, n in self.statuses.items() if s.startswith("5"))
        cells = [self.probe, answered, str(fives), f"{self.healthz_ms:.0f}", f"{self.peak_mb:.0f}", f"{self.cpu_s:.2f}"]
        return "| " + " | ".join([*cells, self.note]) + " |"


def raw(port: int, payload: bytes, wait_s: float = 120) -> str:
    """Send ``payload`` on a fresh connection; the status answered (or what happened instead)."""
    with socket.create_connection((HOST, port), timeout=wait_s) as sock:
        try:
            sock.sendall(payload)
        except OSError:
            pass
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and _complete(received):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    if not received:
        return "closed"
    status = received.split(b" ", 2)[1].decode()
    head, _, body = received.partition(b"\r\n\r\n")
    shaped = b"application/json" in head.lower() and b"x-content-type-options" in head.lower()
    try:
        shaped = shaped and "detail" in json.loads(body) if int(status) >= 400 else shaped
    except ValueError:
        shaped = False
    return status if shaped or int(status) < 400 else f"{status} (no error shape)"


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def head(path: str, length: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}", "Content-Type: application/json", f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path: str, body: bytes) -> bytes:
    return head(path, len(body)) + body


def measure(server: Server, probe: str, run: Callable[[], Counter[str]], note: str = "") -> Row:
    idle = server.status("VmRSS")
    server.reset_peak()
    cpu = server.cpu_s()
    with HealthWatch(server.url) as watch:
        statuses = run()
    peak = max(0, server.status("VmHWM") - idle) / 1e6
    row = Row(probe, statuses, watch.worst * 1000, peak, server.cpu_s() - cpu, note)
    if watch.failed:
        row.note += f" /healthz failed {watch.failed}x"
    return row


def nested(depth: int) -> bytes:
    return b'{"images": [' + b"[" * depth + b"0.5" + b"]" * depth + b"]}"


def report(row: Row) -> None:
    print(row.line(), flush=True)


def probes(args: argparse.Namespace, server: Server, model_dir: Path) -> None:
    s, port = args.scale, server.port
    n = lambda full: max(1, int(full * s))  # noqa: E731
    wanted = set(args.only.split(",")) if args.only else None

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    def one(path: str, body: bytes, label: str) -> None:
        """One request with ``body``, alone."""
        size = f"{len(body) / 1e6:.1f} MB" if len(body) >= 1e6 else f"{len(body) / 1e3:.0f} KB"
        report(measure(server, f"{label}, {size}", lambda: Counter([raw(port, post(path, body))])))

    if want("nested"):
        for size in (20_000, 60_000, 200_000):
            one("/encode", nested(n(size) // 2), "/encode nested arrays")
    if want("traverse"):
        # 45 characters a value, as issue 31's 13.6 MB body of 300,000 values
        values = b",".join([f"{0.1:.43f}".encode()] * n(300_000))
        one("/traverse", b'{"latent": [' + values + b"]}", f"/traverse {n(300_000)} values")
    if want("decode"):
        one("/decode", b'{"latents": [' + b",".join([b"[0]"] * n(4_000_000)) + b"]}", f"/decode {n(4_000_000)} latents")
    if want("encode"):
        body = b'{"images": [' + b",".join([b"[[0]]"] * n(2_000_000)) + b"]}"
        one("/encode", body, f"/encode {n(2_000_000)} tiny images")
        values = b"[" + b",".join([b"[0]"] * n(3_000_000)) + b"]"  # within /encode's budget, not an object
        one("/encode", values, f"/encode a list of {n(3_000_000)} lists")

        def twelve() -> Counter[str]:
            with ThreadPoolExecutor(12) as pool:
                return Counter(pool.map(lambda _: raw(port, post("/encode", body)), range(12)))

        report(measure(server, f"12 x {n(2_000_000)} tiny images at once", twelve))
    if want("headers"):
        big = f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {'a' * (1 << 20)}\r\n\r\n".encode()
        report(measure(server, "1 MiB header", lambda: Counter([raw(port, big)])))
        report(measure(server, f"{n(400)} slow connections with 1 MiB headers", lambda: slow_headers(port, n(400))))
    if want("refusals"):
        report(measure(server, "malformed requests, two Host headers, refused CORS", lambda: refusals(port)))
    if want("disconnects"):
        report(measure(server, f"{n(2000)} clients hanging up mid-body", lambda: hang_ups(server, n(2000))))
    if want("trickle"):
        report(trickle(server, args.tricklers))
    if want("crowd"):
        report(crowd(server, args.crowd))
    if want("folder"):
        other = model_dir / args.models.split(",")[1]
        report(measure(server, "a model folder corrupted, then deleted", lambda: bad_folder(server, other)))


def slow_headers(port: int, count: int) -> Counter[str]:
    """Connections that send a 1 MiB header 64 KiB at a time, all at once; what each gets."""
    chunk = b"a" * (64 << 10)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=60)
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Big: ".encode())
        sockets.append(sock)
    for _ in range(16):
        for sock in sockets:
            try:
                sock.sendall(chunk)
            except OSError:
                pass
    statuses: Counter[str] = Counter()
    for sock in sockets:
        try:
            answer = sock.recv(65536)
            statuses[answer.split(b" ", 2)[1].decode() if answer else "closed"] += 1
        except OSError:
            statuses["reset"] += 1
        sock.close()
    return statuses


def refusals(port: int) -> Counter[str]:
    bad = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello on the plain port
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nContent-Length: x\r\n\r\n",
        f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nHost: evil.test\r\n\r\n".encode(),
    ] * 8
    preflight = "OPTIONS /decode HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n"
    preflight += "Access-Control-Request-Method: {method}\r\n\r\n"
    bad += [preflight.format(host=HOST, origin="http://evil.test", method="POST").encode()] * 2
    bad += [preflight.format(host=HOST, origin=ORIGIN, method="DELETE").encode()] * 2
    return Counter(raw(port, payload, wait_s=10) for payload in bad)


def hang_ups(server: Server, count: int) -> Counter[str]:
    """Clients that send half a body and hang up; counted by what the server's metrics record for them."""
    before = _answers(server)
    for _ in range(count):
        with socket.create_connection((HOST, server.port)) as sock:
            sock.sendall(head("/decode", 1000) + b'{"latents": [[0.0,')
    time.sleep(1.0)
    after = _answers(server)
    return Counter({s: int(after[s] - before.get(s, 0)) for s in after if after[s] > before.get(s, 0)})


def _answers(server: Server) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in httpx.get(server.url + "/metrics", timeout=120).text.splitlines():
        if line.startswith("disentangle_requests_total{") and 'endpoint="/decode"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            counts[status] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def trickle(server: Server, count: int) -> Row:
    """``count`` clients send a small /decode body a byte a second; meanwhile one client sends whole requests."""
    body = json.dumps({"latents": [[0.0] * 10]}).encode()
    idle = server.status("VmRSS")
    server.reset_peak()
    cpu = server.cpu_s()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((HOST, server.port), timeout=60)
        sock.sendall(head("/decode", len(body)))
        sock.setblocking(False)
        sockets.append(sock)
    began = time.monotonic()
    closed: dict[int, float] = {}
    served: Counter[str] = Counter()
    with HealthWatch(server.url) as watch, httpx.Client(timeout=30) as http:
        k = 0
        while len(closed) < count and time.monotonic() - began < 60:
            for i, sock in enumerate(sockets):
                if i in closed:
                    continue
                try:
                    if sock.recv(65536) == b"":
                        closed[i] = time.monotonic() - began
                    else:
                        closed[i] = time.monotonic() - began  # answered (a 408), then closed
                except BlockingIOError:
                    if k < len(body):
                        try:
                            sock.send(body[k : k + 1])
                        except OSError:
                            closed[i] = time.monotonic() - began
                except OSError:
                    closed[i] = time.monotonic() - began
            k += 1
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:  # whole requests from another client during the second
                try:
                    served[str(http.post(server.url + "/decode", json={"latents": [[0.0] * 10]}).status_code)] += 1
                except httpx.HTTPError as error:
                    served[type(error).__name__] += 1
    for sock in sockets:
        sock.close()
    last = max(closed.values()) if closed else float("nan")
    note = f"tricklers closed: {len(closed)} of {count}, the last after {last:.1f} s; others answered: " + ", ".join(
        f"{n}x {s}" for s, n in sorted(served.items())
    )
    peak = (server.status("VmHWM") - idle) / 1e6
    return Row(f"{count} clients trickling 1 byte/s", served, watch.worst * 1000, peak, server.cpu_s() - cpu, note)


CROWD_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"latents": [[0,0,0,0,0,0,0,0,0,0]]}'
wrk.headers["Content-Type"] = "application/json"
"""
CROWD_PROBES = 15


def crowd(server: Server, connections: int) -> Row:
    """wrk keeps ``connections`` connections busy with /decode; once a second a new connection asks /healthz on
    the service's port (and on the liveness port, when there is one). The latencies of those new connections."""
    seconds = CROWD_PROBES + 5
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(CROWD_SCRIPT)
        script.flush()
        command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "-s", script.name]
        command += ["--timeout", "30s", f"{server.url}/decode"]
        wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(3)  # the connections open and the queue fills
        main: list[float] = []
        side: list[float] = []
        for _ in range(CROWD_PROBES):
            main.append(_new_connection_healthz(server.port))
            if server.health_port is not None:
                side.append(_new_connection_healthz(server.health_port))
            time.sleep(1)
        out, _ = wrk.communicate(timeout=seconds + 60)
    requests = next((line.split()[0] for line in out.splitlines() if "requests in" in line), "?")
    under = sum(t < 1.0 for t in main)
    note = f"new connection's /healthz: under 1 s in {under} of {len(main)}, worst {max(main):.1f} s"
    if side:
        note += f"; on the liveness port: under 1 s in {sum(t < 1.0 for t in side)} of {len(side)}, worst "
        note += f"{max(side):.2f} s"
    statuses = Counter({"wrk requests": int(requests) if requests.isdigit() else 0})
    return Row(f"{connections} connections (wrk) on /decode", statuses, max(main) * 1000, 0.0, 0.0, note)


def _new_connection_healthz(port: int) -> float:
    began = time.perf_counter()
    try:
        httpx.get(f"http://{HOST}:{port}/healthz", timeout=60)
    except httpx.HTTPError:
        return float("inf")
    return time.perf_counter() - began


def bad_folder(server: Server, folder: Path) -> Counter[str]:
    """One model's files truncated, then its folder deleted, while a client decodes with the default model."""
    statuses: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                statuses[str(http.post(server.url + "/decode", json={"latents": [[0.0] * 10]}).status_code)] += 1

    thread = threading.Thread(target=load)
    thread.start()
    encoder = folder / "encoder.onnx"
    encoder.write_bytes(encoder.read_bytes()[:100])
    time.sleep(0.5)
    statuses[f"/readyz {httpx.get(server.url + '/readyz').status_code} (truncated)"] += 1
    shutil.rmtree(folder)
    time.sleep(0.5)
    statuses[f"/readyz {httpx.get(server.url + '/readyz').status_code} (deleted)"] += 1
    stop.set()
    thread.join()
    return statuses


def sigterm(code_root: Path, model_dir: Path, default: str) -> str:
    """SIGTERM with 16 clients in flight and one long request; time to exit, status, the long one's answer."""
    server = start(code_root, model_dir, default)
    stop = threading.Event()
    long_answer: list[str] = []

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                try:
                    http.post(server.url + "/decode", json={"latents": [[0.0] * 10] * 64})
                except httpx.HTTPError:
                    return

    def long_request() -> None:
        # A body that keeps coming, slowly but above any minimum rate: the request runs past the deadline.
        body = json.dumps({"latents": [[0.0] * 10]}).encode() + b" " * 200_000
        with socket.create_connection((HOST, server.port), timeout=60) as sock:
            try:
                sock.sendall(head("/decode", len(body)))
                for k in range(0, len(body), 2000):
                    sock.sendall(body[k : k + 2000])
                    time.sleep(0.1)
            except OSError:  # cut while sending: the answer came before the close
                pass
            try:
                answer = sock.recv(65536)
            except OSError as error:
                long_answer.append(type(error).__name__)
                return
        long_answer.append(answer.split(b" ", 2)[1].decode() if answer else "closed")

    threads = [threading.Thread(target=client) for _ in range(16)] + [threading.Thread(target=long_request)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        code: int | str = server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        code = "still running after 60 s"
    took = time.monotonic() - sent
    stop.set()
    for thread in threads:
        thread.join()
    return f"exit {code} after {took:.1f} s; the long request got {long_answer[0] if long_answer else '?'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models", help="holds the --models folders")
    parser.add_argument("--models", default=MODELS, help="two model folders with 10 latents: the default, another")
    parser.add_argument("--code-root", type=Path, default=REPO, help="the checkout whose service runs")
    parser.add_argument("--scale", type=float, default=1.0, help="sizes relative to the issue's probes")
    parser.add_argument("--tricklers", type=int, default=1300)
    parser.add_argument("--sigterm-runs", type=int, default=10)
    parser.add_argument("--crowd", type=int, default=2048, help="connections wrk keeps busy in the crowd probe")
    parser.add_argument("--liveness", action="store_true", help="serve liveness on a port of its own (HEALTH_PORT)")
    parser.add_argument("--only", default="", help="comma-separated probes: nested,traverse,decode,encode,"
                        "headers,refusals,disconnects,trickle,crowd,folder,sigterm")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="abuse-") as scratch:
        model_dir = Path(scratch) / "models"
        names = args.models.split(",")
        for name in names:
            shutil.copytree(args.model_dir / name, model_dir / name)
        server = start(args.code_root, model_dir, names[0], args.liveness)
        print("| probe | answered | 5xx | /healthz worst, ms | peak RSS over idle, MB | server CPU, s | note |")
        print("| --- | --- | ---: | ---: | ---: | ---: | --- |", flush=True)
        try:
            probes(args, server, model_dir)
        finally:
            server.process.terminate()
            server.process.wait(timeout=60)
        if not args.only or "sigterm" in args.only.split(","):
            for name in names:  # the folder probe deleted one
                if not (model_dir / name).exists():
                    shutil.copytree(args.model_dir / name, model_dir / name)
            print()
            for k in range(1, args.sigterm_runs + 1):
                print(f"SIGTERM run {k}: {sigterm(args.code_root, model_dir, names[0])}", flush=True)


if __name__ == "__main__":
    main()
