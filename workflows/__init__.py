"""Temporal workflows. Deterministic code only: every side effect is an activity."""
