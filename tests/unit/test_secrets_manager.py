"""Secrets Manager for pods: the files annotation, the session policy and the checks (pure), the
runner document, and the static runner fetching the secrets with the pod's credentials."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orca.instance_contract import RunnerDocument
from orca.launch_spec import (
    Annotation,
    InvalidPodSpec,
    LaunchSpec,
    SecretsManagerFile,
    parse_launch_spec,
    parse_secrets_manager_files,
)
from orca.secrets_manager import (
    NAMESPACE_TAG,
    check_described_secret,
    check_secret_account,
    check_secret_region,
    check_session_policy_size,
    credentials_parameter,
    pod_secret_arns,
    require_reader_role,
    session_name,
    session_policy,
)
from orca.settings import InstancesSettings, LimitsSettings
from tests.unit.pods import container, pod
from tests.unit.test_bootstrap_script import heredoc, render, run_line, runner

DB = "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf"
TOKEN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:team/tok-XyZ123"
OTHER_REGION = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
UID = "0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01"
BASH = shutil.which("bash")


def secret_pod(env: str | None = None, files: str | None = None) -> dict[str, Any]:
    annotations = {"orca.research/instance-type": "t3.small"}
    if env is not None:
        annotations[Annotation.SECRETS_MANAGER_ENV] = env
    if files is not None:
        annotations[Annotation.SECRETS_MANAGER_FILES] = files
    return pod(annotations=annotations, containers=[container("a"), container("b")])


def spec_of(manifest: dict[str, Any]) -> LaunchSpec:
    return parse_launch_spec(manifest, InstancesSettings(), LimitsSettings())


# -- the files annotation ---------------------------------------------------------------------
def test_files_are_absolute_paths_with_arns_and_keys() -> None:
    parsed = parse_secrets_manager_files(f"/etc/db/password={DB}#password, /run/tok = {TOKEN}")
    assert parsed == (
        SecretsManagerFile(path="/etc/db/password", secret_arn=DB, json_key="password"),
        SecretsManagerFile(path="/run/tok", secret_arn=TOKEN, json_key=None),
    )
    assert parse_secrets_manager_files(None) == parse_secrets_manager_files("") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"etc/db={DB}", "is not /path=<secret ARN>[#key]"),
        (f"/etc/../db={DB}", "no . or .. parts"),
        (f"/etc/db/={DB}", "is not /path=<secret ARN>[#key]"),
        (f"/etc/a:b={DB}", "is not /path=<secret ARN>[#key]"),
        (f"/={DB}", "is not /path=<secret ARN>[#key]"),
        ("/etc/db=db-AbCdEf", "is not a full secret ARN"),
        (f"/etc/db={DB}#a b", "JSON key 'a b'"),
        (f"/etc/db={DB}, /etc/db={TOKEN}", "file /etc/db is named twice"),
    ],
)
def test_bad_files_name_the_annotation_and_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(InvalidPodSpec) as caught:
        parse_secrets_manager_files(text)
    assert caught.value.annotation == Annotation.SECRETS_MANAGER_FILES
    assert says in caught.value.reason_message


# -- the grant --------------------------------------------------------------------------------
def test_the_session_policy_reads_exactly_the_named_secrets() -> None:
    spec = spec_of(secret_pod(env=f"A={DB}#user, B={DB}#password", files=f"/t={TOKEN}"))
    assert pod_secret_arns(spec) == (DB, TOKEN)
    policy = session_policy(pod_secret_arns(spec), "us-west-2")
    read, decrypt = policy["Statement"]
    assert (read["Effect"], read["Action"], read["Resource"]) == (
        "Allow",
        "secretsmanager:GetSecretValue",
        [DB, TOKEN],
    )
    assert "Condition" not in read
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com"}
    }
    assert len(policy["Statement"]) == 2
    assert session_policy([DB], "cn-north-1")["Statement"][1]["Condition"]["StringEquals"] == {
        "kms:ViaService": "secretsmanager.cn-north-1.amazonaws.com.cn"
    }
    assert len(session_name(UID * 3)) == 64


def test_without_the_reader_role_a_pod_naming_secrets_is_refused() -> None:
    assert require_reader_role(spec_of(secret_pod()), None) is None
    with pytest.raises(InvalidPodSpec) as caught:
        require_reader_role(spec_of(secret_pod(files=f"/t={TOKEN}")), None)
    assert caught.value.annotation == Annotation.SECRETS_MANAGER_FILES
    assert "aws.secretsReaderRoleARN" in caught.value.reason_message
    role = "arn:aws:iam::123456789012:role/orca-secrets-reader"
    assert require_reader_role(spec_of(secret_pod(env=f"A={DB}")), role) == role


def test_a_secret_of_another_region_is_refused() -> None:
    spec = spec_of(secret_pod(env=f"A={OTHER_REGION}"))
    with pytest.raises(InvalidPodSpec) as caught:
        check_secret_region(spec, "us-west-2")
    assert "is in eu-west-1; pods here run in us-west-2" in caught.value.reason_message
    check_secret_region(spec_of(secret_pod(env=f"A={DB}")), "us-west-2")


def test_more_secrets_than_one_session_policy_lists_are_refused() -> None:
    many = ", ".join(
        f"V{i}=arn:aws:secretsmanager:us-west-2:123456789012:secret:team/s{i:02}-AbCdEf"
        for i in range(30)
    )
    with pytest.raises(InvalidPodSpec) as caught:
        check_session_policy_size(spec_of(secret_pod(env=many)), "us-west-2")
    assert "the pod names 30 secrets" in caught.value.reason_message
    assert "AWS allows 2048" in caught.value.reason_message
    check_session_policy_size(spec_of(secret_pod(env=f"A={DB}, B={TOKEN}")), "us-west-2")


def test_a_secret_of_another_account_is_refused() -> None:
    foreign = "arn:aws:secretsmanager:us-west-2:999999999999:secret:db-AbCdEf"
    with pytest.raises(InvalidPodSpec) as caught:
        check_secret_account(spec_of(secret_pod(files=f"/f={foreign}")), "123456789012")
    assert caught.value.annotation == Annotation.SECRETS_MANAGER_FILES
    assert "is in account 999999999999" in caught.value.reason_message
    check_secret_account(spec_of(secret_pod(files=f"/f={DB}")), "123456789012")


@pytest.mark.parametrize(
    ("description", "says"),
    [
        (None, "does not exist"),
        ({"ARN": DB, "Tags": []}, "has no such tag"),
        (
            {"ARN": DB, "Tags": [{"Key": NAMESPACE_TAG, "Value": "other-team"}]},
            "belongs to namespace other-team; pods of namespace research may read only a secret "
            f"tagged {NAMESPACE_TAG}=research",
        ),
        (
            {"ARN": DB, "DeletedDate": "2026-12-01", "Tags": []},
            "scheduled for deletion",
        ),
    ],
)
def test_a_secret_the_namespace_does_not_own_is_refused(
    description: dict[str, Any] | None, says: str
) -> None:
    spec = spec_of(secret_pod(env=f"A={DB}"))
    with pytest.raises(InvalidPodSpec) as caught:
        check_described_secret(spec, DB, description)
    assert caught.value.annotation == Annotation.SECRETS_MANAGER_ENV
    assert DB in caught.value.reason_message
    assert says in caught.value.reason_message


def test_a_secret_the_namespace_owns_is_accepted() -> None:
    spec = spec_of(secret_pod(env=f"A={DB}"))
    owned = {"ARN": DB, "Tags": [{"Key": NAMESPACE_TAG, "Value": "research"}]}
    assert check_described_secret(spec, DB, owned) is None


# -- the runner document ----------------------------------------------------------------------
def test_the_document_names_arns_and_keys_never_values() -> None:
    plan = render(secret_pod(env=f"DB_PASSWORD={DB}#password", files=f"/etc/tok={TOKEN}"))
    doc = RunnerDocument.model_validate_json(heredoc(plan.script, "ORCA_RUNNER_JSON"))
    assert doc.secrets_manager_credentials_parameter == credentials_parameter(UID)
    assert doc.secrets_manager_secrets == [DB, TOKEN]
    for entry in doc.containers:
        (env,) = entry.env
        assert env.name == "DB_PASSWORD"
        assert env.secrets_manager is not None
        assert (env.secrets_manager.arn, env.secrets_manager.json_key) == (DB, "password")
    (volume,) = doc.volumes
    (file,) = volume.files
    assert file.secrets_manager is not None
    assert file.secrets_manager.arn == TOKEN
    for name in ("a", "b"):
        argv = run_line(plan.script, name)
        assert f"{volume.path}/0:/etc/tok:ro" in argv
        assert argv[argv.index("DB_PASSWORD") - 1] == "-e"
    assert plan.secret_parameters == {}  # the credentials are the activity's, not the plan's


def test_the_annotation_wins_over_the_containers_own_env() -> None:
    manifest = secret_pod(env=f"DB_PASSWORD={DB}")
    manifest["spec"]["containers"][0]["env"] = [
        {"name": "DB_PASSWORD", "value": "from-the-spec"},
        {"name": "MODE", "value": "fast"},
    ]
    argv = run_line(render(manifest).script, "a")
    assert "DB_PASSWORD=from-the-spec" not in argv
    assert "MODE=fast" in argv
    assert argv[argv.index("DB_PASSWORD") - 1] == "-e"


def test_a_pod_without_secrets_manager_has_no_credentials_parameter() -> None:
    plan = render(secret_pod())
    doc = RunnerDocument.model_validate_json(heredoc(plan.script, "ORCA_RUNNER_JSON"))
    assert doc.secrets_manager_credentials_parameter is None
    assert doc.secrets_manager_secrets == []


# -- the runner on an instance ----------------------------------------------------------------
FAKE_DOCKER = """#!/bin/bash
if [ "$1" = run ]; then printf 'DB_PASSWORD=%s\\n' "${DB_PASSWORD-unset}" >> "$RECORD/env"; fi
if [ "$1" = wait ]; then echo 0; fi
exit 0
"""
FAKE_AWS = """#!/bin/bash
printf '%s\\n' "$*" >> "$RECORD/argv"
case "$1 $2" in
  "ssm get-parameter")
    case "$*" in
      *secrets-manager-credentials*) printf '%s' "$CREDENTIALS" | base64 -w0; echo ;;
    esac ;;
  "secretsmanager get-secret-value")
    # as AWS: only the pod's temporary credentials read the secret
    if [ "${AWS_ACCESS_KEY_ID-}" != ASIAPOD ] || [ "${AWS_SESSION_TOKEN-}" != pod-token ]; then
      echo "AccessDeniedException" >&2; exit 254
    fi
    case "$*" in
      *db-AbCdEf*) jq -n --arg v "$DB_JSON" '$v' ;;
      *tok-XyZ123*) jq -n --arg v "$TOKEN_VALUE" '$v' ;;
      *) echo "ResourceNotFoundException" >&2; exit 254 ;;
    esac ;;
  "logs put-log-events") printf '%s\\n' "$*" >> "$RECORD/reports" ;;
esac
exit 0
"""


def run_runner(tmp_path: Path, manifest: dict[str, Any], secret_key: str) -> Path:
    # containers that exit 0 and are not restarted: the runner ends after one run of each
    plan = render({**manifest, "spec": {**manifest["spec"], "restartPolicy": "OnFailure"}})
    pod_dir = "/var/lib/orca/pods"
    text = heredoc(plan.script, "ORCA_RUNNER_JSON").replace(pod_dir, str(tmp_path / "pods"))
    (tmp_path / "runner.json").write_text(text)
    (tmp_path / "runner.sh").write_text(runner(plan.script))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (
        ("docker", FAKE_DOCKER),
        ("aws", FAKE_AWS),
        ("curl", "#!/bin/bash\necho 10.1.2.3\n"),
    ):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "record"
    record.mkdir()
    credentials = {"AccessKeyId": "ASIAPOD", "SecretAccessKey": secret_key}
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RECORD": str(record),
        "CREDENTIALS": json.dumps({**credentials, "SessionToken": "pod-token"}),
        "DB_JSON": json.dumps({"user": "u", "password": "pa ss\nword"}),
        "TOKEN_VALUE": "tok-value\n",
    }
    subprocess.run(
        [BASH or "bash", str(tmp_path / "runner.sh"), str(tmp_path / "runner.json")],
        env=env,
        check=False,
        capture_output=True,
        timeout=60,
    )
    return record


@pytest.mark.skipif(
    BASH is None or shutil.which("jq") is None, reason="the runner needs bash and jq"
)
def test_the_runner_fetches_the_secrets_with_the_pods_credentials(tmp_path: Path) -> None:
    record = run_runner(
        tmp_path,
        secret_pod(env=f"DB_PASSWORD={DB}#password", files=f"/etc/tok={TOKEN}"),
        "pod-secret-key",
    )
    # the env var reaches each container through the environment ($(...) drops a trailing
    # newline, as for Kubernetes Secrets); the file is byte-exact
    assert (record / "env").read_text() == "DB_PASSWORD=pa ss\nword\n" * 2
    file = tmp_path / "pods" / UID / "secrets-manager" / "0"
    assert file.read_text() == "tok-value\n"
    argv = (record / "argv").read_text()
    for value in ("pod-secret-key", "pod-token", "tok-value", "pa ss"):
        assert value not in argv, "a credential or secret in argv"


@pytest.mark.skipif(
    BASH is None or shutil.which("jq") is None, reason="the runner needs bash and jq"
)
def test_a_secret_the_runner_cannot_read_fails_the_containers(tmp_path: Path) -> None:
    unknown = "arn:aws:secretsmanager:us-west-2:123456789012:secret:gone-QqQqQq"
    record = run_runner(tmp_path, secret_pod(env=f"DB_PASSWORD={unknown}"), "k")
    assert not (record / "env").exists(), "no container started"
    reports = (record / "reports").read_text()
    assert reports.count("terminated") == 2
    assert "Error" in reports


@pytest.mark.skipif(
    BASH is None or shutil.which("jq") is None, reason="the runner needs bash and jq"
)
def test_a_missing_json_key_fails_the_containers(tmp_path: Path) -> None:
    record = run_runner(tmp_path, secret_pod(env=f"DB_PASSWORD={DB}#nope"), "k")
    assert not (record / "env").exists(), "no container started"
    assert "terminated" in (record / "reports").read_text()
