"""A pod manifest as `orca submit` and `orca explain` see it: read, completed, and decided.

The decision is the worker's own: `parse_launch_spec` then `explain_candidates` over the catalog
fetched the way the planning activity fetches it. Only the memory of offerings that recently ran
out of capacity is missing (it lives in the worker process), so the order shown is the order a
fresh worker would try.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import yaml

from orca.cli.errors import EXIT_USAGE, CommandError
from orca.ebs_volumes import PodVolume
from orca.launch_spec import InvalidPodSpec, LaunchSpec, SelectionMethod, parse_launch_spec
from orca.selection import CandidatePlan, CatalogSnapshot, NoCandidates, explain_candidates
from orca.settings import NodeSettings, Settings

PROVIDER_LABEL = "orca.research/provider"
SHOWN_CANDIDATES = 10


def read_pod_manifest(path: Path) -> dict[str, Any]:
    """One Pod from a YAML (or JSON) file; `CommandError` (exit 2) saying what is wrong."""
    if str(path) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = path.expanduser().read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file", EXIT_USAGE) from None
        except OSError as error:
            raise CommandError(f"{path}: cannot read it ({error.strerror})", EXIT_USAGE) from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise CommandError(f"{path} is not valid YAML{where}: {problem}", EXIT_USAGE) from None
    if len(documents) != 1:
        raise CommandError(
            f"{path} holds {len(documents)} YAML documents; give exactly one Pod", EXIT_USAGE
        )
    pod = documents[0]
    if not isinstance(pod, dict):
        raise CommandError(
            f"{path} must be a Pod manifest (a mapping with kind: Pod), not a {type(pod).__name__}",
            EXIT_USAGE,
        )
    kind = pod.get("kind")
    if kind != "Pod":
        hint = (
            "; ORCA runs pods: put the pod template of the workload in its own file" if kind else ""
        )
        raise CommandError(
            f"{path} is a {kind or 'manifest without kind'}, not a Pod (kind: Pod){hint}",
            EXIT_USAGE,
        )
    if pod.get("apiVersion", "v1") != "v1":
        raise CommandError(f"{path}: a Pod has apiVersion v1, not {pod['apiVersion']}", EXIT_USAGE)
    metadata = pod.setdefault("metadata", {}) or {}
    if not isinstance(metadata, dict):
        raise CommandError(f"{path}: metadata must be a mapping", EXIT_USAGE)
    pod["metadata"] = metadata
    if not metadata.get("name") and not metadata.get("generateName"):
        raise CommandError(f"{path}: the pod needs metadata.name (or generateName)", EXIT_USAGE)
    spec = pod.get("spec")
    if not isinstance(spec, dict) or not spec.get("containers"):
        raise CommandError(f"{path}: the pod needs spec.containers", EXIT_USAGE)
    return pod


def node_selector_for(node: NodeSettings) -> dict[str, str]:
    """What a pod must select to land on the virtual node: the provider label if the node has
    one (so pods keep working when other labels change), else all of the node's labels."""
    if PROVIDER_LABEL in node.labels:
        return {PROVIDER_LABEL: node.labels[PROVIDER_LABEL]}
    return dict(node.labels)


def with_virtual_node_scheduling(
    pod: Mapping[str, Any], node: NodeSettings
) -> tuple[dict[str, Any], list[str]]:
    """A copy of `pod` that selects and tolerates the virtual node; also what had to be added."""
    completed = copy.deepcopy(dict(pod))
    spec = completed.setdefault("spec", {})
    added: list[str] = []
    selector = spec.get("nodeSelector") or {}
    for key, value in node_selector_for(node).items():
        if key not in selector:
            selector[key] = value
            added.append(f"nodeSelector {key}={value}")
    if selector:
        spec["nodeSelector"] = selector
    tolerations = list(spec.get("tolerations") or [])
    for taint in node.taints:
        if not any(_tolerates(t, taint.key, taint.value, str(taint.effect)) for t in tolerations):
            toleration = {
                "key": taint.key,
                "operator": "Equal",
                "value": taint.value,
                "effect": str(taint.effect),
            }
            tolerations.append(toleration)
            added.append(f"toleration {taint.key}={taint.value}:{taint.effect}")
    if tolerations:
        spec["tolerations"] = tolerations
    return completed, added


def _tolerates(toleration: Mapping[str, Any], key: str, value: str, effect: str) -> bool:
    if toleration.get("effect") not in (None, "", effect):
        return False
    if toleration.get("operator") == "Exists":
        return toleration.get("key") in (None, "", key)
    return toleration.get("key") == key and (toleration.get("value") or "") == value


def validate(pod: Mapping[str, Any], settings: Settings) -> LaunchSpec:
    """The pod's launch spec; an invalid pod is `CommandError` (exit 2) naming what is allowed.
    Needs no AWS call, so annotation mistakes are reported before the catalog is fetched."""
    try:
        return parse_launch_spec(pod, settings.instances, settings.limits)
    except InvalidPodSpec as error:
        raise CommandError(f"invalid pod: {error}", EXIT_USAGE) from None


def decide(
    spec: LaunchSpec,
    settings: Settings,
    catalog: CatalogSnapshot,
    subnets_by_zone: Mapping[str, str],
) -> tuple[CandidatePlan | None, str | None]:
    """The worker's decision for a validated pod: (plan, None), or (None, why nothing can be
    launched right now). A pod the catalog refuses is `CommandError` (exit 2)."""
    try:
        plan = explain_candidates(spec, settings.instances, catalog, subnets_by_zone, set())
    except InvalidPodSpec as error:
        raise CommandError(
            f"invalid pod: {_with_offered_types(error, catalog, subnets_by_zone)}", EXIT_USAGE
        ) from None
    except NoCandidates as none:
        return None, none.reason
    return plan, None


def _with_offered_types(
    error: InvalidPodSpec, catalog: CatalogSnapshot, subnets_by_zone: Mapping[str, str]
) -> str:
    """Selection names close matches for a misspelt type; add the families that are offered,
    so the message names what is allowed even when nothing is close."""
    text = str(error)
    if "unknown instance type" not in text:
        return text
    zones = set(subnets_by_zone)
    families = sorted({t.split(".", 1)[0] for t, zone in catalog.offerings if zone in zones})
    asked = text.split("unknown instance type '", 1)[1].split("'", 1)[0]
    initial = asked[:1]
    related = [f for f in families if f.startswith(initial)] or families
    what = f"families starting with {initial!r}" if related is not families else "families"
    return f"{text}; instance {what} offered here: {', '.join(related)}"


def describe_selection(spec: LaunchSpec) -> str:
    if spec.selection is SelectionMethod.EXPLICIT:
        return "explicit instance type" + ("s" if len(spec.instance_types) > 1 else "")
    if spec.selection is SelectionMethod.TEMPLATE:
        return f"workload template {spec.template}"
    return "auto-sized from the pod's requests"


def render_decision(
    spec: LaunchSpec,
    plan: CandidatePlan | None,
    waiting: str | None,
    out: TextIO,
    *,
    limit: int | None = SHOWN_CANDIDATES,
    show_skipped: bool = True,
) -> None:
    """The chosen offering, the fallback order with reasons and prices, and what was skipped."""
    print(f"Pod:          {spec.pod.key}", file=out)
    print(f"Selection:    {describe_selection(spec)}, {spec.launch_type.value}", file=out)
    if spec.max_spot_price is not None:
        print(f"Max spot:     {_money(spec.max_spot_price)}/h", file=out)
    if plan is None:
        print(f"Nothing to launch right now: {waiting}", file=out)
        print("The worker keeps retrying: prices and capacity change.", file=out)
        return
    first = plan.candidates[0]
    print(
        f"Chosen:       {first.instance_type} {first.capacity_type.value} in {first.zone} "
        f"at {_price(first.hourly_price)}",
        file=out,
    )
    print(f"Candidates ({len(plan.candidates)}, tried in this order):", file=out)
    shown = plan.candidates if limit is None else plan.candidates[:limit]
    width = max(len(c.instance_type) for c in shown)
    for index, candidate in enumerate(shown, start=1):
        print(
            f"  {index:>2}. {candidate.instance_type:<{width}}  {candidate.zone:<12} "
            f"{candidate.capacity_type.value:<9} {_price(candidate.hourly_price):>12}  "
            f"{candidate.reason}",
            file=out,
        )
    if len(shown) < len(plan.candidates):
        print(f"  ... and {len(plan.candidates) - len(shown)} more", file=out)
    if show_skipped and plan.skipped:
        print("Skipped:", file=out)
        for note in plan.skipped:
            print(f"  - {note}", file=out)


def _price(price: Decimal | None) -> str:
    return f"{_money(price)}/h" if price is not None else "price unknown"


def _money(price: Decimal) -> str:
    return f"${price.quantize(Decimal('0.0001')).normalize():f}"


def decision_document(
    spec: LaunchSpec,
    plan: CandidatePlan | None,
    waiting: str | None,
    volumes: Sequence[PodVolume] = (),
) -> dict[str, Any]:
    """`render_decision` as a document (`-o json|yaml`): every candidate, not only the first,
    and the EBS volumes of the pod's bound claims (the zone they restrict the launch to)."""
    return {
        "pod": spec.pod.key,
        "volumes": [
            {
                "name": v.volume_name,
                "claim": v.claim_name,
                "persistentVolume": v.persistent_volume,
                "volumeId": v.volume_id,
                "zone": v.zone,
            }
            for v in volumes
        ],
        "selection": describe_selection(spec),
        "launchType": spec.launch_type.value,
        "maxSpotPrice": spec.max_spot_price,
        "chosen": plan.candidates[0] if plan is not None else None,
        "candidates": list(plan.candidates) if plan is not None else [],
        "skipped": list(plan.skipped) if plan is not None else [],
        "waiting": waiting,
    }
