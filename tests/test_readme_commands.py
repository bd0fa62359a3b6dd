"""The examples of the documentation (README and its reference pages under docs/) run as written, and what the prose
says they measure is what they measure.

A command shown both in a README section and on the reference page that explains it runs once: README's command
lines must be among the page's, and the page's are run."""

import csv
import json
import re
import shlex
from pathlib import Path

import pytest

from documentation import FILES, ROOT, headings, section
from proofs_check.cli import main

PREFIX = ".venv/bin/proofs-check "


def _run_successfully(argv: list[str]) -> None:
    """Run one README command: exit 0 (``--help`` exits through argparse's SystemExit with code 0)."""
    if "--help" in argv:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    else:
        assert main(argv) == 0, argv


def _examples(section: str) -> list[list[str]]:
    """Command lines of the section's ```sh blocks (synopsis lines, with [optional] parts, excluded)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(PREFIX) and "[" not in line:
                commands.append(shlex.split(line[len(PREFIX):]))
    return commands


def _sh_lines(text: str) -> list[str]:
    """Every non-empty line of the text's ```sh blocks, without its comment."""
    return [line.split("  #")[0].strip() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)
            for line in block.splitlines() if line.strip()]


def _page_section(readme_title: str, *page_titles: str) -> str:
    """The reference page's sections that explain README's section ``readme_title``: every command line README
    shows there is one of theirs (so that running the page's runs README's, each once)."""
    readme, page = section(readme_title), "\n".join(section(title) for title in page_titles)
    missing = [line for line in _sh_lines(readme) if line not in _sh_lines(page)]
    assert not missing, f"README's {readme_title!r} shows commands that {page_titles} do not: {missing}"
    return page


def test_command_section_examples_run(capsys):
    examples = _examples(_page_section("The command", "Running claims"))
    assert examples
    readme = section("The command")  # README's spec examples, which tests/test_cli.py runs K1 on
    spec_examples = set(re.findall(r"`([a-z_]+:\d[^`]*)`", readme.split("Examples:")[1].split("\n\n")[0]))
    for argv in examples:
        if argv[0] == "run":
            # K1 on each spec example is run by the spec-example test of the claim suite; here: it is one of them
            specs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--arch"]
            assert specs and set(specs) <= spec_examples, argv
            continue
        _run_successfully(argv)
    assert "proofs-check attack" in capsys.readouterr().out


def test_attack_section_examples_run_and_measure_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    examples = _examples(_page_section("Auditing a model: the attack as a tool", "The attack command"))
    assert len(examples) == 3
    measured = []
    for argv in examples:
        assert main(argv) == 0, argv
        out = Path(argv[argv.index("--out") + 1])
        measured.append(json.loads((out / "metrics.json").read_text()))
    printed = " ".join(capsys.readouterr().out.split())
    assert "the attack from step 1000 of 1500" in printed and "not retraining it" in printed
    assert "resuming with the options runs/digits10/run.json records: --n=10 --width=256 " in printed
    first, extended, _ = measured
    assert extended["attack"]["resumed_from"] == 1000 and extended["attack"]["anneal_steps"] == 1000
    assert first["leakage"]["attack"]["trivial"] is False
    assert all(row["trivial"] for name, row in first["leakage"].items() if name != "attack")


def test_sweep_section_examples_run(tmp_path, monkeypatch, capsys):
    """The sweep examples run as written (the tiny grid for real); the reproduce commands parse and validate."""
    from proofs_check import cli

    monkeypatch.chdir(tmp_path)
    readme = section("Finite width: when the attack works (claims E1 and H1)")
    page = _page_section("Finite width: when the attack works (claims E1 and H1)", "The sweep")
    examples = _examples(page)
    assert len(examples) == 2
    for argv in examples:
        _run_successfully(argv)
        if "--help" not in argv:
            assert Path(argv[argv.index("--out") + 1], "results.csv").is_file()
    # the tiny grid demonstrates the sweep's point (it was a cell that did not fit and one that revealed 0%): every
    # network fits, the attack beats the trivial baselines, and more so where the kernel moved less
    with Path(examples[0][examples[0].index("--out") + 1], "results.csv").open() as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: int(row["width"]))
    assert [row["width"] for row in rows] == ["16", "256"]
    assert all(float(row["train_loss"]) < 1e-9 for row in rows)
    narrow, wide = ([float(row[key]) for key in ("revealed", "best_trivial_revealed", "kernel_distance")]
                    for row in rows)
    assert wide[0] == 1.0 and wide[0] > narrow[0] > narrow[1] and wide[1] == 0.0 and wide[2] < narrow[2]
    for prose in (" ".join(readme.split()), " ".join(page.split())):  # README and the page say the same
        assert (f"reveals {round(4 * narrow[0])} of the 4 ({narrow[0]:.0%}) at width 16" in prose
                and f"distance {narrow[2]:.2f})" in prose and f"({wide[2]:.1g})" in prose), prose[:600]
    reproduce = re.search(r"```\n(\.venv/bin/proofs-check sweep .*?)```", section("The full sweep"),
                          flags=re.S).group(1)
    for line in reproduce.splitlines():
        argv = shlex.split(line.split("  #")[0][len(PREFIX):])
        parsed = cli.build_parser().parse_args(argv)
        command = next(c for c in cli.COMMANDS if c.name == parsed.command)
        command.check(parsed)  # validates the grid / claim ids, runs nothing
        cli.prepare_outputs(command, parsed)  # in order: run E1 --out R takes the sweep marked in R/sweep


def test_speed_section_examples_run(monkeypatch, tmp_path):
    """The attack examples of "Speed and scale" (profiled mode, float32) run as written."""
    monkeypatch.chdir(tmp_path)
    examples = _examples(_page_section("Speed and scale", "The two attack modes", "Distillation at scale"))
    assert len(examples) == 2
    for argv in examples:
        assert main([*argv, "--no-progress"]) == 0, argv


SMALL_SETTINGS = {
    # README command -> options replaced to keep the test small (the README's own settings are the full runs)
    "distill": {"--steps": None},
    "rkip-finite": {"--n": "4", "--recon": "2", "--steps": "5"},
    "defend": {},
}


def _shrunk(argv: list[str], replace: dict[str, str | None]) -> list[str]:
    argv = list(argv)
    for option, value in replace.items():
        if option in argv and value is not None:
            argv[argv.index(option) + 1] = value
    if "--steps" in replace and replace["--steps"] is None and "--steps" in argv:
        # distill: 1000 -> 2, a larger --resume budget -> 4 (still an extension of the first run)
        i = argv.index("--steps")
        argv[i + 1] = "4" if "--resume" in argv else "2"
    return argv


def test_distillation_section_commands_run_small(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = _sh_lines(_page_section("Distillation, and distillation as a defense", "Distilling the digits"))
    assert len(lines) == 8 and all(line.startswith(PREFIX) for line in lines), lines
    assert sum(line.startswith(PREFIX + "rkip-finite ") for line in lines) == 2
    for line in lines:
        argv = shlex.split(line[len(PREFIX):])
        if argv[0] == "distill":
            assert main(_shrunk(argv, SMALL_SETTINGS["distill"])) == 0, argv
            out = Path(argv[argv.index("--out") + 1])
            assert (out / "distilled.png").is_file() and (out / "metrics.json").is_file()
        elif argv[0] == "rkip-finite":
            small = [*_shrunk(argv, SMALL_SETTINGS["rkip-finite"]), "--width", "16", "--train-steps", "50",
                     "--no-progress"]
            assert main(small) == 0, small
            out = Path(argv[argv.index("--out") + 1])
            assert "gap_points" in json.loads((out / "rkip_finite.json").read_text())
        else:
            assert argv[0] == "defend", argv
            small = [*argv, "--per-class", "1", "--sizes", "10", "--distances", "none,1.0", "--attack-steps", "5",
                     "--distill-steps", "2", "--polish", "1"]
            assert main(small) == 0, small
            out = Path(argv[argv.index("--out") + 1])
            record = json.loads((out / "tradeoff.json").read_text())
            assert record["complete"] and len(record["settings"]) == 4  # private, 2 distilled, class means
            assert (out / "tradeoff.png").is_file()
            # the accuracy of the trivial stand-ins that form a training set, beside the defended models'
            stand_ins = record["trivial_test_accuracy"]
            assert {name: row["points"] for name, row in stand_ins.items()} == {"class means": 10,
                                                                               "held-out points": 10}
            assert all(0.1 < row["test_accuracy"] <= 1 for row in stand_ins.values()), stand_ins
    assert json.loads(Path("runs/kip10/metrics.json").read_text())["resumed_from"] == 2


def test_chain_attack_section_commands_run_small(tmp_path, monkeypatch):
    """The attack-curve commands of "The attack on residual and convolutional networks": every one parses and
    validates; the MLP run and the rescaled conv run run for real (tiny), and the combined figure of them follows
    the figure style."""
    from proofs_check import attack_curve, cli, figures

    monkeypatch.chdir(tmp_path)
    examples = _examples(_page_section("The attack on residual and convolutional networks",
                                       "Attack success against the step budget"))
    assert len(examples) >= 3 and all(argv[0] == "attack-curve" for argv in examples)
    *curves, combine = examples
    small = ["--n", "2", "--train-steps", "20", "--budgets", "2,4", "--no-progress"]
    mlp = curves[0]
    conv_rescaled = next(argv for argv in curves if "--rescale" in argv and "conv" in argv[2])
    conv_standard = next(argv for argv in curves if "standard" in argv and "conv" in argv[2] and "--rescale" not in argv)
    runs = [mlp + ["--training", "linearized", "--width", "4"], conv_rescaled, conv_standard]  # c= sizes the convs
    for argv in runs:
        assert main([*argv, *small]) == 0, argv
    folders = [argv[argv.index("--out") + 1] for argv in runs]
    listed = combine[combine.index("--combine") + 1:combine.index("--out")]
    assert set(folders) <= set(listed)
    assert {argv[argv.index("--out") + 1] for argv in curves} == set(listed)  # the figure draws every run above
    assert main(["attack-curve", "--combine", *folders, *combine[combine.index("--out"):]]) == 0
    for argv in curves:  # the others parse and validate (they run nothing here)
        parsed = cli.build_parser().parse_args(argv)
        attack_curve.check(parsed)
    out = Path(combine[combine.index("--out") + 1])
    record = json.loads((out / "attack_curve.json").read_text())
    assert [entry["arch"] for entry in record["series"]] == [argv[2] for argv in runs]
    assert record["series"][1]["rescaled"] and (out / "attack_curve.png").is_file()
    assert figures.style_problems(attack_curve.curve_axes(record, images=True)) == []


PYTHON_BLOCKS_RUN_BY = {
    ("docs/audit.md", "Bring your own model"): 2,  # test_bring_your_own_model_example_runs_and_is_attacked
    ("docs/extending.md", "Activations"): 1,  # test_activation_registry (softplus)
    ("docs/extending.md", "Layer kinds"): 1,  # test_layer_registry (the Scale layer)
    ("docs/kernels.md", "Analytic and empirical kernels"): 1,  # test_kernels_section_example_runs
    ("docs/kernels.md", "Convolutional and residual kernels"): 1,  # test_conv_kernel_section_example_runs
}
"""The documentation's ```python blocks per (file, the heading they stand under) and the tests that run them
verbatim (each finds its block by that heading's title)."""


def test_every_python_block_of_the_documentation_is_run_by_a_test():
    """A new ```python block in README or a reference page fails here until a test runs it (README's Kernels block
    once used x1, x2 and key without defining them, and no test ran it)."""
    counts = {}
    for path in FILES:
        lines = path.read_text().split("\n")
        marks = headings("\n".join(lines))
        for index, line in enumerate(lines):
            if line == "```python":  # counted under the last heading above it
                title = max((mark for mark in marks if mark[0] < index), default=(0, 0, "(no heading)"))[2]
                key = (str(path.relative_to(ROOT)), title)
                counts[key] = counts.get(key, 0) + 1
    assert counts == PYTHON_BLOCKS_RUN_BY


def test_kernels_section_example_runs():
    """The kernels example (docs/kernels.md) runs as written: NNGP and NTK of the stated shapes, float64, and the
    empirical NTK of the width-1024 network near the analytic one (finite width)."""
    import numpy as np

    (code,) = re.findall(r"```python\n(.*?)```", section("Analytic and empirical kernels"), flags=re.S)
    names = {}
    exec(compile(code, "docs/kernels.md", "exec"), names)
    assert names["nngp"].shape == names["ntk"].shape == (5, 3) and names["ntk"].dtype == np.float64
    assert names["k"].shape == (5, 3, 1, 1)
    arch, params, x1, x2 = (names[name] for name in ("arch", "params", "x1", "x2"))
    diagonal1, diagonal2 = (np.diag(names["analytic_kernel_fn"](arch)(x, x)[1]) for x in (x1, x2))
    relative = np.abs(np.asarray(names["k"])[..., 0, 0] - names["ntk"]) / np.sqrt(np.outer(diagonal1, diagonal2))
    own = np.diag(np.asarray(names["empirical_ntk"](arch, params, x1, x1))[..., 0, 0])
    relative = np.append(relative, np.abs(own / diagonal1 - 1))
    # finite-width fluctuation O(depth / sqrt(1024)) ~ 0.1 of sqrt(Theta(x, x) Theta(x', x')) (measured here: 0.041 on
    # the cross entries, 0.11 on the diagonal); a kernel 20% off in scale fails
    assert relative.max() < 0.2, relative.max()


def test_conv_kernel_section_example_runs(capsys):
    """The example of "Convolutional and residual kernels" (docs/kernels.md) runs and prints its agreement with
    neural-tangents, and the K1 command the section names passes the command line's checks."""
    from proofs_check.cli import COMMANDS, build_parser

    text = section("Convolutional and residual kernels")
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    exec(compile(code, "docs/kernels.md", "exec"), {})
    # the same closed forms in float64 (measured ~1e-16): 1e-10 leaves room for op order
    assert float(capsys.readouterr().out.strip()) <= 1e-10
    (command,) = re.findall(r"`proofs-check (run K1 --arch \"[^\"]+\")`", text)
    args = build_parser().parse_args(shlex.split(command))
    next(c for c in COMMANDS if c.name == args.command).check(args)  # exit 2 here for an architecture K1 refuses


def test_bring_your_own_model_example_runs_and_is_attacked(tmp_path, monkeypatch, capsys):
    """"Bring your own model" (docs/audit.md): the example writes a model in the documented layout, and the attack
    command the paragraph names audits it (here with 20 steps), scoring against the recorded training set; its loss is
    also reported relative to ||theta_f - theta_0||^2."""
    import json

    import jax
    import numpy as np

    text = section("Bring your own model")
    code, training_set = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/audit.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "relu:2"
    exec(compile(training_set, "docs/audit.md", "exec"), {})  # the points training_data names
    assert capsys.readouterr().out.strip() == "(10, 64) (10, 1)"
    (command,) = re.findall(r"`proofs-check (attack --model [^`]+)`", text)
    assert main(shlex.split(command) + ["--steps", "20"]) == 0
    metrics = json.loads((tmp_path / "runs/own-attack/metrics.json").read_text())
    assert metrics["training_data_recorded"] is True
    from numerics.training import load_model

    model = load_model(tmp_path / "runs/own/model.npz")
    change = sum(float(np.sum((f - i) ** 2)) for f, i in zip(jax.tree.leaves(model.params_f),
                                                             jax.tree.leaves(model.params_0)))
    attack = metrics["attack"]
    # the same quotient from the saved arrays: only float64 rounding of the sum of squares (~1e-16) separates them
    assert abs(attack["loss_relative"] - attack["loss_unsmoothed"] / change) <= 1e-12 * attack["loss_relative"]
    assert "of ||Delta theta||^2 after 20 steps" in capsys.readouterr().out
    # --at both sums the loss over two parameter sets: the ratio is per set (1 for lambda = 0, not 2)
    assert main(shlex.split(command.replace("own-attack", "own-both")) + ["--steps", "5", "--at", "both"]) == 0
    both = json.loads((tmp_path / "runs/own-both/metrics.json").read_text())["attack"]
    assert abs(both["loss_relative"] - both["loss_unsmoothed"] / (2 * change)) <= 1e-12 * both["loss_relative"]
    assert (metrics["dataset"], metrics["n"], metrics["seed"], metrics["arch"]) == ("digits/odd_even/train/10@seed0", 10, 0, "relu:2")
