"""List and watch fan-out of the Kubernetes API emulator with 10,000 pods.

Run: `python -m benchmarks.kube_emulator [--pods 10000] [--watchers 50]`. Prints a table and a
JSON line; it asserts nothing. Figures: creating pods (in process and through the official client),
listing them (whole, in pages of 500, with a label selector), and how long N concurrent watches
take to receive a burst of pod writes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

from orca_devstack.emulators.kube import KubeEmulator
from orca_devstack.emulators.kube.registry import PODS


def _pod(index: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"bench-{index:05d}",
            "labels": {"app": "bench", "shard": str(index % 10)},
        },
        "spec": {
            "schedulerName": "none",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": "100m"}},
                }
            ],
        },
    }


def _timed(action: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def _watch_until(
    host: str,
    port: int,
    resource_version: str,
    expected: int,
    ready: threading.Barrier,
    done: list[float],
    lock: threading.Lock,
) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=120)
    connection.request(
        "GET",
        f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={resource_version}&timeoutSeconds=120",
    )
    response = connection.getresponse()
    ready.wait()
    count = 0
    while count < expected:
        line = response.readline()
        if not line:
            break
        count += 1
    with lock:
        done.append(time.perf_counter())
    connection.close()


def run(pods: int, watchers: int, burst: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with (
        KubeEmulator(scheduler=False, retained_events=max(pods * 2, 10_000)) as emulator,
        tempfile.TemporaryDirectory() as tmp,
    ):
        api = config.new_client_from_config(str(emulator.write_kubeconfig(Path(tmp) / "kc")))
        core = client.CoreV1Api(api)
        seconds, _ = _timed(
            lambda: [emulator.registry.create(PODS, "default", _pod(i)) for i in range(pods)]
        )
        figures["create_in_process_per_s"] = pods / seconds
        seconds, _ = _timed(
            lambda: [core.create_namespaced_pod("default", _pod(pods + i)) for i in range(1000)]
        )
        figures["create_http_client_per_s"] = 1000 / seconds
        total = pods + 1000

        seconds, listed = _timed(
            lambda: core.list_namespaced_pod("default", _preload_content=False).read()
        )
        figures["list_all_raw_s"] = seconds
        figures["list_all_raw_mb"] = len(listed) / 1e6
        seconds, _ = _timed(lambda: core.list_namespaced_pod("default"))
        figures["list_all_client_models_s"] = seconds
        seconds, _ = _timed(
            lambda: core.list_namespaced_pod(
                "default", label_selector="shard=3", _preload_content=False
            ).read()
        )
        figures["list_label_selector_10pct_s"] = seconds

        def paged() -> int:
            token, count = None, 0
            while True:
                page = json.loads(
                    core.list_namespaced_pod(
                        "default", limit=500, _continue=token, _preload_content=False
                    ).read()
                )
                count += len(page["items"])
                token = page["metadata"].get("continue")
                if not token:
                    return count

        seconds, count = _timed(paged)
        if count != total:
            raise RuntimeError(f"paged list returned {count} pods, expected {total}")
        figures["list_paged_500_s"] = seconds

        host, port = emulator.url.removeprefix("http://").rsplit(":", 1)
        rv = str(emulator.store.resource_version)
        ready = threading.Barrier(watchers + 1)
        done: list[float] = []
        lock = threading.Lock()
        threads = [
            threading.Thread(
                target=_watch_until,
                args=(host, int(port), rv, burst, ready, done, lock),
                daemon=True,
            )
            for _ in range(watchers)
        ]
        for thread in threads:
            thread.start()
        ready.wait()
        start = time.perf_counter()
        for index in range(burst):
            emulator.registry.patch(
                PODS,
                "default",
                f"bench-{index:05d}",
                "application/merge-patch+json",
                {"metadata": {"annotations": {"touched": "yes"}}},
            )
        writes_done = time.perf_counter()
        for thread in threads:
            thread.join(timeout=120)
        figures["watch_burst_writes_per_s"] = burst / (writes_done - start)
        figures["watch_fanout_last_delivery_s"] = (max(done) - start) if done else float("nan")
        figures["watch_fanout_events_delivered_per_s"] = (burst * len(done)) / figures[
            "watch_fanout_last_delivery_s"
        ]
        figures["watchers_completed"] = float(len(done))
        api.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument(
        "--burst", type=int, default=1_000, help="pod writes each watcher must receive"
    )
    arguments = parser.parse_args()
    figures = run(arguments.pods, arguments.watchers, arguments.burst)
    print(
        f"Kubernetes API emulator: {arguments.pods} pods (+1000 over HTTP), "
        f"{arguments.watchers} watchers, burst of {arguments.burst} writes"
    )
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value:12.3f}")
    print(
        json.dumps(
            {
                "benchmark": "kube_emulator",
                "pods": arguments.pods,
                "watchers": arguments.watchers,
                **figures,
            }
        )
    )


if __name__ == "__main__":
    main()
