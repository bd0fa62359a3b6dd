"""`proofs-check attack` end to end on tiny networks: files, the success measure beside trivial baselines, a
loaded model, Ctrl-C (exit 130, one line, checkpoint intact) and --resume (continues, never retrains)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from numerics import audit, checkpoint, privacy
from numerics.checkpoint import Checkpoint
from proofs_check.cli import main
from test_checkpoint import press_ctrl_c_where_python_discards_it  # tests/ is on sys.path (prepend import mode)

TINY = ["--n", "4", "--width", "32", "--train-steps", "400", "--no-progress"]


def test_attack_trains_attacks_and_scores_beside_the_baselines(tmp_path, capsys, monkeypatch):
    from proofs_check import figures

    grids = []
    real_grid = figures.matched_reconstruction_grid

    def grid(*args, **kwargs):
        grids.append(kwargs)
        return real_grid(*args, **kwargs)

    monkeypatch.setattr(figures, "matched_reconstruction_grid", grid)
    out = tmp_path / "run"
    assert main(["attack", *TINY, "--steps", "60", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # nothing on stderr in a normal run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_recon"] == 8 and metrics["training"]["stop_reason"] == "threshold"
    rows = metrics["leakage"]
    assert list(rows) == ["attack", "mean image", "noise + mean", "class means", "held-out points"]
    assert [row["trivial"] for row in rows.values()] == [False, True, True, True, True]
    assert metrics["revealed"] == rows["attack"]["revealed"] and "times closer" in metrics["success_measure"]
    for row in rows.values():
        assert 0 <= row["revealed"] <= 1 and {"ssim_ge_0.4", "ssim_ge_0.9"} <= set(row)
    # the screen shows the same table
    for name in rows:
        assert name in captured.out
    # the bar's quantity and the metrics' are named apart: objective (with the box penalty) vs loss
    assert set(metrics["attack"]) >= {"objective", "loss", "loss_unsmoothed"} and metrics["quantities"]
    for name in ("curve.png", "reconstructions.png", "model.npz", "attack_checkpoint.npz", "run.json"):
        assert (out / name).is_file()
    # reconstructions.png frames the points that the table counts as revealed
    assert grids[0]["leakage"].revealed(audit.ATTACK_ROW).sum() == rows["attack"]["revealed_count"]

    again = tmp_path / "loaded"
    assert main(["attack", "--model", str(out / "model.npz"), "--n", "4", "--steps", "60", "--out", str(again),
                 "--no-progress"]) == 0
    loaded = json.loads((again / "metrics.json").read_text())
    assert "training" not in loaded
    assert loaded["leakage"] == metrics["leakage"]  # same model, data, seed and steps: the same attack and scores



def test_attack_rescale_scales_delta_theta_by_the_coefficient_scale(tmp_path, capsys):
    """--rescale attacks Delta theta / s, s = numerics.audit.coefficient_scale over M public points, records s, and a
    resume must keep it; with --mode profiled (coefficients solved exactly) it is refused before any work."""
    from numerics.training import load_model

    out = tmp_path / "run"
    assert main(["attack", *TINY, "--steps", "40", "--rescale", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    model = load_model(out / "model.npz")
    dataset = audit.load_dataset("digits-odd-even", 4, seed=0)
    public = audit.reference_sets("digits-odd-even", dataset, seed=0).public[:8]
    scale = audit.coefficient_scale(model.arch, model.width, model.out_dim, model.params_0, model.params_f, public)
    assert scale != 1.0 and metrics["delta_scale"] == pytest.approx(scale, rel=1e-12)  # one computation, twice
    assert f"Delta theta / {scale:.4g}" in captured.out
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["rescale"] is True

    # the loss it reports is the scaled problem's, relative to its own ||Delta theta / s||^2 (invariant under s)
    assert 0 <= metrics["attack"]["loss_relative"] < 1

    # a resume takes --rescale from the run's record; a record without options (older runs) refuses its absence
    from numerics.checkpoint import read_run, write_run

    write_run(out, {key: value for key, value in read_run(out).items() if key != "options"})
    assert main(["attack", *TINY, "--steps", "60", "--out", str(out), "--resume"]) == 2
    assert "--rescale is off (its default) but the run in" in capsys.readouterr().err
    write_run(out, {**read_run(out), "options": {"rescale": ["--rescale"]}})
    assert main(["attack", *TINY, "--steps", "60", "--out", str(out), "--resume"]) == 0
    assert "records: --rescale\n" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["delta_scale"] == pytest.approx(scale, rel=1e-12)
    assert main(["attack", *TINY, "--steps", "60", "--rescale", "--mode", "profiled", "--out",
                 str(tmp_path / "profiled")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--mode profiled solves them exactly" in err
    assert not (tmp_path / "profiled").exists() or not any((tmp_path / "profiled").iterdir())

def test_leakage_rows_are_numerics_privacy_leakage_table(tmp_path):
    dataset = audit.load_dataset("digits-odd-even", 10, seed=3)
    references = audit.reference_sets("digits-odd-even", dataset, seed=3)
    assert references.public.shape[0] == 539 and references.pool.shape[0] == 1258 - 10
    near_copies = dataset.x + 0.02 * np.random.default_rng(0).standard_normal(dataset.x.shape)
    result = audit.leakage(near_copies, dataset, references, seed=3)
    table = privacy.leakage_table({"attack": near_copies}, dataset.x, references.public, pool=references.pool,
                                  mean=references.mean, pool_labels=references.pool_labels,
                                  rng=np.random.default_rng([audit.BASELINE_STREAM, 3]), image_shape=(8, 8), offset=dataset.mean)
    ratios = {name: row.pop("ratio") for name, row in table.items()}
    assert result.rows == table
    assert all(np.array_equal(result.ratios[name], ratios[name]) for name in table)
    # the measure can tell: near copies are revealed, every trivial baseline is not
    assert result.rows["attack"]["revealed"] == 1.0
    assert all(row["revealed"] == 0.0 for row in result.rows.values() if row["trivial"])
    assert all(np.all(result.ratios[name] < 2.0) for name in result.rows if name != "attack")


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_load_dataset_refuses_a_bad_seed_by_the_seed_rule(seed):
    """Library callers get the command line's rule (numerics.data.SEED_RULE), not numpy's own message."""
    with pytest.raises(ValueError, match=r"^seed must be an integer from 0 to 2\*\*32 - 1, got "):
        audit.load_dataset("digits-odd-even", 10, seed=seed)


def test_sphere_reference_sets_are_fresh_points():
    dataset = audit.load_dataset("sphere", 5, seed=1)
    references = audit.reference_sets("sphere", dataset, seed=1)
    assert references.public.shape == (audit.SPHERE_REFERENCE_POINTS, audit.SPHERE_DIMENSION)
    assert np.allclose(np.linalg.norm(references.pool, axis=1), 1.0)
    assert not np.isin(dataset.x, references.public).all(axis=1).any()


def test_sphere_baselines_do_not_replay_the_private_points_draws():
    """With the data's own stream, the 'noise' baseline on sphere data redrew the private points exactly."""
    for seed in (0, 1, 5):
        dataset = audit.load_dataset("sphere", 8, seed=seed)
        references = audit.reference_sets("sphere", dataset, seed=seed)
        rows = audit.leakage(dataset.x[::-1] * 0 + references.public[:8], dataset, references, seed=seed).rows
        assert all(row["revealed"] == 0.0 for row in rows.values() if row["trivial"]), (seed, rows)


def _interrupt_on_first_save(monkeypatch, kind):
    """Press Ctrl-C (a real SIGINT) right after the first checkpoint of ``kind`` is written."""
    original = Checkpoint.save
    saved = []

    def save(self, *args, **kwargs):
        path = original(self, *args, **kwargs)
        if self.kind == kind and not saved:
            saved.append(kwargs["step"])
            os.kill(os.getpid(), signal.SIGINT)
        return path

    monkeypatch.setattr(checkpoint.Checkpoint, "save", save)
    return saved


def test_ctrl_c_in_the_attack_then_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["attack", *TINY, "--steps", "250", "--out", str(out)]
    with monkeypatch.context() as patch:
        _interrupt_on_first_save(patch, "attack")
        assert main(argv) == 130
    err = capsys.readouterr().err
    assert err == "proofs-check: interrupted at step 100 of 250 (the attack); rerun with --resume to continue\n"
    assert Checkpoint(out / "attack_checkpoint.npz", kind="attack").peek()[0] == 100  # intact, at the chunk

    def no_training(*args, **kwargs):
        raise AssertionError("the model in the run folder was retrained")

    monkeypatch.setattr(audit, "train_on", no_training)
    assert main([*argv, "--resume"]) == 0
    captured = capsys.readouterr()
    text = " ".join(captured.out.split())
    assert "using the model trained there" in text and "the attack from step 100 of 250" in text
    assert captured.err == ""
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["attack"]["resumed_from"] == 100 and metrics["attack"]["steps"] == 250
    # a larger budget continues the same run; the annealing keeps the first budget's schedule
    assert main(["attack", *TINY, "--steps", "300", "--out", str(out), "--resume"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["attack"]["resumed_from"] == 250 and metrics["attack"]["anneal_steps"] == 250


def test_ctrl_c_in_training_then_resume(tmp_path, monkeypatch, capsys):
    """Training met its loss target within its first chunk (step ~214 of the 3000 allowed), so the line names that
    step as complete: it said "at step 214 of 3000", as if 2786 steps were left (a new user's trial)."""
    out = tmp_path / "run"
    argv = ["attack", "--n", "4", "--width", "32", "--training", "standard", "--train-steps", "3000", "--steps", "20",
            "--no-progress", "--out", str(out)]
    with monkeypatch.context() as patch:
        saved = _interrupt_on_first_save(patch, "train")
        assert main(argv) == 130
    err = capsys.readouterr().err
    assert saved[0] < 3000
    assert err == (f"proofs-check: interrupted with training complete at step {saved[0]}; rerun with --resume to "
                   "continue\n")
    assert not (out / "model.npz").exists() and (out / "train_checkpoint.npz").is_file()
    assert main([*argv, "--resume"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"training met its loss target at step {saved[0]} (its checkpoint); nothing left to train" in text
    assert "training from step" not in text  # it said "training from step 214 of 3000" (a new user's trial)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["resumed_from"] == saved[0]


def test_a_discarded_ctrl_c_stops_training_and_a_later_one_names_what_is_saved(tmp_path, monkeypatch, capsys):
    """A Ctrl-C whose KeyboardInterrupt Python discarded (in a gc callback, as in JAX's: the attack once ran on and
    exited 0) stops training after its first chunk; a Ctrl-C between training and the attack names what the run
    folder holds."""
    from numerics import attack as attack_module

    out = tmp_path / "run"
    argv = ["attack", *TINY, "--steps", "20", "--out", str(out)]
    real = audit.load_dataset

    def ctrl_c_then_load(*args, **kwargs):
        press_ctrl_c_where_python_discards_it()
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(audit, "load_dataset", ctrl_c_then_load)
        assert main(argv) == 130
    err = capsys.readouterr().err
    step = Checkpoint(out / "train_checkpoint.npz", kind="train").peek()[0]
    # training met its target in that chunk (step ~213 of the 400 allowed): complete at its last step
    assert err == f"proofs-check: interrupted with training complete at step {step}; rerun with --resume to continue\n"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(attack_module, "parameter_space_attack", interrupted)
    assert main([*argv, "--resume"]) == 130
    assert capsys.readouterr().err == ("proofs-check: interrupted with the trained model saved; rerun with --resume "
                                       "to continue\n")


def test_real_ctrl_c_in_a_separate_process(tmp_path):
    """The command as users run it: SIGINT once the attack has checkpointed; exit 130, one line, resumable."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "proofs_check.cli", "attack", *TINY, "--steps", "1000000", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not (out / "attack_checkpoint.npz").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no attack checkpoint after 300 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("proofs-check: interrupted at step ") and "--resume" in lines[0]
    step = int(lines[0].split("at step ")[1].split()[0])
    assert Checkpoint(out / "attack_checkpoint.npz", kind="attack").peek()[0] == step
    assert main(["attack", *TINY, "--steps", str(step + 20), "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["attack"]["resumed_from"] == step


def test_normal_run_in_a_separate_process_is_quiet_on_stderr(tmp_path):
    """No TensorFlow/absl start-up lines, no neural-tangents warnings: stderr stays empty."""
    out = tmp_path / "r"
    command = [sys.executable, "-m", "proofs_check.cli", "attack", "--dataset", "sphere", "--arch",
               "expr:1:phi=tanh(x)", "--n", "3", "--width", "8", "--train-steps", "100", "--steps", "10",
               "--no-progress", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    metrics = json.loads((out / "metrics.json").read_text())  # points, not images: the measure without SSIM
    assert "ssim_ge_0.4" not in metrics["leakage"]["attack"] and (out / "curve.png").is_file()
    assert not (out / "reconstructions.png").exists()


def test_quieting_drops_only_tensorflows_startup_lines(capfd):
    from numerics._nt import quiet_native_stderr

    with quiet_native_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:17 12 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not "
                    b"be used.\n")
        os.write(2, b"numerics: a message of this project\n")
        print("a Python-level line", file=sys.stderr)
    kept = capfd.readouterr().err.splitlines()  # (pytest's sys.stderr bypasses descriptor 2: order may differ)
    assert sorted(kept) == ["a Python-level line", "numerics: a message of this project"]


def test_only_neural_tangents_numerical_activation_warnings_are_silenced():
    import warnings

    from numerics._nt import silence_numerical_activation_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_numerical_activation_warnings()
        warnings.warn_explicit("Numerical Activation Layer with fn=tanh, deg=80 used!", UserWarning, "elementwise.py",
                               1, module="neural_tangents._src.stax.elementwise")
        warnings.warn_explicit("Using JAX autodiff to compute the `fn` derivative for NTK.", UserWarning,
                               "elementwise.py", 2, module="neural_tangents._src.stax.elementwise")
        warnings.warn_explicit("Numerical Activation Layer with fn=tanh", UserWarning, "mine.py", 3, module="numerics.x")
        warnings.warn("a warning of this project", RuntimeWarning)
    assert [str(w.message) for w in caught] == ["Numerical Activation Layer with fn=tanh",
                                                "a warning of this project"]

