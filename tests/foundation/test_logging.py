"""One logging setup: structlog and the stdlib loggers of libraries come out as the same JSON."""

from __future__ import annotations

import io
import json
import logging

import structlog

from orca.logging import bind_work_context, configure_logging, get_logger
from orca.settings import LogFormat, LoggingSettings, LogLevel


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_and_library_loggers_share_the_json_format_and_context() -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format=LogFormat.JSON), stream=stream, component="worker")
    with bind_work_context(pod="ml/train-1", workflow_id="pod/ml/train-1/u1", instance_id=None):
        get_logger("orca.test").info("launched instance", instance_id="i-123")
        logging.getLogger("temporalio.worker").warning("poller slow")
        logging.getLogger("botocore.retryhandler").warning("retrying RunInstances")
    get_logger("orca.test").info("outside")
    records = lines(stream)
    assert [r["event"] for r in records] == [
        "launched instance",
        "poller slow",
        "retrying RunInstances",
        "outside",
    ]
    for record in records[:3]:
        assert record["pod"] == "ml/train-1"
        assert record["workflow_id"] == "pod/ml/train-1/u1"
        assert record["component"] == "worker"
        assert "timestamp" in record
    assert "instance_id" not in records[1]  # None values are not bound
    assert records[0]["instance_id"] == "i-123"
    assert "pod" not in records[3]
    assert records[2]["logger"] == "botocore.retryhandler"


def test_level_from_settings_filters_and_libraries_stay_quiet_below_warning() -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format=LogFormat.JSON, level=LogLevel.INFO), stream=stream)
    get_logger("orca.test").debug("hidden")
    logging.getLogger("kubernetes.client").info("chatty library line")
    logging.getLogger("urllib3.connectionpool").warning("kept")
    assert [r["event"] for r in lines(stream)] == ["kept"]


def test_console_format_is_not_json() -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format=LogFormat.CONSOLE), stream=stream)
    get_logger("orca.test").info("hello", pod="a/b")
    text = stream.getvalue()
    assert "hello" in text
    assert "pod" in text
    assert not text.lstrip().startswith("{")


def teardown_module() -> None:
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
