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
