"""Deliberate bugs from a review of T1 and T2, under which both claims used to PASS; each must now make its claim FAIL.

As tests/test_mutations.py: each mutation is a one-line bug applied in-process, the owning step is run on the quick
profile with proofs_check.registry.run_step, and the outcome written for it must be among the failed ones. The same
steps pass unmutated (tests/test_claim_r1_t1.py for T1, test_distillation_theory.py for T2's attack; the finite-network
step's dual outcome below).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numerics import attack
from proofs_check.claims import t1, t2
from claim_mutation import clear_attack_caches, failed_outcomes
from test_mutations import _alpha_without_momentum  # tests/ is on sys.path (alpha ~10x too small at momentum 0.9)

SMALL_FINITE = dict(n=20, m=10, width=256, steps=20, seeds=2)
"""T2's finite-network step cut to two networks, the attack replaced by its start (_attack_skipped): the dual
coefficients come from training alone, so their outcome means the same; the rank correlations are not read here."""


@pytest.fixture(autouse=True)
def fresh_caches():
    """Compiled functions look global names up when traced, and T1 keeps its kernel attacks: clear both around each
    mutation, so that the mutated code runs and no later test reuses what it produced."""
    clear_attack_caches()
    t1._ATTACKS.clear()
    yield
    clear_attack_caches()
    t1._ATTACKS.clear()


def _failed_named(claim, step: str, tmp_path, fragment: str) -> list[str]:
    return [line for line in failed_outcomes(claim, step, tmp_path) if fragment in line]


# ------------------------------------------------------------------------------------------------
# The bugs
# ------------------------------------------------------------------------------------------------

def _triangular_solve_on_the_wrong_triangle(monkeypatch):
    """profiled_loss solves with the lower Cholesky factor as if it were upper (lower=False): L* reads too low, even
    negative, and the attack drives it down away from the training points."""
    def profiled_loss(arch, x_train, alpha, x_recon, *, ridge=0.0, width=None):
        k_tt = attack.analytic_ntk(arch, x_train, width=width)
        k_rt = attack.analytic_ntk(arch, x_recon, x_train, width=width)
        k_rr = attack.analytic_ntk(arch, x_recon, width=width)
        factor = jax.scipy.linalg.cho_factor(k_rr + ridge * jnp.eye(x_recon.shape[0]), lower=True)
        projected = jax.scipy.linalg.solve_triangular(factor[0], k_rt @ alpha, lower=False)
        return jnp.sum(alpha * (k_tt @ alpha)) - jnp.sum(projected**2), jax.scipy.linalg.cho_solve(factor, k_rt @ alpha)

    monkeypatch.setattr(attack, "profiled_loss", profiled_loss)


def _merge_with(monkeypatch, location, weight):
    """merge_reconstructions as written (single linkage within merge_radius), with ``location(x, lam)`` and
    ``weight(lam)`` computing each merged point from its members: the one line a mutation changes."""
    def merge_reconstructions(x_recon, coefficients, *, merge_radius):
        x = np.asarray(x_recon, dtype=np.float64)
        lam = np.asarray(coefficients, dtype=np.float64).reshape(x.shape[0], -1)
        labels = np.arange(x.shape[0])
        gaps = np.linalg.norm(x[:, None] - x[None], axis=-1)
        for i, j in zip(*np.nonzero(gaps < merge_radius)):
            if labels[i] != labels[j]:
                labels[labels == labels[j]] = labels[i]
        members = [labels == label for label in np.unique(labels)]
        return (np.asarray([location(x[m], lam[m]) for m in members]),
                np.asarray([weight(lam[m]) for m in members]))

    monkeypatch.setattr(attack, "merge_reconstructions", merge_reconstructions)


def _weighted_location(x, lam):
    magnitude = np.linalg.norm(lam, axis=1)
    return magnitude / magnitude.sum() @ x


def _merged_coefficients_averaged(monkeypatch):
    """merge_reconstructions averages the coefficients of coincident reconstructions instead of summing them."""
    _merge_with(monkeypatch, _weighted_location, lambda lam: lam.mean(axis=0))


def _polish_discarded(monkeypatch):
    """The L-BFGS polish runs, but its result is thrown away (the restarts keep Adam's end point)."""
    monkeypatch.setattr(attack, "_polish", lambda value_and_grad, z, iterations: z)


# ------------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------------

def test_wrong_triangle_fails_t2_attack(monkeypatch, tmp_path):
    _triangular_solve_on_the_wrong_triangle(monkeypatch)
    failed = failed_outcomes(t2.CLAIM, "M = N - 1 attack", tmp_path)
    for fragment in ("by the Schur form", "min L* / a^T Theta a", "training points within"):
        assert any(fragment in line for line in failed), (fragment, failed)


def _attack_skipped(monkeypatch):
    """Not a bug under test: the parameter-space attack returns its start, so that the finite-network step costs its
    training alone (SMALL_FINITE)."""
    monkeypatch.setitem(t2.FINITE, "quick", SMALL_FINITE)

    def parameter_space_attack(arch, params_0, params_f, n_recon, *, in_dim, key, **kwargs):
        x, lam = attack.attack_start(key, n_recon, in_dim, 1)
        return attack.AttackResult(x_recon=np.asarray(x), coefficients=np.asarray(lam), loss_curve=np.zeros(1),
                                   final_loss=float("nan"), kind="parameter", steps=0)

    monkeypatch.setattr(attack, "parameter_space_attack", parameter_space_attack)


def test_alpha_without_momentum_fails_t2_finite(monkeypatch, tmp_path):
    _attack_skipped(monkeypatch)
    _alpha_without_momentum(monkeypatch)
    assert _failed_named(t2.CLAIM, "finite networks on digits", tmp_path, "K alpha_T - (r_0 - r_T)")


def test_t2_finite_dual_and_scale_outcomes_pass_unmutated(monkeypatch, tmp_path):
    _attack_skipped(monkeypatch)
    failed = failed_outcomes(t2.CLAIM, "finite networks on digits", tmp_path)
    assert not [line for line in failed if "K alpha_T - (r_0 - r_T)" in line or "closeness of c x_i" in line], failed


def test_closeness_score_carrying_the_norm_fails_t2_finite(monkeypatch, tmp_path):
    """relative_distances without its division by ||x_i|| (numerics/privacy.py): the score ranks points by norm, so
    the trivial baselines' rho rose to 0.27-0.30 and T2 still passed (the attack's margin stayed > 0); the scale
    outcome (closeness unchanged under x_i -> c x_i) fails."""
    from numerics import privacy

    _attack_skipped(monkeypatch)
    monkeypatch.setattr(privacy, "relative_distances", lambda recon, private: privacy.rescaled_distances(
        np.asarray(recon, np.float64), np.asarray(private, np.float64)).min(axis=0))
    assert _failed_named(t2.CLAIM, "finite networks on digits", tmp_path, "closeness of c x_i")


def test_averaged_merge_fails_t1_scoring(monkeypatch, tmp_path):
    _merged_coefficients_averaged(monkeypatch)
    failed = failed_outcomes(t1.CLAIM, "recovery scoring", tmp_path)
    # the split point's merge sums alpha_i / 2 twice; the weightless neighbour's merge averages alpha_i with 0
    assert len(failed) == 2 and "two reconstructions" in failed[0] and "weightless reconstruction" in failed[1], failed


def test_min_weight_raised_fails_t1_scoring(monkeypatch, tmp_path):
    """recovery drops merged points below 1e-1 (not 1e-3) of max |alpha|: a point carrying 1e-2 is no longer
    counted as spurious."""
    real = attack.recovery
    monkeypatch.setattr(attack, "recovery", lambda *args, **kwargs: real(*args, **{**kwargs, "min_weight": 1e-1}))
    failed = failed_outcomes(t1.CLAIM, "recovery scoring", tmp_path)
    assert len(failed) == 1 and "1e-2 max |alpha|" in failed[0], failed


def test_unweighted_merge_location_fails_t1_scoring(monkeypatch, tmp_path):
    """merge_reconstructions places a merge at the plain mean of its members, not the |coefficient|-weighted one:
    a weightless neighbour 5e-3 from x_i drags the location 2.5e-3 off."""
    _merge_with(monkeypatch, lambda x, lam: x.mean(axis=0), lambda lam: lam.sum(axis=0))
    failed = failed_outcomes(t1.CLAIM, "recovery scoring", tmp_path)
    assert len(failed) == 1 and "weightless reconstruction" in failed[0], failed


def test_discarded_polish_fails_t1_attack(monkeypatch, tmp_path):
    _polish_discarded(monkeypatch)
    assert _failed_named(t1.CLAIM, "attack, M = 2N", tmp_path, "L* / a^T Theta a"), "T1 passed without the polish"
