"""The container lifecycle behind SSM Run Command, as docs/instance-contract.md describes it.

ORCA sends one ``AWS-RunShellScript`` command per pod, commented ``orca start <ns>/<name>``, whose
script holds the pod manifest in an ``ORCA_POD_JSON`` heredoc. The contract (comments, manifest,
status lines, stream names) is ``orca.instance_contract``, imported here rather than restated; the
emulator plays the start script from its manifest rather than running the runner script:

* init containers run one after another (``waiting/PullingImage`` → ``running/Started`` →
  ``terminated/Completed``), then all main containers together;
* main containers run ``emulator.orca.research/run-seconds`` (default 30; ``inf`` runs until
  stopped) and exit with ``emulator.orca.research/exit-code`` (default 0; 137 is reported as
  ``OOMKilled``), or with the successive codes of ``emulator.orca.research/exit-codes``
  (``"1,1,0"``: the first two runs fail, every later one exits 0);
* as the runner's supervisors, the main containers are restarted per the pod's restartPolicy
  (``Always`` after every exit, ``OnFailure`` after a non-zero one) with the kubelet's back-off
  (``orca.instance_contract.restart_back_off``, initial delay ``EmulatorConfig
  .restart_back_off_s``, 10 s as the kubelet's): the first exit restarts at once, each later
  one reports ``waiting/CrashLoopBackOff`` with ``backOffSeconds`` first; a restarted container
  gets a fresh sandbox (its volumes linked again). A run that lasted 60 x the initial delay
  starts the back-off over. The invocation stays ``InProgress`` while they restart;
  ``emulator.orca.research/log-lines`` (``\\n``-separated) go to each main container's stream in
  ``/orca/pods`` when it starts;
* every state change is one JSON event in ``/orca/container-status``, stream ``<pod-uid>``,
  signed with the pod's status key read from its SSM parameter as the runner does
  (``signed_status_line``; unsigned when the start command stored no key, as an older ORCA);
* the start command's invocation is ``InProgress`` until the containers end, then ``Success``
  (all exited 0) or ``Failed`` with ``ResponseCode`` = the exit code;
* an ``orca stop <ns>/<name>`` command (``ORCA_STOP_GRACE_SECONDS=<n>``) stops them: they end as
  ``terminated/Killed`` with exit code 143 after ``min(stop delay, grace)``;
* the control API's ``finish_containers(pod_uid, exit_code)`` ends them at once;
* Secrets Manager secrets the runner document names (``secretsManagerSecrets``) are fetched
  first, as the runner does, with the temporary credentials of the pod's
  ``secrets-manager-credentials`` parameter (``ContainerHost.fetch_secrets``, which IAM checks as
  strictly as AWS, ``secrets_access``). A secret they cannot read, or a JSON key it lacks, ends
  the pod's first containers at once with ``terminated/Error`` (exit code 1), before any pull;
  otherwise each container's environment and files from them are in ``ContainerRun.view``
  (``GET /_orca/containers/<pod-uid>``), so a test sees what reached the container.
* each main container has a scratch directory (``sandboxes``) while its pod's run lasts, where an
  ``orca exec <ns>/<name>`` command (``orca.exec_command``) runs as a real subprocess.
* EBS volumes the runner document names (``blockDevices``) are mounted as the runner does,
  after the secrets and before any pull: each must be attached (attachment state ``attached``)
  to the pod's instance, otherwise the first containers end at once with ``terminated/Error``
  (exit code 1) and the invocation's output says which volume is not attached. The first mount
  of a volume creates its filesystem (recorded, ``GET /_orca/volumes/<vol-id>``: a later mount
  does not reformat). A container's ``-v <src>:<dst>[:ro]`` whose ``src`` is a block device's
  ``mountPoint`` (or a path under it: a ``subPath``) makes ``<sandbox>/<container>/<dst>`` a
  link to the volume's host directory (``ContainerHost.mount_volumes``), so what an ``orca
  exec`` writes there is what the next pod mounting the volume, on any instance, reads.

If the instance goes away first, nothing more is reported (a lost instance cannot write logs) and
the invocation ends ``Failed`` with ``ResponseCode`` -1.

The parsing helpers are pure; ``ContainerRuntime`` drives runs through a ``ContainerHost`` (the
middleware's adapter to moto's SSM and CloudWatch Logs backends) and the scheduler.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from orca.instance_contract import (
    RESTART_BACK_OFF_INITIAL_SECONDS,
    RESTART_BACK_OFF_RESET_SECONDS,
    ContainerReason,
    ContainerState,
    ContainerStateEvent,
    OrcaCommand,
    RunnerDocument,
    container_log_stream,
    parse_comment,
    parse_stop_grace,
    read_pod_manifest,
    restart_back_off,
)
from orca_devstack.emulators.aws import sandboxes
from orca_devstack.emulators.aws.lifecycle import Scheduler, Timer

__all__ = [
    "ContainerReason",
    "ContainerState",
    "OrcaCommand",
    "container_log_stream",
    "extract_pod_manifest",
    "parse_comment",
    "parse_stop_grace",
]

ANNOTATION_PREFIX = "emulator.orca.research/"
RUN_SECONDS = ANNOTATION_PREFIX + "run-seconds"
EXIT_CODE = ANNOTATION_PREFIX + "exit-code"
EXIT_CODES = ANNOTATION_PREFIX + "exit-codes"
LOG_LINES = ANNOTATION_PREFIX + "log-lines"
INIT_SECONDS = ANNOTATION_PREFIX + "init-seconds"

STOPPED_EXIT_CODE = 143  # 128 + SIGTERM
OOM_EXIT_CODE = 137  # 128 + SIGKILL, what the kernel OOM killer leaves behind
LOST_RESPONSE_CODE = -1


def extract_pod_manifest(script: str) -> dict[str, Any] | None:
    """The pod manifest the start command's script writes (``orca.instance_contract``)."""
    manifest = read_pod_manifest(script)
    return None if manifest is None else manifest.model_dump(by_alias=True, mode="json")


def exit_reason(exit_code: int) -> ContainerReason:
    if exit_code == 0:
        return ContainerReason.COMPLETED
    if exit_code == OOM_EXIT_CODE:
        return ContainerReason.OOM_KILLED
    return ContainerReason.ERROR


@dataclass(frozen=True)
class PodBehaviour:
    """What the emulated containers do, from the emulator-only annotations."""

    run_seconds: float = 30.0
    exit_code: int = 0
    log_lines: tuple[str, ...] = ()
    init_seconds: float = 1.0
    exit_codes: tuple[int, ...] = ()
    """The exit codes of the main containers' successive runs (the last one repeats); empty:
    every run exits with `exit_code`."""

    def exit_code_of(self, run: int) -> int:
        """The exit code of the main containers' `run`-th run (0 = the first)."""
        if not self.exit_codes:
            return self.exit_code
        return self.exit_codes[min(run, len(self.exit_codes) - 1)]

    @classmethod
    def from_annotations(
        cls, annotations: dict[str, Any], defaults: PodBehaviour | None = None
    ) -> PodBehaviour:
        base = defaults or cls()

        def number(key: str, fallback: float) -> float:
            try:
                value = float(str(annotations[key]).strip())
            except (KeyError, ValueError):
                return fallback
            return value if value >= 0 or math.isinf(value) else fallback

        try:
            exit_code = int(str(annotations.get(EXIT_CODE, base.exit_code)).strip())
        except ValueError:
            exit_code = base.exit_code
        raw_lines = annotations.get(LOG_LINES)
        lines = tuple(str(raw_lines).split("\n")) if raw_lines else base.log_lines
        try:
            codes = tuple(
                int(c.strip()) for c in str(annotations.get(EXIT_CODES, "")).split(",") if c.strip()
            )
        except ValueError:
            codes = base.exit_codes
        return cls(
            run_seconds=number(RUN_SECONDS, base.run_seconds),
            exit_code=exit_code,
            log_lines=lines,
            init_seconds=number(INIT_SECONDS, base.init_seconds),
            exit_codes=codes,
        )


def status_event(
    pod_uid: str,
    container: str,
    *,
    init: bool,
    state: ContainerState,
    reason: ContainerReason,
    exit_code: int | None,
    at: datetime,
    back_off_seconds: float | None = None,
) -> ContainerStateEvent:
    """One status report, as the contract's runner makes it."""
    return ContainerStateEvent(
        pod_uid=pod_uid,
        container=container,
        init=init,
        state=state,
        reason=reason.value,
        exit_code=exit_code,
        back_off_seconds=back_off_seconds,
        at=at,
    )


class SecretsUnreadableError(Exception):
    """The pod's credentials cannot read one of its secrets (the message says which and why)."""


class VolumeUnmountableError(Exception):
    """A block device of the runner document is not attached to the instance (the message
    says which)."""


def volume_mounts(document: RunnerDocument) -> dict[str, list[tuple[str, str, str]]]:
    """Per container: (container path, mount point, sub path) of each ``-v`` that names a block
    device's mount point or a path under it."""
    points = [d.mount_point.rstrip("/") for d in document.block_devices]
    found: dict[str, list[tuple[str, str, str]]] = {}
    for entry in [*document.init_containers, *document.containers]:
        mounts = [
            b
            for a, b in zip(entry.run_arguments, entry.run_arguments[1:], strict=False)
            if a == "-v"
        ]
        for mount in mounts:
            source, _, rest = mount.partition(":")
            target = rest.split(":", 1)[0]
            for point in points:
                if source == point or source.startswith(point + "/"):
                    sub = source[len(point) :].strip("/")
                    found.setdefault(entry.name, []).append((target, point, sub))
    return found


@dataclass(frozen=True)
class ContainerView:
    """What the pod's containers received from Secrets Manager: per container, env var → value
    and container path → file content."""

    env: dict[str, dict[str, str]] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)


def resolve_secret(value: str, json_key: str | None, arn: str) -> str:
    """The SecretString, or one key of its JSON (a non-string value as JSON), as the runner."""
    if json_key is None:
        return value
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict) or json_key not in data:
        raise SecretsUnreadableError(f"secret {arn} has no JSON key {json_key!r}")
    found = data[json_key]
    return found if isinstance(found, str) else json.dumps(found)


def container_view(document: RunnerDocument, values: dict[str, str]) -> ContainerView:
    """Each container's env and files from the fetched secrets (ARN → SecretString)."""
    host_files = {
        f.path: resolve_secret(
            values[f.secrets_manager.arn], f.secrets_manager.json_key, f.secrets_manager.arn
        )
        for v in document.volumes
        for f in v.files
        if f.secrets_manager is not None
    }
    view = ContainerView()
    for entry in [*document.init_containers, *document.containers]:
        view.env[entry.name] = {
            e.name: resolve_secret(
                values[e.secrets_manager.arn], e.secrets_manager.json_key, e.secrets_manager.arn
            )
            for e in entry.env
            if e.secrets_manager is not None
        }
        mounts = [
            b
            for a, b in zip(entry.run_arguments, entry.run_arguments[1:], strict=False)
            if a == "-v"
        ]
        view.files[entry.name] = {
            target: host_files[source]
            for source, target, *_ in (m.split(":") for m in mounts)
            if source in host_files
        }
    return view


class ContainerHost(Protocol):
    """Where a run's effects land (moto's logs and SSM backends, in the emulator)."""

    def fetch_secrets(self, document: RunnerDocument) -> dict[str, str]:
        """ARN → SecretString of every secret the document names, read with the pod's
        credentials; raises ``SecretsUnreadableError``."""
        ...

    def mount_volumes(self, instance_id: str, document: RunnerDocument) -> dict[str, Path]:
        """Mount point → host directory of each block device, as the runner mounts them;
        raises ``VolumeUnmountableError`` when one is not attached to the instance."""
        ...

    def write_status(self, pod_uid: str, events: list[ContainerStateEvent]) -> None: ...

    def write_output(self, stream: str, lines: list[str]) -> None: ...

    def finish_invocation(
        self, command_id: str, instance_id: str, response_code: int, output: str
    ) -> None: ...


@dataclass
class ContainerRun:
    """One pod's containers on one instance: groups run in order, the last group is the main
    containers."""

    namespace: str
    name: str
    uid: str
    instance_id: str
    command_id: str
    behaviour: PodBehaviour
    groups: list[tuple[bool, list[str]]]
    restart_policy: str = "Always"
    group_index: int = 0
    group_started: bool = False
    finished: bool = False
    timer: Timer | None = None
    stop_command: tuple[str, str] | None = None
    output: list[str] = field(default_factory=list)
    view: ContainerView = field(default_factory=ContainerView)
    sandbox: Path | None = None
    """The containers' scratch directories (``sandboxes``), while the run lasts."""
    exit_code: int | None = None
    """How the main containers ended, once they have."""
    volume_links: list[tuple[str, str, Path, str]] = field(default_factory=list)
    """(container, target, volume directory, subPath) to link into every fresh sandbox."""
    runs: int = 0
    """How many times the main containers have been started."""
    exits_in_row: int = 0
    """Exits since the back-off last started over (the kubelet's back-off key)."""
    run_started: datetime | None = None
    backing_off: bool = False

    @property
    def current(self) -> tuple[bool, list[str]]:
        return self.groups[self.group_index]


class ContainerRuntime:
    def __init__(
        self,
        host: ContainerHost,
        scheduler: Scheduler,
        *,
        pull_seconds: Callable[[], float],
        stop_seconds: Callable[[], float],
        defaults: PodBehaviour,
        restart_back_off_s: Callable[[], float] = lambda: RESTART_BACK_OFF_INITIAL_SECONDS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._host = host
        self._restart_back_off_s = restart_back_off_s
        self._scheduler = scheduler
        self._pull_seconds = pull_seconds
        self._stop_seconds = stop_seconds
        self._defaults = defaults
        self._now = now
        self.runs: dict[str, ContainerRun] = {}

    def reset(self) -> None:
        for run in self.runs.values():
            sandboxes.remove_sandbox(run.sandbox)
        self.runs.clear()

    def ended_with(self, pod_uid: str) -> int | None:
        """The exit code the pod's main containers ended with; None while they run (or if
        they never ran)."""
        run = self.runs.get(pod_uid)
        return None if run is None else run.exit_code

    def sandbox_of(self, pod_uid: str, instance_id: str, container: str) -> Path | None:
        """The running main container's sandbox directory; None when it is not running."""
        run = self.runs.get(pod_uid)
        if run is None or run.finished or run.instance_id != instance_id or run.sandbox is None:
            return None
        init, names = run.current
        if init or not run.group_started or container not in names:
            return None
        return run.sandbox / container

    def start(
        self,
        command_id: str,
        instance_id: str,
        manifest: dict[str, Any],
        document: RunnerDocument | None = None,
    ) -> ContainerRun:
        annotations = manifest.get("annotations") or {}
        init = [str(c.get("name")) for c in manifest.get("initContainers") or []]
        main = [str(c.get("name")) for c in manifest.get("containers") or []]
        groups: list[tuple[bool, list[str]]] = [(True, [name]) for name in init]
        groups.append((False, main))
        run = ContainerRun(
            namespace=str(manifest.get("namespace", "")),
            name=str(manifest.get("name", "")),
            uid=str(manifest.get("uid", "")),
            instance_id=instance_id,
            command_id=command_id,
            behaviour=PodBehaviour.from_annotations(annotations, self._defaults),
            groups=groups,
            restart_policy=str(manifest.get("restartPolicy") or "Always"),
        )
        previous = self.runs.get(run.uid)
        if previous is not None and not previous.finished:
            self._cancel(previous)
        sandbox = run.sandbox = sandboxes.make_sandbox(run.uid, main)
        self.runs[run.uid] = run
        if document is not None and document.secrets_manager_secrets:
            try:  # as the runner: every secret first, before any pull
                run.view = container_view(document, self._host.fetch_secrets(document))
            except SecretsUnreadableError as error:
                self._end(run, 1, ContainerReason.ERROR, str(error))
                return run
        if document is not None and document.block_devices:
            try:  # as the runner: every volume mounted before any pull
                directories = self._host.mount_volumes(instance_id, document)
            except VolumeUnmountableError as error:
                self._end(run, 1, ContainerReason.ERROR, str(error))
                return run
            run.volume_links = [
                (container, target, directories[point], sub)
                for container, mounts in volume_mounts(document).items()
                if container in main
                for target, point, sub in mounts
            ]
            self._link_volumes(run, sandbox)
        self._begin_group(run)
        return run

    def stop(
        self,
        namespace: str,
        name: str,
        instance_id: str,
        grace_seconds: float | None,
        stop_command: tuple[str, str],
    ) -> bool:
        """Stop the pod's containers; False when nothing of it is running on the instance."""
        for run in self.runs.values():
            if (
                not run.finished
                and run.namespace == namespace
                and run.name == name
                and run.instance_id == instance_id
            ):
                delay = self._stop_seconds()
                if grace_seconds is not None:
                    delay = min(delay, grace_seconds)
                if run.timer is not None:
                    run.timer.cancel()
                run.stop_command = stop_command
                run.timer = self._scheduler.after(delay, functools.partial(self._killed, run))
                return True
        return False

    def _killed(self, run: ContainerRun) -> None:
        if run.backing_off:  # as the runner: nothing runs, nothing more to report
            self._end(run, run.exit_code or 0, ContainerReason.KILLED, report=False)
            return
        self._end(run, STOPPED_EXIT_CODE, ContainerReason.KILLED)

    def finish(self, pod_uid: str, exit_code: int) -> None:
        run = self.runs.get(pod_uid)
        if run is None or run.finished:
            raise KeyError(f"no running containers for pod {pod_uid}")
        if run.timer is not None:
            run.timer.cancel()
        self._end(run, exit_code, exit_reason(exit_code))

    def instance_lost(self, instance_id: str) -> None:
        for run in self.runs.values():
            if run.instance_id == instance_id and not run.finished:
                self._cancel(run)
                self._host.finish_invocation(
                    run.command_id, instance_id, LOST_RESPONSE_CODE, "instance terminated"
                )
                if run.stop_command is not None:
                    self._host.finish_invocation(*run.stop_command, LOST_RESPONSE_CODE, "")

    def _cancel(self, run: ContainerRun) -> None:
        run.finished = True
        if run.timer is not None:
            run.timer.cancel()
        sandboxes.remove_sandbox(run.sandbox)
        run.sandbox = None

    def _events(
        self,
        run: ContainerRun,
        state: ContainerState,
        reason: ContainerReason,
        code: int | None,
        back_off_seconds: float | None = None,
    ) -> None:
        init, names = run.current
        at = self._now()
        self._host.write_status(
            run.uid,
            [
                status_event(
                    run.uid,
                    n,
                    init=init,
                    state=state,
                    reason=reason,
                    exit_code=code,
                    at=at,
                    back_off_seconds=back_off_seconds,
                )
                for n in names
            ],
        )

    @staticmethod
    def _link_volumes(run: ContainerRun, sandbox: Path) -> None:
        for container, target, directory, sub in run.volume_links:
            sandboxes.link_volume(sandbox / container, target, directory, sub)

    def _begin_group(self, run: ContainerRun) -> None:
        run.group_started = False
        self._events(run, ContainerState.WAITING, ContainerReason.PULLING_IMAGE, None)
        run.timer = self._scheduler.after(self._pull_seconds(), lambda: self._group_running(run))

    def _group_running(self, run: ContainerRun) -> None:
        if run.finished:
            return
        run.group_started = True
        self._events(run, ContainerState.RUNNING, ContainerReason.STARTED, None)
        init, names = run.current
        if init:
            run.timer = self._scheduler.after(
                run.behaviour.init_seconds, lambda: self._group_done(run, 0)
            )
            return
        if run.behaviour.log_lines:
            for name in names:
                stream = container_log_stream(run.namespace, run.name, run.uid, name)
                self._host.write_output(stream, list(run.behaviour.log_lines))
        run.run_started = self._now()
        code = run.behaviour.exit_code_of(run.runs)
        run.runs += 1
        if not math.isinf(run.behaviour.run_seconds):
            run.timer = self._scheduler.after(
                run.behaviour.run_seconds, lambda: self._group_done(run, code)
            )

    def _group_done(self, run: ContainerRun, exit_code: int) -> None:
        if run.finished:
            return
        init, _ = run.current
        if init and exit_code == 0:
            self._events(run, ContainerState.TERMINATED, ContainerReason.COMPLETED, 0)
            run.group_index += 1
            self._begin_group(run)
            return
        if not init and self._restarts(run.restart_policy, exit_code):
            self._exited_to_restart(run, exit_code)
            return
        self._end(run, exit_code, exit_reason(exit_code))

    @staticmethod
    def _restarts(policy: str, exit_code: int) -> bool:
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    def _exited_to_restart(self, run: ContainerRun, exit_code: int) -> None:
        """The runner's supervisor: report the exit, then restart at once or after a back-off."""
        run.group_started = False
        run.exit_code = exit_code
        self._events(run, ContainerState.TERMINATED, exit_reason(exit_code), exit_code)
        initial = self._restart_back_off_s()
        reset = initial * RESTART_BACK_OFF_RESET_SECONDS / RESTART_BACK_OFF_INITIAL_SECONDS
        if run.run_started is not None and (
            (self._now() - run.run_started).total_seconds() >= reset
        ):
            run.exits_in_row = 0
        run.exits_in_row += 1
        delay = restart_back_off(run.exits_in_row, initial)
        if delay == 0:
            self._restart(run)
            return
        run.backing_off = True
        self._events(run, ContainerState.WAITING, ContainerReason.CRASH_LOOP_BACK_OFF, None, delay)
        run.timer = self._scheduler.after(delay, lambda: self._restart(run))

    def _restart(self, run: ContainerRun) -> None:
        if run.finished:
            return
        run.backing_off = False
        run.exit_code = None
        _, names = run.current
        sandboxes.remove_sandbox(run.sandbox)  # a new container: a fresh writable layer
        run.sandbox = sandboxes.make_sandbox(run.uid, names)
        self._link_volumes(run, run.sandbox)
        self._group_running(run)

    def _end(
        self,
        run: ContainerRun,
        exit_code: int,
        reason: ContainerReason,
        why: str = "",
        *,
        report: bool = True,
    ) -> None:
        if run.finished:
            return
        run.finished = True
        run.exit_code = exit_code
        sandboxes.remove_sandbox(run.sandbox)
        run.sandbox = None
        if report:
            self._events(run, ContainerState.TERMINATED, reason, exit_code)
        _, names = run.current
        summary = f"containers {', '.join(names)} exited with {exit_code} ({reason.value})"
        if why:
            summary = f"orca: {why}; {summary}"
        self._host.finish_invocation(run.command_id, run.instance_id, exit_code, summary)
        if run.stop_command is not None:
            self._host.finish_invocation(*run.stop_command, 0, "stopped")
