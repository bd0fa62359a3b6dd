"""The benchmark scripts' cheap parts run (make bench runs the rest): the matmul-layout timing behind the fused
attack sweeps' layout, and the attack-step table with its two ratio columns."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import attack_steps  # noqa: E402


def test_matmul_layouts_times_every_layout_in_both_precisions():
    rows = attack_steps.matmul_layouts(widths=(64,), m=4, runs=1, emit=lambda line: None)
    assert {(r["precision"], r["layout"]) for r in rows} == {
        (p, name) for p in ("float64", "float32") for name in (*attack_steps.LAYOUTS, attack_steps.HOST_BLAS)}
    assert all(r["gflop_per_s"] > 0 for r in rows)


def test_attack_step_table_shows_both_baselines():
    rows = [{"width": 256, "formulation": name, "steps_per_s": 100.0 * k, "ratio_to_jvp": float(k),
             "ratio_to_jvp_same_precision": float(k) / 2, "xla_gflop_per_step": 0.04, "flop_ratio_to_jvp": 1.2}
            for k, name in enumerate(("jvp float64", "fused float32"), start=1)]
    text = attack_steps.table(rows)
    assert "vs jvp same prec." in text and "fused float32" in text and "1.00x" in text
    assert {f"{m} {p}" for m, _, p in attack_steps.FORMULATIONS} >= {"jvp float64", "jvp float32"}


def test_hermite_duals_benchmark_times_series_and_rule():
    """benchmarks/hermite_duals.py on 6 digits: both methods timed, the same Gram matrix (float64 round-off: both are
    within 1e-15 of scipy at the digits' variances, measured), and the table scales the rule where it did not run."""
    import hermite_duals

    rows = hermite_duals.measure([6, 8], repeats=1, rule_max_n=6, emit=lambda line: None)
    assert [(r["n"], r["method"]) for r in rows] == [(6, "series"), (6, "rule"), (8, "series")]
    assert all(r["cold_seconds"] > 0 and r["warm_seconds"] > 0 for r in rows)
    assert rows[1]["max_relative_difference"] <= 1e-13
    text = hermite_duals.table(rows)
    assert "speedup" in text and "~" in text.splitlines()[2]
