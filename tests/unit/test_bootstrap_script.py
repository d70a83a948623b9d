"""The start and stop scripts rendered from a pod, per docs/instance-contract.md."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orca.activities.bootstrap_script import (
    BootstrapPlan,
    render_bootstrap,
    render_stop_command,
)
from orca.ebs_volumes import PodVolume
from orca.instance_contract import (
    ContainerStateEvent,
    RunnerBlockDevice,
    RunnerContainer,
    RunnerDocument,
    new_status_key,
    split_status_line,
    status_key_parameter,
    verify_status_line,
)
from orca.launch_spec import InvalidPodSpec, PodRef, parse_launch_spec
from orca.settings import InstancesSettings, LimitsSettings
from tests.unit.pods import container, gpu_pod, neuron_pod, pod

PREFIX = "/orca/pods/0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01/"
SECRET = "hf_s3cr3t-t0ken-value"
FILE_SECRET = "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n"
CONFIG_MAPS = {"train-config": {"lr": "0.0003", "config.yaml": "epochs: 3\nname: 'run 1'\n"}}
SECRETS = {"hf": {"token": SECRET}, "ssh": {"id_ed25519": FILE_SECRET}}
BASH = shutil.which("bash")


def render(manifest: dict[str, Any], **overrides: Any) -> BootstrapPlan:
    spec = parse_launch_spec(manifest, InstancesSettings(), LimitsSettings())
    values: dict[str, Any] = {
        "log_group": "/orca/pods",
        "status_log_group": "/orca/container-status",
        "region": "us-west-2",
        "config_maps": CONFIG_MAPS,
        "secrets": SECRETS,
        "secret_parameter_prefix": PREFIX,
    }
    values.update(overrides)
    return render_bootstrap(manifest, spec, **values)


def heredoc(script: str, delimiter: str) -> str:
    match = re.search(rf"<<'{delimiter}'\n(.*?)\n{delimiter}\n", script, re.S)
    assert match, f"no {delimiter} heredoc"
    return match.group(1)


def runner(script: str) -> str:
    delimiter = re.search(r"<<'(ORCA_RUNNER_*)'", script)
    assert delimiter
    return heredoc(script, delimiter.group(1))


def document(script: str) -> RunnerDocument:
    """The runner document the start script writes (`ORCA_RUNNER_JSON` heredoc)."""
    return RunnerDocument.model_validate_json(heredoc(script, "ORCA_RUNNER_JSON"))


def containers(script: str) -> list[tuple[bool, RunnerContainer]]:
    doc = document(script)
    return [(True, c) for c in doc.init_containers] + [(False, c) for c in doc.containers]


def argv_of(init: bool, entry: RunnerContainer) -> list[str]:
    """The `docker run` argv the runner builds from one container entry (neuron devices
    aside); `test_the_runner_runs_the_document` checks the runner builds exactly this."""
    return ["run", "-d", *entry.run_arguments, entry.image, *entry.arguments]


def run_line(script: str, container_name: str) -> list[str]:
    """The `docker run` argv for one container."""
    init, entry = next((i, c) for i, c in containers(script) if c.name == container_name)
    return argv_of(init, entry)


def full_pod(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "annotations": {"orca.research/instance-type": "g6.2xlarge"},
        "restart_policy": "Never",
        "init_containers": [
            container(
                "fetch",
                "amazon/aws-cli:2",
                command=["aws", "s3", "sync", "s3://datasets/tiny", "/data"],
                volume_mounts=[{"name": "data", "mountPath": "/data"}],
            )
        ],
        "containers": [
            container(
                "trainer",
                "nvcr.io/nvidia/pytorch:24.05-py3",
                requests={"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                limits={"cpu": "6", "memory": "24Gi", "nvidia.com/gpu": "1"},
                command=["python", "train.py"],
                args=["--lr", "$(LR)", "--name", "$$(LITERAL)"],
                env=[
                    {"name": "MODE", "value": "fine tune; echo pwned"},
                    {
                        "name": "LR",
                        "valueFrom": {"configMapKeyRef": {"name": "train-config", "key": "lr"}},
                    },
                    {
                        "name": "HF_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
                    },
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                volume_mounts=[
                    {"name": "data", "mountPath": "/data"},
                    {"name": "config", "mountPath": "/etc/train", "readOnly": True},
                    {"name": "keys", "mountPath": "/root/.ssh"},
                ],
            ),
            container("metrics", "prom/node-exporter:v1.8.0"),
        ],
        "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "train-config"}},
            {"name": "keys", "secret": {"secretName": "ssh", "defaultMode": 0o400}},
        ],
    }
    values.update(overrides)
    return pod(**values)


def test_pod_json_heredoc_parses_and_holds_the_contract_fields() -> None:
    plan = render(full_pod())
    document = json.loads(heredoc(plan.script, "ORCA_POD_JSON"))
    assert document["namespace"] == "research"
    assert document["name"] == "train-1"
    assert document["uid"] == "0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01"
    assert document["restartPolicy"] == "Never"
    assert document["annotations"] == {"orca.research/instance-type": "g6.2xlarge"}
    assert [c["name"] for c in document["initContainers"]] == ["fetch"]
    assert [(c["name"], c["image"]) for c in document["containers"]] == [
        ("trainer", "nvcr.io/nvidia/pytorch:24.05-py3"),
        ("metrics", "prom/node-exporter:v1.8.0"),
    ]
    assert document["containers"][0]["command"] == ["python", "train.py"]
    assert "env" not in document["containers"][0]
    assert "cat > /etc/orca/pod.json <<'ORCA_POD_JSON'" in plan.script
    assert plan.comment == "orca start research/train-1"


def test_no_secret_value_is_in_the_script_only_in_parameters() -> None:
    plan = render(full_pod())
    assert SECRET not in plan.script
    assert "s3cr3t" not in plan.script
    assert "BEGIN KEY" not in plan.script
    assert base64.b64encode(FILE_SECRET.encode()).decode() not in plan.script
    assert plan.secret_parameters[PREFIX + "trainer/env/HF_TOKEN"] == SECRET
    encoded = plan.secret_parameters[PREFIX + "volumes/keys/id_ed25519"]
    assert base64.b64decode(encoded).decode() == FILE_SECRET
    assert all(name.startswith(PREFIX) for name in plan.secret_parameters)
    trainer = next(c for _, c in containers(plan.script) if c.name == "trainer")
    assert [(e.name, e.secret_parameter) for e in trainer.env if e.secret_parameter] == [
        ("HF_TOKEN", f"{PREFIX}trainer/env/HF_TOKEN")
    ]
    assert "aws ssm get-parameter --with-decryption" in runner(plan.script)
    # the secret env reaches docker through the environment, never argv
    argv = run_line(plan.script, "trainer")
    assert "HF_TOKEN" in argv
    assert not any(a.startswith("HF_TOKEN=") for a in argv)


def test_env_literal_config_map_and_field_values() -> None:
    argv = run_line(render(full_pod()).script, "trainer")
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "-e"]
    assert "MODE=fine tune; echo pwned" in pairs  # quoted: one argument, nothing executed
    assert "LR=0.0003" in pairs
    # $(LR) expands as Kubernetes does; $$ escapes
    assert argv[-4:] == ["--lr", "0.0003", "--name", "$(LITERAL)"]
    assert argv[argv.index("--entrypoint") + 1] == "python"
    assert argv[argv.index("--entrypoint") + 3] == "train.py"


def test_containers_run_init_first_then_apps_in_order() -> None:
    entries = containers(render(full_pod()).script)
    assert [(init, c.name) for init, c in entries] == [
        (True, "fetch"),
        (False, "trainer"),
        (False, "metrics"),
    ]
    assert [c.run_arguments[c.run_arguments.index("--name") + 1] for _, c in entries] == [
        "orca_fetch",
        "orca_trainer",
        "orca_metrics",
    ]


def test_gpu_flag_only_for_gpu_containers() -> None:
    plan = render(full_pod())
    trainer = run_line(plan.script, "trainer")
    assert trainer[trainer.index("--gpus") + 1] == "all"
    assert "--gpus" not in run_line(plan.script, "metrics")
    assert "--gpus" in run_line(render(gpu_pod(8)).script, "trainer")


def test_neuron_devices_for_neuron_pods() -> None:
    script = render(neuron_pod(16)).script
    assert "/dev/neuron*" in runner(script)
    assert '"${ORCA_NEURON_DEVICES[@]}"' in runner(script)
    assert [c.neuron_devices for _, c in containers(script)] == [True]
    assert not any(c.neuron_devices for _, c in containers(render(full_pod()).script))


def test_resource_limits_become_docker_limits() -> None:
    argv = run_line(render(full_pod()).script, "trainer")
    assert argv[argv.index("--cpus") + 1] == "6"
    assert argv[argv.index("--memory") + 1] == f"{24 * 2**30}b"
    assert "--cpus" not in run_line(render(full_pod()).script, "metrics")


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_the_runner_not_the_runtime_restarts_containers(policy: str) -> None:
    plan = render(full_pod(restart_policy=policy))
    for name in ("trainer", "fetch"):
        argv = run_line(plan.script, name)
        assert argv[argv.index("--restart") + 1] == "no"  # the runner's supervisor restarts
    assert document(plan.script).restart_policy == policy


def test_logs_go_to_cloudwatch_per_container() -> None:
    argv = run_line(render(full_pod()).script, "metrics")
    options = [argv[i + 1] for i, a in enumerate(argv) if a == "--log-opt"]
    assert argv[argv.index("--log-driver") + 1] == "awslogs"
    assert "awslogs-group=/orca/pods" in options
    assert "awslogs-stream=research/train-1/0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01/metrics" in options
    assert "awslogs-region=us-west-2" in options


def test_volumes_mounted_from_host_dirs() -> None:
    plan = render(full_pod())
    argv = run_line(plan.script, "trainer")
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    base = "/var/lib/orca/pods/0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01/volumes"
    assert mounts == [
        f"{base}/data:/data",
        f"{base}/config:/etc/train:ro",
        f"{base}/keys:/root/.ssh",
    ]
    files = {f.path: f for v in document(plan.script).volumes for f in v.files}
    assert files[f"{base}/config/lr"].content == "0.0003"
    key = files[f"{base}/keys/id_ed25519"]
    assert (key.secret_parameter, key.content, key.mode) == (
        f"{PREFIX}volumes/keys/id_ed25519",
        None,
        0o400,
    )


@pytest.mark.parametrize(
    ("env", "field"),
    [
        (
            {
                "name": "X",
                "valueFrom": {"configMapKeyRef": {"name": "train-config", "key": "nope"}},
            },
            "env[1]",
        ),
        (
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "lr"}}},
            "env[1]",
        ),
        ({"name": "X", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "nope"}}}, "env[1]"),
        ({"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}, "env[1]"),
    ],
)
def test_missing_reference_names_the_env_entry(env: dict[str, Any], field: str) -> None:
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        containers=[
            container("a"),
            container("b", env=[{"name": "OK", "value": "1"}, env]),
        ],
    )
    with pytest.raises(InvalidPodSpec) as caught:
        render(manifest)
    assert caught.value.annotation == f"spec.containers[1].{field}"
    assert "does not exist in namespace research" in str(caught.value)


def test_optional_missing_reference_is_skipped() -> None:
    env = [
        {
            "name": "X",
            "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}},
        }
    ]
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        containers=[container("a", env=env)],
    )
    plan = render(manifest)
    assert plan.secret_parameters == {}
    assert "X" not in run_line(plan.script, "a")
    assert not next(c for _, c in containers(plan.script) if c.name == "a").env


def test_env_from_config_map_and_secret() -> None:
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        containers=[
            {
                **container("a"),
                "envFrom": [
                    {"configMapRef": {"name": "train-config"}},
                    {"secretRef": {"name": "hf"}, "prefix": "HF_"},
                ],
            }
        ],
    )
    plan = render(manifest)
    assert plan.secret_parameters == {PREFIX + "a/env/HF_token": SECRET}
    assert "lr=0.0003" in run_line(plan.script, "a")


def test_a_value_cannot_end_a_heredoc() -> None:
    evil = "x\nORCA_RUNNER_JSON\nORCA_RUNNER\nrm -rf /\n"
    maps = {"train-config": {"evil": evil, "lr": "1"}}
    plan = render(full_pod(), config_maps=maps)
    files = {f.path.rsplit("/", 1)[1]: f for v in document(plan.script).volumes for f in v.files}
    assert files["evil"].content == evil
    assert "\nrm -rf /\n" not in plan.script  # the document is one line of JSON


FAKE_DOCKER = """#!/bin/bash
case $1 in
  run)
    printf '%s\\0' "$@" >> "$RECORD/runs"; printf '\\n' >> "$RECORD/runs"
    printf 'HF_TOKEN=%s\\n' "${HF_TOKEN-unset}" >> "$RECORD/env" ;;
  wait)  # the next exit code scripted for the container (file exits-<name>), else 0
    exits="$RECORD/exits-$2"
    if [ -s "$exits" ]; then head -n1 "$exits"; sed -i 1d "$exits"; else echo 0; fi ;;
  inspect) echo false ;;
esac
exit 0
"""
FAKE_SLEEP = """#!/bin/bash
echo "$1" >> "$RECORD/sleeps"
if [ -n "${REAL_SLEEP:-}" ]; then exec /bin/sleep "$1"; fi
"""
FAKE_AWS = """#!/bin/bash
case "$*" in
  *env/HF_TOKEN*) printf '%s\\n' "$HF_SECRET" ;;
  *volumes/keys/id_ed25519*) printf '%s\\n' "$FILE_SECRET_B64" ;;
  *put-log-events*)
    while [ $# -gt 0 ]; do
      [ "$1" = --log-events ] && printf '%s\\n' "$2" >> "$RECORD/reports"
      shift
    done ;;
esac
exit 0
"""


def prepare_the_runner(
    tmp_path: Path, plan: BootstrapPlan, exits: dict[str, list[int]] | None = None
) -> tuple[list[str], dict[str, str], Path]:
    """The static runner on a rendered document with `docker`, `aws`, `curl` and `sleep`
    replaced by recorders (no container runtime or AWS here); `exits` scripts the exit codes
    `docker wait` gives each container's successive runs (0 once they run out). Returns its
    command, its environment and the record directory: `runs` (docker run argv), `env`,
    `reports` (status events), `sleeps`."""
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
        ("sleep", FAKE_SLEEP),
    ):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "record"
    record.mkdir()
    for container_name, codes in (exits or {}).items():
        (record / f"exits-orca_{container_name}").write_text("".join(f"{c}\n" for c in codes))
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RECORD": str(record),
        "HF_SECRET": SECRET,
        "FILE_SECRET_B64": base64.b64encode(FILE_SECRET.encode()).decode(),
    }
    command = [BASH or "bash", str(tmp_path / "runner.sh"), str(tmp_path / "runner.json")]
    return command, env, record


def run_the_runner(
    tmp_path: Path, plan: BootstrapPlan, exits: dict[str, list[int]] | None = None
) -> Path:
    command, env, record = prepare_the_runner(tmp_path, plan, exits)
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    return record


def reported(record: Path, container_name: str) -> list[tuple[str, str, int | None, float | None]]:
    """(state, reason, exitCode, backOffSeconds) of each status event of one container."""
    events = [
        ContainerStateEvent.model_validate_json(json.loads(line)[0]["message"])
        for line in (record / "reports").read_text().splitlines()
    ]
    return [
        (e.state.value, e.reason or "", e.exit_code, e.back_off_seconds)
        for e in events
        if e.container == container_name
    ]


RUNNER_TOOLS = BASH is None or shutil.which("jq") is None


@pytest.mark.skipif(RUNNER_TOOLS, reason="the runner needs bash and jq")
def test_the_runner_runs_the_document(tmp_path: Path) -> None:
    """The runner writes the volumes and runs each container with the document's argv, secrets
    through the environment only."""
    plan = render(full_pod(restart_policy="OnFailure"))
    record = run_the_runner(tmp_path, plan)
    runs = [line.split("\0") for line in (record / "runs").read_text().split("\0\n") if line]
    doc = RunnerDocument.model_validate_json((tmp_path / "runner.json").read_text())
    inits = len(doc.init_containers)
    assert runs[:inits] == [argv_of(True, c) for c in doc.init_containers]  # one after another
    # then every app container, each by its own supervisor (in any order)
    assert sorted(runs[inits:]) == sorted(argv_of(False, c) for c in doc.containers)
    env = (record / "env").read_text().splitlines()
    assert env[:inits] == ["HF_TOKEN=unset"]
    assert sorted(env[inits:]) == sorted([f"HF_TOKEN={SECRET}", "HF_TOKEN=unset"])
    base = tmp_path / "pods" / "0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01" / "volumes"
    assert (base / "config" / "lr").read_text() == "0.0003"
    assert (base / "config" / "config.yaml").read_text() == "epochs: 3\nname: 'run 1'\n"
    key = base / "keys" / "id_ed25519"
    assert key.read_text() == FILE_SECRET
    assert (base / "data").is_dir()
    assert reported(record, "trainer")[-2:] == [
        ("running", "Started", None, None),
        ("terminated", "Completed", 0, None),
    ]


@pytest.mark.skipif(RUNNER_TOOLS, reason="the runner needs bash and jq")
def test_a_failing_container_is_restarted_with_the_kubelets_back_off(tmp_path: Path) -> None:
    """OnFailure, exits 1, 1, 1, 0: restarted at once, then after 10 s and 20 s reported as
    waiting/CrashLoopBackOff, and done once it exits 0 (no `docker run --restart`)."""
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        restart_policy="OnFailure",
        containers=[container("trainer", "pytorch:2")],
    )
    record = run_the_runner(tmp_path, render(manifest), exits={"trainer": [1, 1, 1]})
    started = ("running", "Started", None, None)
    failed = ("terminated", "Error", 1, None)
    assert reported(record, "trainer")[1:] == [
        started,
        failed,
        started,  # the first exit restarts at once
        failed,
        ("waiting", "CrashLoopBackOff", None, 10),
        started,
        failed,
        ("waiting", "CrashLoopBackOff", None, 20),
        started,
        ("terminated", "Completed", 0, None),
    ]
    assert (record / "sleeps").read_text().split() == ["10", "20"]
    assert (record / "runs").read_text().count("pytorch:2") == 4


@pytest.mark.skipif(RUNNER_TOOLS, reason="the runner needs bash and jq")
def test_the_stop_command_cuts_a_back_off_short(tmp_path: Path) -> None:
    """In a 10 s back-off, the stop command's `stopping` file and SIGTERM to the runner's main
    process end it at once: the runner exits without restarting the container."""
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        restart_policy="Always",
        containers=[container("trainer", "pytorch:2")],
    )
    command, env, record = prepare_the_runner(tmp_path, render(manifest), {"trainer": [1, 1]})
    runner_process = subprocess.Popen(
        command, env={**env, "REAL_SLEEP": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not (
            (record / "reports").exists()
            and any(r[1] == "CrashLoopBackOff" for r in reported(record, "trainer"))
        ):
            assert time.monotonic() < deadline, "the runner never backed off"
            time.sleep(0.05)
        stopping = tmp_path / "pods" / "0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01" / "stopping"
        stopping.touch()
        runner_process.terminate()
        assert runner_process.wait(timeout=8) == 0  # not after the 10 s back-off
    finally:
        runner_process.kill()
    assert (record / "runs").read_text().count("pytorch:2") == 2
    assert reported(record, "trainer")[-1] == ("waiting", "CrashLoopBackOff", None, 10)


@pytest.mark.skipif(RUNNER_TOOLS, reason="the runner needs bash and jq")
def test_with_never_a_failed_container_stays_failed(tmp_path: Path) -> None:
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        restart_policy="Never",
        containers=[container("trainer", "pytorch:2")],
    )
    record = run_the_runner(tmp_path, render(manifest), exits={"trainer": [3]})
    assert reported(record, "trainer")[-1] == ("terminated", "Error", 3, None)
    assert (record / "runs").read_text().count("pytorch:2") == 1


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_scripts_are_valid_bash() -> None:
    plan = render(full_pod())
    for text in (
        plan.script,
        runner(plan.script),
        render_stop_command(PodRef(namespace="a", name="b", uid="c"), 5),
    ):
        result = subprocess.run(
            [BASH or "bash", "-n"], input=text, text=True, capture_output=True, check=False
        )
        assert result.returncode == 0, result.stderr


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_reported_state_event_is_contract_json(tmp_path: Path) -> None:
    """Run the script's own reporting function with `aws` replaced by a recorder."""
    script = runner(render(full_pod()).script)
    function = re.search(r"^orca_report\(\) \{.*?^\}$", script, re.S | re.M)
    assert function
    recorder = tmp_path / "calls"
    program = "\n".join(
        [
            f"RECORD={shlex.quote(str(recorder))}",
            'aws() { printf "%s\\0" "$@" >> "$RECORD"; printf "\\n" >> "$RECORD"; }',
            "ORCA_POD_UID=uid-1 ORCA_STATUS_LOG_GROUP=/orca/container-status",
            function.group(0),
            "orca_report trainer false terminated OOMKilled 137",
        ]
    )
    subprocess.run([BASH or "bash", "-c", program], check=True, capture_output=True, text=True)
    calls = [line.split("\0") for line in recorder.read_text().split("\0\n") if line]
    put = next(c for c in calls if c[:2] == ["logs", "put-log-events"])
    assert put[put.index("--log-group-name") + 1] == "/orca/container-status"
    assert put[put.index("--log-stream-name") + 1] == "uid-1"
    events = json.loads(put[put.index("--log-events") + 1])
    event = ContainerStateEvent.model_validate_json(events[0]["message"])
    assert (event.pod_uid, event.container, event.init, event.state) == (
        "uid-1",
        "trainer",
        False,
        "terminated",
    )
    assert (event.reason, event.exit_code) == ("OOMKilled", 137)
    assert isinstance(events[0]["timestamp"], int)


@pytest.mark.skipif(
    BASH is None or shutil.which("openssl") is None, reason="bash or openssl is not installed"
)
def test_reported_state_event_is_signed_with_the_pods_key(tmp_path: Path) -> None:
    """With the pod's status key, the runner's line verifies under that key (openssl's HMAC),
    and under no other."""
    script = runner(render(full_pod()).script)
    function = re.search(r"^orca_report\(\) \{.*?^\}$", script, re.S | re.M)
    assert function
    recorder = tmp_path / "calls"
    key = new_status_key()
    program = "\n".join(
        [
            f"RECORD={shlex.quote(str(recorder))}",
            'aws() { printf "%s\\0" "$@" >> "$RECORD"; printf "\\n" >> "$RECORD"; }',
            "ORCA_POD_UID=uid-1 ORCA_STATUS_LOG_GROUP=/orca/container-status",
            f"ORCA_STATUS_KEY={key}",
            function.group(0),
            "orca_report trainer false running Started",
        ]
    )
    subprocess.run([BASH or "bash", "-c", program], check=True, capture_output=True, text=True)
    calls = [line.split("\0") for line in recorder.read_text().split("\0\n") if line]
    put = next(c for c in calls if c[:2] == ["logs", "put-log-events"])
    line = split_status_line(json.loads(put[put.index("--log-events") + 1])[0]["message"])
    event = verify_status_line(line, key, "uid-1")
    assert event is not None
    assert (event.pod_uid, event.container, event.state) == ("uid-1", "trainer", "running")
    assert verify_status_line(line, new_status_key(), "uid-1") is None
    assert verify_status_line(line, key, "uid-2") is None  # misplaced in another pod's stream


def test_the_status_key_is_a_secret_parameter_the_runner_is_told_about() -> None:
    key = new_status_key()
    plan = render(full_pod(), status_key=key)
    doc = document(plan.script)
    uid = "0b6c6a3e-5d2e-4f7b-9a52-1f7f2f9d1c01"
    assert doc.status_key_parameter == status_key_parameter(uid)
    assert plan.secret_parameters[status_key_parameter(uid)] == key
    assert key not in plan.script


def test_stop_command() -> None:
    script = render_stop_command(PodRef(namespace="research", name="train-1", uid="u-9"), 45)
    assert "ORCA_STOP_GRACE_SECONDS=45" in script.splitlines()
    assert "label=orca.research/pod-uid=$ORCA_POD_UID" in script
    assert "ORCA_POD_UID=u-9" in script
    assert 'stop --time "$ORCA_STOP_GRACE_SECONDS"' in script


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(
    value=st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        max_size=40,
    )
)
def test_any_env_value_reaches_docker_as_one_argument(value: str) -> None:
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        containers=[container("a", env=[{"name": "V", "value": value}])],
    )
    argv = run_line(render(manifest).script, "a")
    assert argv[argv.index("-e") + 1] == f"V={value}"


def test_the_allowed_security_context_is_applied_by_the_container_runtime() -> None:
    manifest = pod(
        annotations={"orca.research/instance-type": "m5.large"},
        containers=[container("app", "busybox"), container("plain", "busybox")],
    )
    manifest["spec"]["securityContext"] = {
        "runAsUser": 1000,
        "runAsGroup": 3000,
        "supplementalGroups": [4000],
        "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}],
    }
    manifest["spec"]["containers"][0]["securityContext"] = {
        "runAsUser": 2000,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    }
    script = render(manifest).script
    app = run_line(script, "app")
    assert app[app.index("--user") + 1] == "2000:3000"  # the container's user, the pod's group
    assert app[app.index("--group-add") + 1] == "4000"
    assert "--read-only" in app
    assert app[app.index("--cap-drop") + 1] == "ALL"
    assert app[app.index("--cap-add") + 1] == "NET_BIND_SERVICE"
    assert app[app.index("--security-opt") + 1] == "no-new-privileges"
    assert app[app.index("--sysctl") + 1] == "net.ipv4.tcp_syncookies=1"
    plain = run_line(script, "plain")
    assert plain[plain.index("--user") + 1] == "1000:3000"  # the pod's own
    for flag in ("--read-only", "--cap-drop", "--cap-add", "--security-opt", "--privileged"):
        assert flag not in plain


def claim_pod(sub_path: str | None = None, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": "ckpt", "mountPath": "/ckpt", "readOnly": read_only}
    if sub_path:
        mount["subPath"] = sub_path
    manifest = pod(
        annotations={"orca.research/instance-type": "t3.small"},
        containers=[container("trainer", volume_mounts=[mount])],
    )
    manifest["spec"]["volumes"] = [
        {"name": "ckpt", "persistentVolumeClaim": {"claimName": "ckpt-trainer-0"}}
    ]
    return manifest


CKPT = PodVolume(
    volume_name="ckpt",
    claim_name="ckpt-trainer-0",
    persistent_volume="pvc-1",
    volume_id="vol-0123456789abcdef0",
    zone="us-west-2b",
    device_name="/dev/sdf",
    fs_type="xfs",
)


def test_a_claim_volume_is_a_block_device_the_containers_bind_mount() -> None:
    script = render(claim_pod(sub_path="run-7", read_only=True), block_volumes=(CKPT,)).script
    (device,) = document(script).block_devices
    assert device == RunnerBlockDevice(
        volume_id="vol-0123456789abcdef0",
        device_name="/dev/sdf",
        fs_type="xfs",
        mount_point="/var/lib/orca/volumes/vol-0123456789abcdef0",
        read_only=False,
    )
    (_, trainer) = containers(script)[0]
    assert "/var/lib/orca/volumes/vol-0123456789abcdef0/run-7:/ckpt:ro" in trainer.run_arguments


def test_a_claim_the_plan_did_not_resolve_is_refused() -> None:
    with pytest.raises(InvalidPodSpec, match=r"spec.volumes\[0\].persistentVolumeClaim"):
        render(claim_pod())


def test_the_stop_command_unmounts_the_pods_volumes_after_the_containers() -> None:
    script = render_stop_command(PodRef(namespace="research", name="train-1", uid="u-9"), 45)
    assert script.index('umount "$mounted"') > script.index("stop --time")
    assert script.index("  sync") < script.index('umount "$mounted"')
