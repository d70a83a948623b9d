"""The `secrets-manager-env` annotation: parsed strictly, ARNs only (never values)."""

from __future__ import annotations

import pytest

from orca.launch_spec import (
    Annotation,
    InvalidPodSpec,
    SecretsManagerEnv,
    parse_secrets_manager_env,
    secret_region,
)

DB = "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf"
TOKEN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:team/tok-XyZ123"


def test_names_arns_and_json_keys_in_order() -> None:
    parsed = parse_secrets_manager_env(f"DB_PASSWORD={DB}#password, TOKEN = {TOKEN} ,")
    assert parsed == (
        SecretsManagerEnv(name="DB_PASSWORD", secret_arn=DB, json_key="password"),
        SecretsManagerEnv(name="TOKEN", secret_arn=TOKEN, json_key=None),
    )
    assert secret_region(DB) == "us-west-2"


def test_absent_or_empty_annotation_means_no_secrets() -> None:
    assert parse_secrets_manager_env(None) == ()
    assert parse_secrets_manager_env("") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (DB, "is not NAME=<secret ARN>[#key]"),
        (f"1BAD={DB}", "is not NAME=<secret ARN>[#key]"),
        (f"BAD-NAME={DB}", "is not NAME=<secret ARN>[#key]"),
        ("A=arn:aws:secretsmanager:us-west-2:123456789012:secret:db", "6-character suffix"),
        ("A=arn:aws:ssm:us-west-2:123456789012:parameter/x-AbCdEf", "is not a full secret ARN"),
        ("A=db-AbCdEf", "is not a full secret ARN"),
        (f"A={DB}#", "JSON key ''"),
        (f"A={DB}#a b", "JSON key 'a b'"),
        (f"A={DB}, A={TOKEN}", "env var A is named twice"),
    ],
)
def test_bad_values_name_the_annotation_and_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(InvalidPodSpec) as caught:
        parse_secrets_manager_env(text)
    assert caught.value.annotation == Annotation.SECRETS_MANAGER_ENV
    assert says in caught.value.reason_message
