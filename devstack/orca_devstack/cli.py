"""`orca dev`: run the embedded stack (see `orca_devstack.stack`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from orca.cli.errors import EXIT_OK, CommandError
from orca_devstack import user_settings
from orca_devstack.examples import submit_examples
from orca_devstack.processes import StackError
from orca_devstack.stack import DevStack, DevStackOptions

PORT_OPTIONS = (
    ("--temporal-port", "temporal_port"),
    ("--temporal-ui-port", "temporal_ui_port"),
    ("--aws-port", "aws_port"),
    ("--kube-port", "kube_port"),
    ("--kubelet-port", "kubelet_port"),
    ("--worker-metrics-port", "worker_metrics_port"),
    ("--watcher-metrics-port", "watcher_metrics_port"),
    ("--worker-health-port", "worker_health_port"),
    ("--watcher-health-port", "watcher_health_port"),
)
"""Every port `orca dev` binds: command-line option and `DevStackOptions` field."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = DevStackOptions()
    parser = subparsers.add_parser(
        "dev",
        help="run ORCA with a local Temporal, AWS emulator and Kubernetes emulator",
        description=(
            "Start the embedded stack: Temporal dev server (with Web UI), the AWS emulator, the "
            "Kubernetes API emulator, ORCA's worker and watcher. Endpoints are printed and "
            "written to <state-dir>/endpoints.json. Ctrl-C stops everything. The settings of "
            "`orca --config FILE dev` (or $ORCA_CONFIG) and ORCA_<SECTION>__<KEY> environment "
            "variables apply over the stack's own, except its endpoints, ports and wiring."
        ),
    )
    parser.add_argument("--state-dir", type=Path, default=defaults.state_dir)
    parser.add_argument("--host", default=defaults.host, help="address every server binds")
    parser.add_argument("--headless", action="store_true", help="no Temporal Web UI")
    parser.add_argument(
        "--example-pods", action="store_true", help="submit the example pods once ready"
    )
    parser.add_argument(
        "--aws-launch-delay",
        type=float,
        default=defaults.aws_launch_delay,
        metavar="SECONDS",
        help="how long an emulated instance stays pending (the AWS emulator's default: 5)",
    )
    for option, field in PORT_OPTIONS:
        parser.add_argument(option, dest=field, type=int, default=getattr(defaults, field))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    fields = DevStackOptions.model_fields
    options = DevStackOptions(**{k: v for k, v in vars(args).items() if k in fields})
    user = user_settings.collect(getattr(args, "config", None), os.environ)
    stack = DevStack(options, user=user)
    stack.install_signal_handlers()
    print("ORCA dev stack: starting")
    for line in user.summary():
        print(f"  {line}")
    try:
        endpoints = stack.start()
        print()
        if endpoints.temporal_ui_url:
            print(f"  Temporal UI      {endpoints.temporal_ui_url}")
        print(f"  Temporal         {endpoints.temporal_address}")
        if endpoints.kube_api_url:
            print(f"  Kubernetes API   {endpoints.kube_api_url}")
            print(f"  kubeconfig       {endpoints.kubeconfig}")
            print(f"     try: kubectl --kubeconfig {endpoints.kubeconfig} get nodes,pods -o wide")
        if endpoints.aws_endpoint_url:
            print(f"  AWS endpoint     {endpoints.aws_endpoint_url}")
        print(f"  config           {endpoints.config_path}")
        print(f"  endpoints        {options.state_dir / 'endpoints.json'}")
        if options.example_pods and endpoints.kubeconfig:
            for pod in submit_examples(Path(endpoints.kubeconfig)):
                print(f"  submitted        {pod}")
        print("\nRunning. Ctrl-C stops every process.", flush=True)
        code = stack.supervise()
    except StackError as error:
        stack.stop()
        raise CommandError(f"orca dev: {error}") from None
    except BaseException:
        stack.stop()
        raise
    print("\nORCA dev stack: stopping")
    stack.stop()
    print("stopped")
    return code if code else EXIT_OK
