"""The proofs-check command: exit codes, one-line errors, the report files."""

import json

import pytest

from proofs_check.cli import main
from proofs_check.registry import Context, Step, exact, fit_loglog_slope, rate, run_step, within


@pytest.mark.parametrize("argv, message", [
    (["run", "K99"], "unknown claim K99"),
    (["run", "K1", "--arch", "tanhh:2"], "unknown activation 'tanhh'"),
    (["run", "K1", "--arch", "relu:two"], "not an integer"),
    (["run", "--profile", "slow"], "invalid choice"),
    ([], "required"),
])
def test_bad_usage_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_list_shows_k1(capsys):
    assert main(["list"]) == 0
    assert "K1" in capsys.readouterr().out


def test_k1_quick_profile_passes_and_writes_report(tmp_path):
    assert main(["run", "K1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["schema"] == 1 and report["passed"] and report["profile"] == "quick"
    (k1,) = report["claims"]
    kinds = {o["kind"] for o in k1["outcomes"]}
    assert kinds == {"derivation", "check", "counterexample"}
    assert all(o["passed"] and o["reason"] for o in k1["outcomes"])
    figures = {f for o in k1["outcomes"] for f in o["figures"]}
    assert figures and all((tmp_path / f).is_file() for f in figures)
    assert "K1" in (tmp_path / "report.md").read_text()


def test_outcome_helpers_can_fail():
    assert not within("x", 2e-10, 1e-10, "r").passed
    assert not within("x", float("nan"), 1.0, "r").passed
    assert not rate("x", -0.8, -0.5, 0.15, "r").passed
    assert not exact("x", 1).passed and exact("x", 0).passed


def test_a_raising_step_is_a_failed_outcome(tmp_path):
    def boom(ctx):
        raise RuntimeError("kaput")

    (outcome,) = run_step("check", Step("boom", "", boom), Context(out_dir=tmp_path))
    assert not outcome.passed and "kaput" in outcome.details["error"]


def test_loglog_slope_recovers_exponent():
    widths = [10, 100, 1000]
    slope, _ = fit_loglog_slope(widths, [3 * w**-0.5 for w in widths])
    assert abs(slope + 0.5) <= 1e-12  # exact power law: only round-off
