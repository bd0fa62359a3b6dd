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
