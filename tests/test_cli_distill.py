"""``proofs-check distill`` and ``defend``: bad input is one line and exit 2 before any work; a small run end to end
writes its files and resumes."""

import json
import re

import numpy as np
import pytest

import numerics  # noqa: F401  (float64 on)
from numerics import distill as distill_module
from numerics.checkpoint import Checkpoint, Interrupted
from proofs_check.cli import main
from test_checkpoint import press_ctrl_c_where_python_discards_it  # tests/ is on sys.path (prepend import mode)

SMALL = ["distill", "--dataset", "digits-odd-even", "--per-class", "2", "--no-progress"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished small distillation (10 steps) in a run folder."""
    out = tmp_path_factory.mktemp("distill") / "run"
    assert main([*SMALL, "--steps", "10", "--out", str(out)]) == 0
    return out


@pytest.fixture
def no_work(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the input was validated")

    monkeypatch.setattr(distill_module, "distill", forbidden)
    monkeypatch.setattr(distill_module, "defense_experiment", forbidden)


BAD = [
    (["distill", "--per-class", "500"], "--per-class 500: digits-ten-class has only 122 training points of class"),
    # the support would be each whole class: loss ~1e-10 at the start, and the run was called diverged (--lr)
    (["distill", "--validation-fraction", "0.999"], "only 1 training point of class '0' after --validation-fraction "
                                                    "0.999 (classes have 1 to 1); distilling needs fewer per class"),
    (["distill", "--per-class", "0"], "--per-class: must be a positive integer"),
    (["distill", "--method", "kipp"], "invalid choice: 'kipp'"),
    (["distill", "--dataset", "mnist"], "invalid choice: 'mnist'"),
    (["distill", "--steps", "-1"], "--steps: must be a positive integer"),
    (["distill", "--lr", "nan"], "--lr: must be a finite number > 0"),
    (["distill", "--validation-fraction", "1"], "--validation-fraction: must be in [0, 1), got 1"),
    (["distill", "--validation-fraction", "x"], "--validation-fraction: 'x' is not a number"),
    (["distill", "--eval-every", "0"], "--eval-every: must be a positive integer"),
    # silently ignored before: without a validation split there is nothing to check
    (["distill", "--per-class", "1", "--eval-every", "50", "--steps", "5"], "--eval-every 50 sets the steps between "
                                                                             "validation checks, which need "
                                                                             "--validation-fraction F > 0"),
    (["distill", "--validation-fraction", "0", "--eval-every", "5"], "drop --eval-every or pass --validation-fraction"),
    ([*SMALL, "--steps", "10", "--validation-fraction", "0.2", "--resume", "--out", "{run}"],
     "--validation-fraction is 0.2 (as given) but the run in"),
    (["distill", "--arch", "relu:2:param=standard"], "needs the NTK parametrization"),
    (["distill", "--arch", "expr:2:phi=import os"], "syntax error at 'import'"),
    (["distill", "--out", "{file}"], "exists and is not a folder"),
    ([*SMALL, "--per-class", "3", "--steps", "10", "--resume", "--out", "{run}"],
     "--per-class is 3 (as given) but the run in"),
    ([*SMALL, "--steps", "5", "--resume", "--out", "{run}"], "already at step 10; --steps 5 is below it (resume with "
                                                             "--steps 10 or more, or drop --resume to start afresh)"),
    (["defend", "--arch", "relu:2:param=standard"], "--arch relu:2:param=standard: the kernel-regime model uses the "
                                                    "infinite-width NTK, which needs the NTK parametrization"),
    (["defend", "--sizes", "15"], "--sizes 15: distilled sizes must be multiples of the 10 classes"),
    (["defend", "--sizes", "10,x"], "'x' in '10,x' is not an integer"),
    (["defend", "--sizes", "10,10"], "'10,10' lists a value twice"),  # the sweep's rule (cli.distinct)
    (["defend", "--distances", "none,none"], "'none,none' lists a value twice"),
    (["defend", "--distances", "1.5,1.50"], "'1.5,1.50' lists a value twice"),
    (["defend", "--polish", "-1"], "--polish: must be an integer >= 0, got -1"),
    (["defend", "--per-class", "2", "--sizes", "50"], "larger than the private set (20)"),
    (["defend", "--distances", "none,3"], "--distances 3 cannot be met"),
    (["defend", "--distances", "near"], "'near' is neither a number nor 'none'"),
    (["defend", "--distances", "-1"], "must be finite and > 0"),
    (["defend", "--per-class", "500", "--sizes", "10"], "--per-class 500: the training split has 122 digits of its "
     "smallest class, and the held-out baseline takes 1 of each class outside the private set"),
    # 122 is every digit of the smallest class: nothing was left for the held-out baseline, which crashed after ~70 s
    (["defend", "--per-class", "122", "--sizes", "10"], "(as many as the smallest distilled set, --sizes 10): at most 121"),
    (["defend", "--attack-steps", "0"], "--attack-steps: must be a positive integer"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=lambda v: " ".join(v)[:50] if isinstance(v, list) else None)
def test_bad_input_is_one_line_and_exit_2_before_any_work(argv, message, small_run, no_work, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    argv = [a.format(file=str(tmp_path / "a_file"), run=str(small_run)) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("proofs-check: error: "), captured.err
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_readme_states_the_validation_split_rule():
    """README said F holds out round(F * count) per class, but --validation-fraction 0.0001 holds out 10 digits: the
    rule's "at least 1, at most count - 1" was only in validation_split's docstring (the documentation, README or
    a page under docs/, now states it)."""
    from documentation import documentation_text
    from numerics.data import digits
    from numerics.distill import validation_split

    readme = " ".join(documentation_text().split())
    assert "per class round(F * count), but at least 1 and at most count - 1" in readme
    labels = digits(task="ten_class", split="train").labels
    counts = np.bincount(labels)
    held = {fraction: np.bincount(labels[validation_split(labels, fraction)[1]], minlength=10)
            for fraction in (0.0001, 0.2, 0.9999)}
    assert list(held[0.0001]) == [1] * 10 and "0.0001 the 10 of digits-ten-class" in readme
    assert list(held[0.9999]) == list(counts - 1)
    assert f"0.2 holds out {held[0.2].sum()} of the {labels.size} digits" in readme


@pytest.mark.parametrize("via", ["proofs-check rkip-finite", "python -m proofs_check.distill_cli"])
def test_every_option_of_rkip_finite_has_help(via, capsys, monkeypatch):
    """python -m proofs_check.distill_cli --help showed --arch SPEC with its default alone; the old name shows the
    subcommand's help."""
    from proofs_check.distill_cli import rkip_finite_main

    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as exit_:
        main(["rkip-finite", "--help"]) if via.startswith("proofs-check") else rkip_finite_main(["--help"])
    assert exit_.value.code == 0
    listing = capsys.readouterr().out.split("options:")[1]
    options = dict(re.findall(r"^  (-\S*(?: [A-Z_]+)?)(.*(?:\n {3,}.*)*)", listing.split("Architecture spec:")[0],
                              flags=re.M))  # option -> help
    assert len(options) == 11 and "--arch SPEC" in options and "--seed SEED" in options, options
    assert {"--resume", "--no-progress"} <= set(options), options
    for option, text in options.items():
        assert text.strip() and not text.strip().startswith("(default:"), (option, text)


def test_small_distillation_end_to_end_and_resume(small_run, capsys):
    files = {p.name for p in small_run.iterdir()}
    assert {"distilled.png", "distilled.npz", "metrics.json", "run.json", "distill_checkpoint.npz"} <= files
    metrics = json.loads((small_run / "metrics.json").read_text())
    assert 0.5 <= metrics["test_accuracy"] <= 1.0 and "full data" in metrics["baselines"]
    with np.load(small_run / "distilled.npz") as data:
        assert data["x"].shape == (4, 64) and data["y"].shape == (4, 1)
    assert json.loads((small_run / "run.json").read_text())["options"] == {
        "dataset": ["--dataset=digits-odd-even"], "per_class": ["--per-class=2"], "steps": ["--steps=10"]}
    # --resume takes the run's options from its run.json: --per-class 2 is not typed again (its default is 1)
    assert main(["distill", "--steps", "20", "--resume", "--no-progress", "--out", str(small_run)]) == 0
    assert json.loads((small_run / "metrics.json").read_text())["resumed_from"] == 10
    out = capsys.readouterr().out
    assert f"resuming with the options {small_run / 'run.json'} records: --dataset=digits-odd-even --per-class=2\n" \
        in out and "KIP distilled" in out
    assert "the baselines, the full-data one a kernel ridge regression on all N = " in out  # said before it runs


def test_validation_selection_end_to_end_and_resume(tmp_path, monkeypatch):
    """--validation-fraction: the held-out digits come from the training split only, the selected step is the best
    validation check, and a resumed run continues the selection."""
    from numerics.data import digits

    out = tmp_path / "selected"
    argv = [*SMALL, "--validation-fraction", "0.2", "--eval-every", "5", "--out", str(out)]
    test_x = digits(task="odd_even", split="test").x
    calls = []
    real = distill_module.distill

    def spy(*args, **kwargs):
        x_val, labels_val = kwargs["validation"]
        calls.append(x_val)
        assert not any((np.abs(test_x - row).sum(axis=1) == 0).any() for row in x_val)  # no test digit
        assert not any((np.abs(args[1] - row).sum(axis=1) == 0).any() for row in x_val)  # not distilled on
        return real(*args, **kwargs)

    monkeypatch.setattr(distill_module, "distill", spy)
    assert main([*argv, "--steps", "10"]) == 0
    selection = json.loads((out / "metrics.json").read_text())["model_selection"]
    train_n = digits(task="odd_even", split="train").n
    assert selection["n_validation"] + selection["n_distilled_on"] == train_n
    assert selection["validation_curve"]["steps"] == [0, 5, 10]
    accs = selection["validation_curve"]["accuracy"]
    assert selection["validation_accuracy"] == max(accs)
    assert selection["selected_step"] == selection["validation_curve"]["steps"][accs.index(max(accs))]
    assert main([*argv, "--steps", "15", "--resume"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from"] == 10 and metrics["model_selection"]["validation_curve"]["steps"] == [0, 5, 10, 15]
    assert len(calls) == 2


def test_a_discarded_ctrl_c_during_set_up_stops_the_distillation_after_its_first_chunk(tmp_path, monkeypatch, capsys):
    """A Ctrl-C whose KeyboardInterrupt Python discarded (in a gc callback, as in JAX's) let distill run to its end
    and exit 0; it now stops the loop after its first chunk, once saved, with the attack's kind of line."""
    real = distill_module.distill

    def ctrl_c_then_distill(*args, **kwargs):
        press_ctrl_c_where_python_discards_it()
        return real(*args, **kwargs)

    monkeypatch.setattr(distill_module, "distill", ctrl_c_then_distill)
    out = tmp_path / "run"
    assert main([*SMALL, "--steps", "200", "--out", str(out)]) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted at step 100 of 200 (distillation); rerun with "
                                       "--resume to continue\n")
    assert Checkpoint(out / "distill_checkpoint.npz", kind="distill").peek()[0] == 100
    assert not (out / "metrics.json").exists()


def test_ctrl_c_after_the_distillation_names_the_saved_step(tmp_path, monkeypatch, capsys):
    """A Ctrl-C outside the loop (here while the baselines are scored) names the step the checkpoint holds (it once
    said only "interrupted; rerun with --resume to continue"); one whose KeyboardInterrupt Python discarded ends the
    finished run with 130 and one line."""
    from proofs_check import distill_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(distill_cli, "baselines", interrupted)
        assert main([*SMALL, "--steps", "10", "--out", str(out)]) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted with step 10 of 10 (distillation) saved; rerun with "
                                       "--resume to continue\n")
    real = distill_cli.baselines

    def baselines_then_ctrl_c(*args, **kwargs):
        press_ctrl_c_where_python_discards_it()
        return real(*args, **kwargs)

    monkeypatch.setattr(distill_cli, "baselines", baselines_then_ctrl_c)
    assert main([*SMALL, "--steps", "10", "--resume", "--out", str(out)]) == 130
    assert capsys.readouterr().err == (f"proofs-check: interrupted (Ctrl-C took effect only as the command finished): "
                                       f"its results are complete in {out}\n")
    assert json.loads((out / "metrics.json").read_text())["resumed_from"] == 10


def test_defend_ctrl_c_says_what_was_kept_and_how_to_go_on(tmp_path, monkeypatch, capsys):
    """defend's Ctrl-C line (once "interrupted" and nothing more) says how many settings the folder keeps and that
    --resume continues; with none finished, that a rerun starts again."""
    from proofs_check.claims import t4

    def one_setting_then_ctrl_c(*args, on_row, **kwargs):
        on_row(["private set"])
        raise Interrupted(200, 500, "distillation")

    monkeypatch.setattr(distill_module, "defense_experiment", one_setting_then_ctrl_c)
    monkeypatch.setattr(distill_module, "save_defense_rows", lambda path, rows: None)
    monkeypatch.setattr(t4, "rows_json", lambda rows: [{"name": name} for name in rows])
    out = tmp_path / "defend"
    assert main(["defend", "--out", str(out)]) == 130
    assert capsys.readouterr().err == (f"proofs-check: interrupted at step 200 of 500 (distillation); {out} keeps the "
                                       "1 setting(s) finished (tradeoff.json: \"complete\": false): rerun with "
                                       "--resume to continue\n")
    assert json.loads((out / "tradeoff.json").read_text())["complete"] is False

    def ctrl_c_at_once(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(distill_module, "defense_experiment", ctrl_c_at_once)
    assert main(["defend", "--out", str(tmp_path / "other")]) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted; no setting was finished yet: rerun the same "
                                       "command to start again\n")


DEFEND_SMALL = ["defend", "--per-class", "1", "--sizes", "10", "--distances", "none,0.5", "--attack-steps", "5",
                "--distill-steps", "2", "--polish", "0"]
"""A tiny defend run (seconds): four settings, the private set, 10 distilled points (unconstrained and at distance
0.5) and the class means."""


def _settings_without_software(path):
    record = json.loads(path.read_text())
    record.pop("software")
    return record


def test_defend_resume_reads_back_the_finished_settings_and_ends_as_a_run_never_interrupted(tmp_path, monkeypatch,
                                                                                            capsys):
    """Ctrl-C during the second distillation keeps the two settings finished; --resume reads them back (no attack
    runs on them again) and computes the rest, and its tradeoff.json is the uninterrupted run's, number for
    number."""
    whole = tmp_path / "whole"
    assert main([*DEFEND_SMALL, "--out", str(whole)]) == 0
    capsys.readouterr()

    real_distill, real_attack = distill_module.distill, distill_module.attack_kernel_model
    calls = {"distill": 0, "attack": 0}

    def ctrl_c_at_the_second_distillation(*args, **kwargs):
        calls["distill"] += 1
        if calls["distill"] == 2:
            raise Interrupted(1, 2, "distillation")
        return real_distill(*args, **kwargs)

    def counted_attack(*args, **kwargs):
        calls["attack"] += 1
        return real_attack(*args, **kwargs)

    monkeypatch.setattr(distill_module, "distill", ctrl_c_at_the_second_distillation)
    monkeypatch.setattr(distill_module, "attack_kernel_model", counted_attack)
    out = tmp_path / "resumed"
    assert main([*DEFEND_SMALL, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"{out} keeps the 2 setting(s) finished" in err and "rerun with --resume to continue" in err, err
    assert calls["attack"] == 2
    monkeypatch.setattr(distill_module, "distill", lambda *args, **kwargs: (calls.update(distill=calls["distill"] + 1),
                                                                           real_distill(*args, **kwargs))[1])
    calls.update(distill=0, attack=0)
    assert main(["defend", "--resume", "--out", str(out)]) == 0  # the options come back from run.json
    printed = " ".join(capsys.readouterr().out.split())
    assert "2 setting(s) finished earlier are read back" in printed
    assert "T4: distilled 10: finished earlier, read back" in printed
    assert calls == {"distill": 1, "attack": 2}  # distilled 10 at distance 0.5 and the class means only
    assert _settings_without_software(out / "tradeoff.json") == _settings_without_software(whole / "tradeoff.json")


def test_defend_resume_refuses_other_settings_and_a_damaged_record(tmp_path, monkeypatch, capsys, no_work):
    """A resumed defend with other options, or whose record of finished settings is damaged or holds objects, is
    one line and exit 2 before any work; without --resume the folder's earlier run is replaced."""
    from numerics.checkpoint import write_run
    from proofs_check.distill_cli import defend_settings
    from proofs_check.cli import build_parser

    out = tmp_path / "run"
    out.mkdir()
    args = build_parser().parse_args([*DEFEND_SMALL, "--out", str(out)])
    write_run(out, {"command": "defend", "settings": defend_settings(args),
                    "options": {"sizes": ["--sizes", "10"]}})
    assert main([*DEFEND_SMALL, "--attack-steps", "6", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--attack-steps" in err, err
    (out / "defense_rows.npz").write_text("not an archive")
    assert main([*DEFEND_SMALL, "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "defense_rows.npz is not a defend record of finished settings" in err, err
    np.savez(out / "defense_rows.npz", rows=np.asarray([{"name": "private set"}], dtype=object))
    assert main([*DEFEND_SMALL, "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds Python objects" in err, err
    np.savez(out / "defense_rows.npz", rows=np.asarray(json.dumps([{"name": "private set", "surprise": 1}])),
             x_recon_0=np.zeros((2, 64)), x_train_0=np.zeros((1, 64)))
    assert main([*DEFEND_SMALL, "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a defend record of finished settings" in err, err


RKIP_SMALL = ["rkip-finite", "--n", "4", "--recon", "2", "--width", "16", "--train-steps", "50", "--no-progress"]
"""A tiny RKIP-finite run (about 5 s): 200 attack steps are two chunks of the attack's checkpoints."""


@pytest.fixture(scope="module")
def rkip_run(tmp_path_factory):
    """A finished tiny RKIP-finite run (200 attack steps) and its rkip_finite.json."""
    out = tmp_path_factory.mktemp("rkip") / "run"
    assert main([*RKIP_SMALL, "--steps", "200", "--out", str(out)]) == 0
    return out, json.loads((out / "rkip_finite.json").read_text())


RKIP_BAD = [(["--n", "3", "--recon", "2"], "--n 3: digits-odd-even draws equal numbers"),
            (["--n", "5000"], "--n 5000: digits-odd-even has"),
            (["--n", "4"], "--recon 10: the reconstructions must be fewer"),
            (["--n", "4", "--recon", "4"], "--recon 4: the reconstructions must be fewer than --n 4"),
            (["--steps", "-1"], "--steps: must be a positive integer"),
            (["--seed", "x"], "--seed: 'x' is not an integer"),
            (["--seed", "-1"], "--seed: must be"),
            (["--width", "99999999"], "parameters"),
            (["--width", "16", "--arch", "conv3x3:c=4 > relu > gap > dense"],
             "--width 16 sets no layer of conv3x3:c=4 > relu > gap > dense"),
            # trained and attacked, then a traceback from the kernel regression
            (["--arch", "relu:2:param=standard", "--n", "10", "--recon", "5"],
             "--arch relu:2:param=standard: the kernel regression uses the infinite-width NTK, which needs the NTK "
             "parametrization (drop param=standard)"),
            (["--out", "{file}"], "exists and is not a folder"),
            (["--resume", "--out", "{empty}"], "nothing to resume in"),
            ([*RKIP_SMALL[1:], "--steps", "200", "--n", "6", "--resume", "--out", "{run}"],
             "--n is 6 (as given) but the run in {run} used 4; resume with the same settings"),
            ([*RKIP_SMALL[1:], "--steps", "300", "--resume", "--out", "{run}"],
             "--steps is 300 (as given) but the run in {run} used 200"),
            (["--n", "4", "--recon", "2", "--seed", "1", "--resume", "--out", "{run}"],
             "--seed is 1 (as given) but the run in {run} used 0"),
            (["--out", "{attack}"], "holds the results of 'attack', not of 'rkip-finite'"),
            (["--out", "{foreign}"], "holds files not marked as proofs-check results (notes.txt)")]


@pytest.mark.parametrize("via", ["proofs-check", "python -m proofs_check.distill_cli"])
@pytest.mark.parametrize("argv, message", RKIP_BAD, ids=lambda v: " ".join(v)[:50] if isinstance(v, list) else None)
def test_rkip_finite_refuses_bad_input_in_one_line(argv, message, via, rkip_run, tmp_path, capsys, monkeypatch):
    """Every validation of rkip-finite is one line and exit 2 before any work (the old module's checks, the folder's
    owner, --resume's settings); its old name says the same."""
    from numerics import distill
    from proofs_check.cli import OWNER_FILE
    from proofs_check.distill_cli import rkip_finite_main

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the input was validated")

    monkeypatch.setattr(distill, "rkip_finite_experiment", forbidden)
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "attack").mkdir()
    (tmp_path / "attack" / OWNER_FILE).write_text("attack\n")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    (tmp_path / "empty").mkdir()
    run, _ = rkip_run
    places = {"file": tmp_path / "a_file", "attack": tmp_path / "attack", "foreign": tmp_path / "foreign",
              "empty": tmp_path / "empty", "run": run}
    argv = [a.format(**places) for a in argv]
    code = main(["rkip-finite", *argv]) if via == "proofs-check" else rkip_finite_main(argv)
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("proofs-check: error: "), err
    assert message.format(**places) in err, err
    assert not any((place / "rkip_finite.json").exists() or (place / "run.json").exists()
                   for name, place in places.items() if name not in ("file", "run"))


def test_rkip_finite_seed_draws_other_digits(rkip_run, monkeypatch, tmp_path, capsys):
    """--seed is the seed of the digits drawn (and of the network and attack): recorded in run.json and
    rkip_finite.json, and another --seed trains on other digits."""
    from numerics import audit

    run, result = rkip_run
    assert result["seed"] == 0 and json.loads((run / "run.json").read_text())["settings"]["seed"] == 0
    drawn = {}

    def capture_then_stop(arch, width, data, **kwargs):
        drawn[kwargs["seed"]] = data.x
        raise KeyboardInterrupt

    monkeypatch.setattr(audit, "train_on", capture_then_stop)
    for seed in ("0", "1"):
        assert main([*RKIP_SMALL, "--seed", seed, "--out", str(tmp_path / seed)]) == 130
    assert capsys.readouterr().err.count("nothing was saved yet: rerun the same command to start again") == 2
    assert set(drawn) == {0, 1} and drawn[0].shape == drawn[1].shape == (4, 64)
    assert not np.array_equal(drawn[0], drawn[1])


def test_an_attack_with_no_usable_restart_is_one_line_and_exit_1(monkeypatch, tmp_path, capsys):
    """The kernel-space attack's AttackFailed (every restart singular) ended defend in a traceback (a new user's
    trial, on a quadrature activation before its gradients were finite); it is a run that could not measure."""
    from numerics import distill
    from numerics.attack import AttackFailed
    from proofs_check.cli import main

    def failing(*args, **kwargs):
        raise AttackFailed("all 1 restarts ended with a singular Theta_RR (colliding reconstructions)")

    monkeypatch.setattr(distill, "defense_experiment", failing)
    argv = ["defend", "--per-class", "1", "--sizes", "10", "--distances", "none", "--attack-steps", "5",
            "--distill-steps", "2", "--out", str(tmp_path / "d")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: all 1 restarts ended with a singular Theta_RR" in err, err


@pytest.mark.parametrize("lr, reason", [("1e308", "not finite"), ("1e6", "above where it started")])
def test_diverged_distillation_is_one_line_and_exit_1(lr, reason, tmp_path, capsys):
    """A step so large that the support set leaves the data (NaN at 1e308; at 1e6 the bounded loss ends above its
    start, test accuracy 0.199 before this rule) is reported in one line naming --lr, not as a traceback or a
    score."""
    out = tmp_path / "run"
    assert main([*SMALL, "--lr", lr, "--steps", "5", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("proofs-check: error: the distillation diverged: "), err
    assert reason in err and "a smaller --lr" in err and "Traceback" not in err
    assert ("more --steps" in err) is (reason != "not finite")  # a loss that rose may fall again; a NaN will not
    assert not (out / "metrics.json").exists()


def test_distill_divergence_rule():
    """numerics.distill.distill_divergence: non-finite points, labels or losses, or a last loss above the first."""
    from numerics.distill import DistillResult, distill_divergence

    def result(x=0.0, y=1.0, curve=(1.0, 0.5)):
        return DistillResult(x=np.full((2, 3), x), y=np.full((2, 1), y), classes=np.zeros(2, int),
                             init_index=np.zeros(2, int), loss_curve=np.asarray(curve), method="kip", steps=len(curve))

    assert distill_divergence(result()) is None
    assert distill_divergence(result(curve=(1.0,))) is None
    assert "not finite" in distill_divergence(result(x=np.nan))
    assert "not finite" in distill_divergence(result(y=np.inf))
    assert "step 2" in distill_divergence(result(curve=(1.0, np.nan, 0.5)))
    assert "above where it started" in distill_divergence(result(curve=(1.0, 0.5, 1.01)))


def test_rkip_finite_table_puts_each_number_under_its_header():
    """The attacked network (one network, not retrained) sat in the "fresh networks (mean)" column."""
    from proofs_check.distill_cli import rkip_finite_table

    result = {"N": 20, "M": 10, "networks_original": [0.8, 0.9, 0.7], "networks_reconstructed": [0.6, 0.5, 0.4],
              "krr_original": 0.81, "krr_reconstructed": 0.51, "krr_random_subset": 0.41, "trained_network": 0.123}
    table = rkip_finite_table(result)
    columns = {" ".join(str(column.header).split()): list(column._cells) for column in table.columns}
    assert columns["fresh networks (mean)"] == ["0.800", "0.500", "-"]
    assert columns["each fresh network"] == ["0.800, 0.900, 0.700", "0.600, 0.500, 0.400", "-"]
    assert columns["kernel regression"] == ["0.810", "0.510", "0.410"]
    assert columns["the attacked network"] == ["0.123", "-", "-"]  # trained on the N digits: their row
    assert columns["trained on"][0] == "N = 20 training digits"


def test_tradeoff_figure_draws_the_trivial_baselines():
    """tradeoff.png left out the trivial rows that defend's table says a defense must beat (the held-out class means
    were more accurate than every model and were not drawn)."""
    from types import SimpleNamespace

    from proofs_check import figures
    from proofs_check.claims import t4

    def row(name, kind, size, accuracy, revealed, distance=None):
        leakage = {"attack": {"revealed": revealed}, "mean image": {"revealed": 0.0, "trivial": True},
                   "held-out points": {"revealed": 0.05, "trivial": True}}
        return SimpleNamespace(name=name, kind=kind, size=size, test_accuracy=accuracy, min_distance=distance,
                               leakage=leakage, revealed=revealed)

    rows = [row("private set", "private", 20, 0.79, 1.0), row("distilled 10", "distilled", 10, 0.71, 0.0),
            row("private class means", "class means", 10, 0.76, 0.1)]
    fig = t4.tradeoff_figure(None, rows, title="t", trivial_models={"10 held-out class means": (0.878, 0.0),
                                                                     "10 held-out points": (0.70, 0.05)})
    ax = fig.axes[0]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "trivial: trained on 10 held-out class means (no private data)" in legend
    assert "trivial: trained on 10 held-out points (no private data)" in legend
    assert "best trivial test accuracy (0.878): a defense must beat it" in legend
    assert "most revealed by a trivial reconstruction (held-out points, 5%)" in legend
    drawn = {(tuple(np.ravel(line.get_xdata())), tuple(np.ravel(line.get_ydata()))) for line in ax.lines}
    assert ((0.878,), (0.0,)) in drawn and ((0.7,), (0.05,)) in drawn
    assert ax.get_xlim()[0] < 0.70 and ax.get_xlim()[1] > 0.878  # in view
    assert figures.style_problems(fig) == []
    import matplotlib.pyplot as plt

    plt.close(fig)
    fig = t4.tradeoff_figure(None, rows, title="T4")  # the claim's figure: no trivial models, the line still drawn
    assert "most revealed by a trivial reconstruction (held-out points, 5%)" in [
        text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)


def test_defend_class_means_rows_describe_one_set_each(tmp_path, capsys, monkeypatch):
    """The private set's class means are a row of their own (a model trained on them, attacked like the distilled
    ones, and the means scored as reconstructions); with one private digit per class they ARE the private digits,
    so they reveal all of them. The trivial class means are the held-out digits' (what their 'revealed' scored),
    and so is their test accuracy. --polish 0 (no L-BFGS) is accepted."""
    from numerics import audit
    from numerics.data import digits
    from numerics.distill import CLASS_MEANS_ROW, support_accuracy
    from numerics.privacy import class_means
    from theory.architecture import parse_spec

    out = tmp_path / "defend"
    argv = ["defend", "--per-class", "1", "--sizes", "10", "--distances", "none", "--attack-steps", "5",
            "--distill-steps", "2", "--polish", "0", "--out", str(out)]
    from proofs_check.claims import t4

    drawn, draw = {}, t4.tradeoff_figure

    def spy(*args, **kwargs):
        drawn.update(kwargs.get("trivial_models") or {})
        return draw(*args, **kwargs)

    monkeypatch.setattr(t4, "tradeoff_figure", spy)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # Python's None was printed: "minimum distances [None, 1.5]", "T4: distilling 10 points, minimum distance None"
    assert "None" not in printed and "minimum distances none (none: unconstrained)" in " ".join(printed.split())
    assert "T4: distilling 10 points, no minimum distance" in printed
    record = json.loads((out / "tradeoff.json").read_text())
    assert record["polish"] == 0
    means = [row for row in record["settings"] if row["kind"] == "class means"]
    assert len(means) == 1 and means[0]["name"] == CLASS_MEANS_ROW and means[0]["size"] == 10
    assert means[0]["training_points_revealed"] == 1.0  # the 10 private digits themselves
    private = digits(task="ten_class", per_class=1, seed=0)
    test = digits(task="ten_class", split="test")
    arch = parse_spec("relu:2")
    assert means[0]["test_accuracy"] == pytest.approx(support_accuracy(arch, private.x, private.y, test.x, test.labels))
    references = audit.reference_sets("digits-ten-class", private)
    held_out_means = class_means(references.pool, references.pool_labels)
    targets = np.stack([private.y[private.labels == k][0] for k in range(10)])
    trivial = record["trivial_test_accuracy"]["class means"]
    assert trivial["test_accuracy"] == pytest.approx(support_accuracy(arch, held_out_means, targets, test.x,
                                                                      test.labels))
    assert trivial["training_points_revealed"] == 0.0
    # tradeoff.png draws the models trained on trivial sets, at the test accuracy tradeoff.json records
    stand_ins = record["trivial_test_accuracy"]
    assert {name: accuracy for name, (accuracy, _) in drawn.items()} == {
        "10 held-out class means": stand_ins["class means"]["test_accuracy"],
        "10 held-out points": stand_ins["held-out points"]["test_accuracy"]}


def test_defend_table_in_a_narrow_terminal_cuts_no_word():
    """At 60 columns defend's seven columns cut "model trained on" to "trai..." and "distilled" to "dist...": below
    report.NARROW_TABLE columns it keeps three, the other measures in words under the model's name."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from proofs_check.distill_cli import defend_table
    from proofs_check.report import NARROW_TABLE, ByWidth

    leakage = {"attack": {"revealed": 0.1, "ssim_ge_0.4": 0.2},
               "class means": {"revealed": 0.0, "ssim_ge_0.4": 0.3, "trivial": True}}
    rows = [SimpleNamespace(name="distilled 10, min distance 1.5", size=10, min_distance=1.5, leakage=leakage,
                            training_leakage={"revealed": 0.0}, test_accuracy=0.853)]
    stand_ins = {"class means": {"points": 10, "training_points_revealed": 0.0, "test_accuracy": 0.61}}
    table = ByWidth(lambda: defend_table(rows, stand_ins, stacked=False),
                    lambda: defend_table(rows, stand_ins, stacked=True))
    for width in (60, NARROW_TABLE):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(table)
        text = console.file.getvalue()
        flat = " ".join(text.replace("│", " ").replace("┃", " ").split())
        assert "…" not in text and "distilled" in flat and "0.853" in flat and "0.610" in flat, text
        assert ("SSIM >= 0.4 20%" in flat) is (width < NARROW_TABLE), text  # stacked: the measure in words


def test_rkip_finite_notes_training_that_stopped_at_its_budget(tmp_path, capsys):
    """--train-steps too small for the loss target: one note on stderr and the stop reasons in the JSON; the old
    name runs the same command."""
    from proofs_check.distill_cli import rkip_finite_main

    out = tmp_path / "rkip"
    argv = ["--n", "4", "--recon", "2", "--steps", "5", "--width", "16", "--train-steps", "20", "--out", str(out),
            "--no-progress"]
    assert rkip_finite_main(argv) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("note: training stopped before its loss target in 7 of 7 networks") and err.count("\n") == 1
    record = json.loads((out / "rkip_finite.json").read_text())
    training = record["training"]
    # the screen shows a table of the recorded accuracies (it printed the raw JSON), and where the record is
    printed = " ".join(captured.out.split())
    assert "RKIP-finite: test accuracy" in printed and f"files:{out / 'rkip_finite.json'}" in "".join(printed.split())
    for key in ("networks_original", "networks_reconstructed"):
        assert ", ".join(f"{v:.3f}" for v in record[key]) in printed, key
    assert f"{record['krr_random_subset']:.3f}" in printed and f"gap: {record['gap_points']:.1f} points" in printed
    assert "{" not in captured.out
    assert training["attacked"]["stop_reason"] == "budget" and training["attacked"]["steps"] == 20
    assert training["networks_original"] == ["budget"] * 3
    assert "software" in record
    assert json.loads((out / "run.json").read_text())["command"] == "rkip-finite"


def _numbers(result: dict) -> dict:
    """rkip_finite.json without the software record (the code's fingerprint)."""
    return {key: value for key, value in result.items() if key != "software"}


def test_rkip_finite_ctrl_c_between_fresh_networks_resumes_to_the_same_result(rkip_run, tmp_path, monkeypatch,
                                                                               capsys):
    """Ctrl-C after three of the six fresh networks (it kept nothing before: "this command keeps no checkpoint")
    leaves the trained network, the reconstructions and the three accuracies; --resume trains only the other three
    and ends with the numbers of an uninterrupted run."""
    from numerics import distill

    _, reference = rkip_run
    real, calls = distill.network_accuracy, []

    def three_then_ctrl_c(*args, **kwargs):
        calls.append(kwargs["seed"])
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = _interrupted_rkip_run(monkeypatch, "network_accuracy", three_then_ctrl_c, tmp_path)
    assert capsys.readouterr().err == (f"proofs-check: interrupted; {out} keeps the trained network, the "
                                       "reconstructions and 3 of 6 fresh networks' accuracies: rerun with --resume to "
                                       "continue\n")
    assert not (out / "rkip_finite.json").exists()

    def counted(*args, **kwargs):
        calls.append(kwargs["seed"])
        return real(*args, **kwargs)

    def no_training(*args, **kwargs):
        raise AssertionError("the trained network was saved: --resume trained it again")

    from numerics import audit

    calls.clear()
    monkeypatch.setattr(distill, "network_accuracy", counted)
    monkeypatch.setattr(audit, "train_on", no_training)
    monkeypatch.setattr(distill, "rkip_finite", no_training)
    assert main(["rkip-finite", "--resume", "--out", str(out)]) == 0  # the options run.json records
    printed = " ".join(capsys.readouterr().out.split())
    assert "resuming with the options" in printed and "3 fresh network(s) trained on the original points: read back" \
        in printed
    assert calls == [100, 101, 102]  # the fresh networks on the reconstructions alone
    assert _numbers(json.loads((out / "rkip_finite.json").read_text())) == _numbers(reference)


def _interrupted_rkip_run(monkeypatch, name: str, replacement, tmp_path):
    """A 200-step rkip-finite run in tmp_path/run with numerics.distill's ``name`` replaced (a Ctrl-C inside it):
    exit 130; returns the run folder."""
    from numerics import distill

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(distill, name, replacement)
        assert main([*RKIP_SMALL, "--steps", "200", "--out", str(out)]) == 130
    return out


def test_rkip_finite_ctrl_c_in_the_attack_resumes_from_its_checkpoint(rkip_run, tmp_path, monkeypatch, capsys):
    """Ctrl-C during the attack (one whose KeyboardInterrupt Python discarded: the attack stops after its first
    chunk, once saved) keeps the trained network and the attack's checkpoint; --resume continues the attack from
    step 100 and ends with the numbers of an uninterrupted run."""
    from numerics import distill

    _, reference = rkip_run
    real = distill.rkip_finite

    def ctrl_c_then_attack(*args, **kwargs):
        press_ctrl_c_where_python_discards_it()
        return real(*args, **kwargs)

    out = _interrupted_rkip_run(monkeypatch, "rkip_finite", ctrl_c_then_attack, tmp_path)
    argv = [*RKIP_SMALL, "--steps", "200", "--out", str(out)]
    assert capsys.readouterr().err == (f"proofs-check: interrupted at step 100 of 200 (the attack); {out} keeps the "
                                       "trained network and the attack at step 100 of 200 (its checkpoint): rerun "
                                       "with --resume to continue\n")
    assert Checkpoint(out / "attack_checkpoint.npz", kind="attack").peek()[0] == 100
    resumed_from = []
    real_attack = distill.rkip_finite

    def spy(*args, **kwargs):
        found = real_attack(*args, **kwargs)
        resumed_from.append(found.attack.info["resumed_from"])
        return found

    monkeypatch.setattr(distill, "rkip_finite", spy)
    assert main([*argv, "--resume"]) == 0
    assert resumed_from == [100]
    assert "the trained network: read back" in capsys.readouterr().out
    assert _numbers(json.loads((out / "rkip_finite.json").read_text())) == _numbers(reference)
    # without --resume the run starts afresh: the earlier run's stages are not read back
    assert main(argv) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "starting afresh in" in printed and "read back" not in printed
    assert _numbers(json.loads((out / "rkip_finite.json").read_text())) == _numbers(reference)


def test_rkip_finite_ctrl_c_after_training_met_its_target_says_training_is_complete(tmp_path):
    """Ctrl-C in training's last chunk, where it met its loss target at step 205 of a 5000-step budget: the line said
    the folder keeps "training at step 205 of 5000", as if 4795 steps were still to go (review27b F5); one that
    stopped training midway still names the budget."""
    import argparse

    from proofs_check.distill_cli import rkip_finite_interrupted

    Checkpoint(tmp_path / "train_checkpoint.npz", kind="train", settings={}).save((np.zeros(2),), step=205,
                                                                                  budget=5000)
    args = argparse.Namespace(out=tmp_path, running=True, train_steps=5000, steps=200)
    ended = rkip_finite_interrupted(args, Interrupted(205, total=205, what="training"))
    assert ended == (f"interrupted with training complete at step 205; {tmp_path} keeps training complete at step 205 "
                     "(its checkpoint): rerun with --resume to continue")
    midway = rkip_finite_interrupted(args, Interrupted(205, total=5000, what="training"))
    assert f"{tmp_path} keeps training at step 205 of 5000 (its checkpoint)" in midway


@pytest.mark.parametrize("flag, shown", [([], True), (["--no-progress"], False)])
def test_rkip_finite_draws_progress_bars_unless_no_progress(flag, shown, tmp_path, monkeypatch):
    """--no-progress as in the other commands: the experiment's bars are asked for unless it is given (and are
    drawn only on a terminal, numerics.progress.progress_bar)."""
    from numerics import distill

    asked = []

    def record_then_stop(*args, **kwargs):
        asked.append(kwargs["progress"])
        raise KeyboardInterrupt

    monkeypatch.setattr(distill, "rkip_finite_experiment", record_then_stop)
    assert main(["rkip-finite", "--n", "4", "--recon", "2", *flag, "--out", str(tmp_path / "run")]) == 130
    assert asked == [shown]


def test_the_old_module_name_is_the_program(tmp_path):
    """`python -m proofs_check.distill_cli ...` (README's old lines, notes) runs `proofs-check rkip-finite ...` as the
    program: its refusal, in one line with exit 2."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    process = subprocess.run([sys.executable, "-m", "proofs_check.distill_cli", "--n", "4", "--recon", "4", "--out",
                              str(tmp_path / "run")], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert process.returncode == 2, process.stderr
    assert process.stderr == ("proofs-check: error: --recon 4: the reconstructions must be fewer than --n 4 (M < N is "
                              "distillation)\n")
    assert not (tmp_path / "run").exists()
