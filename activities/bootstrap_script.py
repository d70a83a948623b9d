"""What runs on a burst instance: the pod spec rendered as the start command (pure).

docs/instance-contract.md describes the contract and `orca.instance_contract` defines it (paths,
labels, the JSON documents, comments, status lines). The start script, sent through SSM Run
Command:

1. writes the pod manifest ORCA's tooling and the AWS emulator read (`/etc/orca/pod.json`, the
   `ORCA_POD_JSON` heredoc) — names, images, commands; never a secret value;
2. writes the runner document (`RunnerDocument`, `<pod dir>/runner.json`): everything about the
   pod the runner needs, resolved here from the spec — volumes and their files, and per container
   the `docker run` options, the arguments after the image and the env vars to export;
3. writes the static runner (`orca/instance_runner.sh`, package data) and starts it on the
   document as a transient systemd unit, so init containers that run for hours do not hit the
   SSM command timeout, and the runner survives the command.

The runner pulls each image, runs init containers one after another (restarting a failed one
unless the pod's restartPolicy is Never), then starts the app containers with docker (nerdctl
when docker is absent) on the host network, as a pod's containers share one network namespace,
each followed by a supervisor that restarts it per restartPolicy with the kubelet's back-off
(`waiting/CrashLoopBackOff`; never `docker run --restart`). It reports every container state
change as one JSON event to
the status log group (stream `<pod-uid>`); each container's output goes to the log group through
the awslogs driver (stream `<namespace>/<pod>/<uid>/<container>`).

Secrets never appear in the script: env values and files from Secrets become SSM SecureString
parameters under the pod's prefix (`BootstrapPlan.secret_parameters`, written by the activity
before the command is sent) and are fetched on the instance with `aws ssm get-parameter
--with-decryption`. Secret env values reach `docker run` through the environment, not argv.
Secrets Manager secrets (`orca.research/secrets-manager-env` / `-files`) are fetched on the
instance by the runner with temporary credentials that read exactly those secrets (the pod's
parameter `secrets-manager-credentials`, `orca.secrets_manager`); the document names only their
ARNs and JSON keys. Values from ConfigMaps are not secret and are in the document. The runner
passes every value as one argument (bash arrays read NUL-separated from the document), so no
value is ever parsed by a shell.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from orca.ebs_volumes import PodVolume, mount_point
from orca.instance_contract import (
    CONTAINER_NAME_PREFIX,
    LABEL_CONTAINER,
    LABEL_INIT,
    LABEL_POD_UID,
    POD_DIR,
    POD_JSON_PATH,
    RUNNER_DOCUMENT,
    RUNNER_DOCUMENT_DELIMITER,
    RUNNER_LOG,
    RUNNER_SCRIPT,
    SECRETS_MANAGER_DIR,
    START_VERB,
    STOP_GRACE_VARIABLE,
    STOP_VERB,
    ManifestContainer,
    PodManifest,
    RunnerBlockDevice,
    RunnerContainer,
    RunnerDocument,
    RunnerEnv,
    RunnerFile,
    RunnerUsageMetrics,
    RunnerVolume,
    SecretsManagerRef,
    command_comment,
    container_log_stream,
    pod_dir,
    pod_manifest_heredoc,
    runner_script,
    status_key_parameter,
    unit_name,
)
from orca.launch_spec import InvalidPodSpec, LaunchSpec, PodRef
from orca.secrets_manager import credentials_parameter, pod_secret_arns
from orca.units import parse_quantity
from orca.usage_metrics import PUBLISH_INTERVAL_SECONDS, agent_config_json, pod_dimension_value

__all__ = [
    "LABEL_CONTAINER",
    "LABEL_INIT",
    "LABEL_POD_UID",
    "POD_DIR",
    "POD_JSON_PATH",
    "STOP_GRACE_VARIABLE",
    "BootstrapPlan",
    "pod_manifest",
    "render_bootstrap",
    "render_stop_command",
    "start_comment",
    "stop_comment",
]

_ECR_REGISTRY_BASH = r"^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
"""An ECR image reference, as a bash ERE; group 1 is the registry's region."""
_ENV_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_DROPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


class BootstrapPlan(BaseModel):
    """The start command for one pod: what to send, and what to store first."""

    model_config = ConfigDict(frozen=True)

    script: str
    """The `commands` of the AWS-RunShellScript document."""
    secret_parameters: dict[str, str]
    """SSM SecureString parameter name -> value, to write before sending the script. Env values
    are stored as is; secret volume files as base64 (the runner decodes them, byte-exact)."""
    comment: str
    """The SSM command comment: `orca start <namespace>/<name>` (at most 100 characters)."""


def start_comment(pod: PodRef) -> str:
    return command_comment(START_VERB, pod.key)


def stop_comment(pod: PodRef) -> str:
    return command_comment(STOP_VERB, pod.key)


def render_stop_command(pod: PodRef, grace_seconds: int) -> str:
    """Stop every container of the pod: SIGTERM, then SIGKILL after the grace period. The
    runner unit is stopped first so nothing is restarted; containers report `Killed`."""
    grace = max(0, int(grace_seconds))
    unit = _unit_name(pod)
    q = shlex.quote
    return "\n".join(
        [
            "#!/bin/bash",
            f"# orca stop {pod.key} ({pod.uid})",
            "set -u",
            f"{STOP_GRACE_VARIABLE}={grace}",
            f"ORCA_POD_UID={q(pod.uid)}",
            f'ORCA_DIR={q(POD_DIR)}/"$ORCA_POD_UID"',
            "ORCA_RUNTIME=docker; command -v docker >/dev/null 2>&1 || ORCA_RUNTIME=nerdctl",
            'mkdir -p "$ORCA_DIR" && touch "$ORCA_DIR/stopping"',
            # the runner (only its main process) starts nothing more and cuts a back-off short;
            # its supervisors live on to report how the containers end
            f"systemctl kill --kill-whom=main --signal=SIGTERM {q(unit)} 2>/dev/null || true",
            f'ids=$("$ORCA_RUNTIME" ps -q --filter "label={LABEL_POD_UID}=$ORCA_POD_UID")',
            'if [ -n "$ids" ]; then',
            # a runner of an older ORCA restarted app containers with `docker run --restart`
            '  "$ORCA_RUNTIME" update --restart=no $ids >/dev/null 2>&1 || true',
            f'  "$ORCA_RUNTIME" stop --time "${STOP_GRACE_VARIABLE}" $ids',
            "fi",
            "# the runner ends once it has reported the last container states",
            f"for _ in $(seq 20); do systemctl is-active -q {q(unit)} 2>/dev/null || break; "
            "sleep 0.5; done",
            f"systemctl stop {q(unit)} 2>/dev/null || true",
            # the pod's EBS volumes, so the workflow's DetachVolume finds them unmounted
            'if [ -f "$ORCA_DIR/mounts" ]; then',
            "  sync",
            '  while read -r mounted; do umount "$mounted" || umount -l "$mounted"; done'
            ' < "$ORCA_DIR/mounts"',
            '  rm -f "$ORCA_DIR/mounts"',
            "fi",
            "",
        ]
    )


def render_bootstrap(
    pod: Mapping[str, Any],
    spec: LaunchSpec,
    *,
    log_group: str,
    status_log_group: str,
    region: str,
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
    secret_parameter_prefix: str,
    status_key: str | None = None,
    block_volumes: Sequence[PodVolume] = (),
) -> BootstrapPlan:
    """Render the start script for `pod` (Kubernetes API camelCase dict).

    `status_key` (hex, `orca.instance_contract.new_status_key`) becomes the pod's parameter
    `status_key_parameter(uid)`, which the runner signs its status reports with.

    `block_volumes` are the pod's claims resolved to EBS volumes (its plan's `volumes`): each is
    mounted by the runner at `mount_point(volume_id)`, and the containers' mounts of the claim's
    volume bind from there.

    Raises `InvalidPodSpec` naming the field (`spec.containers[0].env[2]`) when a non-optional
    ConfigMap or Secret key the pod refers to does not exist.
    """
    renderer = _Renderer(
        pod,
        spec,
        log_group=log_group,
        region=region,
        config_maps=config_maps,
        secrets=secrets,
        prefix=secret_parameter_prefix.rstrip("/") + "/",
        block_volumes=block_volumes,
    )
    key_parameter = None
    if status_key is not None:
        key_parameter = status_key_parameter(spec.pod.uid)
        renderer.secret_parameters[key_parameter] = status_key
    document = renderer.runner(status_log_group, key_parameter).to_json()
    runner = runner_script()
    delimiter = _heredoc_delimiter("ORCA_RUNNER", runner)
    unit = _unit_name(spec.pod)
    q = shlex.quote
    document_path = f"{renderer.pod_dir}/{RUNNER_DOCUMENT}"
    run = f"/bin/bash {q(renderer.runner_path)} {q(document_path)}"
    script = "\n".join(
        [
            "#!/bin/bash",
            f"# orca start {spec.pod.key} ({spec.pod.uid})",
            "set -euo pipefail",
            f"mkdir -p /etc/orca {q(renderer.pod_dir)}",
            *pod_manifest_heredoc(_manifest(pod, spec)),
            f"cat > {q(document_path)} <<'{RUNNER_DOCUMENT_DELIMITER}'",
            document,
            RUNNER_DOCUMENT_DELIMITER,
            f"chmod 600 {q(document_path)}",
            f"cat > {q(renderer.runner_path)} <<'{delimiter}'",
            runner.rstrip("\n"),
            delimiter,
            f"chmod 700 {q(renderer.runner_path)}",
            "# the runner reads its document with jq (in AL2023 and the DLAMIs; else installed)",
            "command -v jq >/dev/null 2>&1 || dnf install -y -q jq",
            "command -v openssl >/dev/null 2>&1 || dnf install -y -q openssl",
            "# a transient unit outlives this SSM command; long init containers miss its timeout",
            "if command -v systemd-run >/dev/null 2>&1; then",
            f"  systemctl reset-failed {q(unit)} 2>/dev/null || true",
            f"  systemd-run --unit={q(unit)} --collect {run}",
            "else",
            f"  setsid nohup {run} >{q(renderer.pod_dir)}/{RUNNER_LOG} 2>&1 &",
            "fi",
            "",
        ]
    )
    return BootstrapPlan(
        script=script,
        secret_parameters=renderer.secret_parameters,
        comment=start_comment(spec.pod),
    )


def pod_manifest(pod: Mapping[str, Any], spec: LaunchSpec) -> dict[str, Any]:
    """The `/etc/orca/pod.json` document of the contract (no env, no secret values)."""
    return _manifest(pod, spec).model_dump(by_alias=True, exclude_none=True, mode="json")


def _manifest(pod: Mapping[str, Any], spec: LaunchSpec) -> PodManifest:
    pod_spec = pod.get("spec") or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}

    def containers(key: str) -> list[ManifestContainer]:
        return [
            ManifestContainer(
                name=item.get("name"),
                image=item.get("image"),
                command=list(item["command"]) if item.get("command") else None,
                args=list(item["args"]) if item.get("args") else None,
                requests=_requests(item),
            )
            for item in pod_spec.get(key) or ()
        ]

    return PodManifest(
        namespace=spec.pod.namespace,
        name=spec.pod.name,
        uid=spec.pod.uid,
        annotations={
            str(k): str(v) for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS
        },
        init_containers=containers("initContainers"),
        containers=containers("containers"),
        restart_policy=spec.restart_policy,
    )


def _requests(container: Mapping[str, Any]) -> dict[str, str] | None:
    """What the container asked for; a limit stands for a missing request, as Kubernetes does."""
    resources = container.get("resources") or {}
    requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {str(k): str(v) for k, v in requests.items()} or None


def _unit_name(pod: PodRef) -> str:
    return unit_name(pod.uid)


def _heredoc_delimiter(base: str, body: str) -> str:
    """A delimiter no line of `body` equals, so no value can end the heredoc early."""
    lines = set(body.splitlines())
    delimiter = base
    while delimiter in lines:
        delimiter += "_"
    return delimiter


def _without_env(arguments: list[str], name: str) -> list[str]:
    """`-e NAME=value` pairs without the ones setting `name`."""
    pairs = zip(arguments[0::2], arguments[1::2], strict=True)
    kept = [(flag, value) for flag, value in pairs if value.split("=", 1)[0] != name]
    return [part for pair in kept for part in pair]


def _expand(value: str, known: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion against earlier literal env vars; `$$` escapes."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return known.get(name, match.group(0))

    return _ENV_REFERENCE.sub(replace, value)


class _Renderer:
    """Renders the runner script for one pod; collects the secret parameters on the way."""

    def __init__(
        self,
        pod: Mapping[str, Any],
        spec: LaunchSpec,
        *,
        log_group: str,
        region: str,
        config_maps: Mapping[str, Mapping[str, str]],
        secrets: Mapping[str, Mapping[str, str]],
        prefix: str,
        block_volumes: Sequence[PodVolume] = (),
    ) -> None:
        self.pod = pod
        self.block_volumes = {volume.volume_name: volume for volume in block_volumes}
        self.spec = spec
        self.pod_spec: Mapping[str, Any] = pod.get("spec") or {}
        self.metadata: Mapping[str, Any] = pod.get("metadata") or {}
        self.log_group = log_group
        self.region = region
        self.config_maps = config_maps
        self.secrets = secrets
        self.prefix = prefix
        self.secret_parameters: dict[str, str] = {}
        self.pod_dir = pod_dir(spec.pod.uid)
        self.runner_path = f"{self.pod_dir}/{RUNNER_SCRIPT}"
        self.volume_dirs: dict[str, str] = {}
        self.secrets_manager_mounts: list[str] = []

    # -- references -------------------------------------------------------------------------
    def _config_map_value(self, name: str, key: str, optional: bool, where: str) -> str | None:
        data = self.config_maps.get(name)
        if data is None or key not in data:
            if optional:
                return None
            missing = (
                f"ConfigMap {name!r}" if data is None else f"key {key!r} in ConfigMap {name!r}"
            )
            raise InvalidPodSpec(
                where,
                f"{missing} does not exist in namespace {self.spec.pod.namespace}; create it or "
                "mark the reference optional",
            )
        return data[key]

    def _secret_parameter(
        self, name: str, key: str, optional: bool, where: str, parameter: str, *, encode: bool
    ) -> str | None:
        data = self.secrets.get(name)
        if data is None or key not in data:
            if optional:
                return None
            missing = f"Secret {name!r}" if data is None else f"key {key!r} in Secret {name!r}"
            raise InvalidPodSpec(
                where,
                f"{missing} does not exist in namespace {self.spec.pod.namespace}; create it or "
                "mark the reference optional",
            )
        value = data[key]
        full = self.prefix + parameter
        self.secret_parameters[full] = (
            base64.b64encode(value.encode("utf-8")).decode("ascii") if encode else value
        )
        return full

    def _field_value(self, field_path: str, where: str) -> str | None:
        """A downward API `fieldRef`: metadata as a value, None for the instance's IP (read on
        the instance)."""
        meta = self.metadata
        simple = {
            "metadata.name": self.spec.pod.name,
            "metadata.namespace": self.spec.pod.namespace,
            "metadata.uid": self.spec.pod.uid,
            "spec.nodeName": str(self.pod_spec.get("nodeName") or ""),
            "spec.serviceAccountName": str(self.pod_spec.get("serviceAccountName") or ""),
        }
        if field_path in simple:
            return simple[field_path]
        if field_path in ("status.podIP", "status.hostIP", "status.podIPs", "status.hostIPs"):
            return None
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
        if match:
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        raise InvalidPodSpec(
            where,
            f"fieldRef {field_path!r} is not available on a burst instance; supported: "
            + ", ".join([*simple, "status.podIP", "status.hostIP", "metadata.labels['…']"]),
        )

    # -- env --------------------------------------------------------------------------------
    def _env(self, container: Mapping[str, Any], where: str) -> tuple[list[str], list[RunnerEnv]]:
        """(`-e NAME=value` argument pairs, env vars the runner exports before `run`).
        Exported ones come from SSM or the instance and never appear in argv or the script."""
        literal: dict[str, str] = {}
        exported: list[RunnerEnv] = []
        name_of = container.get("name", "")

        def secret_env(env_name: str, secret: str, key: str, optional: bool, at: str) -> None:
            parameter = self._secret_parameter(
                secret, key, optional, at, f"{name_of}/env/{env_name}", encode=False
            )
            if parameter is not None:
                literal.pop(env_name, None)
                exported[:] = [e for e in exported if e.name != env_name]
                exported.append(RunnerEnv(name=env_name, secret_parameter=parameter))

        for index, source in enumerate(container.get("envFrom") or ()):
            at = f"{where}.envFrom[{index}]"
            env_prefix = source.get("prefix") or ""
            if "configMapRef" in source:
                ref = source["configMapRef"]
                data = self.config_maps.get(ref.get("name", ""))
                if data is None and not ref.get("optional"):
                    self._config_map_value(ref.get("name", ""), "", False, at)
                for key, value in (data or {}).items():
                    literal[env_prefix + key] = value
            if "secretRef" in source:
                ref = source["secretRef"]
                data = self.secrets.get(ref.get("name", ""))
                if data is None and not ref.get("optional"):
                    self._secret_parameter(ref.get("name", ""), "", False, at, "", encode=False)
                for key in data or {}:
                    secret_env(env_prefix + key, ref["name"], key, False, at)

        for index, item in enumerate(container.get("env") or ()):
            at = f"{where}.env[{index}]"
            env_name = str(item.get("name", ""))
            source = item.get("valueFrom")
            if source is None:
                literal[env_name] = _expand(str(item.get("value", "")), literal)
                exported[:] = [e for e in exported if e.name != env_name]
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                found = self._config_map_value(
                    ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional")), at
                )
                if found is not None:
                    literal[env_name] = found
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret_env(
                    env_name, ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional")), at
                )
            elif "fieldRef" in source:
                field = self._field_value(source["fieldRef"].get("fieldPath", ""), at)
                literal.pop(env_name, None)
                exported[:] = [e for e in exported if e.name != env_name]
                exported.append(RunnerEnv(name=env_name, value=field, host_ip=field is None))
            elif "resourceFieldRef" in source:
                literal[env_name] = self._resource_field(container, source["resourceFieldRef"], at)
            else:
                raise InvalidPodSpec(
                    at,
                    f"env {env_name!r} has an unsupported valueFrom; supported: configMapKeyRef, "
                    "secretKeyRef, fieldRef, resourceFieldRef",
                )
        arguments: list[str] = []
        for env_name, value in literal.items():
            arguments += ["-e", f"{env_name}={value}"]
        return arguments, exported

    def _resource_field(
        self, container: Mapping[str, Any], ref: Mapping[str, Any], where: str
    ) -> str:
        resource = str(ref.get("resource", ""))
        kind, _, name = resource.partition(".")
        resources = container.get("resources") or {}
        amount = (resources.get(kind) or {}).get(name)
        if amount is None and kind == "requests":
            amount = (resources.get("limits") or {}).get(name)
        if amount is None:
            return "0"
        try:
            value = parse_quantity(amount) / parse_quantity(ref.get("divisor") or "1")
        except (ValueError, ArithmeticError):
            raise InvalidPodSpec(
                where, f"resourceFieldRef {resource!r} cannot be computed"
            ) from None
        whole = value.to_integral_value(rounding="ROUND_CEILING")
        return str(int(whole))

    # -- volumes ----------------------------------------------------------------------------
    def _secrets_manager_volume(self) -> RunnerVolume | None:
        """The files of `orca.research/secrets-manager-files`, fetched by the runner into one
        host directory; `_mounts` binds each at its path in every container."""
        files = self.spec.secrets_manager_files
        if not files:
            return None
        host = f"{self.pod_dir}/{SECRETS_MANAGER_DIR}"
        self.secrets_manager_mounts = [
            f"{host}/{index}:{item.path}:ro" for index, item in enumerate(files)
        ]
        return RunnerVolume(
            path=host,
            files=[
                RunnerFile(
                    path=f"{host}/{index}",
                    secrets_manager=SecretsManagerRef(arn=item.secret_arn, json_key=item.json_key),
                    mode=0o644,
                )
                for index, item in enumerate(files)
            ],
            world_readable=True,
        )

    def _volumes(self) -> list[RunnerVolume]:
        volumes: list[RunnerVolume] = []
        secrets_manager = self._secrets_manager_volume()
        if secrets_manager is not None:
            volumes.append(secrets_manager)
        for index, volume in enumerate(self.pod_spec.get("volumes") or ()):
            name = str(volume.get("name", ""))
            where = f"spec.volumes[{index}]"
            if "persistentVolumeClaim" in volume:
                block = self.block_volumes.get(name)
                if block is None:
                    raise InvalidPodSpec(
                        f"{where}.persistentVolumeClaim",
                        f"the claim of volume {name!r} was not resolved to an EBS volume",
                    )
                self.volume_dirs[name] = mount_point(block.volume_id)
                continue
            if "emptyDir" in volume:
                medium = (volume.get("emptyDir") or {}).get("medium")
                base = "/dev/shm/orca" if medium == "Memory" else f"{self.pod_dir}/volumes"
                path = (
                    f"{base}/{self.spec.pod.uid}/{name}" if medium == "Memory" else f"{base}/{name}"
                )
                volumes.append(RunnerVolume(path=path))
                self.volume_dirs[name] = path
                continue
            path = f"{self.pod_dir}/volumes/{name}"
            self.volume_dirs[name] = path
            files: list[RunnerFile] = []
            if "configMap" in volume:
                files += self._config_map_files(volume["configMap"], path, f"{where}.configMap")
            elif "secret" in volume:
                source = dict(volume["secret"])
                source["name"] = source.get("secretName", "")
                files += self._secret_files(source, path, f"{where}.secret", name)
            elif "downwardAPI" in volume:
                files += self._downward_files(volume["downwardAPI"], path, f"{where}.downwardAPI")
            elif "projected" in volume:
                for s_index, source in enumerate(volume["projected"].get("sources") or ()):
                    at = f"{where}.projected.sources[{s_index}]"
                    if "configMap" in source:
                        files += self._config_map_files(source["configMap"], path, at)
                    elif "secret" in source:
                        files += self._secret_files(source["secret"], path, at, name)
                    elif "downwardAPI" in source:
                        files += self._downward_files(source["downwardAPI"], path, at)
                    # serviceAccountToken: a token for this cluster's API is not shipped to EC2
            volumes.append(RunnerVolume(path=path, files=files, world_readable=True))
        return volumes

    @staticmethod
    def _items(source: Mapping[str, Any], keys: Sequence[str]) -> list[tuple[str, str, int | None]]:
        """(key, relative path, mode) per file, honouring `items`."""
        items = source.get("items")
        if not items:
            return [(key, key, None) for key in keys]
        return [(i["key"], i.get("path", i["key"]), i.get("mode")) for i in items]

    def _config_map_files(
        self, source: Mapping[str, Any], path: str, where: str
    ) -> list[RunnerFile]:
        name = str(source.get("name", ""))
        optional = bool(source.get("optional"))
        data = self.config_maps.get(name)
        if data is None:
            if optional:
                return []
            self._config_map_value(name, "", False, where)
        files: list[RunnerFile] = []
        for key, relative, mode in self._items(source, sorted(data or {})):
            value = self._config_map_value(name, key, optional, where)
            if value is None:
                continue
            mode = mode if mode is not None else source.get("defaultMode")
            files.append(RunnerFile(path=f"{path}/{relative}", content=value, mode=mode))
        return files

    def _secret_files(
        self, source: Mapping[str, Any], path: str, where: str, volume: str
    ) -> list[RunnerFile]:
        name = str(source.get("name", ""))
        optional = bool(source.get("optional"))
        data = self.secrets.get(name)
        if data is None:
            if optional:
                return []
            self._secret_parameter(name, "", False, where, "", encode=True)
        files: list[RunnerFile] = []
        for key, relative, mode in self._items(source, sorted(data or {})):
            parameter = self._secret_parameter(
                name, key, optional, where, f"volumes/{volume}/{relative}", encode=True
            )
            if parameter is None:
                continue
            mode = mode if mode is not None else source.get("defaultMode", 0o644)
            files.append(
                RunnerFile(path=f"{path}/{relative}", secret_parameter=parameter, mode=mode)
            )
        return files

    def _downward_files(self, source: Mapping[str, Any], path: str, where: str) -> list[RunnerFile]:
        files: list[RunnerFile] = []
        for index, item in enumerate(source.get("items") or ()):
            at = f"{where}.items[{index}]"
            field_path = (item.get("fieldRef") or {}).get("fieldPath")
            target = f"{path}/{item.get('path', '')}"
            mode = item.get("mode")
            if field_path in ("metadata.labels", "metadata.annotations"):
                values = self.metadata.get(field_path.split(".")[1]) or {}
                text = "\n".join(f"{k}={json.dumps(str(v))}" for k, v in sorted(values.items()))
                files.append(RunnerFile(path=target, content=text + "\n", mode=mode))
            elif field_path is not None:
                value = self._field_value(field_path, at)
                files.append(
                    RunnerFile(path=target, content=value, host_ip=value is None, mode=mode)
                )
            else:
                raise InvalidPodSpec(at, "only fieldRef items are supported in downwardAPI volumes")
        return files

    def _mounts(self, container: Mapping[str, Any], where: str) -> list[str]:
        arguments: list[str] = []
        for index, mount in enumerate(container.get("volumeMounts") or ()):
            name = mount.get("name", "")
            host = self.volume_dirs.get(name)
            if host is None:
                if name.startswith("kube-api-access-"):
                    continue  # the projected service account token is not shipped to EC2
                raise InvalidPodSpec(
                    f"{where}.volumeMounts[{index}]", f"volume {name!r} is not in spec.volumes"
                )
            if mount.get("subPath"):
                host = f"{host}/{mount['subPath']}"
            suffix = ":ro" if mount.get("readOnly") else ""
            arguments += ["-v", f"{host}:{mount.get('mountPath', '')}{suffix}"]
        for bind in self.secrets_manager_mounts:
            arguments += ["-v", bind]
        return arguments

    # -- containers -------------------------------------------------------------------------
    def _docker_run(
        self, container: Mapping[str, Any], where: str, *, init: bool
    ) -> RunnerContainer:
        name = str(container.get("name", ""))
        pod = self.spec.pod
        arguments: list[str] = [
            "--name",
            CONTAINER_NAME_PREFIX + name,
            "--network",
            "host",
            "--label",
            f"{LABEL_POD_UID}={pod.uid}",
            "--label",
            f"{LABEL_CONTAINER}={name}",
            "--label",
            f"{LABEL_INIT}={'true' if init else 'false'}",
            "--log-driver",
            "awslogs",
            "--log-opt",
            f"awslogs-region={self.region}",
            "--log-opt",
            f"awslogs-group={self.log_group}",
            "--log-opt",
            "awslogs-stream=" + container_log_stream(pod.namespace, pod.name, pod.uid, name),
            "--log-opt",
            "awslogs-create-group=true",
        ]
        arguments += ["--restart", "no"]  # the runner restarts containers (CrashLoopBackOff)
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        if "cpu" in limits:
            arguments += ["--cpus", f"{parse_quantity(limits['cpu']).normalize():f}"]
        if "memory" in limits:
            arguments += ["--memory", f"{int(parse_quantity(limits['memory']))}b"]

        def wants(resource: str) -> bool:
            amount = requests.get(resource, limits.get(resource, 0))
            return parse_quantity(amount) > Decimal(0)

        if wants("nvidia.com/gpu"):
            arguments += ["--gpus", "all"]
        if container.get("workingDir"):
            arguments += ["--workdir", str(container["workingDir"])]
        arguments += self._security_arguments(container)
        env_arguments, exported = self._env(container, where)
        for item in self.spec.secrets_manager_env:  # the annotation wins over the spec's env
            exported = [e for e in exported if e.name != item.name]
            env_arguments = _without_env(env_arguments, item.name)
            exported.append(
                RunnerEnv(
                    name=item.name,
                    secrets_manager=SecretsManagerRef(arn=item.secret_arn, json_key=item.json_key),
                )
            )
        arguments += env_arguments
        for env in exported:
            arguments += ["-e", env.name]
        arguments += self._mounts(container, where)

        literal_env = dict(a.split("=", 1) for a in env_arguments[1::2])
        command = [_expand(str(c), literal_env) for c in container.get("command") or ()]
        args = [_expand(str(a), literal_env) for a in container.get("args") or ()]
        if command:
            arguments += ["--entrypoint", command[0]]
        return RunnerContainer(
            name=name,
            image=str(container.get("image", "")),
            run_arguments=arguments,
            arguments=[*command[1:], *args],
            env=exported,
            neuron_devices=wants("aws.amazon.com/neuron"),
        )

    def _security_arguments(self, container: Mapping[str, Any]) -> list[str]:
        """The container's securityContext (over the pod's) applied by the container runtime:
        user and groups, read-only root, capabilities, no-new-privileges, sysctls. What
        `security.podSecurityLevel` refuses never gets here (`orca.pod_security`)."""
        pod_context: Mapping[str, Any] = self.pod_spec.get("securityContext") or {}
        own: Mapping[str, Any] = container.get("securityContext") or {}
        security = {**pod_context, **own}
        arguments: list[str] = []
        if security.get("runAsUser") is not None:
            user = str(security["runAsUser"])
            if security.get("runAsGroup") is not None:
                user += f":{security['runAsGroup']}"
            arguments += ["--user", user]
        for group in pod_context.get("supplementalGroups") or ():
            arguments += ["--group-add", str(group)]
        if own.get("privileged"):
            arguments.append("--privileged")
        if own.get("readOnlyRootFilesystem"):
            arguments.append("--read-only")
        capabilities: Mapping[str, Any] = own.get("capabilities") or {}
        for capability in capabilities.get("drop") or ():
            arguments += ["--cap-drop", str(capability)]
        for capability in capabilities.get("add") or ():
            arguments += ["--cap-add", str(capability)]
        if own.get("allowPrivilegeEscalation") is False:
            arguments += ["--security-opt", "no-new-privileges"]
        for sysctl in pod_context.get("sysctls") or ():
            arguments += ["--sysctl", f"{sysctl['name']}={sysctl.get('value', '')}"]
        return arguments

    def runner(self, status_log_group: str, key_parameter: str | None) -> RunnerDocument:
        """The runner document: volumes first, so containers' mounts know their host dirs."""
        volumes = self._volumes()
        init = [
            self._docker_run(c, f"spec.initContainers[{i}]", init=True)
            for i, c in enumerate(self.pod_spec.get("initContainers") or ())
        ]
        apps = [
            self._docker_run(c, f"spec.containers[{i}]", init=False)
            for i, c in enumerate(self.pod_spec.get("containers") or ())
        ]
        return RunnerDocument(
            pod_uid=self.spec.pod.uid,
            region=self.region,
            status_log_group=status_log_group,
            pod_dir=self.pod_dir,
            restart_policy=self.spec.restart_policy,
            status_key_parameter=key_parameter,
            secrets_manager_credentials_parameter=(
                credentials_parameter(self.spec.pod.uid) if pod_secret_arns(self.spec) else None
            ),
            secrets_manager_secrets=list(pod_secret_arns(self.spec)),
            volumes=volumes,
            block_devices=[
                RunnerBlockDevice(
                    volume_id=block.volume_id,
                    device_name=block.device_name,
                    fs_type=block.fs_type,
                    mount_point=mount_point(block.volume_id),
                    read_only=block.read_only,
                )
                for block in self.block_volumes.values()
            ],
            init_containers=init,
            containers=apps,
            usage_metrics=RunnerUsageMetrics(
                pod_dimension=pod_dimension_value(
                    self.spec.pod.namespace, self.spec.pod.name, self.spec.pod.uid
                ),
                interval_seconds=PUBLISH_INTERVAL_SECONDS,
                agent_config=agent_config_json(),
            ),
        )
