"""`orca version`: ORCA's version and the versions of the libraries that shape its behaviour."""

from __future__ import annotations

import argparse
from importlib import metadata

from orca import __version__

_LIBRARIES = ("temporalio", "boto3", "kubernetes", "pydantic", "structlog")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("version", help="print ORCA's version and its libraries'")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print(f"orca {__version__}")
    for name in _LIBRARIES:
        try:
            print(f"  {name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            print(f"  {name} (not installed)")
    return 0
