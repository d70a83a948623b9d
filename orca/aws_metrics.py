"""Counts, times and error codes of every AWS call, from botocore's event hooks."""

from __future__ import annotations

import time
import weakref
from typing import Any

from orca.aws_clients import AwsClients
from orca.metrics import AWS_API_CALLS, AWS_API_ERRORS, AWS_API_LATENCY

_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()
"""The sessions' event emitters already hooked (weak: an `id()` can be reused after a session
is garbage-collected, which would leave a new session uncounted)."""


def instrument(aws: AwsClients) -> None:
    """Register the hooks once per session; every client made from it is then counted."""
    events = aws.session.events
    if events in _instrumented:
        return
    _instrumented.add(events)
    started: dict[int, float] = {}

    def before(model: Any, context: dict[str, Any], **_: Any) -> None:
        started[id(context)] = time.monotonic()

    def after(model: Any, context: dict[str, Any], parsed: dict[str, Any], **_: Any) -> None:
        service = model.service_model.endpoint_prefix
        operation = model.name
        AWS_API_CALLS.labels(service, operation).inc()
        begun = started.pop(id(context), None)
        if begun is not None:
            AWS_API_LATENCY.labels(service, operation).observe(time.monotonic() - begun)
        code = (parsed or {}).get("Error", {}).get("Code")
        if code:
            AWS_API_ERRORS.labels(service, operation, code).inc()

    events.register("before-call", before)
    events.register("after-call", after)
