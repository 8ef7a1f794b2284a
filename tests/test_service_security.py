"""Security of the page and the docs, against a real server: trusted Host names, headers, offline docs.

Policy (docs/service.md, "Security"): the page, /static, /docs, /redoc and /openapi.json stay public when an
API key is set, because they hold no data; every call that reads or makes data needs the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_harness import copy_artifact, serve

KEY = "security-key-0123"
PUBLIC = ("/", "/static/app.js", "/docs", "/redoc", "/openapi.json")


@pytest.fixture(scope="module")
def url(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("service-security") / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    with serve(root, api_key=KEY, trusted_hosts="api.example.test,*.internal.test") as base:
        yield base


def test_only_trusted_host_names_are_answered(url: str) -> None:
    for host in ("127.0.0.1", "localhost:8000", "[::1]:8000", "api.example.test", "a.b.internal.test:443"):
        assert httpx.get(url + "/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("evil.test", "rebind.attacker.test:8000", "internal.test.evil", "127.0.0.1.evil.test"):
        answer = httpx.get(url + "/models", headers={"Host": host, "Authorization": f"Bearer {KEY}"})
        assert answer.status_code == 400, (host, answer.text)
        body = answer.json()
        assert body["field"] == "Host" and "DISENTANGLE_TRUSTED_HOSTS" in body["detail"], body
        assert set(body) >= {"detail", "field", "expected", "received"}


def test_the_default_trusts_loopback_names_only(smoke_artifact: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    copy_artifact(smoke_artifact, root, "smoke")
    with serve(root) as base:
        assert httpx.get(base + "/healthz", headers={"Host": "localhost"}).status_code == 200
        assert httpx.get(base + "/healthz", headers={"Host": "rebind.attacker.test"}).status_code == 400
    with serve(root, trusted_hosts="*") as base:
        assert httpx.get(base + "/healthz", headers={"Host": "anything.test"}).status_code == 200


def test_the_page_and_docs_are_public_by_design_and_the_data_is_not(url: str) -> None:
    for path in PUBLIC:
        assert httpx.get(url + path).status_code == 200, path
    assert httpx.get(url + "/models").status_code == 401
    assert httpx.post(url + "/decode", json={"latents": [[0.0] * 10]}).status_code == 401


def test_every_response_carries_the_security_headers(url: str) -> None:
    for path in (*PUBLIC, "/models", "/nowhere"):
        headers = httpx.get(url + path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["referrer-policy"] == "no-referrer", path
        policy = headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "script-src" not in policy or "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    page_policy = httpx.get(url + "/").headers["content-security-policy"]
    assert "unsafe-inline" not in page_policy and "unsafe-eval" not in page_policy


def test_the_docs_load_only_files_of_this_service(url: str) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(url + page).text
        references = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html)
        assert references, html
        for reference in references:
            assert "//" not in reference and not reference.startswith("data:"), reference
            asset = httpx.get(f"{url}/{reference.lstrip('/')}")
            assert asset.status_code == 200 and len(asset.content) > 0, reference
        assert "cdn" not in html.lower()


def test_the_openapi_documents_every_error_status_in_the_error_shape(url: str) -> None:
    spec = httpx.get(url + "/openapi.json").json()
    assert set(spec["components"]["schemas"]["ErrorBody"]["properties"]) >= {"detail", "field", "expected", "received"}
    inference = {"400", "401", "404", "408", "413", "415", "422", "429", "500", "503"}
    expected = {
        ("post", "/decode"): inference | {"406"},
        ("post", "/encode"): inference,
        ("post", "/traverse"): inference,
        ("post", "/synthesize"): inference,
        ("post", "/edit"): inference,
        ("get", "/models"): {"400", "401", "500"},
        ("get", "/models/{name}"): {"400", "401", "404", "422", "500"},
        ("get", "/models/{name}/card/{file}"): {"400", "401", "404", "422", "500"},
        ("post", "/admin/reload"): {"400", "401", "403", "409", "500"},
        ("get", "/readyz"): {"400", "500", "503"},  # open without the key, for orchestrators
        ("get", "/readyz/{name}"): {"400", "401", "404", "422", "500", "503"},
        ("get", "/metrics"): {"400", "401", "500"},
        ("get", "/healthz"): {"400", "500"},
    }
    for (method, path), statuses in expected.items():
        responses = spec["paths"][path][method]["responses"]
        errors = {status for status in responses if status[0] in "45"}
        assert errors == statuses, (path, sorted(errors))
        for status in errors:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status, schema)
