"""Requests built to hurt, each through a real `disentangle-serve` with reduced sizes (bench/abuse.py runs the
full ones and measures memory and CPU): bodies over their route's budget refused before they are read,
nesting and element counts refused while parsing, clients trickling their body cut off while the others are
served, and the event loop answering /healthz throughout."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from service_harness import REPO, copy_artifact, serve

LATENT_BUDGET = 64 << 10  # the reduced body budget of /decode, /traverse and /synthesize here
GRACE_S = 1.0
MIN_RATE = 200.0  # bytes/s
TOTAL_S = 6.0
TRICKLERS = 40
WAIT_S = 30.0  # how long a test waits for an answer: far beyond every deadline here
ZERO = [0.0] * 10


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service-abuse") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    settings = {
        "max_latent_body_bytes": LATENT_BUDGET,
        "body_grace_s": GRACE_S,
        "body_min_rate": MIN_RATE,
        "body_total_s": TOTAL_S,
        "body_timeout_s": 3,
        # A gate that 40 trickling clients would fill if they held places while they trickle.
        "admission_limit": 4,
        "admission_backlog": 8,
    }
    with serve(root, **settings) as base:
        yield base


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=WAIT_S)


def head(path: str, length: int | None, content_type: str = "application/json") -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n".encode()


def answer_of(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """Status, headers and JSON body of the one answer on ``sock``, read until the server closes it."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    top, _, body = received.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_a_body_over_its_routes_budget_is_a_413_before_it_is_sent(url: str) -> None:
    for path in ("/decode", "/traverse", "/synthesize"):
        with connect(url) as sock:
            sock.sendall(head(path, 15_300_000))  # the headers only: the answer comes without the body
            status, headers, error = answer_of(sock)
        assert status == 413 and error["field"] == "body", error
        assert error["expected"] == f"at most {LATENT_BUDGET} bytes" and headers["connection"] == "close"
    # Image uploads keep the larger MAX_BODY_BYTES.
    with connect(url) as sock:
        sock.sendall(head("/encode", 17 << 20))
        assert answer_of(sock)[2]["expected"] == f"at most {16 << 20} bytes"


def test_a_chunked_body_is_counted_and_cut_at_the_budget(url: str) -> None:
    chunk = b"[" * 8192
    with connect(url) as sock:
        sock.sendall(head("/decode", None))
        try:
            for _ in range(LATENT_BUDGET // len(chunk) + 4):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, error = answer_of(sock)
    assert status == 413 and error["received"] == f"more than {LATENT_BUDGET}", error


def test_nesting_past_the_allowed_depth_is_a_422_at_the_first_level_too_deep(url: str) -> None:
    for depth in (4, 10_000):
        body = '{"images": [' + "[" * depth + "0.5" + "]" * depth + "]}"
        answer = httpx.post(f"{url}/encode", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 422 and answer.json()["field"] == "images[0][0][0][0]", answer.text
    for path, key in (("/decode", "latents"), ("/traverse", "latent")):
        body = '{"' + key + '": ' + "[" * 20_000 + "]" * 20_000 + "}"
        answer = httpx.post(url + path, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 422 and "recursion limit" in answer.json()["detail"], answer.text


def test_element_counts_are_refused_before_the_elements_are_built(url: str) -> None:
    many_images = '{"images": [' + ",".join(['"a"'] * 20_000) + "]}"
    answer = httpx.post(f"{url}/encode", content=many_images, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["expected"] == "at most 256 items per request"
    # Within /encode's budget, not an object (so service/arraytext.py does not split it), and more values than
    # any valid request holds: refused before the JSON parser builds them.
    values = ("[" + ",".join(["[0]"] * 300_000) + "]").encode()
    answer = httpx.post(f"{url}/encode", content=values, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "JSON of at most 262144 values" in answer.json()["detail"], answer.text


def test_clients_trickling_their_body_are_cut_and_the_others_served(url: str) -> None:
    body = json.dumps({"latents": [ZERO]}).encode()
    health: list[int] = []
    with ExitStack() as stack:
        tricklers = [stack.enter_context(connect(url)) for _ in range(TRICKLERS)]
        for sock in tricklers:
            sock.sendall(head("/decode", len(body)))
        stop = threading.Event()

        def trickle() -> None:
            for k in range(len(body)):  # a byte each 0.1 s: 10 bytes/s, far below MIN_RATE
                if stop.is_set():
                    return
                for sock in tricklers:
                    try:
                        sock.sendall(body[k : k + 1])
                    except OSError:
                        pass
                time.sleep(0.1)

        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            # With 40 trickling clients and a gate of 4 places and 8 waiting, whole requests still get through.
            served = [httpx.post(f"{url}/decode", json={"latents": [ZERO]}, timeout=WAIT_S) for _ in range(20)]
            health = [httpx.get(f"{url}/healthz", timeout=WAIT_S).status_code for _ in range(5)]
            answers = [answer_of(sock) for sock in tricklers]
        finally:
            stop.set()
            sender.join()
    assert [a.status_code for a in served] == [200] * 20
    assert health == [200] * 5
    for status, headers, error in answers:
        assert status == 408 and headers["connection"] == "close", error
        assert f"a body sent at {MIN_RATE:g} bytes/s or faster" in str(error["expected"]), error


def test_a_body_that_keeps_coming_but_never_ends_is_cut_at_the_total_deadline(url: str) -> None:
    with connect(url) as sock:
        sock.sendall(head("/decode", 60_000) + b'{"latents": [[' + b" " * 2000)
        status = 0
        try:
            for _ in range(int(2 * TOTAL_S / 0.5)):  # 600 bytes/s, above MIN_RATE, for twice the deadline
                sock.sendall(b" " * 300)
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, error = answer_of(sock)
    assert status == 408 and error["expected"] == f"the whole body within {TOTAL_S:g} s", error


def test_healthz_answers_while_large_bodies_are_parsed(url: str) -> None:
    body = json.dumps({"latents": [[0.123456789] * 10] * 250, "format": "array"})  # 35 KB: parsed in a thread
    done = threading.Event()
    statuses: list[int] = []

    def load() -> None:
        with httpx.Client(timeout=WAIT_S) as http:
            while not done.is_set():
                statuses.append(
                    http.post(f"{url}/decode", content=body, headers={"Content-Type": "application/json"}).status_code
                )

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        # A liveness check, not a latency figure (bench/abuse.py measures that): each answers well in time.
        assert [httpx.get(f"{url}/healthz", timeout=5).status_code for _ in range(20)] == [200] * 20
    finally:
        done.set()
        for worker in workers:
            worker.join()
    assert set(statuses) == {200}, statuses


def test_the_abuse_benchmark_runs_every_probe_and_finds_no_5xx(smoke_artifact: Path, tmp_path: Path) -> None:
    """A short pass of bench/abuse.py (sizes at 0.2% of the issue's); only what it answered is checked."""
    root = tmp_path / "models"
    for name in ("smoke", "smoke-b"):
        copy_artifact(smoke_artifact, root, name)
    command = [sys.executable, "bench/abuse.py", "--model-dir", str(root), "--models", "smoke,smoke-b"]
    command += ["--scale", "0.002", "--tricklers", "10", "--sigterm-runs", "1"]
    command += ["--only", "nested,traverse,decode,encode,headers,refusals,disconnects,trickle,folder,sigterm"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 15, done.stdout  # the header and 14 probes
    for probe, answered, fives, *_ in rows[1:]:
        assert fives.strip() == "0" and "no error shape" not in answered, (probe, answered)
    assert "tricklers closed: 10 of 10" in done.stdout and "(deleted)" in done.stdout, done.stdout
    assert "SIGTERM run 1: exit 0" in done.stdout and "the long request got 503" in done.stdout, done.stdout
