"""The `proofs-check attack` tool end to end on a tiny network, and its loaded-model path."""

import json

from proofs_check.cli import main


def test_attack_trains_attacks_and_writes_files(tmp_path):
    out = tmp_path / "run"
    argv = ["attack", "--n", "4", "--width", "32", "--steps", "60", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metric"] == "ssim" and metrics["n_recon"] == 8 and len(metrics["curve"]) == 4
    assert metrics["training"]["stop_reason"] == "threshold"
    assert all(-1.0 <= v <= 1.0 for v in metrics["curve"]) and metrics["curve"] == sorted(metrics["curve"], reverse=True)
    for name in ("curve.png", "reconstructions.png", "model.npz", "attack_checkpoint.npz"):
        assert (out / name).is_file()

    again = tmp_path / "loaded"
    assert main(["attack", "--model", str(out / "model.npz"), "--n", "4", "--steps", "60", "--out", str(again),
                 "--no-progress"]) == 0
    loaded = json.loads((again / "metrics.json").read_text())
    assert loaded["model"].endswith("model.npz") and "training" not in loaded
    assert loaded["curve"] == metrics["curve"]  # same model, data, seed and steps: the same attack


def test_attack_bad_usage_exits_2(capsys):
    assert main(["attack", "--dataset", "imagenet"]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert main(["attack", "--n", "0"]) == 2
