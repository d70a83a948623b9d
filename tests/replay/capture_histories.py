"""(Re)capture the committed workflow histories in tests/histories/ from real runs.

    .venv/bin/python -m tests.replay.capture_histories [--out tests/histories]

Starts `orca dev` on free ports, drives one pod per scenario to the end of its workflow, and
writes each workflow's history as `<scenario>.json` (the JSON `orca replay --histories` and
`temporal workflow show --output json` read). Recapture after a deliberate, versioned change to
`PodLifecycle`, and keep the old files too when old runs may still be open in production: the
point of the replay test is that the new code still replays the old histories.

Scenarios:
- happy-path: m5.large on demand, the container runs and exits 0;
- capacity-fallback: g5.xlarge has no capacity in any zone, so g5.2xlarge (the fallback) runs;
- invalid-pod: `launch-type: spotty`, refused before anything is launched;
- deletion: a long-running container, the pod is deleted while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import urllib.request
import uuid
from pathlib import Path

from kubernetes import client as k8s
from temporalio.client import Client, WorkflowExecutionStatus

from orca.launch_spec import PodRef
from orca.payload_codec import DATA_CONVERTER
from orca.workflow_ids import pod_workflow_id
from orca_devstack.examples import burst_pod
from tests.fixtures.dev_stack import DevStack, eventually, running_dev_stack

HISTORIES = Path(__file__).resolve().parent.parent / "histories"


SCENARIOS: dict[str, dict[str, str]] = {
    "happy-path": {
        "orca.research/instance-type": "m5.large",
        "emulator.orca.research/run-seconds": "2",
    },
    "capacity-fallback": {
        "orca.research/instance-type": "g5.xlarge",
        "orca.research/fallback-instance-types": "g5.2xlarge",
        "orca.research/launch-type": "on-demand",
        "emulator.orca.research/run-seconds": "2",
    },
    "invalid-pod": {
        "orca.research/instance-type": "m5.large",
        "orca.research/launch-type": "spotty",
    },
    "deletion": {
        "orca.research/instance-type": "c5.xlarge",
        "emulator.orca.research/run-seconds": "inf",
    },
}


def _no_capacity(stack: DevStack, instance_type: str) -> None:
    request = urllib.request.Request(
        f"{stack.endpoints['aws_endpoint_url']}/_orca/capacity",
        data=json.dumps({"instance_type": instance_type, "count": 0}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


async def _closed(client: Client, workflow_id: str) -> bool:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except Exception:
        return False
    return description.status is not WorkflowExecutionStatus.RUNNING


def _phase(core: k8s.CoreV1Api, name: str) -> str | None:
    try:
        return str(core.read_namespaced_pod(name, "default").status.phase)
    except k8s.ApiException as error:
        if error.status == 404:
            return None
        raise


async def capture(stack: DevStack, out: Path) -> list[Path]:
    core = stack.core()
    client = await Client.connect(
        stack.endpoints["temporal_address"], data_converter=DATA_CONVERTER
    )
    _no_capacity(stack, "g5.xlarge")
    workflow_ids: dict[str, str] = {}
    names: dict[str, str] = {}
    for scenario, pod_annotations in SCENARIOS.items():
        name = f"{scenario}-{uuid.uuid4().hex[:6]}"
        created = core.create_namespaced_pod("default", burst_pod(name, pod_annotations))
        ref = PodRef(namespace="default", name=name, uid=created.metadata.uid)
        workflow_ids[scenario], names[scenario] = pod_workflow_id(ref), name

    deletion = names["deletion"]
    eventually(lambda: _phase(core, deletion) == "Running", f"{deletion} to run")
    core.delete_namespaced_pod(deletion, "default")

    written = []
    for scenario, workflow_id in workflow_ids.items():
        for _ in range(480):
            if await _closed(client, workflow_id):
                break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError(f"{workflow_id} did not close within 2 minutes")
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        path = out / f"{scenario}.json"
        path.write_text(history.to_json() + "\n", encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HISTORIES)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="orca-capture-") as state,
        running_dev_stack(Path(state)) as stack,
    ):
        for path in asyncio.run(capture(stack, args.out)):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
