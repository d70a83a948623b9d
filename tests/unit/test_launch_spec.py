"""`parse_launch_spec`: every annotation, the selection precedence, resources and volumes."""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orca.launch_spec import (
    Annotation,
    CapacityReservationPreference,
    InvalidPodSpec,
    LaunchSpec,
    SelectionMethod,
    claim_volumes,
    parse_launch_spec,
)
from orca.settings import (
    InstancesSettings,
    LaunchType,
    LimitsSettings,
    SelectionMode,
    WorkloadTemplate,
)
from orca.units import format_duration
from tests.unit.pods import container, gpu_pod, neuron_pod, pod

TEMPLATES = {
    "llm-training": WorkloadTemplate(
        instance_type="p5.48xlarge",
        launch_type=LaunchType.SPOT,
        max_spot_price=Decimal("40"),
        fallback_instance_types=("p4d.24xlarge",),
    ),
    "cpu-medium": WorkloadTemplate(instance_type="c7i.24xlarge"),
}


def settings(**overrides: Any) -> InstancesSettings:
    values: dict[str, Any] = {"templates": TEMPLATES}
    values.update(overrides)
    return InstancesSettings(**values)


NO_LIMITS = LimitsSettings()


def parse(annotations: dict[str, str], **overrides: Any) -> LaunchSpec:
    return parse_launch_spec(pod(annotations=annotations), settings(**overrides), NO_LIMITS)


def outcome(annotations: dict[str, str]) -> LaunchSpec | InvalidPodSpec:
    """The spec, or the InvalidPodSpec; any other exception propagates and fails the test."""
    try:
        return parse(annotations)
    except InvalidPodSpec as error:
        return error


def invalid(annotations: dict[str, str], **overrides: Any) -> InvalidPodSpec:
    with pytest.raises(InvalidPodSpec) as caught:
        parse(annotations, **overrides)
    return caught.value


# --- precedence ---------------------------------------------------------------------------------


def test_explicit_instance_type_with_fallbacks_in_order() -> None:
    spec = parse(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/fallback-instance-types": "p4d.24xlarge, p5.48xlarge ,g6e.48xlarge",
        }
    )
    assert spec.selection is SelectionMethod.EXPLICIT
    assert spec.instance_types == ("p5.48xlarge", "p4d.24xlarge", "g6e.48xlarge")
    assert spec.launch_type is LaunchType.ON_DEMAND
    assert spec.pod.key == "research/train-1"


def test_explicit_type_wins_over_template_but_template_supplies_launch_settings() -> None:
    spec = parse(
        {
            "orca.research/instance-type": "g6e.12xlarge",
            "orca.research/workload-template": "llm-training",
        }
    )
    assert spec.selection is SelectionMethod.EXPLICIT
    assert spec.instance_types == ("g6e.12xlarge",)
    assert spec.template == "llm-training"
    assert spec.launch_type is LaunchType.SPOT
    assert spec.max_spot_price == Decimal("40")


def test_template_supplies_type_launch_type_price_and_fallbacks() -> None:
    spec = parse({"orca.research/workload-template": "llm-training"})
    assert spec.selection is SelectionMethod.TEMPLATE
    assert spec.instance_types == ("p5.48xlarge", "p4d.24xlarge")
    assert spec.launch_type is LaunchType.SPOT
    assert spec.max_spot_price == Decimal("40")


def test_pod_overrides_template_launch_type_and_fallbacks() -> None:
    spec = parse(
        {
            "orca.research/workload-template": "llm-training",
            "orca.research/launch-type": "on-demand",
            "orca.research/fallback-instance-types": "p5e.48xlarge",
        }
    )
    assert spec.launch_type is LaunchType.ON_DEMAND
    assert spec.max_spot_price is None  # the template's spot ceiling no longer applies
    assert spec.instance_types == ("p5.48xlarge", "p5e.48xlarge")


def test_pod_overrides_template_spot_price() -> None:
    spec = parse(
        {"orca.research/workload-template": "llm-training", "orca.research/max-spot-price": "31.5"}
    )
    assert spec.max_spot_price == Decimal("31.5")


def test_unknown_template_lists_known_ones() -> None:
    error = invalid({"orca.research/workload-template": "llm-trainig"})
    assert error.annotation == Annotation.WORKLOAD_TEMPLATE
    assert "'llm-trainig'" in str(error)
    assert "cpu-medium, llm-training" in str(error)


def test_explicit_mode_without_type_or_template_names_both_annotations() -> None:
    error = invalid({})
    assert "orca.research/instance-type" in str(error)
    assert "orca.research/workload-template" in str(error)


def test_template_mode_uses_default_template() -> None:
    spec = parse({}, selection_mode=SelectionMode.TEMPLATE, default_template="cpu-medium")
    assert spec.selection is SelectionMethod.TEMPLATE
    assert spec.template == "cpu-medium"
    assert spec.instance_types == ("c7i.24xlarge",)


def test_auto_mode_leaves_types_empty() -> None:
    spec = parse({}, selection_mode=SelectionMode.AUTO)
    assert spec.selection is SelectionMethod.AUTO
    assert spec.instance_types == ()


def test_explicit_type_honoured_in_auto_mode() -> None:
    spec = parse({"orca.research/instance-type": "g5.xlarge"}, selection_mode=SelectionMode.AUTO)
    assert spec.selection is SelectionMethod.EXPLICIT


def test_fallbacks_without_a_first_choice_are_refused() -> None:
    error = invalid(
        {"orca.research/fallback-instance-types": "p5.48xlarge"}, selection_mode=SelectionMode.AUTO
    )
    assert error.annotation == Annotation.FALLBACK_INSTANCE_TYPES


# --- instance types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["p5", "p5.", ".48xlarge", "p5 48xlarge", "p5.48xlarge;rm", "5p.x"]
)
def test_instance_type_syntax(value: str) -> None:
    error = invalid({"orca.research/instance-type": value})
    assert error.annotation == Annotation.INSTANCE_TYPE
    assert "family.size" in str(error)


def test_instance_type_is_case_insensitive() -> None:
    assert parse({"orca.research/instance-type": " P5.48XLarge "}).instance_types == (
        "p5.48xlarge",
    )


def test_two_types_in_instance_type_point_to_fallbacks() -> None:
    error = invalid({"orca.research/instance-type": "p5.48xlarge,p4d.24xlarge"})
    assert "fallback-instance-types" in str(error)


def test_type_outside_allowed_list_lists_the_allowed_ones() -> None:
    allowed = ("p5.48xlarge", "g6e.48xlarge")
    error = invalid({"orca.research/instance-type": "p4d.24xlarge"}, allowed_instance_types=allowed)
    assert error.annotation == Annotation.INSTANCE_TYPE
    assert "'p4d.24xlarge'" in str(error)
    assert "p5.48xlarge, g6e.48xlarge" in str(error)


def test_fallback_outside_allowed_list_names_the_fallback_annotation() -> None:
    error = invalid(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/fallback-instance-types": "p4d.24xlarge",
        },
        allowed_instance_types=("p5.48xlarge",),
    )
    assert error.annotation == Annotation.FALLBACK_INSTANCE_TYPES


def test_template_type_outside_allowed_list_names_the_template() -> None:
    error = invalid(
        {"orca.research/workload-template": "cpu-medium"}, allowed_instance_types=("p5.48xlarge",)
    )
    assert error.annotation == Annotation.WORKLOAD_TEMPLATE
    assert "c7i.24xlarge" in str(error)


# --- launch type and spot price -----------------------------------------------------------------


def test_spot_with_max_price() -> None:
    spec = parse(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/launch-type": "spot",
            "orca.research/max-spot-price": "35.00",
        }
    )
    assert spec.launch_type is LaunchType.SPOT
    assert spec.max_spot_price == Decimal("35.00")


def test_older_spot_max_price_spelling() -> None:
    spec = parse(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/launch-type": "spot",
            "orca.research/spot-max-price": "12.5",
        }
    )
    assert spec.max_spot_price == Decimal("12.5")


def test_both_price_spellings_must_agree() -> None:
    error = invalid(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/launch-type": "spot",
            "orca.research/spot-max-price": "12.5",
            "orca.research/max-spot-price": "13",
        }
    )
    assert "disagree" in str(error)


def test_default_launch_type_from_settings() -> None:
    spec = parse({"orca.research/instance-type": "t3.small"}, default_launch_type=LaunchType.SPOT)
    assert spec.launch_type is LaunchType.SPOT


@pytest.mark.parametrize("value", ["0", "-1", "abc", "NaN", "Infinity", "1e", ""])
def test_max_spot_price_must_be_a_positive_decimal(value: str) -> None:
    annotations = {
        "orca.research/instance-type": "p5.48xlarge",
        "orca.research/launch-type": "spot",
        "orca.research/max-spot-price": value,
    }
    if value == "":
        assert parse(annotations).max_spot_price is None  # an empty annotation is unset
        return
    error = invalid(annotations)
    assert error.annotation == Annotation.MAX_SPOT_PRICE
    assert repr(value) in str(error)
    assert "positive decimal" in str(error)


def test_spot_price_with_on_demand_is_refused() -> None:
    error = invalid(
        {"orca.research/instance-type": "p5.48xlarge", "orca.research/max-spot-price": "10"}
    )
    assert error.annotation == Annotation.MAX_SPOT_PRICE
    assert "on-demand" in str(error)


def test_spot_price_above_cluster_ceiling() -> None:
    error = invalid(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/launch-type": "spot",
            "orca.research/max-spot-price": "50",
        },
        max_spot_prices={"p5.48xlarge": Decimal("35")},
    )
    assert "35" in str(error)
    assert "p5.48xlarge" in str(error)


# --- other annotations ---------------------------------------------------------------------------


def test_every_annotation_parses() -> None:
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    spec = parse(
        {
            "orca.research/instance-type": "p5.48xlarge",
            "orca.research/budget-namespace": "ml-team",
            "orca.research/team": "vision-lab",
            "orca.research/max-hourly-cost": "$120",
            "orca.research/max-lifetime": "1h30m",
            "orca.research/ami": "ami-0abc1234def567890",
            "orca.research/user-data": user_data,
            "orca.research/termination-protection": "true",
            "orca.research/debug": "False",
            "orca.research/capacity-reservation-id": "cr-0123456789abcdef0",
        }
    )
    assert spec.budget_namespace == "ml-team"
    assert spec.team == "vision-lab"
    assert spec.max_hourly_cost == Decimal(120)
    assert spec.max_lifetime == timedelta(hours=1, minutes=30)
    assert spec.ami_id == "ami-0abc1234def567890"
    assert base64.b64decode(spec.user_data or "") == b"#!/bin/sh\necho hi\n"
    assert spec.termination_protection is True
    assert spec.debug is False
    assert spec.capacity_reservation_id == "cr-0123456789abcdef0"
    assert spec.capacity_reservation_preference is CapacityReservationPreference.TARGETED


def test_defaults() -> None:
    spec = parse({"orca.research/instance-type": "t3.small"})
    assert spec.budget_namespace == "research"
    assert spec.max_lifetime is None
    assert spec.restart_policy == "Always"
    assert spec.termination_grace_period_seconds == 30
    assert (spec.ami_id, spec.user_data, spec.capacity_block_id) == (None, None, None)
    assert spec.architecture is None


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        ("max-lifetime", "forever", "duration"),
        ("max-lifetime", "0s", "longer than zero"),
        ("idle-timeout", "30 minutes", "duration"),
        ("idle-timeout", "0m", "longer than zero"),
        ("ami", "ami-XYZ", "ami-0abc"),
        ("ami", "img-1234", "ami-0abc"),
        ("user-data", "not base64!", "base64"),
        ("termination-protection", "yes", "true, false"),
        ("debug", "1", "true, false"),
        ("instance-metadata", "on", "true, false"),
        ("capacity-reservation-id", "cr-XYZ", "cr-0123"),
        ("capacity-block-id", "cb-123", "cr-0123"),
        ("capacity-reservation-preference", "always", "open, targeted, none"),
        ("budget-namespace", "a\tb", "printable"),
        ("team", "", "256 printable characters"),
    ],
)
def test_invalid_values_name_annotation_value_and_allowed(
    annotation: str, value: str, expected: str
) -> None:
    error = invalid(
        {"orca.research/instance-type": "p5.48xlarge", f"orca.research/{annotation}": value}
    )
    assert error.annotation == f"orca.research/{annotation}"
    assert str(error).startswith(f"orca.research/{annotation}: ")
    assert expected in str(error)


def test_user_data_limit_is_16_kib_decoded() -> None:
    ok = base64.b64encode(b"x" * 16384).decode()
    too_big = base64.b64encode(b"x" * 16385).decode()
    assert parse({"orca.research/instance-type": "t3.small", "orca.research/user-data": ok})
    error = invalid({"orca.research/instance-type": "t3.small", "orca.research/user-data": too_big})
    assert "16385" in str(error)


def test_max_lifetime_is_capped_by_the_limit() -> None:
    limits = LimitsSettings(max_instance_lifetime=timedelta(hours=24))
    long = pod(
        annotations={"orca.research/instance-type": "t3.small", "orca.research/max-lifetime": "7d"}
    )
    short = pod(
        annotations={"orca.research/instance-type": "t3.small", "orca.research/max-lifetime": "4h"}
    )
    unset = pod(annotations={"orca.research/instance-type": "t3.small"})
    assert parse_launch_spec(long, settings(), limits).max_lifetime == timedelta(hours=24)
    assert parse_launch_spec(short, settings(), limits).max_lifetime == timedelta(hours=4)
    assert parse_launch_spec(unset, settings(), limits).max_lifetime == timedelta(hours=24)


def test_capacity_reservation_rules() -> None:
    base = {"orca.research/instance-type": "p5.48xlarge"}
    open_ = parse({**base, "orca.research/capacity-reservation-preference": "open"})
    assert open_.capacity_reservation_preference is CapacityReservationPreference.OPEN
    spot = invalid(
        {**base, "orca.research/launch-type": "spot", "orca.research/capacity-block-id": "cr-1a"}
    )
    assert "on-demand" in str(spot)
    targeted_without_id = invalid(
        {**base, "orca.research/capacity-reservation-preference": "targeted"}
    )
    assert "capacity-reservation-id" in str(targeted_without_id)
    contradiction = invalid(
        {
            **base,
            "orca.research/capacity-reservation-preference": "none",
            "orca.research/capacity-reservation-id": "cr-1a",
        }
    )
    assert contradiction.annotation == Annotation.CAPACITY_RESERVATION_PREFERENCE
    both = invalid(
        {
            **base,
            "orca.research/capacity-reservation-id": "cr-1a",
            "orca.research/capacity-block-id": "cr-2b",
        }
    )
    assert "not both" in str(both)


def test_reservation_needs_an_instance_type() -> None:
    error = invalid(
        {"orca.research/capacity-reservation-id": "cr-1a"}, selection_mode=SelectionMode.AUTO
    )
    assert "orca.research/instance-type" in str(error)


# --- unknown and near-miss annotations -----------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("orca.research/instance_type", "orca.research/instance-type"),
        ("orca.research/instancetype", "orca.research/instance-type"),
        ("orca.research/Instance-Type", "orca.research/instance-type"),
        ("orca.research/launch-typ", "orca.research/launch-type"),
        ("orca.research/max-lifetme", "orca.research/max-lifetime"),
        ("orca.research/termination-protect", "orca.research/termination-protection"),
    ],
)
def test_near_miss_annotation_suggests_the_real_one(key: str, suggestion: str) -> None:
    error = invalid({"orca.research/instance-type": "t3.small", key: "x"})
    assert error.annotation == key
    assert f"did you mean {suggestion}?" in str(error)


def test_unrelated_and_emulator_annotations_are_ignored() -> None:
    spec = parse(
        {
            "orca.research/instance-type": "t3.small",
            "orca.research/owner": "alice",
            "orca.research/instance-id": "i-0123",
            "emulator.orca.research/exit-code": "3",
            "emulator.orca.research/instance-typo": "x",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        }
    )
    assert spec.instance_types == ("t3.small",)


# --- pod spec: resources, volumes, restart policy ------------------------------------------------


def test_resources_sum_containers_and_take_max_with_init_containers() -> None:
    manifest = pod(
        annotations={"orca.research/instance-type": "p5.48xlarge"},
        containers=[
            container("a", requests={"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "2"}),
            # no requests: the limits are the requests, as the API server defaults them
            container("b", limits={"cpu": "1500m", "memory": "512Mi", "nvidia.com/gpu": "1"}),
        ],
        init_containers=[
            container("fetch", requests={"cpu": "4", "memory": "256Mi"}),
            container("warm", requests={"aws.amazon.com/fpga": "1", "aws.amazon.com/neuron": "2"}),
        ],
    )
    spec = parse_launch_spec(manifest, settings(), NO_LIMITS)
    assert spec.resources.cpu == Decimal(4)
    assert spec.resources.memory_bytes == 1024**3 + 512 * 1024**2
    assert spec.resources.gpus == 3
    assert spec.resources.fpgas == 1
    assert spec.resources.neuron == 2


def test_reference_style_pods_parse() -> None:
    gpu = parse_launch_spec(
        gpu_pod(8, launch_type="spot", max_spot_price="35.00"), settings(), NO_LIMITS
    )
    assert gpu.resources.gpus == 8
    assert gpu.resources.memory_bytes == 256 * 1024**3
    assert gpu.restart_policy == "Never"
    trn = parse_launch_spec(neuron_pod(16), settings(), NO_LIMITS)
    assert trn.resources.neuron == 16
    assert trn.resources.cpu == Decimal(64)


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"requests": {"cpu": "lots"}}, "spec.containers[1].resources.requests.cpu"),
        ({"limits": {"memory": "1GB"}}, "spec.containers[1].resources.limits.memory"),
        (
            {"requests": {"nvidia.com/gpu": "0.5"}},
            "spec.containers[1].resources.requests.nvidia.com/gpu",
        ),
        ({"requests": {"cpu": "-1"}}, "spec.containers[1].resources.requests.cpu"),
    ],
)
def test_invalid_quantities_name_the_field(resources: dict[str, Any], field: str) -> None:
    broken = container("broken")
    broken["resources"] = resources
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        containers=[container("ok", requests={"cpu": "1"}), broken],
    )
    with pytest.raises(InvalidPodSpec) as caught:
        parse_launch_spec(manifest, settings(), NO_LIMITS)
    assert caught.value.annotation == field


def test_supported_volumes_are_accepted() -> None:
    volumes = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "train-config"}},
        {"name": "creds", "secret": {"secretName": "hf-token"}},
        {"name": "info", "downwardAPI": {"items": []}},
        {
            "name": "kube-api-access-x7k2p",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt"}},
                    {"downwardAPI": {"items": []}},
                ]
            },
        },
    ]
    manifest = pod(annotations={"orca.research/instance-type": "t3.small"}, volumes=volumes)
    assert parse_launch_spec(manifest, settings(), NO_LIMITS).instance_types == ("t3.small",)


@pytest.mark.parametrize(
    ("volume", "kind"),
    [
        ({"name": "host", "hostPath": {"path": "/data"}}, "hostPath"),
        ({"name": "nfs", "nfs": {"server": "10.0.0.2", "path": "/"}}, "nfs"),
    ],
)
def test_unsupported_volume_names_the_volume_and_allowed_kinds(
    volume: dict[str, Any], kind: str
) -> None:
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        volumes=[{"name": "scratch", "emptyDir": {}}, volume],
    )
    with pytest.raises(InvalidPodSpec) as caught:
        parse_launch_spec(manifest, settings(), NO_LIMITS)
    assert caught.value.annotation == "spec.volumes[1]"
    assert kind in str(caught.value)
    assert "emptyDir, configMap, secret" in str(caught.value)


def test_claim_volumes_are_accepted_in_order_with_read_only() -> None:
    volumes = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}},
        {"name": "ckpt", "persistentVolumeClaim": {"claimName": "ckpt-0", "readOnly": True}},
    ]
    manifest = pod(annotations={"orca.research/instance-type": "t3.small"}, volumes=volumes)
    assert parse_launch_spec(manifest, settings(), NO_LIMITS).instance_types == ("t3.small",)
    assert claim_volumes(manifest["spec"]) == [
        ("data", "datasets", False),
        ("ckpt", "ckpt-0", True),
    ]


@pytest.mark.parametrize(
    ("volume", "field", "says"),
    [
        (
            {"name": "data", "persistentVolumeClaim": {}},
            "persistentVolumeClaim.claimName",
            "claimName",
        ),
        (
            {"name": "tmp", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            "ephemeral",
            "persistentVolumeClaim",
        ),
    ],
)
def test_claim_without_name_and_ephemeral_volumes_are_refused(
    volume: dict[str, Any], field: str, says: str
) -> None:
    manifest = pod(annotations={"orca.research/instance-type": "t3.small"}, volumes=[volume])
    with pytest.raises(InvalidPodSpec) as caught:
        parse_launch_spec(manifest, settings(), NO_LIMITS)
    assert caught.value.annotation == f"spec.volumes[0].{field}"
    assert says in caught.value.reason_message


def test_restart_policy_grace_period_and_architecture() -> None:
    manifest = pod(
        annotations={"orca.research/instance-type": "g5g.xlarge"},
        restart_policy="OnFailure",
        grace_seconds=120,
        node_selector={"kubernetes.io/arch": "arm64"},
    )
    spec = parse_launch_spec(manifest, settings(), NO_LIMITS)
    assert spec.restart_policy == "OnFailure"
    assert spec.termination_grace_period_seconds == 120
    assert spec.architecture == "arm64"


# --- properties -----------------------------------------------------------------------------------

_families = st.sampled_from(
    ["p5", "p4d", "g6e", "g5", "trn1", "inf2", "c7i", "m7g", "f1", "u-6tb1"]
)
_sizes = st.sampled_from(["xlarge", "2xlarge", "12xlarge", "48xlarge", "metal", "large"])
_types = st.builds(lambda f, s: f"{f}.{s}", _families, _sizes)
_prices = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("999"), places=3)
_lifetimes = st.integers(min_value=1, max_value=30 * 86400).map(lambda s: timedelta(seconds=s))


@given(
    instance_type=_types,
    fallbacks=st.lists(_types, max_size=3),
    spot=st.booleans(),
    price=st.none() | _prices,
    lifetime=st.none() | _lifetimes,
    protection=st.none() | st.booleans(),
    debug=st.none() | st.booleans(),
    budget=st.none() | st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
)
def test_any_valid_annotation_combination_round_trips(
    instance_type: str,
    fallbacks: list[str],
    spot: bool,
    price: Decimal | None,
    lifetime: timedelta | None,
    protection: bool | None,
    debug: bool | None,
    budget: str | None,
) -> None:
    annotations = {
        "orca.research/instance-type": instance_type,
        "orca.research/launch-type": "spot" if spot else "on-demand",
    }
    if fallbacks:
        annotations["orca.research/fallback-instance-types"] = ",".join(fallbacks)
    if spot and price is not None:
        annotations["orca.research/max-spot-price"] = str(price)
    if lifetime is not None:
        annotations["orca.research/max-lifetime"] = format_duration(lifetime)
    if protection is not None:
        annotations["orca.research/termination-protection"] = str(protection).lower()
    if debug is not None:
        annotations["orca.research/debug"] = str(debug).lower()
    if budget is not None:
        annotations["orca.research/budget-namespace"] = budget

    spec = parse(annotations)

    assert spec.instance_types[0] == instance_type
    assert spec.instance_types == tuple(dict.fromkeys([instance_type, *fallbacks]))
    assert spec.launch_type is (LaunchType.SPOT if spot else LaunchType.ON_DEMAND)
    assert spec.max_spot_price == (price if spot else None)
    assert spec.max_lifetime == lifetime
    assert spec.termination_protection is bool(protection)
    assert spec.debug is bool(debug)
    assert spec.budget_namespace == (budget or "research")
    # the model itself round-trips through JSON, as it must through Temporal's converter
    assert LaunchSpec.model_validate_json(spec.model_dump_json()) == spec


@given(value=st.text(max_size=30))
def test_any_garbage_launch_type_raises_invalid_pod_spec_naming_it(value: str) -> None:
    annotations = {"orca.research/instance-type": "p5.48xlarge", "orca.research/launch-type": value}
    if value.strip().lower() in ("spot", "on-demand"):
        assert parse(annotations).launch_type.value == value.strip().lower()
        return
    error = invalid(annotations)
    assert error.annotation == Annotation.LAUNCH_TYPE
    assert "on-demand, spot" in str(error)


@given(
    key=st.sampled_from([a.value for a in Annotation]),
    value=st.text(max_size=40),
)
def test_any_value_of_any_annotation_parses_or_raises_invalid_pod_spec(
    key: str, value: str
) -> None:
    annotations = {"orca.research/instance-type": "p5.48xlarge", key: value}
    result = outcome(annotations)
    if isinstance(result, InvalidPodSpec):
        assert result.annotation.startswith("orca.research/")
        assert str(result).startswith(f"{result.annotation}: ")
    else:
        assert result.pod.name == "train-1"


@given(
    key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.", min_size=1, max_size=30),
    value=st.text(max_size=10),
)
def test_any_unknown_annotation_is_ignored_or_a_near_miss(key: str, value: str) -> None:
    full = f"orca.research/{key}"
    annotations = {"orca.research/instance-type": "t3.small", full: value}
    if full in {a.value for a in Annotation}:
        return
    result = outcome(annotations)
    if isinstance(result, InvalidPodSpec):
        assert result.annotation == full
        assert "did you mean orca.research/" in str(result)
    else:
        assert result.instance_types == ("t3.small",)


def test_secrets_manager_env_reaches_the_launch_spec_and_a_bad_one_is_refused() -> None:
    arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf"
    typed = {"orca.research/instance-type": "p5.48xlarge"}
    spec = parse({**typed, "orca.research/secrets-manager-env": f"DB_PASSWORD={arn}#password"})
    ((env,),) = (spec.secrets_manager_env,)
    assert (env.name, env.secret_arn, env.json_key) == ("DB_PASSWORD", arn, "password")
    error = invalid({**typed, "orca.research/secrets-manager-env": "DB_PASSWORD=db-AbCdEf"})
    assert error.annotation == "orca.research/secrets-manager-env"
