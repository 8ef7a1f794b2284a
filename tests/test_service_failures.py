"""A network whose runs fail: every request gets a 500 in the usual error shape, never a hang, and /readyz
turns red while the failures go on and green after the next success.

The failing network is real: the smoke decoder with a guard in front that makes onnxruntime raise whenever
a latent value exceeds 10 (a Reshape to an impossible shape), so good latents still decode.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_harness import copy_artifact, metric, serve

from contract.manifest import sha256_of
from service.errors import Rejected
from service.metrics import Metrics
from service.runtime import Batcher, open_session
from service.settings import Settings

UNREADY_AFTER = 3
GOOD = {"latents": [[0.0] * 10]}
BAD = {"latents": [[15.0] + [0.0] * 9]}


def guard_decoder(folder: Path) -> None:
    """Put a guard in front of ``folder``'s decoder that fails the run when any latent value is above 10."""
    import onnx
    from onnx import TensorProto, helper

    path = folder / "decoder.onnx"
    model = onnx.load(str(path))
    graph = model.graph
    for node in graph.node:
        node.input[:] = ["z_checked" if name == "z" else name for name in node.input]
    constants = {
        "ten": helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0]),
        "width_ok": helper.make_tensor("width_ok", TensorProto.INT64, [1], [10]),
        "width_bad": helper.make_tensor("width_bad", TensorProto.INT64, [1], [7]),
        "rows": helper.make_tensor("rows", TensorProto.INT64, [1], [-1]),
        "one": helper.make_tensor("one", TensorProto.INT64, [1], [1]),
    }
    guard = [helper.make_node("Constant", [], [name], value=value) for name, value in constants.items()]
    guard += [
        helper.make_node("ReduceMax", ["z"], ["z_max"], keepdims=0),
        helper.make_node("Greater", ["z_max", "ten"], ["too_big"]),
        helper.make_node("Where", ["too_big", "width_bad", "width_ok"], ["width"]),
        helper.make_node("Reshape", ["width", "one"], ["width_1"]),
        helper.make_node("Concat", ["rows", "width_1"], ["shape"], axis=0),
        # (B, 10) -> (-1, 7) fails for most B, and any other result fails the decoder's first layer.
        helper.make_node("Reshape", ["z", "shape"], ["z_checked"]),
    ]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(guard + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["decoder"]["sha256"] = sha256_of(path)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service-failures") / "models"
    guard_decoder(copy_artifact(smoke_artifact, root, "smoke"))
    with serve(root, failures_until_unready=UNREADY_AFTER, batch_max_wait_ms=20) as base:
        yield base


def failures(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return metric(text, "disentangle_batch_failures_total", model="smoke", network="decoder")


def test_failed_runs_answer_500_turn_readyz_red_and_a_success_turns_it_green(url: str) -> None:
    assert httpx.post(f"{url}/decode", json=GOOD, timeout=10).status_code == 200
    before = failures(url)
    for _ in range(UNREADY_AFTER):
        failed = httpx.post(f"{url}/decode", json=BAD, timeout=10)
        assert failed.status_code == 500
        body = failed.json()
        assert body["expected"] == "a successful run of smoke's decoder", body
        assert "ReduceMax" not in failed.text and "onnxruntime" not in failed.text.lower()  # no internals
    assert failures(url) - before == UNREADY_AFTER
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 503
    assert f"smoke's decoder failed its last {UNREADY_AFTER} runs" in ready.json()["detail"]

    # The network still answers every request, good or bad, whatever shares its batches.
    def post(k: int) -> httpx.Response:
        return httpx.post(f"{url}/decode", json=BAD if k % 2 else GOOD, timeout=10)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(32)))
    assert {a.status_code for a in answers} <= {200, 500}
    assert all(a.status_code == 500 for k, a in enumerate(answers) if k % 2)

    assert httpx.post(f"{url}/decode", json=GOOD, timeout=10).status_code == 200
    assert httpx.get(f"{url}/readyz").status_code == 200
    assert httpx.post(f"{url}/encode", json={"images": [np.zeros((64, 64)).tolist()]}, timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("wait_ms", "on_loop"),
    [(200.0, False), (0.0, False), (0.0, True)],
    ids=["waiting-in-the-thread", "turn-sent-to-the-thread", "turn-on-the-loop"],
)
def test_an_error_outside_the_run_fails_the_batch_and_the_batcher_goes_on(
    smoke_artifact: Path, wait_ms: float, on_loop: bool
) -> None:
    """Rows that cannot be stacked into one batch (a (1, 10) and a (1, 9) request) make the drain itself raise,
    before onnxruntime is reached: both requests are answered, and the next one is served. With a wait they
    batch in the inference thread; without one, they gather in a turn of the event loop (Batcher._lead_turn)
    and run in the thread or on the loop."""
    settings = Settings(
        model_dir=smoke_artifact.parent, batch_max_wait_ms=wait_ms, batch_max_size=8, loop_batches=on_loop
    )
    session = open_session(smoke_artifact / "decoder.onnx", settings)

    async def scenario() -> tuple[list[BaseException | np.ndarray], np.ndarray]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher("smoke", "decoder", session, ["image"], pool, Metrics(), settings)
            mixed = await asyncio.wait_for(
                asyncio.gather(
                    batcher.submit(np.zeros((1, 10), np.float32)),
                    batcher.submit(np.zeros((1, 9), np.float32)),
                    return_exceptions=True,
                ),
                timeout=10,
            )
            later = await asyncio.wait_for(batcher.submit(np.zeros((2, 10), np.float32)), timeout=10)
            return list(mixed), later[0]

    mixed, later = asyncio.run(scenario())
    assert all(isinstance(error, Rejected) and error.status == 500 for error in mixed), mixed
    assert later.shape == (2, 1, 64, 64)
