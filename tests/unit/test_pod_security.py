"""The Pod Security Standards rules (`orca.pod_security`), one test per rule: each refuses what
the standard refuses at its level, names the field, and lets the compliant pod through."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orca.launch_spec import InvalidPodSpec
from orca.pod_security import check_pod_security, violations
from orca.settings import PodSecurityLevel, Settings

PRIVILEGED = PodSecurityLevel.PRIVILEGED
BASELINE = PodSecurityLevel.BASELINE
RESTRICTED = PodSecurityLevel.RESTRICTED


def pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "ml", "uid": "u"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    base["spec"].update(spec)
    return base


def with_container_context(**context: Any) -> dict[str, Any]:
    return pod(containers=[{"name": "main", "image": "busybox", "securityContext": context}])


def restricted_pod() -> dict[str, Any]:
    """A pod that meets the restricted level."""
    return pod(
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        containers=[
            {
                "name": "main",
                "image": "busybox",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                },
            }
        ],
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )


def fields(pod: dict[str, Any], level: PodSecurityLevel) -> list[str]:
    return [v.field for v in violations(pod, level)]


def test_the_default_level_is_baseline() -> None:
    assert Settings(aws={"region": "us-west-2"}).security.pod_security_level is BASELINE


def test_a_plain_pod_meets_baseline_and_the_restricted_pod_meets_restricted() -> None:
    assert fields(pod(), BASELINE) == []
    assert fields(restricted_pod(), RESTRICTED) == []
    assert fields(restricted_pod(), BASELINE) == []


def test_privileged_containers_are_refused_from_baseline_with_field_and_level() -> None:
    privileged = with_container_context(privileged=True)
    assert fields(privileged, PRIVILEGED) == []
    with pytest.raises(InvalidPodSpec) as refused:
        check_pod_security(privileged, BASELINE)
    assert refused.value.annotation == "spec.containers[0].securityContext.privileged"
    assert "baseline" in str(refused.value)
    assert "security.podSecurityLevel" in str(refused.value)
    init = pod(initContainers=[{"name": "i", "securityContext": {"privileged": True}}])
    assert fields(init, BASELINE) == ["spec.initContainers[0].securityContext.privileged"]


@pytest.mark.parametrize("field", ["hostNetwork", "hostPID", "hostIPC"])
def test_host_namespaces_are_refused(field: str) -> None:
    assert fields(pod(**{field: True}), BASELINE) == [f"spec.{field}"]
    assert fields(pod(**{field: False}), BASELINE) == []


def test_host_path_volumes_are_refused() -> None:
    spec = pod(volumes=[{"name": "d", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}])
    assert fields(spec, BASELINE) == ["spec.volumes[1].hostPath"]
    assert fields(spec, PRIVILEGED) == []


def test_host_ports_are_refused() -> None:
    spec = pod(containers=[{"name": "m", "ports": [{"containerPort": 80}, {"hostPort": 8080}]}])
    assert fields(spec, BASELINE) == ["spec.containers[0].ports[1].hostPort"]


def test_capabilities_beyond_the_level_are_refused() -> None:
    spec = with_container_context(capabilities={"add": ["CHOWN", "SYS_ADMIN", "NET_ADMIN"]})
    (violation,) = violations(spec, BASELINE)
    assert violation.field == "spec.containers[0].securityContext.capabilities.add"
    assert "SYS_ADMIN, NET_ADMIN" in violation.problem
    assert fields(with_container_context(capabilities={"add": ["CHOWN"]}), BASELINE) == []
    chown = restricted_pod()
    chown["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["CHOWN"]
    assert fields(chown, RESTRICTED) == ["spec.containers[0].securityContext.capabilities.add"]


def test_host_process_apparmor_selinux_procmount_seccomp_and_sysctls() -> None:
    assert fields(pod(securityContext={"windowsOptions": {"hostProcess": True}}), BASELINE) == [
        "spec.securityContext.windowsOptions.hostProcess"
    ]
    assert fields(with_container_context(appArmorProfile={"type": "Unconfined"}), BASELINE) == [
        "spec.containers[0].securityContext.appArmorProfile.type"
    ]
    annotated = pod()
    annotated["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/main": "unconfined"
    }
    assert fields(annotated, BASELINE) == [
        "metadata.annotations[container.apparmor.security.beta.kubernetes.io/main]"
    ]
    selinux = with_container_context(seLinuxOptions={"type": "spc_t", "user": "root"})
    assert fields(selinux, BASELINE) == [
        "spec.containers[0].securityContext.seLinuxOptions.type",
        "spec.containers[0].securityContext.seLinuxOptions.user",
    ]
    assert fields(with_container_context(seLinuxOptions={"type": "container_t"}), BASELINE) == []
    assert fields(with_container_context(procMount="Unmasked"), BASELINE) == [
        "spec.containers[0].securityContext.procMount"
    ]
    assert fields(pod(securityContext={"seccompProfile": {"type": "Unconfined"}}), BASELINE) == [
        "spec.securityContext.seccompProfile.type"
    ]
    sysctls = [{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax"}]
    assert fields(pod(securityContext={"sysctls": sysctls}), BASELINE) == [
        "spec.securityContext.sysctls[1].name"
    ]


def test_restricted_volume_kinds() -> None:
    spec = restricted_pod()
    spec["spec"]["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}})
    assert fields(spec, RESTRICTED) == ["spec.volumes[1].nfs"]
    assert fields(spec, BASELINE) == []


def test_restricted_privilege_escalation_non_root_and_root_user() -> None:
    escalating = restricted_pod()
    del escalating["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
    assert fields(escalating, RESTRICTED) == [
        "spec.containers[0].securityContext.allowPrivilegeEscalation"
    ]
    root = restricted_pod()
    del root["spec"]["securityContext"]["runAsNonRoot"]
    assert fields(root, RESTRICTED) == ["spec.containers[0].securityContext.runAsNonRoot"]
    container_says = copy.deepcopy(root)
    container_says["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = True
    assert fields(container_says, RESTRICTED) == []
    overridden = restricted_pod()
    overridden["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = False
    assert fields(overridden, RESTRICTED) == ["spec.containers[0].securityContext.runAsNonRoot"]
    uid0 = restricted_pod()
    uid0["spec"]["securityContext"]["runAsUser"] = 0
    assert fields(uid0, RESTRICTED) == ["spec.securityContext.runAsUser"]
    assert fields(uid0, BASELINE) == []


def test_restricted_seccomp_and_dropping_all_capabilities() -> None:
    no_seccomp = restricted_pod()
    del no_seccomp["spec"]["securityContext"]["seccompProfile"]
    assert fields(no_seccomp, RESTRICTED) == [
        "spec.containers[0].securityContext.seccompProfile.type"
    ]
    per_container = copy.deepcopy(no_seccomp)
    per_container["spec"]["containers"][0]["securityContext"]["seccompProfile"] = {
        "type": "Localhost"
    }
    assert fields(per_container, RESTRICTED) == []
    keeps = restricted_pod()
    keeps["spec"]["containers"][0]["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}
    assert fields(keeps, RESTRICTED) == ["spec.containers[0].securityContext.capabilities.drop"]


def test_every_violation_is_in_the_message() -> None:
    spec = pod(hostNetwork=True, volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    with pytest.raises(InvalidPodSpec) as refused:
        check_pod_security(spec, BASELINE)
    assert refused.value.annotation == "spec.hostNetwork"
    assert "spec.volumes[0].hostPath" in str(refused.value)
