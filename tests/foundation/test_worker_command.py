"""`orca worker` fails clearly, with exit 1 and no traceback, on what a user can get wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from orca_devstack.processes import free_port


def run_worker(
    tmp_path: Path, env_extra: dict[str, str], development: dict[str, object] | None = None
) -> subprocess.CompletedProcess[str]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "aws": {"region": "us-west-2", "endpointURL": f"http://127.0.0.1:{free_port()}"},
                "temporal": {"address": f"127.0.0.1:{free_port()}"},
                "kubernetes": {"kubeconfig": str(kubeconfig)},
                "worker": {"healthPort": 0},
                "metrics": {"enabled": False},
                **({"development": development} if development else {}),
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCA_", "AWS_"))}
    env.update({"HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true", **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "orca.cli.main", "--config", str(config), "worker"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_unreachable_temporal_names_the_address_and_the_setting(tmp_path: Path) -> None:
    result = run_worker(
        tmp_path, {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "cannot reach Temporal at 127.0.0.1:" in result.stderr
    assert "temporal.address" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_aws_credentials_say_where_orca_looked(tmp_path: Path) -> None:
    result = run_worker(tmp_path, {})
    assert result.returncode == 1, result.stderr[-2000:]
    assert "no AWS credentials found" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_mock_aws_config_is_named_at_start(tmp_path: Path) -> None:
    result = run_worker(
        tmp_path,
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        development={"mockAWS": True},
    )
    output = result.stdout + result.stderr
    assert "development.mockAWS is true: ORCA launches nothing" in output
    assert "orca.research/debug" in output
