"""The proofs-check command: bad input is one line and exit 2 before any work; help, progress bars, the report.

Every bad-input case runs ``main`` in-process with the expensive entry points (training, the attack, the
claim steps) replaced by functions that fail the test if called: the error must come before any work.
"""

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from rich.console import Console

import numerics  # noqa: F401  (float64 on)
from numerics import attack as attack_module
from numerics.checkpoint import Checkpoint, fingerprint, read_run, write_run
from numerics import audit
from numerics.networks import make_network
from numerics.training import load_model, save_model
from proofs_check import registry
from proofs_check.cli import COMMANDS, main
from proofs_check.registry import Context, Step, exact, fit_loglog_slope, run_step, within
from theory import parse_spec
from theory.architecture import ACTIVATION_PARAMETERS
from theory.expressions import FUNCTIONS, NOT_SMOOTH
from test_checkpoint import press_ctrl_c_where_python_discards_it  # tests/ is on sys.path (prepend import mode)
from test_report import assert_tables_intact  # tests/ is on sys.path (pytest prepend import mode)

MALICIOUS = "__import__('os').system('touch pwned')"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model files: a good one (digits, 64 inputs, 1 output) and crafted bad ones."""
    folder = tmp_path_factory.mktemp("models")
    arch = parse_spec("relu:2")
    network = make_network(arch, 16, 1)
    params_0 = network.init(jax.random.PRNGKey(0), 64)
    params_f = jax.tree.map(lambda a: a * 1.01, params_0)
    good = save_model(folder / "good.npz", params_0, params_f, arch, 16, 1)
    with np.load(good) as data:
        contents = dict(data)
    files = {"good": good}
    (folder / "not_npz.npz").write_text("hello, I am text")
    files["not_npz"] = folder / "not_npz.npz"
    np.savez(folder / "other.npz", weights=np.ones(3))
    files["other"] = folder / "other.npz"
    np.savez(folder / "shapes.npz", **{**contents, "width": np.array(17)})
    files["shapes"] = folder / "shapes.npz"
    np.savez(folder / "evil_spec.npz", **{**contents, "spec": np.array(f"expr:2:phi={MALICIOUS}")})
    files["evil_spec"] = folder / "evil_spec.npz"
    np.savez(folder / "import_spec.npz", **{**contents, "spec": np.array("expr:2:phi=import os")})
    files["import_spec"] = folder / "import_spec.npz"
    np.savez(folder / "pickled.npz", allow_pickle=True, **{**contents, "spec": np.array([object()], dtype=object)})
    files["pickled"] = folder / "pickled.npz"
    key = next(k for k in contents if k.startswith("params_f"))
    np.savez(folder / "ints.npz", **{**contents, key: contents[key].astype(np.int64)})
    files["ints"] = folder / "ints.npz"
    files["missing"] = folder / "nowhere.npz"
    files["recorded"] = save_model(folder / "recorded.npz", params_0, params_f, arch, 16, 1,
                                   training_data=("digits-odd-even", 4, 0))
    np.savez(folder / "half_recorded.npz", **{**contents, "data_n": np.array(4)})
    files["half_recorded"] = folder / "half_recorded.npz"
    recorded = dict(np.load(files["recorded"]))
    np.savez(folder / "bad_record.npz", **{**recorded, "data_seed": np.array(-1)})
    files["bad_record"] = folder / "bad_record.npz"
    np.savez(folder / "unknown_data.npz", **{**recorded, "data_name": np.array("cifar-100")})
    files["unknown_data"] = folder / "unknown_data.npz"
    np.savez(folder / "too_many.npz", **{**recorded, "data_n": np.array(5000)})
    files["too_many"] = folder / "too_many.npz"
    np.savez(folder / "other_dims.npz", **{**recorded, "data_name": np.array("sphere")})
    files["other_dims"] = folder / "other_dims.npz"
    files["unmoved"] = save_model(folder / "unmoved.npz", params_0, params_0, arch, 16, 1)
    files["huge"] = save_model(folder / "huge.npz", params_0, jax.tree.map(lambda a: a * 1e300, params_0), arch, 16, 1)
    files["checkpoint"] = Checkpoint(folder / "train_checkpoint.npz", kind="train").save(params_f, step=1, budget=2)
    return files


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished tiny attack run (for the resume cases)."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["attack", "--n", "4", "--width", "16", "--train-steps", "300", "--steps", "20", "--out", str(out),
                 "--no-progress"]) == 0
    return out


@pytest.fixture
def no_work(monkeypatch):
    """Training, the attack and claim steps fail the test if they start."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the input was validated")

    monkeypatch.setattr(audit, "train_on", forbidden)
    monkeypatch.setattr(attack_module, "parameter_space_attack", forbidden)
    monkeypatch.setattr(registry, "run_step", forbidden)


def _bad_input_cases():
    file_ = "{tmp}/a_file"
    return [
        # the claim runner
        (["run", "K99"], "unknown claim K99"),
        (["run", "K1", "--arch", "tanhh:2"], "unknown activation 'tanhh'"),
        (["run", "K1", "--arch", "relu:two"], "not an integer"),
        (["run", "--profile", "slow"], "invalid choice"),
        (["run", "--seed", "-1"], "--seed: must be an integer from 0"),
        (["run", "--jobs", "0"], "--jobs: must be a positive integer"),
        ([], "required"),
        (["run", "K1", "--arch", "expr:2:phi=import os"], "syntax error at 'import'"),
        (["run", "K1", "--arch", f"expr:2:phi={MALICIOUS}"], "name '__import__' is not allowed"),
        (["run", "K1", "--arch", "expr:2:phi=x.real"], "attribute access '.real'"),
        (["run", "K1", "--arch", "expr:2:phi=tanh(y)"], "name 'y' is not allowed"),
        (["run", "K1", "--out", file_], "exists and is not a folder"),
        (["run", "K1", "--out", file_ + "/sub"], "is a file"),
        (["run", "K1", "--out", "/proc/nowhere/report"], "cannot write to --out /proc/nowhere/report"),
        # the attack: options
        (["attack", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["attack", "--n", "0"], "--n: must be a positive integer"),
        (["attack", "--n", "-3"], "--n: must be a positive integer"),
        (["attack", "--n", "ten"], "'ten' is not an integer"),
        (["attack", "--n", "100000"], "has 1258 distinct training points (625 even, 633 odd)"),
        (["attack", "--n", "7"], "--n must be even"),
        (["attack", "--dataset", "digits-ten-class", "--n", "15"], "--n must be a multiple of 10"),
        (["attack", "--dataset", "digits-ten-class", "--n", "2000"], "at most 1220"),
        (["attack", "--lr", "0"], "--lr: must be a finite number > 0"),
        (["attack", "--lr", "-0.1"], "--lr: must be a finite number > 0"),
        (["attack", "--lr", "nan"], "--lr: must be a finite number > 0"),
        (["attack", "--lr", "inf"], "--lr: must be a finite number > 0"),
        (["attack", "--steps", "0"], "--steps: must be a positive integer"),
        (["attack", "--steps", "-10"], "--steps: must be a positive integer"),
        # 10^23 steps ended in an overflow traceback after training (the compiled loops count in 64-bit integers)
        (["attack", "--steps", "99999999999999999999999"], "--steps: 99999999999999999999999 is too large: at most "
                                                           "2147483647"),
        (["attack", "--train-steps", "2147483648"], "--train-steps: 2147483648 is too large"),
        (["sweep", "--attack-steps", "1" + "0" * 23], "is too large: at most 2147483647"),
        (["sweep", "--widths", "16,99999999999999999999999"], "99999999999999999999999 in '16,99999999999999999999999' "
                                                              "is too large"),
        (["attack-curve", "--budgets", "10,99999999999999999999999"], "is too large: at most 2147483647"),
        (["defend", "--restarts", "99999999999999999999999"], "--restarts: 99999999999999999999999 is too large"),
        (["attack", "--width", "0"], "--width: must be a positive integer"),
        (["attack", "--train-steps", "0"], "--train-steps: must be a positive integer"),
        (["attack", "--recon", "0"], "--recon: must be a positive integer"),
        (["attack", "--recon", "1000000000"], "--recon 1000000000: at most 16384 reconstructions"),
        (["attack", "--arch", "expr:2:phi=import os"], "syntax error at 'import'"),
        (["attack", "--arch", f"expr:2:phi={MALICIOUS}"], "name '__import__' is not allowed"),
        (["attack", "--out", file_], "exists and is not a folder"),
        (["attack", "--out", "/proc/nowhere/run"], "cannot write to --out /proc/nowhere/run"),
        (["attack", "--out", "{tmp}/" + "x" * 300], "File name too long"),
        (["attack", "--out", ""], "an empty folder name"),
        (["attack", "--width", "999999999"], "parameters"),
        (["sweep", "--widths", "999999999", "--datasets", "sphere"], "--widths value 999999999"),
        (["attack", "--dataset", "sphere", "--n", "100000"], "sphere draws at most 20000 points"),
        (["run", "T3", "t3", "--arch", "relu:1"], "T3 checks fixed architectures"),
        (["run", "t99"], "unknown claim t99"),
        (["run", "", "K9"], "unknown claim '', K9; known: "),
        (["attack", "--model", "{tmp}/a_file"], "is not an .npz model file"),
        (["attack", "--model", "{tmp}"], "is a folder, not a model file"),
        (["attack", "--model", "/dev/null"], "/dev/null is not a regular file (a device"),  # read "no such file"
        # the attack: model files
        (["attack", "--model", "{missing}"], "no such file"),
        (["attack", "--model", "{not_npz}"], "not an .npz archive"),
        (["attack", "--model", "{other}"], "is not a saved model of this program: it lacks spec"),
        (["attack", "--model", "{checkpoint}"], "train_checkpoint.npz is a train checkpoint of this program (what "
                                                "--resume continues), not a saved model: pass the model.npz of its run "
                                                "folder (written when training ends)"),
        (["attack", "--model", "{shapes}"], "has shape (64, 16) and dtype float64, expected shape (64, 17)"),
        (["attack", "--model", "{evil_spec}"], "name '__import__' is not allowed"),
        # a traceback after loading, and a --lr hint for a file too large for float64, before
        (["attack", "--model", "{unmoved}"], "unmoved.npz: params_f equals params_0: Delta theta = 0, there is nothing"),
        (["attack", "--model", "{huge}"], "huge.npz: the parameters are too large for float64"),
        (["attack", "--model", "{import_spec}"], "syntax error at 'import'"),
        (["attack", "--model", "{pickled}"], "holds Python objects"),
        (["attack", "--model", "{ints}"], "dtype int64"),
        (["attack", "--model", "{good}", "--dataset", "sphere"],
         "--dataset sphere has 10 inputs and 1 output(s); the network has 64 and 1 (--model)"),
        (["attack", "--model", "{good}", "--dataset", "digits-ten-class"],
         "--dataset digits-ten-class has 64 inputs and 10 output(s); the network has 64 and 1"),
        (["attack", "--model", "{good}", "--width", "64"], "--width describes a network to train"),
        (["attack", "--model", "{recorded}", "--n", "6"], "--model was trained on digits-odd-even, N = 4, seed 0 "
                                                           "(recorded in the file), but --n 6 would score the attack"),
        (["attack", "--model", "{recorded}", "--n", "4", "--seed", "1"], "but --seed 1 would score the attack against "
                                                                          "other points; drop it"),
        (["attack", "--model", "{recorded}", "--dataset", "sphere"], "but --dataset sphere would score"),
        (["attack", "--model", "{run}/model.npz", "--out", "{run}"], "is a file of the run folder --out"),
        (["attack", "--model", "{run}/model.npz", "--out", "{run}", "--resume"], "drop --model, --resume reuses it"),
        (["attack", "--model", "{half_recorded}"], "records data_n but not all of data_name, data_n, data_seed"),
        (["attack", "--model", "{bad_record}"], "bad_record.npz: data_seed must be an integer from 0 to 2**32 - 1, "
                                                "got -1 (its record of the training data)"),
        # a recorded N is the file's fault, named by the file's key, not as an --n the user typed
        (["attack", "--model", "{too_many}"], "too_many.npz: data_n 5000: digits-odd-even has"),
        (["attack", "--model", "{other_dims}"], "other_dims.npz: data_name sphere has 10 inputs and 1 output(s); "
                                                "the network has 64 and 1 (its record of the training data)"),
        (["attack", "--model", "{unknown_data}"], "unknown_data.npz: data_name 'cifar-100' is not one of "
                                                  "digits-odd-even, digits-ten-class, sphere"),
        # a width that sets no layer is not recorded (and enforced on --resume) as if it did
        (["attack", "--arch", "conv3x3:c=2 > relu > gap > dense", "--width", "8"],
         "--width 8 sets no layer of conv3x3:c=2 > relu > gap > dense (channels fixed by c=); drop --width"),
        (["attack", "--arch", "dense", "--width", "8"], "--width 8 sets no layer of dense (no hidden layer)"),
        # specs whose numbers the numerics cannot compute: refused by the spec rules, before training
        (["attack", "--arch", "monomial:2:k=6"], "activation 'monomial': k must be an integer from 1 to 5"),
        (["attack", "--arch", "poly:2:coeffs=0,0,0"], "activation 'poly': phi=0 is the zero function"),
        (["attack", "--arch", "expr:2:phi=0"], "phi=0 is the zero function: its kernel is 0"),
        (["attack", "--arch", "abrelu:2:a=0:b=0"], "activation 'abrelu': phi=0 is the zero function"),
        (["run", "D1", "--arch", "leaky_relu:2:alpha=1e308"], "every number of an activation's parameters must be"),
        (["attack", "--arch", "expr:1:phi=sin(x)**2+cos(x)**2-1"], "is numerically the zero function"),
        (["run", "D1", "--arch", "relu:2:sw=1e308"], "sigma_w (sw) of a dense layer must be from 0.001 to 1000"),
        (["attack", "--arch", "relu:2:sw=1e-300"], "must be from 0.001 to 1000"),
        # attack-curve: the attack's width rule, no series twice, --combine never overwrites an input
        (["attack-curve", "--arch", "conv3:c=4 > relu > gap > dense", "--width", "32"],
         "--width 32 sets no layer of conv3:c=4 > relu > gap > dense (channels fixed by c=); drop --width"),
        (["attack-curve", "--arch", "relu:2", "--arch", "relu:2"], "--arch relu:2 is given twice"),
        (["attack-curve", "--arch", "relu:2", "--arch", "dense > relu > dense > relu > dense"],
         "--arch relu:2 is given twice (each would train and attack the same series)"),
        # run: the same rule (cli.given_twice); the report listed archs ['relu:2', 'relu:2'] and every row twice
        (["run", "K1", "--arch", "relu:2", "--arch", "dense > relu > dense > relu > dense"],
         "--arch relu:2 is given twice (each claim would check it twice)"),
        (["attack-curve", "--training", "standard", "--training", "standard"], "--training standard is given twice"),
        (["attack-curve", "--combine", "{run}", "--out", "{run}"], "is one of the --combine folders"),
        (["attack-curve", "--combine", "{run}", "{run}/../run", "--out", "{tmp}/c"], "is given twice"),
        # sweep: sizes named by their option; a grid too large to list is refused before listing it
        (["sweep", "--widths", "16,0"], "argument --widths: '0' in '16,0' is not a positive integer"),
        (["sweep", "--seeds", "100000000"], "the grid has 4,800,000,000 cells, more than the 100,000"),
        # the attack: resuming a run folder with other settings
        (["attack", "--n", "6", "--width", "16", "--train-steps", "300", "--steps", "20", "--resume",
          "--out", "{run}"], "--n is 6 (as given) but the run in"),
        (["attack", "--n", "4", "--width", "16", "--train-steps", "300", "--steps", "20", "--lr", "0.01", "--resume",
          "--out", "{run}"], "--lr is 0.01 (as given) but the run in"),
        (["attack", "--n", "4", "--width", "32", "--train-steps", "300", "--steps", "20", "--resume",
          "--out", "{run}"], "--width is 32"),
        (["attack", "--n", "4", "--width", "16", "--train-steps", "300", "--steps", "10", "--resume",
          "--out", "{run}"], "already at step 20; --steps 10 is below it"),
        (["attack", "--model", "{good}", "--n", "4", "--steps", "20", "--resume", "--out", "{run}"],
         "good.npz (fingerprint "),  # ... "but the run in {run} used a model trained here" (the next test)
        (["attack", "--n", "4", "--width", "16", "--train-steps", "300", "--steps", "20", "--attack-seed", "3",
          "--resume", "--out", "{run}"], "--attack-seed is 3 (as given) but the run in"),
        # a changed --seed is named, not the --attack-seed that was set equal to the old one
        (["attack", "--n", "4", "--width", "16", "--train-steps", "300", "--steps", "20", "--seed", "3",
          "--attack-seed", "0", "--resume", "--out", "{run}"],
         "--seed is 3 (as given) but the run in"),
    ]


@pytest.mark.parametrize("argv, message", _bad_input_cases(), ids=lambda value: " ".join(value)[:60]
                         if isinstance(value, list) else None)
def test_bad_input_is_one_line_and_exit_2_before_any_work(argv, message, models, run_folder, no_work, tmp_path,
                                                          monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    names = {**{k: str(v) for k, v in models.items()}, "run": str(run_folder), "tmp": str(tmp_path)}
    argv = [arg.format(**names) for arg in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("proofs-check: error: "), captured.err
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written (no 'pwned' either)


def test_resuming_with_another_model_names_both_models(models, run_folder, no_work, tmp_path, capsys):
    """The refusal said "--model is a different model but the run in DIR used a different model": it names the
    --model file and the run's model, by fingerprint or as trained in the folder."""
    good = load_model(models["good"])
    given = fingerprint(good.params_0, good.params_f)
    attacked = tmp_path / "attacked"  # a run folder that attacked a --model file (its record is all --resume reads)
    attacked.mkdir()
    record = read_run(run_folder)
    write_run(attacked, {**record, "settings": {**record["settings"], "model": "0123456789abcdef"}})
    resume = ["--n", "4", "--steps", "20", "--resume", "--out"]
    for argv, words in [
            (["--model", str(models["good"]), *resume, str(run_folder)],
             f"--model is {models['good']} (fingerprint {given}) but the run in {run_folder} used a model trained "
             "here; resume with the same settings"),
            (["--model", str(models["good"]), *resume, str(attacked)],
             f"--model is {models['good']} (fingerprint {given}) but the run in {attacked} used another model "
             "(fingerprint 0123456789abcdef); resume"),
            (["--width", "16", "--train-steps", "300", *resume, str(attacked)],
             f"--model is not given (a model trained here) but the run in {attacked} used another model "
             "(fingerprint 0123456789abcdef); resume")]:
        assert main(["attack", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err


def test_typed_options_give_the_command_line_again(tmp_path, monkeypatch):
    """What a run records for --resume: the options typed, each as words that parse to the same value (a repeated
    option once per value, a list option once with its values, a file by its absolute path), no defaults."""
    from proofs_check.cli import typed_options

    monkeypatch.chdir(tmp_path)
    assert typed_options(["attack", "--n", "4", "--arch=relu:2", "--rescale", "--model", "m.npz", "--out", "x"]) == {
        "n": ["--n=4"], "arch": ["--arch=relu:2"], "rescale": ["--rescale"], "model": [f"--model={tmp_path / 'm.npz'}"],
        "out": [f"--out={tmp_path / 'x'}"]}
    assert typed_options(["attack-curve", "--training", "standard", "--training", "linearized", "--combine", "a", "b"]) \
        == {"training": ["--training=standard", "--training=linearized"],
            "combine": ["--combine", str(tmp_path / "a"), str(tmp_path / "b")]}
    assert typed_options(["run", "K1", "D1", "--seed", "3"]) == {"ids": ["K1", "D1"], "seed": ["--seed=3"]}


def test_resume_takes_the_options_the_run_recorded(models, tmp_path, monkeypatch, capsys):
    """--resume --out DIR alone continues a run: the options it was started with come from its run.json (typed ones
    win and must match; a file by its absolute path, so another working folder reads the same file). --model and
    the network to train say one thing two ways: a typed --width adds no recorded --model. A run folder that
    records no options (written before they were recorded) names the default that differs."""
    out = tmp_path / "run"
    monkeypatch.chdir(models["good"].parent)
    assert main(["attack", "--model", models["good"].name, "--n", "4", "--steps", "4", "--lr", "0.03",
                 "--no-progress", "--out", str(out)]) == 0
    recorded = {"model": [f"--model={models['good']}"], "n": ["--n=4"], "steps": ["--steps=4"], "lr": ["--lr=0.03"]}
    assert read_run(out)["options"] == recorded
    assert json.loads((out / "metrics.json").read_text())["software"]["jax"] == "0.5.3"
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["attack", "--resume", "--steps", "8", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (f"resuming with the options {out / 'run.json'} records: --model={models['good']} --n=4 --lr=0.03\n"
            in printed)
    # not a terminal: each printed line stays one line (cli.command_console), e.g. the files (3 long paths)
    assert f"\nfiles: {out / 'curve.png'}, {out / 'reconstructions.png'}, {out / 'metrics.json'}\n" in printed
    assert json.loads((out / "metrics.json").read_text())["attack"]["resumed_from"] == 4
    assert read_run(out)["options"] == {**recorded, "steps": ["--steps=8"]}
    for argv, words in [
            (["--lr", "0.1"], f"--lr is 0.1 (as given) but the run in {out} used 0.03; resume with the same settings"),
            (["--width", "16"], f"--model is not given (a model trained here) but the run in {out} used "
                                f"{models['good']} (fingerprint ")]:
        assert main(["attack", "--resume", *argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    write_run(out, {**read_run(out), "options": {"steps": ["--bogus=1"]}})
    assert main(["attack", "--resume", "--out", str(out)]) == 2
    assert (f"the run in {out} records options that cannot be used now (unrecognized arguments: --bogus=1); give its "
            "options on the command line, or drop --resume" in capsys.readouterr().err)
    write_run(out, {key: value for key, value in read_run(out).items() if key != "options"})
    assert main(["attack", "--resume", "--model", str(models["good"]), "--out", str(out)]) == 2
    assert (f"--n is 20 (its default) but the run in {out} used 4; resume with the same settings, or drop --resume to "
            "start afresh (its run.json predates recorded options: type the run's options with --resume)"
            in capsys.readouterr().err)
    record = read_run(out)  # a damaged record without a setting: named as missing ("used None" before)
    write_run(out, {**record, "settings": {k: v for k, v in record["settings"].items() if k != "dataset"}})
    assert main(["attack", "--resume", "--model", str(models["good"]), "--n", "4", "--out", str(out)]) == 2
    assert (f"--dataset is digits-odd-even (its default) but the run in {out} records no --dataset; resume"
            in capsys.readouterr().err)


def test_help_shows_defaults_as_the_options_take_them(capsys, monkeypatch):
    """attack-curve's --budgets default read "(100, 250, 500, 1000, 2000)", a Python tuple; the option takes
    100,250,500,1000,2000. No command shows a default as Python writes it."""
    monkeypatch.setenv("COLUMNS", "250")
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            main([command.name, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert not re.search(r"default: [(\[]", text), (command.name, text)
        if command.name == "attack-curve":
            assert "the attack runs the largest (default: 100,250,500,1000,2000)" in text, text


def test_help_shows_defaults_and_the_registered_activations(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # no line breaks inside the values looked for
    with pytest.raises(SystemExit) as exit_:
        main(["attack", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("(default: 0.02)", "(default: 10000)", "(default: digits-odd-even, or what --model records)",
                     "(default: relu:2)", "(default: 1024)", "(default: 20000)", "(default: linearized)",
                     "(default: reports/attack)", "(default: 0, or what --model records)",
                     "(default: 20, or what --model records)", "(default: 2N)", "(default: the --seed value)"):
        assert expected in text, expected
    for name in ACTIVATION_PARAMETERS:
        assert name in text
    for name, (function, _, _) in FUNCTIONS.items():  # every function a formula may use, and no kinked one
        assert (f" {name}," in text) == (function not in NOT_SMOOTH), name


def test_every_command_has_help_and_validates_before_work():
    for command in COMMANDS:
        assert command.help and callable(command.run) and callable(command.check)


@pytest.mark.parametrize("width", [200, 80, 59, 40])
def test_progress_bars_show_full_totals_at_any_width(width):
    from numerics.progress import progress_bar

    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    with progress_bar(console=console, value_name="objective") as bar:
        bar.add_task("K1: (c) empirical NTK approaches Theta at rate m^-1/2 for relu:2:sb=0.1:param=standard",
                     total=20000, completed=135, value=1.25e-3)
    last_frame = console.file.getvalue().split("\r")[-1]
    assert "135/20000" in last_frame and "objective 1.250e-03" in last_frame


@pytest.mark.parametrize("lr, mode, words", [
    ("1e300", "joint", "its reconstructions are not finite after 20 steps"),
    ("1e12", "joint", "above 1000 times where it started"),
    ("2", "profiled", "above where it started (4.144; both at the final softplus sharpness): the steps made no "
                      "progress")])
def test_a_diverged_attack_is_one_line_and_exit_1(models, tmp_path, capsys, lr, mode, words):
    """A step size that sends the reconstructions to inf is no traceback from the scoring, and one that blows the
    objective up to finite but absurd values (3e46 at --lr 1e12) is no leakage table with exit 0: one line, exit 1.
    The profiled objective is bounded; a step that only raises it (4.14 -> 28.6 at --lr 2) is caught as well."""
    argv = ["attack", "--model", str(models["good"]), "--n", "4", "--steps", "20", "--lr", lr, "--mode", mode,
            "--no-progress", "--out", str(tmp_path / "run")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the attack diverged: its " in err and words in err, err
    assert f"smaller --lr (now {float(lr):g})" in err, err


@pytest.mark.parametrize("second", [["sweep", "--widths", "16", "--ns", "4", "--seeds", "1"], ["run", "T3"],
                                    ["defend", "--per-class", "1", "--sizes", "10"], ["attack-curve", "--n", "4"]])
def test_a_folder_holds_one_commands_results(second, tmp_path, capsys):
    """Each of these used to exit 0 into an attack's folder, leaving the two commands' files mixed in it; the first
    command's folder is refused by the second before any work, and the first may still rerun there."""
    from proofs_check.cli import OWNER_FILE

    out = tmp_path / "a"
    out.mkdir()
    (out / OWNER_FILE).write_text("attack\n")  # what an attack run leaves (checked end to end in the next test)
    assert main([*second, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"holds the results of 'attack', not of {second[0]!r}" in err, err
    assert sorted(p.name for p in out.iterdir()) == [OWNER_FILE]


def _work_started(argv) -> bool:
    """Whether ``main(argv)`` got past its input checks (the no_work fixture's AssertionError says it did)."""
    try:
        main(argv)
    except AssertionError:
        return True
    return False


def test_a_folder_of_the_users_own_files_is_not_overwritten(no_work, tmp_path, capsys):
    """A folder without a proofs-check run that holds files of its own (the user's model.npz, saved with save_model;
    a results.csv) is refused before any work: an attack there replaced that model silently, and any command could
    replace a file of the same name as one of its own (new users' trials)."""
    own = tmp_path / "own"
    own.mkdir()
    (own / "model.npz").write_bytes(b"the user's own network")
    assert main(["attack", "--n", "4", "--width", "16", "--out", str(own)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds model.npz but no proofs-check run: a run there would replace it" in err, err
    assert (own / "model.npz").read_bytes() == b"the user's own network"
    (own / "run.json").write_text("{}")  # a run folder from before the folder marker existed: started afresh
    assert _work_started(["attack", "--n", "4", "--width", "16", "--out", str(own)]), capsys.readouterr().err
    (own / "run.json").unlink()
    (own / ".proofs-check-command").unlink()
    # any command: files that no proofs-check command wrote are refused, named (a sweep's results.csv, a figure, a
    # metrics.json of the user's own would be replaced: a new user's trial lost them); hidden files do not count
    (own / "results.csv").write_text("the user's own table")
    for argv in (["sweep", "--widths", "16", "--ns", "4", "--seeds", "1", "--out", str(own)],
                 ["run", "K1", "--out", str(own)], ["defend", "--out", str(own)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds files not marked as proofs-check results (model.npz, results.csv): a " \
            "run there could replace them; choose an empty or new --out, or remove them" in err, err
    assert (own / "results.csv").read_text() == "the user's own table"
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_bytes(b"")
    assert _work_started(["sweep", "--widths", "16", "--ns", "4", "--seeds", "1", "--out", str(hidden)]), \
        capsys.readouterr().err
    # a report folder written before folders were marked is proofs-check's own: run fills it again
    old_report = tmp_path / "old-report"
    old_report.mkdir()
    (old_report / "report.json").write_text("{}")
    (old_report / "report.md").write_text("")
    assert _work_started(["run", "T3", "--out", str(old_report)]), capsys.readouterr().err


def test_a_damaged_run_record_blocks_only_a_resume(models, tmp_path, capsys):
    """README: without --resume a run folder is started afresh; a damaged run.json used to block that too."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{bad json")
    argv = ["attack", "--model", str(models["good"]), "--n", "4", "--steps", "4", "--no-progress", "--out", str(out)]
    assert main([*argv, "--resume"]) == 2
    assert "run.json is unreadable" in capsys.readouterr().err
    assert main(argv) == 0
    assert json.loads((out / "run.json").read_text())["command"] == "attack"


def test_a_file_that_cannot_be_read_is_named_so(models, tmp_path, monkeypatch, capsys):
    """A run folder, run.json, a checkpoint or a model the user may not read: one line saying so (an unreadable
    folder was a PermissionError traceback; an unreadable model or checkpoint was called "not an .npz archive", an
    unreadable marker "the results of 'an unreadable'"). Permissions are simulated: the tests may run as root."""
    import pathlib

    from numerics.checkpoint import CheckpointError, FileError, read_npz

    forbidden = set()
    real_is_file, real_open = pathlib.Path.is_file, io.open

    def is_file(path):  # a folder without read and search permission: nothing in it can be looked at
        if path.parent in forbidden:
            raise PermissionError(13, "Permission denied", str(path))
        return real_is_file(path)

    def opened(file, *args, **kwargs):
        if Path(file) in forbidden:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "is_file", is_file)
    monkeypatch.setattr(io, "open", opened)
    monkeypatch.setattr("builtins.open", opened)
    out = tmp_path / "run"
    out.mkdir()
    forbidden.add(out)
    with pytest.raises(CheckpointError, match=f"^cannot read {re.escape(str(out / 'run.json'))}: Permission denied$"):
        read_run(out)
    assert main(["attack", "--resume", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"proofs-check: error: cannot read {out / 'run.json'}: Permission denied\n"
    forbidden.clear()
    forbidden.add(models["good"])
    with pytest.raises(FileError, match=f"^cannot read {re.escape(str(models['good']))}: Permission denied$"):
        read_npz(models["good"], what="saved model")
    assert main(["attack", "--model", str(models["good"]), "--out", str(out)]) == 2
    assert f"cannot read {models['good']}: Permission denied" in capsys.readouterr().err
    forbidden.clear()
    (out / ".proofs-check-command").write_text("attack\n")
    forbidden.add(out / ".proofs-check-command")
    assert main(["attack", "--model", str(models["good"]), "--n", "4", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"proofs-check: error: --out {out}: cannot read {out / '.proofs-check-command'}: Permission denied, so whose "
        "results the folder holds is unknown; choose another --out\n")


def test_out_of_memory_is_one_line_not_a_traceback(monkeypatch, tmp_path, capsys):
    """defend on a convolutional chain asked XLA for 39 GB and ended in an XlaRuntimeError traceback: a run too big
    for the machine is one line and exit 1 (here a real RESOURCE_EXHAUSTED from XLA, 40 TB asked)."""
    import jax.numpy as jnp

    from proofs_check import cli

    def too_big(args):
        return int(jnp.ones((10**7, 10**6)).block_until_ready()[0, 0])

    command = next(c for c in cli.COMMANDS if c.name == "distill")
    monkeypatch.setattr(cli, "COMMANDS", tuple(dataclasses.replace(c, run=too_big) if c is command else c
                                                for c in cli.COMMANDS))
    assert main(["distill", "--out", str(tmp_path / "d")]) == 1
    assert capsys.readouterr().err == (
        "proofs-check: error: out of memory (an allocation of 80,000.0 GB): the sizes asked for do not fit this machine; "
        "rerun with fewer points, reconstructions, channels or a smaller width (what the run folder saved is kept)\n")


def test_an_attack_marks_its_folder_and_reruns_there(models, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["attack", "--model", str(models["good"]), "--n", "4", "--steps", "4", "--no-progress", "--out", str(out)]
    assert main(argv) == 0 and main(argv) == 0
    assert main(["sweep", "--widths", "16", "--ns", "4", "--seeds", "1", "--out", str(out)]) == 2
    assert "holds the results of 'attack', not of 'sweep'" in capsys.readouterr().err


def test_a_slow_sound_attack_is_not_called_diverged(tmp_path, capsys):
    """A tiny step barely moves X_R, while annealing beta raises the smoothed objective (163 -> 172 at --lr 1e-5):
    the rule compares both ends at the final beta, so such a run is scored, not refused with a 'smaller --lr' hint."""
    argv = ["attack", "--n", "4", "--width", "32", "--train-steps", "50", "--steps", "20", "--lr", "1e-5", "--mode",
            "profiled", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["attack"]["objective"] > metrics["attack"]["objective_at_start"], metrics["attack"]


def test_a_diverged_series_of_attack_curve_is_one_line_and_exit_1(tmp_path, capsys):
    """attack-curve asks the same divergence rule as attack: a series whose attack blew up is not scored."""
    argv = ["attack-curve", "--arch", "relu:2", "--training", "linearized", "--width", "32", "--n", "4",
            "--train-steps", "50", "--budgets", "20", "--lr", "1e12", "--no-progress", "--out", str(tmp_path / "c")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the attack on relu:2 (linearized) diverged: its " in err, err
    assert "smaller --lr (now 1e+12)" in err and not (tmp_path / "c" / "attack_curve.json").exists(), err


def test_a_discarded_ctrl_c_ends_a_finished_command_with_130_and_one_line(monkeypatch, capsys):
    """A Ctrl-C whose KeyboardInterrupt Python discarded (raised in a gc callback, as in JAX's) once let the
    command go on and exit 0; it is honoured before success is reported, and the discarded exception is not
    printed."""
    list_command = next(c for c in COMMANDS if c.name == "list")
    real = list_command.run

    def list_then_ctrl_c(args):
        press_ctrl_c_where_python_discards_it()
        return real(args)

    import proofs_check.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", tuple(dataclasses.replace(c, run=list_then_ctrl_c) if c is list_command
                                               else c for c in COMMANDS))
    assert main(["list"]) == 130
    captured = capsys.readouterr()
    assert "K1" in captured.out  # the listing was printed in full
    assert captured.err == ("proofs-check: interrupted (Ctrl-C took effect only as the command finished): its "
                            "results are complete\n")


def test_a_ctrl_c_as_the_program_ends_is_one_line_and_130(tmp_path):
    """As the program (no argv) the process ends without the interpreter's teardown, during which Python had put back
    the default Ctrl-C action (a Ctrl-C there killed it silently, status 130): one pressed after the command's work
    still gives the one line and 130."""
    script = ("import os, signal, sys\n"
              "from proofs_check import cli\n"
              "command = cli._command\n"
              "def then_ctrl_c(*args, **kwargs):\n"
              "    result = command(*args, **kwargs)\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    return result\n"
              "cli._command = then_ctrl_c\n"
              "sys.argv = ['proofs-check', 'list']\n"
              "cli.main()\n"
              "print('main returned', file=sys.stderr)\n")
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert process.returncode == 130, process.stderr
    assert process.stderr == ("proofs-check: interrupted (Ctrl-C took effect only as the command finished): its "
                              "results are complete\n")
    assert "K1" in process.stdout


def test_progress_value_is_pending_before_the_first_update_and_nan_stays_visible():
    from numerics.progress import PENDING, progress_bar

    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system=None)
    with progress_bar(console=console, value_name="objective") as bar:
        bar.add_task("waiting", total=10, value=None)
        bar.add_task("diverged", total=10, completed=3, value=float("nan"))
    frame = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue().split("\r")[-1])
    lines = {line.split()[0]: line for line in frame.splitlines() if line.strip()}
    assert lines["waiting"].rstrip().endswith(f"objective {PENDING}") and "nan" not in lines["waiting"]
    assert lines["diverged"].rstrip().endswith("objective nan")


@pytest.mark.parametrize("flag, bar", [([], True), (["--no-progress"], False)])
def test_run_takes_no_progress_for_its_bar_and_then_prints_a_line_per_claim(flag, bar, tmp_path, monkeypatch):
    """run draws a progress bar on a terminal; --no-progress (the shared option) asks for none, and then, as in a log,
    a line says when each claim ended."""
    from numerics import progress
    from proofs_check import claims, cli
    from proofs_check.registry import Claim, Step, within

    one = Claim(id="X1", title="a claim", statement="s", assumptions=[],
                checks=[Step("a check", "", lambda ctx: within("error", 0.0, 1.0, "r"))])
    monkeypatch.setattr(claims, "load_claims", lambda: {"X1": one})
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    monkeypatch.setattr(cli, "command_console", lambda: console)
    asked = []
    real_bar = progress.progress_bar
    monkeypatch.setattr(progress, "progress_bar", lambda **kwargs: asked.append(kwargs["enabled"]) or real_bar(**kwargs))
    assert main(["run", "X1", *flag, "--out", str(tmp_path)]) == 0
    assert asked == [bar] and ("X1: passed (1 outcome" in console.file.getvalue()) is not bar


def test_list_shows_k1(capsys):
    assert main(["list"]) == 0
    assert "K1" in capsys.readouterr().out


def test_list_marks_the_claims_that_take_arch(capsys):
    """A trial had to read docs/claims.md to learn which claims --arch changes; list now says, from the registry."""
    from proofs_check.claims import load_claims

    assert main(["list"]) == 0
    rows = {line.split("│")[1].strip(): line.split("│")[-2].strip() for line in capsys.readouterr().out.splitlines()
            if line.startswith("│")}
    assert {claim_id for claim_id, mark in rows.items() if mark == "yes"} == \
        {claim.id for claim in load_claims().values() if claim.uses_archs} >= {"K1", "D1", "R1"}


def readme_spec_examples() -> list[str]:
    """The architecture specs that README's spec grammar section offers as examples."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = text[text.index("Examples: `"):].split("\n\n")[0]
    return re.findall(r"`([^`]+)`", line)


def test_k1_passes_on_every_readme_spec_example_and_writes_report(tmp_path, capsys):
    specs = readme_spec_examples()
    assert len(specs) >= 5 and "relu:2:sb=0.1:param=standard" in specs
    assert main(["run", "K1", "--out", str(tmp_path)] + [f"--arch={spec}" for spec in specs]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    # without a terminal (a log, CI) no progress bar is drawn: a line says when each claim ended, before the table
    (k1_report,) = report["claims"]
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"K1: passed \({len(k1_report['outcomes'])} outcomes\) in \d+ s", lines[0]), lines[0]
    assert re.fullmatch(rf"K1 passed in \d+ s; report: {tmp_path / 'report.md'} and {tmp_path / 'report.json'}",
                        lines[-1]), lines[-1]  # one claim: named, not "all claims passed"
    assert report["schema"] == 3 and report["passed"] and report["profile"] == "quick"
    from numerics.checkpoint import software  # what produced the report: versions and the code's fingerprint

    assert report["software"] == software() and report["software"]["neural-tangents"] == "0.6.5"
    assert re.fullmatch(r"[0-9a-f]{12}", report["software"]["code"])
    (k1,) = report["claims"]
    kinds = {o["kind"] for o in k1["outcomes"]}
    assert kinds == {"derivation", "check", "counterexample"}
    assert all(o["status"] in ("pass", "n/a") and o["reason"] for o in k1["outcomes"])
    figures = {f for o in k1["outcomes"] for f in o["figures"]}
    assert figures and all((tmp_path / f).is_file() for f in figures)
    assert "K1" in (tmp_path / "report.md").read_text()
    assert assert_tables_intact((tmp_path / "report.md").read_text()) == len(k1["outcomes"])


def test_ctrl_c_before_a_run_folder_holds_a_run_says_rerun_not_resume(tmp_path, monkeypatch, capsys):
    """--resume is advice only where the folder holds a run to resume (it once was given with no folder at all)."""
    import proofs_check.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "start_or_resume", interrupted)
    assert main(["attack", "--n", "4", "--width", "8", "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted; nothing was saved yet: rerun the same command to "
                                       "start again\n")


def test_an_attack_refuses_a_folder_of_another_command_even_when_starting_afresh(tmp_path, capsys):
    """Starting afresh removes only an attack's own files: in a distillation's folder the two runs' files mixed."""
    from numerics.checkpoint import write_run

    write_run(tmp_path, {"command": "distill", "settings": {}})
    assert main(["attack", "--n", "4", "--width", "8", "--out", str(tmp_path)]) == 2
    assert "holds a 'distill' run, not an attack; choose another --out" in capsys.readouterr().err
    write_run(tmp_path, {"command": "attack", "settings": {}})  # the article follows the word ("a 'attack' run")
    assert main(["attack-curve", "--n", "4", "--out", str(tmp_path)]) == 2
    assert "holds an 'attack' run, not an attack-curve run; choose another --out" in capsys.readouterr().err


def test_ctrl_c_during_claims_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(kind, step, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "run_step", interrupted)
    (tmp_path / "report.json").write_text("{}")  # an earlier run's report: it would look like this run's
    assert main(["run", "K1", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("proofs-check: interrupted during K1:") and "no report" in err
    assert not (tmp_path / "report.json").exists()


def test_ctrl_c_after_a_claim_finished_keeps_its_report(tmp_path, monkeypatch, capsys):
    """run T3 T1 interrupted during T1 said "no report written" although T3 had passed: the finished claims are
    written, the report marked incomplete (passed: null), the claims not run named."""
    from proofs_check.claims import load_claims

    second = [id(step) for _, step in load_claims()["D1"].steps()]

    def interrupted_in_d1(kind, step, ctx):
        if id(step) in second:
            raise KeyboardInterrupt
        # T3's steps stand in as passed: the report's writing is under test, not T3 (its real run took 6 s)
        return [registry.Outcome(name=step.name, passed=True, measured=0, expected="0", reason="a stand-in")]

    monkeypatch.setattr(registry, "run_step", interrupted_in_d1)
    assert main(["run", "T3", "D1", "R1", "--jobs", "1", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("proofs-check: interrupted during D1: "), err
    assert err.endswith(f"the report of the 1 finished claim (T3) is in {tmp_path / 'report.md'} and "
                        f"{tmp_path / 'report.json'}, marked incomplete\n"), err
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["complete"], report["passed"], report["not_run"]) == (False, None, ["D1", "R1"])
    assert [claim["id"] for claim in report["claims"]] == ["T3"] and report["claims"][0]["passed"]
    assert "Overall: **INCOMPLETE**" in (tmp_path / "report.md").read_text()


def test_outcome_helpers_can_fail():
    assert not within("x", 2e-10, 1e-10, "r").passed
    assert not within("x", float("nan"), 1.0, "r").passed
    assert not exact("x", 1).passed and exact("x", 0).passed


def test_a_raising_step_is_a_failed_outcome(tmp_path):
    def boom(ctx):
        raise RuntimeError("kaput")

    (outcome,) = run_step("check", Step("boom", "", boom), Context(out_dir=tmp_path))
    assert not outcome.passed and "kaput" in outcome.details["error"]
    line = boom.__code__.co_firstlineno + 1
    assert outcome.details["where"] == f"tests/test_cli.py:{line} in boom"  # the report row says where it raised
    from proofs_check.report import _error

    assert _error(outcome.details).endswith(f"(at tests/test_cli.py:{line} in boom)")

    def deep(ctx):  # raised inside numpy (site-packages, which may lie inside the checkout's .venv): our frame is named
        np.linalg.inv(np.zeros((2, 2)))

    (outcome,) = run_step("check", Step("deep", "", deep), Context(out_dir=tmp_path))
    assert outcome.details["where"] == f"tests/test_cli.py:{deep.__code__.co_firstlineno + 1} in deep"


def test_loglog_slope_recovers_exponent():
    widths = [10, 100, 1000]
    slope, _ = fit_loglog_slope(widths, [3 * w**-0.5 for w in widths])
    assert abs(slope + 0.5) <= 1e-12  # exact power law: only round-off


def test_not_applicable_neither_passes_nor_fails():
    from proofs_check.registry import Claim, ClaimResult, not_applicable

    na = not_applicable("no closed form", "quadrature instead")
    assert na.status == "n/a" and not na.passed and not na.failed
    assert na.as_dict()["passed"] is None and na.as_dict()["status"] == "n/a"  # report.json: neither
    assert within("x", 0.0, 1.0, "r").as_dict()["passed"] is True
    assert within("x", 2.0, 1.0, "r").as_dict()["passed"] is False
    claim = Claim(id="X", title="", statement="", assumptions=[])
    assert not ClaimResult(claim, [na], 0.0).passed  # nothing applicable: no verdict to give
    assert ClaimResult(claim, [na, within("x", 0.0, 1.0, "r")], 0.0).passed
    assert not ClaimResult(claim, [na, within("x", 2.0, 1.0, "r")], 0.0).passed


def test_bootstrap_slope_interval_covers_the_exponent_and_can_fail():
    from proofs_check.registry import bootstrap_loglog_slope, rate_interval, slope_below, slope_in_band

    rng = np.random.default_rng(0)
    widths = np.array([64, 128, 256, 512, 1024])
    noisy = widths**-0.5 * np.exp(0.1 * rng.normal(size=(12, widths.size)))  # 10% multiplicative seed noise
    fit = bootstrap_loglog_slope(widths, noisy, rng=np.random.default_rng(1), n_boot=500)
    assert fit.low < fit.slope < fit.high and fit.width < 0.2
    assert rate_interval("r", fit, -0.5, "r", max_width=0.3).passed
    assert not rate_interval("r", fit, -0.25, "r").passed  # a wrong exponent lies outside the interval
    assert not rate_interval("r", fit, -0.5, "r", max_width=fit.width / 2).passed  # too wide to say anything
    assert slope_below("decreasing", fit, 0.0, "r").passed
    assert slope_in_band("band", fit, -0.7, -0.3, "r").passed
    assert not slope_in_band("band", fit, -0.45, -0.3, "r").passed  # the interval sticks out of the band
    flat = 0.3 * np.exp(0.1 * rng.normal(size=(12, widths.size)))
    assert not slope_below("decreasing", bootstrap_loglog_slope(widths, flat, rng=np.random.default_rng(2),
                                                                n_boot=500), 0.0, "r").passed


def test_seeds_double_until_the_slope_interval_is_narrow_and_only_then():
    """bootstrap_loglog_slope_to_precision asks for more seeds (contiguous ranges) while the interval is wider than
    the precision, stops at `most`, and never extends a narrow interval, wherever it lies (a wrong exponent
    measured precisely still fails the band)."""
    from proofs_check.registry import bootstrap_loglog_slope, bootstrap_loglog_slope_to_precision, slope_in_band

    widths = np.array([64, 128, 256, 512, 1024])

    def measurer(exponent, spread):
        draws = np.random.default_rng(3).lognormal(sigma=spread, size=(160, widths.size))  # heavy right tail
        calls = []

        def measure(start, stop):
            calls.append((start, stop))
            return widths**exponent * draws[start:stop]
        return measure, calls

    measure, calls = measurer(-0.5, 1.0)
    fit, values = bootstrap_loglog_slope_to_precision(widths, measure, seeds=10, most=160, precision=0.25,
                                                      rng=np.random.default_rng(0))
    assert calls[0] == (0, 10) and all(b[0] == a[1] and b[1] == min(2 * a[1], 160) for a, b in zip(calls, calls[1:]))
    assert len(calls) > 1 and values.shape == (calls[-1][1], widths.size) and fit.n_seeds == len(values)
    assert fit.width <= 0.25 or len(values) == 160
    first = bootstrap_loglog_slope(widths, measurer(-0.5, 1.0)[0](0, 10), rng=np.random.default_rng(0))
    assert first.width > 0.4 and not slope_in_band("b", first, -0.7, -0.3, "r").passed  # 10 seeds: too wide
    assert slope_in_band("b", fit, -0.7, -0.3, "r").passed
    measure, calls = measurer(0.0, 0.05)   # a wrong exponent (no decay), measured precisely: no more seeds, fails
    fit, values = bootstrap_loglog_slope_to_precision(widths, measure, seeds=10, most=160, precision=0.25,
                                                      rng=np.random.default_rng(0))
    assert calls == [(0, 10)] and not slope_in_band("b", fit, -0.7, -0.3, "r").passed
    measure, calls = measurer(-0.5, 3.0)   # never narrow enough: stops at most and judges what it has
    fit, values = bootstrap_loglog_slope_to_precision(widths, measure, seeds=10, most=40, precision=0.01,
                                                      rng=np.random.default_rng(0))
    assert calls == [(0, 10), (10, 20), (20, 40)] and fit.n_seeds == 40
    with pytest.raises(ValueError, match="seeds"):
        bootstrap_loglog_slope_to_precision(widths, measure, seeds=1, most=4, precision=0.1,
                                            rng=np.random.default_rng(0))


def test_saved_model_round_trips_through_the_safe_loader(models):
    loaded = load_model(models["good"])
    assert loaded.arch.spec == "relu:2" and loaded.width == 16 and loaded.out_dim == 1


def test_a_trained_model_records_its_training_data_and_the_attack_accepts_the_same(run_folder, models, tmp_path):
    """The attack command's model.npz records (dataset, N, seed); --model with the same three passes validation,
    and a model file without the record (hand-made, or older) is accepted as before."""
    from proofs_check.cli import COMMANDS, build_parser

    assert load_model(run_folder / "model.npz").training_data == ("digits-odd-even", 4, 0)
    assert load_model(models["good"]).training_data is None
    command = next(c for c in COMMANDS if c.name == "attack")
    for argv, expected in ((["--model", str(models["recorded"]), "--n", "4", "--seed", "0"], ("digits-odd-even", 4, 0)),
                           (["--model", str(models["recorded"])], ("digits-odd-even", 4, 0)),    # taken from the file
                           (["--model", str(models["good"]), "--n", "6", "--seed", "3"], ("digits-odd-even", 6, 3)),
                           (["--model", str(models["good"])], ("digits-odd-even", 20, 0))):       # the defaults
        args = build_parser().parse_args(["attack", *argv, "--out", str(tmp_path)])
        command.check(args)                                   # raises UsageError on a mismatch
        assert (args.dataset, args.n, args.seed) == expected


def test_attack_seed_moves_only_the_attacks_start(models, tmp_path, capsys):
    """--attack-seed changes the attack's random start and nothing else (same data, same model): two starts on one
    --model give different reconstructions; without it the start is the --seed one, as before. The model file
    records no training data, which the run says (and metrics.json records)."""
    runs = {}
    for name, extra in (("default", []), ("same", ["--attack-seed", "0"]), ("other", ["--attack-seed", "5"])):
        out = tmp_path / name
        assert main(["attack", "--model", str(models["good"]), "--n", "4", "--steps", "5", "--out", str(out),
                     "--no-progress", *extra]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert (metrics["seed"], metrics["n"]) == (0, 4)
        assert metrics["training_data_recorded"] is False
        notes = [line for line in capsys.readouterr().out.splitlines() if "records no training data" in line]
        assert notes == [f"note: {models['good']} records no training data; scoring against "
                         "digits/odd_even/train/4@seed0 (--dataset and --seed not given: their defaults); the scores "
                         "read low if the model was trained on other points"]  # one line, whatever the width
        assert metrics["model"] == str(models["good"])
        runs[name] = np.load(out / "attack_checkpoint.npz")
    keys = [k for k in runs["default"].files if k.startswith("state")]
    assert keys
    assert all(np.array_equal(runs["default"][k], runs["same"][k]) for k in keys)
    assert not all(np.array_equal(runs["default"][k], runs["other"][k]) for k in keys)


def test_resuming_below_the_first_budget_says_it_ends_mid_schedule(run_folder, tmp_path, capsys):
    """An attack interrupted at step 20 of a first budget of 40 and finished with --steps 30 ends mid-schedule (scored
    at a low softplus sharpness): a note says so (it was silent). Here the finished 20-step run's checkpoint is given
    a first budget of 40, as an interrupted 40-step run would carry."""
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    path = folder / "attack_checkpoint.npz"
    with np.load(path) as stored:
        contents = dict(stored)
    assert int(contents["extra_anneal_steps"]) == 20
    contents["extra_anneal_steps"] = np.asarray(40)
    np.savez(path, **contents)
    assert main(["attack", "--n", "4", "--width", "16", "--train-steps", "300", "--steps", "30", "--resume",
                 "--out", str(folder), "--no-progress"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "span its first budget of 40 steps; stopped at 30, it is scored mid-schedule" in out
    assert "--resume --steps 40 completes it" in out
    metrics = json.loads((folder / "metrics.json").read_text())["attack"]
    assert metrics["anneal_steps"] == 40 and metrics["final_beta"] < 200


def test_ctrl_c_while_the_command_line_is_checked_says_nothing_started(monkeypatch, capsys):
    """A press while `run` imported its claims (1.2 s in) gave a bare "proofs-check: interrupted"; before a command
    starts its work nothing is written, and the line says so."""
    import proofs_check.cli as cli
    from proofs_check.launcher import NOT_STARTED

    def interrupted(args):
        raise KeyboardInterrupt

    command = next(c for c in cli.COMMANDS if c.name == "run")
    monkeypatch.setattr(cli, "COMMANDS", [dataclasses.replace(command, check=interrupted)
                                          if c is command else c for c in cli.COMMANDS])
    assert main(["run", "K1"]) == 130
    assert capsys.readouterr().err == f"proofs-check: {NOT_STARTED}\n"


def test_claim_line_counts_outcomes_in_words():
    """The line `run` prints per claim without a terminal: "1 outcome", not "1 outcomes"; FAILED in capitals."""
    from types import SimpleNamespace

    from proofs_check.cli import claim_line

    one = SimpleNamespace(claim=SimpleNamespace(id="T3"), passed=True, outcomes=[object()], seconds=2.4)
    assert claim_line(one) == "T3: passed (1 outcome) in 2 s"
    failed = SimpleNamespace(claim=SimpleNamespace(id="K1"), passed=False, outcomes=[object()] * 3, seconds=61.2)
    assert claim_line(failed) == "K1: FAILED (3 outcomes) in 61 s"


def test_the_sweep_table_never_cuts_a_number():
    """At 80 columns rich cut the span residual to "1.83e-..." (e-15 or e-01?), then folded it ("1.62e-1|5"), and
    at 60 every word ("digi|ts-o|dd-e|ven"): below cli.SWEEP_TABLE_WIDTH the settings and movement measures are
    words in one cell; at it, the nine columns show every value whole."""
    from proofs_check import cli

    rows = [{"dataset": "digits-odd-even", "width": 16, "n": 4, "param": "ntk", "training": "linearized", "seed": 0,
             "revealed": 0.0, "best_trivial_revealed": 0.0, "kernel_distance": 0.202, "span_residual": 1.62e-15}]
    for width in (cli.SWEEP_TABLE_WIDTH, 80, 60):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(cli._sweep_table(rows))
        text = console.file.getvalue()
        shown = set(re.findall(r"[^\s│┃]+", text))
        assert {"digits-odd-even", "linearized", "1.62e-15"} <= shown and "2.02e-01" in text and "…" not in text, text
        assert ("┃ dataset " in text) is (width == cli.SWEEP_TABLE_WIDTH), text  # the nine columns, or three


def test_version_names_the_code_and_its_libraries(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    python = r"\.".join(map(str, sys.version_info[:2]))  # the running one: make test-all runs 3.11, 3.12 and 3.13
    assert re.fullmatch(rf"proofs-check 0\.1\.0 \(Python {python}\.\d+; jax 0\.5\.3, neural-tangents 0\.6\.5, sympy [\d.]+, "
                        r"numpy [\d.]+; code [0-9a-f]{12}\)\n", capsys.readouterr().out)


def test_resume_refuses_a_folder_without_a_run(tmp_path, capsys):
    """--resume on an empty or misspelt folder, or on attack-curve --combine's results (no run record), started a
    whole default run after one line (a combined attack_curve.json was replaced): now one line, exit 2."""
    empty = tmp_path / "empty"
    for argv in (["attack"], ["distill"], ["attack-curve"]):
        assert main([*argv, "--resume", "--out", str(empty)]) == 2
        assert capsys.readouterr().err == (f"proofs-check: error: nothing to resume in {empty}: it holds no run record "
                                           "(run.json); drop --resume to start a run there\n")
    # another command's folder, or one of other files: "drop --resume" would then be refused in turn (a trial)
    swept = tmp_path / "swept"
    swept.mkdir()
    (swept / ".proofs-check-command").write_text("sweep\n")
    (swept / "cells.csv").write_text("x\n")
    assert main(["attack", "--resume", "--out", str(swept)]) == 2
    assert "it holds the results of 'sweep', not of 'attack'; choose another --out" in capsys.readouterr().err
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("meow")
    assert main(["distill", "--resume", "--out", str(tmp_path / "photos")]) == 2
    assert "holds no run record (run.json) but other files; choose another --out" in capsys.readouterr().err
    # attack-curve's --combine and the options of a run say two things: a typed --combine adds no recorded --arch
    (tmp_path / "curve").mkdir()
    write_run(tmp_path / "curve", {"command": "attack-curve", "settings": {}, "options": {"arch": ["--arch=relu:2"]}})
    assert main(["attack-curve", "--combine", str(tmp_path / "x"), "--resume", "--out", str(tmp_path / "curve")]) == 2
    assert "--resume describes a run to continue; --combine draws earlier ones" in capsys.readouterr().err


def test_out_of_memory_is_recognized_in_both_of_xlas_forms():
    from proofs_check.cli import out_of_memory_text

    assert "(an allocation of 1.5 GB)" in out_of_memory_text(
        RuntimeError("FAILED_PRECONDITION: Buffer allocation: Out of memory allocating 1452000772 bytes."))
    assert out_of_memory_text(RuntimeError("INVALID_ARGUMENT: shapes differ")) is None


def test_a_model_that_does_not_fit_its_recorded_training_set_is_noted(run_folder, models, tmp_path, capsys):
    """A file that names its training set is checked against it: the project's own trained model fits it (no note;
    metrics.json records the fit), one whose theta_f is a 1% rescaling of theta_0 does not (a trial trained on
    uncentred digits, recorded the centred set, and read 0% revealed as "no leakage")."""
    for model, fits in ((run_folder / "model.npz", True), (models["recorded"], False)):
        out = tmp_path / ("fits" if fits else "unfit")
        assert main(["attack", "--model", str(model), "--steps", "2", "--no-progress", "--out", str(out)]) == 0
        fit = json.loads((out / "metrics.json").read_text())["fit_on_recorded_set"]
        assert fit["fits"] is fits and (min(fit["network"], fit["linearized"]) <= 1e-3) is fits
        printed = capsys.readouterr().out
        assert ("does not fit the training set its file records" in printed) is not fits
