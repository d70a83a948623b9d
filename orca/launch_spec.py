"""The pod → launch-spec contract: what ORCA reads from a pod, validated, as one model.

`parse_launch_spec` is the only place that interprets `orca.research/...` annotations and a pod's
resource requests. Everything downstream (selection, launching, `orca explain`, `orca submit`)
works from the `LaunchSpec` it returns, never from raw annotations. An invalid pod raises
`InvalidPodSpec`, whose message names the annotation, the value and what is allowed; the workflow
turns it into a non-retryable failure, a pod condition and an event, and launches nothing.

Annotation vocabulary (prefix `orca.research/`), compatible with the Go ORCA:

| annotation | meaning |
|---|---|
| `instance-type` | explicit EC2 instance type (`p5.48xlarge`) |
| `fallback-instance-types` | comma-separated types to try, in order, after `instance-type` |
| `workload-template` | a template from `instances.templates` |
| `launch-type` | `on-demand` or `spot` |
| `max-spot-price` (also `spot-max-price`) | USD per hour ceiling for spot |
| `budget-namespace` | cost attribution; defaults to the pod's namespace |
| `max-hourly-cost` | USD per hour: dearer offerings are skipped (`orca explain` says which) |
| `team` | team or department: an instance tag and a ledger dimension for cost reports |
| `max-lifetime` | `4h`, `7d`, ...; the instance is terminated after it |
| `ami` | AMI ID to boot instead of the per-family default |
| `user-data` | base64 cloud-init to run before ORCA's bootstrap |
| `termination-protection` | `true` / `false` |
| `debug` | `true` / `false`: keep the instance 10 minutes after a failure |
| `capacity-reservation-id` | launch into this On-Demand Capacity Reservation |
| `capacity-reservation-preference` | `open` or `targeted` (or `none`) |
| `capacity-block-id` | a Capacity Block for ML reservation ID |
| `secrets-manager-env` | `NAME=<secret ARN>[#json-key], ...`: env vars from AWS Secrets Manager |
| `secrets-manager-files` | `/path=<secret ARN>[#json-key], ...`: read-only files from it |
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orca.settings import (
    InstancesSettings,
    LaunchType,
    LimitsSettings,
    SelectionMode,
    WorkloadTemplate,
)
from orca.units import DURATION_HELP, QUANTITY_HELP, parse_duration, parse_quantity

ANNOTATION_PREFIX = "orca.research/"


class Annotation(StrEnum):
    INSTANCE_TYPE = "orca.research/instance-type"
    FALLBACK_INSTANCE_TYPES = "orca.research/fallback-instance-types"
    WORKLOAD_TEMPLATE = "orca.research/workload-template"
    LAUNCH_TYPE = "orca.research/launch-type"
    MAX_SPOT_PRICE = "orca.research/max-spot-price"
    SPOT_MAX_PRICE = "orca.research/spot-max-price"  # the Go ORCA's older spelling
    BUDGET_NAMESPACE = "orca.research/budget-namespace"
    TEAM = "orca.research/team"
    MAX_HOURLY_COST = "orca.research/max-hourly-cost"
    MAX_LIFETIME = "orca.research/max-lifetime"
    IDLE_TIMEOUT = "orca.research/idle-timeout"
    """`30m`: stop the pod (reason Idle) once its accelerators stay below
    `limits.idleUtilizationPercent` that long (docs/stats.md)."""
    AMI = "orca.research/ami"
    USER_DATA = "orca.research/user-data"
    TERMINATION_PROTECTION = "orca.research/termination-protection"
    DEBUG = "orca.research/debug"
    INSTANCE_METADATA = "orca.research/instance-metadata"
    """`true`: the pod's containers may reach the instance metadata service (hop limit 2) and so
    take the instance role; by default only the host can (hop limit 1, docs/security.md)."""
    CAPACITY_RESERVATION_ID = "orca.research/capacity-reservation-id"
    CAPACITY_RESERVATION_PREFERENCE = "orca.research/capacity-reservation-preference"
    CAPACITY_BLOCK_ID = "orca.research/capacity-block-id"
    SECRETS_MANAGER_ENV = "orca.research/secrets-manager-env"
    """`NAME=arn:aws:secretsmanager:<region>:<account>:secret:<name>[#key], ...`: env vars the
    instance fetches itself from Secrets Manager (the ARNs, never the values, reach ORCA)."""
    SECRETS_MANAGER_FILES = "orca.research/secrets-manager-files"
    """`/absolute/path=arn:aws:secretsmanager:...[#key], ...`: files (read-only, in every
    container) the instance fetches itself from Secrets Manager."""


class SelectionMethod(StrEnum):
    """How the instance type was decided, in precedence order."""

    EXPLICIT = "explicit"
    TEMPLATE = "template"
    AUTO = "auto"


class CapacityReservationPreference(StrEnum):
    OPEN = "open"
    TARGETED = "targeted"
    NONE = "none"


class PodRef(BaseModel):
    """One pod incarnation. The UID distinguishes a StatefulSet pod from its predecessor."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    uid: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class ResourceRequest(BaseModel):
    """What the pod asks of one instance: the sum over containers, or the largest init
    container if that is larger, as the Kubernetes scheduler computes it."""

    model_config = ConfigDict(frozen=True)

    cpu: Decimal = Decimal(0)
    """Cores."""
    memory_bytes: int = 0
    gpus: int = 0
    """`nvidia.com/gpu`."""
    neuron: int = 0
    """`aws.amazon.com/neuron` (Neuron devices)."""
    fpgas: int = 0
    """`aws.amazon.com/fpga`."""


class SecretsManagerEnv(BaseModel):
    """One env var from a Secrets Manager secret: the whole SecretString, or one JSON key."""

    model_config = ConfigDict(frozen=True)

    name: str
    secret_arn: str
    json_key: str | None = None


class SecretsManagerFile(BaseModel):
    """One file from a Secrets Manager secret, at an absolute path in every container."""

    model_config = ConfigDict(frozen=True)

    path: str
    secret_arn: str
    json_key: str | None = None


class LaunchSpec(BaseModel):
    """A pod's validated launch intent. Pure data: no settings, no AWS lookups."""

    model_config = ConfigDict(frozen=True)

    pod: PodRef
    selection: SelectionMethod
    instance_types: tuple[str, ...] = ()
    """Explicit or template types in preference order; empty for auto selection."""
    template: str | None = None
    launch_type: LaunchType = LaunchType.ON_DEMAND
    max_spot_price: Decimal | None = None
    budget_namespace: str
    team: str | None = None
    """From the `team` annotation; the planner fills in the namespace's label otherwise."""
    max_hourly_cost: Decimal | None = None
    """The pod's own price ceiling for any offering, spot or on-demand."""
    max_lifetime: timedelta | None = None
    idle_timeout: timedelta | None = None
    ami_id: str | None = None
    user_data: str | None = None
    """Base64, as annotated."""
    termination_protection: bool = False
    debug: bool = False
    instance_metadata: bool = False
    """Containers may reach IMDS (the `instance-metadata` annotation); the host always can."""
    capacity_reservation_id: str | None = None
    capacity_reservation_preference: CapacityReservationPreference | None = None
    capacity_block_id: str | None = None
    secrets_manager_env: tuple[SecretsManagerEnv, ...] = ()
    secrets_manager_files: tuple[SecretsManagerFile, ...] = ()
    resources: ResourceRequest = Field(default_factory=ResourceRequest)
    termination_grace_period_seconds: int = 30
    restart_policy: str = "Always"
    architecture: str | None = None
    """EC2 architecture (`x86_64`, `arm64`) from the pod's `kubernetes.io/arch` node selector;
    None when the pod does not say. Auto selection then assumes `x86_64`."""


class InvalidPodSpec(ValueError):  # noqa: N818 - the stable error type vocabulary
    """The pod cannot be launched as written. `annotation` is the offending key (or the pod
    field, e.g. `spec.volumes[0]`); the message says the value and what is allowed."""

    def __init__(self, annotation: str, message: str) -> None:
        super().__init__(f"{annotation}: {message}")
        self.annotation = annotation
        self.reason_message = message


# --- parsing -------------------------------------------------------------------------------------

RESOURCE_CPU = "cpu"
RESOURCE_MEMORY = "memory"
RESOURCE_GPU = "nvidia.com/gpu"
RESOURCE_NEURON = "aws.amazon.com/neuron"
RESOURCE_FPGA = "aws.amazon.com/fpga"

RESTART_POLICIES = ("Always", "OnFailure", "Never")
SUPPORTED_VOLUME_KINDS = (
    "emptyDir",
    "configMap",
    "secret",
    "projected",
    "downwardAPI",
    "persistentVolumeClaim",
)
SUPPORTED_PROJECTED_SOURCES = ("configMap", "secret", "downwardAPI", "serviceAccountToken")
"""`serviceAccountToken` is accepted because the API server's ServiceAccount admission adds a
projected `kube-api-access-*` volume to nearly every pod; the instance does not mount it."""

MAX_USER_DATA_BYTES = 16 * 1024
"""EC2's limit on user data, decoded."""

_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_CAPACITY_RESERVATION_ID = re.compile(r"^cr-[0-9a-f]+$")
_AMI_ID = re.compile(r"^ami-[0-9a-f]+$")
_ARCHITECTURES = {"amd64": "x86_64", "arm64": "arm64"}
_KNOWN_SUFFIXES = tuple(a.value.removeprefix(ANNOTATION_PREFIX) for a in Annotation)
_NEAR_MISS_CUTOFF = 0.85
_BOOLEAN_VALUES = {"true": True, "false": False}


def pod_ref_from_pod(pod: Mapping[str, Any]) -> PodRef:
    """The pod's identity from its `metadata` (camelCase pod dict, as the API returns it)."""
    metadata = pod.get("metadata") or {}
    return PodRef(
        namespace=str(metadata.get("namespace") or "default"),
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
    )


def parse_launch_spec(
    pod: Mapping[str, Any], instances: InstancesSettings, limits: LimitsSettings
) -> LaunchSpec:
    """Validate a pod (Kubernetes API camelCase dict) into a `LaunchSpec`.

    Raises `InvalidPodSpec` naming the first offending annotation or pod field. Checks that need
    the EC2 catalog (does the type exist, is it offered in our zones) belong to selection.
    """
    ref = pod_ref_from_pod(pod)
    spec = pod.get("spec") or {}
    annotations = _orca_annotations(pod)

    check_volumes(spec)
    instance_types, selection, template_name = _instance_types(annotations, instances)
    template = instances.templates[template_name] if template_name is not None else None

    launch_type = _launch_type(annotations, template, instances)
    max_spot_price = _max_spot_price(annotations, template, launch_type, instance_types, instances)
    preference, reservation_id, block_id = _capacity_reservation(
        annotations, launch_type, instance_types
    )
    return LaunchSpec(
        pod=ref,
        selection=selection,
        instance_types=instance_types,
        template=template_name,
        launch_type=launch_type,
        max_spot_price=max_spot_price,
        budget_namespace=_budget_namespace(annotations, ref),
        team=_attribution_name(annotations, Annotation.TEAM, "vision-lab"),
        max_hourly_cost=(
            _price(Annotation.MAX_HOURLY_COST, annotations[Annotation.MAX_HOURLY_COST])
            if Annotation.MAX_HOURLY_COST in annotations
            else None
        ),
        max_lifetime=_max_lifetime(annotations, limits),
        idle_timeout=parse_idle_timeout(annotations),
        ami_id=_pattern(
            annotations, Annotation.AMI, _AMI_ID, "an AMI ID such as ami-0abc1234def567890"
        ),
        user_data=_user_data(annotations),
        termination_protection=_boolean(annotations, Annotation.TERMINATION_PROTECTION),
        debug=_boolean(annotations, Annotation.DEBUG),
        instance_metadata=_boolean(annotations, Annotation.INSTANCE_METADATA),
        capacity_reservation_id=reservation_id,
        capacity_reservation_preference=preference,
        capacity_block_id=block_id,
        secrets_manager_env=parse_secrets_manager_env(
            annotations.get(Annotation.SECRETS_MANAGER_ENV)
        ),
        secrets_manager_files=parse_secrets_manager_files(
            annotations.get(Annotation.SECRETS_MANAGER_FILES)
        ),
        resources=resource_request(spec),
        termination_grace_period_seconds=_grace_period(spec),
        restart_policy=_restart_policy(spec),
        architecture=_architecture(spec),
    )


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_ARN = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:secretsmanager:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:secret:"
    r"[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"
)
_SECRET_ARN_HELP = (
    "a full secret ARN such as arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf "
    "(with its 6-character suffix), optionally #json-key"
)
_JSON_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def _secret_reference(annotation: str, target: str, reference: str) -> tuple[str, str | None]:
    """`<secret ARN>[#key]` -> (ARN, key or None), strictly."""
    arn, hash_sign, key = reference.strip().partition("#")
    if not _SECRET_ARN.match(arn):
        raise InvalidPodSpec(annotation, f"{arn!r} (for {target}) is not {_SECRET_ARN_HELP}")
    if hash_sign and not _JSON_KEY.match(key):
        raise InvalidPodSpec(
            annotation,
            f"JSON key {key!r} (for {target}) must be letters, digits, '_', '.' or '-'",
        )
    return arn, key or None


def _items(text: str) -> list[str]:
    return [item for item in (part.strip() for part in text.split(",")) if item]


def parse_secrets_manager_env(text: str | None) -> tuple[SecretsManagerEnv, ...]:
    """The `secrets-manager-env` annotation: comma-separated `NAME=<secret ARN>[#key]`."""
    if not text:
        return ()
    annotation = Annotation.SECRETS_MANAGER_ENV
    found: list[SecretsManagerEnv] = []
    for item in _items(text):
        name, equals, reference = item.partition("=")
        name = name.strip()
        if not equals or not _ENV_NAME.match(name):
            raise InvalidPodSpec(
                annotation,
                f"{item!r} is not NAME=<secret ARN>[#key]; NAME is an env var name "
                "(letters, digits, _; not starting with a digit)",
            )
        arn, key = _secret_reference(annotation, name, reference)
        if any(e.name == name for e in found):
            raise InvalidPodSpec(annotation, f"env var {name} is named twice")
        found.append(SecretsManagerEnv(name=name, secret_arn=arn, json_key=key))
    return tuple(found)


_FILE_PATH = re.compile(r"^(/[A-Za-z0-9._@+-]+)+$")


def parse_secrets_manager_files(text: str | None) -> tuple[SecretsManagerFile, ...]:
    """The `secrets-manager-files` annotation: comma-separated `/path=<secret ARN>[#key]`; the
    path is absolute in the container, without `.`/`..` parts, `:` or spaces."""
    if not text:
        return ()
    annotation = Annotation.SECRETS_MANAGER_FILES
    found: list[SecretsManagerFile] = []
    for item in _items(text):
        path, equals, reference = item.partition("=")
        path = path.strip()
        parts = path.split("/")[1:]
        if not equals or not _FILE_PATH.match(path) or any(p in (".", "..") for p in parts):
            raise InvalidPodSpec(
                annotation,
                f"{item!r} is not /path=<secret ARN>[#key]; the path is absolute in the "
                "container (letters, digits and ._@+- between slashes, no . or .. parts)",
            )
        arn, key = _secret_reference(annotation, path, reference)
        if any(f.path == path for f in found):
            raise InvalidPodSpec(annotation, f"file {path} is named twice")
        found.append(SecretsManagerFile(path=path, secret_arn=arn, json_key=key))
    return tuple(found)


def secret_region(arn: str) -> str:
    """The region of a secret ARN (validated by `parse_secrets_manager_env`/`_files`)."""
    return arn.split(":")[3]


def _orca_annotations(pod: Mapping[str, Any]) -> dict[str, str]:
    """The pod's `orca.research/` annotations, values stripped. A key that is not one of ours
    but nearly is (a typo) is an error: silently ignoring it would launch the wrong thing."""
    metadata = pod.get("metadata") or {}
    raw = metadata.get("annotations") or {}
    found: dict[str, str] = {}
    for key, value in raw.items():
        key = str(key)
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        suffix = key.removeprefix(ANNOTATION_PREFIX)
        if suffix in _KNOWN_SUFFIXES:
            found[key] = str(value).strip()
            continue
        normalised = suffix.lower().replace("_", "-").replace(" ", "-")
        close = difflib.get_close_matches(
            normalised, _KNOWN_SUFFIXES, n=1, cutoff=_NEAR_MISS_CUTOFF
        )
        if close:
            raise InvalidPodSpec(
                key,
                f"unknown annotation {key!r}; did you mean {ANNOTATION_PREFIX}{close[0]}?",
            )
    return found


def _instance_type_list(annotation: Annotation, text: str) -> tuple[str, ...]:
    names = [part.strip().lower() for part in text.split(",")]
    if any(not name for name in names):
        raise InvalidPodSpec(
            annotation,
            f"{text!r} has an empty entry; expected instance types separated by commas, "
            "such as p5.48xlarge,p4d.24xlarge",
        )
    for name in names:
        if not _INSTANCE_TYPE.match(name):
            raise InvalidPodSpec(
                annotation,
                f"{name!r} is not an EC2 instance type; expected family.size, such as p5.48xlarge",
            )
    return tuple(dict.fromkeys(names))


def _check_allowed(annotation: str, types: Sequence[str], instances: InstancesSettings) -> None:
    allowed = instances.allowed_instance_types
    if not allowed:
        return
    for name in types:
        if name not in allowed:
            raise InvalidPodSpec(
                annotation,
                f"instance type {name!r} is not allowed on this cluster; "
                f"allowed: {', '.join(allowed)}",
            )


def _instance_types(
    annotations: Mapping[str, str], instances: InstancesSettings
) -> tuple[tuple[str, ...], SelectionMethod, str | None]:
    """Explicit type (+ fallbacks) > workload template > the cluster's selection mode."""
    explicit = annotations.get(Annotation.INSTANCE_TYPE)
    fallback_text = annotations.get(Annotation.FALLBACK_INSTANCE_TYPES)
    template_name = annotations.get(Annotation.WORKLOAD_TEMPLATE)
    fallbacks = (
        _instance_type_list(Annotation.FALLBACK_INSTANCE_TYPES, fallback_text)
        if fallback_text
        else None
    )

    if template_name is not None and template_name not in instances.templates:
        known = ", ".join(sorted(instances.templates)) or "none are configured"
        raise InvalidPodSpec(
            Annotation.WORKLOAD_TEMPLATE,
            f"unknown workload template {template_name!r}; known templates: {known}",
        )

    if explicit:
        types = _instance_type_list(Annotation.INSTANCE_TYPE, explicit)
        if len(types) != 1:
            raise InvalidPodSpec(
                Annotation.INSTANCE_TYPE,
                f"{explicit!r} names several instance types; name one here and list the others "
                f"in {Annotation.FALLBACK_INSTANCE_TYPES}",
            )
        _check_allowed(Annotation.INSTANCE_TYPE, types, instances)
        rest = tuple(t for t in fallbacks or () if t not in types)
        _check_allowed(Annotation.FALLBACK_INSTANCE_TYPES, rest, instances)
        return types + rest, SelectionMethod.EXPLICIT, template_name

    if template_name is None and instances.selection_mode is SelectionMode.TEMPLATE:
        template_name = instances.default_template
    if template_name is not None:
        template = instances.templates[template_name]
        primary = template.instance_type.strip().lower()
        chosen = fallbacks if fallbacks is not None else template.fallback_instance_types
        rest = tuple(t for t in dict.fromkeys(t.strip().lower() for t in chosen) if t != primary)
        _check_allowed(Annotation.WORKLOAD_TEMPLATE, (primary, *rest), instances)
        return (primary, *rest), SelectionMethod.TEMPLATE, template_name

    if fallbacks is not None:
        raise InvalidPodSpec(
            Annotation.FALLBACK_INSTANCE_TYPES,
            f"fallbacks need a first choice; set {Annotation.INSTANCE_TYPE} or "
            f"{Annotation.WORKLOAD_TEMPLATE} as well",
        )
    if instances.selection_mode is SelectionMode.AUTO:
        return (), SelectionMethod.AUTO, None
    raise InvalidPodSpec(
        Annotation.INSTANCE_TYPE,
        f"this cluster needs every pod to choose its instance: set {Annotation.INSTANCE_TYPE} "
        f"(e.g. p5.48xlarge) or {Annotation.WORKLOAD_TEMPLATE}"
        + (
            f" (templates: {', '.join(sorted(instances.templates))})" if instances.templates else ""
        ),
    )


def _launch_type(
    annotations: Mapping[str, str], template: WorkloadTemplate | None, instances: InstancesSettings
) -> LaunchType:
    text = annotations.get(Annotation.LAUNCH_TYPE)
    if text is None:
        if template is not None and template.launch_type is not None:
            return LaunchType(template.launch_type)
        return instances.default_launch_type
    try:
        return LaunchType(text.lower())
    except ValueError:
        allowed = ", ".join(t.value for t in LaunchType)
        raise InvalidPodSpec(
            Annotation.LAUNCH_TYPE, f"{text!r} is not a launch type; allowed: {allowed}"
        ) from None


def _price(annotation: Annotation, text: str) -> Decimal:
    try:
        price = Decimal(text.removeprefix("$"))
    except InvalidOperation:
        price = Decimal("NaN")
    if not price.is_finite() or price <= 0:
        raise InvalidPodSpec(
            annotation,
            f"{text!r} is not a price; expected US dollars per hour as a positive decimal, "
            "such as 12.50",
        )
    return price


def _max_spot_price(
    annotations: Mapping[str, str],
    template: WorkloadTemplate | None,
    launch_type: LaunchType,
    instance_types: Sequence[str],
    instances: InstancesSettings,
) -> Decimal | None:
    given = {
        annotation: _price(annotation, annotations[annotation])
        for annotation in (Annotation.MAX_SPOT_PRICE, Annotation.SPOT_MAX_PRICE)
        if annotations.get(annotation)
    }
    if len(set(given.values())) > 1:
        raise InvalidPodSpec(
            Annotation.MAX_SPOT_PRICE,
            f"{Annotation.MAX_SPOT_PRICE} ({annotations[Annotation.MAX_SPOT_PRICE]}) and the "
            f"older {Annotation.SPOT_MAX_PRICE} ({annotations[Annotation.SPOT_MAX_PRICE]}) "
            "disagree; set only one",
        )
    if given:
        annotation, price = next(iter(given.items()))
        if launch_type is not LaunchType.SPOT:
            raise InvalidPodSpec(
                annotation,
                f"a max spot price ({annotations[annotation]}) only applies to spot instances, "
                f"but the launch type is {launch_type.value}; set "
                f"{Annotation.LAUNCH_TYPE}: spot or remove the price",
            )
        for name in instance_types:
            ceiling = instances.max_spot_prices.get(name)
            if ceiling is not None and price > ceiling:
                raise InvalidPodSpec(
                    annotation,
                    f"{annotations[annotation]} is above this cluster's ceiling for {name} "
                    f"(${ceiling}/h); set at most {ceiling}",
                )
        return price
    if launch_type is LaunchType.SPOT and template is not None:
        return Decimal(template.max_spot_price) if template.max_spot_price is not None else None
    return None


def _capacity_reservation(
    annotations: Mapping[str, str], launch_type: LaunchType, instance_types: Sequence[str]
) -> tuple[CapacityReservationPreference | None, str | None, str | None]:
    reservation_id = _pattern(
        annotations,
        Annotation.CAPACITY_RESERVATION_ID,
        _CAPACITY_RESERVATION_ID,
        "a capacity reservation ID such as cr-0123456789abcdef0",
    )
    block_id = _pattern(
        annotations,
        Annotation.CAPACITY_BLOCK_ID,
        _CAPACITY_RESERVATION_ID,
        "a Capacity Block reservation ID such as cr-0123456789abcdef0",
    )
    preference: CapacityReservationPreference | None = None
    text = annotations.get(Annotation.CAPACITY_RESERVATION_PREFERENCE)
    if text is not None:
        try:
            preference = CapacityReservationPreference(text.lower())
        except ValueError:
            allowed = ", ".join(p.value for p in CapacityReservationPreference)
            raise InvalidPodSpec(
                Annotation.CAPACITY_RESERVATION_PREFERENCE,
                f"{text!r} is not a capacity reservation preference; allowed: {allowed}",
            ) from None
    if reservation_id and block_id:
        raise InvalidPodSpec(
            Annotation.CAPACITY_BLOCK_ID,
            f"set either {Annotation.CAPACITY_RESERVATION_ID} or {Annotation.CAPACITY_BLOCK_ID}, "
            "not both",
        )
    if reservation_id:
        if preference is None:
            preference = CapacityReservationPreference.TARGETED
        elif preference is not CapacityReservationPreference.TARGETED:
            raise InvalidPodSpec(
                Annotation.CAPACITY_RESERVATION_PREFERENCE,
                f"{preference.value!r} contradicts {Annotation.CAPACITY_RESERVATION_ID} "
                f"{reservation_id}; use targeted (or leave it unset)",
            )
    elif preference is CapacityReservationPreference.TARGETED:
        raise InvalidPodSpec(
            Annotation.CAPACITY_RESERVATION_PREFERENCE,
            f"targeted needs {Annotation.CAPACITY_RESERVATION_ID} naming the reservation",
        )
    reserved = reservation_id or block_id
    if reserved:
        annotation = (
            Annotation.CAPACITY_RESERVATION_ID if reservation_id else Annotation.CAPACITY_BLOCK_ID
        )
        if launch_type is LaunchType.SPOT:
            raise InvalidPodSpec(
                annotation,
                f"reserved capacity ({reserved}) is on-demand, but the launch type is spot; "
                f"set {Annotation.LAUNCH_TYPE}: on-demand",
            )
        if not instance_types:
            raise InvalidPodSpec(
                annotation,
                f"reserved capacity ({reserved}) is for one instance type; set "
                f"{Annotation.INSTANCE_TYPE} to the reservation's type",
            )
    return preference, reservation_id, block_id


def _pattern(
    annotations: Mapping[str, str], annotation: Annotation, pattern: re.Pattern[str], help_: str
) -> str | None:
    text = annotations.get(annotation)
    if text is None:
        return None
    if not pattern.match(text):
        raise InvalidPodSpec(annotation, f"{text!r} is not valid; expected {help_}")
    return text


def _boolean(annotations: Mapping[str, str], annotation: Annotation) -> bool:
    text = annotations.get(annotation)
    if text is None:
        return False
    if text.lower() not in _BOOLEAN_VALUES:
        raise InvalidPodSpec(annotation, f"{text!r} is not a boolean; allowed: true, false")
    return _BOOLEAN_VALUES[text.lower()]


def _budget_namespace(annotations: Mapping[str, str], ref: PodRef) -> str:
    return _attribution_name(annotations, Annotation.BUDGET_NAMESPACE, "ml-team") or ref.namespace


def _attribution_name(annotations: Mapping[str, str], key: Annotation, example: str) -> str | None:
    """A name that becomes an EC2 tag value and a ledger dimension."""
    text = annotations.get(key)
    if text is None:
        return None
    if not text or len(text) > 256 or not text.isprintable():
        what = key.removeprefix(ANNOTATION_PREFIX).replace("-", " ")
        raise InvalidPodSpec(
            key,
            f"{text!r} is not a {what}; expected a non-empty name of at most "
            f"256 printable characters, such as {example}",
        )
    return text


def _max_lifetime(annotations: Mapping[str, str], limits: LimitsSettings) -> timedelta | None:
    ceiling = limits.max_instance_lifetime
    if ceiling is not None and ceiling <= timedelta(0):
        ceiling = None  # zero means unlimited, as for every limit
    lifetime = _positive_duration(annotations, Annotation.MAX_LIFETIME)
    if lifetime is None:
        return ceiling
    return min(lifetime, ceiling) if ceiling is not None else lifetime


def parse_idle_timeout(annotations: Mapping[str, str]) -> timedelta | None:
    """`orca.research/idle-timeout` (InvalidPodSpec naming it when it is not a duration > 0)."""
    return _positive_duration(annotations, Annotation.IDLE_TIMEOUT)


def _positive_duration(annotations: Mapping[str, str], key: str) -> timedelta | None:
    """The duration annotation `key` (None when absent); InvalidPodSpec naming it unless it is a
    duration longer than zero."""
    text = annotations.get(key)
    if text is None:
        return None
    try:
        duration = parse_duration(text)
    except ValueError:
        raise InvalidPodSpec(key, f"{text!r} is not a duration; expected {DURATION_HELP}") from None
    if duration <= timedelta(0):
        raise InvalidPodSpec(key, f"{text!r} must be longer than zero; expected {DURATION_HELP}")
    return duration


def _user_data(annotations: Mapping[str, str]) -> str | None:
    text = annotations.get(Annotation.USER_DATA)
    if text is None:
        return None
    compact = "".join(text.split())
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPodSpec(
            Annotation.USER_DATA,
            "the value is not valid base64; encode the cloud-init script with `base64 -w0`",
        ) from None
    if len(decoded) > MAX_USER_DATA_BYTES:
        raise InvalidPodSpec(
            Annotation.USER_DATA,
            f"decodes to {len(decoded)} bytes; EC2 allows at most {MAX_USER_DATA_BYTES} (16 KiB)",
        )
    return compact


def _restart_policy(spec: Mapping[str, Any]) -> str:
    policy = spec.get("restartPolicy") or "Always"
    if policy not in RESTART_POLICIES:
        raise InvalidPodSpec(
            "spec.restartPolicy",
            f"{policy!r} is not a restart policy; allowed: {', '.join(RESTART_POLICIES)}",
        )
    return str(policy)


def _grace_period(spec: Mapping[str, Any]) -> int:
    value = spec.get("terminationGracePeriodSeconds")
    if value is None:
        return 30
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPodSpec(
            "spec.terminationGracePeriodSeconds",
            f"{value!r} is not a number of seconds; expected a whole number >= 0",
        )
    return value


def _architecture(spec: Mapping[str, Any]) -> str | None:
    selector = spec.get("nodeSelector") or {}
    arch = selector.get("kubernetes.io/arch")
    if arch is None:
        return None
    if arch not in _ARCHITECTURES:
        raise InvalidPodSpec(
            "spec.nodeSelector",
            f"kubernetes.io/arch {arch!r} is not available on EC2 burst instances; "
            f"allowed: {', '.join(_ARCHITECTURES)}",
        )
    return _ARCHITECTURES[arch]


# --- resources ---------------------------------------------------------------------------------


def _container_amounts(container: Mapping[str, Any], where: str) -> dict[str, Decimal]:
    """One container's effective requests; a resource with only a limit requests the limit,
    as the API server defaults it."""
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    amounts: dict[str, Decimal] = {}
    for name in (RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_GPU, RESOURCE_NEURON, RESOURCE_FPGA):
        if name in requests:
            field, text = f"{where}.resources.requests.{name}", requests[name]
        elif name in limits:
            field, text = f"{where}.resources.limits.{name}", limits[name]
        else:
            continue
        try:
            value = parse_quantity(text)
        except (ValueError, TypeError):
            raise InvalidPodSpec(
                field, f"{text!r} is not a quantity; expected {QUANTITY_HELP}"
            ) from None
        if value < 0:
            raise InvalidPodSpec(field, f"{text!r} is negative; a request must be >= 0")
        if name not in (RESOURCE_CPU, RESOURCE_MEMORY) and value != value.to_integral_value():
            raise InvalidPodSpec(field, f"{text!r} must be a whole number of {name} devices")
        amounts[name] = value
    return amounts


def _to_request(amounts: Mapping[str, Decimal]) -> ResourceRequest:
    def whole(name: str) -> int:
        return int(amounts.get(name, Decimal(0)).to_integral_value(rounding=ROUND_CEILING))

    return ResourceRequest(
        cpu=amounts.get(RESOURCE_CPU, Decimal(0)).normalize(),
        memory_bytes=whole(RESOURCE_MEMORY),
        gpus=whole(RESOURCE_GPU),
        neuron=whole(RESOURCE_NEURON),
        fpgas=whole(RESOURCE_FPGA),
    )


def resource_request(spec: Mapping[str, Any]) -> ResourceRequest:
    """The pod's effective request, as the scheduler computes it: per resource, the larger of
    the sum over app containers and the largest single init container."""
    totals: dict[str, Decimal] = {}
    for index, container in enumerate(spec.get("containers") or ()):
        for name, value in _container_amounts(container, f"spec.containers[{index}]").items():
            totals[name] = totals.get(name, Decimal(0)) + value
    for index, container in enumerate(spec.get("initContainers") or ()):
        for name, value in _container_amounts(container, f"spec.initContainers[{index}]").items():
            totals[name] = max(totals.get(name, Decimal(0)), value)
    return _to_request(totals)


def check_volumes(spec: Mapping[str, Any]) -> None:
    """Refuse volume kinds an instance of its own cannot provide (hostPath, NFS, generic
    ephemeral volumes, ...). PersistentVolumeClaims are accepted here; their claims are resolved
    to EBS volumes when the launch is planned (`activities.planning`)."""
    allowed = (
        "emptyDir, configMap, secret, downwardAPI, persistentVolumeClaim (EBS-backed), and "
        "projected volumes of configMap, secret and downwardAPI"
    )
    for index, volume in enumerate(spec.get("volumes") or ()):
        name = volume.get("name", "")
        kinds = [key for key in volume if key != "name"]
        if "ephemeral" in kinds:
            raise InvalidPodSpec(
                f"spec.volumes[{index}].ephemeral",
                f"volume {name!r} is a generic ephemeral volume, which ORCA does not provision; "
                "use a persistentVolumeClaim (or a StatefulSet's volumeClaimTemplates) or an "
                f"emptyDir; supported: {allowed}",
            )
        claim = volume.get("persistentVolumeClaim")
        if "persistentVolumeClaim" in kinds and not (
            isinstance(claim, Mapping) and claim.get("claimName")
        ):
            raise InvalidPodSpec(
                f"spec.volumes[{index}].persistentVolumeClaim.claimName",
                f"volume {name!r} names no claim; set persistentVolumeClaim.claimName to the "
                "name of a PersistentVolumeClaim in the pod's namespace",
            )
        unsupported = [kind for kind in kinds if kind not in SUPPORTED_VOLUME_KINDS]
        if unsupported or not kinds:
            kind = unsupported[0] if unsupported else "volume without a source"
            raise InvalidPodSpec(
                f"spec.volumes[{index}]",
                f"volume {name!r} is a {kind}, which a burst instance cannot provide; "
                f"supported: {allowed}",
            )
        projected = volume.get("projected")
        if projected is None:
            continue
        for source_index, source in enumerate(projected.get("sources") or ()):
            bad = [key for key in source if key not in SUPPORTED_PROJECTED_SOURCES]
            if bad:
                raise InvalidPodSpec(
                    f"spec.volumes[{index}].projected.sources[{source_index}]",
                    f"volume {name!r} projects a {bad[0]}, which a burst instance cannot "
                    f"provide; supported: {allowed}",
                )


def claim_volumes(spec: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """The pod's persistentVolumeClaim volumes as (volume name, claim name, readOnly), in
    `spec.volumes` order (pure; `check_volumes` has refused those without a claim name)."""
    claims = []
    for volume in spec.get("volumes") or ():
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, Mapping) and claim.get("claimName"):
            claims.append(
                (str(volume.get("name", "")), str(claim["claimName"]), bool(claim.get("readOnly")))
            )
    return claims
