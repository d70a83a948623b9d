import pytest

from orca_devstack.emulators.kube.selectors import (
    InvalidSelectorError,
    check_supported_fields,
    field_value,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "gpu": "a100"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("tier in (front, back)", True),
        ("tier in (back)", False),
        ("tier notin (back)", True),
        ("tier notin (front,back)", False),
        ("missing notin (x)", True),
        ("gpu", True),
        ("missing", False),
        ("!missing", True),
        ("!gpu", False),
        ("app=web,tier in (front),!legacy", True),
        ("app=web,tier in (back)", False),
        ("example.com/team=x", False),
    ],
)
def test_label_selector(selector: str, expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is expected


def test_label_selector_against_no_labels() -> None:
    assert labels_match(parse_label_selector("!app"), None)
    assert not labels_match(parse_label_selector("app"), None)


@pytest.mark.parametrize("selector", ["app in ()", "app in (a", "a b", "=x", "app in x"])
def test_label_selector_rejects(selector: str) -> None:
    with pytest.raises(InvalidSelectorError):
        parse_label_selector(selector)


POD = {
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"nodeName": "n1"},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("metadata.name=p", True),
        ("metadata.name==p", True),
        ("metadata.name!=p", False),
        ("metadata.namespace=ns,spec.nodeName=n1", True),
        ("spec.nodeName=", False),
        ("status.phase!=Pending", True),
        ("status.phase=Pending", False),
    ],
)
def test_field_selector(selector: str, expected: bool) -> None:
    assert fields_match(parse_field_selector(selector), POD) is expected


def test_field_selector_missing_field_reads_empty() -> None:
    assert field_value({"spec": {}}, "spec.nodeName") == ""
    assert fields_match(parse_field_selector("spec.nodeName="), {"spec": {}})


def test_field_selector_rejects_unsupported_fields() -> None:
    with pytest.raises(InvalidSelectorError, match="field label not supported"):
        check_supported_fields("pods", parse_field_selector("spec.containers=x"))
    check_supported_fields("events", parse_field_selector("involvedObject.uid=u"))


def test_field_selector_rejects_garbage() -> None:
    with pytest.raises(InvalidSelectorError):
        parse_field_selector("metadata.name")
