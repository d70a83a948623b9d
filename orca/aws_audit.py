"""The audit trail: one structured record for every AWS mutation ORCA makes, on `orca.audit`.

Hooked into botocore's event system for the one session every client comes from
(`orca.aws_clients.AwsClients.session`), so no call site can forget it and a new call is audited
the day it is written. A *mutation* is any operation whose name does not start with a read-only
verb (`READ_ONLY_VERBS`: Describe, Get, List, ...): today RunInstances (with its tags),
ModifyInstanceAttribute, TerminateInstances, CancelSpotInstanceRequests, SSM PutParameter,
DeleteParameter(s), SendCommand, STS AssumeRole (the Secrets Manager reader role, named by its
`RoleArn`; the credentials it returns are never kept) and SQS DeleteMessageBatch; CreateFleet,
CreateTags and the rest as soon as ORCA calls them.

- `before-parameter-build` keeps, in botocore's per-call context, the operation and the resource
  IDs named in the parameters: a whitelist of identifier fields (`_ID_FIELDS`), never a value, a
  script or a body, so nothing secret is kept or logged;
- `after-call` (any HTTP answer, success or AWS error) and `after-call-error` (no answer: the
  connection failed) write the record: time, operation (`ec2:RunInstances`), pod
  (namespace/name and UID), workflow ID and instance ID from the structlog context the activity
  bound, resource IDs from the parameters and the response, outcome (`success` or the error's
  class from `orca.aws_errors`, with the code), the AWS request ID, botocore's retry count.

botocore's retries happen inside one call, so a call is one record, whatever it took. A call
botocore rejects before sending (parameter validation) reached no AWS API and has no record.
The record is a pydantic model (`AuditRecord`), logged as the line's fields; docs/audit.md
documents the format and how to ship it to a SIEM.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import BaseModel

from orca.aws_errors import classify, classify_code
from orca.logging import get_logger
from orca.workflow_ids import pod_ref_from_workflow_id

AUDIT_LOGGER = "orca.audit"
AUDIT_EVENT = "aws mutation"
SUCCESS = "success"
READ_ONLY_VERBS = ("Describe", "Get", "List", "Filter", "Search", "Lookup", "Receive", "Query")
"""Operations starting with one of these change nothing and are not audited."""

_CONTEXT_KEY = "orca_audit"
_ID_FIELDS = frozenset(
    {
        "InstanceId",
        "InstanceIds",
        "SpotInstanceRequestId",
        "SpotInstanceRequestIds",
        "CancelledSpotInstanceRequests",
        "FleetId",
        "FleetIds",
        "Resources",
        "ResourceId",
        "CommandId",
        "QueueUrl",
        "Name",
        "Names",
        "DeletedParameters",
        "CapacityReservationId",
        "VolumeId",
        "LaunchTemplateId",
        "RoleArn",
    }
)
"""Fields whose values identify what a call changed (in parameters and responses, at any depth
of the containers listed in `_ID_CONTAINERS`). `Name` counts only at the top of the parameters
(the SSM parameter's name); nowhere else is it an identifier."""
_ID_CONTAINERS = frozenset(
    {
        "Instances",
        "TerminatingInstances",
        "StoppingInstances",
        "Command",
        "CancelledSpotInstanceRequests",
        "SpotInstanceRequests",
        "Successful",
        "Parameter",
    }
)


class AuditRecord(BaseModel):
    """One AWS mutation. Every field is an identifier or a classification, never a value."""

    time: datetime
    operation: str
    """IAM's spelling: `ec2:RunInstances`, `ssm:PutParameter`."""
    outcome: str
    """`success`, or the error's class (`capacity`, `throttled`, `not-found`, `access-denied`,
    `credentials-rejected`, `configuration`, `transient`, `unclassified`)."""
    error_code: str | None = None
    resource_ids: tuple[str, ...] = ()
    request_id: str | None = None
    http_status: int | None = None
    retry_attempts: int | None = None
    pod: str | None = None
    """namespace/name."""
    pod_uid: str | None = None
    workflow_id: str | None = None
    instance_id: str | None = None
    component: str | None = None


def is_mutation(operation: str) -> bool:
    return not operation.startswith(READ_ONLY_VERBS)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, Mapping):  # CancelledSpotInstanceRequests: [{SpotInstanceRequestId}]
        for key, item in value.items():
            if key in _ID_FIELDS and key != "Name":
                yield from _strings(item)


def _ids_in(document: Mapping[str, Any], *, top: bool) -> Iterator[str]:
    for key, value in document.items():
        if key in _ID_FIELDS and (key != "Name" or top):
            yield from _strings(value)
        elif key in _ID_CONTAINERS:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, Mapping):
                    yield from _ids_in(item, top=False)


def resource_ids(
    params: Mapping[str, Any], response: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """The IDs a call names in its parameters and its response, in order, without repeats."""
    found: Iterable[str] = [*_ids_in(params, top=True), *_ids_in(response or {}, top=False)]
    return tuple(dict.fromkeys(found))


def _request_id(response: Mapping[str, Any] | None, http_response: Any) -> str | None:
    metadata = (response or {}).get("ResponseMetadata") or {}
    request_id = metadata.get("RequestId")
    if not request_id and http_response is not None:
        headers = getattr(http_response, "headers", None) or {}
        request_id = headers.get("x-amzn-requestid") or headers.get("x-amz-request-id")
    return str(request_id) if request_id else None


def audit_record(
    *,
    operation: str,
    resources: tuple[str, ...],
    work_context: Mapping[str, Any],
    response: Mapping[str, Any] | None = None,
    http_response: Any = None,
    error: BaseException | None = None,
    now: datetime | None = None,
) -> AuditRecord:
    """The record of one call from what botocore handed the hooks (pure)."""
    code = ((response or {}).get("Error") or {}).get("Code")
    status = getattr(http_response, "status_code", None)
    if error is not None:
        outcome = str(classify(error))
    elif code or (status is not None and status >= 300):
        outcome = str(classify_code(str(code) if code else None))
    else:
        outcome = SUCCESS
    workflow_id = work_context.get("workflow_id")
    pod = work_context.get("pod")
    pod_uid = work_context.get("pod_uid")
    ref = pod_ref_from_workflow_id(str(workflow_id)) if workflow_id else None
    if ref is not None:
        pod = pod or ref.key
        pod_uid = pod_uid or ref.uid
    metadata = (response or {}).get("ResponseMetadata") or {}
    answered = () if code or error is not None else resource_ids({}, response)
    return AuditRecord(
        time=now or datetime.now(UTC),
        operation=operation,
        outcome=outcome,
        error_code=str(code) if code else (type(error).__name__ if error else None),
        resource_ids=tuple(dict.fromkeys((*resources, *answered))),
        request_id=_request_id(response, http_response),
        http_status=status,
        retry_attempts=metadata.get("RetryAttempts"),
        pod=pod,
        pod_uid=pod_uid,
        workflow_id=workflow_id,
        instance_id=work_context.get("instance_id"),
        component=work_context.get("component"),
    )


def _operation(model: Any) -> str:
    service = model.service_model
    prefix = service.signing_name or service.endpoint_prefix
    return f"{prefix}:{model.name}"


def _write(record: AuditRecord) -> None:
    get_logger(AUDIT_LOGGER).info(AUDIT_EVENT, **record.model_dump(mode="json", exclude_none=True))


def register_audit(events: Any) -> None:
    """Audit every mutation of every client made from the session owning `events`."""

    def before(params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if is_mutation(model.name):
            context[_CONTEXT_KEY] = (_operation(model), resource_ids(params))

    def after(
        http_response: Any,
        parsed: Mapping[str, Any],
        model: Any,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        _finish(context, response=parsed, http_response=http_response)

    def failed(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        _finish(context, error=exception)

    def _finish(context: dict[str, Any], **outcome: Any) -> None:
        started = context.pop(_CONTEXT_KEY, None)
        if started is None:
            return
        operation, resources = started
        _write(
            audit_record(
                operation=operation,
                resources=resources,
                work_context=structlog.contextvars.get_contextvars(),
                **outcome,
            )
        )

    events.register("before-parameter-build", before, unique_id="orca-audit-before")
    events.register("after-call", after, unique_id="orca-audit-after")
    events.register("after-call-error", failed, unique_id="orca-audit-failed")
