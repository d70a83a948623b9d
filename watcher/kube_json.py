"""Reading Kubernetes objects as the API's own camelCase JSON rather than the client's models.

The watcher hands pods to workflows and compares lease records exactly as the API server returns
them; the client's model classes would rename every field (snake_case) and drop unknown ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s


def read_json(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a client call with `_preload_content=False` and return the decoded body."""
    response: Any = call(*args, _preload_content=False, **kwargs)
    try:
        body: dict[str, Any] = json.loads(response.data)
    finally:
        response.release_conn()
    return body


def read_json_or_none(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """As `read_json`, but None for 404 Not Found."""
    try:
        return read_json(call, *args, **kwargs)
    except k8s.ApiException as error:
        if error.status == 404:
            return None
        raise
