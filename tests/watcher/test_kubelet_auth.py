"""The kubelet endpoint authenticates and authorizes like a kubelet, against the API emulator:
client certificates from the cluster CA, bearer tokens through TokenReview, permissions through
SubjectAccessReview."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error

import pytest

from orca_devstack.emulators.kube import KubeEmulator
from tests.watcher.conftest import (
    WatcherParts,
    create_pod,
    eventually,
    running_watcher,
    write_container_logs,
)
from tests.watcher.kubelet_client import kubelet_get


async def test_the_kubelet_endpoint_needs_credentials_and_the_nodes_permission(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    ref = create_pod(parts.core, "auth-1", settings.node.name)
    write_container_logs(settings, ref, [f"line {i}" for i in range(3)])
    parts.kube.add_token("alice-token", "alice", ("researchers",))
    path = f"/containerLogs/{ref.namespace}/{ref.name}/main"
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(lambda: watcher.watcher.kubelet is not None)
        assert watcher.watcher.kubelet is not None
        port = watcher.watcher.kubelet.port

        def get(path: str, **credentials: object) -> tuple[int, bytes]:
            return kubelet_get(port, path, **credentials)  # type: ignore[arg-type]

        # Nobody: 401 on every path, /healthz included.
        for anonymous_path in (path, "/healthz", "/stats/summary", "/nowhere"):
            status, body = await asyncio.to_thread(get, anonymous_path)
            assert status == 401, anonymous_path
            assert json.loads(body)["reason"] == "Unauthorized"
        status, _ = await asyncio.to_thread(get, path, token="guessed")
        assert status == 401

        # Authenticated, not authorized: 403 naming the permission.
        status, body = await asyncio.to_thread(get, path, token="alice-token")
        refusal = json.loads(body)
        assert (status, refusal["kind"], refusal["reason"]) == (403, "Status", "Forbidden")
        assert refusal["message"].startswith(
            "Forbidden (user=alice, verb=get, resource=nodes, subresource=proxy)"
        )
        assert f"nodes/proxy of node {settings.node.name}" in refusal["message"]
        alice = parts.kube.issue_client_certificate("alice", ("researchers",))
        status, body = await asyncio.to_thread(get, "/stats/summary", certificate=alice)
        assert status == 403
        assert "subresource=stats" in json.loads(body)["message"]

        # The API server's kubelet client certificate: the logs.
        apiserver = parts.kube.issue_client_certificate("kube-apiserver-kubelet-client")
        status, body = await asyncio.to_thread(get, path, certificate=apiserver)
        assert (status, body.decode().splitlines()) == (200, ["line 0", "line 1", "line 2"])
        status, _ = await asyncio.to_thread(get, "/healthz", certificate=apiserver)
        assert status == 200

        # exec needs nodes/proxy too, and then an upgrade (kubelet_exec).
        exec_path = f"/exec/{ref.namespace}/{ref.name}/main?command=sh&output=1"
        status, body = await asyncio.to_thread(get, exec_path, method="POST")
        assert status == 401
        status, body = await asyncio.to_thread(get, exec_path, token="alice-token", method="POST")
        assert (status, json.loads(body)["message"].split(")")[0]) == (
            403,
            "Forbidden (user=alice, verb=create, resource=nodes, subresource=proxy",
        )
        status, body = await asyncio.to_thread(get, exec_path, token="alice-token")
        assert "verb=get, resource=nodes, subresource=proxy" in json.loads(body)["message"]
        status, body = await asyncio.to_thread(get, exec_path, certificate=apiserver, method="POST")
        assert (status, body.decode().split(":")[0]) == (400, "Upgrade request required")

        # A bearer token the API server accepts, of a user allowed everything.
        status, body = await asyncio.to_thread(
            get, path + "?tailLines=1", token="orca-dev-emulator"
        )
        assert (status, body) == (200, b"line 2\n")


async def test_a_client_certificate_of_another_ca_is_refused_at_the_handshake(
    parts: WatcherParts,
) -> None:
    settings = parts.settings()
    foreign = KubeEmulator().issue_client_certificate("kube-apiserver-kubelet-client")
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(lambda: watcher.watcher.kubelet is not None)
        assert watcher.watcher.kubelet is not None
        port = watcher.watcher.kubelet.port
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            await asyncio.to_thread(kubelet_get, port, "/healthz", certificate=foreign)
        # The endpoint still serves others.
        status, body = await asyncio.to_thread(
            kubelet_get, port, "/healthz", token="orca-dev-emulator"
        )
        assert (status, body) == (200, b"ok")
