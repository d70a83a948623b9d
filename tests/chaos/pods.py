"""Fuzzed pods for the chaos run: mostly valid launches, some malformed annotations.

Hypothesis draws each pod's `orca.research/...` annotations: a valid explicit launch (an
instance type from `VALID_TYPES` with fallbacks, on-demand or spot) that a third of the time
gets one malformed value or a misspelt key. `draw_pods` runs the strategy under a fixed seed,
so a chaos run with the same seed submits the same pods.

Which pods are invalid is decided by ORCA's own pure parser (`orca.launch_spec.parse_launch_spec`
with the stack's settings), the same function the `plan_launch` activity calls: the chaos run
checks that what the parser refuses never launches and is told on the pod, and that the rest
run. Pods whose validity would depend on the EC2 catalog (a well-formed type the catalog lacks)
are not drawn, so every drawn pod has one expected outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from orca.launch_spec import Annotation, InvalidPodSpec, parse_launch_spec
from orca.settings import Settings
from orca_devstack.examples import burst_pod

VALID_TYPES = ("m5.large", "m5.xlarge", "c5.large", "c5.xlarge", "m6i.large")
"""Plentiful, cheap types in the emulator's catalog; the chaos faults target the first one."""
FIRST_CHOICE = VALID_TYPES[0]

_valid_launch = st.fixed_dictionaries(
    {
        Annotation.INSTANCE_TYPE.value: st.just(FIRST_CHOICE),
        Annotation.FALLBACK_INSTANCE_TYPES.value: st.lists(
            st.sampled_from(VALID_TYPES[1:]), min_size=1, max_size=3, unique=True
        ).map(",".join),
    },
    optional={
        Annotation.LAUNCH_TYPE.value: st.just("on-demand"),
        Annotation.MAX_LIFETIME.value: st.sampled_from(["4h", "7d", "90m"]),
        Annotation.DEBUG.value: st.sampled_from(["true", "false"]),
        Annotation.BUDGET_NAMESPACE.value: st.sampled_from(["research", "team-a"]),
    },
)

_junk = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
_malformed_values: Mapping[str, st.SearchStrategy[str]] = {
    Annotation.LAUNCH_TYPE.value: st.sampled_from(["ondemand", "SPOT!", "reserved", ""]) | _junk,
    Annotation.MAX_SPOT_PRICE.value: st.sampled_from(["-1", "abc", "NaN", "0", "1e"]) | _junk,
    Annotation.MAX_LIFETIME.value: st.sampled_from(["forever", "-4h", "4 hours", "0s"]) | _junk,
    Annotation.TERMINATION_PROTECTION.value: st.sampled_from(["yes please", "2"]) | _junk,
    Annotation.AMI.value: st.sampled_from(["ami-", "image-123", "ami-XYZ"]) | _junk,
    Annotation.USER_DATA.value: st.sampled_from(["not base64!!", "%%%"]),
    Annotation.INSTANCE_TYPE.value: st.sampled_from(["m5..large", "large", "m5.large,,", " . "]),
    Annotation.CAPACITY_RESERVATION_PREFERENCE.value: st.sampled_from(["sometimes", "OPEN!"]),
}
_misspelt_keys = ("orca.research/instance_type", "orca.research/launchtype", "orca.research/ami-id")


@st.composite
def pod_annotations(draw: st.DrawFn) -> dict[str, str]:
    annotations: dict[str, str] = dict(draw(_valid_launch))
    kind = draw(st.sampled_from(["valid", "valid", "bad-value", "bad-key"]))
    if kind == "bad-value":
        key = draw(st.sampled_from(sorted(_malformed_values)))
        annotations[key] = draw(_malformed_values[key])
    elif kind == "bad-key":
        annotations[draw(st.sampled_from(_misspelt_keys))] = draw(st.sampled_from(["x", "true"]))
    return annotations


@dataclass(frozen=True)
class ChaosPod:
    name: str
    manifest: dict[str, Any]
    invalid_reason: str | None
    """The parser's message for an invalid pod; None for a pod that should run."""

    @property
    def valid(self) -> bool:
        return self.invalid_reason is None


def expected_outcome(manifest: Mapping[str, Any], orca: Settings) -> str | None:
    """None if ORCA should run the pod, the parser's message if it must refuse it, and
    `"catalog"` when only the EC2 catalog could tell (such pods are not drawn)."""
    try:
        spec = parse_launch_spec(manifest, orca.instances, orca.limits)
    except InvalidPodSpec as error:
        return str(error) or "invalid"
    if not set(spec.instance_types) <= set(VALID_TYPES):
        return "catalog"
    return None


def draw_pods(count: int, run_seed: int, orca: Settings, label: dict[str, str]) -> list[ChaosPod]:
    """`count` pods drawn by hypothesis under `run_seed` (the same seed, the same pods)."""
    drawn: list[ChaosPod] = []

    @seed(run_seed)
    @settings(
        max_examples=count * 20,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(pod_annotations())
    def collect(annotations: dict[str, str]) -> None:
        if len(drawn) >= count:
            return
        name = f"chaos-{run_seed}-{len(drawn):04d}"
        annotations = {**annotations, "emulator.orca.research/run-seconds": "inf"}
        manifest = burst_pod(name, annotations, labels=label, grace_seconds=2)
        outcome = expected_outcome(manifest, orca)
        if outcome == "catalog":
            return
        drawn.append(ChaosPod(name, manifest, outcome))

    collect()
    if len(drawn) < count:
        raise RuntimeError(f"hypothesis drew only {len(drawn)} of {count} pods")
    return drawn
