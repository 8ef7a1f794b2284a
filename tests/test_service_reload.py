"""Hot reload and files that go bad under a loaded model, against a real server and real artifact copies.

A reload under steady traffic loses no request; a changed artifact is served after the reload; one that
fails to load keeps its previous model; files truncated or deleted under a loaded model degrade that model
(/models, /readyz/{name}) while it keeps answering from memory, and never make the service unready.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_harness import copy_artifact, serve

KEY = "reload-key-0123"
GOOD = {"latents": [[0.0] * 10]}


@pytest.fixture
def models(smoke_artifact: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    folder = copy_artifact(smoke_artifact, root, "smoke")
    (folder / "card").mkdir()
    Image.new("L", (8, 8)).save(folder / "card" / "traversal.png")
    return root


@pytest.fixture
def url(models: Path) -> Iterator[str]:
    with serve(models) as base:
        yield base


class Traffic:
    """Clients decoding and encoding in a loop until stopped; every answer's status is counted."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.statuses: Counter[int | str] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(k,)) for k in range(clients)]

    def _loop(self, k: int) -> None:
        image = np.zeros((64, 64)).tolist()
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    if k % 2:
                        status = http.post("/encode", json={"images": [image]}).status_code
                    else:
                        status = http.post("/decode", json=GOOD).status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__
                self.statuses[status] += 1

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def reload(url: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/admin/reload", headers=headers, timeout=120)


def test_reloads_under_traffic_lose_no_request_and_serve_what_is_on_disk(url: str, models: Path) -> None:
    with Traffic(url) as traffic:
        first = reload(url)
        assert first.status_code == 200, first.text
        assert first.json()["unchanged"] == ["smoke"] and first.json()["loaded"] == []

        copy_artifact(models / "smoke", models, "smoke-b")  # a new artifact appears
        manifest_path = models / "smoke" / "manifest.json"  # and the loaded one changes
        manifest = json.loads(manifest_path.read_text())
        manifest["latent_stats"][0]["mean"] = 0.125
        manifest_path.write_text(json.dumps(manifest))
        second = reload(url)
        assert second.status_code == 200, second.text
        assert sorted(second.json()["loaded"]) == ["smoke", "smoke-b"]
        for _ in range(3):
            assert reload(url).status_code == 200
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert sum(traffic.statuses.values()) > 20
    assert httpx.get(f"{url}/models/smoke").json()["latent_stats"][0]["mean"] == 0.125
    assert httpx.post(f"{url}/decode", json=GOOD | {"model": "smoke-b"}).status_code == 200


def test_a_failed_reload_keeps_the_old_model_and_says_why(url: str, models: Path) -> None:
    encoder = models / "smoke" / "encoder.onnx"
    intact = encoder.read_bytes()
    encoder.write_bytes(intact[: len(intact) // 2])  # truncated under the loaded model

    assert httpx.get(f"{url}/readyz").status_code == 200  # the model serves from memory: degraded, not down
    ready = httpx.get(f"{url}/readyz/smoke")
    assert ready.status_code == 503
    assert "smoke's files: encoder.onnx no longer matches the sha256" in ready.json()["detail"]
    listing = httpx.get(f"{url}/models").json()
    assert listing["health"]["smoke"]["status"] == "degraded"
    assert [m["name"] for m in listing["models"]] == ["smoke"]
    assert any(b["folder"] == "smoke" and "still serving smoke from memory" in b["error"] for b in listing["broken"])
    assert httpx.post(f"{url}/encode", json={"images": [np.zeros((64, 64)).tolist()]}).status_code == 200

    failed = reload(url)
    assert failed.status_code == 409, failed.text
    body = failed.json()
    assert body["field"] == "model_dir" and "smoke: encoder.onnx has sha256" in body["detail"]
    assert "smoke" in body["kept"] and body["models"] == ["smoke"]
    assert httpx.post(f"{url}/decode", json=GOOD).status_code == 200
    assert httpx.post(f"{url}/encode", json={"images": [np.zeros((64, 64)).tolist()]}).status_code == 200

    encoder.write_bytes(intact)  # repaired: ready again, and the next reload is clean
    assert httpx.get(f"{url}/readyz/smoke").status_code == 200
    assert httpx.get(f"{url}/readyz").json()["degraded"] == {}
    assert reload(url).status_code == 200


def test_a_deleted_model_folder_is_reported_and_still_served(url: str, models: Path) -> None:
    picture = f"{url}/models/smoke/card/traversal.png"
    assert httpx.get(picture).status_code == 200
    shutil.rmtree(models / "smoke")
    gone = httpx.get(picture)
    assert gone.status_code == 404 and gone.json()["field"] == "file", gone.text
    assert httpx.get(f"{url}/readyz").status_code == 200
    ready = httpx.get(f"{url}/readyz/smoke")
    assert ready.status_code == 503 and "the folder smoke vanished" in ready.json()["detail"]
    assert httpx.post(f"{url}/decode", json=GOOD).status_code == 200
    after = reload(url)
    assert after.status_code == 200 and after.json()["kept"] == {"smoke": "the folder smoke vanished"}
    assert httpx.post(f"{url}/decode", json=GOOD).status_code == 200


def test_one_models_folder_corrupted_then_deleted_leaves_the_service_ready_and_the_others_serving(
    models: Path, smoke_artifact: Path
) -> None:
    copy_artifact(smoke_artifact, models, "smoke-b")
    with serve(models, default_model="smoke-b") as url, Traffic(url) as traffic:  # traffic to the default
        encoder = models / "smoke" / "encoder.onnx"
        encoder.write_bytes(encoder.read_bytes()[:100])
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.get(f"{url}/readyz").json()["degraded"].keys() == {"smoke"}
        assert httpx.get(f"{url}/models").json()["health"]["smoke-b"] == {"status": "ready", "problem": None}
        shutil.rmtree(models / "smoke")
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200 and "the folder smoke vanished" in ready.json()["degraded"]["smoke"]
        assert httpx.get(f"{url}/readyz/smoke").status_code == 503
        assert httpx.get(f"{url}/readyz/smoke-b").json() == {"model": "smoke-b", "status": "ready"}
        assert reload(url).status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 200
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert sum(traffic.statuses.values()) > 10


def test_with_a_key_reload_needs_it(models: Path) -> None:
    with serve(models, api_key=KEY) as base:
        missing = reload(base)
        assert missing.status_code == 401
        assert reload(base, Authorization=f"Bearer {KEY}").status_code == 200
