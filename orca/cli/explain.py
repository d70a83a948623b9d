"""`orca explain POD.yaml`: what ORCA would launch for a pod, and why, without submitting it.

The same decision the worker makes (see `orca.cli.pod_manifest`): the chosen offering, every
candidate in fallback order with its reason and estimated hourly price, and the offerings that
were left out and why.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from orca.cli import connections, output
from orca.cli.errors import EXIT_OK
from orca.cli.pod_manifest import (
    decide,
    decision_document,
    read_pod_manifest,
    render_decision,
    validate,
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show which instance a pod would get, the fallback order and prices",
        description="Validate a pod manifest against the settings and the EC2 catalog and show "
        "the decision: the chosen instance type, the candidates in fallback order with their "
        "reasons and estimated hourly prices, and the offerings skipped. Nothing is submitted.",
    )
    parser.add_argument("manifest", type=Path, metavar="POD.yaml", help="pod manifest ('-': stdin)")
    parser.add_argument(
        "--all", action="store_true", help="list every candidate, not only the first ten"
    )
    output.add_output_option(parser, table=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args)
    pod = read_pod_manifest(args.manifest)
    spec = validate(pod, settings)
    catalog, subnets = asyncio.run(connections.instance_catalog(settings))
    plan, waiting = decide(spec, settings, catalog, subnets)
    if args.output in output.DOCUMENT_FORMATS:
        output.print_document(decision_document(spec, plan, waiting), args.output, sys.stdout)
        return EXIT_OK
    render_decision(spec, plan, waiting, sys.stdout, limit=None if args.all else 10)
    return EXIT_OK
