"""The operator commands against the whole local stack (`orca dev` on free ports).

Each command runs in-process through `orca.cli.main.main`, as a user runs it with the stack's
generated config: submit and explain make the worker's decision from the AWS emulator's catalog,
status and retry talk to the Temporal dev server and the Kubernetes API emulator, logs come
through the API server from ORCA's kubelet endpoint.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from orca.cli.main import main
from tests.fixtures.dev_stack import DevStack, eventually

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "devstack" / "orca_devstack" / "example_pods"


def orca(stack: DevStack, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--config", stack.config_path, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pod_manifest(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    """A plain pod: no nodeSelector or toleration; `orca submit` adds them."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": "public.ecr.aws/docker/library/busybox:1.36",
                    "command": ["sh", "-c", "echo hello"],
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                }
            ],
        },
    }


def write(tmp_path: Path, manifest: dict[str, Any]) -> Path:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return path


def phase(core: client.CoreV1Api, name: str) -> str | None:
    try:
        return str(core.read_namespaced_pod(name, "default").status.phase)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def control_aws(stack: DevStack, route: str, body: dict[str, Any]) -> None:
    """Steer the AWS emulator through its control API."""
    request = urllib.request.Request(
        f"{stack.endpoints['aws_endpoint_url']}/_orca/{route}",
        data=json.dumps(body).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def scrape(url: str) -> list[str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode()).splitlines()


def finish_containers(stack: DevStack, pod_uid: str) -> None:
    control_aws(stack, "containers/finish", {"pod_uid": pod_uid})


@pytest.fixture(scope="module")
def core(dev_stack: DevStack) -> client.CoreV1Api:
    # Instances run as soon as they are launched: these tests are about the commands.
    control_aws(dev_stack, "launch-delay", {"seconds": 0})
    return dev_stack.core()


def test_explain_shows_the_decision_in_fallback_order(
    dev_stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = orca(dev_stack, capsys, "explain", str(EXAMPLES / "gpu-finetune.yaml"))
    assert code == 0, err
    assert "Chosen:       g5.xlarge spot in us-west-2" in out
    order = re.findall(r"^ +\d+\. (\S+) ", out, flags=re.MULTILINE)
    first_fallback = order.index("g5.2xlarge")
    assert set(order[:first_fallback]) == {"g5.xlarge"}
    assert "/h" in out  # estimated hourly prices
    assert "on-demand fallback for spot" in out or "... and" in out
    assert err == ""


def test_explain_unknown_instance_type_names_what_is_offered(
    dev_stack: DevStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = pod_manifest("typo", {"orca.research/instance-type": "g9.xlarge"})
    code, out, err = orca(dev_stack, capsys, "explain", str(write(tmp_path, manifest)))
    assert code == 2
    assert "orca.research/instance-type" in err
    assert "unknown instance type 'g9.xlarge'" in err
    assert "g5" in err.split("offered here:")[1]
    assert out == ""


def test_submit_completes_the_pod_and_status_follows_the_launch(
    dev_stack: DevStack,
    core: client.CoreV1Api,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = pod_manifest(
        "cli-ok",
        {
            "orca.research/instance-type": "m5.large",
            "emulator.orca.research/run-seconds": "inf",
            "emulator.orca.research/log-lines": "loading data\nstep 1 done",
        },
    )
    code, out, err = orca(dev_stack, capsys, "submit", str(write(tmp_path, manifest)))
    assert code == 0, err
    created = core.read_namespaced_pod("cli-ok", "default")
    assert created.spec.node_selector == {"orca.research/provider": "aws"}
    assert any(t.key == "orca.research/burst-node" for t in created.spec.tolerations)
    assert "added nodeSelector orca.research/provider=aws" in out
    assert "Chosen:       m5.large on-demand" in out
    assert f"Workflow:     pod/default/cli-ok/{created.metadata.uid}" in out

    eventually(lambda: phase(core, "cli-ok") == "Running", "cli-ok to run", within=150)

    code, out, err = orca(dev_stack, capsys, "status")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["NAMESPACE", "NAME", "PHASE", "STAGE"]
    [row] = [r for r in rows if r.split()[1] == "cli-ok"]
    assert row.split()[2] == "Running"
    assert "m5.large" in row
    # The launch went through the cluster's budget ledger: its cost so far is shown; the
    # stack's AWS credentials read the pods' usage figures from CloudWatch (docs/stats.md).
    assert header.split()[-5:] == ["COST", "CPU", "MEMORY", "ACCEL", "AGE"]
    assert row.split()[-5].startswith("$")

    def cpu_shown() -> bool:
        code, out, _ = orca(dev_stack, capsys, "status")
        rows = [r.split() for r in out.splitlines()[1:] if r.split()[1] == "cli-ok"]
        return code == 0 and bool(rows) and rows[0][-4] == "800m"  # 80% of its 1 CPU request

    eventually(cpu_shown, "the emulated instance's CPU figures in orca status", within=60)

    # The worker process exports the ledger's gauges (refreshed every 30 s).
    running = 'orca_running_instances{instance_type="m5.large",namespace="default"}'
    eventually(
        lambda: any(
            line.startswith(running) and float(line.split()[-1]) >= 1
            for line in scrape(dev_stack.endpoints["worker_metrics_url"])
        ),
        "the worker to export the running instance",
        within=75,
    )

    code, out, err = orca(dev_stack, capsys, "status", "cli-ok")
    assert code == 0, err
    assert f"Workflow:     pod/default/cli-ok/{created.metadata.uid}" in out
    assert "Launch attempts:" in out
    assert "launched i-" in out

    code, out, err = orca(dev_stack, capsys, "logs", "cli-ok")
    assert code == 0, err
    assert "loading data\nstep 1 done" in out

    code, out, err = orca(dev_stack, capsys, "logs", "cli-ok", "--tail", "1")
    assert code == 0, err
    assert out.strip() == "step 1 done"

    code, _, err = orca(dev_stack, capsys, "logs", "cli-ok", "-c", "sidecar")
    assert code == 2
    assert "no container 'sidecar'; containers: main" in err

    code, _, err = orca(dev_stack, capsys, "retry", "cli-ok")
    assert code == 2
    assert "still running under workflow pod/default/cli-ok/" in err

    code, _, err = orca(dev_stack, capsys, "submit", str(write(tmp_path, manifest)))
    assert code == 2
    assert "already exists" in err

    code, out, err = orca(
        dev_stack, capsys, "replay", "--workflow-id", f"pod/default/cli-ok/{created.metadata.uid}"
    )
    assert code == 0, err
    assert "1 replayed, 1 OK, 0 failed" in out

    # The container ends (the emulator's control API); a followed log ends with it.
    finish_containers(dev_stack, created.metadata.uid)
    code, out, err = orca(dev_stack, capsys, "logs", "cli-ok", "-f")
    assert code == 0, err
    assert "loading data\nstep 1 done" in out


def test_retry_runs_a_failed_launch_again(
    dev_stack: DevStack, core: client.CoreV1Api, capsys: pytest.CaptureFixture[str]
) -> None:
    # Created behind `orca submit`'s back (it refuses such pods): the launch fails.
    manifest = pod_manifest(
        "cli-retry",
        {"orca.research/instance-type": "m5.large", "orca.research/launch-type": "spotty"},
    )
    manifest["spec"]["nodeSelector"] = {"orca.research/provider": "aws"}
    manifest["spec"]["tolerations"] = [{"key": "orca.research/burst-node", "operator": "Exists"}]
    core.create_namespaced_pod("default", manifest)
    eventually(lambda: phase(core, "cli-retry") == "Failed", "cli-retry to fail")

    code, out, err = orca(dev_stack, capsys, "status", "cli-retry")
    assert code == 0, err
    assert "Reason:       InvalidPodSpec" in out

    core.patch_namespaced_pod(
        "cli-retry", "default", {"metadata": {"annotations": {"orca.research/launch-type": "spot"}}}
    )
    code, out, err = orca(dev_stack, capsys, "retry", "cli-retry")
    assert code == 0, err
    assert "status reset to Pending" in out
    new_run = out.split("New run:")[1].split()[0]

    eventually(lambda: phase(core, "cli-retry") == "Running", "the retried pod to run", within=150)
    code, out, err = orca(dev_stack, capsys, "status", "cli-retry")
    assert code == 0, err
    assert f"Run:          {new_run} (running)" in out
    assert "spot" in out


def test_commands_name_a_missing_pod(
    dev_stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["status", "nosuch"], ["logs", "nosuch"], ["retry", "nosuch"]):
        code, _, err = orca(dev_stack, capsys, *argv)
        assert code == 2, argv
        assert "pod default/nosuch not found" in err


def test_temporal_setup_finds_the_attributes_orca_dev_registered(
    dev_stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = orca(dev_stack, capsys, "temporal", "setup")
    assert code == 0, err
    assert "All 8 ORCA search attributes already exist on namespace default." in out


def namespaced_kubeconfig(stack: DevStack, tmp_path: Path, namespace: str) -> Path:
    """The stack's kubeconfig with `namespace` in its current context, as a researcher's is."""
    config = yaml.safe_load(Path(stack.endpoints["kubeconfig"]).read_text(encoding="utf-8"))
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    path = tmp_path / "researcher-kubeconfig"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_a_researcher_with_only_a_kubeconfig_uses_every_command(
    dev_stack: DevStack,
    core: client.CoreV1Api,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_config_file: None,
) -> None:
    """No config file: the settings come from the annotation the stack's watcher published on
    its node; the namespace from the kubeconfig context; global options after the command."""
    core.create_namespace({"metadata": {"name": "lab"}})
    kubeconfig = str(namespaced_kubeconfig(dev_stack, tmp_path, "lab"))

    def researcher(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--kubeconfig", kubeconfig])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    manifest = pod_manifest(
        "lab-train",
        {
            "orca.research/instance-type": "m5.large",
            "emulator.orca.research/run-seconds": "inf",
            "emulator.orca.research/log-lines": "epoch 1",
        },
    )
    path = str(write(tmp_path, manifest))
    code, out, err = researcher("explain", path, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["chosen"]["instanceType"] == "m5.large"

    code, out, err = researcher("submit", path)
    assert code == 0, err
    assert "pod/lab-train created in namespace lab" in out
    created = core.read_namespaced_pod("lab-train", "lab")

    def lab_phase() -> bool:
        return str(core.read_namespaced_pod("lab-train", "lab").status.phase) == "Running"

    eventually(lab_phase, "lab-train to run", within=150)

    code, out, err = researcher("status")
    assert code == 0, err
    [row] = out.splitlines()[1:]
    assert row.split()[:3] == ["lab", "lab-train", "Running"]

    code, out, err = researcher("status", "-o", "json")
    assert code == 0, err
    [pod] = json.loads(out)["pods"]
    assert pod["uid"] == created.metadata.uid
    assert pod["instanceType"] == "m5.large"
    assert pod["workflowID"] == f"pod/lab/lab-train/{created.metadata.uid}"

    code, out, err = researcher("status", "-A", "-o", "wide")
    assert code == 0, err
    header = out.splitlines()[0]
    assert header.split()[-3:] == ["STATUS", "REASON", "WORKFLOW"]
    assert f"pod/lab/lab-train/{created.metadata.uid}" in out

    code, out, err = researcher("status", "lab-train", "-o", "yaml")
    assert code == 0, err
    detail = yaml.safe_load(out)
    assert detail["pod"]["onOrcaNode"] is True
    assert detail["workflow"]["status"] == "RUNNING"
    assert detail["view"]["stage"] == "Running"

    code, out, err = researcher("logs", "lab-train")
    assert code == 0, err
    assert "epoch 1" in out

    code, _, err = researcher("retry", "lab-train")
    assert code == 2
    assert "still running under workflow pod/lab/lab-train/" in err
