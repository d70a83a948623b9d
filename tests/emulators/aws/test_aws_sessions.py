"""Session Manager in the AWS emulator: StartSession's checks and the data channel it plays."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orca.exec_command import ExecRequest, render_session_command
from orca.watcher.kubelet_session import DataChannel, connect
from orca_devstack.emulators.aws import AwsEmulator
from tests.emulators.aws.test_aws_exec import started
from tests.emulators.aws.test_aws_ssm import make_pod, running_instance, send, start_script
from tests.fixtures.aws import AwsClientFactory, wait_until


def session_output(ssm: Any, instance_id: str, parameters: dict[str, list[str]], **kw: Any) -> Any:
    found = ssm.start_session(
        Target=instance_id,
        DocumentName=kw.get("document", "AWS-StartInteractiveCommand"),
        Parameters=parameters,
    )
    output: list[bytes] = []
    lock = threading.Lock()

    def collect(data: bytes) -> None:
        with lock:
            output.append(data)

    connection, leftover = connect(found["StreamUrl"])
    channel = DataChannel(connection, leftover, kw.get("token", found["TokenValue"]), collect)
    return channel, output


def test_a_session_runs_its_command_on_a_terminal_in_the_sandbox(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm = aws_client("ssm")
    instance_id = running_instance(aws, aws_client)
    pod = make_pod({"emulator.orca.research/run-seconds": "inf"})
    send(ssm, instance_id, "orca start ml/train", start_script(pod))
    wait_until(lambda: started(aws_client, pod))
    request = ExecRequest(
        pod_uid=pod["uid"],
        container="trainer",
        command=["sh", "-c", "test -t 0 && echo on-a-tty; read line; echo got-$line; exit 2"],
        tty=True,
    )
    channel, output = session_output(
        ssm, instance_id, {"command": [render_session_command(request)]}
    )
    channel.input(b"typed\r")
    assert channel.done.wait(20)
    text = b"".join(output).decode()
    assert "on-a-tty" in text
    assert "got-typed" in text
    assert channel.exit_code == 2

    other = request.model_copy(update={"container": "nope"})
    channel, output = session_output(ssm, instance_id, {"command": [render_session_command(other)]})
    assert channel.done.wait(20)
    assert "container nope is not running" in b"".join(output).decode()
    assert channel.exit_code == 126


def test_start_session_checks_the_document_and_the_agent(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm, ec2 = aws_client("ssm"), aws_client("ec2")
    instance_id = running_instance(aws, aws_client)
    with pytest.raises(ClientError, match="InvalidDocument"):
        ssm.start_session(Target=instance_id, DocumentName="AWS-StartSSHSession")
    ec2.stop_instances(InstanceIds=[instance_id])
    wait_until(
        lambda: (
            ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
                "State"
            ]["Name"]
            != "running"
        )
    )
    with pytest.raises(ClientError, match="TargetNotConnected"):
        ssm.start_session(
            Target=instance_id,
            DocumentName="AWS-StartInteractiveCommand",
            Parameters={"command": ["true"]},
        )


def test_a_data_channel_opened_with_another_token_is_closed(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    ssm = aws_client("ssm")
    instance_id = running_instance(aws, aws_client)
    channel, output = session_output(ssm, instance_id, {"command": ["true"]}, token="guessed")
    assert channel.done.wait(20)
    assert output == []
    assert channel.exit_code is None


def test_port_forwarding_sessions_reach_the_port_on_the_host(
    aws: AwsEmulator, aws_client: AwsClientFactory
) -> None:
    import socket

    ssm = aws_client("ssm")
    instance_id = running_instance(aws, aws_client)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"hello " + connection.recv(100))

    threading.Thread(target=serve, daemon=True).start()
    channel, output = session_output(
        ssm,
        instance_id,
        {"portNumber": [str(port)]},
        document="AWS-StartPortForwardingSession",
    )
    channel.input(b"there")
    assert channel.done.wait(20)
    assert b"".join(output) == b"hello there"
    listener.close()
