"""Exit codes and the one error type commands raise to end with a message instead of a traceback."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # bad configuration, bad arguments, invalid pod manifest
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """Ends a command with `message` on stderr and `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
