"""The repository's own order (issue 11): pinned base image, one version, the constraints file,
the coverage floor check and the pip-audit summary. Plain checks of files and pure functions."""

from __future__ import annotations

from importlib import metadata

import orca
import orca_devstack


def test_both_distributions_carry_one_version() -> None:
    # Each distribution reads its version from its package's __version__ (pyproject's dynamic
    # version); they are released together, so the two must agree.
    assert orca.__version__ == orca_devstack.__version__
    assert metadata.version("orca-burst") == orca.__version__
    assert metadata.version("orca-devstack") == orca_devstack.__version__
