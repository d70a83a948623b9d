"""The HTTP control API and the standalone process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orca_devstack.emulators.aws import AwsEmulator
from tests.fixtures.aws import AwsClientFactory, wait_until


def call(aws: AwsEmulator, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        aws.endpoint_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_http_control_api(aws: AwsEmulator, aws_client: AwsClientFactory) -> None:
    assert call(aws, "GET", "/_orca/defaults")["vpc_id"] == aws.defaults.vpc_id
    call(aws, "POST", "/_orca/capacity", {"instance_type": "g5.xlarge", "count": 0})
    ec2 = aws_client("ec2")
    with pytest.raises(ClientError, match="InsufficientInstanceCapacity"):
        ec2.run_instances(
            ImageId=aws.defaults.ami_ids["al2023-x86_64"],
            InstanceType="g5.xlarge",
            MinCount=1,
            MaxCount=1,
        )
    call(aws, "POST", "/_orca/faults", {"operation": "DescribeVpcs", "error_code": "Unsupported"})
    with pytest.raises(ClientError, match="Unsupported"):
        ec2.describe_vpcs()
    call(aws, "DELETE", "/_orca/faults")
    assert ec2.describe_vpcs()["Vpcs"]
    with pytest.raises(urllib.error.HTTPError) as raised:
        call(aws, "POST", "/_orca/containers/finish", {"pod_uid": "nope"})
    assert raised.value.code == 404
    call(aws, "POST", "/_orca/reset")
    assert call(aws, "GET", "/_orca/health") == {"ok": True}


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"port {port} on 127.0.0.1 is already in use"):
            AwsEmulator(port=port).start()
        result = subprocess.run(
            [sys.executable, "-m", "orca_devstack.emulators.aws", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"port {port} on 127.0.0.1 is already in use; pass --port to choose another"
    )


def test_standalone_serves_until_sigterm() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orca_devstack.emulators.aws",
            "--port",
            str(port),
            "--launch-delay",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def answers() -> bool:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_orca/health", timeout=2
                ) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(answers, timeout=30, interval=0.2)
        process.send_signal(signal.SIGTERM)
        stdout, _stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert stdout == ""
