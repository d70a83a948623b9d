"""Every name ORCA derives from a pod, made to fit the limits of the system that stores it.

Kubernetes allows pod names of 253 characters (namespaces: 63, container names: 63, UIDs: 36),
so a name built by adding to a pod's name can overflow: an Event named `<pod>.<digest>` is
refused (422) once the pod name is longer than 242 characters. The limits:

| name | limit | derivation |
|---|---|---|
| Event `metadata.name` | 253, DNS subdomain | `<pod name, shortened>.<digest>` |
| EC2 tag value | 256 | the value, shortened (the pod's namespace/name/UID tags fit as they are) |
| EC2 `Name` tag | 256 | `orca/<namespace>/<pod name>`, shortened |
| CloudWatch log stream | 512, no `:` or `*` | `<namespace>/<pod>/<uid>/<container>`: at most 418 |
| Temporal workflow ID | 1000 | `pod/<namespace>/<pod>/<uid>`: at most 358 |
| Temporal Keyword search attribute | 2048 bytes | namespace / name as they are |
| SSM parameter name | 1011 | `/orca/pods/<uid>/...`: the UID only |

Shortening keeps a readable prefix and replaces the rest with a hash of the full text, so two
long names that share a prefix stay distinct and the same name always shortens the same way; the
full pod name stays in the `orca.research/pod-name` tag and in the workflow's search attributes.
Pure functions; tests check the limits with the longest names Kubernetes admits.
"""

from __future__ import annotations

import hashlib

MAX_OBJECT_NAME = 253
"""Kubernetes object names (DNS subdomains)."""
MAX_TAG_VALUE = 256
"""EC2 tag values."""
MAX_LOG_STREAM_NAME = 512
MAX_WORKFLOW_ID = 1000
"""Temporal's default `limit.maxIDLength`."""
_HASH_LENGTH = 10


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LENGTH]


def shorten(text: str, limit: int, *, separator: str = "-") -> str:
    """`text` if it fits in `limit` characters, else a prefix, the separator and a hash of the
    whole text (exactly `limit` characters, or fewer when the prefix ends in `-` or `.`, which
    are trimmed so a DNS name stays valid)."""
    if len(text) <= limit:
        return text
    keep = limit - len(separator) - _HASH_LENGTH
    prefix = text[:keep].rstrip("-.")
    return f"{prefix}{separator}{_digest(text)}"


def event_name(pod_name: str, suffix: str) -> str:
    """The name of an Event about the pod: `<pod>.<suffix>`, the pod name shortened so the
    whole stays a valid object name."""
    room = MAX_OBJECT_NAME - len(suffix) - 1
    return f"{shorten(pod_name, room)}.{suffix}"


def tag_value(text: str) -> str:
    return shorten(text, MAX_TAG_VALUE)


def instance_name_tag(namespace: str, pod_name: str) -> str:
    """The EC2 console's `Name` for the pod's instance."""
    return tag_value(f"orca/{namespace}/{pod_name}")


def container_log_stream(namespace: str, pod_name: str, uid: str, container: str) -> str:
    """The CloudWatch log stream of one container (the awslogs driver writes it, `kubectl logs`
    reads it)."""
    return shorten(f"{namespace}/{pod_name}/{uid}/{container}", MAX_LOG_STREAM_NAME)
