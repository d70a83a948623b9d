"""`orca dev` plumbing: clear errors for taken ports, children stopped with their groups, deaths
reported. (The whole stack starting and stopping is tests/e2e/test_dev_stack.py.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orca.cli.main import main
from orca.settings import load_settings
from orca_devstack.cli import PORT_OPTIONS
from orca_devstack.processes import ChildProcess, StackError, ensure_port_free, free_port
from orca_devstack.stack import DevStack, DevStackOptions, render_dev_config


def test_taken_port_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(StackError) as error:
            ensure_port_free("127.0.0.1", port, "Temporal gRPC", "--temporal-port")
    message = str(error.value)
    assert f"port {port} on 127.0.0.1 (Temporal gRPC) is already in use" in message
    assert "--temporal-port" in message


def test_orca_dev_with_a_taken_port_exits_1_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(["dev", "--headless", "--state-dir", str(tmp_path), "--kube-port", str(port)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 (Kubernetes API emulator) is already in use" in err
    assert "Traceback" not in err


def test_two_services_on_one_port_are_refused(tmp_path: Path) -> None:
    port = free_port()
    options = DevStackOptions(state_dir=tmp_path, aws_port=port, kube_port=port)
    with pytest.raises(StackError, match=f"both set to port {port}"):
        DevStack(options, say=lambda _: None).check_ports()


def test_stopping_a_child_stops_its_whole_process_group(tmp_path: Path) -> None:
    # The child starts a grandchild that ignores nothing special; both must be gone after stop().
    script = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
        "open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(300)"
    )
    pid_file = tmp_path / "grandchild.pid"
    child = ChildProcess(
        "sleeper",
        [sys.executable, "-c", script, str(pid_file)],
        tmp_path / "sleeper.log",
        ready=pid_file.exists,
        ready_timeout=30,
    )
    child.start()
    child.wait_ready()
    grandchild = int(pid_file.read_text())
    child.stop(grace_seconds=5)
    assert child.exit_code() is not None
    for _ in range(100):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild outlived its group")


def test_a_second_interrupt_while_stopping_still_leaves_no_child(tmp_path: Path) -> None:
    """A program without `orca dev`'s handlers (the burst benchmark) hit by Ctrl-C twice: the
    second KeyboardInterrupt lands while stop() waits out a child's grace; every child is
    killed all the same."""
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    stack = DevStack(DevStackOptions(state_dir=tmp_path), say=lambda _: None)
    for name in ("first", "stubborn"):
        code = "import time; time.sleep(300)" if name == "first" else stubborn
        child = ChildProcess(
            name, [sys.executable, "-c", code], tmp_path / f"{name}.log", ready=lambda: True
        )
        child.start()
        stack.children.append(child)
    time.sleep(0.5)  # the stubborn child has set its handler

    def second_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, second_interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)  # stop() waits 10 s for the stubborn one
    try:
        with pytest.raises(KeyboardInterrupt):
            stack.stop()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    for child in stack.children:
        assert child.process is not None
        assert child.process.wait(timeout=5) is not None, f"{child.name} outlived the stack"


def test_a_child_that_dies_while_starting_is_reported_with_its_output(tmp_path: Path) -> None:
    child = ChildProcess(
        "broken",
        [sys.executable, "-c", "import sys; print('cannot bind'); sys.exit(3)"],
        tmp_path / "broken.log",
        ready=lambda: False,
        ready_timeout=30,
    )
    child.start()
    with pytest.raises(StackError) as error:
        child.wait_ready()
    assert "broken exited with code 3" in str(error.value)
    assert "cannot bind" in str(error.value)


def test_supervisor_reports_a_dead_server_and_stops(tmp_path: Path) -> None:
    said: list[str] = []
    stack = DevStack(DevStackOptions(state_dir=tmp_path), say=said.append)
    child = ChildProcess(
        "temporal",
        [sys.executable, "-c", "import sys; print('out of disk'); sys.exit(4)"],
        tmp_path / "t.log",
        ready=lambda: True,
    )
    child.start()
    stack.children.append(child)
    child.process.wait(timeout=30)  # type: ignore[union-attr]
    assert stack.supervise() == 1
    report = "\n".join(said)
    assert "temporal exited with code 4" in report
    assert "out of disk" in report
    assert "stopping the stack" in report


def test_generated_dev_config_is_a_valid_orca_config(tmp_path: Path) -> None:
    defaults = {
        "subnet_ids": {"us-west-2a": "subnet-a", "us-west-2b": "subnet-b"},
        "security_group_id": "sg-1",
        "interruption_queue_url": "http://127.0.0.1:5000/123456789012/orca-interruptions",
    }
    config = render_dev_config(
        DevStackOptions(), "http://127.0.0.1:5000", tmp_path / "kubeconfig", defaults
    )
    path = tmp_path / "config.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path)
    assert settings.aws.subnets == ("subnet-a", "subnet-b")
    assert settings.aws.endpoint == "http://127.0.0.1:5000"
    assert settings.kubernetes.kubeconfig == tmp_path / "kubeconfig"
    assert json.loads(json.dumps(config))  # serialisable as the endpoints file is


def test_sigterm_to_orca_dev_during_start_leaves_nothing(tmp_path: Path) -> None:
    ports = [free_port() for _ in PORT_OPTIONS]
    names = [option for option, _ in PORT_OPTIONS]
    command = [sys.executable, "-m", "orca.cli.main", "dev", "--state-dir", str(tmp_path)]
    for name, port in zip(names, ports, strict=True):
        command += [name, str(port)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    log = tmp_path / "logs" / "temporal.log"
    for _ in range(200):
        if log.exists():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    # Whatever had started is gone: nothing listens on the Temporal port any more.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", ports[0])) != 0


def test_the_stack_finds_every_component_outside_a_checkout(tmp_path: Path) -> None:
    """`orca dev` run from anywhere (its console script, not the repository root) must still
    find the worker and the watcher under their installed names."""
    probe = (
        "from orca_devstack.stack import module_available as m; "
        "print([m(n) for n in ('orca.worker.main', 'orca.watcher.main', "
        "'orca_devstack.emulators.aws.__main__', 'orca_devstack.emulators.kube.__main__')])"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert found.stdout.strip() == "[True, True, True, True]", found.stderr
    source = Path(__file__).resolve().parents[2] / "devstack" / "orca_devstack" / "stack.py"
    assert 'module_available(f"orca.{name}.main")' in source.read_text()
