"""`orca temporal setup`: register ORCA's search attributes on the configured Temporal namespace.

Needed once per namespace of a self-hosted cluster (`orca dev` registers them on its own server),
so the Temporal UI can list and filter pods by namespace, name, instance type, instance ID and
phase. Temporal Cloud refuses this call from namespace API keys; the message then says how to
register them with `tcld` or in the Cloud console.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from temporalio.service import RPCError, RPCStatusCode

from orca import search_attributes
from orca.cli import connections
from orca.cli.errors import EXIT_FAILURE, EXIT_OK, CommandError
from orca.settings import Settings
from orca.temporal_setup import register_search_attributes


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "temporal",
        help="prepare a Temporal namespace for ORCA",
        description="Commands for the Temporal cluster ORCA uses.",
    )
    commands = parser.add_subparsers(dest="temporal_command", metavar="COMMAND")
    commands.required = True
    setup = commands.add_parser(
        "setup",
        help="register ORCA's search attributes on temporal.namespace",
        description="Register ORCA's Keyword search attributes ("
        + ", ".join(key.name for key in search_attributes.ALL)
        + ") on the configured namespace, if missing. Safe to run again.",
    )
    setup.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args)
    return asyncio.run(_setup(settings))


async def _setup(settings: Settings) -> int:
    client = await connections.temporal(settings)
    namespace = settings.temporal.namespace
    try:
        added = await register_search_attributes(client)
    except RPCError as error:
        raise CommandError(_refusal(settings, error), EXIT_FAILURE) from None
    out = sys.stdout
    if added:
        print(f"Registered on namespace {namespace}: {', '.join(added)}", file=out)
    else:
        print(
            f"All {len(search_attributes.ALL)} ORCA search attributes already exist on "
            f"namespace {namespace}.",
            file=out,
        )
    return EXIT_OK


def _refusal(settings: Settings, error: RPCError) -> str:
    names = ", ".join(f"{key.name}=Keyword" for key in search_attributes.ALL)
    where = f"Temporal at {settings.temporal.address} (namespace {settings.temporal.namespace})"
    if error.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED) or (
        "tmprl.cloud" in settings.temporal.address
    ):
        return (
            f"{where} refused to register search attributes ({error.message}). On Temporal "
            "Cloud, add them in the Cloud console (Namespace > Search attributes) or with "
            f"`tcld namespace search-attributes add -n <namespace> --search-attribute ...` for "
            f"each of: {names}"
        )
    if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return (
            f"{where} did not answer ({error.message}); check temporal.address "
            "(ORCA_TEMPORAL__ADDRESS)"
        )
    return f"{where} refused to register search attributes: {error.message}; needed: {names}"
