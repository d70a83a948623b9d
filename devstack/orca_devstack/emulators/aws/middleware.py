"""The WSGI middleware in front of moto's server app.

Every request is parsed once (service from the SigV4 credential scope; action from the query form
for EC2, from ``X-Amz-Target`` for the JSON services). Most go straight to moto. The calls that
moto cannot answer realistically are intercepted here:

* EC2 ``RunInstances`` — faults, throttling, catalog and zone checks, capacity, capacity
  reservations, spot max price, ClientToken idempotency; then moto launches and the instances
  are put back to ``pending`` until their launch delay has passed.
* EC2 ``TerminateInstances`` — instances pass through ``shutting-down``.
* EC2 ``CreateVolume``, ``AttachVolume``, ``DetachVolume``, ``DeleteVolume`` — EC2's parameter
  rules, zones, ClientToken idempotency, states (``creating``, ``attaching``, ``detaching``) and
  the per-instance attachment limit (``ebs``); each volume's content is a host directory the
  emulated containers mount. Volumes attached to a terminating instance are detached once it
  is ``terminated``.
* EC2 ``DescribeSpotPriceHistory``, ``CreateCapacityReservation`` (tests reserve capacity with
  it) and ``DescribeCapacityReservations``.
* SSM ``DescribeInstanceInformation`` (moto lacks it) and ``SendCommand`` (only to Online
  instances; ``orca start/stop`` commands drive the container lifecycle).
* Pricing ``GetProducts`` (moto has no Pricing API).
* STS ``AssumeRole`` (the session's policy and tags are recorded, its duration checked) and
  Secrets Manager ``GetSecretValue`` (authorized for assumed-role sessions as IAM would,
  ``secrets_access``; moto checks no permission).

Only what ORCA, its tests, its benchmarks or ``orca dev`` call is emulated: an endpoint nobody
calls is not kept in step with AWS, so it is not here.

State changes go through moto's backends in-process, under one lock shared with the scheduler.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS, INSTANCE_TYPES
from moto.ec2.models.instances import StateReason
from moto.kms.models import kms_backends
from moto.logs.models import logs_backends
from moto.secretsmanager.models import secretsmanager_backends
from moto.sqs.models import sqs_backends
from moto.ssm.models import ssm_backends
from werkzeug.datastructures import MultiDict
from werkzeug.test import run_wsgi_app
from werkzeug.wrappers import Request, Response

from orca.exec_command import (
    ExecRequest,
    parse_exec_comment,
    read_exec_request,
    read_session_request,
)
from orca.instance_contract import (
    ContainerStateEvent,
    RunnerDocument,
    read_runner_document,
    signed_status_line,
    status_key_parameter,
    status_log_stream,
)
from orca_devstack.emulators.aws import ebs, interruptions, prices, sandboxes
from orca_devstack.emulators.aws.capacity import (
    CapacityModel,
    CapacityRule,
    CapacityType,
    insufficient_capacity_message,
    unsupported_zone_message,
)
from orca_devstack.emulators.aws.config import EmulatorConfig, EmulatorDefaults
from orca_devstack.emulators.aws.container_metrics import ContainerUsage
from orca_devstack.emulators.aws.containers import (
    ContainerRuntime,
    PodBehaviour,
    SecretsUnreadableError,
    VolumeUnmountableError,
    extract_pod_manifest,
    parse_comment,
    parse_stop_grace,
)
from orca_devstack.emulators.aws.errors import AwsError
from orca_devstack.emulators.aws.faults import Ec2Throttle, FaultInjector
from orca_devstack.emulators.aws.interruptions import InterruptionKind
from orca_devstack.emulators.aws.lifecycle import LIVE_STATES, STATE_CODES, Scheduler
from orca_devstack.emulators.aws.request_limits import check_ec2_request
from orca_devstack.emulators.aws.reservations import ReservationBook
from orca_devstack.emulators.aws.secrets_access import (
    RoleSession,
    SecretsAccess,
    check_duration,
    parse_policy,
)
from orca_devstack.emulators.aws.sessions import SessionServer
from orca_devstack.emulators.aws.spot_market import SpotMarket

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
CONTROL_PREFIX = "/_orca/"
_ACCESS_KEY = re.compile(r"Credential=(?P<key>[^/]+)/")
_ASSUMED = re.compile(
    r"<AccessKeyId>(?P<key>[^<]+)</AccessKeyId>.*?<Arn>(?P<arn>[^<]+)</Arn>", re.DOTALL
)
_SCOPE = re.compile(r"Credential=[^/]+/\d+/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_INSTANCE_ID = re.compile(r"<instanceId>(i-[0-9a-f]+)</instanceId>")
_RUNNING_STATE = re.compile(r"(<instanceState>\s*<code>)16(</code>\s*<name>)running(</name>)")


MAX_METRIC_DATA_QUERIES = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _form_time(form: MultiDict[str, str], name: str) -> datetime | None:
    """An EC2 query timestamp (ISO 8601, as botocore sends it), or None when absent."""
    value = form.get(name)
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AwsError.of(
            "InvalidParameterValue", f"Value ({value}) for parameter {name} is invalid."
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass
class AwsCall:
    """One parsed AWS API request."""

    environ: dict[str, Any]
    service: str
    action: str
    body: bytes
    form: MultiDict[str, str] = field(default_factory=MultiDict)
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def is_json(self) -> bool:
        return bool(self.environ.get("HTTP_X_AMZ_TARGET"))


@dataclass
class TrackedInstance:
    instance_id: str
    instance_type: str
    zone: str
    capacity_type: CapacityType
    running_at: float | None = None
    online_once: bool = False
    model: Any = None
    """moto's Instance object, looked up once (moto's own lookup scans every instance)."""


@dataclass
class IdempotentLaunch:
    fingerprint: str
    status: int
    body: bytes


def parse_call(environ: dict[str, Any], body: bytes) -> AwsCall:
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = scope["service"] if scope else ""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        return AwsCall(environ, service, target.rsplit(".", 1)[-1], body, payload=payload)
    form: MultiDict[str, str] = MultiDict()
    content_type = environ.get("CONTENT_TYPE", "")
    if body and "x-www-form-urlencoded" in content_type:
        form = Request(dict(environ, **{"wsgi.input": BytesIO(body)})).form.copy()
    query = Request(environ).args
    for key, value in query.items(multi=True):
        form.add(key, value)
    return AwsCall(environ, service, form.get("Action", ""), body, form=form)


def indexed(form: MultiDict[str, str], prefix: str) -> list[str]:
    """``Prefix.1``, ``Prefix.2``, ... in order."""
    values = []
    index = 1
    while f"{prefix}.{index}" in form:
        values.append(form[f"{prefix}.{index}"])
        index += 1
    return values


def indexed_groups(form: MultiDict[str, str], prefix: str) -> list[dict[str, str]]:
    """``Prefix.N.Field=value`` → one dict per N (fields keep their dotted sub-paths)."""
    groups: dict[int, dict[str, str]] = {}
    head = prefix + "."
    for key, value in form.items(multi=True):
        if not key.startswith(head):
            continue
        number, _, rest = key[len(head) :].partition(".")
        if number.isdigit():
            groups.setdefault(int(number), {})[rest] = value
    return [groups[n] for n in sorted(groups)]


def ec2_response(action: str, inner: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{action}Response xmlns="{EC2_NS}"><requestId>{uuid.uuid4()}</requestId>'
        f"{inner}</{action}Response>"
    )
    return Response(body, 200, content_type="text/xml")


def json_response(payload: dict[str, Any]) -> Response:
    return Response(
        json.dumps(payload, default=str), 200, content_type="application/x-amz-json-1.1"
    )


def error_response(call: AwsCall, error: AwsError) -> Response:
    if call.is_json:
        return Response(
            error.json_body(),
            error.http_status,
            headers={"x-amzn-ErrorType": error.code},
            content_type="application/x-amz-json-1.1",
        )
    return Response(error.query_xml(), error.http_status, content_type="text/xml")


class EmulatorMiddleware:
    """The emulator's behaviour; ``__call__`` is the WSGI entry point."""

    def __init__(
        self,
        moto_app: WsgiApp,
        *,
        account_id: str,
        region: str,
        config: EmulatorConfig,
        control_app: Callable[[Request], Response] | None = None,
    ) -> None:
        self.moto_app = moto_app
        self.account_id = account_id
        self.region = region
        self.config = config
        self.control_app = control_app
        self.lock = threading.RLock()
        self.sessions: SessionServer | None = None
        """Session Manager's data-channel endpoint, once the server has started it."""
        self.scheduler = Scheduler(self.lock)
        self.defaults: EmulatorDefaults | None = None
        self.faults = FaultInjector()
        self.capacity = CapacityModel()
        self.reservations = ReservationBook(account_id, region)
        self.throttle = Ec2Throttle(time.monotonic)
        self.launch_delays: dict[str | None, float] = {}
        self.instances: dict[str, TrackedInstance] = {}
        self.client_tokens: dict[str, IdempotentLaunch] = {}
        self.volumes: dict[str, ebs.VolumeRecord] = {}
        self.volume_tokens: dict[str, tuple[str, str, bytes]] = {}
        """ClientToken → (fingerprint, volume id, CreateVolume response)."""
        self.volume_root = Path(tempfile.mkdtemp(prefix="orca-ebs-"))
        """Each volume's content lives in ``<volume_root>/<volume id>``."""
        self.volume_delays = {"create": 0.0, "attach": 0.0, "detach": 0.0}
        self.secrets_access = SecretsAccess()
        self.containers = ContainerRuntime(
            MotoContainerHost(self),
            self.scheduler,
            pull_seconds=lambda: self.config.pull_seconds,
            stop_seconds=lambda: self.config.stop_seconds,
            restart_back_off_s=lambda: self.config.restart_back_off_s,
            defaults=PodBehaviour(
                run_seconds=config.run_seconds,
                exit_code=config.exit_code,
                init_seconds=config.init_seconds,
            ),
        )
        self.usage = ContainerUsage(
            MotoMetricSink(self),
            self.scheduler,
            interval=lambda: self.config.metrics_interval_s,
            running=self.running_pods,
        )
        self.reset_controls()

    # ------------------------------------------------------------------ state
    def reset_controls(self) -> None:
        import random

        self.faults = FaultInjector(rng=random.Random(self.config.fault_seed))
        rules = (
            None
            if self.config.capacity is None
            else [
                CapacityRule(c.instance_type, c.count, c.zone, c.capacity_type)
                for c in self.config.capacity
            ]
        )
        self.capacity = CapacityModel(rules)
        self.reservations = ReservationBook(self.account_id, self.region)
        self.throttle = Ec2Throttle(time.monotonic)
        self.launch_delays = {k: v for k, v in self.config.launch_delays.items()}
        self.spot_market = SpotMarket(origin=_now().replace(minute=0, second=0, microsecond=0))
        self.instances.clear()
        self.client_tokens.clear()
        for record in self.volumes.values():
            record.remove()
        self.volumes.clear()
        self.volume_tokens.clear()
        self.volume_delays = {
            "create": self.config.volume_create_delay_s,
            "attach": self.config.volume_attach_delay_s,
            "detach": self.config.volume_detach_delay_s,
        }
        self.secrets_access.reset()
        self.containers.reset()
        self.usage.restart()

    @property
    def ec2(self) -> Any:
        return ec2_backends[self.account_id][self.region]

    @property
    def ssm(self) -> Any:
        return ssm_backends[self.account_id][self.region]

    @property
    def logs(self) -> Any:
        return logs_backends[self.account_id][self.region]

    @property
    def secretsmanager(self) -> Any:
        return secretsmanager_backends[self.account_id][self.region]

    @property
    def sqs(self) -> Any:
        return sqs_backends[self.account_id][self.region]

    def launch_delay(self, instance_type: str) -> float:
        return self.launch_delays.get(
            instance_type, self.launch_delays.get(None, self.config.launch_delay_s)
        )

    def subnet_zones(self) -> dict[str, str]:
        assert self.defaults is not None
        return dict(self.defaults.subnet_ids)

    @staticmethod
    def offered_zones(instance_type: str, region: str) -> set[str]:
        return {
            o["Location"]
            for o in INSTANCE_TYPE_OFFERINGS["availability-zone"].get(region, [])
            if o["InstanceType"] == instance_type
        }

    def in_use(self, instance_type: str, zone: str, capacity_type: CapacityType) -> int:
        count = 0
        for tracked in self.instances.values():
            if (
                tracked.instance_type == instance_type
                and tracked.zone == zone
                and tracked.capacity_type == capacity_type
                and self.reservations.reservation_of(tracked.instance_id) is None
                and self._state(tracked.instance_id) in LIVE_STATES
            ):
                count += 1
        return count

    def available(self, instance_type: str, zone: str, capacity_type: CapacityType) -> int:
        return self.capacity.available(
            instance_type, zone, capacity_type, self.in_use(instance_type, zone, capacity_type)
        )

    def _instance(self, instance_id: str) -> Any:
        """moto's Instance; raises moto's InvalidInstanceIdError for an unknown ID."""
        tracked = self.instances.get(instance_id)
        if tracked is not None and tracked.model is not None:
            return tracked.model
        instance = self.ec2.get_instance(instance_id)
        if tracked is not None:
            tracked.model = instance
        return instance

    def _state(self, instance_id: str) -> str | None:
        try:
            return str(self._instance(instance_id).state)
        except Exception:
            return None

    def _set_state(self, instance_id: str, state: str) -> None:
        instance = self._instance(instance_id)
        instance._state.name = state
        instance._state.code = STATE_CODES[state]

    # ------------------------------------------------------------------- WSGI
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX) and self.control_app is not None:
            return self.control_app(Request(environ))(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = BytesIO(body)
        call = parse_call(environ, body)
        try:
            response = self.dispatch(call)
        except AwsError as error:
            response = error_response(call, error)
        return response(environ, start_response)

    def dispatch(self, call: AwsCall) -> Response:
        handler = self._handlers().get((call.service, call.action))
        instance_types = self._instance_types_of(call)
        if call.action and not (call.service == "ec2" and call.action == "CreateFleet"):
            self._inject_faults(call.action, instance_types)
        if call.service == "ec2":
            check_ec2_request(call.action, call.form)
        if call.service == "ec2" and self.config.throttling:
            resources = int(call.form.get("MaxCount", "1") or 1)
            if call.action == "TerminateInstances":
                resources = len(indexed(call.form, "InstanceId")) or 1
            if not self.throttle.admit(call.action, resources):
                raise AwsError.of("RequestLimitExceeded")
        if handler is not None:
            return handler(call)
        with self.lock:
            return self.forward(call)

    def _handlers(self) -> dict[tuple[str, str], Callable[[AwsCall], Response]]:
        return {
            ("ec2", "RunInstances"): self.run_instances,
            ("ec2", "TerminateInstances"): self.terminate_instances,
            ("ec2", "CreateVolume"): self.create_volume,
            ("ec2", "AttachVolume"): self.attach_volume,
            ("ec2", "DetachVolume"): self.detach_volume,
            ("ec2", "DeleteVolume"): self.delete_volume,
            ("ec2", "DescribeSpotPriceHistory"): self.describe_spot_price_history,
            ("ec2", "CreateCapacityReservation"): self.create_capacity_reservation,
            ("ec2", "DescribeCapacityReservations"): self.describe_capacity_reservations,
            ("ssm", "DescribeInstanceInformation"): self.describe_instance_information,
            ("ssm", "SendCommand"): self.send_command,
            ("ssm", "StartSession"): self.start_session,
            ("ssm", "TerminateSession"): self.terminate_session,
            ("pricing", "GetProducts"): self.get_products,
            ("api.pricing", "GetProducts"): self.get_products,
            ("sqs", "ReceiveMessage"): self.receive_message,
            ("sts", "AssumeRole"): self.assume_role,
            ("secretsmanager", "GetSecretValue"): self.get_secret_value,
            ("monitoring", "GetMetricData"): self.get_metric_data,
        }

    def _instance_types_of(self, call: AwsCall) -> list[str]:
        if call.service != "ec2":
            return []
        types = [call.form["InstanceType"]] if "InstanceType" in call.form else []
        return types + [v for k, v in call.form.items(multi=True) if k.endswith(".InstanceType")]

    def _inject_faults(self, operation: str, instance_types: list[str]) -> None:
        with self.lock:
            decision = self.faults.decide(operation, instance_types)
        if decision.latency_s > 0:
            time.sleep(decision.latency_s)
        if decision.error is not None:
            raise decision.error

    def forward(self, call: AwsCall, form: MultiDict[str, str] | None = None) -> Response:
        """Let moto answer (``form`` replaces a query request's body)."""
        environ = dict(call.environ)
        body = call.body
        if form is not None:
            body = _urlencode(form)
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded; charset=utf-8"
            environ["QUERY_STRING"] = ""
        environ["wsgi.input"] = BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        app_iter, status, headers = run_wsgi_app(self.moto_app, environ, buffered=True)
        try:
            data = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        kept = [(k, v) for k, v in headers.items() if k.lower() != "content-length"]
        return Response(data, int(status.split()[0]), headers=kept)

    def running_pods(self) -> set[str]:
        """UIDs of the pods whose main containers run (lock held by callers)."""
        return {
            run.uid
            for run in self.containers.runs.values()
            if not run.finished and run.group_started and not run.current[0]
        }

    def get_metric_data(self, call: AwsCall) -> Response:
        """As CloudWatch: at most 500 queries per call (moto takes any number)."""
        queries = call.payload.get("MetricDataQueries") or []
        if len(queries) > MAX_METRIC_DATA_QUERIES:
            raise AwsError.of(
                "ValidationError",
                f"The collection MetricDataQueries must not have a size greater than "
                f"{MAX_METRIC_DATA_QUERIES}.",
            )
        with self.lock:
            return self.forward(call)

    def receive_message(self, call: AwsCall) -> Response:
        """SQS long polling without holding the emulator's lock: moto would sleep inside the
        request for up to WaitTimeSeconds, and every other call would wait behind it."""
        if call.is_json:
            wait = float(call.payload.get("WaitTimeSeconds") or 0)
            short = {**call.payload, "WaitTimeSeconds": 0}
            call = replace(call, body=json.dumps(short).encode(), payload=short)
        else:
            wait = float(call.form.get("WaitTimeSeconds") or 0)
            form = MultiDict(call.form)
            form["WaitTimeSeconds"] = "0"
            call = replace(call, form=form, body=_urlencode(form))
        deadline = time.monotonic() + wait
        while True:
            with self.lock:
                response = self.forward(call)
            if response.status_code != 200 or time.monotonic() >= deadline:
                return response
            if b"MessageId" in response.get_data():
                return response
            time.sleep(0.2)

    # ------------------------------------------------------------- secrets
    def assume_role(self, call: AwsCall) -> Response:
        """moto's AssumeRole, with the session's policy and tags kept for ``GetSecretValue``."""
        form = call.form
        duration = int(form.get("DurationSeconds") or 3600)
        check_duration(duration)
        policy = parse_policy(form.get("Policy"))
        tags = {
            group.get("Key", ""): group.get("Value", "")
            for group in indexed_groups(form, "Tags.member")
        }
        with self.lock:
            response = self.forward(call)
            match = _ASSUMED.search(response.get_data(as_text=True))
            if response.status_code == 200 and match is not None:
                self.secrets_access.record(
                    match["key"],
                    RoleSession(
                        role_arn=form.get("RoleArn", ""),
                        session_arn=match["arn"],
                        policy=policy,
                        tags=tags,
                        expires_at=time.time() + duration,
                    ),
                )
        return response

    def read_secret(self, access_key_id: str, secret_id: str) -> tuple[str, str] | None:
        """(ARN, SecretString) of a secret the key may read; None when there is no such
        secret (and the key is an administrator's); raises AwsError when IAM denies it."""
        arn, tags = self._secret_arn_and_tags(secret_id)
        self.secrets_access.authorize(access_key_id, arn, tags)
        if self.secretsmanager.secrets.get(secret_id) is None:
            return None
        value = self.secretsmanager.get_secret_value(arn, None, None)
        return arn, str(value.get("SecretString", ""))

    def get_secret_value(self, call: AwsCall) -> Response:
        match = _ACCESS_KEY.search(call.environ.get("HTTP_AUTHORIZATION", ""))
        with self.lock:
            self.secrets_access.authorize(
                match["key"] if match else "",
                *self._secret_arn_and_tags(str(call.payload.get("SecretId", ""))),
            )
            return self.forward(call)

    def _secret_arn_and_tags(self, secret_id: str) -> tuple[str, dict[str, str]]:
        secret = self.secretsmanager.secrets.get(secret_id)
        if secret is None:
            return secret_id, {}
        tags = {str(t["Key"]): str(t["Value"]) for t in (secret.tags or [])}
        return str(secret.arn), tags

    # ------------------------------------------------------------- launching
    def run_instances(self, call: AwsCall) -> Response:
        with self.lock:
            token = call.form.get("ClientToken")
            fingerprint = ""
            if token:
                fingerprint = _fingerprint(call.form)
                previous = self.client_tokens.get(token)
                if previous is not None:
                    if previous.fingerprint != fingerprint:
                        raise AwsError.of(
                            "IdempotentParameterMismatch",
                            "Arguments on this idempotent request are inconsistent with "
                            "arguments used in previous request(s).",
                        )
                    return Response(previous.body, previous.status, content_type="text/xml")
            response = self.launch(call, call.form)
            if token and response.status_code == 200:
                self.client_tokens[token] = IdempotentLaunch(
                    fingerprint, response.status_code, response.get_data()
                )
            return response

    def launch(self, call: AwsCall, form: MultiDict[str, str]) -> Response:
        """RunInstances with capacity, reservations and the pending state (lock held)."""
        form = form.copy()
        instance_type = form.get("InstanceType") or "m1.small"
        if instance_type not in INSTANCE_TYPES:
            raise AwsError.of(
                "InvalidParameterValue", f"Invalid value '{instance_type}' for InstanceType."
            )
        market = form.get("InstanceMarketOptions.MarketType")
        capacity_type = CapacityType.SPOT if market == "spot" else CapacityType.ON_DEMAND
        min_count = int(form.get("MinCount", "1") or 1)
        max_count = int(form.get("MaxCount", str(min_count)) or min_count)
        subnet_id = form.get("SubnetId") or form.get("NetworkInterface.1.SubnetId")
        zone = form.get("Placement.AvailabilityZone")
        if subnet_id:
            zone = str(self.ec2.get_subnet(subnet_id).availability_zone)
        target = form.get(
            "CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId"
        )
        preference = form.get("CapacityReservationSpecification.CapacityReservationPreference")
        offered = self.offered_zones(instance_type, self.region)
        reservation = None
        if capacity_type is CapacityType.ON_DEMAND:
            reservation = self.reservations.choose(
                instance_type=instance_type,
                zone=zone,
                count=min_count,
                target_id=target,
                preference=preference,
            )
            if reservation is not None:
                zone = reservation.availability_zone
        subnets = self.subnet_zones()
        if zone is None:
            candidates = [z for z in subnets if z in offered]
            if not candidates:
                raise AwsError.of(
                    "Unsupported",
                    f"Your requested instance type ({instance_type}) is not supported in any "
                    f"Availability Zone of the default subnets ({', '.join(sorted(subnets))}).",
                )
            zone = max(candidates, key=lambda z: self.available(instance_type, z, capacity_type))
        if zone not in offered:
            raise AwsError.of("Unsupported", unsupported_zone_message(instance_type, zone, offered))
        if not subnet_id and "NetworkInterface.1.DeviceIndex" not in form and zone in subnets:
            form["SubnetId"] = subnets[zone]
            form.pop("Placement.AvailabilityZone", None)
        if capacity_type is CapacityType.SPOT:
            self._check_spot_price(
                instance_type, zone, form.get("InstanceMarketOptions.SpotOptions.MaxPrice")
            )
        if reservation is not None:
            available = reservation.available_instance_count
        else:
            available = self.available(instance_type, zone, capacity_type)
        if available < min_count:
            others = [
                z
                for z in sorted(offered)
                if z != zone and self.available(instance_type, z, capacity_type) >= min_count
            ]
            raise AwsError.of(
                "InsufficientInstanceCapacity",
                insufficient_capacity_message(instance_type, zone, others),
            )
        count = min(max_count, available)
        form["MinCount"] = str(count)
        form["MaxCount"] = str(count)
        if "InstanceType" not in form:
            form["InstanceType"] = instance_type
        response = self.forward(call, form)
        if response.status_code != 200:
            return response
        text = response.get_data(as_text=True)
        instance_ids = _INSTANCE_ID.findall(text)
        for instance_id in instance_ids:
            self.instances[instance_id] = TrackedInstance(
                instance_id, instance_type, zone, capacity_type
            )
            if reservation is not None:
                self.reservations.occupy(reservation, instance_id)
            self._set_state(instance_id, "pending")
            self._emit_state(instance_id, "pending")
            self.scheduler.after(
                self.launch_delay(instance_type),
                functools.partial(self._became_running, instance_id),
            )
        response.set_data(_RUNNING_STATE.sub(r"\g<1>0\g<2>pending\g<3>", text))
        return response

    def _check_spot_price(self, instance_type: str, zone: str, max_price: str | None) -> None:
        if not max_price:
            return
        current = self.spot_price(instance_type, zone)
        if current is not None and float(max_price) < current:
            raise AwsError.of(
                "SpotMaxPriceTooLow",
                f"Your Spot request price of {max_price} is lower than the minimum required "
                f"Spot request fulfillment price of {current:.4f}.",
            )

    def _became_running(self, instance_id: str) -> None:
        if self._state(instance_id) != "pending":
            return
        self._set_state(instance_id, "running")
        tracked = self.instances.get(instance_id)
        if tracked is not None:
            tracked.running_at = time.monotonic()
        self._emit_state(instance_id, "running")

    # ------------------------------------------------------------ terminating
    def terminate_instances(self, call: AwsCall) -> Response:
        ids = indexed(call.form, "InstanceId")
        with self.lock:
            before = {i: self._state(i) for i in ids}
            response = self.forward(call)
            if response.status_code != 200:
                return response
            for instance_id in ids:
                self._after_terminate(instance_id, before.get(instance_id), reason=None)
            self._forget_deleted_volumes()  # DeleteOnTermination volumes went with moto's call
            text = response.get_data(as_text=True)
            for instance_id, state in before.items():
                if state == "terminated":
                    text = re.sub(
                        rf"(<instanceId>{instance_id}</instanceId>\s*<currentState>\s*<code>)32"
                        r"(</code>\s*<name>)shutting-down",
                        r"\g<1>48\g<2>terminated",
                        text,
                    )
            response.set_data(text)
            return response

    def _after_terminate(
        self, instance_id: str, previous: str | None, reason: StateReason | None
    ) -> None:
        """moto has just marked the instance terminated; make it pass through shutting-down."""
        if previous == "terminated" or previous is None:
            if previous == "terminated":
                self._set_state(instance_id, "terminated")
            return
        self._set_state(instance_id, "shutting-down")
        if reason is not None:
            instance = self._instance(instance_id)
            instance.state_reason = reason
            instance._reason = reason.message
        if previous == "shutting-down":
            return
        self._emit_state(instance_id, "shutting-down")
        self.scheduler.after(
            self.config.terminate_delay_s, lambda: self._became_terminated(instance_id)
        )

    def _became_terminated(self, instance_id: str) -> None:
        if self._state(instance_id) != "shutting-down":
            return
        self._set_state(instance_id, "terminated")
        self.reservations.release(instance_id)
        self.containers.instance_lost(instance_id)
        self._detach_all(instance_id)
        self._emit_state(instance_id, "terminated")

    def terminate_by_aws(self, instance_id: str, reason: StateReason) -> None:
        previous = self._state(instance_id)
        if previous in (None, "terminated", "shutting-down"):
            return
        self.ec2.terminate_instances([instance_id])
        self._after_terminate(instance_id, previous, reason)
        self._forget_deleted_volumes()

    # ------------------------------------------------------------------- EBS
    def create_volume(self, call: AwsCall) -> Response:
        form = call.form
        volume_type = form.get("VolumeType") or "gp2"

        def number(name: str) -> int | None:
            value = form.get(name)
            if value in (None, ""):
                return None
            try:
                return int(str(value))
            except ValueError:
                raise AwsError.of(
                    "InvalidParameterValue", f"Value ({value}) for parameter {name} is invalid."
                ) from None

        with self.lock:
            token = form.get("ClientToken")
            fingerprint = _fingerprint(form)
            if token and token in self.volume_tokens:
                previous, volume_id, body = self.volume_tokens[token]
                if previous != fingerprint:
                    raise AwsError.of(
                        "IdempotentParameterMismatch",
                        "Arguments on this idempotent request are inconsistent with arguments "
                        "used in previous request(s).",
                    )
                volume = self.ec2.volumes.get(volume_id)
                if volume is None:
                    raise AwsError.of(
                        "IdempotentParameterMismatch",
                        "The client token you have provided is associated with a resource that "
                        "is already deleted. Please use a different client token.",
                    )
                text = re.sub(
                    r"<status>[^<]*</status>",
                    f"<status>{volume.status}</status>",
                    body.decode(),
                    count=1,
                )
                return Response(text, 200, content_type="text/xml")
            zones = {str(z.name) for z in self.ec2.describe_availability_zones()}
            ebs.check_create_volume(
                zone=form.get("AvailabilityZone", ""),
                zones=zones,
                volume_type=volume_type,
                size=number("Size"),
                iops=number("Iops"),
                throughput=number("Throughput"),
            )
            key = form.get("KmsKeyId")
            unknown_key = bool(key) and not self._kms_key_exists(str(key))
            response = self.forward(call)
            if response.status_code != 200:
                return response
            text = response.get_data(as_text=True)
            match = re.search(r"<volumeId>(vol-[0-9a-f]+)</volumeId>", text)
            if match is None:
                return response
            volume_id = match[1]
            directory = self.volume_root / volume_id
            directory.mkdir(parents=True, exist_ok=True)
            self.volumes[volume_id] = ebs.VolumeRecord(
                volume_id, directory, delete_when_available=unknown_key
            )
            self.ec2.volumes[volume_id]._orca_status = "creating"
            text = re.sub(r"<status>[^<]*</status>", "<status>creating</status>", text, count=1)
            response.set_data(text)
            self.scheduler.after(
                self.volume_delays["create"], functools.partial(self._created, volume_id)
            )
            if token:
                self.volume_tokens[token] = (fingerprint, volume_id, response.get_data())
            return response

    def _kms_key_exists(self, key_id: str) -> bool:
        try:
            kms_backends[self.account_id][self.region].describe_key(key_id)
        except Exception:
            return False
        return True

    def _created(self, volume_id: str) -> None:
        volume = self.ec2.volumes.get(volume_id)
        record = self.volumes.get(volume_id)
        if volume is None or record is None:
            return
        volume.__dict__.pop("_orca_status", None)
        if record.delete_when_available:
            self.ec2.volumes.pop(volume_id, None)
            record.remove()
            del self.volumes[volume_id]

    def _volume(self, volume_id: str) -> Any:
        volume = self.ec2.volumes.get(volume_id)
        if volume is None:
            raise AwsError.of("InvalidVolume.NotFound", f"The volume '{volume_id}' does not exist.")
        return volume

    def attach_volume(self, call: AwsCall) -> Response:
        form = call.form
        volume_id = form.get("VolumeId", "")
        instance_id = form.get("InstanceId", "")
        device = form.get("Device", "")
        with self.lock:
            volume = self._volume(volume_id)
            instance = self._instance(instance_id)
            state = str(instance.state)
            if state not in ("running", "stopped"):
                raise AwsError.of("IncorrectState", f"Instance '{instance_id}' is not 'running'.")
            if volume.status == "creating":
                raise AwsError.of("IncorrectState", f"{volume_id} is not 'available'.")
            if volume.attachment is not None:
                raise AwsError.of("VolumeInUse", f"{volume_id} is already attached to an instance")
            if volume.zone is None or volume.zone.name != instance.placement.zone:
                raise AwsError.of(
                    "InvalidVolume.ZoneMismatch",
                    f"The volume '{volume_id}' is not in the same availability zone as instance "
                    f"'{instance_id}'",
                )
            if device in instance.block_device_mapping:
                raise AwsError.of(
                    "InvalidParameterValue",
                    f"Invalid value '{device}' for unixDevice. Attachment point {device} is "
                    "already in use",
                )
            limit, shared = ebs.attachment_limit(str(instance.instance_type))
            others = 0
            if shared:
                stores = (INSTANCE_TYPES.get(str(instance.instance_type)) or {}).get(
                    "InstanceStorageInfo"
                ) or {}
                others = max(1, len(instance.nics)) + sum(
                    int(d.get("Count", 0)) for d in stores.get("Disks", [])
                )
            if len(instance.block_device_mapping) + others >= limit:
                raise AwsError.of(
                    "AttachmentLimitExceeded", ebs.attachment_limit_message(limit - others)
                )
            attachment = self.ec2.attach_volume(volume_id, instance_id, device)
            attachment.status = "attaching"
            volume._orca_attached = True
            self.scheduler.after(
                self.volume_delays["attach"],
                functools.partial(self._attached, volume_id, attachment),
            )
            return ec2_response("AttachVolume", _attachment_xml(attachment, "attaching"))

    def _attached(self, volume_id: str, attachment: Any) -> None:
        volume = self.ec2.volumes.get(volume_id)
        if volume is not None and volume.attachment is attachment:
            attachment.status = "attached"

    def detach_volume(self, call: AwsCall) -> Response:
        form = call.form
        volume_id = form.get("VolumeId", "")
        with self.lock:
            volume = self._volume(volume_id)
            attachment = volume.attachment
            if attachment is None:
                raise AwsError.of(
                    "IncorrectState", f"Volume '{volume_id}' is in the '{volume.status}' state."
                )
            instance_id = form.get("InstanceId")
            if instance_id and instance_id != attachment.instance.id:
                raise AwsError.of(
                    "InvalidAttachment.NotFound",
                    f"The volume {volume_id} is not attached to instance {instance_id}",
                )
            if attachment.status != "detaching":
                attachment.status = "detaching"
                self.scheduler.after(
                    self.volume_delays["detach"],
                    functools.partial(self._detached, volume_id, attachment),
                )
            return ec2_response("DetachVolume", _attachment_xml(attachment, "detaching"))

    def _detached(self, volume_id: str, attachment: Any) -> None:
        volume = self.ec2.volumes.get(volume_id)
        if volume is None or volume.attachment is not attachment:
            return
        self.ec2.detach_volume(volume_id, attachment.instance.id, attachment.device)
        volume.__dict__.pop("_orca_attached", None)

    def _detach_all(self, instance_id: str) -> None:
        """The instance is terminated: the volumes that outlive it are available again."""
        for volume in list(self.ec2.volumes.values()):
            attachment = volume.attachment
            if attachment is not None and attachment.instance.id == instance_id:
                self._detached(volume.id, attachment)

    def _forget_deleted_volumes(self) -> None:
        for volume_id in [v for v in self.volumes if v not in self.ec2.volumes]:
            self.volumes.pop(volume_id).remove()

    def delete_volume(self, call: AwsCall) -> Response:
        volume_id = call.form.get("VolumeId", "")
        with self.lock:
            volume = self._volume(volume_id)
            if volume.attachment is not None:
                raise AwsError.of(
                    "VolumeInUse",
                    f"Volume {volume_id} is currently attached to {volume.attachment.instance.id}",
                )
            response = self.forward(call)
            if response.status_code == 200:
                record = self.volumes.pop(volume_id, None)
                if record is not None:
                    record.remove()
            return response

    def volume_view(self, volume_id: str) -> dict[str, Any]:
        """The volume's state, attachment and content (lock held by callers)."""
        record = self.volumes.get(volume_id)
        volume = self.ec2.volumes.get(volume_id)
        if record is None or volume is None:
            raise KeyError(f"no volume {volume_id}")
        attachment = volume.attachment
        return {
            "volume_id": volume_id,
            "state": volume.status,
            "zone": volume.zone.name if volume.zone else None,
            "attachment": None
            if attachment is None
            else {
                "instance_id": attachment.instance.id,
                "device": attachment.device,
                "state": attachment.status,
            },
            "directory": str(record.directory),
            "formatted": record.formatted,
            "filesystems_created": record.filesystems_created,
            "fs_type": record.fs_type,
            "mounts": record.mounts,
            "files": record.files(),
        }

    def remove_volume_root(self) -> None:
        shutil.rmtree(self.volume_root, ignore_errors=True)

    # ----------------------------------------------------------- interruptions
    def send_event(self, event: dict[str, Any]) -> None:
        assert self.defaults is not None
        try:
            self.sqs.send_message(self.defaults.interruption_queue_name, json.dumps(event))
        except Exception:
            logger.warning("interruption queue %s is gone", self.defaults.interruption_queue_name)

    def _emit_state(self, instance_id: str, state: str) -> None:
        if self.config.state_change_events:
            self.send_event(
                interruptions.state_change_notification(
                    instance_id, state, account=self.account_id, region=self.region, at=_now()
                )
            )

    def interrupt(self, instance_id: str, kind: InterruptionKind, notice_seconds: float) -> None:
        with self.lock:
            instance = self._instance(instance_id)
            if instance.state not in ("pending", "running"):
                raise ValueError(f"instance {instance_id} is {instance.state}, not running")
            zone = str(instance.placement.zone)
            if kind is InterruptionKind.REBALANCE:
                self.send_event(
                    interruptions.rebalance_recommendation(
                        instance_id, account=self.account_id, region=self.region, at=_now()
                    )
                )
                return
            if kind is InterruptionKind.INSTANCE_LOST:
                self.terminate_by_aws(
                    instance_id,
                    StateReason(
                        "Server.InternalError: Internal error on launch", "Server.InternalError"
                    ),
                )
                return
            if instance.lifecycle != "spot":
                raise ValueError(f"instance {instance_id} is not a spot instance")
            self.send_event(
                interruptions.spot_interruption_warning(
                    instance_id, account=self.account_id, region=self.region, zone=zone, at=_now()
                )
            )
            self.scheduler.after(
                notice_seconds,
                lambda: self.terminate_by_aws(
                    instance_id,
                    StateReason(
                        "Server.SpotInstanceTermination: Spot instance termination",
                        "Server.SpotInstanceTermination",
                    ),
                ),
            )

    # ------------------------------------------------------------------ prices
    def on_demand_price(self, instance_type: str) -> float | None:
        info = INSTANCE_TYPES.get(instance_type)
        estimate = None
        if info is not None:
            estimate = prices.estimated_on_demand(
                int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
                int(info.get("MemoryInfo", {}).get("SizeInMiB", 0)),
                gpus=sum(g.get("Count", 0) for g in (info.get("GpuInfo") or {}).get("Gpus", [])),
                neuron_devices=sum(
                    d.get("Count", 0)
                    for d in (info.get("NeuronInfo") or {}).get("NeuronDevices", [])
                ),
                fpgas=sum(f.get("Count", 0) for f in (info.get("FpgaInfo") or {}).get("Fpgas", [])),
            )
        return prices.on_demand_price(instance_type, estimate)

    def _base_spot_price(self, instance_type: str, zone: str) -> float | None:
        on_demand = self.on_demand_price(instance_type)
        return None if on_demand is None else prices.spot_price(instance_type, zone, on_demand)

    def spot_price(self, instance_type: str, zone: str) -> float | None:
        """The price in effect now (the last change set through the control, or the base)."""
        base = self._base_spot_price(instance_type, zone)
        return None if base is None else self.spot_market.current(instance_type, zone, base)

    def describe_spot_price_history(self, call: AwsCall) -> Response:
        form = call.form
        types = indexed(form, "InstanceType")
        zones_wanted = [form["AvailabilityZone"]] if form.get("AvailabilityZone") else []
        descriptions = indexed(form, "ProductDescription")
        for flt in indexed_groups(form, "Filter"):
            values = [v for k, v in flt.items() if k.startswith("Value.")]
            if flt.get("Name") == "instance-type":
                types += values
            elif flt.get("Name") == "availability-zone":
                zones_wanted += values
            elif flt.get("Name") == "product-description":
                descriptions += values
        if not types:
            types = sorted(t for t in prices.ON_DEMAND_USD_PER_HOUR if t in INSTANCE_TYPES)
        description = "Linux/UNIX"
        if descriptions and not any(d.startswith("Linux/UNIX") for d in descriptions):
            return ec2_response("DescribeSpotPriceHistory", "<spotPriceHistorySet/><nextToken/>")
        if descriptions:
            description = next(d for d in descriptions if d.startswith("Linux/UNIX"))
        start, end = _form_time(form, "StartTime"), _form_time(form, "EndTime")
        items = []
        for instance_type in types:
            for zone in sorted(self.offered_zones(instance_type, self.region)):
                if zones_wanted and zone not in zones_wanted:
                    continue
                base = self._base_spot_price(instance_type, zone)
                if base is None:
                    continue
                # Newest first, as EC2 lists them.
                for entry in reversed(
                    self.spot_market.history(instance_type, zone, base, start, end)
                ):
                    items.append(
                        f"<item><instanceType>{escape(instance_type)}</instanceType>"
                        f"<productDescription>{escape(description)}</productDescription>"
                        f"<spotPrice>{entry.price:.6f}</spotPrice>"
                        f"<timestamp>{_iso(entry.at)}</timestamp>"
                        f"<availabilityZone>{zone}</availabilityZone></item>"
                    )
        return ec2_response(
            "DescribeSpotPriceHistory",
            f"<spotPriceHistorySet>{''.join(items)}</spotPriceHistorySet><nextToken/>",
        )

    def get_products(self, call: AwsCall) -> Response:
        payload = call.payload
        if payload.get("ServiceCode") != "AmazonEC2":
            return json_response({"FormatVersion": "aws_v1", "PriceList": []})
        filters = payload.get("Filters") or []
        region = next(
            (f.get("Value") for f in filters if str(f.get("Field", "")).lower() == "regioncode"),
            self.region,
        )
        types = [
            f.get("Value") for f in filters if str(f.get("Field", "")).lower() == "instancetype"
        ]
        candidates = types or sorted(prices.ON_DEMAND_USD_PER_HOUR)
        products = []
        for instance_type in candidates:
            if not isinstance(instance_type, str):
                continue
            price = self.on_demand_price(instance_type)
            if price is None:
                continue
            product = prices.price_list_product(
                instance_type, str(region), price, self._product_attributes(instance_type)
            )
            if prices.term_matches(product, filters):
                products.append(json.dumps(product))
        start = int(payload.get("NextToken") or 0)
        size = int(payload.get("MaxResults") or 100)
        page = products[start : start + size]
        result: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": page}
        if start + size < len(products):
            result["NextToken"] = str(start + size)
        return json_response(result)

    @staticmethod
    def _product_attributes(instance_type: str) -> dict[str, str]:
        info = INSTANCE_TYPES.get(instance_type) or {}
        attributes = {
            "vcpu": str(info.get("VCpuInfo", {}).get("DefaultVCpus", "")),
            "memory": f"{int(info.get('MemoryInfo', {}).get('SizeInMiB', 0)) / 1024:g} GiB",
        }
        gpus = sum(g.get("Count", 0) for g in (info.get("GpuInfo") or {}).get("Gpus", []))
        if gpus:
            attributes["gpu"] = str(gpus)
            attributes["instanceFamily"] = "GPU instance"
        elif info.get("NeuronInfo") or info.get("FpgaInfo"):
            attributes["instanceFamily"] = "Machine Learning ASIC Instances"
            if info.get("FpgaInfo"):
                attributes["instanceFamily"] = "FPGA Instances"
        return attributes

    # ------------------------------------------------------ capacity reservations
    def create_capacity_reservation(self, call: AwsCall) -> Response:
        form = call.form
        instance_type = form.get("InstanceType", "")
        zone = form.get("AvailabilityZone", "")
        if instance_type not in INSTANCE_TYPES:
            raise AwsError.of(
                "InvalidParameterValue", f"Invalid value '{instance_type}' for InstanceType."
            )
        if zone not in self.offered_zones(instance_type, self.region):
            raise AwsError.of(
                "Unsupported",
                unsupported_zone_message(
                    instance_type, zone, self.offered_zones(instance_type, self.region)
                ),
            )
        tags: dict[str, str] = {}
        for group in indexed_groups(form, "TagSpecifications"):
            for tag in indexed_groups(MultiDict(group), "Tag"):
                tags[tag.get("Key", "")] = tag.get("Value", "")
        with self.lock:
            count = int(form.get("InstanceCount", "0") or 0)
            if self.available(instance_type, zone, CapacityType.ON_DEMAND) < count:
                raise AwsError.of(
                    "InsufficientInstanceCapacity",
                    insufficient_capacity_message(instance_type, zone, []),
                )
            reservation = self.reservations.create(
                instance_type=instance_type,
                instance_platform=form.get("InstancePlatform", "Linux/UNIX"),
                availability_zone=zone,
                instance_count=count,
                instance_match_criteria=form.get("InstanceMatchCriteria", "open"),
                tenancy=form.get("Tenancy", "default"),
                ebs_optimized=form.get("EbsOptimized", "false").lower() == "true",
                end_date_type=form.get("EndDateType", "unlimited"),
                end_date=form.get("EndDate"),
                tags=tags,
            )
            # Reserved capacity comes out of the zone's pool, as it does in AWS.
            self.capacity.set(
                CapacityRule(
                    instance_type,
                    max(
                        0, self.capacity.limit(instance_type, zone, CapacityType.ON_DEMAND) - count
                    ),
                    zone,
                    CapacityType.ON_DEMAND,
                )
            )
            xml = reservation.to_xml()
        return ec2_response(
            "CreateCapacityReservation", f"<capacityReservation>{xml}</capacityReservation>"
        )

    def describe_capacity_reservations(self, call: AwsCall) -> Response:
        ids = indexed(call.form, "CapacityReservationId")
        filters = {
            g.get("Name", ""): [v for k, v in g.items() if k.startswith("Value.")]
            for g in indexed_groups(call.form, "Filter")
        }
        with self.lock:
            if ids:
                found = [self.reservations.get(i) for i in ids]
            else:
                found = list(self.reservations.reservations.values())
            attribute = {
                "instance-type": "instance_type",
                "availability-zone": "availability_zone",
                "state": "state",
                "instance-match-criteria": "instance_match_criteria",
                "instance-platform": "instance_platform",
            }
            for name, values in filters.items():
                if name in attribute:
                    found = [r for r in found if getattr(r, attribute[name]) in values]
                elif name.startswith("tag:"):
                    found = [r for r in found if r.tags.get(name[4:]) in values]
            items = "".join(f"<item>{r.to_xml()}</item>" for r in found)
        return ec2_response(
            "DescribeCapacityReservations",
            f"<capacityReservationSet>{items}</capacityReservationSet>",
        )

    # --------------------------------------------------------------------- SSM
    def agent_online(self, instance_id: str) -> bool:
        if self._state(instance_id) != "running":
            return False
        tracked = self.instances.get(instance_id)
        if tracked is None:
            return True  # launched outside the emulator's path
        if tracked.running_at is None:
            return False
        online = time.monotonic() - tracked.running_at >= self.config.agent_delay_s
        tracked.online_once = tracked.online_once or online
        return online

    def describe_instance_information(self, call: AwsCall) -> Response:
        payload = call.payload
        wanted: set[str] = set()
        ping: set[str] = set()
        for flt in (payload.get("Filters") or []) + (
            payload.get("InstanceInformationFilterList") or []
        ):
            key = flt.get("Key") or flt.get("key")
            values = flt.get("Values") or flt.get("valueSet") or []
            if key in ("InstanceIds", "InstanceId"):
                wanted.update(values)
            elif key == "PingStatus":
                ping.update(values)
        items = []
        with self.lock:
            for instance in self.ec2.all_instances():
                if wanted and instance.id not in wanted:
                    continue
                online = self.agent_online(instance.id)
                tracked = self.instances.get(instance.id)
                if online:
                    status = "Online"
                elif tracked is not None and tracked.online_once:
                    status = "ConnectionLost"
                else:
                    continue
                if ping and status not in ping:
                    continue
                items.append(_instance_information(instance, status))
        start = int(payload.get("NextToken") or 0)
        size = int(payload.get("MaxResults") or 50)
        result: dict[str, Any] = {"InstanceInformationList": items[start : start + size]}
        if start + size < len(items):
            result["NextToken"] = str(start + size)
        return json_response(result)

    def send_command(self, call: AwsCall) -> Response:
        payload = call.payload
        instance_ids = list(payload.get("InstanceIds") or [])
        with self.lock:
            offline = [i for i in instance_ids if not self.agent_online(i)]
            if offline:
                raise AwsError.of(
                    "InvalidInstanceId",
                    f"Instances [[{', '.join(offline)}]] not in a valid state for account "
                    f"{self.account_id}",
                )
            response = self.forward(call)
            if response.status_code != 200:
                return response
            command = json.loads(response.get_data())["Command"]
            command_id = command["CommandId"]
            orca = parse_comment(str(payload.get("Comment") or ""))
            script = "\n".join((payload.get("Parameters") or {}).get("commands") or [])
            if parse_exec_comment(str(payload.get("Comment") or "")) is not None:
                for instance_id in command.get("InstanceIds") or instance_ids:
                    self._exec(command_id, instance_id, read_exec_request(script))
                command = self.ssm.get_command_by_id(command_id).response_object()
                return json_response({"Command": command})
            if orca is None:
                return response
            for instance_id in command.get("InstanceIds") or instance_ids:
                if orca.verb == "start":
                    manifest = extract_pod_manifest(script)
                    if manifest is None:
                        self._set_invocation(command_id, instance_id, 1, "no ORCA_POD_JSON heredoc")
                        continue
                    self._set_invocation(command_id, instance_id, None, "")
                    self.containers.start(
                        command_id, instance_id, manifest, read_runner_document(script)
                    )
                    self.usage.track(manifest)
                else:
                    self._set_invocation(command_id, instance_id, None, "")
                    stopping = self.containers.stop(
                        orca.namespace,
                        orca.name,
                        instance_id,
                        parse_stop_grace(script),
                        (command_id, instance_id),
                    )
                    if not stopping:
                        self._set_invocation(command_id, instance_id, 0, "nothing to stop")
            command = self.ssm.get_command_by_id(command_id).response_object()
            return json_response({"Command": command})

    def start_session(self, call: AwsCall) -> Response:
        """Session Manager (``sessions``): only to Online instances, only the documents ORCA
        uses (an interactive command, port forwarding)."""
        payload = call.payload
        target = str(payload.get("Target") or "")
        document = str(payload.get("DocumentName") or "SSM-SessionManagerRunShell")
        if document not in (INTERACTIVE_COMMAND_DOCUMENT, PORT_FORWARDING_DOCUMENT):
            raise AwsError.of(
                "InvalidDocument",
                f"the emulator serves only {INTERACTIVE_COMMAND_DOCUMENT} and "
                f"{PORT_FORWARDING_DOCUMENT} sessions, not {document}",
            )
        parameters = payload.get("Parameters") or {}
        port: int | None = None
        if document == PORT_FORWARDING_DOCUMENT:
            try:
                port = int((parameters.get("portNumber") or [""])[0])
            except ValueError:
                raise AwsError.of("InvalidParameters", "portNumber must be a port number") from None
        if self.sessions is None:
            raise AwsError.of("InternalServerError", "no session endpoint")
        with self.lock:
            if not self.agent_online(target):
                raise AwsError.of("TargetNotConnected", f"{target} is not connected.")
        command = " ".join(parameters.get("command") or [])
        request = read_session_request(command) if port is None else None
        record = self.sessions.open(target, request, port)
        return json_response(
            {
                "SessionId": record.session_id,
                "TokenValue": record.token,
                "StreamUrl": self.sessions.stream_url(record.session_id),
            }
        )

    def terminate_session(self, call: AwsCall) -> Response:
        session_id = str(call.payload.get("SessionId") or "")
        if self.sessions is not None:
            self.sessions.terminate(session_id)
        return json_response({"SessionId": session_id})

    def _exec(self, command_id: str, instance_id: str, request: ExecRequest | None) -> None:
        """Run an ``orca exec`` command in the container's sandbox, on a thread of its own (the
        invocation is InProgress meanwhile). Called under the lock."""
        if request is None:
            self._set_invocation(command_id, instance_id, 1, "", "no ORCA_EXEC_JSON heredoc\n")
            return
        directory = self.containers.sandbox_of(request.pod_uid, instance_id, request.container)
        if directory is None:
            outcome = sandboxes.not_running(request.container)
            self._set_invocation(
                command_id, instance_id, outcome.exit_code, outcome.stdout, outcome.stderr
            )
            return
        self._set_invocation(command_id, instance_id, None, "")

        def run() -> None:
            outcome = sandboxes.run_in_sandbox(directory, request)
            with self.lock:
                self._set_invocation(
                    command_id, instance_id, outcome.exit_code, outcome.stdout, outcome.stderr
                )

        threading.Thread(target=run, name="aws-emulator-exec", daemon=True).start()

    def _set_invocation(
        self,
        command_id: str,
        instance_id: str,
        response_code: int | None,
        output: str,
        error_output: str = "",
    ) -> None:
        """None → InProgress; otherwise finished with that code (0 → Success, else Failed)."""
        command = self.ssm.get_command_by_id(command_id)
        now = _now()
        for invocation in command.invocations:
            if invocation["InstanceId"] != instance_id:
                continue
            if response_code is None:
                invocation.update(
                    Status="InProgress",
                    StatusDetails="InProgress",
                    ResponseCode=-1,
                    ExecutionStartDateTime=now.isoformat(),
                    ExecutionEndDateTime="",
                    ExecutionElapsedTime="PT0S",
                )
                invocation["_started"] = time.monotonic()
            else:
                status = "Success" if response_code == 0 else "Failed"
                elapsed = time.monotonic() - float(invocation.get("_started", time.monotonic()))
                invocation.update(
                    Status=status,
                    StatusDetails=status,
                    ResponseCode=response_code,
                    ExecutionEndDateTime=now.isoformat(),
                    ExecutionElapsedTime=f"PT{elapsed:.3f}S",
                    StandardOutputContent=output,
                    StandardErrorContent=error_output,
                )
        statuses = [i["Status"] for i in command.invocations]
        command.completed_count = sum(s in ("Success", "Failed") for s in statuses)
        command.error_count = statuses.count("Failed")
        if "InProgress" in statuses:
            command.status = "InProgress"
        else:
            command.status = "Failed" if "Failed" in statuses else "Success"
        command.status_details = command.status


INTERACTIVE_COMMAND_DOCUMENT = "AWS-StartInteractiveCommand"
PORT_FORWARDING_DOCUMENT = "AWS-StartPortForwardingSession"


def _instance_information(instance: Any, status: str) -> dict[str, Any]:
    return {
        "InstanceId": instance.id,
        "PingStatus": status,
        "LastPingDateTime": time.time(),
        "AgentVersion": "3.3.1957.0",
        "IsLatestVersion": True,
        "PlatformType": "Linux",
        "PlatformName": "Amazon Linux",
        "PlatformVersion": "2023",
        "ResourceType": "EC2Instance",
        "IPAddress": instance.private_ip,
        "ComputerName": f"ip-{str(instance.private_ip).replace('.', '-')}.ec2.internal",
        "SourceId": instance.id,
        "SourceType": "AWS::EC2::Instance",
    }


def _attachment_xml(attachment: Any, state: str) -> str:
    return (
        f"<volumeId>{attachment.volume.id}</volumeId>"
        f"<instanceId>{attachment.instance.id}</instanceId>"
        f"<device>{escape(attachment.device)}</device>"
        f"<status>{state}</status>"
        f"<attachTime>{_iso(attachment.attach_time)}</attachTime>"
        "<deleteOnTermination>false</deleteOnTermination>"
    )


def _fingerprint(form: MultiDict[str, str]) -> str:
    items = sorted((k, v) for k, v in form.items(multi=True) if k not in ("Version",))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def _urlencode(form: MultiDict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(list(form.items(multi=True))).encode()


class MotoMetricSink:
    """``MetricSink`` over moto's CloudWatch backend (lock held by callers)."""

    def __init__(self, middleware: EmulatorMiddleware) -> None:
        self._middleware = middleware

    @property
    def _backend(self) -> Any:
        return cloudwatch_backends[self._middleware.account_id][self._middleware.region]

    def put(self, namespace: str, data: list[dict[str, Any]]) -> None:
        self._backend.put_metric_data(namespace, data)

    def prune(self, older_than: timedelta) -> None:
        cutoff = utcnow() - older_than
        backend = self._backend
        backend.metric_data = [d for d in backend.metric_data if d.timestamp >= cutoff]


class MotoContainerHost:
    """``ContainerHost`` over moto's CloudWatch Logs and SSM backends (lock held by callers)."""

    def __init__(self, middleware: EmulatorMiddleware) -> None:
        self._middleware = middleware

    def _put(self, group: str, stream: str, messages: list[str]) -> None:
        logs = self._middleware.logs
        if group not in logs.groups:
            logs.create_log_group(group, tags={})
        if stream not in logs.groups[group].streams:
            logs.create_log_stream(group, stream)
        stamp = int(time.time() * 1000)
        logs.put_log_events(group, stream, [{"timestamp": stamp, "message": m} for m in messages])

    def write_status(self, pod_uid: str, events: list[ContainerStateEvent]) -> None:
        """As the runner: each report signed with the key in the pod's SSM parameter."""
        defaults = self._middleware.defaults
        assert defaults is not None
        parameter = self._middleware.ssm.get_parameter(status_key_parameter(pod_uid))
        key = None if parameter is None else parameter.decrypt(parameter.value)
        lines = [
            json.dumps(e.to_line()) if key is None else signed_status_line(e, key) for e in events
        ]
        self._put(defaults.status_log_group, status_log_stream(pod_uid), lines)

    def fetch_secrets(self, document: RunnerDocument) -> dict[str, str]:
        """As the runner: the pod's credentials from its SSM parameter, then GetSecretValue of
        each secret signed with them (authorized as AWS would)."""
        name = document.secrets_manager_credentials_parameter
        parameter = None if name is None else self._middleware.ssm.get_parameter(name)
        if parameter is None:
            raise SecretsUnreadableError(f"could not read the credentials parameter {name}")
        try:
            text = base64.b64decode(parameter.decrypt(parameter.value))
            key = str(json.loads(text)["AccessKeyId"])
        except (ValueError, KeyError, TypeError):
            raise SecretsUnreadableError(f"parameter {name} holds no credentials") from None
        values: dict[str, str] = {}
        for arn in document.secrets_manager_secrets:
            try:
                found = self._middleware.read_secret(key, arn)
            except AwsError as error:
                raise SecretsUnreadableError(
                    f"could not read secret {arn}: {error.code}: {error.message}"
                ) from None
            if found is None:
                raise SecretsUnreadableError(
                    f"could not read secret {arn}: ResourceNotFoundException: "
                    "Secrets Manager can't find the specified secret."
                )
            values[arn] = found[1]
        return values

    def mount_volumes(self, instance_id: str, document: RunnerDocument) -> dict[str, Path]:
        """As the runner: each block device must be attached to the instance; the first mount
        creates its filesystem (recorded); the volume's host directory is what is mounted."""
        middleware = self._middleware
        found: dict[str, Path] = {}
        for device in document.block_devices:
            volume = middleware.ec2.volumes.get(device.volume_id)
            record = middleware.volumes.get(device.volume_id)
            attachment = None if volume is None else volume.attachment
            if (
                volume is None
                or record is None
                or attachment is None
                or attachment.instance.id != instance_id
                or attachment.status != "attached"
            ):
                state = "does not exist" if volume is None else f"is {volume.status}"
                if attachment is not None:
                    state += f", {attachment.status} to {attachment.instance.id}"
                raise VolumeUnmountableError(
                    f"volume {device.volume_id} is not attached to this instance "
                    f"({instance_id}) at {device.device_name}: it {state}"
                )
            found[device.mount_point.rstrip("/")] = record.directory
        for device in document.block_devices:
            record = middleware.volumes[device.volume_id]
            if not record.formatted:
                record.formatted = True
                record.filesystems_created += 1
                record.fs_type = device.fs_type
            record.mounts += 1
        return found

    def write_output(self, stream: str, lines: list[str]) -> None:
        defaults = self._middleware.defaults
        assert defaults is not None
        self._put(defaults.log_group, stream, lines)

    def finish_invocation(
        self, command_id: str, instance_id: str, response_code: int, output: str
    ) -> None:
        self._middleware._set_invocation(command_id, instance_id, response_code, output)
