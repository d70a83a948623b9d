"""`orca explain` for a pod with PersistentVolumeClaims, against the Kubernetes API emulator and
the AWS emulator: bound claims restrict the candidates to the volume's zone, and the skipped
lines say why; an unbound claim makes the pod wait."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from orca.cli.main import main
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import Wiring
from tests.activities.test_pod_claims import bound_claim, claim_pod, create_claim, real_volume


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def explain(
    aws: AwsEmulator,
    kubeconfig: Path,
    tmp_path: Path,
    pod: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    *options: str,
) -> tuple[int, str, str]:
    defaults = aws.defaults
    config = tmp_path / "orca.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "aws": {
                    "region": defaults.region,
                    "endpointURL": aws.endpoint_url,
                    "subnetIDs": list(defaults.subnet_ids.values()),
                    "securityGroupIDs": [defaults.security_group_id],
                },
                "kubernetes": {"kubeconfig": str(kubeconfig)},
            }
        ),
        encoding="utf-8",
    )
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", **pod}), "utf-8")
    code = main(["--config", str(config), "explain", str(manifest), "--all", *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_restricts_candidates_to_the_bound_volumes_zone(
    aws: AwsEmulator,
    kube_core: client.CoreV1Api,
    kube_kubeconfig: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zone = sorted(aws.defaults.subnet_ids)[-1]
    volume_id = real_volume(Wiring(aws), zone)
    claim_name = bound_claim(kube_core, volume_id)
    code, out, err = explain(aws, kube_kubeconfig, tmp_path, claim_pod(claim_name), capsys)
    assert code == 0, err
    rows = re.findall(r"^ +\d+\. .*$", out, flags=re.MULTILINE)
    assert rows, out
    assert all(f" {zone} " in row for row in rows), out
    why = f"volume {volume_id} (claim {claim_name}) is in {zone}"
    others = sorted(set(aws.defaults.subnet_ids) - {zone})
    for other in others:
        assert f"m5.large on-demand in {other}: {why}" in out


def test_explain_json_names_the_volumes_and_their_zone(
    aws: AwsEmulator,
    kube_core: client.CoreV1Api,
    kube_kubeconfig: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zone = sorted(aws.defaults.subnet_ids)[0]
    volume_id = real_volume(Wiring(aws), zone)
    claim_name = bound_claim(kube_core, volume_id)
    pod = claim_pod(claim_name)
    code, out, err = explain(aws, kube_kubeconfig, tmp_path, pod, capsys, "-o", "json")
    assert code == 0, err
    document = json.loads(out)
    [volume] = document["volumes"]
    assert (volume["claim"], volume["volumeId"], volume["zone"]) == (claim_name, volume_id, zone)
    assert volume["name"] == pod["spec"]["volumes"][0]["name"]
    assert {c["zone"] for c in document["candidates"]} == {zone}


def test_explain_says_the_pod_waits_for_an_unbound_claim(
    aws: AwsEmulator,
    kube_core: client.CoreV1Api,
    kube_kubeconfig: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    claim_name = create_claim(kube_core)
    code, out, err = explain(aws, kube_kubeconfig, tmp_path, claim_pod(claim_name), capsys)
    assert code == 0, err
    assert f"Nothing to launch right now: PersistentVolumeClaim default/{claim_name}" in out
    assert "not Bound" in out


def test_explain_refuses_a_claim_whose_volume_does_not_exist(
    aws: AwsEmulator,
    kube_core: client.CoreV1Api,
    kube_kubeconfig: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    claim_name = bound_claim(kube_core, "vol-0123456789abcdef0")
    code, _, err = explain(aws, kube_kubeconfig, tmp_path, claim_pod(claim_name), capsys)
    assert code == 2
    assert "invalid pod: spec.volumes[0].persistentVolumeClaim" in err
    assert "vol-0123456789abcdef0 does not exist" in err
