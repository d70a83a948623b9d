"""Temporal workflows. Deterministic code only: every side effect is an activity."""

TASK_QUEUE_DEFAULT = "orca-pods"
