"""ORCA's one settings object.

Every process (worker, watcher, CLI, `orca dev`) reads its configuration through `load_settings`.
Sources, from strongest to weakest:

1. environment variables: `ORCA_` prefix, `__` between nesting levels, snake_case field names
   (`ORCA_AWS__REGION=eu-west-1`, `ORCA_TEMPORAL__ADDRESS=temporal:7233`,
   `ORCA_LIMITS__MAX_CONCURRENT_INSTANCES=20`);
2. one YAML file: `--config PATH`, else `$ORCA_CONFIG`, else the first of `./orca.yaml`,
   `~/.config/orca/config.yaml`, `/etc/orca/config.yaml` that exists;
3. the defaults below.

The YAML file uses the original Go ORCA's camelCase keys (`aws.subnetID`, `node.taints`,
`instances.selectionMode`, `limits.maxConcurrentInstances`), so its `config.yaml` files load
unchanged; snake_case keys are accepted too. Unknown keys are errors, so a typo never silently
falls back to a default. A bad file raises `ConfigError`, whose message names every offending key
path and what is allowed; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from orca.units import format_duration, parse_duration, parse_quantity
from orca.usage_queries import valid_period

CONFIG_ENV_VAR = "ORCA_CONFIG"
DEFAULT_CONFIG_PATHS = (
    Path("orca.yaml"),
    Path("~/.config/orca/config.yaml"),
    Path("/etc/orca/config.yaml"),
)


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and what is allowed."""


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("expected a duration such as 90s, 5m, 4h or 7d")


def _quantity(value: Any) -> str:
    text = str(value)
    if parse_quantity(text) < 0:
        raise ValueError(f"{text!r} is negative; a capacity must be >= 0")
    return text


DURATION_PATTERN = r"^\s*(\d+(\.\d+)?(ms|s|m|h|d))+\s*$"
"""`orca.units`' duration parts, repeated and anchored (JSON Schema patterns are not)."""
QUANTITY_PATTERN = r"^\s*\+?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?\s*$"
"""`orca.units`' quantity without a sign: capacities are never negative."""

Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "a duration such as 90s, 5m, 4h, 1h30m or 7d, or seconds",
        }
    ),
]
"""A timedelta written as `90s`, `5m`, `4h`, `1h30m` or `7d` (or a number of seconds)."""

Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": QUANTITY_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "a Kubernetes resource quantity such as 1000, 500m, 16Gi or 4Ti",
        }
    ),
]
"""A Kubernetes resource quantity kept as written (`1000`, `4Ti`), validated on load."""

Price = Annotated[Decimal, Field(gt=0)]
"""US dollars per instance-hour."""


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonEmptyStr = Annotated[str, AfterValidator(_non_empty)]


class _Section(BaseModel):
    """A block of the YAML file: camelCase keys, snake_case accepted, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


class SelectionMode(StrEnum):
    """What ORCA does for a pod that names neither an instance type nor a workload template.

    Explicit `instance-type` and `workload-template` annotations are honoured in every mode.
    """

    EXPLICIT = "explicit"  # refuse the pod: it must name a type or template
    TEMPLATE = "template"  # use `instances.defaultTemplate`
    AUTO = "auto"  # size it from its requests against the EC2 instance catalog


class LaunchType(StrEnum):
    ON_DEMAND = "on-demand"
    SPOT = "spot"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    AUTO = "auto"  # console on a TTY, JSON otherwise
    JSON = "json"
    CONSOLE = "console"
    TEXT = "text"  # the Go ORCA's name for console output


class AwsCredentials(_Section):
    """Static credentials; prefer the default credential chain, a profile or a role."""

    access_key_id: NonEmptyStr = Field(alias="accessKeyID")
    secret_access_key: SecretStr = Field(alias="secretAccessKey")
    session_token: SecretStr | None = None


class AwsSettings(_Section):
    region: NonEmptyStr
    """AWS region every client talks to, e.g. `us-west-2`. Required."""
    vpc_id: str | None = Field(default=None, alias="vpcID")
    """Accepted and ignored: the subnets decide the VPC (named in a start-up warning)."""
    subnet_id: str | None = Field(default=None, alias="subnetID")
    """The Go ORCA's single subnet; kept for compatibility and merged into `subnetIDs`."""
    subnet_ids: tuple[str, ...] = Field(default=(), alias="subnetIDs")
    """Subnets to launch into, one per availability zone you want to use."""
    security_group_ids: tuple[str, ...] = Field(default=(), alias="securityGroupIDs")
    ami_id: str | None = Field(default=None, alias="amiID")
    """Pin one AMI for every instance; otherwise chosen per family from AWS's public SSM params."""
    endpoint_url: str | None = Field(default=None, alias="endpointURL")
    """Send every AWS call to this endpoint (the embedded stack's AWS emulator, LocalStack)."""
    local_stack_endpoint: str | None = None
    """The Go ORCA's name for `endpointURL`."""
    profile: str | None = None
    role_arn: str | None = Field(default=None, alias="roleARN")
    """Assume this IAM role (STS) on top of the base credentials."""
    credentials: AwsCredentials | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    """Extra tags on every instance ORCA creates."""
    instance_profile: str | None = None
    """IAM instance profile for burst instances; it must allow SSM and CloudWatch Logs."""
    interruption_queue_url: str | None = Field(default=None, alias="interruptionQueueURL")
    """SQS queue fed by EventBridge with EC2 interruption and state-change events."""
    log_group: str = "/orca/pods"
    status_log_group: str = "/orca/container-status"
    root_volume_gib: int = Field(default=200, ge=8)
    secrets_reader_role_arn: str | None = Field(default=None, alias="secretsReaderRoleARN")
    """IAM role ORCA assumes, per pod, to hand its instance credentials that read exactly the
    Secrets Manager secrets the pod names (`orca.research/secrets-manager-env` / `-files`) and
    only those its namespace owns (docs/security.md). Unset: those annotations are refused."""
    development_mode: bool = False
    """Accepted for the Go ORCA's files and ignored (named in a start-up warning)."""

    @property
    def subnets(self) -> tuple[str, ...]:
        """All configured subnets, the legacy `subnetID` first, without duplicates."""
        ordered = ([self.subnet_id] if self.subnet_id else []) + list(self.subnet_ids)
        return tuple(dict.fromkeys(ordered))

    @property
    def endpoint(self) -> str | None:
        return self.endpoint_url or self.local_stack_endpoint


class Taint(_Section):
    key: NonEmptyStr
    value: str = ""
    effect: TaintEffect = TaintEffect.NO_SCHEDULE


class NodeSettings(_Section):
    """The virtual node ORCA registers; its capacity bounds what the scheduler sends to it."""

    name: NonEmptyStr = "orca-aws-node"
    labels: dict[str, str] = Field(default_factory=lambda: {"orca.research/provider": "aws"})
    taints: tuple[Taint, ...] = (Taint(key="orca.research/burst-node", value="true"),)
    operating_system: str = "Linux"
    cpu: Quantity = "1000"
    memory: Quantity = "4Ti"
    pods: Quantity = "1000"
    gpu: Quantity = "100"
    neuron: Quantity = "256"
    fpga: Quantity = "16"
    address: str = "127.0.0.1"
    """InternalIP advertised for the node: where the API server reaches the kubelet endpoint."""
    kubelet_port: int = Field(default=10250, ge=1, le=65535)
    kubelet_tls_cert_file: Path | None = Field(default=None, alias="kubeletTLSCertFile")
    kubelet_tls_key_file: Path | None = Field(default=None, alias="kubeletTLSKeyFile")
    """The kubelet endpoint's serving certificate and key (PEM). The endpoint is always HTTPS:
    unset, the watcher makes a self-signed certificate for `address` at start, which API servers
    accept unless run with `--kubelet-certificate-authority`."""
    kubelet_client_ca_file: Path | None = Field(default=None, alias="kubeletClientCAFile")
    """CA bundle (PEM) that verifies client certificates at the kubelet endpoint (the kubelet's
    `--client-ca-file`). Unset: the cluster's, from ConfigMap
    kube-system/extension-apiserver-authentication, key `client-ca-file`."""
    lease_duration: Duration = timedelta(seconds=40)
    lease_renew_interval: Duration = timedelta(seconds=10)
    status_update_interval: Duration = timedelta(minutes=1)
    stats_interval: Duration = timedelta(minutes=1)
    """How often the watcher reads every running pod's usage figures from CloudWatch (one
    batched GetMetricData read, docs/stats.md) for `/stats/summary`, `/metrics/resource` and
    `kubectl top`. A CloudWatch period: 1s, 5s, 10s, 30s or a multiple of 1m; the instances
    publish once a minute, so less only helps `orca dev`."""
    delete_on_shutdown: bool = False
    """Delete the Node object when the watcher stops, instead of leaving it NotReady."""

    @field_validator("stats_interval")
    @classmethod
    def _stats_interval_is_a_period(cls, value: timedelta) -> timedelta:
        seconds = value.total_seconds()
        if not seconds.is_integer() or not valid_period(int(seconds)):
            raise ValueError(
                f"statsInterval {format_duration(value)} is not a CloudWatch period: "
                "1s, 5s, 10s, 30s or a multiple of 1m"
            )
        return value


class WorkloadTemplate(_Section):
    instance_type: NonEmptyStr
    launch_type: LaunchType | None = None
    max_spot_price: Price | None = None
    fallback_instance_types: tuple[str, ...] = ()


class InstancesSettings(_Section):
    selection_mode: SelectionMode = SelectionMode.EXPLICIT
    templates: dict[str, WorkloadTemplate] = Field(default_factory=dict)
    default_template: str | None = None
    """Template for pods that name neither a type nor a template, in `template` mode."""
    default_launch_type: LaunchType = LaunchType.ON_DEMAND
    allowed_instance_types: tuple[str, ...] = ()
    """Instance types ORCA may launch; empty means any type EC2 offers in the region."""
    max_spot_prices: dict[str, Price] = Field(default_factory=dict)
    """Ceiling on a pod's `max-spot-price`, per instance type."""
    spot_fallback_to_on_demand: bool = False
    """When every spot offering is out of capacity, try the same types on demand."""
    unavailable_offering_ttl: Duration = timedelta(minutes=3)
    """How long a type x zone x capacity type that ran out of capacity is skipped."""
    launch_timeout: Duration = timedelta(minutes=10)
    """An instance not running by then is terminated and the next candidate tried."""
    capacity_retry_interval: Duration = timedelta(minutes=2)
    """First wait before retrying when every candidate is out of capacity (doubles, up to 30m)."""
    capacity_give_up_after: Duration = timedelta(hours=24)
    """Stop retrying and fail the pod after waiting this long for capacity."""
    auto_max_candidates: int = Field(default=5, ge=1)
    refuse_undersized: bool = False
    """Fail a pod whose named instance type is smaller than its requests (vCPU, memory,
    accelerators) instead of launching it with a Warning event."""

    # A template naming a type outside allowedInstanceTypes is legal here (the Go ORCA's own
    # config.dev.yaml has one); a pod that uses it is refused with that reason at selection.

    @model_validator(mode="after")
    def _templates_are_consistent(self) -> InstancesSettings:
        if self.default_template is not None and self.default_template not in self.templates:
            known = ", ".join(sorted(self.templates)) or "none defined"
            raise ValueError(
                f"defaultTemplate {self.default_template!r} is not a template; known: {known}"
            )
        if self.selection_mode is SelectionMode.TEMPLATE and self.default_template is None:
            raise ValueError("selectionMode 'template' needs instances.defaultTemplate")
        return self


class BudgetEnforcement(StrEnum):
    HOLD = "hold"
    """An exhausted dollar budget holds new launches only."""
    STOP = "stop"
    """It also stops the scope's running pods (reason BudgetExceeded)."""


class NamespaceQuota(_Section):
    max_instances: int | None = Field(default=None, ge=0)
    max_gpus: int | None = Field(default=None, alias="maxGPUs", ge=0)
    daily_budget: Decimal | None = Field(default=None, ge=0)


class LimitsSettings(_Section):
    """Zero means unlimited for every limit here, as in the Go ORCA."""

    max_concurrent_instances: int = Field(default=50, ge=0)
    max_instances_per_namespace: int = Field(default=10, ge=0)
    max_concurrent_gpus: int = Field(default=0, alias="maxConcurrentGPUs", ge=0)
    idle_utilization_percent: float = Field(default=5.0, ge=0, le=100)
    """A pod with `orca.research/idle-timeout` whose GPUs or Neuron cores stay below this
    utilization for that long is stopped with reason Idle, after a Warning event (docs/stats.md)."""
    max_hourly_cost: Decimal = Field(default=Decimal(0), ge=0)
    """The sum of the hourly prices of the cluster's running instances, in dollars."""
    daily_budget: Decimal = Field(default=Decimal(0), ge=0)
    monthly_budget: Decimal = Field(default=Decimal(0), ge=0)
    minimum_runtime: Duration = timedelta(hours=1)
    """A dollar budget holds a launch when what is left cannot pay for this long of it."""
    accrual_interval: Duration = timedelta(minutes=1)
    """How often the budget ledger adds running instances' cost to the spend."""
    ledger_upkeep_interval: Duration = timedelta(minutes=2)
    """How often the budget ledger releases the claims of pods whose workflow has ended without
    releasing (a release lost to a kill): the longest such a claim keeps its room."""
    enforcement: BudgetEnforcement = BudgetEnforcement.HOLD
    warning_threshold: float = Field(default=0.8, gt=0, le=1)
    """The share of a dollar budget spent at which the scope's running pods get a warning event."""
    ledger: bool = True
    """Admit every launch through the cluster's budget ledger workflow (`orca-ledger/<cluster>`).
    False admits everything and enforces no limit or budget (benchmarks, throwaway clusters)."""
    max_instance_lifetime: Duration | None = None
    namespace_quotas: dict[str, NamespaceQuota] = Field(default_factory=dict)

    def unenforced_budgets(self) -> list[str]:
        """The limits and budgets that are set although `ledger` is false (nothing then admits
        launches, so none of them is enforced; the worker warns at start)."""
        if self.ledger:
            return []
        named = [
            ("maxConcurrentInstances", self.max_concurrent_instances),
            ("maxInstancesPerNamespace", self.max_instances_per_namespace),
            ("maxConcurrentGPUs", self.max_concurrent_gpus),
            ("maxHourlyCost", self.max_hourly_cost),
            ("dailyBudget", self.daily_budget),
            ("monthlyBudget", self.monthly_budget),
        ]
        budgets = [f"limits.{name}" for name, value in named if value]
        budgets += [
            f"limits.namespaceQuotas.{namespace}" for namespace in sorted(self.namespace_quotas)
        ]
        return budgets


class LoggingSettings(_Section):
    level: LogLevel = LogLevel.INFO
    format: LogFormat = LogFormat.AUTO
    log_aws_calls: bool = Field(default=False, alias="logAWSCalls")


class PodSecurityLevel(StrEnum):
    """The Kubernetes Pod Security Standards levels (`orca.pod_security`)."""

    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"


class SecuritySettings(_Section):
    pod_security_level: PodSecurityLevel = PodSecurityLevel.BASELINE
    """Burst pods that do not meet this Pod Security Standards level fail with InvalidPodSpec
    before anything is launched; `privileged` checks nothing."""


class PrometheusSettings(_Section):
    enabled: bool = True
    """Accepted for the Go ORCA's files and ignored: `metrics.enabled` decides."""


class MetricsSettings(_Section):
    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    path: str = "/metrics"
    prometheus: PrometheusSettings = PrometheusSettings()


class DevelopmentSettings(_Section):
    """Accepted for compatibility with the Go ORCA's files.

    `dryRun` stops every pod before RunInstances (the pod fails with `DryRun`).
    `mockAWS: true` told the Go ORCA to fake AWS; this ORCA has no fake inside it (the embedded
    stack, `orca dev`, is the fake), so a file written for the Go ORCA must not spend money
    here: `mockAWS` means a dry run too, and the processes say so at start."""

    mock_aws: bool = Field(default=False, alias="mockAWS")
    """Go ORCA compatibility: launch nothing (as `dryRun`); use `orca dev` for a fake AWS."""
    dry_run: bool = False
    """Plan every pod but launch nothing; the pod fails with reason `DryRun`."""
    enable_fast_cleanup: bool = False
    """Accepted and ignored (named in a start-up warning)."""
    cleanup_interval: Duration = timedelta(minutes=5)
    """Accepted and ignored (named in a start-up warning)."""

    @property
    def launches_nothing(self) -> bool:
        """True when no instance may be launched (`dryRun`, or the Go ORCA's `mockAWS`)."""
        return self.dry_run or self.mock_aws


class TemporalTls(_Section):
    enabled: bool = False
    client_cert_path: Path | None = None
    client_key_path: Path | None = None
    server_root_ca_path: Path | None = None
    server_name: str | None = None


class TemporalSettings(_Section):
    address: NonEmptyStr = "localhost:7233"
    public_address: str | None = None
    """The frontend address the researchers' `orca` CLI uses, published on the virtual node
    (`orca.published_settings`); unset publishes `address`. Set it when `address` is an
    in-cluster Service name."""
    namespace: NonEmptyStr = "default"
    task_queue: NonEmptyStr = "orca-pods"
    api_key: SecretStr | None = None
    """Temporal Cloud API key; implies TLS."""
    tls: TemporalTls = TemporalTls()
    ui_url: str | None = Field(default=None, alias="uiURL")
    """Where people open the Temporal UI; used in links ORCA prints and puts in pod events."""


class KubernetesSettings(_Section):
    kubeconfig: Path | None = None
    """Kubeconfig file; unset means in-cluster config when running in a pod, else ~/.kube/config."""
    context: str | None = None
    cluster_name: NonEmptyStr = "orca"
    """Names this cluster in instance tags, so several clusters can share an AWS account."""


class LeaderElectionSettings(_Section):
    enabled: bool = True
    lease_name: str = "orca-watcher"
    lease_namespace: str = "kube-system"
    lease_duration: Duration = timedelta(seconds=15)
    renew_interval: Duration = timedelta(seconds=5)


class WatcherSettings(_Section):
    health_port: int = Field(default=8081, ge=0, le=65535)
    resync_interval: Duration = timedelta(minutes=5)
    """How often pods and workflows are reconciled even when no event arrives."""
    leader_election: LeaderElectionSettings = LeaderElectionSettings()
    worker_poller_stale_after: Duration = timedelta(minutes=2)
    """A worker whose last poll of the task queue is older than this counts as gone (condition
    `orca.research/WorkerPolling=False`); an idle worker polls about once a minute."""


class WorkerSettings(_Section):
    health_port: int = Field(default=8082, ge=0, le=65535)
    instance_poll_interval: Duration = timedelta(seconds=5)
    """One batched DescribeInstances per interval for every instance the worker waits on."""
    status_poll_interval: Duration = timedelta(seconds=5)
    max_concurrent_activities: int = Field(default=2000, ge=1)
    """Every running pod holds one (its monitor round): size it above the pods per worker."""


class OrphansSettings(_Section):
    """The orphan sweep (`orca.workflows.orphan_sweep`): ends AWS objects and pods whose
    PodLifecycle workflow is no longer running."""

    enabled: bool = True
    sweep_interval: Duration = timedelta(minutes=5)
    """How often the Temporal Schedule `orca-orphan-sweep/<clusterName>` starts a sweep."""
    min_age: Duration = timedelta(minutes=10)
    """Objects younger than this are never ended (a launch may still be on its way)."""
    report_only: bool = False
    """Log and count orphans, end nothing."""

    @model_validator(mode="after")
    def _interval_is_positive(self) -> OrphansSettings:
        if self.sweep_interval.total_seconds() < 1:
            raise ValueError("orphans.sweepInterval must be at least 1s")
        return self


class Settings(BaseSettings):
    """Everything ORCA can be told. Sections mirror the Go ORCA's file, plus the new ones."""

    model_config = SettingsConfigDict(
        env_prefix="ORCA_",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )

    aws: AwsSettings
    node: NodeSettings = NodeSettings()
    instances: InstancesSettings = InstancesSettings()
    limits: LimitsSettings = LimitsSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    development: DevelopmentSettings = DevelopmentSettings()
    temporal: TemporalSettings = TemporalSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    watcher: WatcherSettings = WatcherSettings()
    worker: WorkerSettings = WorkerSettings()
    orphans: OrphansSettings = OrphansSettings()
    security: SecuritySettings = SecuritySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs (already read and normalised by load_settings),
        # so environment variables are placed first: they override the file.
        return (env_settings, init_settings)


DEBUG_ANNOTATION_WARNING = (
    "the pod annotation orca.research/debug is accepted but has no effect: a failed pod's "
    "instance is terminated at once"
)


def ignored_settings(settings: Settings) -> list[str]:
    """What the settings ask for that this ORCA does not do, one sentence each.

    The worker and the watcher log these at start, so a file written for the Go ORCA never
    silently means something else here. Each entry names its key. Only keys set to something
    other than their default are listed, except the `debug` annotation, which pods set."""
    development = settings.development
    found: list[str] = []
    if development.mock_aws:
        found.append(
            "development.mockAWS is true: ORCA launches nothing (a dry run, as development.dryRun);"
            " for a fake AWS run `orca dev`"
        )
    if development.enable_fast_cleanup:
        found.append("development.enableFastCleanup is ignored")
    if "cleanup_interval" in development.model_fields_set:
        found.append("development.cleanupInterval is ignored")
    if settings.aws.vpc_id is not None:
        found.append("aws.vpcID is ignored: the subnets (aws.subnetIDs) decide the VPC")
    if settings.aws.development_mode:
        found.append("aws.developmentMode is ignored")
    if not settings.metrics.prometheus.enabled:
        found.append(
            "metrics.prometheus.enabled is ignored: metrics.enabled decides whether "
            "metrics are served"
        )
    found.append(DEBUG_ANNOTATION_WARNING)
    return found


def find_config_file(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The file `load_settings` reads: `--config`, then `$ORCA_CONFIG`, then the default paths."""
    if explicit is not None:
        return explicit
    if environ.get(CONFIG_ENV_VAR):
        return Path(environ[CONFIG_ENV_VAR])
    for candidate in DEFAULT_CONFIG_PATHS:
        path = candidate.expanduser()
        if path.is_file():
            return path
    return None


def load_settings(config_path: Path | None = None) -> Settings:
    """Read the settings from the file (see module docstring) and the environment."""
    path = find_config_file(config_path, os.environ)
    document = _read_yaml(path) if path is not None else {}
    where = f"in {path}" if path is not None else "(no config file; environment only)"
    try:
        normalised = _normalise_keys(Settings, document, ())
    except ConfigError as error:
        raise ConfigError(f"invalid configuration {where}:\n  {error}") from None
    return settings_from_document(normalised, where)


def settings_from_document(normalised: Mapping[str, Any], where: str) -> Settings:
    """`Settings` from a document with field names as keys (`read_config_document`,
    `normalise_document`), the environment overriding it; `ConfigError` naming every bad key
    path, `where` saying where the document came from ("in /etc/orca/config.yaml")."""
    try:
        return Settings(**normalised)
    except ValidationError as error:
        lines = "\n".join(f"  {_describe_error(item)}" for item in error.errors())
        raise ConfigError(f"invalid configuration {where}:\n{lines}") from None


def normalise_document(document: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A config document (camelCase keys) with field names as keys; unknown keys refused."""
    try:
        normalised: dict[str, Any] = _normalise_keys(Settings, dict(document), ())
    except ConfigError as error:
        raise ConfigError(f"invalid configuration {where}:\n  {error}") from None
    return normalised


def read_config_document(path: Path) -> dict[str, Any]:
    """The file's settings with field names as keys (`selectionMode` → `selection_mode`),
    unknown keys refused: what `load_settings` merges the environment into. `orca dev` lays a
    user's file over its own settings with it."""
    try:
        normalised: dict[str, Any] = _normalise_keys(Settings, _read_yaml(path), ())
    except ConfigError as error:
        raise ConfigError(f"invalid configuration in {path}:\n  {error}") from None
    return normalised


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"config file {path} is not valid YAML{position}: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"config file {path} must be a YAML mapping of sections (aws, node, instances, ...), "
            f"not a {type(document).__name__}"
        )
    return document


def _field_for_key(model: type[BaseModel], key: str) -> tuple[str, FieldInfo] | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return name, info
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `Model`, `Model | None` or `tuple[Model, ...]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _is_mapping_of_models(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is dict and _model_of(annotation) is not None


def _normalise_keys(model: type[BaseModel], document: Any, path: tuple[str, ...]) -> Any:
    """Rename camelCase keys to field names, recursively, so environment overrides merge with
    the file key by key. Unknown keys are reported with their full path and the allowed keys."""
    if not isinstance(document, dict):
        return document
    normalised: dict[str, Any] = {}
    for key, value in document.items():
        found = _field_for_key(model, str(key))
        if found is None:
            allowed = ", ".join(info.alias or name for name, info in model.model_fields.items())
            location = ".".join((*path, str(key)))
            raise ConfigError(f"{location}: unknown key; allowed here: {allowed}")
        name, info = found
        inner = _model_of(info.annotation)
        child_path = (*path, info.alias or name)
        if inner is not None and _is_mapping_of_models(info.annotation) and isinstance(value, dict):
            value = {k: _normalise_keys(inner, v, (*child_path, str(k))) for k, v in value.items()}
        elif inner is not None and isinstance(value, list):
            value = [_normalise_keys(inner, item, child_path) for item in value]
        elif inner is not None:
            value = _normalise_keys(inner, value, child_path)
        normalised[name] = value
    return normalised


def _alias_path(location: tuple[int | str, ...]) -> str:
    """Turn pydantic's error location (field names) back into the file's camelCase key path."""
    parts: list[str] = []
    model: type[BaseModel] | None = Settings
    next_is_user_key = False
    for item in location:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif next_is_user_key:
            parts.append(f".{item}")
            next_is_user_key = False
        elif model is not None and (found := _field_for_key(model, item)) is not None:
            name, info = found
            parts.append(f".{info.alias or name}")
            model = _model_of(info.annotation)
            next_is_user_key = _is_mapping_of_models(info.annotation)
        else:
            parts.append(f".{item}")
            model = None
    return "".join(parts).lstrip(".")


def _describe_error(error: Mapping[str, Any]) -> str:
    path = _alias_path(tuple(error.get("loc", ()))) or "(top level)"
    kind = error.get("type", "")
    got = error.get("input")
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{path}: {message}{shown}"
