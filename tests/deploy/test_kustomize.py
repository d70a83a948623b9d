"""The kustomize base (rendered by the real `kubectl kustomize`) and the Helm chart with its
default values (rendered by the real `helm template`), each checked as a reviewer would: probes,
a restrictive security context, resources, ServiceAccounts, least-privilege RBAC, and a
config.yaml that ORCA itself loads. Every check below runs on both renders, so the two install
paths cannot drift apart; the chart's own options are in test_helm.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orca.settings import DEFAULT_CONFIG_PATHS, Settings, load_settings
from tests.deploy.conftest import DEPLOY, render

pytestmark = pytest.mark.kubectl

NAMESPACE = "orca-system"
NODE_LEASE_NAMESPACE = "kube-node-lease"
PROCESSES = {
    # Deployment: (ServiceAccount, `orca` subcommand, readiness path)
    "orca-worker": ("orca-worker", "worker", "/healthz"),
    "orca-watcher": ("orca-watcher", "watcher", "/readyz"),
}


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def deployments(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for deployment in of_kind(objects, "Deployment"):
        yield deployment["metadata"]["name"], deployment


@pytest.fixture(scope="session", params=["kustomize-base", "helm-chart"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The same install, from either path: the kustomize base or the chart's defaults."""
    fixture = "base_objects" if request.param == "kustomize-base" else "chart_objects"
    rendered: list[dict[str, Any]] = request.getfixturevalue(fixture)
    return rendered


def config_map(objects: list[dict[str, Any]]) -> dict[str, Any]:
    maps = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("orca-")]
    assert len(maps) == 1, "expected the generated orca-config ConfigMap"
    return maps[0]


@pytest.fixture(scope="session")
def settings(objects: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The ConfigMap's config.yaml loaded by ORCA, with the env the watcher Deployment sets."""
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(config_map(objects)["data"]["config.yaml"])
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("ORCA_")]:
            env.delenv(name)
        return load_settings(path)


def test_base_renders_the_expected_objects(objects: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for expected in [
        ("ServiceAccount", "orca-worker"),
        ("ServiceAccount", "orca-watcher"),
        ("Deployment", "orca-worker"),
        ("Deployment", "orca-watcher"),
        ("Service", "orca-metrics"),
        ("Service", "orca-watcher-kubelet"),
        ("ClusterRole", "orca-watcher"),
        ("ClusterRole", "orca-worker"),
        ("ClusterRole", "orca-user"),
        ("Role", "orca-user"),
    ]:
        assert expected in kinds
    assert set(dict(deployments(objects))) == set(PROCESSES)
    (manager,) = {o["metadata"]["labels"]["app.kubernetes.io/managed-by"] for o in objects}
    # The chart leaves the namespace to `helm install --create-namespace` (or namespace.create).
    assert (("Namespace", NAMESPACE) in kinds) == (manager == "kustomize")


def test_namespaced_objects_live_in_orca_system(objects: list[dict[str, Any]]) -> None:
    """Only the node-lease and client-CA Roles and their bindings are elsewhere: the kubelet's
    Lease namespace, and kube-system where the cluster's client CA is published."""
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass"}
    for obj in objects:
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"]
            continue
        expected = NAMESPACE
        if obj["kind"] in ("Role", "RoleBinding") and "node-lease" in obj["metadata"]["name"]:
            expected = NODE_LEASE_NAMESPACE
        if obj["kind"] in ("Role", "RoleBinding") and "client-ca" in obj["metadata"]["name"]:
            expected = "kube-system"  # the cluster's client CA ConfigMap
        assert obj["metadata"].get("namespace") == expected, obj["metadata"]["name"]


def test_config_map_loads_with_orca_settings(settings: Settings) -> None:
    assert settings.aws.region
    assert settings.aws.subnets, "placeholders for subnets must be present"
    assert settings.aws.security_group_ids
    assert settings.aws.interruption_queue_url
    assert settings.aws.instance_profile
    assert settings.temporal.address != "localhost:7233", "a cluster cannot reach localhost"
    assert settings.watcher.leader_election.enabled


def test_deployments_run_the_right_command_as_the_right_account(
    objects: list[dict[str, Any]],
) -> None:
    for name, deployment in deployments(objects):
        account, subcommand, _ = PROCESSES[name]
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        assert spec["replicas"] == 2, f"{name}: two replicas, no single point of failure"
        assert pod["serviceAccountName"] == account
        named(objects, "ServiceAccount", account)
        (container,) = pod["containers"]
        assert [*container.get("command", []), *container["args"]][-1] == subcommand
        assert container["image"].startswith("ghcr.io/orca-research/orca:")
        selector = spec["selector"]["matchLabels"]
        labels = spec["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


def test_every_deployment_has_liveness_and_readiness_probes(
    objects: list[dict[str, Any]], settings: Settings
) -> None:
    health_ports = {
        "orca-worker": settings.worker.health_port,
        "orca-watcher": settings.watcher.health_port,
    }
    for name, deployment in deployments(objects):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe_name, path in (
            ("livenessProbe", "/healthz"),
            ("readinessProbe", PROCESSES[name][2]),
        ):
            probe = container.get(probe_name)
            assert probe is not None, f"{name} has no {probe_name}"
            assert probe["httpGet"]["path"] == path, f"{name} {probe_name}"
            port = probe["httpGet"]["port"]
            number = ports[port] if isinstance(port, str) else port
            assert number == health_ports[name], f"{name} {probe_name} probes the wrong port"
        assert ports["metrics"] == settings.metrics.port


def test_watcher_exposes_the_kubelet_endpoint_and_advertises_its_pod_ip(
    objects: list[dict[str, Any]], settings: Settings
) -> None:
    watcher = named(objects, "Deployment", "orca-watcher")
    (container,) = watcher["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["kubelet"] == settings.node.kubelet_port
    env = {e["name"]: e for e in container["env"]}
    assert env["ORCA_NODE__ADDRESS"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    lease_ns = env["ORCA_WATCHER__LEADER_ELECTION__LEASE_NAMESPACE"]
    assert lease_ns["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    service = named(objects, "Service", "orca-watcher-kubelet")
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == settings.node.kubelet_port
    assert service_port["targetPort"] == "kubelet"


def test_every_container_has_the_restrictive_security_context(
    objects: list[dict[str, Any]],
) -> None:
    for name, deployment in deployments(objects):
        pod = deployment["spec"]["template"]["spec"]
        pod_context = pod.get("securityContext", {})
        for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(host_namespace), f"{name}: {host_namespace}"
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, where
            assert context.get("runAsUser", pod_context.get("runAsUser", 1)) != 0, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("privileged", False) is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("capabilities", {}).get("add"), where
            seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where


def test_every_container_has_resource_requests_and_limits(
    objects: list[dict[str, Any]],
) -> None:
    for name, deployment in deployments(objects):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(section, {}), (
                        f"{name}/{container['name']} lacks {section}.{resource}"
                    )


def test_config_is_mounted_at_the_default_search_path(
    objects: list[dict[str, Any]],
) -> None:
    generated = config_map(objects)["metadata"]["name"]
    for name, deployment in deployments(objects):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        mount = mounts["/etc/orca"]
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["configMap"]["name"] == generated, name
        assert Path("/etc/orca/config.yaml") in DEFAULT_CONFIG_PATHS


def test_services_select_pods_that_serve_their_ports(objects: list[dict[str, Any]]) -> None:
    templates = [d["spec"]["template"] for _, d in deployments(objects)]
    for service in of_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        selected = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            for template in selected:
                (container,) = template["spec"]["containers"]
                names = {p["name"] for p in container["ports"]}
                assert port["targetPort"] in names, service["metadata"]["name"]


# -- RBAC -------------------------------------------------------------------------------------


def rules(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in of_kind(objects, "ClusterRole") + of_kind(objects, "Role"):
        for rule in obj.get("rules", []):
            yield f"{obj['kind']}/{obj['metadata']['name']}", rule


def test_rbac_grants_no_wildcards_or_escalation(objects: list[dict[str, Any]]) -> None:
    for where, rule in rules(objects):
        for field in ("verbs", "resources", "apiGroups", "resourceNames"):
            assert "*" not in rule.get(field, []), f"{where}: wildcard in {field}"
        assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate"}, where
        assert "nonResourceURLs" not in rule, where


def test_secrets_can_only_be_read_by_name(objects: list[dict[str, Any]]) -> None:
    granted = [(where, rule) for where, rule in rules(objects) if "secrets" in rule["resources"]]
    assert granted, "the worker must read Secrets that pods reference"
    for where, rule in granted:
        assert set(rule["verbs"]) == {"get"}, f"{where}: secrets may only be read by name"


def role_verbs(objects: list[dict[str, Any]], account: str) -> dict[str, set[str]]:
    """resource -> verbs that `account` holds, through any binding."""
    bound: set[tuple[str, str, str | None]] = set()
    for binding in of_kind(objects, "ClusterRoleBinding") + of_kind(objects, "RoleBinding"):
        if any(
            s["kind"] == "ServiceAccount" and s["name"] == account and s["namespace"] == NAMESPACE
            for s in binding["subjects"]
        ):
            ref = binding["roleRef"]
            bound.add((ref["kind"], ref["name"], binding["metadata"].get("namespace")))
    verbs: dict[str, set[str]] = {}
    for kind, name, namespace in bound:
        role = next(
            o
            for o in of_kind(objects, kind)
            if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
        )
        for rule in role["rules"]:
            for resource in rule["resources"]:
                verbs.setdefault(resource, set()).update(rule["verbs"])
    return verbs


def test_each_service_account_holds_exactly_what_its_code_calls(
    objects: list[dict[str, Any]],
) -> None:
    assert role_verbs(objects, "orca-worker") == {
        "pods": {"get", "list", "delete"},
        "pods/status": {"patch"},
        "events": {"create", "get", "patch"},
        "configmaps": {"get"},
        "secrets": {"get"},
        "namespaces": {"get"},
        "persistentvolumeclaims": {"get"},
        "persistentvolumes": {"get", "list", "create", "delete"},
        "storageclasses": {"get"},
    }
    assert role_verbs(objects, "orca-watcher") == {
        "nodes": {"create", "get", "patch"},
        "nodes/status": {"patch"},
        "pods": {"get", "list", "watch", "delete"},
        "leases": {"create", "get", "patch", "update"},
        "tokenreviews": {"create"},
        "subjectaccessreviews": {"create"},
        "configmaps": {"get"},
        "persistentvolumeclaims": {"list", "watch"},
        "persistentvolumes": {"list", "watch"},
        "storageclasses": {"list"},
    }
    client_ca = next(
        o for o in of_kind(objects, "Role") if o["metadata"]["name"].endswith("watcher-client-ca")
    )
    assert client_ca["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["extension-apiserver-authentication"],
            "verbs": ["get"],
        }
    ]


def test_name_limited_rules_match_the_configured_names(
    objects: list[dict[str, Any]], settings: Settings
) -> None:
    watcher = named(objects, "ClusterRole", "orca-watcher")
    for rule in watcher["rules"]:
        if "resourceNames" in rule:
            assert rule["resourceNames"] == [settings.node.name]
    node_lease = named(objects, "Role", "orca-watcher-node-lease")
    assert node_lease["metadata"]["namespace"] == NODE_LEASE_NAMESPACE
    assert [settings.node.name] in [r.get("resourceNames") for r in node_lease["rules"]]
    election = named(objects, "Role", "orca-watcher-leader-election")
    watcher_namespace = named(objects, "Deployment", "orca-watcher")["metadata"]["namespace"]
    assert election["metadata"]["namespace"] == watcher_namespace
    lease_name = settings.watcher.leader_election.lease_name
    assert [lease_name] in [r.get("resourceNames") for r in election["rules"]]


def test_bindings_name_existing_service_accounts(objects: list[dict[str, Any]]) -> None:
    accounts = {
        (a["metadata"]["namespace"], a["metadata"]["name"])
        for a in of_kind(objects, "ServiceAccount")
    }
    for binding in of_kind(objects, "ClusterRoleBinding") + of_kind(objects, "RoleBinding"):
        for subject in binding["subjects"]:
            assert (subject["namespace"], subject["name"]) in accounts


# -- overlay ----------------------------------------------------------------------------------


def test_dev_overlay_points_at_a_self_hosted_temporal(dev_objects: list[dict[str, Any]]) -> None:
    for name, deployment in deployments(dev_objects):
        assert deployment["spec"]["replicas"] == 1, name
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["ORCA_TEMPORAL__ADDRESS"].endswith(":7233")
    assert not of_kind(dev_objects, "PodDisruptionBudget")


# -- Temporal connection components (docs/temporal.md) ------------------------------------------


def test_temporal_components_configure_tls_and_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An overlay using every Temporal component renders, and what it sets loads as settings."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base = os.path.relpath(DEPLOY / "base", overlay)
    components = [
        os.path.relpath(DEPLOY / "components" / name, overlay)
        for name in ("temporal-mtls", "temporal-private-ca", "temporal-cloud-api-key")
    ]
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{base}]\ncomponents: [{', '.join(components)}]\n"
    )
    check_temporal_connection(render(overlay), tmp_path, monkeypatch)


def check_temporal_connection(
    objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both Deployments read the API key from its Secret and the mTLS files (client certificate,
    key, private CA) from the mounted Secret, and ORCA loads those paths as its settings."""
    config = tmp_path / "config.yaml"
    config.write_text(config_map(objects)["data"]["config.yaml"])
    for name, deployment in deployments(objects):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        key_ref = env["ORCA_TEMPORAL__API_KEY"]["valueFrom"]["secretKeyRef"]
        assert key_ref == {"name": "orca-temporal-api-key", "key": "api-key"}
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        (tls_volume,) = [v for v, secret in secrets.items() if secret == "orca-temporal-tls"]
        mounted_at = Path(mounts[tls_volume])
        # A mount nested in the read-only ConfigMap mount would fail to start.
        assert not mounted_at.is_relative_to("/etc/orca"), name
        for variable in [n for n in os.environ if n.startswith("ORCA_")]:
            monkeypatch.delenv(variable)
        for variable, entry in env.items():
            if "value" in entry:
                monkeypatch.setenv(variable, entry["value"])
        tls = load_settings(config).temporal.tls
        assert tls.enabled
        for path in (tls.client_cert_path, tls.client_key_path, tls.server_root_ca_path):
            assert path is not None, name
            assert path.parent == mounted_at, name


def test_a_network_policy_admits_only_the_kubelet_and_metrics_ports_of_the_watcher(
    objects: list[dict[str, Any]], base_objects: list[dict[str, Any]]
) -> None:
    watcher_labels = named(objects, "Deployment", "orca-watcher")["spec"]["template"]["metadata"][
        "labels"
    ]
    (policy,) = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"].items() <= watcher_labels.items()
    ]
    assert "Ingress" in policy["spec"]["policyTypes"]
    ports = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert ports == {"kubelet", "metrics"}
    # The base names the control plane's addresses (an example CIDR to replace, as its other
    # example values); the chart's `networkPolicy.kubeletFrom` does (any source by default).
    (base_policy,) = of_kind(base_objects, "NetworkPolicy")
    (kubelet_rule,) = [
        r for r in base_policy["spec"]["ingress"] if r["ports"][0]["port"] == "kubelet"
    ]
    assert kubelet_rule["from"] == [{"ipBlock": {"cidr": "10.0.0.0/16"}}]
