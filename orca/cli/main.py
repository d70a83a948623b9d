"""Entry point of the `orca` command: parses arguments, loads settings, maps errors to exit codes.

No command prints a traceback for something a user can cause: configuration errors exit 2 with the
key path and what is allowed, other expected failures raise `CommandError` with a message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from temporalio.service import RPCError

from orca import __version__
from orca.cli import (
    completion,
    config_command,
    connections,
    explain,
    logs,
    permissions,
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
from orca.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, CommandError
from orca.settings import ConfigError


def add_global_options(parser: argparse.ArgumentParser, *, anywhere: bool = False) -> None:
    """The options every command takes. On subcommands (`anywhere`) they default to nothing, so
    a value given before the subcommand is not overwritten: `orca -n lab status` and
    `orca status -n lab` mean the same."""
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if anywhere else {}
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML config file (default: $ORCA_CONFIG, ./orca.yaml, ~/.config/orca/config.yaml, "
        "/etc/orca/config.yaml; without one, the settings ORCA publishes on its node; "
        "environment variables ORCA_<SECTION>__<KEY> override both)",
        **default,
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)",
        **default,
    )
    parser.add_argument(
        "--context", help="kubeconfig context (default: the current one)", **default
    )
    parser.add_argument(
        "-n",
        "--namespace",
        help="the namespace (default: the kubeconfig context's, else default)",
        **default,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orca",
        description="ORCA bursts Kubernetes pods onto AWS GPU and accelerator instances.",
    )
    add_global_options(parser)
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
    config_command.add_parser(subparsers)
    completion.add_parser(subparsers)
    for command in subcommands(parser):
        if command.add_help:  # a plugin that is not installed takes its arguments as they come
            add_global_options(command, anywhere=True)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every subcommand's parser, nested ones (`orca config show`) included, once each."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found.append(child)
                found.extend(subcommands(child))
    return found


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
    except k8s.ApiException as error:
        refusal = permissions.refusal_from_status(error)
        if refusal is None:
            raise
        print(f"orca: {refusal}", file=sys.stderr)
        return EXIT_FAILURE
    except RPCError as error:
        temporal = connections.current_temporal
        refusal = None
        if temporal is not None:
            refusal = permissions.temporal_refusal(error, temporal.address, temporal.namespace)
        if refusal is None:
            raise
        print(f"orca: {refusal}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
