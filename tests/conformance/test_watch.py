"""Watch semantics through `kubernetes.watch.Watch`: resume, selectors, bookmarks, timeouts, 410."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, watch

from orca_devstack.emulators.kube import KubeEmulator
from tests.conformance.manifests import node_manifest, pod_manifest, unique
from tests.fixtures.kube import KubeBackend, api_client_for


def collect(
    func: Any, *args: Any, stop_after: int | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Raw watch events until the server ends the stream (timeout_seconds) or `stop_after`."""
    events: list[dict[str, Any]] = []
    watcher = watch.Watch()
    for event in watcher.stream(func, *args, _request_timeout=30, **kwargs):
        events.append(event)
        if stop_after is not None and len(events) >= stop_after:
            watcher.stop()
    return events


def test_watch_from_resource_version_sees_only_newer_events(
    kube_backend: KubeBackend, kube_namespace: str
) -> None:
    core = kube_backend.core
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "before"}})
    start = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "after"}})
    core.patch_namespaced_config_map("after", kube_namespace, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("after", kube_namespace)
    events = collect(
        core.list_namespaced_config_map, kube_namespace, resource_version=start, timeout_seconds=1
    )
    seen = [(e["type"], e["object"].metadata.name) for e in events if e["type"] != "BOOKMARK"]
    assert seen == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]
    versions = [int(e["object"].metadata.resource_version) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(start)


def test_watch_without_resource_version_starts_with_current_state(
    kube_backend: KubeBackend, kube_namespace: str
) -> None:
    core = kube_backend.core
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "one"}})
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "two"}})
    events = collect(core.list_namespaced_config_map, kube_namespace, timeout_seconds=1)
    added = sorted(e["object"].metadata.name for e in events if e["type"] == "ADDED")
    assert {"one", "two"} <= set(added)


def test_watch_selectors_turn_modifications_into_added_and_deleted(
    kube_backend: KubeBackend, kube_namespace: str
) -> None:
    core = kube_backend.core
    start = core.list_namespaced_pod(kube_namespace).metadata.resource_version
    core.create_namespaced_pod(kube_namespace, pod_manifest("moving", labels={"app": "web"}))
    core.create_namespaced_pod(kube_namespace, pod_manifest("other", labels={"app": "db"}))
    core.patch_namespaced_pod("moving", kube_namespace, {"metadata": {"labels": {"app": "db"}}})
    core.patch_namespaced_pod("other", kube_namespace, {"metadata": {"labels": {"app": "web"}}})
    events = collect(
        core.list_namespaced_pod,
        kube_namespace,
        resource_version=start,
        label_selector="app=web",
        timeout_seconds=1,
    )
    seen = [(e["type"], e["object"].metadata.name) for e in events if e["type"] != "BOOKMARK"]
    assert seen == [("ADDED", "moving"), ("DELETED", "moving"), ("ADDED", "other")]


def test_watch_field_selector_on_node_name(kube_backend: KubeBackend, kube_namespace: str) -> None:
    core = kube_backend.core
    node = unique("node")
    core.create_node(node_manifest(node))
    try:
        start = core.list_namespaced_pod(kube_namespace).metadata.resource_version
        core.create_namespaced_pod(kube_namespace, pod_manifest("bound"))
        core.create_namespaced_pod(kube_namespace, pod_manifest("elsewhere"))
        core.create_namespaced_pod_binding(
            "bound",
            kube_namespace,
            {
                "metadata": {"name": "bound"},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            },
            _preload_content=False,
        )
        events = collect(
            core.list_pod_for_all_namespaces,
            resource_version=start,
            field_selector=f"spec.nodeName={node}",
            timeout_seconds=1,
        )
        seen = [(e["type"], e["object"].metadata.name) for e in events if e["type"] != "BOOKMARK"]
        assert seen == [("ADDED", "bound")]
        assert events[0]["object"].spec.node_name == node
    finally:
        core.delete_node(node)


@pytest.mark.parametrize("flag", ["true", "True", "1"])
def test_watch_flag_spellings(kube_backend: KubeBackend, kube_namespace: str, flag: str) -> None:
    api = kube_backend.api_client
    core = kube_backend.core
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "flagged"}})
    token = api.configuration.api_key.get("authorization")
    response = api.rest_client.request(
        "GET",
        f"{api.configuration.host}/api/v1/namespaces/{kube_namespace}/configmaps"
        f"?watch={flag}&timeoutSeconds=1",
        headers={"Accept": "application/json", **({"Authorization": token} if token else {})},
    )
    response.read()
    lines = [line for line in response.data.decode().splitlines() if line]
    assert any('"ADDED"' in line and '"flagged"' in line for line in lines)


def test_bookmarks_carry_the_latest_resource_version(tmp_path: Any) -> None:
    # The emulator's bookmark interval is configurable; a real server's is about a minute.
    with KubeEmulator(bookmark_interval=0.2) as emulator:
        core = client.CoreV1Api(api_client_for(emulator.write_kubeconfig(tmp_path / "kc")))
        start = core.list_namespaced_config_map("default").metadata.resource_version
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
        events = collect(
            core.list_namespaced_config_map,
            "default",
            resource_version=start,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
    types = [e["type"] for e in events]
    assert types[0] == "ADDED"
    assert types.count("BOOKMARK") >= 2  # periodic ones and one at the end of the stream
    assert types[-1] == "BOOKMARK"
    last = events[-1]["raw_object"]["metadata"]["resourceVersion"]
    assert int(last) >= int(events[0]["raw_object"]["metadata"]["resourceVersion"])


def test_expired_resource_version_gives_410(tmp_path: Any) -> None:
    with KubeEmulator(retained_events=5, scheduler=False) as emulator:
        core = client.CoreV1Api(api_client_for(emulator.write_kubeconfig(tmp_path / "kc")))
        start = core.list_namespaced_config_map("default").metadata.resource_version
        for index in range(20):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{index}"}})
        with pytest.raises(client.ApiException) as gone:
            collect(
                core.list_namespaced_config_map,
                "default",
                resource_version=start,
                timeout_seconds=1,
            )
        assert gone.value.status == 410
        # The raw stream: an ERROR event with an Expired Status, then a clean end.
        api = core.api_client
        response = api.rest_client.request(
            "GET",
            f"{api.configuration.host}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={start}",
            headers={"Accept": "application/json"},
        )
        response.read()
        import json

        event = json.loads(response.data.decode().splitlines()[0])
        assert event["type"] == "ERROR"
        assert (event["object"]["reason"], event["object"]["code"]) == ("Expired", 410)
        # A continue token from before the window has expired too.
        first = core.list_namespaced_config_map("default", limit=2)
        for index in range(20):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"d{index}"}})
        with pytest.raises(client.ApiException) as stale_continue:
            core.list_namespaced_config_map("default", limit=2, _continue=first.metadata._continue)
        assert stale_continue.value.status == 410
        # A recent resourceVersion still works.
        recent = core.list_namespaced_config_map("default").metadata.resource_version
        core.create_namespaced_config_map("default", {"metadata": {"name": "fresh"}})
        events = collect(
            core.list_namespaced_config_map, "default", resource_version=recent, timeout_seconds=1
        )
        assert [e["object"].metadata.name for e in events] == ["fresh"]


def test_many_concurrent_watches_and_requests(tmp_path: Any) -> None:
    import threading

    with KubeEmulator(scheduler=False) as emulator:
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kc")
        core = client.CoreV1Api(api_client_for(kubeconfig))
        start = core.list_namespaced_config_map("default").metadata.resource_version
        results: list[list[str]] = []
        lock = threading.Lock()

        def watch_one() -> None:
            api = client.CoreV1Api(api_client_for(kubeconfig))
            names = [
                e["object"].metadata.name
                for e in collect(
                    api.list_namespaced_config_map,
                    "default",
                    resource_version=start,
                    timeout_seconds=3,
                )
            ]
            with lock:
                results.append(names)

        threads = [threading.Thread(target=watch_one) for _ in range(100)]
        for thread in threads:
            thread.start()
        for index in range(10):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"cm{index}"}})
        for thread in threads:
            thread.join(timeout=20)
    assert len(results) == 100
    assert all(names == [f"cm{index}" for index in range(10)] for names in results)
