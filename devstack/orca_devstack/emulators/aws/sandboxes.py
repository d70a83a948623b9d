"""Each emulated container's throwaway sandbox: a scratch directory on the host where
`kubectl exec` runs real subprocesses.

On an instance an exec is `docker exec` in the container (``orca.exec_command``); in the
emulator the same SSM command runs the command's arguments as a subprocess whose working
directory (and ``HOME``) is the container's sandbox, so ``kubectl exec pod -- ls``,
``-- sh -c 'exit 3'`` and ``-i`` with stdin behave as on an instance: real output, real exit
codes. A sandbox is made when the pod's containers start and removed when they end, when the
instance goes away, or when the emulator is reset. It is a scratch directory, not an isolation
boundary: commands run as the emulator's user.

A container's EBS volume mounts (``containers.volume_mounts``) are links inside its sandbox:
``<sandbox>/<container>/<mount path without its leading slash>`` points at the volume's host
directory (plus the mount's subPath), so a command writing ``data/file`` with the mount path
``/data`` writes into the volume, which outlives the sandbox (removing a sandbox removes the
links, never the volume's content).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orca.exec_command import CONTAINER_NOT_RUNNING_EXIT_CODE, OUTPUT_LIMIT_CHARS, ExecRequest

COMMAND_NOT_FOUND_EXIT_CODE = 127
TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class ExecOutcome:
    exit_code: int
    stdout: str
    stderr: str


def make_sandbox(pod_uid: str, containers: list[str]) -> Path:
    """A fresh directory with one subdirectory per container."""
    root = Path(tempfile.mkdtemp(prefix=f"orca-sandbox-{pod_uid[:8]}-"))
    for name in containers:
        (root / name).mkdir()
    return root


def link_volume(container_dir: Path, target: str, volume_dir: Path, sub_path: str = "") -> Path:
    """Make ``target`` (a container path) inside the container's sandbox a link to the volume's
    directory (``sub_path`` under it, created as Docker creates a bind mount's source)."""
    source = volume_dir / sub_path if sub_path else volume_dir
    source.mkdir(parents=True, exist_ok=True)
    link = container_dir / target.lstrip("/")
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        else:
            link.unlink()
    link.symlink_to(source, target_is_directory=True)
    return link


def remove_sandbox(root: Path | None) -> None:
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def not_running(container: str) -> ExecOutcome:
    """What the exec script answers when the container is not running."""
    return ExecOutcome(
        CONTAINER_NOT_RUNNING_EXIT_CODE, "", f"container {container} is not running\n"
    )


def run_in_sandbox(directory: Path, request: ExecRequest) -> ExecOutcome:
    """Run the request's command in `directory`; output as SSM returns it (text, cut)."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(directory),
        "HOSTNAME": request.container,
    }
    try:
        done = subprocess.run(
            request.command,
            cwd=directory,
            env=environment,
            input=request.stdin_bytes(),
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        return ExecOutcome(
            COMMAND_NOT_FOUND_EXIT_CODE,
            "",
            f'OCI runtime exec failed: exec: "{request.command[0]}": executable file not found '
            "in $PATH\n",
        )
    except subprocess.TimeoutExpired:
        return ExecOutcome(124, "", f"the command ran over {TIMEOUT_SECONDS:.0f} s\n")
    code = done.returncode if done.returncode >= 0 else 128 - done.returncode
    return ExecOutcome(
        code,
        done.stdout.decode(errors="replace")[:OUTPUT_LIMIT_CHARS],
        done.stderr.decode(errors="replace")[:OUTPUT_LIMIT_CHARS],
    )
