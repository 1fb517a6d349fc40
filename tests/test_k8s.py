"""deploy/k8s, checked without a cluster: rendered as `kubectl apply -k` would, validated against the
Kubernetes schemas (strict), and cross-checked with the code it deploys: probe paths are routes,
the port and user are the Dockerfile's, every setting in the ConfigMap is a valid setting, and the
memory limit covers the workers' measured bound."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from app.budget import worker_memory_bound_mb
from app.settings import ENV_PREFIX, Settings, load_settings
from tests.helpers import ROOT

BASE = ROOT / "deploy" / "k8s"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
#: The Kubernetes version the manifests are validated against (kubectl here is 1.32).
KUBERNETES_VERSION = "1.32.0"


def render(base: Path = BASE) -> list[dict[str, Any]]:
    """`kubectl kustomize` where kubectl is installed; elsewhere the resources with the base's
    labels applied the same way (metadata, selectors and the pod template), which is all this base
    asks of kustomize."""
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "kustomize", str(base)], capture_output=True, text=True, check=True).stdout
        return [d for d in yaml.safe_load_all(out) if d]
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    labels: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        labels.update(entry["pairs"])
    docs = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((base / name).read_text()):
            doc["metadata"].setdefault("labels", {}).update(labels)
            spec = doc.get("spec", {})
            kind = doc["kind"]
            if kind == "Deployment":
                spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(labels)
                spec["template"].setdefault("metadata", {}).setdefault("labels", {}).update(labels)
                for image in kustomization.get("images", []):
                    for c in spec["template"]["spec"]["containers"]:
                        if c["image"] == image["name"]:
                            c["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
            elif kind == "Service":
                spec.setdefault("selector", {}).update(labels)
            elif kind == "PodDisruptionBudget":
                spec["selector"]["matchLabels"].update(labels)
            elif kind == "NetworkPolicy":
                spec["podSelector"]["matchLabels"].update(labels)
            docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in render()}


def pod(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = objects["Deployment"]["spec"]["template"]["spec"]
    return spec


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = pod(objects)["containers"]
    return dict(only)


def settings_of(objects: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the pods start with: the image's DIGITS_ defaults, then the ConfigMap."""
    for name, value in re.findall(r"(DIGITS_\w+)=(\S+)", DOCKERFILE):
        monkeypatch.setenv(name, value)
    for name, value in objects["ConfigMap"]["data"].items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_the_base_has_what_the_issue_asks(objects: dict[str, dict[str, Any]]) -> None:
    assert set(objects) == {
        "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"
    }  # fmt: skip
    assert objects["Deployment"]["spec"]["replicas"] == 2
    assert objects["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    assert (
        objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == objects["Deployment"]["metadata"]["name"]
    )


def test_the_rendered_objects_validate_strictly() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in render():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_probe_paths_are_routes_of_the_app(objects: dict[str, dict[str, Any]], client: TestClient) -> None:
    c = container(objects)
    probes = {kind: c[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    for kind, probe in probes.items():
        assert client.get(probe["path"]).status_code == 200, f"{kind}: GET {probe['path']} is not 200 once ready"
        assert probe["port"] in {p["name"] for p in c["ports"]} | {p["containerPort"] for p in c["ports"]}
    assert probes["readinessProbe"]["path"] == probes["startupProbe"]["path"] == "/health/ready"
    assert probes["livenessProbe"]["path"] == "/health/live"  # not the model: a slow reload must not kill pods


def test_ports_match_the_dockerfile_and_the_settings(
    objects: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    exposed = int(re.search(r"^EXPOSE (\d+)", DOCKERFILE, re.M).group(1))  # type: ignore[union-attr]
    (port,) = container(objects)["ports"]
    assert port["containerPort"] == exposed == settings_of(objects, monkeypatch).port
    named = {port["name"], port["containerPort"]}
    (service_port,) = objects["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in named
    (rule,) = objects["NetworkPolicy"]["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [port["name"]] or [p["port"] for p in rule["ports"]] == [exposed]
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == exposed
    assert annotations["prometheus.io/path"] == "/metrics"


def test_selectors_pick_the_pods(objects: dict[str, dict[str, Any]]) -> None:
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selectors = [
        objects["Deployment"]["spec"]["selector"]["matchLabels"],
        objects["Service"]["spec"]["selector"],
        objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        objects["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector  # an empty selector would pick every pod of the namespace
        assert selector.items() <= labels.items()


def test_the_user_and_hardening_match_the_image(objects: dict[str, dict[str, Any]]) -> None:
    uid = int(re.search(r"useradd .*--uid (\d+)", DOCKERFILE).group(1))  # type: ignore[union-attr]
    spec = pod(objects)
    assert spec["securityContext"]["runAsUser"] == uid
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    c = container(objects)["securityContext"]
    assert c["readOnlyRootFilesystem"] is True
    assert c["allowPrivilegeEscalation"] is False
    assert c["capabilities"]["drop"] == ["ALL"]
    # the service writes only under /tmp (the metrics of several workers, the reload choice)
    metrics_dir = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", DOCKERFILE).group(1)  # type: ignore[union-attr]
    mounts = {m["mountPath"]: m for m in container(objects)["volumeMounts"]}
    assert any(metrics_dir.startswith(path) and not m.get("readOnly") for path, m in mounts.items())


def test_every_setting_in_the_configmap_is_real_and_valid(
    objects: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    data = objects["ConfigMap"]["data"]
    assert all(isinstance(v, str) for v in data.values())
    unknown = [k for k in data if k.startswith(ENV_PREFIX) and k not in fields]
    assert unknown == [], f"not settings of app.settings.Settings: {unknown}"
    env = [e["name"] for e in container(objects).get("env", [])]
    assert [k for k in env if k.startswith(ENV_PREFIX) and k not in fields] == []
    settings = settings_of(objects, monkeypatch)  # raises SettingsError on a bad value
    assert settings.host == "0.0.0.0"  # reachable from the Service, not loopback only
    assert (settings.checkpoint_dir or Path()).as_posix() in {
        m["mountPath"] for m in container(objects)["volumeMounts"]
    }


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)?", quantity).groups()  # type: ignore[union-attr]
    return float(number) * units.get(unit or "", 1 / 2**20)


def cpus(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_resources_cover_the_workers(objects: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_of(objects, monkeypatch)
    resources = container(objects)["resources"]
    workers = settings.worker_count
    bound = worker_memory_bound_mb(settings.work_memory_mb)
    assert mebibytes(resources["limits"]["memory"]) >= workers * bound
    assert mebibytes(resources["requests"]["memory"]) <= mebibytes(resources["limits"]["memory"])
    # a CPU per worker, each worker one torch thread: the CPU limit is the quota the workers share
    assert cpus(resources["requests"]["cpu"]) >= workers * settings.effective_torch_threads
    assert cpus(resources["limits"]["cpu"]) >= cpus(resources["requests"]["cpu"])


def test_shutdown_fits_the_grace_period(objects: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_of(objects, monkeypatch)
    pause = container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    assert pod(objects)["terminationGracePeriodSeconds"] > int(pause[1]) + settings.graceful_shutdown
