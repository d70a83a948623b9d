"""One logging setup: structlog and the stdlib loggers of libraries come out as the same JSON."""

from __future__ import annotations

import base64
import io
import json
import logging

import structlog

from orca.logging import (
    REDACTED,
    bind_work_context,
    configure_logging,
    get_logger,
    redact_text,
    redacting,
)
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


def test_shapes_that_carry_secrets_are_redacted_whatever_the_value() -> None:
    body = b'{"Name": "/orca/pods/u/a", "Value": "s3\\"cr,et}", "Type": "SecureString"}'
    line = f"Making request with params: {{'body': {body!r}, 'url': 'http://x/'}}"
    assert "s3" not in redact_text(line)
    assert "cr,et" not in redact_text(line)
    assert '"Type": "SecureString"' in redact_text(line)  # the rest of the body stays
    headers = "{'X-Amz-Security-Token': b'tok123', 'Authorization': b'AWS4-HMAC-SHA256 Sig'}"
    assert "tok123" not in redact_text(headers)
    assert "Sig" not in redact_text(headers)
    canonical = "POST\n/\nhost:x\nx-amz-security-token:tok123\nx-amz-target:PutParameter"
    assert redact_text(canonical).splitlines()[3] == f"x-amz-security-token:{REDACTED}"
    assert "abc.def" not in redact_text("Authorization: Bearer abc.def")
    assert "abc.def" not in redact_text("header Bearer abc.def here")
    url = "https://b.s3.amazonaws.com/k?X-Amz-Security-Token=tok123&X-Amz-Signature=f00"
    assert "tok123" not in redact_text(url)
    sts = (
        "Response body:\nb'<AssumeRoleResponse><Credentials><AccessKeyId>ASIAX</AccessKeyId>"
        "<SecretAccessKey>wJal/rXU+tnF</SecretAccessKey><SessionToken>IQoJb3Jp==</SessionToken>"
        "</Credentials></AssumeRoleResponse>'"
    )
    assert "wJal" not in redact_text(sts)
    assert "IQoJ" not in redact_text(sts)
    assert "<AccessKeyId>ASIAX</AccessKeyId>" in redact_text(sts)
    assert "f00" not in redact_text(url)
    kube = 'response body: {"kind":"Secret","data":{"token":"c2VjcmV0"},"type":"Opaque"}'
    assert "c2VjcmV0" not in redact_text(kube)
    assert '"type":"Opaque"' in redact_text(kube)
    config_map = '{"kind":"ConfigMap","data":{"mode":"fast"}}'
    assert redact_text(config_map) == config_map


def test_held_values_leave_every_line_in_every_encoding_until_released() -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format=LogFormat.JSON), stream=stream)
    value = 'pa"ss\nword-42'
    encoded = base64.b64encode(value.encode()).decode()
    with redacting([value, "ab"]):
        get_logger("orca.test").info("structured", detail={"nested": [value]})
        logging.getLogger("botocore.endpoint").warning("params %r", {"body": value.encode()})
        logging.getLogger("kubernetes.client").warning("json %s", '{"x": "pa\\"ss"}' + value)
        logging.getLogger("urllib3").warning("b64 %s", encoded)
        logging.getLogger("orca.test").warning("short values stay: ab")
    logging.getLogger("orca.test").warning("after %s", value)
    text = stream.getvalue()
    records = lines(stream)
    assert len(records) == 6
    for record in records[:4]:
        assert REDACTED in json.dumps(record)
    assert 'pa\\"ss' not in text.split("after")[0]
    assert encoded not in text
    assert records[4]["event"] == "short values stay: ab"
    assert value in records[5]["event"]  # released: no longer scrubbed (nothing holds it)


def test_sensitive_fields_of_structured_lines_are_replaced() -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format=LogFormat.JSON), stream=stream)
    get_logger("orca.test").info("call", Authorization="AWS4 x", password="p", instance_id="i-1")
    (record,) = lines(stream)
    assert record["Authorization"] == REDACTED
    assert record["password"] == REDACTED
    assert record["instance_id"] == "i-1"


def test_tracebacks_show_no_frame_locals() -> None:
    for fmt in (LogFormat.JSON, LogFormat.CONSOLE):
        stream = io.StringIO()
        configure_logging(LoggingSettings(format=fmt), stream=stream)

        def put_parameter(value: str) -> None:
            raise RuntimeError("AccessDenied")

        secret = "-".join(("local", "secret", "value"))
        try:
            put_parameter(secret)
        except RuntimeError:
            logging.getLogger("temporalio.activity").exception("activity failed")
            get_logger("orca.test").exception("activity failed")
        assert "AccessDenied" in stream.getvalue()
        assert "local-secret-value" not in stream.getvalue()


def teardown_module() -> None:
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
