"""The coverage floor: `make test` fails when the total coverage falls below `.coverage-floor`.

Run after `pytest --cov` (the Makefile's `pytest` target): `python -m tests.coverage_floor`.
The floor only rises. When the measured total is well above it (more than `RAISE_MARGIN`
points), the check passes and prints the new floor to commit: the total rounded down, minus a
small margin for the run-to-run wobble of timing-dependent paths (`SLACK`). Nobody lowers it: a
change that drops coverage below the floor adds the tests it is missing instead.
"""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parent.parent
FLOOR_FILE = ROOT / ".coverage-floor"
DATA_FILE = ROOT / ".coverage"
SLACK = 2.0
RAISE_MARGIN = 3.0


def verdict(total: float, floor: float) -> tuple[bool, str]:
    """Whether `total` passes `floor`, and what to tell the developer (pure)."""
    if total < floor:
        return False, (
            f"coverage {total:.2f}% is below the floor {floor:g}% ({FLOOR_FILE.name}): "
            "add tests for the code this change left uncovered (the floor is never lowered)"
        )
    if total - floor > RAISE_MARGIN:
        new_floor = math.floor(total - SLACK)
        return True, (
            f"coverage {total:.2f}% is well above the floor {floor:g}%: raise it with\n"
            f"    echo {new_floor} > {FLOOR_FILE.name}\n"
            "and commit it with this change"
        )
    return True, f"coverage {total:.2f}% (floor {floor:g}%)"


def read_floor(path: Path = FLOOR_FILE) -> float:
    return float(path.read_text().split()[0])


def measured_total(data_file: Path = DATA_FILE) -> float:
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    return float(cov.report(file=io.StringIO()))


def main() -> int:
    if not DATA_FILE.exists():
        print(f"no {DATA_FILE.name} here: run pytest --cov first (make pytest)", file=sys.stderr)
        return 2
    ok, message = verdict(measured_total(), read_floor())
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
