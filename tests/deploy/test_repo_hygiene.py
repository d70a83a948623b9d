"""The repository's own order (issue 11): pinned base image, one version, the constraints file,
the coverage floor check and the pip-audit summary. Plain checks of files and pure functions."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
import yaml

import orca
import orca_devstack
from tests import coverage_floor, pip_audit
from tests.deploy.conftest import REPO

DIGEST = re.compile(r"^[\w./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$")


def test_every_base_image_in_the_dockerfile_is_pinned_by_digest() -> None:
    stages: set[str] = set()
    bases = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        words = line.split()
        if not words or words[0].upper() != "FROM":
            continue
        image = next(w for w in words[1:] if not w.startswith("--"))
        if image not in stages:  # `FROM build` names an earlier stage, not an image
            bases.append(image)
        if len(words) >= 4 and words[-2].upper() == "AS":
            stages.add(words[-1])
    assert bases, "the Dockerfile has no FROM line"
    unpinned = [image for image in bases if not DIGEST.match(image)]
    assert not unpinned, f"pin these by digest (image@sha256:...): {unpinned}"


def test_both_distributions_carry_one_version() -> None:
    # Each distribution reads its version from its package's __version__ (pyproject's dynamic
    # version); they are released together, so the two must agree.
    assert orca.__version__ == orca_devstack.__version__
    assert metadata.version("orca-burst") == orca.__version__
    assert metadata.version("orca-devstack") == orca_devstack.__version__


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt pins exact versions only: {line!r}"
        assert version, f"constraints.txt pins exact versions only: {line!r}"
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_pin_the_environment_but_not_the_editable_packages() -> None:
    pins = _pins()
    assert "orca-burst" not in pins
    assert "orca-devstack" not in pins
    for needed in ("temporalio", "boto3", "moto", "pytest", "pytest-cov", "bandit", "pip-audit"):
        assert needed in pins, f"{needed} is not pinned: run make lock"


@pytest.mark.parametrize(
    ("total", "floor", "passes", "says"),
    [
        (74.9, 75, False, "below the floor"),
        (75.0, 75, True, "(floor 75%)"),
        (76.5, 75, True, "(floor 75%)"),
        (80.6, 75, True, "echo 78 > .coverage-floor"),
    ],
)
def test_the_coverage_floor_fails_below_and_asks_to_rise_well_above(
    total: float, floor: float, passes: bool, says: str
) -> None:
    ok, message = coverage_floor.verdict(total, floor)
    assert ok is passes
    assert says in message


def test_the_committed_coverage_floor_is_a_percentage() -> None:
    assert 0 < coverage_floor.read_floor() <= 100


def test_pip_audit_fails_on_a_known_vulnerability() -> None:
    report = {
        "dependencies": [
            {"name": "a", "version": "1", "vulns": [{"id": "PYSEC-1", "fix_versions": ["2"]}]},
            {"name": "b", "version": "1", "vulns": []},
        ]
    }
    code, message = pip_audit.summarize(report)
    assert code == 1
    assert "a==1: PYSEC-1 (fixed in 2)" in message


def test_pip_audit_is_skipped_when_the_service_answers_for_no_pin() -> None:
    report = {"dependencies": [{"name": "a", "skip_reason": "Dependency not found"}]}
    code, message = pip_audit.summarize(report)
    assert code == 0
    assert "SKIPPED" in message
    partly = {"dependencies": [*report["dependencies"], {"name": "b", "version": "1", "vulns": []}]}
    assert pip_audit.summarize(partly) == (
        0,
        "pip-audit: no known vulnerabilities in 1 audited pins",
    )


def test_pip_audit_recognizes_an_unreachable_service() -> None:
    output = "ERROR: requests.exceptions.ConnectionError: Max retries exceeded with url: /x\n"
    assert pip_audit.unreachable_reason(output) == output.strip()
    assert pip_audit.unreachable_reason("1 known vulnerability found") is None


def test_dependabot_watches_both_pip_projects_actions_and_the_image() -> None:
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    watched = {(u["package-ecosystem"], u["directory"]) for u in config["updates"]}
    assert watched >= {("pip", "/"), ("pip", "/devstack"), ("github-actions", "/"), ("docker", "/")}
