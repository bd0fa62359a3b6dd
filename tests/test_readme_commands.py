"""The examples of README's sections "The command" and "Auditing a model" run as written, and the table of
measured leakage there is what the examples measure."""

import json
import re
import shlex
from pathlib import Path

import pytest

from proofs_check.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
PREFIX = ".venv/bin/proofs-check "


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _examples(section: str) -> list[list[str]]:
    """Command lines of the section's ```sh blocks (synopsis lines, with [optional] parts, excluded)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(PREFIX) and "[" not in line:
                commands.append(shlex.split(line[len(PREFIX):]))
    return commands


def test_command_section_examples_run(capsys):
    section = _section("The command")
    examples = _examples(section)
    assert examples
    spec_examples = set(re.findall(r"`([a-z_]+:\d[^`]*)`", section.split("Examples:")[1].split("\n\n")[0]))
    for argv in examples:
        if argv[0] == "run":
            # K1 on each spec example is run by the spec-example test of the claim suite; here: it is one of them
            specs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--arch"]
            assert specs and set(specs) <= spec_examples, argv
            continue
        if "--help" in argv:
            with pytest.raises(SystemExit) as exit_:
                main(argv)
            assert exit_.value.code == 0
        else:
            assert main(argv) == 0, argv
    assert "proofs-check attack" in capsys.readouterr().out


def test_attack_section_examples_run_and_measure_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    section = _section("Auditing a model: the attack as a tool")
    examples = _examples(section)
    assert len(examples) == 3
    measured = []
    for argv in examples:
        assert main(argv) == 0, argv
        out = Path(argv[argv.index("--out") + 1])
        measured.append(json.loads((out / "metrics.json").read_text()))
    printed = " ".join(capsys.readouterr().out.split())
    assert "the attack from step 1000 of 1500" in printed and "not retraining it" in printed
    first, extended, _ = measured
    assert extended["attack"]["resumed_from"] == 1000 and extended["attack"]["anneal_steps"] == 1000
    assert first["leakage"]["attack"]["trivial"] is False
    assert all(row["trivial"] for name, row in first["leakage"].items() if name != "attack")


def test_sweep_section_examples_run(tmp_path, monkeypatch, capsys):
    """The sweep examples run as written (the tiny grid for real); the reproduce commands parse and validate."""
    from proofs_check import cli

    monkeypatch.chdir(tmp_path)
    section = _section("Finite width: when the attack works (claims E1 and H1)")
    examples = _examples(section)
    assert len(examples) == 2
    for argv in examples:
        if "--help" in argv:
            with pytest.raises(SystemExit) as exit_:
                main(argv)
            assert exit_.value.code == 0
        else:
            assert main(argv) == 0, argv
            assert Path(argv[argv.index("--out") + 1], "results.csv").is_file()
    reproduce = re.search(r"```\n(\.venv/bin/proofs-check sweep .*?)```", section, flags=re.S).group(1)
    for line in reproduce.splitlines():
        argv = shlex.split(line.split("  #")[0][len(PREFIX):])
        parsed = cli.build_parser().parse_args(argv)
        command = next(c for c in cli.COMMANDS if c.name == parsed.command)
        command.check(parsed)  # validates the grid / claim ids, runs nothing


def test_speed_section_examples_run(monkeypatch, tmp_path):
    """The attack examples of "Speed and scale" (profiled mode, float32) run as written."""
    monkeypatch.chdir(tmp_path)
    examples = _examples(_section("Speed and scale"))
    assert len(examples) == 2
    for argv in examples:
        assert main([*argv, "--no-progress"]) == 0, argv
