"""The repository's own order (issue 11): pinned base image, one version, the constraints file,
the coverage floor check and the pip-audit summary. Plain checks of files and pure functions."""

from __future__ import annotations

from importlib import metadata

import pytest

import orca
import orca_devstack
from tests import coverage_floor


def test_both_distributions_carry_one_version() -> None:
    # Each distribution reads its version from its package's __version__ (pyproject's dynamic
    # version); they are released together, so the two must agree.
    assert orca.__version__ == orca_devstack.__version__
    assert metadata.version("orca-burst") == orca.__version__
    assert metadata.version("orca-devstack") == orca_devstack.__version__


@pytest.mark.parametrize(
    ("total", "floor", "passes", "says"),
    [
        (74.9, 75, False, "below the floor"),
        (75.0, 75, True, "(floor 75%)"),
        (76.5, 75, True, "(floor 75%)"),
        (80.6, 75, True, "echo 79 > .coverage-floor"),
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
