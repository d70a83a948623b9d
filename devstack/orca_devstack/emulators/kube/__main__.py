"""Serve the emulator until SIGINT or SIGTERM:
`python -m orca_devstack.emulators.kube --port 6443`."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from types import FrameType

from orca_devstack.emulators.kube.emulator import KubeEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orca_devstack.emulators.kube", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--kubeconfig", help="write a kubeconfig (context orca-dev) to this path")
    parser.add_argument("--no-scheduler", action="store_true", help="leave pods unbound")
    parser.add_argument("--retained-events", type=int, default=10_000, metavar="N")
    arguments = parser.parse_args(argv)

    emulator = KubeEmulator(
        host=arguments.host,
        port=arguments.port,
        retained_events=arguments.retained_events,
        scheduler=not arguments.no_scheduler,
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
