"""The instance contract, defined once: what ORCA sends to a burst instance and what it reports.

docs/instance-contract.md describes it for people. Three parties follow it and all import it from
here: the bootstrap (`activities/bootstrap_script.py`) that renders the SSM commands, the status
feed (`activities/container_status_feed.py`) and the status mapping that read what the instance
reports, and the AWS emulator (`orca_devstack.emulators.aws.containers`) that plays the instance.

* **Start command**: an `AWS-RunShellScript` command commented `orca start <namespace>/<name>`.
  Its script writes the pod manifest (`PodManifest`, at `POD_JSON_PATH`, in a quoted heredoc
  delimited by `POD_JSON_DELIMITER`), the runner's input document (`RunnerDocument`, at
  `<pod dir>/RUNNER_DOCUMENT`) and the static runner script (`orca/instance_runner.sh`,
  package data, at `<pod dir>/RUNNER_SCRIPT`), and starts the runner with the document's path.
* **Stop command**: commented `orca stop <namespace>/<name>`; its script sets
  `ORCA_STOP_GRACE_SECONDS=<n>` (SIGTERM, SIGKILL after the grace period).
* **Container output**: log group `aws.logGroup`, stream `container_log_stream(...)`.
* **Container state events**: log group `aws.statusLogGroup`, stream `status_log_stream(uid)`,
  one `ContainerStateEvent` JSON line per change (`parse_status_line` reads one), signed: the line
  is `{"report": "<the event's JSON text>", "signature": "<hex HMAC-SHA256 of that text>"}` under
  the pod's own random key (`STATUS_KEY_BYTES`), which ORCA writes as the pod's SecureString
  parameter `status_key_parameter(uid)` with its other secrets and the runner reads like them
  (`RunnerDocument.status_key_parameter`). Every instance may append to every status stream (IAM
  cannot scope a stream to an instance, docs/security.md), but only the pod's own instance can
  read its key, so only it can write a report ORCA accepts (`verify_status_line`).

Pure definitions and parsers only; no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

from orca import pod_names

POD_JSON_PATH = "/etc/orca/pod.json"
POD_JSON_DELIMITER = "ORCA_POD_JSON"
POD_DIR = "/var/lib/orca/pods"
RUNNER_SCRIPT = "runner.sh"
RUNNER_DOCUMENT = "runner.json"
RUNNER_DOCUMENT_DELIMITER = "ORCA_RUNNER_JSON"
"""One line of JSON never equals it, so no value can end the heredoc early."""
RUNNER_LOG = "runner.log"
POD_PARAMETER_PREFIX = "/orca/pods"
"""A pod's SSM parameters are under `<prefix>/<pod-uid>/`."""
STATUS_KEY_NAME = "status-key"
STATUS_KEY_BYTES = 32
STOP_GRACE_VARIABLE = "ORCA_STOP_GRACE_SECONDS"
LABEL_POD_UID = "orca.research/pod-uid"
LABEL_CONTAINER = "orca.research/container"
LABEL_INIT = "orca.research/init"
CONTAINER_NAME_PREFIX = "orca_"
"""The runtime's container name is this prefix and the pod's container name."""

START_VERB = "start"
STOP_VERB = "stop"
_COMMENT = re.compile(r"^orca (?P<verb>start|stop) (?P<namespace>[^/\s]+)/(?P<name>\S+)")
_HEREDOC = re.compile(
    rf"<<-?\s*['\"]?{POD_JSON_DELIMITER}['\"]?[^\n]*\n(?P<body>.*?)\n[ \t]*{POD_JSON_DELIMITER}"
    r"[ \t]*(?:\n|$)",
    re.DOTALL,
)
_RUNNER_HEREDOC = re.compile(
    rf"<<'{RUNNER_DOCUMENT_DELIMITER}'\n(?P<body>[^\n]*)\n{RUNNER_DOCUMENT_DELIMITER}(?:\n|$)"
)
_GRACE = re.compile(rf"{STOP_GRACE_VARIABLE}=['\"]?(?P<seconds>\d+(?:\.\d+)?)")


def pod_dir(pod_uid: str) -> str:
    """The instance directory of one pod: runner, its document, volumes, state files."""
    return f"{POD_DIR}/{pod_uid}"


def unit_name(pod_uid: str) -> str:
    """The transient systemd unit the runner runs as."""
    return f"orca-pod-{pod_uid}"


def runner_script() -> str:
    """The static runner (`orca/instance_runner.sh`), shipped as package data."""
    return resources.files("orca").joinpath("instance_runner.sh").read_text(encoding="utf-8")


# -- commands ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrcaCommand:
    """What an SSM command's comment says it is."""

    verb: str
    namespace: str
    name: str


def command_comment(verb: str, pod_key: str) -> str:
    """The SSM `Comment` (at most 100 characters): `orca <verb> <namespace>/<name>`."""
    return f"orca {verb} {pod_key}"[:100]


def parse_comment(comment: str) -> OrcaCommand | None:
    """`orca start ns/name` / `orca stop ns/name` -> the command, else None."""
    match = _COMMENT.match(comment.strip())
    if match is None:
        return None
    return OrcaCommand(match["verb"], match["namespace"], match["name"])


def parse_stop_grace(script: str) -> float | None:
    """The grace period a stop command's script sets, in seconds."""
    match = _GRACE.search(script)
    return float(match["seconds"]) if match else None


# -- the pod manifest -------------------------------------------------------------------------
class ManifestContainer(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    requests: dict[str, str] | None = None
    """`resources.requests`, for tooling that relates usage to what the pod asked for."""


class PodManifest(BaseModel):
    """`/etc/orca/pod.json`: names, images, commands; never an env value or a secret."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    namespace: str = ""
    name: str = ""
    uid: str = ""
    annotations: dict[str, str] = Field(default_factory=dict)
    init_containers: list[ManifestContainer] = Field(default_factory=list, alias="initContainers")
    containers: list[ManifestContainer] = Field(default_factory=list)
    restart_policy: str = Field(default="Always", alias="restartPolicy")

    def to_json(self) -> str:
        return json.dumps(
            self.model_dump(by_alias=True, exclude_none=True, mode="json"), sort_keys=True
        )


def pod_manifest_heredoc(manifest: PodManifest) -> list[str]:
    """The start script's lines that write the manifest (a quoted heredoc: no expansion)."""
    return [
        f"cat > {POD_JSON_PATH} <<'{POD_JSON_DELIMITER}'",
        manifest.to_json(),
        POD_JSON_DELIMITER,
    ]


def read_pod_manifest(script: str) -> PodManifest | None:
    """The manifest a start command's script writes, or None when it has none."""
    match = _HEREDOC.search(script)
    if match is None:
        return None
    try:
        return PodManifest.model_validate_json(match["body"])
    except ValidationError:
        return None


# -- the runner's input -----------------------------------------------------------------------
SECRETS_MANAGER_DIR = "secrets-manager"
"""`<pod dir>/secrets-manager/<n>`: the files of `orca.research/secrets-manager-files`, each
bind-mounted read-only at its path in every container."""


class SecretsManagerRef(BaseModel):
    """A value the runner fetches from Secrets Manager: the SecretString, or one JSON key of it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    arn: str
    json_key: str | None = Field(default=None, alias="jsonKey")


class RunnerFile(BaseModel):
    """One file of a volume. Exactly one of `content` (inline, not secret), `secret_parameter`
    (an SSM SecureString holding the base64 of the file) and `secrets_manager` is set."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    path: str
    content: str | None = None
    secret_parameter: str | None = Field(default=None, alias="secretParameter")
    secrets_manager: SecretsManagerRef | None = Field(default=None, alias="secretsManager")
    host_ip: bool = Field(default=False, alias="hostIP")
    """The file holds the instance's IP address (downward API `status.podIP`/`hostIP`)."""
    mode: int | None = None


class RunnerVolume(BaseModel):
    """A host directory a container mounts, with the files written into it first."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    path: str
    files: list[RunnerFile] = Field(default_factory=list)
    world_readable: bool = Field(default=False, alias="worldReadable")
    """`chmod -R a+rX` once written, so a container running as another user reads it."""


class RunnerEnv(BaseModel):
    """An env var the runner exports before `run` (never in argv): a secret or the host IP."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    name: str
    value: str | None = None
    """A value known beforehand (downward API metadata)."""
    secret_parameter: str | None = Field(default=None, alias="secretParameter")
    secrets_manager: SecretsManagerRef | None = Field(default=None, alias="secretsManager")
    host_ip: bool = Field(default=False, alias="hostIP")


class RunnerBlockDevice(BaseModel):
    """An EBS volume attached to the instance (`orca.ebs_volumes`). Before any container starts
    the runner finds its device (the NVMe device whose serial is the volume ID without its dash,
    or `device_name` on Xen instances), creates an `fs_type` filesystem only when the device has
    none, and mounts it at `mount_point`; containers bind-mount from there (their `-v` options
    name paths under it). The stop command unmounts it after the containers stopped."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    volume_id: str = Field(alias="volumeId")
    device_name: str = Field(alias="deviceName")
    fs_type: str = Field(default="ext4", alias="fsType")
    mount_point: str = Field(alias="mountPoint")
    read_only: bool = Field(default=False, alias="readOnly")


class RunnerContainer(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    name: str
    image: str
    run_arguments: list[str] = Field(alias="runArguments")
    """Everything between `run` and the image (options), already resolved."""
    arguments: list[str] = Field(default_factory=list)
    """After the image: the command's tail and the args."""
    env: list[RunnerEnv] = Field(default_factory=list)
    neuron_devices: bool = Field(default=False, alias="neuronDevices")


class RunnerUsageMetrics(BaseModel):
    """What the runner needs to publish the pod's usage figures (`orca.usage_metrics`)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    pod_dimension: str = Field(alias="podDimension")
    interval_seconds: int = Field(alias="intervalSeconds")
    agent_config: str = Field(alias="agentConfig")
    """The CloudWatch agent's configuration (JSON)."""


class RunnerDocument(BaseModel):
    """`<pod dir>/runner.json`: everything `instance_runner.sh` needs for one pod."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    pod_uid: str = Field(alias="podUID")
    region: str
    status_log_group: str = Field(alias="statusLogGroup")
    pod_dir: str = Field(alias="podDir")
    restart_policy: str = Field(alias="restartPolicy")
    status_key_parameter: str | None = Field(default=None, alias="statusKeyParameter")
    """The SSM parameter holding the key the runner signs its status reports with."""
    secrets_manager_credentials_parameter: str | None = Field(
        default=None, alias="secretsManagerCredentialsParameter"
    )
    """The SSM parameter holding the temporary credentials (base64 of the JSON of AccessKeyId,
    SecretAccessKey, SessionToken) that read exactly `secrets_manager_secrets`."""
    secrets_manager_secrets: list[str] = Field(default_factory=list, alias="secretsManagerSecrets")
    """The ARNs the runner fetches once, at start, with those credentials."""
    volumes: list[RunnerVolume] = Field(default_factory=list)
    block_devices: list[RunnerBlockDevice] = Field(default_factory=list, alias="blockDevices")
    init_containers: list[RunnerContainer] = Field(default_factory=list, alias="initContainers")
    containers: list[RunnerContainer] = Field(default_factory=list)
    usage_metrics: RunnerUsageMetrics | None = Field(default=None, alias="usageMetrics")

    def to_json(self) -> str:
        return json.dumps(
            self.model_dump(by_alias=True, exclude_none=True, mode="json"), sort_keys=True
        )


def read_runner_document(script: str) -> RunnerDocument | None:
    """The runner document a start command's script writes, or None when it has none."""
    match = _RUNNER_HEREDOC.search(script)
    if match is None:
        return None
    try:
        return RunnerDocument.model_validate_json(match["body"])
    except ValidationError:
        return None


# -- what the instance reports ----------------------------------------------------------------
class ContainerState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


class ContainerReason(StrEnum):
    PULLING_IMAGE = "PullingImage"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    STARTED = "Started"
    COMPLETED = "Completed"
    ERROR = "Error"
    OOM_KILLED = "OOMKilled"
    KILLED = "Killed"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"


RESTART_BACK_OFF_INITIAL_SECONDS = 10
"""The kubelet's container restart back-off: 10 s after the second exit, doubling up to
`RESTART_BACK_OFF_MAX_SECONDS` (the first exit restarts at once); a container that ran for
`RESTART_BACK_OFF_RESET_SECONDS` starts over (pkg/kubelet: backOffPeriod, MaxContainerBackOff)."""
RESTART_BACK_OFF_MAX_SECONDS = 300
RESTART_BACK_OFF_RESET_SECONDS = 600


def restart_back_off(exits: int, initial: float = RESTART_BACK_OFF_INITIAL_SECONDS) -> float:
    """How long the runner waits before restarting a container after its `exits`-th exit in a
    row: 0 after the first, then `initial` doubling, capped at 30 x `initial` (300 s)."""
    if exits <= 1:
        return 0.0
    ceiling = initial * RESTART_BACK_OFF_MAX_SECONDS / RESTART_BACK_OFF_INITIAL_SECONDS
    return float(min(initial * 2 ** (exits - 2), ceiling))


def status_log_stream(pod_uid: str) -> str:
    """The status log group's stream of one pod."""
    return pod_uid


def container_log_stream(namespace: str, name: str, uid: str, container: str) -> str:
    """The output log group's stream of one container."""
    return pod_names.container_log_stream(namespace, name, uid, container)


class ContainerStateEvent(BaseModel):
    """One line of the status log group, as the instance's runner writes it (camelCase JSON)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    pod_uid: str = Field(alias="podUID")
    container: str
    init: bool = False
    state: ContainerState
    reason: str | None = None
    exit_code: int | None = Field(default=None, alias="exitCode")
    back_off_seconds: float | None = Field(default=None, alias="backOffSeconds")
    """With `waiting/CrashLoopBackOff`: how long the runner waits before the restart."""
    at: datetime

    @field_serializer("at")
    def _at(self, at: datetime) -> str:
        return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_line(self) -> dict[str, Any]:
        """The JSON object of the log line (every key present, as the runner writes it)."""
        return self.model_dump(by_alias=True, mode="json")


def parse_status_line(message: str) -> ContainerStateEvent | None:
    """One status log line -> the event, or None when it is not one (it is then ignored)."""
    try:
        return ContainerStateEvent.model_validate(json.loads(message))
    except (ValueError, ValidationError):
        return None


# -- signed reports ---------------------------------------------------------------------------
def status_key_parameter(pod_uid: str) -> str:
    """The SSM SecureString parameter holding the pod's status key (hex)."""
    return f"{POD_PARAMETER_PREFIX}/{pod_uid}/{STATUS_KEY_NAME}"


def new_status_key() -> str:
    return secrets.token_hex(STATUS_KEY_BYTES)


def sign_status_report(key: str, report: str) -> str:
    """Hex HMAC-SHA256 of the report's text under the hex key (`openssl dgst -sha256 -mac HMAC
    -macopt hexkey:<key>` on the instance)."""
    return hmac.new(bytes.fromhex(key), report.encode("utf-8"), hashlib.sha256).hexdigest()


def signed_status_line(event: ContainerStateEvent, key: str) -> str:
    """The log line an instance writes for one event."""
    report = json.dumps(event.to_line(), separators=(",", ":"))
    return json.dumps({"report": report, "signature": sign_status_report(key, report)})


@dataclass(frozen=True)
class StatusLine:
    """One status log line split into the report and its signature (None: unsigned)."""

    report: str
    signature: str | None


def split_status_line(message: str) -> StatusLine:
    try:
        data = json.loads(message)
    except ValueError:
        return StatusLine(message, None)
    if isinstance(data, dict) and isinstance(data.get("report"), str):
        signature = data.get("signature")
        return StatusLine(data["report"], signature if isinstance(signature, str) else None)
    return StatusLine(message, None)


def verify_status_line(line: StatusLine, key: str, stream: str) -> ContainerStateEvent | None:
    """The event when the line is a report of the stream's own pod signed with its key, else
    None (forged, misplaced, unsigned or not a report)."""
    if line.signature is None:
        return None
    expected = sign_status_report(key, line.report)
    if not hmac.compare_digest(expected, line.signature.lower()):
        return None
    event = parse_status_line(line.report)
    if event is None or status_log_stream(event.pod_uid) != stream:
        return None
    return event
