"""Child processes of `orca dev`: start, wait until they answer, notice deaths, stop them all.

Each child runs in its own process group (`start_new_session`), so stopping it also stops anything
it spawned (the Temporal CLI starts the server and UI in one process, the worker may start threads
but never processes). Stopping sends SIGTERM to the group, waits, then SIGKILLs what is left: no
child outlives `orca dev`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StackError(Exception):
    """The embedded stack cannot start or keep running; the message says which part and why."""


def ensure_port_free(host: str, port: int, what: str, option: str) -> None:
    """Fail early and clearly when a configured port is taken, before any child starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise StackError(
                f"port {port} on {host} ({what}) is already in use; pass {option} to choose "
                "another, or stop the process that holds it"
            ) from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def tcp_answers(host: str, port: int) -> Callable[[], bool]:
    def probe() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((host, port)) == 0

    return probe


def http_answers(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(200 <= response.status < 500)
        except urllib.error.HTTPError as error:
            return error.code < 500
        except (OSError, ValueError):
            return False

    return probe


@dataclass
class ChildProcess:
    """One supervised child: its command, where its output goes, and how to tell it is ready."""

    name: str
    command: Sequence[str]
    log_path: Path
    ready: Callable[[], bool]
    env: dict[str, str] | None = None
    ready_timeout: float = 60.0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                list(self.command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise StackError(f"{self.name}: cannot run {self.command[0]!r}: not found") from None
        finally:
            log.close()

    def wait_ready(self, on_progress: Callable[[float], None] | None = None) -> None:
        deadline = time.monotonic() + self.ready_timeout
        started = time.monotonic()
        while time.monotonic() < deadline:
            if self.exit_code() is not None:
                raise StackError(
                    f"{self.name} exited with code {self.exit_code()} while starting; "
                    f"last lines of {self.log_path}:\n{self.tail()}"
                )
            if self.ready():
                return
            if on_progress is not None:
                on_progress(time.monotonic() - started)
            time.sleep(0.2)
        raise StackError(
            f"{self.name} did not answer within {self.ready_timeout:.0f} s; "
            f"last lines of {self.log_path}:\n{self.tail()}"
        )

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def signal_group(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM the child's process group, then SIGKILL whatever is left after the grace."""
        if self.process is None:
            return
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_seconds)
        # Anything the child spawned into its group goes too, even if the child itself exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
