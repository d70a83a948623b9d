"""Instance selection: from a `LaunchSpec` and a snapshot of the EC2 catalog to an ordered list
of candidate offerings (instance type x zone/subnet x capacity type), each with its reason.

Pure functions over plain models. The catalog (DescribeInstanceTypes, DescribeInstanceTypeOfferings,
prices) is fetched and cached by activities; this module only decides, so the same decision can
be unit-tested, shown by `orca explain`, and recorded in the workflow history. Workflow code
imports these models through the sandbox: no I/O and nothing heavy is imported here.

Order of the result: the types in preference order (explicit and fallbacks, template, or auto
ranked by price); within a type, zones by ascending price; on-demand fallback for spot after
every spot candidate; offerings that recently ran out of capacity last, because they may have
recovered but are unlikely to have.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from orca.launch_spec import (
    RESOURCE_FPGA,
    RESOURCE_GPU,
    RESOURCE_NEURON,
    Annotation,
    InvalidPodSpec,
    LaunchSpec,
    ResourceRequest,
    SelectionMethod,
)
from orca.settings import InstancesSettings, LaunchType

MIB = 2**20
GIB = 2**30
RESOURCES_FIELD = "spec.containers[*].resources.requests"
"""What auto-selection errors name: the pod's requests, not an annotation."""


class AcceleratorKind(StrEnum):
    GPU = "gpu"
    NEURON = "neuron"
    FPGA = "fpga"
    NONE = "none"


class InstanceTypeInfo(BaseModel):
    """What selection needs to know about one EC2 instance type (one DescribeInstanceTypes item)."""

    model_config = ConfigDict(frozen=True)

    name: str
    vcpus: int
    memory_mib: int
    gpus: int = 0
    gpu_model: str | None = None
    gpu_manufacturer: str | None = None
    """`NVIDIA`, `AMD`, `Habana`...; only NVIDIA GPUs satisfy `nvidia.com/gpu`."""
    gpu_memory_mib: int = 0
    """Total over all GPUs."""
    neuron_devices: int = 0
    neuron_cores: int = 0
    """Total over all devices."""
    fpgas: int = 0
    architectures: tuple[str, ...] = ("x86_64",)
    supported_usage: tuple[str, ...] = ("on-demand", "spot")

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def accelerator(self) -> AcceleratorKind:
        if self.gpus:
            return AcceleratorKind.GPU
        if self.neuron_devices:
            return AcceleratorKind.NEURON
        if self.fpgas:
            return AcceleratorKind.FPGA
        return AcceleratorKind.NONE

    @property
    def has_nvidia_gpus(self) -> bool:
        return self.gpus > 0 and (self.gpu_manufacturer or "NVIDIA").upper() == "NVIDIA"

    def describe(self) -> str:
        """`p5.48xlarge (192 vCPU, 2048 GiB, 8x H100)`, for reasons people read."""
        parts = [f"{self.vcpus} vCPU", _memory(self.memory_mib * MIB)]
        if self.gpus:
            parts.append(f"{self.gpus}x {self.gpu_model or 'GPU'}")
        if self.neuron_devices:
            parts.append(f"{self.neuron_devices} Neuron devices")
        if self.fpgas:
            parts.append(f"{self.fpgas} FPGA")
        return f"{self.name} ({', '.join(parts)})"


def _count(items: Iterable[Mapping[str, Any]]) -> int:
    return sum(int(item.get("Count", 0) or 0) for item in items)


def instance_type_info_from_api(item: Mapping[str, Any]) -> InstanceTypeInfo:
    """Build an `InstanceTypeInfo` from one item of boto3's DescribeInstanceTypes response."""
    gpus = (item.get("GpuInfo") or {}).get("Gpus") or []
    gpu_info = item.get("GpuInfo") or {}
    gpu_memory = gpu_info.get("TotalGpuMemoryInMiB") or sum(
        int((gpu.get("MemoryInfo") or {}).get("SizeInMiB", 0)) * int(gpu.get("Count", 0))
        for gpu in gpus
    )
    neuron_devices = (item.get("NeuronInfo") or {}).get("NeuronDevices") or []
    devices = _count(neuron_devices)
    cores = sum(
        int(d.get("Count", 0)) * int((d.get("CoreInfo") or {}).get("Count", 0))
        for d in neuron_devices
    )
    if not devices:
        # inf1 predates NeuronInfo in some API versions: Inferentia chips as inference accelerators
        accelerators = (item.get("InferenceAcceleratorInfo") or {}).get("Accelerators") or []
        devices = _count(a for a in accelerators if "inferentia" in str(a.get("Name", "")).lower())
    processor = item.get("ProcessorInfo") or {}
    return InstanceTypeInfo(
        name=str(item["InstanceType"]),
        vcpus=int((item.get("VCpuInfo") or {}).get("DefaultVCpus", 0)),
        memory_mib=int((item.get("MemoryInfo") or {}).get("SizeInMiB", 0)),
        gpus=_count(gpus),
        gpu_model=str(gpus[0]["Name"]) if gpus and gpus[0].get("Name") else None,
        gpu_manufacturer=str(gpus[0]["Manufacturer"])
        if gpus and gpus[0].get("Manufacturer")
        else None,
        gpu_memory_mib=int(gpu_memory),
        neuron_devices=devices,
        neuron_cores=cores,
        fpgas=_count((item.get("FpgaInfo") or {}).get("Fpgas") or []),
        architectures=tuple(processor.get("SupportedArchitectures") or ("x86_64",)),
        supported_usage=tuple(item.get("SupportedUsageClasses") or ("on-demand", "spot")),
    )


class Offering(BaseModel):
    """One thing EC2 can run out of: an instance type in a zone with a capacity type."""

    model_config = ConfigDict(frozen=True)

    instance_type: str
    zone: str
    capacity_type: LaunchType


class CandidateOffering(BaseModel):
    """One launch attempt the workflow may make, in order, with the reason it is on the list."""

    model_config = ConfigDict(frozen=True)

    instance_type: str
    zone: str
    subnet_id: str
    capacity_type: LaunchType
    hourly_price: Decimal | None
    """Spot price in the zone for spot, on-demand price otherwise; None when unknown."""
    max_spot_price: Decimal | None
    """The ceiling to send with a spot request (the pod's, capped by the cluster's); None for
    on-demand, or for spot without a ceiling (EC2 then caps at the on-demand price)."""
    reason: str
    """A sentence for the Temporal UI and `kubectl describe pod`."""

    @property
    def offering(self) -> Offering:
        return Offering(
            instance_type=self.instance_type, zone=self.zone, capacity_type=self.capacity_type
        )


class CatalogSnapshot(BaseModel):
    """The region's instance catalog and prices, as cached by the catalog activity."""

    model_config = ConfigDict(frozen=True)

    instance_types: dict[str, InstanceTypeInfo]
    offerings: frozenset[tuple[str, str]]
    """(instance type, availability zone) pairs from DescribeInstanceTypeOfferings."""
    on_demand_prices: dict[str, Decimal] = {}
    spot_prices: dict[str, dict[str, Decimal]] = {}
    """instance type -> zone -> current spot price."""

    def price(self, instance_type: str, zone: str, capacity_type: LaunchType) -> Decimal | None:
        if capacity_type is LaunchType.SPOT:
            return self.spot_prices.get(instance_type, {}).get(zone)
        return self.on_demand_prices.get(instance_type)


class NoCandidates(Exception):  # noqa: N818 - names the outcome, like InsufficientCapacity
    """Valid pod, but nothing to try right now (e.g. every spot price is above the pod's
    ceiling). Retryable: prices and capacity change."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CandidatePlan(BaseModel):
    """The candidates plus what was left out and why, for `orca explain` and pod events."""

    model_config = ConfigDict(frozen=True)

    candidates: tuple[CandidateOffering, ...]
    skipped: tuple[str, ...] = ()


def plan_candidates(
    spec: LaunchSpec,
    instances: InstancesSettings,
    catalog: CatalogSnapshot,
    subnets_by_zone: Mapping[str, str],
    unavailable: frozenset[Offering] | set[Offering],
) -> list[CandidateOffering]:
    """The ordered candidate offerings for a pod. Never empty: raises `NoCandidates` (nothing
    to try now) or `InvalidPodSpec` (nothing ever will be, as the pod is written)."""
    return list(
        explain_candidates(spec, instances, catalog, subnets_by_zone, unavailable).candidates
    )


def explain_candidates(
    spec: LaunchSpec,
    instances: InstancesSettings,
    catalog: CatalogSnapshot,
    subnets_by_zone: Mapping[str, str],
    unavailable: frozenset[Offering] | set[Offering],
) -> CandidatePlan:
    """`plan_candidates`, keeping the notes on offerings that were skipped."""
    if not subnets_by_zone:
        raise NoCandidates(
            "no subnets are configured (aws.subnetIDs), so there is no zone to launch in"
        )
    zones = sorted(subnets_by_zone)
    reserved = spec.capacity_reservation_id or spec.capacity_block_id

    if spec.selection is SelectionMethod.AUTO:
        types = _auto_types(spec, instances, catalog, zones)
    else:
        types = _named_types(spec, instances, catalog, zones)
        if reserved:
            types = types[:1]

    capacity_types = [spec.launch_type]
    if spec.launch_type is LaunchType.SPOT and instances.spot_fallback_to_on_demand:
        capacity_types.append(LaunchType.ON_DEMAND)

    ready: list[CandidateOffering] = []
    recently_out: list[CandidateOffering] = []
    skipped: list[str] = []
    for capacity_type in capacity_types:
        for name, why in types:
            info = catalog.instance_types[name]
            if capacity_type.value not in info.supported_usage:
                skipped.append(f"{name} cannot be launched as {capacity_type.value}")
                continue
            ceiling = (
                _spot_ceiling(spec, instances, name) if capacity_type is LaunchType.SPOT else None
            )
            for zone in _zones_by_price(
                catalog, name, zones, capacity_type, any_zone=bool(reserved)
            ):
                price = catalog.price(name, zone, capacity_type)
                if ceiling is not None and price is not None and price > ceiling:
                    skipped.append(
                        f"{name} spot in {zone} costs {_money(price)}/h, above the "
                        f"{_money(ceiling)}/h ceiling"
                    )
                    continue
                cap = spec.max_hourly_cost
                if cap is not None and (price is None or price > cap):
                    cost = f"costs {_money(price)}/h" if price is not None else "has no known price"
                    skipped.append(
                        f"{name} {capacity_type.value} in {zone} {cost}, above the pod's "
                        f"max-hourly-cost of {_money(cap)}/h"
                    )
                    continue
                reason = f"{why}, {capacity_type.value} in {zone} at " + (
                    f"{_money(price)}/h" if price is not None else "an unknown price"
                )
                if reserved:
                    reason += f" if {reserved} is in {zone}"
                if capacity_type is not spec.launch_type:
                    reason += " (on-demand fallback for spot)"
                offering = Offering(instance_type=name, zone=zone, capacity_type=capacity_type)
                out = offering in unavailable
                if out:
                    reason += " (recently out of capacity)"
                candidate = CandidateOffering(
                    instance_type=name,
                    zone=zone,
                    subnet_id=subnets_by_zone[zone],
                    capacity_type=capacity_type,
                    hourly_price=price,
                    max_spot_price=ceiling,
                    reason=reason,
                )
                (recently_out if out else ready).append(candidate)

    candidates = ready + recently_out
    if not candidates:
        detail = "; ".join(skipped) or "no offering matched"
        raise NoCandidates(f"nothing to launch for {spec.pod.key} right now: {detail}")
    return CandidatePlan(candidates=tuple(candidates), skipped=tuple(skipped))


# --- named types (explicit, fallbacks, template) -----------------------------------------------


def _named_types(
    spec: LaunchSpec, instances: InstancesSettings, catalog: CatalogSnapshot, zones: Sequence[str]
) -> list[tuple[str, str]]:
    """Validate each named type against the catalog; return (type, why) in the given order."""
    result: list[tuple[str, str]] = []
    total = len(spec.instance_types)
    for index, name in enumerate(spec.instance_types):
        if spec.selection is SelectionMethod.TEMPLATE:
            annotation: str = Annotation.WORKLOAD_TEMPLATE
            why = f"workload template {spec.template}: {name}" + (
                f" (fallback {index} of {total - 1})" if index else ""
            )
        elif index == 0:
            annotation = Annotation.INSTANCE_TYPE
            why = f"explicit {Annotation.INSTANCE_TYPE} {name}"
        else:
            annotation = Annotation.FALLBACK_INSTANCE_TYPES
            why = (
                f"fallback {index} of {total - 1} from {Annotation.FALLBACK_INSTANCE_TYPES}: {name}"
            )
        if spec.capacity_reservation_id:
            why = f"capacity reservation {spec.capacity_reservation_id} for {name}"
        elif spec.capacity_block_id:
            why = f"capacity block {spec.capacity_block_id} for {name}"

        if instances.allowed_instance_types and name not in instances.allowed_instance_types:
            raise InvalidPodSpec(
                annotation,
                f"instance type {name!r} is not allowed on this cluster; "
                f"allowed: {', '.join(instances.allowed_instance_types)}",
            )
        if name not in catalog.instance_types:
            close = difflib.get_close_matches(name, list(catalog.instance_types), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else "check the spelling"
            raise InvalidPodSpec(
                annotation,
                f"unknown instance type {name!r}; EC2 in this region has no such type ({hint})",
            )
        if not any((name, zone) in catalog.offerings for zone in zones):
            raise InvalidPodSpec(
                annotation,
                f"instance type {name!r} is not offered in any zone ORCA launches into "
                f"({', '.join(zones)}); choose another type or ask for a subnet in a zone "
                "that offers it",
            )
        if spec.capacity_reservation_id is None and spec.capacity_block_id is None:
            usable = spec.launch_type.value in catalog.instance_types[name].supported_usage
            if not usable and not (
                spec.launch_type is LaunchType.SPOT and instances.spot_fallback_to_on_demand
            ):
                raise InvalidPodSpec(
                    Annotation.LAUNCH_TYPE,
                    f"{name} cannot be launched as {spec.launch_type.value}; it supports "
                    f"{', '.join(catalog.instance_types[name].supported_usage)}",
                )
        result.append((name, why))
    return result


# --- auto selection ----------------------------------------------------------------------------


def _carries_unrequested_accelerators(info: InstanceTypeInfo, request: ResourceRequest) -> bool:
    return (
        (info.gpus > 0 and request.gpus == 0)
        or (info.neuron_devices > 0 and request.neuron == 0)
        or (info.fpgas > 0 and request.fpgas == 0)
    )


def _fits(info: InstanceTypeInfo, request: ResourceRequest) -> bool:
    return (
        info.vcpus >= request.cpu
        and info.memory_mib * MIB >= request.memory_bytes
        and (request.gpus == 0 or (info.has_nvidia_gpus and info.gpus >= request.gpus))
        and info.neuron_devices >= request.neuron
        and info.fpgas >= request.fpgas
    )


def _auto_types(
    spec: LaunchSpec, instances: InstancesSettings, catalog: CatalogSnapshot, zones: Sequence[str]
) -> list[tuple[str, str]]:
    request = spec.resources
    architecture = spec.architecture or "x86_64"
    usage = {spec.launch_type.value}
    if spec.launch_type is LaunchType.SPOT and instances.spot_fallback_to_on_demand:
        usage.add(LaunchType.ON_DEMAND.value)
    eligible = [
        info
        for info in catalog.instance_types.values()
        if (not instances.allowed_instance_types or info.name in instances.allowed_instance_types)
        and architecture in info.architectures
        and usage & set(info.supported_usage)
        and any((info.name, zone) in catalog.offerings for zone in zones)
    ]
    fitting = [info for info in eligible if _fits(info, request)]
    if not fitting:
        raise InvalidPodSpec(RESOURCES_FIELD, _nothing_fits(request, eligible, instances, zones))
    plain = [info for info in fitting if not _carries_unrequested_accelerators(info, request)]
    pool = plain or fitting

    def price(info: InstanceTypeInfo) -> Decimal | None:
        prices = [
            catalog.price(info.name, zone, spec.launch_type)
            for zone in zones
            if (info.name, zone) in catalog.offerings
        ]
        known = [p for p in prices if p is not None]
        return min(known) if known else None

    ranked = sorted(pool, key=lambda i: (price(i) is None, price(i) or 0, i.vcpus, i.name))
    chosen = ranked[: instances.auto_max_candidates]
    wanted = _describe_request(request)
    extra = "" if pool is plain else " (only types with accelerators the pod did not ask for fit)"
    return [
        (
            info.name,
            f"auto: cheapest fit {rank} of {len(chosen)} for {wanted}{extra}: {info.describe()}",
        )
        for rank, info in enumerate(chosen, start=1)
    ]


def _describe_request(request: ResourceRequest) -> str:
    parts = [f"{request.cpu.normalize():f} vCPU", _memory(request.memory_bytes)]
    for amount, name in (
        (request.gpus, RESOURCE_GPU),
        (request.neuron, RESOURCE_NEURON),
        (request.fpgas, RESOURCE_FPGA),
    ):
        if amount:
            parts.append(f"{amount} {name}")
    return ", ".join(parts)


def _nothing_fits(
    request: ResourceRequest,
    eligible: Sequence[InstanceTypeInfo],
    instances: InstancesSettings,
    zones: Sequence[str],
) -> str:
    scope = "in the catalog"
    if instances.allowed_instance_types:
        scope = "among the allowed instance types"
    if not eligible:
        return (
            f"no instance type {scope} is offered in the configured zones ({', '.join(zones)}) "
            f"for this pod's architecture and launch type"
        )
    dimensions: list[tuple[int | Decimal, str, Any]] = [
        (request.gpus, RESOURCE_GPU, lambda i: i.gpus if i.has_nvidia_gpus else 0),
        (request.neuron, RESOURCE_NEURON, lambda i: i.neuron_devices),
        (request.fpgas, RESOURCE_FPGA, lambda i: i.fpgas),
        (request.cpu, "vCPU", lambda i: i.vcpus),
    ]
    for wanted, label, amount in dimensions:
        if wanted and not any(amount(i) >= wanted for i in eligible):
            largest = max(eligible, key=lambda i: (amount(i), -i.vcpus))
            return (
                f"no instance type {scope} has {wanted} {label}; the largest has "
                f"{amount(largest)} ({largest.name})"
            )
    if request.memory_bytes and not any(
        i.memory_mib * MIB >= request.memory_bytes for i in eligible
    ):
        largest = max(eligible, key=lambda i: i.memory_mib)
        return (
            f"no instance type {scope} has {_memory(request.memory_bytes)} of memory; the largest "
            f"has {_memory(largest.memory_mib * MIB)} ({largest.name})"
        )
    return (
        f"no instance type {scope} has {_describe_request(request)} together; lower the "
        "requests or name an instance type"
    )


# --- prices and zones --------------------------------------------------------------------------


def _spot_ceiling(
    spec: LaunchSpec, instances: InstancesSettings, instance_type: str
) -> Decimal | None:
    limits = [p for p in (spec.max_spot_price, instances.max_spot_prices.get(instance_type)) if p]
    return min(limits) if limits else None


def _zones_by_price(
    catalog: CatalogSnapshot,
    instance_type: str,
    zones: Sequence[str],
    capacity_type: LaunchType,
    *,
    any_zone: bool,
) -> list[str]:
    offered = [z for z in zones if any_zone or (instance_type, z) in catalog.offerings]

    def key(zone: str) -> tuple[bool, Decimal, str]:
        price = catalog.price(instance_type, zone, capacity_type)
        return (price is None, price if price is not None else Decimal(0), zone)

    return sorted(offered, key=key)


def _money(amount: Decimal) -> str:
    return f"${amount:.2f}" if amount >= 1 else f"${amount.normalize():f}"


def _memory(size_bytes: int) -> str:
    if size_bytes >= GIB:
        return f"{Decimal(size_bytes) / GIB:.4g} GiB".replace(".0 ", " ")
    return f"{Decimal(size_bytes) / MIB:.4g} MiB"


# --- volume zones ------------------------------------------------------------------------------


def restrict_to_zone(plan: CandidatePlan, zone: str, why: str) -> CandidatePlan:
    """The plan's candidates in `zone` only (a pod's EBS volumes attach only there); every
    candidate left out is noted with `why` (e.g. "volume vol-0abc (claim data) is in
    us-east-1a"), so `orca explain` shows the restriction (pure)."""
    kept = tuple(c for c in plan.candidates if c.zone == zone)
    dropped = tuple(
        f"{c.instance_type} {c.capacity_type.value} in {c.zone}: {why}"
        for c in plan.candidates
        if c.zone != zone
    )
    return CandidatePlan(candidates=kept, skipped=plan.skipped + dropped)


def zone_waiting_reason(
    zone: str, why: str, dropped: Sequence[CandidateOffering], has_subnet: bool
) -> str:
    """Why a pod whose volumes are in `zone` has nothing to launch there now (pure)."""
    if not has_subnet:
        return f"{why}, where ORCA has no subnet; add a subnet in {zone} to aws.subnetIDs"
    if dropped:
        elsewhere = ", ".join(dict.fromkeys(c.zone for c in dropped))
        return (
            f"{why}; no candidate instance type is available there now (capacity or price), "
            f"only in {elsewhere}, and the pod cannot launch away from its volume"
        )
    return f"{why}; no candidate instance type is available there now"
