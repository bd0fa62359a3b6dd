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
    assert report["schema"] == 2 and report["passed"] and report["profile"] == "quick"
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


def test_not_applicable_neither_passes_nor_fails():
    from proofs_check.registry import Claim, ClaimResult, not_applicable

    na = not_applicable("no closed form", "quadrature instead")
    assert na.status == "n/a" and not na.passed and not na.failed
    claim = Claim(id="X", title="", statement="", assumptions=[])
    assert not ClaimResult(claim, [na], 0.0).passed  # nothing applicable: no verdict to give
    assert ClaimResult(claim, [na, within("x", 0.0, 1.0, "r")], 0.0).passed
    assert not ClaimResult(claim, [na, within("x", 2.0, 1.0, "r")], 0.0).passed


def test_bootstrap_slope_interval_covers_the_exponent_and_can_fail():
    import numpy as np

    from proofs_check.registry import bootstrap_loglog_slope, rate_interval, slope_below

    rng = np.random.default_rng(0)
    widths = np.array([64, 128, 256, 512, 1024])
    noisy = widths**-0.5 * np.exp(0.1 * rng.normal(size=(12, widths.size)))  # 10% multiplicative seed noise
    fit = bootstrap_loglog_slope(widths, noisy, rng=np.random.default_rng(1), n_boot=500)
    assert fit.low < fit.slope < fit.high and fit.width < 0.2
    assert rate_interval("r", fit, -0.5, "r", max_width=0.3).passed
    assert not rate_interval("r", fit, -0.25, "r").passed  # a wrong exponent lies outside the interval
    assert not rate_interval("r", fit, -0.5, "r", max_width=fit.width / 2).passed  # too wide to say anything
    assert slope_below("decreasing", fit, 0.0, "r").passed
    flat = 0.3 * np.exp(0.1 * rng.normal(size=(12, widths.size)))
    assert not slope_below("decreasing", bootstrap_loglog_slope(widths, flat, rng=np.random.default_rng(2),
                                                                n_boot=500), 0.0, "r").passed
