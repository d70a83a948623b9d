"""`kubectl exec` on an instance: the SSM Run Command that runs one command in a pod's container.

The kubelet endpoint runs a non-interactive exec as one `AWS-RunShellScript` command, commented
`orca exec <namespace>/<name>`, whose script carries the request as one JSON document
(`ExecRequest`) in an `ORCA_EXEC_JSON` heredoc. The script finds the container by the labels the
runner gives it (`orca.research/pod-uid`, `orca.research/container`), decodes the whole stdin from
base64 and runs `docker exec` (nerdctl where docker is absent) with the command's arguments read
from the JSON with `jq`, so no argument is ever re-quoted into shell text. The script's exit code
is the command's (`ResponseCode`); 126 when the container is not running. Its stdout and stderr
are the command's (`StandardOutputContent`, `StandardErrorContent`: SSM keeps the first 24,000
characters of each inline).

Defined once here: the watcher renders the script, the AWS emulator reads the same JSON back and
runs the command in the container's sandbox.
"""

from __future__ import annotations

import base64
import re
import shlex

from pydantic import BaseModel, ConfigDict, Field

from orca.instance_contract import LABEL_CONTAINER, LABEL_POD_UID

EXEC_VERB = "exec"
EXEC_JSON_DELIMITER = "ORCA_EXEC_JSON"
CONTAINER_NOT_RUNNING_EXIT_CODE = 126
OUTPUT_LIMIT_CHARS = 24000
"""What GetCommandInvocation returns of each of stdout and stderr."""
STDIN_LIMIT_BYTES = 48 * 1024
"""The stdin a Run Command can carry: SendCommand's parameters are capped near 64 KiB, the stdin
goes in as base64 (4/3 larger)."""

_COMMENT = re.compile(r"^orca exec (?P<namespace>[^/\s]+)/(?P<name>\S+)")
_HEREDOC = re.compile(
    rf"<<-?\s*'{EXEC_JSON_DELIMITER}'[^\n]*\n(?P<body>.*?)\n{EXEC_JSON_DELIMITER}[ \t]*(?:\n|$)",
    re.DOTALL,
)


class ExecRequest(BaseModel):
    """One command to run in one container of a pod."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    pod_uid: str = Field(alias="podUID")
    container: str
    command: list[str]
    stdin: str = ""
    """The whole stdin, base64."""
    tty: bool = False
    """A TTY was asked for: Run Command has none to give, so the command runs without one and
    its stderr is sent on stdout, as a terminal would show it."""
    attach: bool = False
    """`kubectl attach`: no command; the session attaches to the container's main process."""

    def stdin_bytes(self) -> bytes:
        return base64.b64decode(self.stdin) if self.stdin else b""


def exec_comment(namespace: str, name: str) -> str:
    return f"orca {EXEC_VERB} {namespace}/{name}"[:100]


def parse_exec_comment(comment: str) -> tuple[str, str] | None:
    """(namespace, name) of an exec command's comment, else None."""
    match = _COMMENT.match(comment)
    return None if match is None else (match["namespace"], match["name"])


def render_exec_script(request: ExecRequest, *, interactive: bool = False) -> str:
    """The `commands` of the exec's AWS-RunShellScript document; `interactive`: the script of an
    `AWS-StartInteractiveCommand` session instead, where the session's terminal is the command's
    (`docker exec -it`, no stdin from the request)."""
    document = request.model_dump_json(by_alias=True)
    return "\n".join(
        [
            "#!/bin/bash",
            "set -uo pipefail",
            f"ORCA_EXEC=$(cat <<'{EXEC_JSON_DELIMITER}'",
            document,
            EXEC_JSON_DELIMITER,
            ")",
            "ORCA_RUNTIME=docker; command -v docker >/dev/null 2>&1 || ORCA_RUNTIME=nerdctl",
            'uid=$(jq -r .podUID <<<"$ORCA_EXEC")',
            'container=$(jq -r .container <<<"$ORCA_EXEC")',
            'id=$("$ORCA_RUNTIME" ps -q'
            f' --filter "label={LABEL_POD_UID}=$uid"'
            f' --filter "label={LABEL_CONTAINER}=$container" | head -n 1)',
            'if [ -z "$id" ]; then',
            '  echo "container $container is not running" >&2',
            f"  exit {CONTAINER_NOT_RUNNING_EXIT_CODE}",
            "fi",
            *(
                ()
                if interactive and request.attach
                else (
                    "readarray -d '' argv < <(jq -j '.command[] | (. + \"\\u0000\")'"
                    ' <<<"$ORCA_EXEC")',
                )
            ),
            'exec "$ORCA_RUNTIME" attach --sig-proxy=false "$id"'
            if interactive and request.attach
            else 'exec "$ORCA_RUNTIME" exec -it "$id" "${argv[@]}"'
            if interactive
            else 'jq -r .stdin <<<"$ORCA_EXEC" | base64 -d |'
            ' "$ORCA_RUNTIME" exec -i "$id" "${argv[@]}"',
            "",
        ]
    )


def read_exec_request(script: str) -> ExecRequest | None:
    """The request an exec script carries, or None when it carries none."""
    match = _HEREDOC.search(script)
    if match is None:
        return None
    try:
        return ExecRequest.model_validate_json(match["body"])
    except ValueError:
        return None


def render_session_command(request: ExecRequest) -> str:
    """The `command` parameter of an `AWS-StartInteractiveCommand` session for `request`: the
    interactive exec script, run by bash."""
    return "/bin/bash -c " + shlex.quote(render_exec_script(request, interactive=True))


def read_session_request(command: str) -> ExecRequest | None:
    """The request a session's `command` carries, or None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    return read_exec_request(words[-1]) if words else None
