"""The exec Run Command's script: rendered once, read back by the emulator, checked by bash."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orca.exec_command import (
    ExecRequest,
    exec_comment,
    parse_exec_comment,
    read_exec_request,
    read_session_request,
    render_exec_script,
    render_session_command,
)


def request(**overrides: object) -> ExecRequest:
    fields: dict[str, object] = {
        "pod_uid": "0b6f",
        "container": "main",
        "command": ["sh", "-c", "echo 'quoted' \"$HOME\"; exit 3"],
        "stdin": "aGVsbG8K",
    }
    return ExecRequest.model_validate({**fields, **overrides})


def test_the_script_carries_the_request_unchanged() -> None:
    original = request()
    assert read_exec_request(render_exec_script(original)) == original
    assert original.stdin_bytes() == b"hello\n"


def test_a_script_without_a_request_reads_as_none() -> None:
    assert read_exec_request("#!/bin/bash\necho hi\n") is None


def test_no_argument_is_spliced_into_shell_text() -> None:
    script = render_exec_script(request(command=["$(rm -rf /)", "`id`"]))
    executable = [line for line in script.splitlines() if not line.startswith("{")]
    assert not any("rm -rf" in line or "`id`" in line for line in executable)


def test_comment_round_trip() -> None:
    assert exec_comment("ml", "train-0") == "orca exec ml/train-0"
    assert parse_exec_comment("orca exec ml/train-0") == ("ml", "train-0")
    assert parse_exec_comment("orca start ml/train-0") is None


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_script_is_valid_bash() -> None:
    checked = subprocess.run(
        ["bash", "-n"], input=render_exec_script(request()), text=True, capture_output=True
    )
    assert checked.returncode == 0, checked.stderr


FAKE_DOCKER = """#!/bin/bash
# `docker ps` finds the container when its labels match; `docker exec -i ID ARGV...` runs ARGV.
case "$1" in
  ps) [[ "$*" == *"orca.research/pod-uid=0b6f"* && "$*" == *"container=main"* ]] && echo c0ffee ;;
  exec) [ "$2" = -i ] && [ "$3" = c0ffee ] || exit 99; shift 3; exec "$@" ;;
esac
"""


@pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("bash") is None, reason="needs bash and jq"
)
@pytest.mark.parametrize(
    ("argv", "stdin", "code", "stdout"),
    [
        (["sh", "-c", 'cat; echo "$0 $1"; exit 3', "a b", "$(c)"], "in\n", 3, "in\na b $(c)\n"),
        (["printf", "%s|", "x y", "'z'"], "", 0, "x y|'z'|"),
    ],
)
def test_the_script_runs_the_arguments_exactly_with_the_stdin(
    tmp_path: Path, argv: list[str], stdin: str, code: int, stdout: str
) -> None:
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    encoded = base64.b64encode(stdin.encode()).decode()
    script = render_exec_script(request(command=argv, stdin=encoded))
    done = subprocess.run(
        ["bash"],
        input=script,
        text=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        timeout=30,
    )
    assert done.returncode == code, done.stderr
    assert done.stdout == stdout


@pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("bash") is None, reason="needs bash and jq"
)
def test_the_script_says_when_the_container_is_not_running(tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    script = render_exec_script(request(container="other"))
    done = subprocess.run(
        ["bash"],
        input=script,
        text=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        timeout=30,
    )
    assert done.returncode == 126
    assert "container other is not running" in done.stderr


SHELLCHECK = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")


@pytest.mark.skipif(not Path(SHELLCHECK).is_file(), reason="shellcheck is not installed")
@pytest.mark.parametrize("interactive", [False, True])
@pytest.mark.parametrize("attach", [False, True])
def test_the_scripts_pass_shellcheck(tmp_path: Path, interactive: bool, attach: bool) -> None:
    script = tmp_path / "exec.sh"
    script.write_text(render_exec_script(request(attach=attach), interactive=interactive))
    checked = subprocess.run(
        [SHELLCHECK, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout


def test_a_session_command_carries_the_request_through_its_quoting() -> None:
    original = request(command=["sh", "-c", "echo 'it''s' \"$HOME\""], tty=True)
    command = render_session_command(original)
    assert command.startswith("/bin/bash -c ")
    assert read_session_request(command) == original
    assert read_session_request("/bin/bash -c 'unterminated") is None
