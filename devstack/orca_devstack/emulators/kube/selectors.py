"""Label and field selectors as the API server parses and applies them.

Parsing raises `InvalidSelectorError`, which the server turns into a 400 BadRequest Status, as a
real API server does for `?labelSelector=a in b`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class InvalidSelectorError(ValueError):
    """The selector string cannot be parsed."""


class LabelOperator(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: LabelOperator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator is LabelOperator.EXISTS:
            return present
        if self.operator is LabelOperator.DOES_NOT_EXIST:
            return not present
        if self.operator in (LabelOperator.EQUALS, LabelOperator.IN):
            return present and labels[self.key] in self.values
        # != and notin match objects without the label, as in Kubernetes.
        return not present or labels[self.key] not in self.values


_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_REQUIREMENT = re.compile(
    rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$"
)
_EQUALITY_REQUIREMENT = re.compile(
    rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$"
)
_EXISTS_REQUIREMENT = re.compile(rf"^\s*(?P<bang>!?)\s*(?P<key>{_KEY})\s*$")


def _split_top_level(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses (`a in (x,y),b`)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise InvalidSelectorError(f"unbalanced parentheses in selector {selector!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise InvalidSelectorError(f"unbalanced parentheses in selector {selector!r}")
    parts.append("".join(current))
    return parts


def parse_label_selector(selector: str | None) -> tuple[LabelRequirement, ...]:
    """Parse `app=web,tier in (a,b),!legacy` into requirements; empty selects everything."""
    if selector is None or not selector.strip():
        return ()
    requirements: list[LabelRequirement] = []
    for part in _split_top_level(selector):
        if match := _SET_REQUIREMENT.match(part):
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            if not values:
                raise InvalidSelectorError(
                    f"{part.strip()!r}: for 'in', 'notin' operators, values set can't be empty"
                )
            operator = LabelOperator.IN if match["op"] == "in" else LabelOperator.NOT_IN
            requirements.append(LabelRequirement(match["key"], operator, values))
        elif match := _EQUALITY_REQUIREMENT.match(part):
            operator = LabelOperator.NOT_EQUALS if match["op"] == "!=" else LabelOperator.EQUALS
            requirements.append(
                LabelRequirement(match["key"], operator, frozenset({match["value"]}))
            )
        elif match := _EXISTS_REQUIREMENT.match(part):
            operator = LabelOperator.DOES_NOT_EXIST if match["bang"] else LabelOperator.EXISTS
            requirements.append(LabelRequirement(match["key"], operator))
        else:
            raise InvalidSelectorError(f"unable to parse requirement: {part.strip()!r}")
    return tuple(requirements)


def labels_match(
    requirements: tuple[LabelRequirement, ...], labels: Mapping[str, str] | None
) -> bool:
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    negated: bool = False

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, self.field) == self.value) != self.negated


def parse_field_selector(selector: str | None) -> tuple[FieldRequirement, ...]:
    """Parse `metadata.name=x,status.phase!=Running`; only =, == and != exist for fields."""
    if selector is None or not selector.strip():
        return ()
    requirements: list[FieldRequirement] = []
    for part in selector.split(","):
        for operator in ("!=", "==", "="):
            field, found, value = part.partition(operator)
            if found:
                if not field.strip():
                    raise InvalidSelectorError(f"invalid field selector: {part!r}")
                requirements.append(
                    FieldRequirement(field.strip(), value.strip(), operator == "!=")
                )
                break
        else:
            raise InvalidSelectorError(f"invalid selector: '{selector}'; can't understand '{part}'")
    return tuple(requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value of a dotted field; missing fields read as "" as the API server does."""
    current: Any = obj
    for segment in path.split("."):
        if not isinstance(current, Mapping) or segment not in current:
            return ""
        current = current[segment]
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def fields_match(requirements: tuple[FieldRequirement, ...], obj: Mapping[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)


# Fields each resource accepts in fieldSelector; anything else is a 400 as on a real server.
SUPPORTED_FIELDS: dict[str, frozenset[str]] = {
    "pods": frozenset(
        {
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    "nodes": frozenset({"metadata.name", "spec.unschedulable"}),
    "namespaces": frozenset({"metadata.name", "status.phase"}),
    "events": frozenset(
        {
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    "secrets": frozenset({"metadata.name", "metadata.namespace", "type"}),
}
DEFAULT_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


def check_supported_fields(resource: str, requirements: tuple[FieldRequirement, ...]) -> None:
    supported = SUPPORTED_FIELDS.get(resource, DEFAULT_FIELDS)
    for requirement in requirements:
        if requirement.field not in supported:
            raise InvalidSelectorError(f"field label not supported: {requirement.field}")
