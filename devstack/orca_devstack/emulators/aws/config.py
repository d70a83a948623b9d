"""What the emulator can be told at start (``EmulatorConfig``) and what it tells back
(``EmulatorDefaults``: the ids of the content it seeded)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from orca_devstack.emulators.aws.capacity import CapacityType


class CapacitySpec(BaseModel):
    """At most ``count`` live instances of ``instance_type`` (an ``fnmatch`` pattern) per zone
    and capacity type; ``None`` means any zone / any capacity type."""

    instance_type: str
    count: int = Field(ge=0)
    zone: str | None = None
    capacity_type: CapacityType | None = None


class EmulatorConfig(BaseModel):
    launch_delay_s: float = 5.0
    """How long a new instance stays ``pending``."""
    launch_delays: dict[str, float] = Field(default_factory=dict)
    """Per instance type overrides of ``launch_delay_s``."""
    terminate_delay_s: float = 2.0
    """How long a terminated instance stays ``shutting-down``."""
    agent_delay_s: float = 1.0
    """How long after ``running`` the SSM agent reports Online."""
    notice_seconds: float = 120.0
    """Spot interruption notice period (AWS: two minutes)."""
    pull_seconds: float = 1.0
    """How long containers stay ``waiting/PullingImage``."""
    stop_seconds: float = 1.0
    """How long containers take to exit after ``orca stop`` (capped by the grace period)."""
    run_seconds: float = 30.0
    """Default run time of main containers (annotation ``emulator.orca.research/run-seconds``)."""
    init_seconds: float = 1.0
    """Default run time of each init container."""
    exit_code: int = 0
    """Default exit code (annotation ``emulator.orca.research/exit-code``)."""
    restart_back_off_s: float = 10.0
    """The first CrashLoopBackOff delay of restarted main containers (the kubelet's 10 s; it
    doubles up to 30 x this)."""
    metrics_interval_s: float = 10.0
    """How often usage figures of running containers go to CloudWatch (``container_metrics``)."""
    volume_create_delay_s: float = 1.0
    """How long a new EBS volume stays ``creating``."""
    volume_attach_delay_s: float = 1.0
    """How long an attachment stays ``attaching`` (the volume is ``in-use`` meanwhile)."""
    volume_detach_delay_s: float = 1.0
    """How long an attachment stays ``detaching`` before the volume is ``available``."""
    capacity: list[CapacitySpec] | None = None
    """Capacity rules replacing the defaults (see ``capacity.default_capacity_rules``)."""
    throttling: bool = False
    """Apply EC2's token-bucket request throttling (``RequestLimitExceeded``)."""
    state_change_events: bool = True
    """Send "EC2 Instance State-change Notification" for every transition to the queue."""
    fault_seed: int | None = None
    """Seed for fractional fault rules, for reproducible runs."""
    zone_suffixes: tuple[str, ...] = ("a", "b", "c")
    """One subnet is seeded per zone ``<region><suffix>``."""


class EmulatorDefaults(BaseModel):
    """The content every fresh (or reset) emulator holds; ids are stable across resets."""

    region: str
    account_id: str
    vpc_id: str
    subnet_ids: dict[str, str]
    """Availability zone → subnet id."""
    security_group_id: str
    interruption_queue_name: str
    interruption_queue_url: str
    interruption_queue_arn: str
    log_group: str
    status_log_group: str
    ami_ids: dict[str, str]
    """``al2023-x86_64``, ``al2023-arm64``, ``dlami-gpu``, ``dlami-neuron`` → AMI id."""
    ami_parameters: dict[str, str]
    """Public SSM parameter name → AMI id it resolves to."""
