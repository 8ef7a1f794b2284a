"""The fast paths answer exactly as the FastAPI routes do; workers, the access log and the CPU count.

Two real servers on one model folder: one with the fast paths (the default), one with DISENTANGLE_FAST_PATHS
off, both behind the same API key. Every request goes to both and the answers must match byte for byte,
rejections included.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw
from service_harness import REPO, add_calibration, copy_artifact, metric, serve

from service.app import create_app
from service.cpus import available_cpus
from service.fastpath import FastRoutes
from service.settings import Settings

KEY = "fast-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Headers that differ between any two answers: when and to which request.
VARYING = {"date", "x-request-id"}


@pytest.fixture(scope="module")
def model_dir(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fastpath") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    copy_artifact(smoke_artifact, root, "smoke-calibrated", add_calibration)
    return root


@pytest.fixture(scope="module")
def servers(model_dir: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    limits = {"api_key": KEY, "max_items": 8, "max_body_bytes": 1 << 20, "default_model": "smoke"}
    with serve(model_dir, **limits) as fast, serve(model_dir, fast_paths="false", **limits) as slow:
        with httpx.Client(base_url=fast, timeout=30) as f, httpx.Client(base_url=slow, timeout=30) as s:
            yield f, s


def ellipse_png(size: int = 64) -> bytes:
    picture = Image.new("L", (size, size))
    ImageDraw.Draw(picture).ellipse((size * 0.3, size * 0.35, size * 0.7, size * 0.65), fill="white")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def same_answer(clients: tuple[httpx.Client, httpx.Client], path: str, **request: object) -> httpx.Response:
    """POST to both servers; assert status, headers (but date and request id) and body are identical."""
    fast, slow = (client.post(path, **request) for client in clients)  # type: ignore[arg-type]
    assert fast.status_code == slow.status_code, (path, fast.text, slow.text)
    assert fast.content == slow.content, (path, fast.content[:300], slow.content[:300])
    headers = [[(k, v) for k, v in r.headers.multi_items() if k not in VARYING] for r in (fast, slow)]
    assert headers[0] == headers[1], path
    return fast


ZERO = [0.0] * 10


def test_fast_paths_answer_byte_for_byte_as_the_fastapi_routes(servers: tuple[httpx.Client, httpx.Client]) -> None:
    latents = np.random.default_rng(0).normal(size=(3, 10)).astype("<f4")
    png = {**AUTH, "Accept": "image/png"}
    answers = [
        same_answer(servers, "/decode", json={"latents": latents.tolist()}, headers=AUTH),
        same_answer(servers, "/decode", json={"latents": [ZERO], "format": "array"}, headers=AUTH),
        same_answer(servers, "/decode", json={"latents": [ZERO]}, headers=png),
        same_answer(
            servers,
            "/decode",
            content=latents.tobytes(),
            headers={**AUTH, "Content-Type": "application/octet-stream", "X-Shape": "3,10"},
        ),
        same_answer(
            servers,
            "/decode?shape=3,10&model=smoke",
            content=latents.tobytes(),
            headers={**AUTH, "Content-Type": "application/octet-stream", "Accept": "application/octet-stream"},
        ),
        same_answer(servers, "/encode", json={"images": [base64.b64encode(ellipse_png()).decode()]}, headers=AUTH),
        same_answer(
            servers,
            "/encode",
            files=[("images", (f"{name}.png", ellipse_png(), "image/png")) for name in "ab"],
            data={"sample": "true", "seed": "3", "model": "smoke"},
            headers=AUTH,
        ),
        same_answer(servers, "/synthesize", json={"model": "smoke-calibrated", "factors": {}}, headers=AUTH),
        same_answer(servers, "/synthesize", json={"model": "smoke-calibrated", "factors": {}}, headers=png),
    ]
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert [a.headers["content-type"] for a in answers][2] == "image/png"
    assert len(answers[6].json()["z"]) == 2


def test_fast_paths_reject_with_the_same_status_and_message(servers: tuple[httpx.Client, httpx.Client]) -> None:
    form = {"Content-Type": "multipart/form-data; boundary=x"}
    many = [("images", (f"{i}.png", ellipse_png(), "image/png")) for i in range(9)]
    bad = [
        ("/decode", {"json": {"latents": [[0.0] * 3]}}),
        ("/decode", {"json": {"latents": [[99.0] * 10]}}),
        ("/decode", {"json": {"latents": [ZERO], "colour": 1}}),
        ("/decode", {"json": {"latents": [ZERO] * 9}}),
        ("/decode", {"json": {"latents": [ZERO], "model": "nope"}}),
        ("/decode", {"json": {"latents": [ZERO, ZERO]}, "headers": {"Accept": "image/png"}}),
        ("/decode", {"content": b"{", "headers": {"Content-Type": "application/json"}}),
        ("/decode", {"content": b"\0" * 12, "headers": {"Content-Type": "application/octet-stream"}}),
        ("/decode", {"content": b"x", "headers": {"Content-Type": "image/png"}}),
        ("/encode", {"json": {"images": ["not base64!"]}}),
        ("/encode", {"json": {"images": []}}),
        ("/encode", {"files": [("other", ("a.png", ellipse_png(), "image/png"))]}),
        ("/encode", {"files": many}),
        ("/encode", {"files": [("images", ("a.png", ellipse_png(80), "image/png"))]}),
        ("/encode", {"content": b"garbage", "headers": form}),
        ("/encode", {"content": b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n", "headers": form}),
        ("/encode", {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}}),
        ("/synthesize", {"json": {"model": "smoke-calibrated", "factors": {"colour": "red"}}}),
        ("/synthesize", {"json": {"model": "smoke", "factors": {}}}),
        ("/synthesize", {"json": {"factors": []}}),
    ]
    for path, request in bad:
        headers = {**AUTH, **request.pop("headers", {})}  # type: ignore[dict-item]
        answer = same_answer(servers, path, headers=headers, **request)
        assert 400 <= answer.status_code < 500, (path, answer.text)
        assert answer.json()["detail"], (path, answer.text)


@pytest.mark.parametrize("fast_paths", [True, False])
def test_the_fast_paths_are_in_the_app_when_on(model_dir: Path, fast_paths: bool) -> None:
    """Answers cannot tell the two paths apart (that is the point), so look at the app the server builds."""
    app = create_app(Settings(model_dir=model_dir, fast_paths=fast_paths))
    layer, found = app.build_middleware_stack(), []
    while layer is not None:
        if isinstance(layer, FastRoutes):
            found.append(sorted(layer.routes))
        layer = getattr(layer, "app", None)
    assert found == ([["/decode", "/encode", "/synthesize"]] if fast_paths else [])


def test_the_api_key_guards_the_fast_paths(servers: tuple[httpx.Client, httpx.Client]) -> None:
    for path in ("/decode", "/encode", "/synthesize"):
        for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": f"Basic {KEY}"}):
            answer = same_answer(servers, path, json={"latents": [ZERO]}, headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
            assert answer.json()["field"] == "Authorization"


def test_fast_paths_keep_request_ids_metrics_and_the_body_limit(servers: tuple[httpx.Client, httpx.Client]) -> None:
    fast, _ = servers
    answer = fast.post("/decode", json={"latents": [ZERO]}, headers={**AUTH, "X-Request-ID": "req-42"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "req-42"
    fast.post("/decode", json={"latents": [[1.0]]}, headers=AUTH)
    oversized = fast.post("/decode", content=b" " * (1 << 20) + b"{}", headers=AUTH)
    assert oversized.status_code == 413 and "at most" in oversized.json()["detail"]
    text = fast.get("/metrics", headers=AUTH).text
    assert metric(text, "disentangle_requests_total", endpoint="/decode", model="smoke", status="200") >= 1
    assert metric(text, "disentangle_requests_total", endpoint="/decode", model="smoke", status="422") >= 1
    assert metric(text, "disentangle_request_seconds_count", endpoint="/decode", model="smoke") >= 1
    # The OpenAPI schema still documents the fast routes.
    assert {"/decode", "/encode", "/synthesize"} <= set(fast.get("/openapi.json").json()["paths"])


def _access_lines(log: Path, rid: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("request_id") == rid and line.get("logger") == "disentangle.access"]


@pytest.mark.parametrize("access_log", [True, False])
def test_access_log_writes_one_line_per_request_when_on(model_dir: Path, access_log: bool) -> None:
    with serve(model_dir, log_level="info", access_log=str(access_log).lower()) as url:
        for path, body in (("/decode", {"latents": [ZERO]}), ("/models", None)):
            rid = f"log-{path.strip('/')}-{access_log}"
            if body is None:
                httpx.get(url + path, headers={"X-Request-ID": rid})
            else:
                httpx.post(url + path, json=body, headers={"X-Request-ID": rid})
        log = model_dir.parent / f"server-{url.rsplit(':', 1)[1]}.log"
        deadline = time.monotonic() + 5  # written by a background thread
        while access_log and not _access_lines(log, "log-models-True") and time.monotonic() < deadline:
            time.sleep(0.05)
        for path in ("decode", "models"):
            lines = _access_lines(log, f"log-{path}-{access_log}")
            if not access_log:
                assert lines == []
                continue
            assert len(lines) == 1, log.read_text()
            assert lines[0]["status"] == 200 and lines[0]["endpoint"] == f"/{path}"
            assert lines[0]["message"] == f"{'POST' if path == 'decode' else 'GET'} /{path} 200"


def test_workers_share_the_port_and_get_the_flags(model_dir: Path) -> None:
    with serve(model_dir, workers=2) as url:
        ready = httpx.get(f"{url}/readyz").json()
        assert sorted(ready["models"]) == ["smoke", "smoke-calibrated"]
        answers = [httpx.post(f"{url}/decode", json={"latents": [ZERO]}) for _ in range(8)]
        assert {a.status_code for a in answers} == {200}
        assert len({a.content for a in answers}) == 1


def test_available_cpus_follows_the_cgroup_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == affinity  # no quota file: the affinity mask
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # --cpus 1.5: two processes
    assert available_cpus(tmp_path) == min(affinity, 2)
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 1


def test_an_unavailable_provider_names_the_available_ones_and_the_gpu_extra(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")}
    env["DISENTANGLE_PROVIDERS"] = "CUDAExecutionProvider"
    command = [sys.executable, "-m", "service.cli", "--model-dir", str(tmp_path)]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "CPUExecutionProvider" in run.stderr and "pip install 'disentangle[gpu]'" in run.stderr
