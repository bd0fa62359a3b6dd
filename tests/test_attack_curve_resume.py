"""``proofs-check attack-curve --resume``: every finished series is read back, the series in progress continues its
training or attack from its last saved chunk, and a run interrupted and resumed scores exactly what an
uninterrupted one does; a resume with other settings is one line and exit 2 before any work."""

import json
import shutil

import pytest

import numerics  # noqa: F401  (float64 on)
from numerics import attack, audit
from proofs_check.attack_curve import SERIES_FILES
from proofs_check.cli import main
from test_checkpoint import press_ctrl_c_where_python_discards_it  # tests/ is on sys.path (prepend import mode)

TINY = ["attack-curve", "--arch", "relu:2", "--training", "linearized", "--training", "standard", "--width", "4",
        "--n", "2", "--train-steps", "20", "--budgets", "4,8", "--no-progress"]
"""Two series, each trained 20 steps and attacked 8 (chunks of 4: the budgets' gcd)."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny run, uninterrupted."""
    out = tmp_path_factory.mktemp("curve") / "whole"
    assert main([*TINY, "--out", str(out)]) == 0
    return out


def _results(out):
    """attack_curve.json without what differs between runs of the same settings: timings, file paths, where each
    piece resumed from."""
    record = json.loads((out / "attack_curve.json").read_text())
    for key in ("seconds", "resumed"):
        record.pop(key)
    for entry in record["series"]:
        entry.pop("model"), entry.pop("resumed_from")
        for point in entry["points"]:
            point.pop("seconds")
    return record


def _forbid(patch, *names):
    def forbidden(*args, **kwargs):
        raise AssertionError("a finished piece was recomputed")

    for module, name in names:
        patch.setattr(module, name, forbidden)


def test_an_interrupted_run_resumes_to_the_same_scores(finished, tmp_path, monkeypatch, capsys):
    """Ctrl-C after the first series, then at the end of the second series' training (before its model is saved),
    then during its attack: each --resume reads back what was finished (the first series is neither trained nor
    attacked again, the second's training resumes from its checkpoint and its model is not retrained), the attack
    continues from its checkpoint, and attack_curve.json equals the uninterrupted run's."""
    out = tmp_path / "resumed"
    real_train, real_attack = audit.train_on, attack.parameter_space_attack
    trained, attacked = [], []

    def train(*args, **kwargs):
        trained.append((kwargs["linearized"], kwargs["resume"]))
        if len(trained) == 2:  # the second series starts: Ctrl-C
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(audit, "train_on", train)
        assert main([*TINY, "--out", str(out)]) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted in series 2 of 2 (relu:2, standard); rerun with "
                                       "--resume to continue\n")
    assert json.loads((out / "relu-2-ca322e-linearized" / SERIES_FILES["record"]).read_text())["complete"]

    def after_ctrl_c(real, calls):
        def run(*args, **kwargs):
            calls.append((kwargs.get("linearized"), kwargs["resume"]))
            press_ctrl_c_where_python_discards_it()  # the loop stops after its first chunk, once saved
            return real(*args, **kwargs)
        return run

    trained.clear()
    with monkeypatch.context() as patch:
        patch.setattr(audit, "train_on", after_ctrl_c(real_train, trained))
        assert main([*TINY, "--resume", "--out", str(out)]) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted with training complete at step 20 in series 2 of 2 "
                                       "(relu:2, standard); rerun with --resume to continue\n")
    assert trained == [(False, True)] and not (out / "relu-2-ca322e-standard" / SERIES_FILES["model"]).exists()

    trained.clear()
    with monkeypatch.context() as patch:
        patch.setattr(audit, "train_on", lambda *args, **kwargs: trained.append(kwargs["resume"])
                      or real_train(*args, **kwargs))
        patch.setattr(attack, "parameter_space_attack", after_ctrl_c(real_attack, attacked))
        assert main([*TINY, "--resume", "--out", str(out)]) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted at step 4 of 8 (the attack) in series 2 of 2 "
                                       "(relu:2, standard); rerun with --resume to continue\n")
    assert trained == [True] and attacked == [(None, False)]  # the second series alone: training resumed

    with monkeypatch.context() as patch:  # the options come from run.json: each --training, --budgets 4,8, ...
        _forbid(patch, (audit, "train_on"))
        assert main(["attack-curve", "--resume", "--no-progress", "--out", str(out)]) == 0
    record = json.loads((out / "attack_curve.json").read_text())
    assert record["resumed"] and record["series"][1]["resumed_from"] == {"training": 20, "attack": 4}
    # exactly: the resumed loops run the same float64 steps in chunks of the same length (the same compilations)
    assert _results(out) == _results(finished)


def test_slow_attack_steps_still_end_a_chunk_at_every_budget(finished, tmp_path, monkeypatch):
    """An attack whose steps are slow runs two single steps, then chunks sized by their time: 4 steps from step 2
    passed the budget 4 (a KeyError traceback after the whole attack); every multiple of the chunk now ends one."""
    monkeypatch.setattr(attack, "SLOW_ATTACK_WORK", 0)
    argv = [*TINY[:TINY.index("--training") + 2], *TINY[TINY.index("--width"):]]  # the linearized series alone
    assert main([*argv, "--out", str(tmp_path / "slow")]) == 0
    slow, whole = _results(tmp_path / "slow")["series"][0], _results(finished)["series"][0]
    # tolerance: the same float64 steps in scans of other lengths (1, 1, 2, 4); XLA may fuse them differently
    assert slow.pop("final_loss") == pytest.approx(whole.pop("final_loss"), rel=1e-12, abs=0)
    assert slow == whole


def test_a_finished_run_resumes_without_work_and_afresh_drops_its_series(finished, tmp_path, monkeypatch, capsys):
    """--resume of a finished run only draws it again (a Ctrl-C before it reads a series still says --resume);
    without --resume the run starts afresh, and the earlier run's series files go first, so a Ctrl-C then leaves
    nothing of it to pass for the new run's."""
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    with monkeypatch.context() as patch:
        _forbid(patch, (audit, "train_on"), (attack, "parameter_space_attack"))
        assert main([*TINY, "--resume", "--out", str(out)]) == 0
    assert _results(out) == _results(finished)
    capsys.readouterr()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # a resumed run stopped before its first series: still --resume
        patch.setattr(audit, "load_dataset", interrupted)
        assert main([*TINY, "--resume", "--out", str(out)]) == 130
    assert capsys.readouterr().err == "proofs-check: interrupted; rerun with --resume to continue\n"
    monkeypatch.setattr(audit, "train_on", interrupted)
    assert main([*TINY, "--out", str(out)]) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted; nothing was saved yet: rerun the same command to "
                                       "start again\n")
    assert not (out / "attack_curve.json").exists()
    assert [path.name for path in out.glob("*/*")] == []


def test_ctrl_c_in_training_names_the_step_and_the_series(tmp_path, monkeypatch, capsys):
    """(It once said "attack-curve does not resume: a rerun starts over".)"""
    from numerics.checkpoint import Interrupted

    def interrupted_training(*args, **kwargs):
        raise Interrupted(223, 20000, "training")

    monkeypatch.setattr(audit, "train_on", interrupted_training)
    argv = ["attack-curve", "--arch", "relu:2", "--training", "linearized", "--width", "32", "--n", "4",
            "--budgets", "20", "--no-progress", "--out", str(tmp_path / "c")]
    assert main(argv) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted at step 223 of 20000 (training) in series 1 of 1 "
                                       "(relu:2, linearized); rerun with --resume to continue\n")


@pytest.mark.parametrize("change, words", [
    (["--lr", "0.01"], "--lr is 0.01 (as given) but the run in {out} used 0.02; resume with the "
                       "same settings, or drop --resume to start afresh"),
    (["--budgets", "4,16"], "--budgets is 4,16 (as given) but the run in {out} used 4,8"),
    (["--training", "linearized"], "--training is linearized (as given) but the run in {out} used "
                                   "linearized, standard"),
    (["--rescale"], "--rescale is on (as given) but the run in {out} used off"),
    (["--train-steps", "30"], "--train-steps is 30 (as given) but the run in {out} used 20"),
])
def test_a_resume_with_other_settings_is_one_line_and_exit_2(finished, monkeypatch, capsys, change, words):
    argv = list(TINY)
    if change[0] == "--training":  # one --training instead of two
        start = argv.index("--training")
        argv[start:start + 4] = change
    else:
        argv = [*argv, *change] if change[0] not in argv else [
            *argv[:argv.index(change[0])], *change, *argv[argv.index(change[0]) + 2:]]
    _forbid(monkeypatch, (audit, "train_on"), (attack, "parameter_space_attack"))
    assert main([*argv, "--resume", "--out", str(finished)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("proofs-check: error: ") and words.format(out=finished) in err, err


def test_damaged_saved_pieces_and_combine_are_refused_before_work(finished, tmp_path, monkeypatch, capsys):
    _forbid(monkeypatch, (audit, "train_on"), (attack, "parameter_space_attack"))
    assert main(["attack-curve", "--combine", str(finished), "--resume", "--out", str(tmp_path / "c")]) == 2
    assert "--resume describes a run to continue; --combine draws earlier ones" in capsys.readouterr().err
    out = tmp_path / "damaged"
    shutil.copytree(finished, out)
    record = out / "relu-2-ca322e-standard" / SERIES_FILES["record"]
    record.write_text("{bad json")
    assert main([*TINY, "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{record} is unreadable" in err and "remove it to redo that series" in err, err
    record.write_text(json.dumps({**json.loads((finished / record.relative_to(out)).read_text()),
                                  "settings": {"lr": 1.0}}))
    assert main([*TINY, "--resume", "--out", str(out)]) == 2
    assert "was written by a run with other settings" in capsys.readouterr().err
    whole = json.loads((finished / record.relative_to(out)).read_text())
    for damaged, words in [({**whole, "entry": {**whole["entry"], "points": [1, 2]}}, "the score at 4 steps"),
                           ({**whole, "complete": False, "training": {}}, "training.train_steps missing"),
                           ({**whole, "baselines": {"mean image": {"revealed": "none"}}}, "baseline row 'mean image'")]:
        record.write_text(json.dumps(damaged))
        assert main([*TINY, "--resume", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and "remove it to redo that series" in err, err
    record.write_text(json.dumps(whole))
    model = out / "relu-2-ca322e-standard" / SERIES_FILES["model"]
    shutil.copy(record, out / "relu-2-ca322e-linearized" / SERIES_FILES["model"])  # a model file that is not one
    (out / "relu-2-ca322e-linearized" / SERIES_FILES["record"]).unlink()
    assert main([*TINY, "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "drop --resume to start afresh" in err and model.is_file(), err


def test_readme_names_the_series_folders_a_run_writes(finished):
    """README said the series folders are OUT/<arch>-<training>/; they carry a hash of the spec (the documentation,
    README or a page under docs/, says so)."""
    from documentation import documentation_text

    readme = " ".join(documentation_text().split())
    folders = sorted(p.name for p in finished.iterdir() if p.is_dir())
    assert folders == ["relu-2-ca322e-linearized", "relu-2-ca322e-standard"], folders
    assert "`OUT/<arch>-<hash>-<training>/`" in readme and "`OUT/relu-2-ca322e-linearized/` for relu:2" in readme
