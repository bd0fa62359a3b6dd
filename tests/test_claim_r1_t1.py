"""Claims R1 and T1 on the quick profile: every derivation, check and counterexample passes."""

import importlib

import pytest

from proofs_check.registry import REGISTRY, Context, run_claim


@pytest.mark.parametrize("module,claim_id,kinds", [
    ("r1", "R1", {"derivation", "check"}),
    ("t1", "T1", {"derivation", "check", "counterexample"}),
])
def test_claim_quick_profile_passes(module, claim_id, kinds, tmp_path):
    importlib.import_module(f"proofs_check.claims.{module}")
    result = run_claim(REGISTRY[claim_id], Context(profile="quick", out_dir=tmp_path))
    failed = [(o.name, o.measured, o.expected, o.details) for o in result.outcomes if o.failed]
    assert not failed, failed
    assert {o.kind for o in result.outcomes} == kinds
    assert all(o.reason for o in result.outcomes)
    figures = {f for o in result.outcomes for f in o.figures}
    assert all((tmp_path / f).is_file() for f in figures)
    if claim_id == "R1":
        assert figures


@pytest.mark.parametrize("spec", ["erf:2", "expr:2:phi=tanh(x)"])
def test_finite_attack_says_it_is_not_calibrated_on_smooth_activations(spec, tmp_path):
    """R1's finite-width attack is calibrated on piecewise-linear activations: on a smooth one it says so (n/a,
    with what was measured) instead of failing on a tolerance set for relu; a piecewise-linear one is checked."""
    from proofs_check.claims import r1
    from proofs_check.registry import run_step
    from theory.architecture import parse_spec

    (step,) = [step for kind, step in r1.CLAIM.steps() if step.run is r1.check_finite_attack]
    ctx = Context(profile="quick", out_dir=tmp_path, archs=(parse_spec(spec),))
    (outcome,) = run_step("check", step, ctx)
    assert not outcome.applicable and "piecewise-linear" in outcome.reason


def test_finite_attack_trivial_bar_is_at_most_one_of_four():
    """R1's trivial baselines may reveal at most 1 of the 4 training points: "fewer than the attack" (the bar before)
    let 2 or 3 of 4 pass beside an attack revealing all 4."""
    from proofs_check.claims import r1

    assert r1.ATTACK_N == 4 and r1.trivial_within_bar(0.0) and r1.trivial_within_bar(0.25)
    assert not r1.trivial_within_bar(0.5) and not r1.trivial_within_bar(0.75)


def _network_run(loss_ratio=1e-4, max_distance=0.01, revealed=1.0, trivial=0.0, seed=0):
    return {"seed": seed, "loss_ratio": loss_ratio, "max_distance": max_distance, "matched_distances": [],
            "revealed": revealed, "trivial_revealed": trivial, "leakage_table": {}, "training_steps": 1,
            "final_training_loss": 0.0, "attack_loss_curve_first_last": [1.0, 0.0], "final_beta": 200.0}


def _rows(runs):
    from proofs_check.claims import r1
    from theory.architecture import parse_spec

    return r1._finite_attack_outcomes(parse_spec("relu:2"), 5, runs)


def test_finite_attack_rows_count_networks_and_need_half_of_them():
    """The finite-width attack is a rate over networks (one network fails at 6 of --seed 0-39): each row passes when
    at least half of its networks pass, and the last row counts networks where all three hold."""
    from proofs_check.claims import r1
    from theory.architecture import parse_spec

    assert [r1.majority_needed(k) for k in (1, 2, 3, 4, 16)] == [1, 1, 2, 2, 8]
    relu = parse_spec("relu:2")  # network 0 draws the seeds of the single-network step that earlier surveys measured
    assert r1.network_tags(relu, 0) == ("relu:2",) and r1.network_tags(relu, 3) == ("relu:2", 3)
    assert r1.ATTACK_NETWORKS == (4, 16)
    good, high_loss, far = _network_run(), _network_run(loss_ratio=5e-3), _network_run(max_distance=0.5)
    rows = _rows([good, good, high_loss, far])
    assert [o.passed for o in rows] == [True, True, True, True]
    assert rows[3].measured == "2 of 4 (CI 0.07-0.93); trivial 0 of 4", rows[3].measured
    assert rows[0].details["loss_ratios"] == [1e-4, 1e-4, 5e-3, 1e-4]
    rows = _rows([good, high_loss, high_loss, far])  # each row holds on half; all three on one network only
    assert [o.passed for o in rows] == [True, True, True, False]
    assert rows[3].measured.startswith("1 of 4") and rows[3].expected.startswith(">= 2 of 4")
    rows = _rows([good, high_loss, high_loss, high_loss])
    assert [o.passed for o in rows] == [False, True, True, False]
    assert rows[0].measured.startswith("1 of 4")
    rows = _rows([good, _network_run(revealed=0.75), _network_run(revealed=0.5), good])
    assert [o.passed for o in rows] == [True, True, True, True]
    rows = _rows([good, _network_run(revealed=0.75), _network_run(revealed=0.5), _network_run(revealed=0.75)])
    assert [o.passed for o in rows] == [True, True, False, False]
    full = _rows([good] * 7 + [high_loss] * 9)  # the full profile's 16: 7 fall short of 8
    assert [o.passed for o in full] == [False, True, True, False] and full[0].expected.startswith(">= 8 of 16")
    assert all(len(o.measured) <= 40 for o in full), [o.measured for o in full]  # the report cuts longer ones


def test_finite_attack_fails_when_a_trivial_reconstruction_reveals_two_points_on_any_network():
    """A trivial reconstruction revealing 2 of 4 on one network fails the network's revealed row and the recovered
    row, even where the other networks carry the count: the success measure must fail the baselines everywhere."""
    good = _network_run()
    rows = _rows([good, good, good, _network_run(trivial=0.5)])
    assert [o.passed for o in rows] == [True, True, False, False]
    assert rows[2].measured.startswith("3 of 4") and rows[3].measured.endswith("; trivial 2 of 4")
    assert rows[2].expected.endswith("trivial <= 1 of 4 on every network")
    assert [o.passed for o in _rows([good, good, good, _network_run(trivial=0.25)])] == [True] * 4


@pytest.mark.parametrize("count,trials", [(0, 8), (2, 4), (3, 4), (4, 4), (14, 16), (1, 1)])
def test_exact_rate_interval_is_scipys_clopper_pearson(count, trials):
    """numerics.statistics.exact_rate_interval, shared by R1's network counts and E1's non-member bound, against
    scipy's exact binomial interval (1e-9: two root finders on the same beta quantiles)."""
    from scipy.stats import binomtest

    from numerics.statistics import exact_rate_interval

    reference = binomtest(count, trials).proportion_ci(0.95, method="exact")
    assert exact_rate_interval(count, trials) == pytest.approx((reference.low, reference.high), abs=1e-9)
