"""Deliberate bugs in the code behind claims T2 and T3, each of which must make the claim FAIL.

Each mutation is a one-line bug of the kind found by reading the code (a Schur complement left uninverted, a
missing square root, the wrong eigenvalue); the test runs the owning claim step(s) on the quick profile with
:func:`proofs_check.registry.run_step` and asserts that an applicable outcome failed. The same steps pass
unmutated (test_distillation_theory.py, and the baseline here for the symbolic steps).
"""

from __future__ import annotations

import dataclasses

import jax

import numpy as np
import pytest
import scipy.linalg
import sympy as sp

from numerics import attack, distill, omission
from proofs_check.claims import t2, t3
from theory import distillation
from claim_mutation import failed_outcomes


def _failed(claim, name: str, tmp_path) -> list[str]:
    return failed_outcomes(claim, name, tmp_path)


# ------------------------------------------------------------------------------------------------
# T2
# ------------------------------------------------------------------------------------------------

def _uninverted_schur(monkeypatch):
    """omission_cost returns alpha_O^T (K^-1)_OO alpha_O: the block of the inverse, not its inverse."""
    def omission_cost(kernel_tt, alpha, omit):
        kernel = np.asarray(kernel_tt, dtype=np.float64)
        rows = np.asarray(alpha, dtype=np.float64).reshape(kernel.shape[0], -1)
        omit = np.asarray(omit)
        return float(np.sum(rows[omit] * (np.linalg.inv(kernel)[np.ix_(omit, omit)] @ rows[omit])))

    monkeypatch.setattr(omission, "omission_cost", omission_cost)


def _kernel_diagonal(monkeypatch):
    """inverse_diagonal returns diag(K) instead of diag(K^-1)."""
    monkeypatch.setattr(omission, "inverse_diagonal", lambda kernel_tt: np.diag(np.asarray(kernel_tt)).copy())


def _inverted_loo(monkeypatch):
    """loo_residuals multiplies by (K^-1)_ii instead of dividing (the inverted formula)."""
    def loo_residuals(kernel_tt, alpha):
        values = np.asarray(alpha, dtype=np.float64)
        diagonal = np.diag(np.linalg.inv(np.asarray(kernel_tt)))
        return values * (diagonal if values.ndim == 1 else diagonal[:, None])

    monkeypatch.setattr(omission, "loo_residuals", loo_residuals)


def _shifted_schur_solve(monkeypatch):
    """The block factor solves with K_OO + I (a stray ridge): every cost is biased low."""
    real = scipy.linalg.cho_factor

    def cho_factor(a, lower=False, **kwargs):
        a = np.asarray(a)
        return real(a + np.eye(a.shape[0]) if a.shape[0] <= 2 else a, lower=lower, **kwargs)

    monkeypatch.setattr(omission.scipy.linalg, "cho_factor", cho_factor)


def _attack_keeps_the_cheapest(monkeypatch):
    """The attack maximizes what it should minimize (a sign slip): it leaves out the costliest point."""
    def kernel_space_attack(arch, x_train, alpha, n_recon, **kwargs):
        x = np.asarray(x_train)
        kernel = np.asarray(attack.analytic_ntk(arch, x))
        costs = omission.omission_costs(kernel, alpha)
        keep = np.delete(np.arange(x.shape[0]), int(np.argmax(costs)))
        loss = t2.schur_loss(kernel, np.asarray(alpha), [int(np.argmax(costs))])
        return attack.AttackResult(x_recon=x[keep], coefficients=np.asarray(alpha)[keep], loss_curve=np.zeros(1),
                                   final_loss=loss, kind="kernel", steps=1)

    monkeypatch.setattr(attack, "kernel_space_attack", kernel_space_attack)


def _attack_returns_its_start(monkeypatch):
    """The parameter-space attack returns its own initialization (numerics.attack.attack_start from its key), as if
    no step were applied: it must fail both the correlation and the margin over the baselines."""
    def parameter_space_attack(arch, params_0, params_f, n_recon, *, in_dim, key, **kwargs):
        x, lam = attack.attack_start(key, n_recon, in_dim, 1)
        return attack.AttackResult(x_recon=np.asarray(x), coefficients=np.asarray(lam), loss_curve=np.zeros(1),
                                   final_loss=float("nan"), kind="parameter", steps=0)

    monkeypatch.setattr(attack, "parameter_space_attack", parameter_space_attack)


def _attack_returns_noise(monkeypatch):
    """The parameter-space attack returns fresh noise of its initialization's scale (not its own start, so the
    attack's-start baseline cannot be what catches it)."""
    def parameter_space_attack(arch, params_0, params_f, n_recon, *, in_dim, key, **kwargs):
        rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
        return attack.AttackResult(x_recon=0.2 * rng.normal(size=(n_recon, in_dim)),
                                   coefficients=rng.uniform(-0.5, 0.5, size=(n_recon, 1)), loss_curve=np.zeros(1),
                                   final_loss=float("nan"), kind="parameter", steps=0)

    monkeypatch.setattr(attack, "parameter_space_attack", parameter_space_attack)


def _symbolic_uninverted_block(monkeypatch):
    """theory.distillation.omission_cost drops the inverse of (K^-1)_OO."""
    def omission_cost(kernel, alpha, omit):
        omit = list(omit)
        alpha_o = alpha.extract(omit, [0])
        return (alpha_o.T * kernel.inv().extract(omit, omit) * alpha_o)[0, 0]

    monkeypatch.setattr(distillation, "omission_cost", omission_cost)


# ------------------------------------------------------------------------------------------------
# T3
# ------------------------------------------------------------------------------------------------

def _labels_are_coefficients(monkeypatch):
    """RKIP uses y_S as the coefficients of f_S (forgets K_SS^-1): the identity with the attack breaks."""
    monkeypatch.setattr(t3, "distilled_coefficients", lambda k_ss, y_s: np.asarray(y_s))


def _missing_sqrt_of_theta(monkeypatch):
    """Bound (a) divides by Theta(x, x) instead of its square root."""
    monkeypatch.setattr(t3, "pointwise_ratio",
                        lambda gap, loss, theta_xx: np.abs(gap) / (np.sqrt(loss) * theta_xx))


def _missing_sqrt_of_loss(monkeypatch):
    """Bound (a) divides by L instead of sqrt(L)."""
    monkeypatch.setattr(t3, "pointwise_ratio",
                        lambda gap, loss, theta_xx: np.abs(gap) / (loss * np.sqrt(theta_xx)))


def _smallest_eigenvalue(monkeypatch):
    """Bound (b) with lambda_min(K_TT) in place of lambda_max."""
    def kip_ratio(k_tt, k_ts, k_ss, alpha, y_s):
        return t3.kip_error(k_tt, k_ts, k_ss, alpha, y_s) / (float(np.linalg.eigvalsh(k_tt)[0])
                                                             * t3.rkip_loss(k_tt, k_ts, k_ss, alpha, y_s))

    monkeypatch.setattr(t3, "kip_ratio", kip_ratio)


def _trace_for_eigenvalue(monkeypatch):
    """Bound (b) with tr K_TT (a valid but loose bound) in place of lambda_max: the equality case shows it."""
    def kip_ratio(k_tt, k_ts, k_ss, alpha, y_s):
        return t3.kip_error(k_tt, k_ts, k_ss, alpha, y_s) / (float(np.trace(k_tt))
                                                             * t3.rkip_loss(k_tt, k_ts, k_ss, alpha, y_s))

    monkeypatch.setattr(t3, "kip_ratio", kip_ratio)


def _kip_with_ridge(monkeypatch):
    """The KIP error is computed with a ridge in K_SS (not the no-ridge error the claim is about)."""
    def kip_error(k_tt, k_ts, k_ss, alpha, y_s):
        beta = np.linalg.solve(k_ss + 1e-2 * np.trace(k_ss) * np.eye(k_ss.shape[0]), y_s)
        return float(np.sum((k_tt @ alpha - k_ts @ beta) ** 2))

    monkeypatch.setattr(t3, "kip_error", kip_error)


def _symbolic_rkip_without_inverse(monkeypatch):
    """theory.distillation.rkip_loss takes beta = y_S."""
    def rkip_loss(k_tt, k_ts, k_ss, alpha, y_s):
        return (alpha.T * k_tt * alpha - 2 * alpha.T * k_ts * y_s + y_s.T * k_ss * y_s)[0, 0]

    monkeypatch.setattr(distillation, "rkip_loss", rkip_loss)


def _symbolic_lagrange_term_dropped(monkeypatch):
    """The Lagrange sum of squares misses the pairs with the last feature (an off-by-one in combinations)."""
    real = distillation.itertools.combinations

    def combinations(iterable, r):
        items = list(iterable)
        return real(items[:-1], r) if r == 2 and len(items) == 3 else real(items, r)

    monkeypatch.setattr(distillation.itertools, "combinations", combinations)


def _distill_rkip_cross_term_halved(monkeypatch):
    """numerics.distill.rkip_loss drops the 2 of its cross term (alpha^T K_TT alpha - alpha^T K_TS beta + ...)."""
    real = distill.rkip_loss

    def rkip_loss(arch, x_support, y_support, x_blocks, alpha_blocks, mask, **kwargs):
        return real(arch, x_support, y_support, x_blocks, alpha_blocks / 2, mask, **kwargs)

    monkeypatch.setattr(distill, "rkip_loss", rkip_loss)


def _distill_kip_counts_the_padding(monkeypatch):
    """numerics.distill.kip_loss ignores its mask: the padded rows of the last block count as target points."""
    real = distill.kip_loss

    def kip_loss(arch, x_support, y_support, x_blocks, y_blocks, mask, **kwargs):
        return real(arch, x_support, y_support, x_blocks, y_blocks, jax.numpy.ones_like(mask), **kwargs)

    monkeypatch.setattr(distill, "kip_loss", kip_loss)


def _sylvester_skips_the_determinant(monkeypatch):
    """Sylvester's criterion stops one minor short (range(1, rows)): the determinant is never consulted, so
    diag(1, -1) is "PD"; only an instance whose other leading minors are all > 0 can tell."""
    monkeypatch.setattr(distillation, "_positive_definite",
                        lambda matrix: all(matrix[:k, :k].det() > 0 for k in range(1, matrix.rows)))


MUTATIONS = {
    "T2 uninverted Schur block": (_uninverted_schur, t2.CLAIM, ["identities on NTK Gram matrices"]),
    "T2 diag(K) for diag(K^-1)": (_kernel_diagonal, t2.CLAIM, ["identities on NTK Gram matrices"]),
    "T2 inverted LOO formula": (_inverted_loo, t2.CLAIM, ["identities on NTK Gram matrices"]),
    "T2 stray ridge in the block solve": (_shifted_schur_solve, t2.CLAIM, ["identities on NTK Gram matrices"]),
    "T2 attack leaves out the costliest": (_attack_keeps_the_cheapest, t2.CLAIM, ["M = N - 1 attack"]),
    "T2 attack returns its start": (_attack_returns_its_start, t2.CLAIM, ["finite networks on digits"]),
    "T2 attack returns fresh noise": (_attack_returns_noise, t2.CLAIM, ["finite networks on digits"]),
    "T2 symbolic block not inverted": (_symbolic_uninverted_block, t2.CLAIM, ["block inversion", "exact rationals"]),
    "T3 labels used as coefficients": (_labels_are_coefficients, t3.CLAIM, ["identity on NTK blocks"]),
    "T3 missing sqrt of Theta(x, x)": (_missing_sqrt_of_theta, t3.CLAIM, ["bound (a), random points"]),
    "T3 missing sqrt of L": (_missing_sqrt_of_loss, t3.CLAIM, ["bound (a), random points"]),
    "T3 lambda_min for lambda_max": (_smallest_eigenvalue, t3.CLAIM, ["bound (b)"]),
    "T3 trace for lambda_max": (_trace_for_eigenvalue, t3.CLAIM, ["bound (b)"]),
    "T3 KIP error with a ridge": (_kip_with_ridge, t3.CLAIM, ["converse of (b)"]),
    "T3 Sylvester's criterion without the determinant": (_sylvester_skips_the_determinant, t3.CLAIM,
                                                          ["exact rationals"]),
    "T3 distillation's RKIP cross term halved": (_distill_rkip_cross_term_halved, t3.CLAIM, ["the distillation code"]),
    "T3 distillation's KIP counts the padding": (_distill_kip_counts_the_padding, t3.CLAIM, ["the distillation code"]),
    "T3 symbolic RKIP without K_SS^-1": (_symbolic_rkip_without_inverse, t3.CLAIM,
                                         ["attack loss = RKIP", "exact rationals"]),
    "T3 Lagrange term dropped": (_symbolic_lagrange_term_dropped, t3.CLAIM, ["bounds (a) and (b)"]),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutation_makes_the_claim_fail(name, monkeypatch, tmp_path):
    mutate, claim, steps = MUTATIONS[name]
    mutate(monkeypatch)
    if claim is t2.CLAIM and "finite networks on digits" in steps:
        # 10 networks fail an attack that never moved in both outcomes (lower ends at most -0.11 and -0.21, --seed
        # 0-9); the claim's 16 are for a working attack's margin (0.04-0.31), which is not under test here
        monkeypatch.setitem(t2.FINITE, "quick", {**t2.FINITE["quick"], "seeds": 10})
    for step in steps:
        failed = _failed(claim, step, tmp_path)
        assert failed, f"{name}: step {step!r} of {claim.id} still passes"
        if step == "finite networks on digits":  # an attack that never moved must fail both outcomes
            assert len(failed) == 2, failed


@pytest.mark.parametrize("claim,step", [(t2.CLAIM, "block inversion"), (t3.CLAIM, "attack loss = RKIP"),
                                        (t3.CLAIM, "bounds (a) and (b)")])
def test_symbolic_steps_pass_unmutated(claim, step, tmp_path):
    assert not _failed(claim, step, tmp_path)


def test_mutations_leave_nothing_behind():
    """monkeypatch restored every patched name (a later test must see the real code)."""
    assert omission.omission_cost.__module__ == "numerics.omission"
    assert distill.rkip_loss.__module__ == distill.kip_loss.__module__ == "numerics.distill"
    assert attack.kernel_space_attack.__module__ == "numerics.attack"
    assert distillation.itertools.combinations is __import__("itertools").combinations
    assert dataclasses.is_dataclass(attack.AttackResult) and sp.Symbol("x").is_Symbol


def test_rank_correlations_by_hand():
    """T2's statistics: Spearman rows agree with scipy (ties included); a reconstruction identical to a baseline has
    margin exactly 0 at every resample; a constant baseline ranks nothing and drops out."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    costs = rng.normal(size=(3, 12))
    quality = {"attack": costs + 0.3 * rng.normal(size=(3, 12)), "copy": None, "flat": np.ones((3, 12))}
    quality["copy"] = quality["attack"].copy()
    tied = np.round(quality["attack"], 0)
    for row in range(3):
        assert t2._spearman_rows(costs[row], tied[row]) == pytest.approx(spearmanr(costs[row], tied[row])[0],
                                                                         abs=1e-14)
    stats = t2.rank_correlations(costs, quality, np.random.default_rng(1), n_boot=200)
    assert stats["rho"]["flat"] is None and stats["strongest_baseline"] == "copy"
    assert stats["margin"] == 0.0 and stats["margin_interval"] == [0.0, 0.0]
    assert 0.5 < stats["rho"]["attack"] and stats["rho_interval"][0] < stats["rho"]["attack"] < stats["rho_interval"][1]
    # an attack that ranks nothing at two of three seeds: those seeds count as rho 0, they do not drop out
    collapsed = {**quality, "attack": np.vstack([quality["attack"][:1], np.zeros((2, 12))])}
    partial = t2.rank_correlations(costs, collapsed, np.random.default_rng(1), n_boot=200)
    assert partial["per_seed_rho"][1:] == [0.0, 0.0]
    assert partial["rho"]["attack"] == pytest.approx(stats["per_seed_rho"][0] / 3, abs=1e-15)
    # networks that disagree (rho +1, +1, -1, -1): the mean is 0, and the networks are resampled too, so the interval
    # spans their spread (points alone resampled, paired: every replicate cancels to [0, 0])
    split = t2.rank_correlations(costs[[0, 1, 0, 1]], {"attack": costs[[0, 1, 0, 1]] * [[1], [1], [-1], [-1]],
                                                       "other": costs[[2, 2, 2, 2]]}, np.random.default_rng(1), n_boot=400)
    assert split["rho"]["attack"] == 0.0 and split["rho_interval"][0] < -0.4 and split["rho_interval"][1] > 0.4


def test_rank_correlations_read_the_expanded_percentile_interval(monkeypatch):
    """T2's intervals are read at numerics.statistics.expanded_tail over the networks (the outer sample), like every rate
    interval: with 4 networks the plain 2.5% tails give a narrower interval from the very same replicates."""
    from numerics.statistics import expanded_tail

    rng = np.random.default_rng(2)
    costs = rng.normal(size=(4, 12))
    quality = {"attack": costs + rng.normal(size=(4, 12)), "other": rng.normal(size=(4, 12))}
    expanded = t2.rank_correlations(costs, quality, np.random.default_rng(5), n_boot=400)
    monkeypatch.setattr(t2, "expanded_tail", lambda level, samples: (1 - level) / 2)  # the plain percentile tails
    plain = t2.rank_correlations(costs, quality, np.random.default_rng(5), n_boot=400)
    assert expanded_tail(0.95, 4) < 0.001  # the tail expanded at 4 networks: measured 1.2e-4
    for key in ("rho_interval", "margin_interval"):
        (low, high), (plain_low, plain_high) = expanded[key], plain[key]
        assert low < plain_low and plain_high < high, (key, expanded[key], plain[key])
