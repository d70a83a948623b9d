"""`kubectl exec`: the real kubectl → API server (emulator, WebSocket relay) → the watcher's
kubelet endpoint → SSM Run Command → the AWS emulator's container sandbox."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import select
import shutil
import socket
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orca.aws_clients import AwsClients
from orca.instance_tags import POD_UID
from orca.launch_spec import PodRef
from orca.settings import Settings
from tests.watcher.conftest import WatcherParts, create_pod, eventually, running_watcher

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(not Path(KUBECTL).is_file(), reason="kubectl is not installed"),
]


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, spdy: bool = False
) -> subprocess.CompletedProcess[str]:
    """The real kubectl; `spdy`: the SPDY/3.1 protocol kube-apiserver 1.30-1.32 speaks to
    kubelets, instead of kubectl's WebSocket."""
    environment = {**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"} if spdy else None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        env=environment,
        timeout=60,
        check=False,
    )


def start_containers(settings: Settings, ref: PodRef, annotations: dict[str, str]) -> str:
    """An instance tagged with the pod's UID, its agent online, the pod's containers started
    as ORCA's start command starts them (running until stopped); the instance ID."""
    aws = AwsClients(settings.aws)
    ec2, ssm = aws.ec2, aws.ssm
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    instance_id = str(
        ec2.run_instances(
            ImageId=images[0]["ImageId"],
            InstanceType="m7i.large",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": POD_UID, "Value": ref.uid}]}
            ],
        )["Instances"][0]["InstanceId"]
    )
    manifest = {
        "namespace": ref.namespace,
        "name": ref.name,
        "uid": ref.uid,
        "annotations": {"emulator.orca.research/run-seconds": "inf", **annotations},
        "initContainers": [],
        "containers": [{"name": "main", "image": "busybox"}],
        "restartPolicy": "Never",
    }
    script = (
        "#!/bin/bash\nmkdir -p /etc/orca\n"
        f"cat > /etc/orca/pod.json <<'ORCA_POD_JSON'\n{json.dumps(manifest)}\nORCA_POD_JSON\n"
    )

    def online() -> bool:
        info = ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
        )["InstanceInformationList"]
        return bool(info) and info[0]["PingStatus"] == "Online"

    deadline = time.monotonic() + 20
    while not online():
        assert time.monotonic() < deadline, "the emulated agent did not come online"
        time.sleep(0.05)
    ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName="AWS-RunShellScript",
        Comment=f"orca start {ref.namespace}/{ref.name}",
        Parameters={"commands": [script]},
    )
    return instance_id


def containers_running(settings: Settings, ref: PodRef) -> bool:
    logs = AwsClients(settings.aws).logs
    try:
        events = logs.filter_log_events(
            logGroupName="/orca/container-status", logStreamNames=[ref.uid]
        )["events"]
    except Exception:
        return False
    return any('"running"' in e["message"].replace(" ", "") for e in events)


async def exec_ready(
    parts: WatcherParts, name: str, **annotations: str
) -> tuple[Settings, PodRef, Any]:
    settings = parts.settings()
    ref = create_pod(parts.core, name, settings.node.name)
    await asyncio.to_thread(start_containers, settings, ref, annotations)
    await eventually(lambda: containers_running(settings, ref), within=20)
    parts.core.patch_namespaced_pod_status(
        name, "default", {"status": {"phase": "Running"}}
    )  # what ORCA's monitor reports; the recording workflow here reports nothing
    return settings, ref, None


async def test_kubectl_exec_runs_the_command_and_returns_its_exit_code(
    parts: WatcherParts,
) -> None:
    settings, _, _ = await exec_ready(parts, "exec-1")
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        echoed = await asyncio.to_thread(
            kubectl, parts.kubeconfig, "exec", "exec-1", "--", "echo", "hello", "world"
        )
        assert echoed.returncode == 0, echoed.stderr
        assert echoed.stdout == "hello world\n"

        split = await asyncio.to_thread(
            kubectl,
            parts.kubeconfig,
            "exec",
            "exec-1",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        )
        assert split.returncode == 3, split.stderr
        assert split.stdout == "out\n"
        assert "err\n" in split.stderr
        assert "command terminated with exit code 3" in split.stderr

        listed = await asyncio.to_thread(
            kubectl,
            parts.kubeconfig,
            "exec",
            "exec-1",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "touch made && ls",
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == ["made"]  # the container's own scratch directory

        missing = await asyncio.to_thread(
            kubectl, parts.kubeconfig, "exec", "exec-1", "--", "no-such-command-here"
        )
        assert missing.returncode == 127, missing.stderr
        assert "executable file not found" in missing.stderr

        wrong = await asyncio.to_thread(
            kubectl, parts.kubeconfig, "exec", "exec-1", "-c", "nope", "--", "true"
        )
        assert wrong.returncode != 0
        assert "container nope is not valid" in wrong.stderr


async def test_kubectl_exec_over_spdy(parts: WatcherParts) -> None:
    settings, _, _ = await exec_ready(parts, "exec-spdy")
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        split = await asyncio.to_thread(
            kubectl,
            parts.kubeconfig,
            "exec",
            "exec-spdy",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
            spdy=True,
        )
        assert split.returncode == 3, split.stderr
        assert split.stdout == "out\n"
        assert "err\n" in split.stderr

        counted = await asyncio.to_thread(
            kubectl,
            parts.kubeconfig,
            "exec",
            "-i",
            "exec-spdy",
            "--",
            "wc",
            "-c",
            stdin="x" * 100_000 + "\n",  # over SPDY's 64 KiB window and the 48 KiB limit
            spdy=True,
        )
        assert counted.returncode != 0
        assert "stdin of more than" in counted.stderr

        small = await asyncio.to_thread(
            kubectl,
            parts.kubeconfig,
            "exec",
            "-i",
            "exec-spdy",
            "--",
            "cat",
            stdin="abc",
            spdy=True,
        )
        assert (small.returncode, small.stdout) == (0, "abc"), small.stderr


async def test_kubectl_exec_with_stdin_delivers_the_whole_input(parts: WatcherParts) -> None:
    settings, _, _ = await exec_ready(parts, "exec-stdin")
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        counted = await asyncio.to_thread(
            kubectl,
            parts.kubeconfig,
            "exec",
            "-i",
            "exec-stdin",
            "--",
            "wc",
            "-l",
            stdin="a\nb\nc\n",
        )
        assert counted.returncode == 0, counted.stderr
        assert counted.stdout.strip() == "3"

        piped = await asyncio.to_thread(
            kubectl,
            parts.kubeconfig,
            "exec",
            "-i",
            "exec-stdin",
            "--",
            "sh",
            "-c",
            "cat; exit 5",
            stdin="through\n",
        )
        assert piped.returncode == 5
        assert piped.stdout == "through\n"


def kubectl_in_pty(
    kubeconfig: Path, *args: str, typed: list[bytes] | None = None, spdy: bool = False
) -> tuple[int, str]:
    """Run kubectl with a terminal (100 columns, 30 rows) as its stdin, stdout and stderr,
    typing `typed` one line at a time once output has appeared; its exit code and output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on the terminal
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        if spdy:
            os.environ["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] = "false"
        os.execv(KUBECTL, [KUBECTL, "--kubeconfig", str(kubeconfig), *args])
    output = b""
    pending = list(typed or [])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready and pending and output:
            os.write(fd, pending.pop(0))
            continue
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


async def test_kubectl_exec_with_a_tty(parts: WatcherParts) -> None:
    settings, _, _ = await exec_ready(parts, "exec-tty")
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        code, output = await asyncio.to_thread(
            kubectl_in_pty,
            parts.kubeconfig,
            "exec",
            "-t",
            "exec-tty",
            "--",
            "sh",
            "-c",
            "echo on-a-tty; echo err >&2; exit 4",
        )
        assert code == 4, output
        assert "on-a-tty" in output
        assert "err" in output  # a terminal shows stderr with stdout

        code, output = await asyncio.to_thread(
            kubectl_in_pty,
            parts.kubeconfig,
            "exec",
            "-it",
            "exec-tty",
            "--",
            "sh",
            typed=[b"echo typed-$((40 + 2))\r", b"stty size\r", b"exit 3\r"],
        )
        assert code == 3, output
        assert "typed-42" in output  # the shell ran what was typed, on a terminal
        assert "30 100" in output  # at kubectl's terminal size

        code, output = await asyncio.to_thread(
            kubectl_in_pty,
            parts.kubeconfig,
            "exec",
            "-it",
            "exec-tty",
            "--",
            "sh",
            typed=[b"echo over-$((1 + 1))-spdy\r", b"stty size\r", b"exit 5\r"],
            spdy=True,
        )
        assert code == 5, output
        assert "over-2-spdy" in output
        assert "30 100" in output


class EchoServer:
    """A server "in the container": on the loopback (the containers use the host network),
    answering each line with `echo: <line>`."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rwb") as stream:
            for line in stream:
                stream.write(b"echo: " + line)
                stream.flush()


def forward_and_talk(kubeconfig: Path, pod: str, port: int, spdy: bool) -> list[str]:
    """`kubectl port-forward POD :PORT`, then two connections through it, a line each."""
    environment = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false" if spdy else "true"}
    process = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "port-forward", pod, f":{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # Forwarding from 127.0.0.1:NNNN -> PORT
        assert "Forwarding from" in line, line + (process.stderr.read() if process.stderr else "")
        local = int(line.split("->")[0].rsplit(":", 1)[1])
        answers = []
        for text in ("first", "second"):
            with socket.create_connection(("127.0.0.1", local), timeout=30) as connection:
                connection.sendall(text.encode() + b"\n")
                answers.append(connection.makefile("rb").readline().decode().strip())
        return answers
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_kubectl_port_forward_reaches_a_server_in_the_container(
    parts: WatcherParts,
) -> None:
    settings, _, _ = await exec_ready(parts, "exec-forward")
    server = EchoServer()
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        for spdy in (False, True):  # kubectl's WebSocket tunnel, and SPDY as the API server
            answers = await asyncio.to_thread(
                forward_and_talk, parts.kubeconfig, "exec-forward", server.port, spdy
            )
            assert answers == ["echo: first", "echo: second"]


async def test_kubectl_attach_follows_the_container_to_its_end(parts: WatcherParts) -> None:
    settings, _, _ = await exec_ready(
        parts,
        "exec-attach",
        **{"emulator.orca.research/run-seconds": "4", "emulator.orca.research/exit-code": "4"},
    )
    async with running_watcher(settings, parts.temporal) as watcher:
        await eventually(watcher.watcher.ready)
        attached = await asyncio.to_thread(kubectl, parts.kubeconfig, "attach", "exec-attach")
        assert attached.returncode == 4, attached.stderr  # the container's own exit code
        assert "command terminated with exit code 4" in attached.stderr
