"""Mutation audit 29's survivors in H1: each mutation now makes one of H1's own cheap steps FAIL (it left every claim
green before; only unit tests caught it), and the real code passes the same step. Each runs one step, not the claim."""

from __future__ import annotations

import pytest

from claim_mutation import failed_outcomes, mutated
from numerics import kkt, metrics
from proofs_check.claims import h1

SSIM_STEP = "SSIM against scikit-image"
KKT_CASE_STEP = "KKT residual on a hand-solved case"


def test_ssim_step_passes_unmutated(tmp_path):
    assert failed_outcomes(h1.CLAIM, SSIM_STEP, tmp_path, all_applicable=True) == []


@pytest.mark.parametrize("constant, value", [("SSIM_K2", 0.3), ("SSIM_K1", 0.1)])
def test_wrong_ssim_constant_fails_h1(monkeypatch, tmp_path, constant, value):
    """A wrong stabilizing constant changes every SSIM score the claim reports (measured 0.053 for K2 = 0.3, 7.2e-4
    for K1 = 0.1, seed 0) and used to fail only tests/test_ssim_vectorized.py."""
    monkeypatch.setattr(metrics, constant, value)
    failed = failed_outcomes(h1.CLAIM, SSIM_STEP, tmp_path, all_applicable=True)
    assert len(failed) == 1 and failed[0].startswith("max |vectorized SSIM - scikit-image's"), failed


def test_kkt_case_step_passes_unmutated(tmp_path):
    assert failed_outcomes(h1.CLAIM, KKT_CASE_STEP, tmp_path, all_applicable=True) == []


def test_kkt_residual_without_the_sign_constraint_fails_h1(monkeypatch, tmp_path):
    """Plain least squares in place of NNLS (mu unconstrained) gives the same premise residual on H1's quick data,
    but 0 instead of 1/sqrt(3) on the hand-solved case."""
    unconstrained = mutated(kkt, "kkt_residual",
                            "_, residual = nnls(columns, np.asarray(theta), maxiter=50 * columns.shape[1])",
                            "residual = np.linalg.norm(np.asarray(theta) - columns @ np.linalg.lstsq(columns, "
                            "np.asarray(theta), rcond=None)[0])")
    monkeypatch.setattr(kkt, "kkt_residual", unconstrained)
    failed = failed_outcomes(h1.CLAIM, KKT_CASE_STEP, tmp_path, all_applicable=True)
    assert len(failed) == 1 and failed[0].startswith("|kkt_residual - 1/sqrt(3)|"), failed
    assert "0.577" in failed[0], failed


def test_ssim_scores_without_the_mean_added_back_fail_h1(monkeypatch, tmp_path):
    """The claim's scoring (numerics.privacy.leakage_scores) scoring centred digits, its offset dropped: the SSIM curve
    the claim reports is no longer scikit-image's on the raw images (a review: the step compared the matching alone)."""
    from numerics import privacy

    centred = mutated(privacy, "leakage_scores", "shift = 0.0 if offset is None else np.asarray(offset, np.float64)",
                      "shift = 0.0")
    monkeypatch.setattr(privacy, "leakage_scores", centred)
    failed = failed_outcomes(h1.CLAIM, SSIM_STEP, tmp_path, all_applicable=True)
    assert len(failed) == 1 and failed[0].startswith("max |vectorized SSIM - scikit-image's"), failed
