"""Calling the watcher's kubelet endpoint as a client of a real kubelet does: HTTPS without
verifying the serving certificate, with a client certificate or a bearer token, or with nothing."""

from __future__ import annotations

import urllib.error
import urllib.request

from orca_devstack.emulators.kube.access import client_context


def kubelet_get(
    port: int,
    path: str,
    *,
    token: str | None = None,
    certificate: tuple[bytes, bytes] | None = None,
    method: str = "GET",
) -> tuple[int, bytes]:
    """(status, body) of `method` https://127.0.0.1:<port><path> (GET by default)."""
    context = client_context(certificate)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}{path}", headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())
