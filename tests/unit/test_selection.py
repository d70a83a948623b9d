"""`plan_candidates`: named and auto selection, zone order, spot ceilings, fallbacks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orca.launch_spec import (
    Annotation,
    InvalidPodSpec,
    LaunchSpec,
    parse_launch_spec,
)
from orca.selection import (
    AcceleratorKind,
    CandidateOffering,
    CatalogSnapshot,
    NoCandidates,
    Offering,
    explain_candidates,
    instance_type_info_from_api,
    plan_candidates,
)
from orca.settings import (
    InstancesSettings,
    LaunchType,
    LimitsSettings,
    SelectionMode,
    WorkloadTemplate,
)
from tests.unit.pods import container, pod


def api_item(
    name: str,
    vcpus: int,
    memory_gib: float,
    *,
    gpus: int = 0,
    gpu: str = "H100",
    maker: str = "NVIDIA",
    neuron: int = 0,
    fpgas: int = 0,
    arch: str = "x86_64",
    usage: tuple[str, ...] = ("on-demand", "spot"),
) -> dict[str, Any]:
    """A DescribeInstanceTypes item in boto3's shape, trimmed to what selection reads."""
    item: dict[str, Any] = {
        "InstanceType": name,
        "VCpuInfo": {"DefaultVCpus": vcpus, "DefaultCores": vcpus // 2},
        "MemoryInfo": {"SizeInMiB": int(memory_gib * 1024)},
        "ProcessorInfo": {"SupportedArchitectures": [arch], "SustainedClockSpeedInGhz": 3.1},
        "SupportedUsageClasses": list(usage),
        "CurrentGeneration": True,
    }
    if gpus:
        item["GpuInfo"] = {
            "Gpus": [
                {
                    "Name": gpu,
                    "Manufacturer": maker,
                    "Count": gpus,
                    "MemoryInfo": {"SizeInMiB": 81920},
                }
            ],
            "TotalGpuMemoryInMiB": 81920 * gpus,
        }
    if neuron:
        item["NeuronInfo"] = {
            "NeuronDevices": [
                {"Count": neuron, "Name": "Trainium", "CoreInfo": {"Count": 2, "Version": 2}}
            ]
        }
    if fpgas:
        item["FpgaInfo"] = {"Fpgas": [{"Name": "Virtex UltraScale (VU9P)", "Count": fpgas}]}
    return item


ITEMS = [
    api_item("t3.small", 2, 2),
    api_item("m7i.2xlarge", 8, 32),
    api_item("m7g.2xlarge", 8, 32, arch="arm64"),
    api_item("c7i.8xlarge", 32, 64),
    api_item("g6.2xlarge", 8, 32, gpus=1, gpu="L4"),
    api_item("g6.12xlarge", 48, 192, gpus=4, gpu="L4"),
    api_item("g4ad.8xlarge", 32, 128, gpus=2, gpu="Radeon Pro V520", maker="AMD"),
    api_item("p5.48xlarge", 192, 2048, gpus=8),
    api_item(
        "p6-b200.48xlarge", 192, 2048, gpus=8, gpu="B200", usage=("on-demand", "capacity-block")
    ),
    api_item("trn1.32xlarge", 128, 512, neuron=16),
    api_item("f1.2xlarge", 8, 122, fpgas=1),
    api_item("x2idn.32xlarge", 128, 2048),
]
ON_DEMAND = {
    "t3.small": "0.0208",
    "m7i.2xlarge": "0.4032",
    "m7g.2xlarge": "0.3264",
    "c7i.8xlarge": "1.428",
    "g6.2xlarge": "0.9776",
    "g6.12xlarge": "4.6016",
    "g4ad.8xlarge": "1.734",
    "p5.48xlarge": "98.32",
    "trn1.32xlarge": "21.50",
    "f1.2xlarge": "1.65",
    "x2idn.32xlarge": "13.338",
}
ZONES = {"us-west-2a": "subnet-aaa", "us-west-2b": "subnet-bbb", "us-west-2c": "subnet-ccc"}


def catalog(**overrides: Any) -> CatalogSnapshot:
    types = {info.name: info for info in map(instance_type_info_from_api, ITEMS)}
    offerings = {
        (name, zone) for name in types for zone in ("us-west-2a", "us-west-2b", "us-west-2c")
    }
    offerings -= {("p5.48xlarge", "us-west-2c"), ("trn1.32xlarge", "us-west-2a")}
    offerings.add(("x2idn.32xlarge", "us-east-1a"))
    offerings -= {("x2idn.32xlarge", z) for z in ZONES}
    values: dict[str, Any] = {
        "instance_types": types,
        "offerings": frozenset(offerings),
        "on_demand_prices": {k: Decimal(v) for k, v in ON_DEMAND.items()},
        "spot_prices": {
            "p5.48xlarge": {"us-west-2a": Decimal("14.10"), "us-west-2b": Decimal("12.50")},
            "g6.2xlarge": {
                "us-west-2a": Decimal("0.41"),
                "us-west-2b": Decimal("0.38"),
                "us-west-2c": Decimal("0.52"),
            },
            "t3.small": {"us-west-2b": Decimal("0.0062"), "us-west-2c": Decimal("0.0070")},
        },
    }
    values.update(overrides)
    return CatalogSnapshot(**values)


def spec_for(
    annotations: dict[str, str], requests: dict[str, str] | None = None, **settings: Any
) -> LaunchSpec:
    manifest = pod(
        annotations=annotations,
        containers=[container(requests=requests or {"cpu": "1", "memory": "1Gi"})],
    )
    return parse_launch_spec(manifest, InstancesSettings(**settings), LimitsSettings())


def plan(
    spec: LaunchSpec,
    unavailable: set[Offering] | None = None,
    snapshot: CatalogSnapshot | None = None,
    **settings: Any,
) -> list[CandidateOffering]:
    return plan_candidates(
        spec, InstancesSettings(**settings), snapshot or catalog(), ZONES, unavailable or set()
    )


def triples(candidates: list[CandidateOffering]) -> list[tuple[str, str, str]]:
    return [(c.instance_type, c.zone, c.capacity_type.value) for c in candidates]


# --- catalog parsing -----------------------------------------------------------------------------


def test_instance_type_info_from_api_reads_accelerators() -> None:
    p5 = instance_type_info_from_api(api_item("p5.48xlarge", 192, 2048, gpus=8))
    assert (p5.family, p5.accelerator, p5.gpus, p5.gpu_model) == (
        "p5",
        AcceleratorKind.GPU,
        8,
        "H100",
    )
    assert p5.gpu_memory_mib == 8 * 81920
    assert p5.memory_mib == 2048 * 1024
    trn = instance_type_info_from_api(api_item("trn1.32xlarge", 128, 512, neuron=16))
    assert (trn.accelerator, trn.neuron_devices, trn.neuron_cores) == (
        AcceleratorKind.NEURON,
        16,
        32,
    )
    f1 = instance_type_info_from_api(api_item("f1.2xlarge", 8, 122, fpgas=1))
    assert (f1.accelerator, f1.fpgas) == (AcceleratorKind.FPGA, 1)
    graviton = instance_type_info_from_api(api_item("m7g.2xlarge", 8, 32, arch="arm64"))
    assert graviton.architectures == ("arm64",)
    assert graviton.accelerator is AcceleratorKind.NONE


def test_inferentia_from_inference_accelerator_info() -> None:
    item = api_item("inf1.6xlarge", 24, 48)
    item["InferenceAcceleratorInfo"] = {
        "Accelerators": [{"Count": 4, "Name": "Inferentia", "Manufacturer": "AWS"}]
    }
    info = instance_type_info_from_api(item)
    assert info.neuron_devices == 4
    assert info.accelerator is AcceleratorKind.NEURON


def test_models_are_frozen_and_offerings_hashable() -> None:
    offering = Offering(
        instance_type="p5.48xlarge", zone="us-west-2a", capacity_type=LaunchType.SPOT
    )
    same = Offering(instance_type="p5.48xlarge", zone="us-west-2a", capacity_type=LaunchType.SPOT)
    assert len({offering, same}) == 1
    with pytest.raises(ValueError, match="frozen"):
        offering.zone = "us-west-2b"  # type: ignore[misc]


# --- named types ---------------------------------------------------------------------------------


def test_explicit_spot_zones_in_price_order_and_only_offered_zones() -> None:
    spec = spec_for(
        {"orca.research/instance-type": "p5.48xlarge", "orca.research/launch-type": "spot"}
    )
    candidates = plan(spec)
    assert triples(candidates) == [
        ("p5.48xlarge", "us-west-2b", "spot"),
        ("p5.48xlarge", "us-west-2a", "spot"),
    ]
    first = candidates[0]
    assert first.subnet_id == "subnet-bbb"
    assert first.hourly_price == Decimal("12.50")
    assert first.reason == (
        "explicit orca.research/instance-type p5.48xlarge, spot in us-west-2b at $12.50/h"
    )


def test_unknown_prices_sort_last() -> None:
    spec = spec_for(
        {"orca.research/instance-type": "t3.small", "orca.research/launch-type": "spot"}
    )
    assert [c.zone for c in plan(spec)] == ["us-west-2b", "us-west-2c", "us-west-2a"]
    assert "unknown price" in plan(spec)[-1].reason


def test_fallbacks_tried_in_given_order() -> None:
    spec = spec_for(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/fallback-instance-types": "g6.12xlarge,g6.2xlarge",
        }
    )
    names = [c.instance_type for c in plan(spec)]
    assert names == ["p5.48xlarge"] * 2 + ["g6.12xlarge"] * 3 + ["g6.2xlarge"] * 3
    assert "fallback 1 of 2" in plan(spec)[2].reason


def test_template_types_and_reason() -> None:
    templates = {
        "inference": WorkloadTemplate(
            instance_type="g6.2xlarge", fallback_instance_types=("g6.12xlarge",)
        )
    }
    spec = spec_for({"orca.research/workload-template": "inference"}, templates=templates)
    candidates = plan(spec, templates=templates)
    assert candidates[0].instance_type == "g6.2xlarge"
    assert candidates[0].reason.startswith("workload template inference: g6.2xlarge")
    assert candidates[-1].instance_type == "g6.12xlarge"


def test_unknown_instance_type_suggests_close_matches() -> None:
    spec = spec_for({"orca.research/instance-type": "p5.48xlarg"})
    with pytest.raises(InvalidPodSpec) as caught:
        plan(spec)
    assert caught.value.annotation == Annotation.INSTANCE_TYPE
    assert "unknown instance type 'p5.48xlarg'" in str(caught.value)
    assert "p5.48xlarge" in str(caught.value)


def test_type_not_offered_in_configured_zones_names_them() -> None:
    spec = spec_for({"orca.research/instance-type": "x2idn.32xlarge"})
    with pytest.raises(InvalidPodSpec) as caught:
        plan(spec)
    assert "us-west-2a, us-west-2b, us-west-2c" in str(caught.value)


def test_unknown_fallback_names_the_fallback_annotation() -> None:
    spec = spec_for(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/fallback-instance-types": "p9.huge",
        }
    )
    with pytest.raises(InvalidPodSpec) as caught:
        plan(spec)
    assert caught.value.annotation == Annotation.FALLBACK_INSTANCE_TYPES


def test_type_outside_allowed_list_is_refused_at_selection() -> None:
    spec = spec_for({"orca.research/instance-type": "p5.48xlarge"})
    with pytest.raises(InvalidPodSpec) as caught:
        plan(spec, allowed_instance_types=("g6.2xlarge",))
    assert "g6.2xlarge" in str(caught.value)


def test_spot_on_a_type_without_spot_is_refused() -> None:
    spec = spec_for(
        {"orca.research/instance-type": "p6-b200.48xlarge", "orca.research/launch-type": "spot"}
    )
    with pytest.raises(InvalidPodSpec) as caught:
        plan(spec)
    assert caught.value.annotation == Annotation.LAUNCH_TYPE
    assert "capacity-block" in str(caught.value)


# --- spot ceilings, fallback to on-demand, unavailable offerings ---------------------------------


def test_spot_above_max_price_is_skipped_with_a_note() -> None:
    spec = spec_for(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/launch-type": "spot",
            "orca.research/max-spot-price": "13",
        }
    )
    result = explain_candidates(spec, InstancesSettings(), catalog(), ZONES, set())
    assert [c.zone for c in result.candidates] == ["us-west-2b"]
    assert result.candidates[0].max_spot_price == Decimal("13")
    assert any("us-west-2a" in note and "$14.10" in note for note in result.skipped)


def test_every_spot_price_above_the_ceiling_raises_no_candidates() -> None:
    spec = spec_for(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/launch-type": "spot",
            "orca.research/max-spot-price": "10",
        }
    )
    with pytest.raises(NoCandidates) as caught:
        plan(spec)
    assert "$12.50" in caught.value.reason
    assert "$10.00" in caught.value.reason


def test_cluster_spot_ceiling_caps_the_request() -> None:
    spec = spec_for(
        {"orca.research/instance-type": "p5.48xlarge", "orca.research/launch-type": "spot"}
    )
    candidates = plan(spec, max_spot_prices={"p5.48xlarge": Decimal("13")})
    assert [(c.zone, c.max_spot_price) for c in candidates] == [("us-west-2b", Decimal("13"))]


def test_unavailable_offerings_go_last_not_dropped() -> None:
    spec = spec_for(
        {"orca.research/instance-type": "g6.2xlarge", "orca.research/launch-type": "spot"}
    )
    out = {Offering(instance_type="g6.2xlarge", zone="us-west-2b", capacity_type=LaunchType.SPOT)}
    candidates = plan(spec, unavailable=out)
    assert [c.zone for c in candidates] == ["us-west-2a", "us-west-2c", "us-west-2b"]
    assert candidates[-1].reason.endswith("(recently out of capacity)")
    assert "recently" not in candidates[0].reason


def test_spot_fallback_to_on_demand_after_every_spot_candidate() -> None:
    spec = spec_for(
        {
            "orca.research/instance-type": "g6.2xlarge",
            "orca.research/fallback-instance-types": "g6.12xlarge",
            "orca.research/launch-type": "spot",
        }
    )
    candidates = plan(spec, spot_fallback_to_on_demand=True)
    kinds = [c.capacity_type for c in candidates]
    assert kinds == [LaunchType.SPOT] * 6 + [LaunchType.ON_DEMAND] * 6
    on_demand = candidates[6]
    assert (on_demand.instance_type, on_demand.max_spot_price) == ("g6.2xlarge", None)
    assert on_demand.hourly_price == Decimal("0.9776")
    assert "on-demand fallback" in on_demand.reason


def test_recently_out_spot_goes_after_on_demand_fallback() -> None:
    spec = spec_for(
        {"orca.research/instance-type": "p5.48xlarge", "orca.research/launch-type": "spot"}
    )
    out = {
        Offering(instance_type="p5.48xlarge", zone=z, capacity_type=LaunchType.SPOT)
        for z in ("us-west-2a", "us-west-2b")
    }
    candidates = plan(spec, unavailable=out, spot_fallback_to_on_demand=True)
    assert [c.capacity_type.value for c in candidates] == ["on-demand", "on-demand", "spot", "spot"]


def test_targeted_reservation_uses_only_its_type_in_any_zone() -> None:
    spec = spec_for(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/fallback-instance-types": "g6.12xlarge",
            "orca.research/capacity-reservation-id": "cr-0abc",
        }
    )
    candidates = plan(spec)
    assert {c.instance_type for c in candidates} == {"p5.48xlarge"}
    assert sorted(c.zone for c in candidates) == sorted(ZONES)
    assert all(c.capacity_type is LaunchType.ON_DEMAND for c in candidates)
    assert "cr-0abc" in candidates[0].reason


def test_no_subnets_is_no_candidates() -> None:
    spec = spec_for({"orca.research/instance-type": "t3.small"})
    with pytest.raises(NoCandidates, match="subnet"):
        plan_candidates(spec, InstancesSettings(), catalog(), {}, set())


# --- auto ---------------------------------------------------------------------------------------


def auto(
    requests: dict[str, str], annotations: dict[str, str] | None = None, **settings: Any
) -> list[CandidateOffering]:
    spec = spec_for(annotations or {}, requests, selection_mode=SelectionMode.AUTO, **settings)
    return plan(spec, selection_mode=SelectionMode.AUTO, **settings)


def types_of(candidates: list[CandidateOffering]) -> list[str]:
    return list(dict.fromkeys(c.instance_type for c in candidates))


def test_auto_picks_cheapest_fit_without_accelerators() -> None:
    assert types_of(auto({"cpu": "4", "memory": "16Gi"})) == ["m7i.2xlarge", "c7i.8xlarge"]


def test_auto_ranks_by_price_and_keeps_max_candidates() -> None:
    assert types_of(auto({"cpu": "1", "memory": "1Gi"}, auto_max_candidates=2)) == [
        "t3.small",
        "m7i.2xlarge",
    ]


def test_auto_gpu_request_gets_nvidia_gpus_only() -> None:
    candidates = auto({"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "2"})
    assert types_of(candidates) == ["g6.12xlarge", "p5.48xlarge", "p6-b200.48xlarge"]
    assert "g4ad.8xlarge" not in types_of(candidates)  # AMD GPUs do not serve nvidia.com/gpu
    assert candidates[0].reason.startswith(
        "auto: cheapest fit 1 of 3 for 8 vCPU, 16 GiB, 2 nvidia.com/gpu"
    )


def test_auto_neuron_and_fpga() -> None:
    assert types_of(auto({"cpu": "8", "aws.amazon.com/neuron": "16"})) == ["trn1.32xlarge"]
    assert types_of(auto({"cpu": "4", "aws.amazon.com/fpga": "1"})) == ["f1.2xlarge"]


def test_auto_uses_accelerator_types_only_when_nothing_else_fits() -> None:
    candidates = auto({"cpu": "100", "memory": "300Gi"})
    assert types_of(candidates) == ["trn1.32xlarge", "p5.48xlarge", "p6-b200.48xlarge"]
    assert "did not ask for" in candidates[0].reason


def test_auto_respects_architecture_and_allowed_list() -> None:
    arm = spec_for({}, {"cpu": "2"}, selection_mode=SelectionMode.AUTO)
    arm = arm.model_copy(update={"architecture": "arm64"})
    assert types_of(plan(arm)) == ["m7g.2xlarge"]
    assert types_of(auto({"cpu": "2"}, allowed_instance_types=("c7i.8xlarge", "p5.48xlarge"))) == [
        "c7i.8xlarge"
    ]


def test_auto_spot_ranks_by_spot_price() -> None:
    candidates = auto({"cpu": "1", "nvidia.com/gpu": "1"}, {"orca.research/launch-type": "spot"})
    assert candidates[0].instance_type == "g6.2xlarge"
    assert candidates[0].capacity_type is LaunchType.SPOT
    # p6 has no spot: it does not appear at all for a spot pod
    assert "p6-b200.48xlarge" not in types_of(candidates)


def test_auto_nothing_fits_explains_the_largest() -> None:
    with pytest.raises(InvalidPodSpec) as caught:
        auto({"cpu": "8", "nvidia.com/gpu": "16"})
    assert str(caught.value).endswith(
        "no instance type in the catalog has 16 nvidia.com/gpu; the largest has 8 (p5.48xlarge)"
    )
    with pytest.raises(InvalidPodSpec, match=r"4 TiB|4096 GiB"):
        auto({"cpu": "1", "memory": "4Ti"})
    with pytest.raises(InvalidPodSpec, match="together"):
        auto({"cpu": "190", "memory": "1Gi", "aws.amazon.com/fpga": "1"})


@given(
    cpu=st.integers(min_value=0, max_value=256),
    memory_gib=st.integers(min_value=0, max_value=2500),
    gpus=st.integers(min_value=0, max_value=10),
)
def test_auto_candidates_always_fit_the_request(cpu: int, memory_gib: int, gpus: int) -> None:
    requests = {"cpu": str(cpu), "memory": f"{memory_gib}Gi", "nvidia.com/gpu": str(gpus)}
    snapshot = catalog()
    fits = [
        i
        for i in snapshot.instance_types.values()
        if i.vcpus >= cpu
        and i.memory_mib >= memory_gib * 1024
        and (gpus == 0 or (i.gpus >= gpus and i.gpu_manufacturer == "NVIDIA"))
        and i.name != "x2idn.32xlarge"  # not offered in our zones
    ]
    if not fits:
        with pytest.raises(InvalidPodSpec, match="no instance type in the catalog"):
            auto(requests)
        return
    candidates = auto(requests)
    assert candidates
    for candidate in candidates:
        info = snapshot.instance_types[candidate.instance_type]
        assert info.vcpus >= cpu
        assert info.memory_mib >= memory_gib * 1024
        assert info.gpus >= gpus
        assert (candidate.instance_type, candidate.zone) in snapshot.offerings
    assert len({c.instance_type for c in candidates}) <= 5


# --- the pod's max-hourly-cost -------------------------------------------------------------------


def test_max_hourly_cost_skips_dearer_offerings_with_a_note() -> None:
    spec = spec_for(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/launch-type": "spot",
            "orca.research/max-hourly-cost": "13",
        }
    )
    assert spec.max_hourly_cost == Decimal(13)
    result = explain_candidates(spec, InstancesSettings(), catalog(), ZONES, set())
    assert [(c.zone, c.capacity_type) for c in result.candidates] == [
        ("us-west-2b", LaunchType.SPOT)
    ]
    assert any(
        "us-west-2a" in note and "$14.10" in note and "max-hourly-cost of $13.00" in note
        for note in result.skipped
    )


def test_max_hourly_cost_below_every_offering_raises_no_candidates() -> None:
    spec = spec_for(
        {"orca.research/instance-type": "p5.48xlarge", "orca.research/max-hourly-cost": "1"}
    )
    with pytest.raises(NoCandidates) as caught:
        plan(spec)
    assert "max-hourly-cost of $1.00" in caught.value.reason


@pytest.mark.parametrize("text", ["0", "-3", "cheap", "NaN"])
def test_max_hourly_cost_must_be_a_positive_price(text: str) -> None:
    with pytest.raises(InvalidPodSpec) as caught:
        spec_for({"orca.research/instance-type": "m5.large", "orca.research/max-hourly-cost": text})
    assert caught.value.annotation == Annotation.MAX_HOURLY_COST
    assert "is not a price" in str(caught.value)
