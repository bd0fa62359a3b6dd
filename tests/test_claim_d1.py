"""Claim D1 on the quick profile: every derivation, check and counterexample passes."""

from proofs_check.registry import Context, run_claim


def test_claim_d1_quick(tmp_path):
    from proofs_check.claims import d1

    ctx = Context(profile="quick", out_dir=tmp_path)
    result = run_claim(d1.CLAIM, ctx)
    failed = [(o.name, o.measured, o.expected, o.details.get("error")) for o in result.outcomes if o.failed]
    assert not failed, failed
    kinds = {o.kind for o in result.outcomes}
    assert kinds == {"derivation", "check", "counterexample"}
    assert (tmp_path / "figures" / "d1_deviation_vs_width.png").stat().st_size > 0
