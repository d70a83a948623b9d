"""Kubernetes pod phases (`status.phase`): one enum wherever ORCA writes, reads or counts them.

The values are the API's own words (they are written to pods and recorded in histories).
"""

from __future__ import annotations

from enum import StrEnum


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


TERMINAL_PHASES = frozenset({PodPhase.SUCCEEDED, PodPhase.FAILED})
"""Phases a pod never leaves: its containers ended and will not be restarted."""
