"""Entry point of the `orca` command: parses arguments, loads settings, maps errors to exit codes.

No command prints a traceback for something a user can cause: configuration errors exit 2 with the
key path and what is allowed, other expected failures raise `CommandError` with a message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from orca import __version__
from orca.cli import (
    explain,
    logs,
    plugins,
    replay,
    retry,
    status,
    submit,
    temporal_setup_command,
    usage,
    version,
    watcher_command,
    worker_command,
)
from orca.cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, CommandError
from orca.settings import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orca",
        description="ORCA bursts Kubernetes pods onto AWS GPU and accelerator instances.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML config file (default: $ORCA_CONFIG, ./orca.yaml, ~/.config/orca/config.yaml, "
        "/etc/orca/config.yaml; environment variables ORCA_<SECTION>__<KEY> override it)",
    )
    parser.add_argument("--version", action="version", version=f"orca {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    version.add_parser(subparsers)
    worker_command.add_parser(subparsers)
    watcher_command.add_parser(subparsers)
    plugins.add_parsers(subparsers)
    submit.add_parser(subparsers)
    explain.add_parser(subparsers)
    status.add_parser(subparsers)
    usage.add_parser(subparsers)
    logs.add_parser(subparsers)
    replay.add_parser(subparsers)
    retry.add_parser(subparsers)
    temporal_setup_command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as error:
        print(f"orca: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as error:
        print(f"orca: {error}" if not str(error).startswith("orca") else error, file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
