"""The micro-batcher under concurrent requests: they share onnxruntime runs and get the unbatched answers.

Whether requests sent over sockets overlap in the server depends on how busy the machine is, so the tests
through a real server assert what holds on any machine (every row answered, each answer the unbatched one);
that runs form is shown in process, where the inference thread is held while the requests queue (``held``)."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_harness import REPO, copy_artifact, metric, serve

from service.client import AsyncClient, Client
from service.cpus import available_cpus
from service.metrics import Metrics
from service.runtime import Batcher, batches_on_loop, open_session
from service.settings import Settings

CONCURRENT = 24


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service-batching") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    with serve(root, batch_max_wait_ms=100, batch_max_size=64) as base:
        yield base


def batches(url: str, network: str) -> tuple[float, float, float]:
    """(runs, runs of one row, rows) so far for the smoke model's ``network``."""
    text = httpx.get(f"{url}/metrics").text
    labels = {"model": "smoke", "network": network}
    return (
        metric(text, "disentangle_batch_size_count", **labels),
        metric(text, "disentangle_batch_size_bucket", le="1.0", **labels),
        metric(text, "disentangle_batch_size_sum", **labels),
    )


def test_concurrent_decodes_equal_unbatched_results(url: str) -> None:
    latents = np.random.default_rng(1).normal(size=(CONCURRENT, 10)).astype(np.float32)
    with Client(url) as client:
        alone = [client.decode_arrays(z[None])[0] for z in latents[:4]]
    runs_before, _, rows_before = batches(url, "decoder")

    async def together() -> list[np.ndarray]:
        async with AsyncClient(url) as client:
            answers = await asyncio.gather(*(client.decode_arrays(z[None]) for z in latents))
        return [a[0] for a in answers]

    batched = asyncio.run(together())
    runs, _, rows = batches(url, "decoder")
    assert rows - rows_before == CONCURRENT
    for one, many in zip(alone, batched[:4], strict=True):
        np.testing.assert_allclose(many, one, atol=1e-5)

    with Client(url) as client:  # every batched answer is the one its own latent gets alone
        np.testing.assert_allclose(np.stack(batched), client.decode_arrays(latents), atol=1e-5)


def test_concurrent_encodes_keep_their_own_answers(url: str) -> None:
    pictures = []
    for k in range(8):
        picture = Image.new("L", (64, 64))
        picture.paste(255, (4 + 6 * k, 10, 20 + 6 * k, 30))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        pictures.append(buffer.getvalue())
    with Client(url) as client:
        together_mu, together_logvar = client.encode(pictures)  # one request of 8: the reference
    runs_before, _, _ = batches(url, "encoder")

    async def separately() -> list[tuple[np.ndarray, np.ndarray]]:
        async with AsyncClient(url) as client:
            return await asyncio.gather(*(client.encode([p]) for p in pictures))

    answers = asyncio.run(separately())
    runs, _, _ = batches(url, "encoder")
    np.testing.assert_allclose(np.concatenate([mu for mu, _ in answers]), together_mu, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([lv for _, lv in answers]), together_logvar, atol=1e-5)


@pytest.fixture(scope="module", params=[False, True], ids=["batches-in-the-thread", "batches-on-the-loop"])
def default_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    # A bundled model rather than the tiny smoke one: each request must take the server longer than the test
    # takes to send the next, or there is never more than one request in the server to batch.
    root = tmp_path_factory.mktemp("service-batching-default") / "models"
    copy_artifact(REPO / "models" / "dsprites_beta_tcvae", root, "smoke")  # the name batches() reads
    # No batch wait: a lone one-row request runs on the event loop, company goes to the thread or stays there
    with serve(root, loop_batches=request.param) as base:
        yield base


def _post(latent: np.ndarray, host: str) -> bytes:
    body = json.dumps({"latents": [latent.tolist()]}).encode()
    head = (
        f"POST /decode HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: image/png\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_without_a_batch_wait_concurrent_one_row_decodes_get_their_lone_answers(default_url: str) -> None:
    """Without a batch wait, one-row requests run on the event loop or in the thread, alone or in company,
    whichever the timing gives: every one gets the PNG its latent gets alone, byte for byte.

    Raw sockets, so that the requests arrive as close together as the machine allows: each connection is open
    before any is sent, and all are sent before any answer is read.
    """
    latents = np.random.default_rng(2).normal(size=(CONCURRENT, 10)).astype(np.float32)
    host_port = default_url.removeprefix("http://")
    host, port = host_port.rsplit(":", 1)
    with httpx.Client(base_url=default_url) as client:
        alone = [
            client.post("/decode", json={"latents": [z.tolist()]}, headers={"Accept": "image/png"}) for z in latents
        ]
    runs_before, _, rows_before = batches(default_url, "decoder")
    answers: list[bytes] = []
    for _ in range(3):
        connections = [socket.create_connection((host, int(port)), timeout=30) for _ in latents]
        try:
            for connection, z in zip(connections, latents, strict=True):
                connection.sendall(_post(z, host_port))
            for connection in connections:
                response = http.client.HTTPResponse(connection)
                response.begin()
                assert response.status == 200
                answers.append(response.read())
        finally:
            for connection in connections:
                connection.close()
    runs, _, rows = batches(default_url, "decoder")
    assert rows - rows_before == 3 * CONCURRENT
    assert answers == [a.content for a in alone] * 3  # each the PNG its latent gets alone, byte for byte


def test_a_turn_on_the_loop_holds_at_most_a_batch_and_answers_those_who_joined_if_its_leader_leaves(
    smoke_artifact: Path,
) -> None:
    """Without a batch wait, one-row requests that arrive in one turn of the event loop run there together.
    Ten of them with batches of at most four: the first leads a run of four, the rest go to the inference
    thread's queue, and every answer equals the one its row gets alone. A leader cancelled while it gathers
    (its client left) must still run the rows that joined it, or their requests would wait for good."""
    settings = Settings(model_dir=smoke_artifact.parent, batch_max_size=4, loop_batches=True)
    session = open_session(smoke_artifact / "decoder.onnx", settings)
    rows = np.random.default_rng(3).normal(size=(10, 1, 10)).astype(np.float32)
    alone = [session.run(["image"], {"z": z})[0] for z in rows]
    metrics = Metrics()
    labels = {"model": "smoke", "network": "decoder"}

    def sizes(suffix: str, **extra: str) -> float:
        return metrics.registry.get_sample_value(f"disentangle_batch_size_{suffix}", labels | extra) or 0.0

    async def scenario() -> tuple[list[np.ndarray], list[np.ndarray], bool, tuple[float, float]]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher("smoke", "decoder", session, ["image"], pool, metrics, settings)
            together = await asyncio.wait_for(asyncio.gather(*(batcher.submit(z) for z in rows)), timeout=10)
            assert sizes("bucket", le="4.0") == sizes("count")  # no run took more than a batch
            assert sizes("count") < len(rows)  # and some took several rows
            before = sizes("count"), sizes("sum")
            leader = asyncio.ensure_future(batcher.submit(rows[0]))
            joined = [asyncio.ensure_future(batcher.submit(z)) for z in rows[1:3]]
            await asyncio.sleep(0)  # the leader has begun to gather, the others joined it
            leader.cancel()
            after = await asyncio.wait_for(asyncio.gather(*joined), timeout=10)
            await asyncio.sleep(0)
            run = sizes("count") - before[0], sizes("sum") - before[1]
            return [out[0] for out in together], [out[0] for out in after], leader.cancelled(), run

    together, after, cancelled, (runs, rows_run) = asyncio.run(scenario())
    for got, expected in zip(together + after, alone + alone[1:3], strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert cancelled
    assert (runs, rows_run) == (1, 2)  # the two that joined, in one run; nobody waits for the leader's row


def test_requests_that_queue_while_the_thread_is_busy_run_together(smoke_artifact: Path) -> None:
    """The batching itself, held deterministic: with a batch wait every request queues for the one inference
    thread, which is kept busy (``held``) while ten one-row requests come in one after another, each in its own
    turn of the loop, as from separate clients. Once it is free they must run in full batches of four
    (4 + 4 + 2), each answer the one its row gets alone. (Without a wait, requests that arrive in one turn run
    together: test_a_turn_on_the_loop_holds_at_most_a_batch...; a lone one runs at once.)"""
    settings = Settings(model_dir=smoke_artifact.parent, batch_max_size=4, batch_max_wait_ms=50)
    session = open_session(smoke_artifact / "decoder.onnx", settings)
    rows = np.random.default_rng(4).normal(size=(10, 1, 10)).astype(np.float32)
    alone = [session.run(["image"], {"z": z})[0] for z in rows]
    metrics = Metrics()

    async def scenario() -> list[np.ndarray]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher("smoke", "decoder", session, ["image"], pool, metrics, settings)
            held = threading.Event()
            pool.submit(held.wait, 10)
            requests = []
            for z in rows:
                requests.append(asyncio.ensure_future(batcher.submit(z)))
                await asyncio.sleep(0)  # the next request comes in a later turn of the loop
            held.set()
            answers = await asyncio.wait_for(asyncio.gather(*requests), timeout=10)
            return [out[0] for out in answers]

    answers = asyncio.run(scenario())
    for got, expected in zip(answers, alone, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    labels = {"model": "smoke", "network": "decoder"}
    runs = metrics.registry.get_sample_value("disentangle_batch_size_count", labels)
    rows_run = metrics.registry.get_sample_value("disentangle_batch_size_sum", labels)
    assert (runs, rows_run) == (3, 10)


def test_batches_run_on_the_loop_where_a_process_has_less_than_two_cpus_to_itself(tmp_path: Path) -> None:
    """The default of ``loop_batches`` follows the CPUs this process may use, shared among its workers; a
    setting overrides it either way."""
    cpus = available_cpus()
    assert batches_on_loop(Settings(model_dir=tmp_path, workers=0)) is True  # one worker per CPU
    assert batches_on_loop(Settings(model_dir=tmp_path, workers=cpus)) is True
    assert batches_on_loop(Settings(model_dir=tmp_path, workers=1)) is (cpus < 2)
    assert batches_on_loop(Settings(model_dir=tmp_path, workers=1, loop_batches=True)) is True
    assert batches_on_loop(Settings(model_dir=tmp_path, workers=0, loop_batches=False)) is False
