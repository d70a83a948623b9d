"""Until tests/conftest.py registers ``tests.fixtures.aws`` through ``pytest_plugins``, import
its fixtures here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.fixtures.aws import aws, aws_client, aws_emulator

__all__ = ["aws", "aws_client", "aws_emulator"]
