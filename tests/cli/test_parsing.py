"""The command line itself: global options anywhere, and the completion scripts in real shells.

The completion tests source the generated script in the shell it is for (bash, zsh, fish, where
installed; skipped with the reason where not) and ask it to complete, as a user's <TAB> does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from orca.cli.main import build_parser, main, subcommands


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "a.yaml", "-n", "lab", "--kubeconfig", "k", "--context", "c", "status"],
        ["status", "--config", "a.yaml", "-n", "lab", "--kubeconfig", "k", "--context", "c"],
        ["--config", "a.yaml", "status", "-n", "lab", "--context", "c", "--kubeconfig", "k"],
    ],
)
def test_global_options_mean_the_same_before_and_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.config == Path("a.yaml")
    assert args.namespace == "lab"
    assert args.kubeconfig == Path("k")
    assert args.context == "c"


def test_an_option_before_the_command_is_not_reset_by_the_command() -> None:
    args = build_parser().parse_args(["--config", "a.yaml", "config", "show"])
    assert args.config == Path("a.yaml")
    args = build_parser().parse_args(["config", "show"])
    assert args.config is None
    assert args.namespace is None


def test_every_command_accepts_the_global_options_after_it() -> None:
    parser = build_parser()
    for command in subcommands(parser):
        if not command.add_help:
            continue  # `orca dev` when the devstack is absent: it takes anything
        options = {o for action in command._actions for o in action.option_strings}
        assert {"--config", "--kubeconfig", "--context", "-n"} <= options, command.prog


def test_a_bad_output_format_is_refused_with_the_allowed_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["status", "-o", "xml"])
    assert exit_.value.code == 2
    assert "choose from 'table', 'wide', 'json', 'yaml'" in capsys.readouterr().err


def script(tmp_path: Path, shell: str, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["completion", shell]) == 0
    path = tmp_path / f"orca.{shell}"
    path.write_text(capsys.readouterr().out, encoding="utf-8")
    return path


BASH_COMPLETE = """
source {script}
complete_line() {{
  COMP_WORDS=("$@"); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMPREPLY=()
  _orca; echo "${{COMPREPLY[*]}}"
}}
complete_line orca sta
complete_line orca status -o ''
complete_line orca -n lab config s
complete_line orca completion ''
complete_line orca explain --config ''
"""


def test_bash_completes_commands_subcommands_and_option_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    path = script(tmp_path, "bash", capsys)
    (tmp_path / "config-a.yaml").write_text("", encoding="utf-8")
    result = subprocess.run(
        ["bash", "--norc", "-c", BASH_COMPLETE.format(script=path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "status"
    assert lines[1] == "table wide json yaml"
    assert lines[2] == "show schema"
    assert lines[3].split()[:3] == ["bash", "zsh", "fish"]
    assert "config-a.yaml" in lines[4].split()  # --config completes file names


def test_zsh_completes_through_bashcompinit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("zsh") is None:
        pytest.skip("no zsh here (install it to run this test)")
    path = script(tmp_path, "zsh", capsys)
    # What zsh's bashcompinit does on <TAB>: sh emulation (0-based arrays) and the bash function.
    program = (
        f"source {path}\n"
        "f() { emulate -L sh; setopt kshglob noshglob braceexpand\n"
        "  COMP_WORDS=(orca config ''); COMP_CWORD=2; COMPREPLY=(); _orca\n"
        '  echo "${COMPREPLY[*]}"; }\n'
        "f\n"
        "echo ${_comps[orca]}\n"
    )
    result = subprocess.run(
        ["zsh", "-f", "-c", program], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    first, registered = result.stdout.splitlines()[:2]
    assert first.split()[:3] == ["validate", "show", "schema"]
    assert "_orca" in registered  # `orca` is bound to the completion function


def test_fish_completes_commands_and_option_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("fish") is None:
        pytest.skip("no fish here (install it to run this test)")
    path = script(tmp_path, "fish", capsys)
    program = (
        f"source {path}; complete -C 'orca sta'; echo ---; complete -C 'orca status -o '; "
        "echo ---; complete -C 'orca config '"
    )
    result = subprocess.run(
        ["fish", "--no-config", "-c", program], capture_output=True, text=True, check=True
    )
    commands, outputs, config = result.stdout.split("---\n")
    assert commands.split("\t")[0] == "status"
    assert outputs.split() == ["json", "table", "wide", "yaml"]
    assert [line.split("\t")[0] for line in config.splitlines()] == ["schema", "show", "validate"]


def test_the_processes_take_kubeconfig_and_context_from_the_command_line(tmp_path: Path) -> None:
    from orca.cli.cluster_settings import process_settings

    config = tmp_path / "orca.yaml"
    config.write_text("aws: {region: us-west-2}\nkubernetes: {context: from-file}\n", "utf-8")
    settings = process_settings(config, kubeconfig=tmp_path / "kc", context="from-flag")
    assert settings.kubernetes.kubeconfig == tmp_path / "kc"
    assert settings.kubernetes.context == "from-flag"
    assert process_settings(config).kubernetes.context == "from-file"
