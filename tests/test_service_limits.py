"""Operating limits: the API key, a full queue (429), the configured default, readiness, bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_harness import REPO, copy_artifact, serve

from service.client import Client, ServiceError

KEY = "test-key-0123"
ORIGIN = "http://page.test"


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service-limits") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    copy_artifact(smoke_artifact, root, "smoke-b")
    with serve(root, api_key=KEY, queue_depth=1, default_model="smoke-b", cors_origins=ORIGIN) as base:
        yield base


def test_api_key_guards_everything_but_health(url: str) -> None:
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    # Open for orchestrators, but without the key it names no model: names are data the key guards.
    assert httpx.get(url + "/readyz").json() == {"status": "ready"}
    keyed = httpx.get(url + "/readyz", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert keyed["default"] == "smoke-b" and keyed["models"] == ["smoke", "smoke-b"]
    for path in ("/metrics", "/readyz/smoke"):  # metrics' labels name the models
        assert httpx.get(url + path).status_code == 401, path
        assert httpx.get(url + path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200, path
    missing = httpx.get(url + "/models")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: expected a 'Bearer <api key>' header" in missing.json()["detail"]
    with pytest.raises(ServiceError) as wrong, Client(url, api_key="guess") as client:
        client.decode([[0.0] * 10])
    assert wrong.value.status == 401 and "a different key" in wrong.value.message
    with Client(url, api_key=KEY) as client:
        assert client.models()["default"] == "smoke-b"
        assert len(client.decode([[0.0] * 10])) == 1


def test_cors_lets_the_configured_origin_call_with_its_key(url: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = httpx.options(f"{url}/decode", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.options(f"{url}/decode", headers={"Origin": "http://elsewhere.test", **preflight})
    assert "access-control-allow-origin" not in other.headers
    answer = httpx.get(f"{url}/models", headers={"Origin": ORIGIN, "Authorization": f"Bearer {KEY}"})
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()


def test_a_full_queue_answers_429_and_the_service_recovers(url: str) -> None:
    heavy = np.zeros((256, 10), dtype="<f4").tobytes()  # 256 decodes and PNG encodes: tens of milliseconds
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/octet-stream", "X-Shape": "256,10"}

    def post(_: int) -> httpx.Response:
        return httpx.post(f"{url}/decode", content=heavy, headers=headers, timeout=60)

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(post, range(12)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    full = next(r for r in responses if r.status_code == 429)
    assert "at most 1 requests queued for smoke-b's decoder" in full.json()["detail"]
    assert full.headers["retry-after"] == "1"
    with Client(url, api_key=KEY) as client:
        assert len(client.decode(np.zeros((3, 10)))) == 3


def test_without_a_loadable_model_the_service_is_alive_but_not_ready(smoke_artifact: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    copy_artifact(smoke_artifact, root, "broken", lambda m: m.update(image_shape=[2, 64, 64]))
    with serve(root) as base:
        assert httpx.get(base + "/healthz").status_code == 200
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 503 and "no model loaded" in ready.json()["detail"]
        decode = httpx.post(base + "/decode", json={"latents": [[0.0] * 10]})
        assert decode.status_code == 404 and "expected one of []" in decode.json()["detail"]
        with Client(base) as client:
            assert not client.ready()


def test_invalid_settings_stop_the_start_with_the_variable_named(tmp_path: Path) -> None:
    def start(model_dir: Path, **settings: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISENTANGLE_")} | settings
        command = [sys.executable, "-m", "service.cli", "--model-dir", str(model_dir)]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    run = start(tmp_path, DISENTANGLE_QUEUE_DEPTH="0")
    assert (
        run.returncode == 2 and "DISENTANGLE_QUEUE_DEPTH" in run.stderr and "greater than or equal to 1" in run.stderr
    )
    run = start(tmp_path / "nowhere")
    assert run.returncode == 2 and "DISENTANGLE_MODEL_DIR" in run.stderr
    # A misspelt variable would otherwise leave its setting at the default without a word.
    run = start(tmp_path, DISENTANGLE_MAX_ITEM="5")
    assert run.returncode == 2, run.stderr
    assert "unknown setting DISENTANGLE_MAX_ITEM; did you mean DISENTANGLE_MAX_ITEMS?" in run.stderr
    run = start(tmp_path, disentangle_qeue_depth="5")
    assert run.returncode == 2 and "did you mean DISENTANGLE_QUEUE_DEPTH?" in run.stderr
    run = start(tmp_path, DISENTANGLE_PROVIDERS="NoSuchExecutionProvider")
    assert run.returncode == 2 and "NoSuchExecutionProvider" in run.stderr
