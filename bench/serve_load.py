"""Load benchmark of the HTTP service against the in-process ceiling and a plain FastAPI peer, in one window.

    python bench/serve_load.py                 # about 8 minutes; needs wrk (apt-get install -y wrk)
    python bench/serve_load.py --quick         # about 2 minutes: 3 s cases, one repeat

Three things answer the same requests, one after another within each repeat:
  ceiling  the same onnxruntime call plus the same PNG codec in a loop, no HTTP, in as many parallel processes
           as the server may use cores (at most the concurrency: one request at a time needs one core);
  service  `disentangle-serve` at its default settings (log level info, access log on), --workers set to
           the cores it may use, as the container does;
  peer     bench/serve_peer.py: plain FastAPI + onnxruntime at uvicorn's defaults, same decoder.onnx.
wrk (one thread) drives the servers over loopback: a warm-up, then --seconds of measurement per case, split
into --slices turns in which the ceiling, the service and the peer run one after another (so a change in the
machine's other load, which on a shared machine comes and goes within minutes, falls on all three alike).
wrk runs on a CPU of its own (the last of this process's), and the server and the ceiling get the others: on
the server's cores wrk would take part of the capacity the ceiling has in full, and the ratio would charge
wrk's work to the server. On a 2-core machine the server thus gets one core (--client-cpus 0: wrk shares both
with it). The whole round repeats --repeats times; each ratio is computed
within a repeat (same window) and reported as the median and range over the repeats.

Before the rounds it starts the service --repeats times, measuring each start (process start to the first 200
from /readyz) and keeping the last one for the rounds; after them it measures the memory of each of its
processes with every bundled model loaded: resident, and proportional (shared pages divided among the
processes that share them).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contract.calibration import latent_for  # noqa: E402
from contract.grid import tile  # noqa: E402
from contract.images import to_pixels  # noqa: E402
from contract.manifest import DECODER_FILE, ENCODER_FILE, read_manifest  # noqa: E402
from service.cpus import available_cpus  # noqa: E402
from service.imaging import ImageReader, png, pngs  # noqa: E402
from service.runtime import open_session  # noqa: E402
from service.settings import Settings  # noqa: E402

DEFAULT_MODEL = "dsprites_beta_tcvae"
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"
TRAVERSE_DIMS, TRAVERSE_STEPS = 4, 9

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
class Case:
    name: str
    path: str
    body: bytes
    headers: dict[str, str]
    concurrency: int
    items: int  # images per request


@dataclass
class Sample:
    per_second: float
    p50_ms: float
    p99_ms: float = float("nan")
    failures: int = 0
    cpu_ms: float = float("nan")  # CPU time (all threads, all processes) per request: robust to other load


@dataclass
class Results:
    ceiling: dict[str, list[Sample]] = field(default_factory=dict)
    service: dict[str, list[Sample]] = field(default_factory=dict)
    peer: dict[str, list[Sample]] = field(default_factory=dict)


# --- the requests ------------------------------------------------------------------------------------------


def _one_png(artifact: Path) -> bytes:
    decoder = open_session(artifact / DECODER_FILE, Settings(model_dir=artifact.parent))
    z = np.random.default_rng(0).normal(size=(1, read_manifest(artifact).latent_dim)).astype(np.float32)
    return png(to_pixels(decoder.run(None, {"z": z})[0])[0])


def _multipart(picture: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return head + picture + f"\r\n--{BOUNDARY}--\r\n".encode()


def _factors(artifact: Path) -> dict[str, float | str]:
    calibration = read_manifest(artifact).calibration
    assert calibration is not None, f"{artifact.name} has no factor calibration for /synthesize"
    return {f.name: f.values[len(f.values) // 2] for f in calibration.factors}


def cases(artifact: Path) -> list[Case]:
    d = read_manifest(artifact).latent_dim
    rng = np.random.default_rng(0)
    one = json.dumps({"latents": rng.normal(size=(1, d)).round(4).tolist()}).encode()
    many = json.dumps({"latents": rng.normal(size=(64, d)).round(4).tolist()}).encode()
    as_json = {"Content-Type": "application/json"}
    png_back = as_json | {"Accept": "image/png"}
    synth = json.dumps({"factors": _factors(artifact)}).encode()
    trav = json.dumps({"dims": list(range(TRAVERSE_DIMS)), "steps": TRAVERSE_STEPS, "range": [-2.0, 2.0]}).encode()
    form = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return [
        Case("decode 1 latent, c=64", "/decode", one, png_back, 64, 1),
        Case("decode 1 latent, c=1", "/decode", one, png_back, 1, 1),
        Case("encode 1 PNG multipart, c=64", "/encode", _multipart(_one_png(artifact)), form, 64, 1),
        Case("synthesize, c=1", "/synthesize", synth, png_back, 1, 1),
        Case("decode 64 latents, c=1", "/decode", many, as_json, 1, 64),
        Case(f"traverse {TRAVERSE_DIMS}x{TRAVERSE_STEPS} grid, c=1", "/traverse", trav, as_json, 1, 36),
    ]


# --- the ceiling: the model and the codec in a loop, in parallel processes ---------------------------------


def ceiling_calls(artifact: Path) -> dict[str, Callable[[], object]]:
    """Per case, one in-process call doing what the service does for one request, minus HTTP."""
    manifest = read_manifest(artifact)
    settings = Settings(model_dir=artifact.parent)  # the service's session options (one intra-op thread)
    decoder = open_session(artifact / DECODER_FILE, settings)
    encoder = open_session(artifact / ENCODER_FILE, settings)
    d = manifest.latent_dim
    rng = np.random.default_rng(0)
    one = rng.normal(size=(1, d)).astype(np.float32)
    many = rng.normal(size=(64, d)).astype(np.float32)
    picture = _one_png(artifact)

    def read(data: bytes) -> np.ndarray:  # a reader per request, as the service makes (it counts pixels)
        reader = ImageReader(manifest.image_shape, settings.max_image_side, False)
        return reader.from_bytes(data, "images[0]")[None]

    assert manifest.calibration is not None
    calibration, factors = manifest.calibration, _factors(artifact)
    grid = np.zeros((TRAVERSE_DIMS, TRAVERSE_STEPS, d), dtype=np.float32)
    for r in range(TRAVERSE_DIMS):
        grid[r, :, r] = np.linspace(-2.0, 2.0, TRAVERSE_STEPS)

    def decode_png(z: np.ndarray) -> bytes:
        return png(to_pixels(decoder.run(None, {"z": z})[0])[0])

    def traverse() -> bytes:
        images = decoder.run(None, {"z": grid.reshape(-1, d)})[0]
        return png(tile(images.reshape(TRAVERSE_DIMS, TRAVERSE_STEPS, *images.shape[1:])))

    single = lambda: decode_png(one)  # noqa: E731
    return {
        "/decode 1": single,
        "/encode": lambda: encoder.run(None, {"image": read(picture)}),
        "/synthesize": lambda: decode_png(latent_for(calibration, factors)[None]),
        "/decode 64": lambda: pngs(decoder.run(None, {"z": many})[0]),
        "/traverse": traverse,
    }


def call_key(case: Case) -> str:
    return f"{case.path} {case.items}" if case.path == "/decode" else case.path


def _ceiling_process(artifact: Path, conn: Connection) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    calls = ceiling_calls(artifact)
    for call in calls.values():
        for _ in range(20):
            call()
    conn.send("ready")
    while (order := conn.recv()) is not None:
        key, start_at, seconds = order
        call = calls[key]
        time.sleep(max(start_at - time.monotonic(), 0))
        times = []
        end = start_at + seconds
        cpu = time.process_time()
        while (now := time.perf_counter()) < end:
            call()
            times.append(time.perf_counter() - now)
        conn.send((len(times) / seconds, float(np.median(times)), (time.process_time() - cpu) / len(times)))


class Ceiling:
    """Long-lived loop processes (monotonic clocks are shared on Linux, so they start together)."""

    def __init__(self, artifact: Path, processes: int) -> None:
        context = mp.get_context("spawn")
        self.conns = []
        self.procs = []
        for _ in range(processes):
            parent, child = context.Pipe()
            proc = context.Process(target=_ceiling_process, args=(artifact, child), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            assert conn.recv() == "ready"

    def measure(self, key: str, parallel: int, seconds: float) -> Sample:
        start_at = time.monotonic() + 0.2
        used = self.conns[:parallel]
        for conn in used:
            conn.send((key, start_at, seconds))
        answers = [conn.recv() for conn in used]
        return Sample(
            per_second=sum(rate for rate, _, _ in answers),
            p50_ms=1000 * statistics.median(t for _, t, _ in answers),
            cpu_ms=1000 * statistics.mean(c for _, _, c in answers),
        )

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=10)


# --- the servers --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path, probe: str, cpus: set[int]
) -> Iterator[tuple[str, float, int]]:
    """Start a server on ``cpus``; yield (url, seconds from start to the first 200 at ``probe``, pid)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=out,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + probe, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} did not start; its log: {log}\n{log.read_text()[-3000:]}")
            time.sleep(0.01)
        yield url, time.perf_counter() - start, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def service_command(model_dir: Path, workers: int) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env["DISENTANGLE_DEFAULT_MODEL"] = DEFAULT_MODEL
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(model_dir)]
    return command + (["--workers", str(workers)] if workers != 1 else []), env


def server_rss_mb(pid: int) -> dict[str, list[str]]:
    """Memory (MB) of the server's processes, the one started and, with workers, each worker: resident (RSS)
    and proportional (PSS, which divides each page shared between processes, as the forked workers share the
    supervisor's imported code, among them). multiprocessing's resource tracker, a few MB, is left out."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    workers = [int(p) for p in children.read_text().split()] if children.is_file() else []
    workers = [p for p in workers if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]

    def memory(p: int) -> str:
        fields = {}
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()[1:]:
            name, value = line.split(":", 1)
            fields[name] = int(value.split()[0]) / 1024
        return f"{fields['Rss']:.0f} (PSS {fields['Pss']:.0f})"

    return {"supervisor" if workers else "server": [memory(pid)], "workers": [memory(p) for p in workers]}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its child processes (uvicorn's workers), all threads."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    total = 0.0
    for p in [pid, *(int(c) for c in children.read_text().split())]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def split_cpus(client: int) -> tuple[set[int], set[int]]:
    """This process's CPUs split into the server's and the load generator's (the last ``client`` of them).

    A load generator on the server's cores takes part of the capacity the ceiling is given in full, so the
    ratio would charge wrk's work to the server; on its own cores it charges nothing. ``client`` 0 shares them.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not 0 <= client < len(cpus):
        raise ValueError(f"--client-cpus must be between 0 and {len(cpus) - 1} here ({len(cpus)} CPUs), got {client}")
    if client == 0:
        return set(cpus), set(cpus)
    return set(cpus[:-client]), set(cpus[-client:])


def _cpu_list(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def wrk(url: str, case: Case, seconds: float, workdir: Path, cpus: set[int], pid: int | None = None) -> Sample:
    slug = re.sub(r"\W+", "-", case.name)
    body = workdir / f"{slug}.body"
    body.write_bytes(case.body)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in case.headers.items())
    script = workdir / f"{slug}.lua"
    script.write_text(WRK_SCRIPT.format(body=body, headers=headers))
    # One wrk thread drives thousands of requests a second on a fraction of a core, leaving the rest to the server.
    command = ["wrk", "-t1", f"-c{case.concurrency}", f"-d{max(round(seconds), 1)}s", "--timeout", "10s"]
    cpu = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        [*command, "-s", str(script), url + case.path],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),  # before exec, so wrk's threads inherit it
    )
    cpu = cpu_seconds(pid) - cpu if pid else float("nan")
    match = re.search(r"RESULT (\{.*\})", out.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    r: dict[str, Any] = json.loads(match.group(1))
    return Sample(
        per_second=r["requests"] / r["seconds"],
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        failures=r["bad_status"] + r["socket_errors"],
        cpu_ms=1000 * cpu / max(r["requests"], 1),
    )


def merged(slices: list[Sample]) -> Sample:
    """One figure from equally long slices: mean rate, median p50 and p99, failures summed, CPU per request
    weighted by the requests of each slice."""
    requests = [x.per_second for x in slices]  # proportional to each slice's requests: the slices are equal
    return Sample(
        per_second=statistics.mean(requests),
        p50_ms=statistics.median(x.p50_ms for x in slices),
        p99_ms=statistics.median(x.p99_ms for x in slices),
        failures=sum(x.failures for x in slices),
        cpu_ms=sum(x.cpu_ms * n for x, n in zip(slices, requests, strict=True)) / sum(requests),
    )


def check_answers(service: str, peer: str, grid: list[Case]) -> None:
    """Both servers answer each case with a 200 before anything is timed (and the same PNG where it is one)."""
    urls = (service, peer)
    for case in grid:
        answers = [
            httpx.post(url + case.path, content=case.body, headers=case.headers, timeout=30) for url in (service, peer)
        ]
        for url, answer in zip(urls, answers, strict=True):
            if answer.status_code != 200:
                raise RuntimeError(f"{url}{case.path} answered {answer.status_code}: {answer.text[:300]}")
        if answers[0].headers["content-type"] == "image/png" and answers[0].content != answers[1].content:
            raise RuntimeError(f"{case.name}: the service and the peer drew different PNGs")


# --- the report ---------------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def report(grid: list[Case], results: Results, cores: int, header: list[str]) -> str:
    lines = [
        *header,
        "",
        "| case | ceiling basis | ceiling /s | service /s | peer /s | service / ceiling | service / peer "
        "| service p50 / p99 ms | ceiling p50 ms | failures |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in grid:
        c, s, p = results.ceiling[case.name], results.service[case.name], results.peer[case.name]
        per = " images/s" if case.items > 1 else ""
        share = [si.per_second / ci.per_second for si, ci in zip(s, c, strict=True)]
        versus = [si.per_second / pi.per_second for si, pi in zip(s, p, strict=True)]
        parallel = min(cores, case.concurrency)
        lines.append(
            f"| {case.name} | {parallel} loop{'s' if parallel > 1 else ''} "
            f"| {spread([x.per_second * case.items for x in c])}{per} "
            f"| {spread([x.per_second * case.items for x in s])}{per} "
            f"| {spread([x.per_second * case.items for x in p])}{per} "
            f"| {spread(share, '{:.2f}')} | {spread(versus, '{:.2f}')} "
            f"| {spread([x.p50_ms for x in s], '{:.2f}')} / {spread([x.p99_ms for x in s], '{:.2f}')} "
            f"| {spread([x.p50_ms for x in c], '{:.3f}')} | {sum(x.failures for x in s + p)} |"
        )
    lines += [
        "",
        "CPU time per request (all threads and processes; unlike rates it barely moves with other load on the "
        "machine). ceiling / service is the share of the ceiling the service would reach with its cores to itself.",
        "",
        "| case | ceiling CPU ms | service CPU ms | peer CPU ms | ceiling / service | peer / service |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case in grid:
        c, s, p = results.ceiling[case.name], results.service[case.name], results.peer[case.name]
        efficiency = [ci.cpu_ms / si.cpu_ms for si, ci in zip(s, c, strict=True)]
        versus = [pi.cpu_ms / si.cpu_ms for si, pi in zip(s, p, strict=True)]
        lines.append(
            f"| {case.name} | {spread([x.cpu_ms for x in c], '{:.3f}')} | {spread([x.cpu_ms for x in s], '{:.3f}')} "
            f"| {spread([x.cpu_ms for x in p], '{:.3f}')} | {spread(efficiency, '{:.2f}')} "
            f"| {spread(versus, '{:.2f}')} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured per case and server (default 8)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured load before each case")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, help="service processes; default: the cores it may use")
    parser.add_argument(
        "--client-cpus",
        type=int,
        help="CPUs kept for wrk alone, the last of this process's; the server and the ceiling get the rest "
        "(default 1 where there are 2 or more; 0: wrk shares the server's CPUs)",
    )
    parser.add_argument(
        "--slices",
        type=int,
        default=4,
        help="each case's --seconds split into this many turns of ceiling, service and peer (default 4; "
        "at most one per whole second)",
    )
    parser.add_argument("--only", nargs="*", help="case names starting with these, e.g. 'decode 1'")
    parser.add_argument("--quick", action="store_true", help="3 s cases, 1 s warm-up, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.repeats, args.slices = 3.0, 1.0, 1, 1
    slices = max(1, min(args.slices, int(args.seconds)))
    slice_s = float(max(1, round(args.seconds / slices)))  # wrk measures whole seconds
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install -y wrk")
    artifact = args.model_dir / DEFAULT_MODEL
    if not (artifact / "manifest.json").is_file():
        parser.error(f"no {DEFAULT_MODEL} artifact in {args.model_dir}")
    client_cpus = args.client_cpus if args.client_cpus is not None else int(len(os.sched_getaffinity(0)) >= 2)
    try:
        server_cpus, wrk_cpus = split_cpus(client_cpus)
    except ValueError as error:
        parser.error(str(error))
    # Counted as the service will count them, under the affinity it will be started with.
    os.sched_setaffinity(0, server_cpus)
    cores = available_cpus()
    workers = args.workers or cores
    grid = [c for c in cases(artifact) if not args.only or any(c.name.startswith(o) for o in args.only)]
    load_before = os.getloadavg()[0]
    results = Results()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ceiling = Ceiling(artifact, min(cores, max(c.concurrency for c in grid)))  # spawned: server_cpus
        # From here on this process (polling for readiness, checking answers) keeps off the server's cores.
        os.sched_setaffinity(0, wrk_cpus)
        command, env = service_command(args.model_dir, workers)
        peer_command = [sys.executable, str(REPO / "bench" / "serve_peer.py"), "--artifact", str(artifact)]
        # Every start but the last is stopped at once: the start is a case like the others, repeated.
        starts = []
        for _ in range(args.repeats - 1):
            with process(command, env, workdir / "service.log", "/readyz", server_cpus) as (_, ready_s, _):
                starts.append(ready_s)
        try:
            with (
                process(command, env, workdir / "service.log", "/readyz", server_cpus) as (service, ready_s, pid),
                process(peer_command, env, workdir / "peer.log", "/docs", server_cpus) as (peer, _, peer_pid),
            ):
                starts.append(ready_s)
                check_answers(service, peer, grid)
                servers = ((service, pid, results.service), (peer, peer_pid, results.peer))
                for repeat in range(args.repeats):
                    for case in grid:
                        parallel = min(cores, case.concurrency)
                        for url, _, _ in servers:
                            wrk(url, case, args.warmup, workdir, wrk_cpus)
                        # The three take turns slice by slice, so that a change in the machine's other load
                        # falls on all of them rather than on whichever ran during it.
                        ceiling_slices: list[Sample] = []
                        server_slices: list[list[Sample]] = [[] for _ in servers]
                        for _ in range(slices):
                            ceiling_slices.append(ceiling.measure(call_key(case), parallel, slice_s))
                            for (url, server_pid, _), taken in zip(servers, server_slices, strict=True):
                                taken.append(wrk(url, case, slice_s, workdir, wrk_cpus, server_pid))
                        results.ceiling.setdefault(case.name, []).append(merged(ceiling_slices))
                        for (_, _, into), taken in zip(servers, server_slices, strict=True):
                            into.setdefault(case.name, []).append(merged(taken))
                    print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
                rss = server_rss_mb(pid)  # after the load, with every worker up and warm
        finally:
            ceiling.close()
    models = len([p for p in args.model_dir.iterdir() if (p / "manifest.json").is_file()])
    processes = "; ".join(f"{role} {', '.join(sizes)}" for role, sizes in rss.items() if sizes)
    header = [
        f"`python bench/serve_load.py{' --quick' if args.quick else ''}"
        f"{f' --client-cpus {client_cpus}' if args.client_cpus is not None else ''}`: "
        f"{cores} core{'s' if cores > 1 else ''} the server may use (CPUs {_cpu_list(server_cpus)}), "
        + (
            f"wrk on CPU{'s' if client_cpus > 1 else ''} {_cpu_list(wrk_cpus)} of its own"
            if client_cpus
            else "wrk on the same CPUs"
        )
        + f" (load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
        "the machine is shared, so compare ratios, which come from one window).",
        f"Ceiling: the model call plus the PNG codec in a loop, in min(cores, concurrency) parallel processes. "
        f"Service: disentangle-serve at default settings (log level info, access log on), --workers {workers}, "
        f"all {models} bundled models loaded, default {DEFAULT_MODEL}. Peer: plain FastAPI + onnxruntime "
        "(bench/serve_peer.py), one uvicorn process at its defaults.",
        f"Each figure: {slices * slice_s:g} s"
        + (f" in {slices} slices of {slice_s:g} s, the three taking turns," if slices > 1 else "")
        + f" after a {args.warmup:g} s warm-up, "
        + (f"median (range) of {args.repeats} repeats." if args.repeats > 1 else "one run."),
        f"Service start to ready (process start to the first 200 from /readyz), s: {spread(starts, '{:.2f}')}"
        + (f" over {len(starts)} starts" if len(starts) > 1 else "")
        + f"; memory per process after the rounds, MB resident (proportional): {processes}.",
    ]
    print(report(grid, results, cores, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
