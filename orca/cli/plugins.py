"""Commands that other distributions add to `orca`, found through entry points.

The product knows nothing of the development stack: `orca dev` comes from the `orca-devstack`
distribution (the repository's `devstack/`, installed by the `dev` extra), which registers it in
the `orca.commands` entry-point group. Where it is not installed, `orca dev` still parses and
says how to get it, instead of argparse's bare "invalid choice".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import metadata

from orca.cli.errors import EXIT_USAGE, CommandError

ENTRY_POINT_GROUP = "orca.commands"
KNOWN_PLUGINS = {
    "dev": (
        "run ORCA on the embedded stack (not installed here)",
        "orca dev needs the development stack (the orca-devstack distribution: the AWS and "
        "Kubernetes emulators and the local servers). In a checkout run `make run`, or install "
        "it with `pip install -e ./devstack`.",
    ),
}
"""Commands users may expect: their help line, and what to do when their distribution is
absent."""


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    found: set[str] = set()
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry.load()(subparsers)
        found.add(entry.name)
    for name, (summary, hint) in KNOWN_PLUGINS.items():
        if name not in found:
            parser = subparsers.add_parser(name, help=summary, add_help=False)
            parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            parser.set_defaults(handler=_missing(hint))


def _missing(hint: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise CommandError(hint, exit_code=EXIT_USAGE)

    return run
