"""Serve until SIGINT or SIGTERM:
``python -m orca_devstack.emulators.aws --host 127.0.0.1 --port 5000``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from orca_devstack.emulators.aws.config import EmulatorConfig
from orca_devstack.emulators.aws.server import AwsEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orca_devstack.emulators.aws", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--region", default="us-west-2")
    parser.add_argument("--launch-delay", type=float, default=EmulatorConfig().launch_delay_s)
    parser.add_argument("--notice-seconds", type=float, default=EmulatorConfig().notice_seconds)
    args = parser.parse_args(argv)
    config = EmulatorConfig(launch_delay_s=args.launch_delay, notice_seconds=args.notice_seconds)
    emulator = AwsEmulator(host=args.host, port=args.port, region=args.region, config=config)
    # A flag, not a threading.Event: a handler calling Event.set() can deadlock on the lock the
    # interrupted main thread holds inside Event.wait().
    stop_requested: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        emulator.start()
    except OSError as error:
        print(error.strerror or str(error), file=sys.stderr)
        return 2
    while not stop_requested:
        time.sleep(0.2)
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
