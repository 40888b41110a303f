"""The Helm chart under deploy/helm/sentistream: lint, render, validate; no cluster needed.

``tools/k8s/fetch.sh`` builds a pinned helm from the Go module proxy and copies the KEDA and
prometheus-operator CRDs out of their Go modules, once, into ``.cache/k8s/`` (about 100 s the
first time). Core resources are validated offline with ``kubernetes-validate`` (it ships the
Kubernetes JSON schemas), the custom resources against their CRDs' OpenAPI v3 schemas.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sentistream.worker.settings import ENV_PREFIX, WorkerSettings

yaml = pytest.importorskip("yaml", reason="PyYAML missing: pip install pyyaml (a dev dependency)")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate",
    reason="kubernetes-validate missing: pip install kubernetes-validate (a dev dependency)",
)
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with kubernetes-validate")

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "sentistream"
FULL_VALUES = CHART / "ci" / "keda-secrets-values.yaml"
FETCH = ROOT / "tools" / "k8s" / "fetch.sh"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "sentistream.json"
DOCKERFILE = ROOT / "docker" / "worker.Dockerfile"
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas
#: kubernetes-validate ships.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
CORE_KINDS = {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"}
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}


@pytest.fixture(scope="session")
def k8s_tools() -> dict[str, Path]:
    """HELM and the *_CRD files, fetched once into .cache/k8s/ by tools/k8s/fetch.sh."""
    listed = _fetch("paths")
    if not all(path.is_file() for path in listed.values()):
        if shutil.which("go") is None:
            pytest.skip("Go is not installed: it builds helm (tools/k8s/fetch.sh); see go.dev/dl")
        listed = _fetch("fetch", timeout=900)
    return listed


def _fetch(command: str, timeout: float = 30) -> dict[str, Path]:
    done = subprocess.run(
        ["bash", str(FETCH), command], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"tools/k8s/fetch.sh {command}:\n{done.stderr}"
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {name: Path(value) for name, value in pairs}


def _helm(tools: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools["HELM"]), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # helm keeps its config and cache under $HOME unless told otherwise.
        env={**os.environ, "HELM_CACHE_HOME": str(tools["HELM"].parent / "home")},
    )


def render(
    tools: dict[str, Path],
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    kube_version: str = KUBE_VERSIONS[-1],
) -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART), "--namespace", "streams"]
    args += ["--kube-version", kube_version]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    done = _helm(tools, *args)
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_error(tools: dict[str, Path], *sets: str) -> str:
    args = ["template", "rel", str(CHART), "--kube-version", KUBE_VERSIONS[-1]]
    for item in sets:
        args += ["--set", item]
    done = _helm(tools, *args)
    assert done.returncode != 0, f"helm {' '.join(args)} should have failed"
    return done.stderr


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), f"one of each kind expected: {kinds}"
    return {d["kind"]: d for d in docs}


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    entries = container(docs)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"an environment variable is set twice: {names}"
    return {e["name"]: e for e in entries}


def crd_validator(path: Path) -> Any:
    crd = yaml.safe_load(path.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return jsonschema.Draft7Validator(version["schema"]["openAPIV3Schema"])


# -------------------------------------------------------------------------- helm lint


@pytest.mark.parametrize("values", [(), (FULL_VALUES,)], ids=["default", "keda-and-secrets"])
def test_helm_lint_is_clean(k8s_tools: dict[str, Path], values: tuple[Path, ...]) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSIONS[-1]]
    for path in values:
        args += ["-f", str(path)]
    done = _helm(k8s_tools, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


# ---------------------------------------------------------------- what gets rendered


def test_default_values_render_the_core_resources_only(k8s_tools: dict[str, Path]) -> None:
    docs = render(k8s_tools)
    assert {d["kind"] for d in docs} == CORE_KINDS
    assert by_kind(docs)["Deployment"]["spec"]["replicas"] == 2


def test_keda_and_secrets_values_render_every_resource(k8s_tools: dict[str, Path]) -> None:
    docs = render(k8s_tools, [FULL_VALUES])
    assert {d["kind"] for d in docs} == CORE_KINDS | CRD_KINDS
    # KEDA owns the replica count: a replicas field would fight it on every upgrade.
    assert "replicas" not in by_kind(docs)["Deployment"]["spec"]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [(), (FULL_VALUES,)], ids=["default", "keda-and-secrets"])
def test_core_resources_match_the_kubernetes_schemas(
    k8s_tools: dict[str, Path], values: tuple[Path, ...], kube_version: str
) -> None:
    for doc in render(k8s_tools, values, kube_version=kube_version):
        if doc["kind"] in CORE_KINDS:
            kubernetes_validate.validate(doc, kube_version, strict=True)


def test_the_kubernetes_schema_check_catches_a_broken_deployment(
    k8s_tools: dict[str, Path],
) -> None:
    deployment = by_kind(render(k8s_tools))["Deployment"]
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "thirty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


def test_custom_resources_match_their_crd_schemas(k8s_tools: dict[str, Path]) -> None:
    crds = {
        "ScaledObject": k8s_tools["SCALEDOBJECT_CRD"],
        "TriggerAuthentication": k8s_tools["TRIGGERAUTHENTICATION_CRD"],
        "ServiceMonitor": k8s_tools["SERVICEMONITOR_CRD"],
    }
    docs = by_kind(render(k8s_tools, [FULL_VALUES]))
    for kind, path in crds.items():
        errors = [e.message for e in crd_validator(path).iter_errors(docs[kind])]
        assert errors == [], f"{kind} against {path.name}: {errors}"


def test_the_crd_schema_check_catches_a_broken_scaled_object(k8s_tools: dict[str, Path]) -> None:
    scaled = by_kind(render(k8s_tools, [FULL_VALUES]))["ScaledObject"]
    scaled["spec"]["maxReplicaCount"] = "twelve"
    del scaled["spec"]["triggers"][0]["type"]
    errors = list(crd_validator(k8s_tools["SCALEDOBJECT_CRD"]).iter_errors(scaled))
    assert len(errors) == 2, [e.message for e in errors]


# --------------------------------------------------------------------- what it means


def test_grace_period_outlasts_the_worker_shutdown(k8s_tools: dict[str, Path]) -> None:
    for sets in ([], ["worker.shutdownTimeoutSeconds=45"]):
        docs = render(k8s_tools, sets=sets)
        pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
        shutdown = float(env_of(docs)["SENTISTREAM_SHUTDOWN_TIMEOUT_S"]["value"])
        assert pod["terminationGracePeriodSeconds"] > shutdown


def test_probes_use_the_health_endpoints_on_the_metrics_port(k8s_tools: dict[str, Path]) -> None:
    docs = render(k8s_tools)
    worker = container(docs)
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    (port,) = worker["ports"]
    assert port["name"] == "metrics"
    assert env_of(docs)["SENTISTREAM_METRICS_PORT"]["value"] == str(port["containerPort"])
    service = by_kind(docs)["Service"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]


@pytest.mark.parametrize("values", [(), (FULL_VALUES,)], ids=["default", "full"])
def test_every_setting_the_chart_sets_is_a_worker_setting_with_a_valid_value(
    k8s_tools: dict[str, Path], values: tuple[Path, ...]
) -> None:
    """Names and values: the full values once set ``exactly_once``, which the worker refuses
    (exit 2 at every start, a crash loop)."""
    known = {ENV_PREFIX + name.upper() for name in WorkerSettings.model_fields}
    env = {
        n: e for n, e in env_of(render(k8s_tools, list(values))).items() if n.startswith(ENV_PREFIX)
    }
    assert set(env) - known == set()
    plain = {n: e["value"] for n, e in env.items() if "value" in e}
    assert plain, "the chart sets no plain values"
    fields = {n.removeprefix(ENV_PREFIX).lower(): v for n, v in plain.items()}
    # Set from a Secret or the pod's name at run time: stand-ins of the right shape.
    fields |= {
        n.removeprefix(ENV_PREFIX).lower(): "from-the-cluster" for n in set(env) - set(plain)
    }
    WorkerSettings.model_validate(fields)  # raises on a value the worker would refuse


def test_default_model_dir_is_the_one_baked_into_the_image(k8s_tools: dict[str, Path]) -> None:
    baked = re.search(r"SENTISTREAM_MODEL_DIR=(\S+)", DOCKERFILE.read_text())
    assert baked is not None
    assert env_of(render(k8s_tools))["SENTISTREAM_MODEL_DIR"]["value"] == baked.group(1)


def test_credentials_come_only_from_secret_references(k8s_tools: dict[str, Path]) -> None:
    docs = render(k8s_tools, [FULL_VALUES])
    env = env_of(docs)
    for name in ("SENTISTREAM_SASL_USERNAME", "SENTISTREAM_SASL_PASSWORD"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "sentistream-kafka"
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart never holds a secret"
    volumes = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["volumes"]
    (tls,) = [v for v in volumes if v["name"] == "kafka-tls"]
    assert tls["secret"]["secretName"] == "sentistream-kafka-tls"
    auth = by_kind(docs)["TriggerAuthentication"]["spec"]["secretTargetRef"]
    assert {a["parameter"] for a in auth} >= {"sasl", "username", "password"}
    assert by_kind(docs)["ScaledObject"]["spec"]["triggers"][0]["authenticationRef"] == {
        "name": by_kind(docs)["TriggerAuthentication"]["metadata"]["name"]
    }


def test_transactional_id_can_come_from_the_pod_name(k8s_tools: dict[str, Path]) -> None:
    env = container(render(k8s_tools, [FULL_VALUES]))["env"]
    names = [e["name"] for e in env]
    assert env[0] == {
        "name": "POD_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    # Kubernetes expands $(POD_NAME) only from variables defined before it.
    assert names.index("POD_NAME") < names.index("SENTISTREAM_TRANSACTIONAL_ID")


def test_secret_env_without_a_secret_is_refused(k8s_tools: dict[str, Path]) -> None:
    stderr = render_error(k8s_tools, "kafka.secretEnv.SENTISTREAM_SASL_PASSWORD=password")
    assert "kafka.existingSecret" in stderr


def test_keda_replicas_are_capped_at_the_partition_count(k8s_tools: dict[str, Path]) -> None:
    keda = ["autoscaling.keda.enabled=true", "autoscaling.keda.maxReplicas=20"]
    for partitions, expected in ((12, 12), (30, 20)):
        docs = render(k8s_tools, sets=[*keda, f"kafka.inputPartitions={partitions}"])
        scaled = by_kind(docs)["ScaledObject"]["spec"]
        assert scaled["maxReplicaCount"] == expected
        (trigger,) = scaled["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == "sentistream"
        assert trigger["metadata"]["topic"] == "tweets"
        assert trigger["metadata"]["allowIdleConsumers"] == "false"


def test_keda_min_replicas_above_the_partitions_is_refused(k8s_tools: dict[str, Path]) -> None:
    stderr = render_error(
        k8s_tools,
        "autoscaling.keda.enabled=true",
        "autoscaling.keda.minReplicas=8",
        "kafka.inputPartitions=6",
    )
    assert "minReplicas (8)" in stderr


def test_service_monitor_scrapes_the_service(k8s_tools: dict[str, Path]) -> None:
    docs = by_kind(render(k8s_tools, [FULL_VALUES]))
    monitor, service = docs["ServiceMonitor"], docs["Service"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_pod_disruption_budget_selects_the_workers(k8s_tools: dict[str, Path]) -> None:
    docs = by_kind(render(k8s_tools))
    pdb, deployment = docs["PodDisruptionBudget"], docs["Deployment"]
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_dashboard_config_map_holds_the_grafana_dashboard(k8s_tools: dict[str, Path]) -> None:
    config_map = by_kind(render(k8s_tools))["ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["sentistream.json"]) == json.loads(DASHBOARD.read_text())
