"""ORCA's one logging setup.

structlog renders every line, including the stdlib loggers of temporalio, botocore, kubernetes and
urllib3 (routed through `structlog.stdlib.ProcessorFormatter`), so a process prints one format:
JSON lines in production, coloured console lines on a TTY. Context that identifies a unit of work
(pod, workflow ID, instance ID) is bound with `bind_work_context` and appears on every line logged
inside it, including lines from libraries. Temporal's replay-aware `workflow.logger` and
`activity.logger` add their own `temporal_workflow` / `temporal_activity` details, which are kept.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

from orca.settings import LogFormat, LoggingSettings, LogLevel

_LIBRARY_LOGGERS = ("temporalio", "botocore", "boto3", "kubernetes", "urllib3", "werkzeug")
_LEVELS = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}


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
            structlog.processors.dict_tracebacks
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=output.isatty())
        exception_processors = []

    level = _LEVELS[settings.level]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_processors,
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
