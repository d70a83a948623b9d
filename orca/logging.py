"""ORCA's one logging setup.

structlog renders every line, including the stdlib loggers of temporalio, botocore, kubernetes and
urllib3 (routed through `structlog.stdlib.ProcessorFormatter`), so a process prints one format:
JSON lines in production, coloured console lines on a TTY. Context that identifies a unit of work
(pod, workflow ID, instance ID) is bound with `bind_work_context` and appears on every line logged
inside it, including lines from libraries. Temporal's replay-aware `workflow.logger` and
`activity.logger` add their own `temporal_workflow` / `temporal_activity` details, which are kept.

Redaction. No secret value may reach a log line, at any level, from any library (with
`logging.logAWSCalls: true` botocore prints every request body, including PutParameter's
`Value`). Two layers, both inside this setup so no caller can forget them:
- known values: an activity that holds secret values wraps the calls that carry them in
  `redacting(values)`; while any such block is open, every line of the process is scrubbed of
  those values and of their escaped forms (JSON, Python repr, both nested, base64). Values shorter
  than `MIN_REDACTED_LENGTH` are left to the second layer (scrubbing "ab" everywhere would
  destroy every line and hide nothing). `orca.secret_values` keeps this cheap with thousands of
  values held (a trie regex, compiled lazily in two tiers).
- shapes: whatever the values, these never print: a `Value` / `SecretString` field of a JSON or
  dict body, `Authorization` / `X-Amz-Security-Token` / token / password / secret-key fields and
  header lines, `Bearer`/`Basic` credentials, presigned-URL signatures, and the `data` of any
  Kubernetes Secret body (the kubernetes client logs response bodies at DEBUG).
Both run on the event dict before rendering (`redact_secrets`, the last processor) and the
known values once more on the rendered line (escapes the renderer itself adds). Tracebacks are
rendered without frame locals, which would otherwise print the arguments of the failing call.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

from orca.secret_values import REDACTED, SecretValues
from orca.settings import LogFormat, LoggingSettings, LogLevel

_LIBRARY_LOGGERS = ("temporalio", "botocore", "boto3", "kubernetes", "urllib3", "werkzeug")
_LEVELS = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}

_SECRET_KEYS = (
    r"Value|SecretString|SecretBinary|"
    r"(?i:authorization|proxy-authorization|x-amz-security-token|secret_?access_?key|"
    r"aws_secret_access_key|session_?token|aws_session_token|password|passwd|token|"
    r"bearer_?token|client_?secret|private_?key|api_?key)"
)
_SENSITIVE_FIELD_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-amz-security-token",
        "secret_access_key",
        "secretaccesskey",
        "aws_secret_access_key",
        "session_token",
        "sessiontoken",
        "aws_session_token",
        "password",
        "token",
        "bearer_token",
        "client_secret",
        "private_key",
        "api_key",
        "secretstring",
    }
)
"""Event-dict keys (any case) whose whole value is replaced."""

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Value": "…" / 'Value': b'…' in JSON bodies and Python reprs of request dicts. The value
    # ends at a quote followed by , } or ]: correct for JSON-in-repr escapes too.
    (
        re.compile(
            rf"""(?P<kq>["'])(?P<key>{_SECRET_KEYS})(?P=kq)(?P<sep>\s*:\s*b?)(?P<q>["'])"""
            r"""(?P<value>.*?)(?P=q)(?=\s*[,}\]])""",
            re.DOTALL,
        ),
        rf"\g<kq>\g<key>\g<kq>\g<sep>\g<q>{REDACTED}\g<q>",
    ),
    # Header lines of a canonical request or a raw HTTP dump.
    (
        re.compile(
            r"^(?P<key>(?:proxy-)?authorization|x-amz-security-token)(?P<sep>\s*[:=]\s*).*$",
            re.IGNORECASE | re.MULTILINE,
        ),
        rf"\g<key>\g<sep>{REDACTED}",
    ),
    (re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\g<scheme> {REDACTED}"),
    (
        re.compile(
            r"(?P<key>X-Amz-(?:Security-Token|Signature|Credential)=)[^&\s'\"]+", re.IGNORECASE
        ),
        rf"\g<key>{REDACTED}",
    ),
    (re.compile(r"\bSignature=[0-9a-f]{16,}"), f"Signature={REDACTED}"),
)
_KUBE_SECRET_KIND = re.compile(r"""["']kind["']\s*:\s*["']Secret(?:List)?["']""")
_KUBE_SECRET_DATA = re.compile(
    r"""(?P<key>["'](?:data|stringData)["']\s*:\s*)\{[^{}]*\}""", re.DOTALL
)


SECRET_VALUES = SecretValues()


@contextmanager
def redacting(values: Iterable[str]) -> Iterator[None]:
    """Keep `values` out of every log line of the process while the block runs."""
    held = SECRET_VALUES.hold(values)
    try:
        yield
    finally:
        SECRET_VALUES.release(held)


def redact_text(text: str) -> str:
    """`text` without known secret values and without secret-bearing shapes (pure but for the
    values currently held)."""
    text = SECRET_VALUES.scrub(text)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    if _KUBE_SECRET_KIND.search(text):
        text = _KUBE_SECRET_DATA.sub(rf'\g<key>"{REDACTED}"', text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", errors="replace"))
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and key.lower() in _SENSITIVE_FIELD_NAMES
            else item
            if key == "exc_info"  # rendered later; the rendered line is scrubbed again
            else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact(item) for item in value)
    return value


def redact_secrets(
    logger: Any, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog processor: the event dict with secrets replaced by `REDACTED`."""
    redacted: structlog.typing.EventDict = _redact(event_dict)
    return redacted


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """The last guard, on the rendered line: known values in any escape the renderer added,
    and the shapes in tracebacks rendered after `redact_secrets`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _shared_processors() -> list[structlog.typing.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(allow=("temporal_workflow", "temporal_activity")),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    settings: LoggingSettings | None = None,
    *,
    stream: TextIO | None = None,
    component: str | None = None,
) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    settings = settings or LoggingSettings()
    output = stream or sys.stderr
    fmt = settings.format
    if fmt is LogFormat.AUTO:
        fmt = LogFormat.CONSOLE if output.isatty() else LogFormat.JSON
    renderer: structlog.typing.Processor
    if fmt is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
        exception_processors: list[structlog.typing.Processor] = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=output.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        exception_processors = []

    level = _LEVELS[settings.level]
    formatter = _RedactingFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_processors,
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    library_level = logging.DEBUG if settings.log_aws_calls else max(level, logging.WARNING)
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    # Temporal's own workflow/activity loggers carry useful lifecycle warnings; keep them at level.
    logging.getLogger("temporalio.workflow").setLevel(level)
    logging.getLogger("temporalio.activity").setLevel(level)
    # The audit trail (`orca.aws_audit`) is written whatever the level.
    logging.getLogger("orca.audit").setLevel(logging.INFO)

    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.format_exc_info
            if fmt is not LogFormat.JSON
            else structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    if component:
        structlog.contextvars.bind_contextvars(component=component)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


@contextmanager
def bind_work_context(**context: Any) -> Iterator[None]:
    """Bind pod / workflow_id / instance_id (and the like) for the lines logged inside."""
    present = {key: value for key, value in context.items() if value is not None}
    with structlog.contextvars.bound_contextvars(**present):
        yield
