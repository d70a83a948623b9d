"""The start and stop scripts rendered from a pod, per docs/instance-contract.md."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orca.activities.bootstrap_script import (
    BootstrapPlan,
    choose_ami_parameter,
    render_bootstrap,
    render_stop_command,
)
from orca.activities.status_mapping import ContainerStateEvent
from orca.launch_spec import InvalidPodSpec, PodRef, parse_launch_spec
from orca.selection import InstanceTypeInfo
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


def run_line(script: str, container_name: str) -> list[str]:
    """The `docker run` argv for one container, as bash would split it."""
    text = runner(script)
    at = text.index(f"--name orca_{container_name} ")
    lexer = shlex.shlex(text[text.rindex("\n", 0, at) + 1 :], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for word in lexer:  # up to the `)` closing the subshell that runs the container
        if word.startswith(")"):
            break
        words.append(word)
    return words[words.index("run") :]


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
    script = runner(plan.script)
    assert f"orca_secret {PREFIX}trainer/env/HF_TOKEN" in script
    assert "aws ssm get-parameter --with-decryption" in script
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
    script = runner(render(full_pod()).script)
    order = [m.group(1) for m in re.finditer(r"--name orca_(\w+) ", script)]
    assert order == ["fetch", "trainer", "metrics"]
    fetch = run_line(render(full_pod()).script, "fetch")
    assert "-d" not in fetch  # init containers run in the foreground, one after another
    assert "-d" in run_line(render(full_pod()).script, "trainer")


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
    assert "ORCA_NEURON_DEVICES[@]" not in runner(render(full_pod()).script).split("# volumes")[1]


def test_resource_limits_become_docker_limits() -> None:
    argv = run_line(render(full_pod()).script, "trainer")
    assert argv[argv.index("--cpus") + 1] == "6"
    assert argv[argv.index("--memory") + 1] == f"{24 * 2**30}b"
    assert "--cpus" not in run_line(render(full_pod()).script, "metrics")


@pytest.mark.parametrize(
    ("policy", "docker"), [("Always", "always"), ("OnFailure", "on-failure"), ("Never", "no")]
)
def test_restart_policy_mapping(policy: str, docker: str) -> None:
    plan = render(full_pod(restart_policy=policy))
    trainer = run_line(plan.script, "trainer")
    assert trainer[trainer.index("--restart") + 1] == docker
    fetch = run_line(plan.script, "fetch")
    assert fetch[fetch.index("--restart") + 1] == "no"  # ORCA retries init containers itself
    retries = (
        'sleep "$delay"'
        in runner(plan.script).split("# app containers")[0].split("init containers")[1]
    )
    assert retries == (policy != "Never")


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
    script = runner(plan.script)
    assert f"printf '%s' 0.0003 > {base}/config/lr" in script
    assert (
        f"orca_secret {PREFIX}volumes/keys/id_ed25519 | base64 -d > {base}/keys/id_ed25519"
        in script
    )
    assert f"chmod 400 {base}/keys/id_ed25519" in script


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
    assert "-e X" not in runner(plan.script)


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


def test_a_value_cannot_end_the_runner_heredoc() -> None:
    maps = {"train-config": {"evil": "x\nORCA_RUNNER\nrm -rf /\n", "lr": "1"}}
    plan = render(full_pod(), config_maps=maps)
    assert "<<'ORCA_RUNNER_'" in plan.script
    assert "x\nORCA_RUNNER\nrm -rf /\n" in runner(plan.script)


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


def test_stop_command() -> None:
    script = render_stop_command(PodRef(namespace="research", name="train-1", uid="u-9"), 45)
    assert "ORCA_STOP_GRACE_SECONDS=45" in script.splitlines()
    assert "label=orca.research/pod-uid=$ORCA_POD_UID" in script
    assert "ORCA_POD_UID=u-9" in script
    assert 'stop --time "$ORCA_STOP_GRACE_SECONDS"' in script


@pytest.mark.parametrize(
    ("info", "parameter"),
    [
        (
            InstanceTypeInfo(name="p5.48xlarge", vcpus=192, memory_mib=2097152, gpus=8),
            "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id",
        ),
        (
            InstanceTypeInfo(
                name="g5g.xlarge", vcpus=4, memory_mib=8192, gpus=1, architectures=("arm64",)
            ),
            "/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id",
        ),
        (
            InstanceTypeInfo(name="trn1.32xlarge", vcpus=128, memory_mib=524288, neuron_devices=16),
            "/aws/service/neuron/dlami/multi-framework/amazon-linux-2023/latest/image_id",
        ),
        (
            InstanceTypeInfo(name="inf2.xlarge", vcpus=4, memory_mib=16384, neuron_devices=1),
            "/aws/service/neuron/dlami/multi-framework/amazon-linux-2023/latest/image_id",
        ),
        (
            InstanceTypeInfo(name="c7i.large", vcpus=2, memory_mib=4096),
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        ),
        (
            InstanceTypeInfo(name="m7g.large", vcpus=2, memory_mib=8192, architectures=("arm64",)),
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
        ),
    ],
)
def test_ami_parameter_per_family(info: InstanceTypeInfo, parameter: str) -> None:
    assert choose_ami_parameter(info) == parameter


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
