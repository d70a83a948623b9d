"""The Kubernetes Pod Security Standards, checked on burst pods before anything is launched.

A burst pod runs on an EC2 instance of its own, with the instance role and the host's network a
container escape away, and (unlike a kubelet on a node) ORCA sees every pod after admission: a
cluster whose namespaces carry no `pod-security.kubernetes.io/enforce` label would otherwise pass
privileged pods through. So the planning activity checks every pod against the level
`security.podSecurityLevel` names (`privileged`, `baseline` — the default — or `restricted`),
with the rules of the standard (kubernetes.io/docs/concepts/security/pod-security-standards/,
the policy version `latest` as of Kubernetes 1.31):

- baseline: no hostProcess, no host namespaces (hostNetwork, hostPID, hostIPC), no privileged
  containers, capabilities added only from the baseline list, no hostPath volumes, no hostPorts,
  AppArmor only RuntimeDefault/Localhost, SELinux types only the container ones and no user or
  role, procMount Default, seccomp not Unconfined, only the safe sysctls;
- restricted, on top: volumes only of the restricted kinds, allowPrivilegeEscalation false,
  runAsNonRoot true, no runAsUser 0, seccomp RuntimeDefault or Localhost, capabilities drop ALL
  and add at most NET_BIND_SERVICE.

Each rule is a plain function over the pod's spec returning the violations it finds, each naming
the field (`spec.containers[0].securityContext.privileged`). `check_pod_security` raises
`InvalidPodSpec` naming the first field, the level and every violation, so the user fixes the
pod in one go; the workflow reports it as it reports any invalid pod (a condition and an event,
nothing launched). Checks are on the containers, init containers and ephemeral containers alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orca.launch_spec import InvalidPodSpec
from orca.settings import PodSecurityLevel

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
RESTRICTED_VOLUME_KINDS = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_VOLUME_META_KEYS = frozenset({"name"})
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


@dataclass(frozen=True)
class Violation:
    field: str
    """The pod field, as `kubectl explain` spells it: `spec.containers[0].securityContext`."""
    problem: str


Rule = Callable[[Mapping[str, Any]], Iterator[Violation]]


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in _CONTAINER_LISTS:
        for index, container in enumerate(spec.get(kind) or []):
            yield f"spec.{kind}[{index}]", container


def _security_contexts(
    spec: Mapping[str, Any],
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The pod's and each container's securityContext (possibly empty), with their paths."""
    yield "spec.securityContext", spec.get("securityContext") or {}
    for path, container in _containers(spec):
        yield f"{path}.securityContext", container.get("securityContext") or {}


# -- baseline ---------------------------------------------------------------------------------
def host_process(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, context in _security_contexts(pod.get("spec") or {}):
        if (context.get("windowsOptions") or {}).get("hostProcess"):
            yield Violation(f"{path}.windowsOptions.hostProcess", "Windows HostProcess pods")


def host_namespaces(pod: Mapping[str, Any]) -> Iterator[Violation]:
    spec = pod.get("spec") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield Violation(f"spec.{field}", f"{field}: true (the host's namespace)")


def privileged_containers(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, container in _containers(pod.get("spec") or {}):
        if (container.get("securityContext") or {}).get("privileged"):
            yield Violation(f"{path}.securityContext.privileged", "privileged: true")


def _added_capabilities(
    pod: Mapping[str, Any], allowed: frozenset[str], level: str
) -> Iterator[Violation]:
    for path, container in _containers(pod.get("spec") or {}):
        capabilities = (container.get("securityContext") or {}).get("capabilities") or {}
        extra = [str(c) for c in capabilities.get("add") or [] if str(c) not in allowed]
        if extra:
            yield Violation(
                f"{path}.securityContext.capabilities.add",
                f"adding {', '.join(extra)} (the {level} level allows "
                f"{', '.join(sorted(allowed))})",
            )


def baseline_capabilities(pod: Mapping[str, Any]) -> Iterator[Violation]:
    yield from _added_capabilities(pod, BASELINE_CAPABILITIES, "baseline")


def host_path_volumes(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for index, volume in enumerate((pod.get("spec") or {}).get("volumes") or []):
        if "hostPath" in volume:
            yield Violation(f"spec.volumes[{index}].hostPath", "hostPath volumes")


def host_ports(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, container in _containers(pod.get("spec") or {}):
        for index, port in enumerate(container.get("ports") or []):
            if port.get("hostPort"):
                yield Violation(f"{path}.ports[{index}].hostPort", "host ports")


def app_armor(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, context in _security_contexts(pod.get("spec") or {}):
        kind = (context.get("appArmorProfile") or {}).get("type")
        if kind not in (None, "RuntimeDefault", "Localhost"):
            yield Violation(f"{path}.appArmorProfile.type", f"AppArmor profile {kind}")
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    for key, value in annotations.items():
        if key.startswith(_APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            yield Violation(f"metadata.annotations[{key}]", f"AppArmor profile {value}")


def se_linux(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, context in _security_contexts(pod.get("spec") or {}):
        options = context.get("seLinuxOptions") or {}
        if options.get("type", "") not in SELINUX_TYPES:
            yield Violation(f"{path}.seLinuxOptions.type", f"SELinux type {options['type']}")
        for field in ("user", "role"):
            if options.get(field):
                yield Violation(f"{path}.seLinuxOptions.{field}", f"a custom SELinux {field}")


def proc_mount(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, container in _containers(pod.get("spec") or {}):
        mount = (container.get("securityContext") or {}).get("procMount")
        if mount not in (None, "Default"):
            yield Violation(f"{path}.securityContext.procMount", f"procMount {mount}")


def seccomp_not_unconfined(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, context in _security_contexts(pod.get("spec") or {}):
        if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
            yield Violation(f"{path}.seccompProfile.type", "seccomp profile Unconfined")


def sysctls(pod: Mapping[str, Any]) -> Iterator[Violation]:
    context = (pod.get("spec") or {}).get("securityContext") or {}
    for index, sysctl in enumerate(context.get("sysctls") or []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield Violation(
                f"spec.securityContext.sysctls[{index}].name", f"sysctl {sysctl.get('name')}"
            )


# -- restricted -------------------------------------------------------------------------------
def volume_kinds(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for index, volume in enumerate((pod.get("spec") or {}).get("volumes") or []):
        for kind in set(volume) - _VOLUME_META_KEYS - RESTRICTED_VOLUME_KINDS:
            if kind != "hostPath":  # reported by the baseline rule already
                yield Violation(f"spec.volumes[{index}].{kind}", f"{kind} volumes")


def privilege_escalation(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, container in _containers(pod.get("spec") or {}):
        if (container.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False:
            yield Violation(
                f"{path}.securityContext.allowPrivilegeEscalation",
                "allowPrivilegeEscalation not set to false",
            )


def run_as_non_root(pod: Mapping[str, Any]) -> Iterator[Violation]:
    spec = pod.get("spec") or {}
    pod_says = (spec.get("securityContext") or {}).get("runAsNonRoot")
    for path, container in _containers(spec):
        says = (container.get("securityContext") or {}).get("runAsNonRoot")
        if says is False or (says is None and pod_says is not True):
            yield Violation(
                f"{path}.securityContext.runAsNonRoot",
                "runAsNonRoot not true (here or in spec.securityContext)",
            )


def run_as_root_user(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, context in _security_contexts(pod.get("spec") or {}):
        if context.get("runAsUser") == 0:
            yield Violation(f"{path}.runAsUser", "runAsUser 0 (root)")


def seccomp_required(pod: Mapping[str, Any]) -> Iterator[Violation]:
    spec = pod.get("spec") or {}
    pod_type = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    for path, container in _containers(spec):
        kind = ((container.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        if (kind or pod_type) not in ("RuntimeDefault", "Localhost", "Unconfined"):
            yield Violation(
                f"{path}.securityContext.seccompProfile.type",
                "no seccomp profile (RuntimeDefault or Localhost, here or in spec.securityContext)",
            )


def restricted_capabilities(pod: Mapping[str, Any]) -> Iterator[Violation]:
    for path, container in _containers(pod.get("spec") or {}):
        capabilities = (container.get("securityContext") or {}).get("capabilities") or {}
        if "ALL" not in [str(c) for c in capabilities.get("drop") or []]:
            yield Violation(
                f"{path}.securityContext.capabilities.drop", "capabilities not dropping ALL"
            )
    yield from _added_capabilities(pod, RESTRICTED_CAPABILITIES, "restricted")


BASELINE_RULES: tuple[Rule, ...] = (
    host_process,
    host_namespaces,
    privileged_containers,
    baseline_capabilities,
    host_path_volumes,
    host_ports,
    app_armor,
    se_linux,
    proc_mount,
    seccomp_not_unconfined,
    sysctls,
)
RESTRICTED_RULES: tuple[Rule, ...] = (
    volume_kinds,
    privilege_escalation,
    run_as_non_root,
    run_as_root_user,
    seccomp_required,
    restricted_capabilities,
)


def rules_for(level: PodSecurityLevel) -> Sequence[Rule]:
    if level is PodSecurityLevel.PRIVILEGED:
        return ()
    if level is PodSecurityLevel.BASELINE:
        return BASELINE_RULES
    # restricted: its capability rule replaces baseline's (a narrower list of additions)
    return tuple(r for r in BASELINE_RULES if r is not baseline_capabilities) + RESTRICTED_RULES


def violations(pod: Mapping[str, Any], level: PodSecurityLevel) -> list[Violation]:
    """Every violation of `level` in the pod, in rule order (pure)."""
    return [violation for rule in rules_for(level) for violation in rule(pod)]


def check_pod_security(pod: Mapping[str, Any], level: PodSecurityLevel) -> None:
    """Raise `InvalidPodSpec` naming the first offending field, the level and every
    violation when the pod does not meet `level`."""
    found = violations(pod, level)
    if not found:
        return
    listed = "; ".join(f"{v.field}: {v.problem}" for v in found)
    raise InvalidPodSpec(
        found[0].field,
        f"not allowed by the {level} Pod Security Standard of this cluster "
        f"(security.podSecurityLevel: {level}): {listed}",
    )
