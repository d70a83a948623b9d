"""Serve the emulator until SIGINT or SIGTERM:
`python -m orca_devstack.emulators.kube --port 6443`."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from types import FrameType

from orca_devstack.emulators.kube.admission import DEFAULT_TOLERATION_SECONDS, AdmissionConfig
from orca_devstack.emulators.kube.emulator import KubeEmulator
from orca_devstack.emulators.kube.node_lifecycle import LifecycleTimings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orca_devstack.emulators.kube", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--kubeconfig", help="write a kubeconfig (context orca-dev) to this path")
    parser.add_argument("--no-scheduler", action="store_true", help="leave pods unbound")
    parser.add_argument("--retained-events", type=int, default=10_000, metavar="N")
    lifecycle = parser.add_argument_group(
        "node lifecycle", "kube-controller-manager's and kube-apiserver's flags of the same names"
    )
    lifecycle.add_argument(
        "--node-monitor-period", type=float, default=LifecycleTimings.monitor_period, metavar="S"
    )
    lifecycle.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=LifecycleTimings.grace_period,
        metavar="S",
        help="a node whose Lease and status do not change for this long becomes Unknown",
    )
    lifecycle.add_argument(
        "--no-node-lifecycle",
        action="store_true",
        help="no node health, no condition taints, no taint-based eviction",
    )
    for taint in ("not-ready", "unreachable"):
        lifecycle.add_argument(
            f"--default-{taint}-toleration-seconds",
            type=int,
            default=DEFAULT_TOLERATION_SECONDS,
            metavar="S",
            help=f"tolerationSeconds of the {taint}:NoExecute toleration added to every pod",
        )
    arguments = parser.parse_args(argv)

    emulator = KubeEmulator(
        host=arguments.host,
        port=arguments.port,
        retained_events=arguments.retained_events,
        scheduler=not arguments.no_scheduler,
        node_lifecycle=None
        if arguments.no_node_lifecycle
        else LifecycleTimings(
            monitor_period=arguments.node_monitor_period,
            grace_period=arguments.node_monitor_grace_period,
        ),
        admission=AdmissionConfig(
            default_not_ready_toleration_seconds=arguments.default_not_ready_toleration_seconds,
            default_unreachable_toleration_seconds=arguments.default_unreachable_toleration_seconds,
        ),
    )
    try:
        emulator.start()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            print(
                f"port {arguments.port} on {arguments.host} is already in use; "
                "pass --port to choose another",
                file=sys.stderr,
            )
            return 2
        raise
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if arguments.kubeconfig:
        emulator.write_kubeconfig(arguments.kubeconfig)
    print(f"Kubernetes API emulator serving at {emulator.url}", flush=True)
    while not stopping.wait(0.5):
        pass
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
