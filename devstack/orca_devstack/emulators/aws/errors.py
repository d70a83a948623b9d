"""AWS error responses, rendered the way each wire protocol carries them.

EC2 (query protocol) answers errors with an XML ``<Response><Errors>`` document; the JSON services
(SSM, CloudWatch Logs, Pricing) answer ``{"__type": ..., "message": ...}``. The HTTP status codes
are the ones AWS really uses: EC2 reports ``InsufficientInstanceCapacity`` as a *server* error
(500), ``RequestLimitExceeded`` as 503 and every other client error as 400. botocore treats 500
and 503 as retryable (``RequestLimitExceeded`` as throttling), exactly as it does against AWS.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from xml.sax.saxutils import escape

_STATUS_BY_CODE: dict[str, int] = {
    "InsufficientInstanceCapacity": 500,
    "InsufficientCapacity": 500,
    "InternalError": 500,
    "InternalFailure": 500,
    "InternalServerError": 500,
    "RequestLimitExceeded": 503,
    "ServiceUnavailable": 503,
    "Unavailable": 503,
}

_DEFAULT_MESSAGES: dict[str, str] = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "ThrottlingException": "Rate exceeded",
    "Unsupported": (
        "The requested configuration is currently not supported. "
        "Please check the documentation for supported configurations."
    ),
    "InstanceLimitExceeded": (
        "You have requested more instances than your current instance limit allows "
        "for the specified instance type. Please visit "
        "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."
    ),
    "VcpuLimitExceeded": (
        "You have requested more vCPU capacity than your current vCPU limit allows "
        "for the instance bucket that the specified instance type belongs to."
    ),
    "MaxSpotInstanceCountExceeded": "Max spot instance count exceeded",
    "InsufficientInstanceCapacity": (
        "We currently do not have sufficient capacity in the Availability Zone you requested."
    ),
    "InternalError": "An internal error has occurred",
    "ServiceUnavailable": "The service is unavailable. Please try again shortly.",
}


def status_for(code: str) -> int:
    """The HTTP status AWS sends with ``code``."""
    return _STATUS_BY_CODE.get(code, 400)


def default_message(code: str) -> str:
    return _DEFAULT_MESSAGES.get(code, f"{code} (injected by the ORCA AWS emulator)")


@dataclass(frozen=True)
class AwsError(Exception):
    """An error the emulator answers instead of (or before) moto."""

    code: str
    message: str
    status: int = 0

    @classmethod
    def of(cls, code: str, message: str | None = None) -> AwsError:
        return cls(code=code, message=message or default_message(code), status=status_for(code))

    @property
    def http_status(self) -> int:
        return self.status or status_for(self.code)

    def query_xml(self, request_id: str | None = None) -> str:
        request_id = request_id or str(uuid.uuid4())
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(self.code)}</Code>"
            f"<Message>{escape(self.message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )

    def json_body(self) -> str:
        return json.dumps({"__type": self.code, "message": self.message})
