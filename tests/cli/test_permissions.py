"""401 and 403 from the cluster (or Temporal) end a command with one line naming the permission.

The Kubernetes API emulator has no RBAC (any token is accepted), so the refusals come from a
small proxy in front of it that answers chosen requests the way a real API server's RBAC
authorizer does (same status, reason and message format) and passes every other request through
to the emulator. That proxy is the one mock here: RBAC cannot run in this environment.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client as k8s
from temporalio.service import RPCError, RPCStatusCode

from orca.cli.main import main
from orca.cli.permissions import Permission, refusal_from_status, temporal_refusal
from orca.published_settings import PUBLISHED_SETTINGS_ANNOTATION, published_settings
from orca.settings import Settings
from orca_devstack.emulators.kube import KubeEmulator
from tests.cli.manifests import write_pod_manifest

Refuse = Callable[[str, str], int | None]
"""(method, path) -> 401 or 403 to refuse the request with, None to pass it on."""


def rbac_message(verb: str, resource: str, namespace: str | None) -> str:
    group_resource = resource.split("/")[0]
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return (
        f'{group_resource} is forbidden: User "alice" cannot {verb} resource "{resource}" '
        f'in API group ""{where}'
    )


class RbacProxy:
    def __init__(self, upstream: str, refuse: Refuse) -> None:
        target = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                code = proxy.refuse(self.command, urlsplit(self.path).path)
                if code is not None:
                    self._status(code)
                    return
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            def _status(self, code: int) -> None:
                if code == 401:
                    status = {"message": "Unauthorized", "reason": "Unauthorized"}
                else:
                    verb, resource, namespace = describe(self.command, urlsplit(self.path).path)
                    status = {
                        "message": rbac_message(verb, resource, namespace),
                        "reason": "Forbidden",
                        "details": {"kind": resource.split("/")[0]},
                    }
                body = json.dumps(
                    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
                    | status
                    | {"code": code}
                ).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def do_PATCH(self) -> None:
                self._answer()

        self.refuse = refuse
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def describe(method: str, path: str) -> tuple[str, str, str | None]:
    """RBAC's verb, resource and namespace of a core/v1 request path."""
    parts = path.strip("/").split("/")[2:]  # after api/v1
    namespace = None
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        namespace, parts = parts[1], parts[2:]
    resource = parts[0] + (f"/{parts[2]}" if len(parts) > 2 else "")
    named = len(parts) > 1
    verb = {"GET": "get" if named else "list", "POST": "create", "PATCH": "patch"}[method]
    return verb, resource, namespace


@pytest.fixture
def rbac(kube_emulator: KubeEmulator, tmp_path: Path) -> Iterator[Callable[[Refuse], Path]]:
    """Start a refusing proxy; returns a kubeconfig pointing at it."""
    proxies: list[RbacProxy] = []

    def start(refuse: Refuse) -> Path:
        proxy = RbacProxy(kube_emulator.url, refuse)
        proxy.thread.start()
        proxies.append(proxy)
        config = kube_emulator.kubeconfig()
        config["clusters"][0]["cluster"]["server"] = proxy.url
        path = tmp_path / f"kubeconfig-{len(proxies)}"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    yield start
    for proxy in proxies:
        proxy.server.shutdown()
        proxy.server.server_close()


@pytest.fixture
def published(kube_core: k8s.CoreV1Api) -> None:
    """ORCA's node with its published settings, and a pod lab/train in the emulator."""
    settings = Settings(aws={"region": "us-west-2"}, temporal={"address": "127.0.0.1:1"})
    kube_core.create_node(
        {
            "metadata": {
                "name": settings.node.name,
                "labels": {"type": "virtual-kubelet"},
                "annotations": {PUBLISHED_SETTINGS_ANNOTATION: published_settings(settings)},
            }
        }
    )
    kube_core.create_namespace({"metadata": {"name": "lab"}})
    kube_core.create_namespaced_pod(
        "lab",
        {
            "metadata": {"name": "train"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        },
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return code, err.strip()


def test_a_refused_pod_list_names_verb_resource_and_namespace(
    rbac: Callable[[Refuse], Path],
    published: None,
    capsys: pytest.CaptureFixture[str],
    no_config_file: None,
) -> None:
    kubeconfig = rbac(lambda method, path: 403 if path == "/api/v1/namespaces/lab/pods" else None)
    code, err = run(capsys, "status", "--kubeconfig", str(kubeconfig), "-n", "lab")
    assert code == 1
    assert err.startswith("orca: forbidden: cannot list pods in namespace lab:")
    assert "you need permission to list pods in namespace lab" in err
    assert "orca-user ClusterRole" in err


def test_a_refused_node_read_names_the_cluster_wide_permission(
    rbac: Callable[[Refuse], Path],
    published: None,
    capsys: pytest.CaptureFixture[str],
    no_config_file: None,
) -> None:
    kubeconfig = rbac(lambda method, path: 403 if path.startswith("/api/v1/nodes") else None)
    code, err = run(capsys, "status", "--kubeconfig", str(kubeconfig))
    assert code == 1
    assert "you need permission to get nodes cluster-wide" in err


def test_a_refused_log_read_names_the_subresource(
    rbac: Callable[[Refuse], Path],
    published: None,
    capsys: pytest.CaptureFixture[str],
    no_config_file: None,
) -> None:
    kubeconfig = rbac(lambda method, path: 403 if path.endswith("/log") else None)
    code, err = run(capsys, "--kubeconfig", str(kubeconfig), "logs", "train", "-n", "lab")
    assert code == 1
    assert "you need permission to get pods/log in namespace lab" in err


def test_a_refused_create_names_it(
    rbac: Callable[[Refuse], Path],
    published: None,
    capsys: pytest.CaptureFixture[str],
    no_config_file: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to look for
    manifest = write_pod_manifest(tmp_path, "new", "m5.large")
    kubeconfig = rbac(lambda method, path: 403 if method == "POST" else None)
    # The catalog is skipped (no AWS credentials), as for a researcher without an AWS account.
    code, err = run(
        capsys,
        "submit",
        str(manifest),
        "-n",
        "lab",
        "--kubeconfig",
        str(kubeconfig),
    )
    assert code == 1
    assert "you need permission to create pods in namespace lab" in err


def test_rejected_credentials_are_one_line(
    rbac: Callable[[Refuse], Path], capsys: pytest.CaptureFixture[str], no_config_file: None
) -> None:
    kubeconfig = rbac(lambda method, path: 401)
    code, err = run(capsys, "status", "--kubeconfig", str(kubeconfig))
    assert code == 1
    assert err.startswith("orca: unauthorized: the Kubernetes API server at http://127.0.0.1:")
    assert "did not accept your credentials (401)" in err


def test_an_unexpected_403_is_described_from_the_servers_status() -> None:
    error = k8s.ApiException(status=403, reason="Forbidden")
    error.body = json.dumps({"message": rbac_message("watch", "events", "lab")})
    assert refusal_from_status(error) == (
        "forbidden: you need permission to watch events in namespace lab; the orca-user "
        "ClusterRole grants what the CLI needs (docs/cli.md)"
    )
    assert refusal_from_status(k8s.ApiException(status=404)) is None
    assert str(Permission("get", "nodes")) == "get nodes cluster-wide"


def test_temporal_refusals_name_the_namespace() -> None:
    denied = RPCError("Request unauthorized.", RPCStatusCode.PERMISSION_DENIED, b"")
    message = temporal_refusal(denied, "t.example.org:7233", "research")
    assert message is not None
    assert message.startswith("forbidden: Temporal at t.example.org:7233 refused access to")
    assert "namespace research" in message
    unauthenticated = RPCError("bad key", RPCStatusCode.UNAUTHENTICATED, b"")
    assert "ORCA_TEMPORAL__API_KEY" in (temporal_refusal(unauthenticated, "t", "n") or "")
    assert temporal_refusal(RPCError("x", RPCStatusCode.UNAVAILABLE, b""), "t", "n") is None
