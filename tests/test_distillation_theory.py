"""numerics.omission and theory.distillation (T2, T3); the cheap steps of claims T2 and T3 pass on the quick
profile (the attack steps run in `proofs-check run`; their failure modes are in test_mutations_distill_theory)."""

import numpy as np
import pytest
from hypothesis import example, given, strategies as st
from hypothesis.extra.numpy import arrays

from numerics.omission import (inverse_diagonal, loo_residuals, loo_residuals_by_refit, omission_cost,
                               omission_costs)
from proofs_check.claims import t2, t3
from proofs_check.registry import Context, run_step

FLOAT64_REASON = 1e-9
"""Relative tolerance against plain numpy inverses on drawn matrices with cond <= ~1e4: float64 round-off is
cond * eps ~ 1e-12; a wrong formula is O(1) off."""


@st.composite
def problems(draw, max_n: int = 7):
    """A strictly PD Gram matrix K = A A^T + (n/4) I (cond <= ~1e4 for entries in [-3, 3]), alpha of 1 or 2 columns."""
    n = draw(st.integers(1, max_n))
    a = draw(arrays(np.float64, (n, n + 1), elements=st.floats(-3, 3)))
    kernel = a @ a.T + (n / 4) * np.eye(n)
    columns = draw(st.sampled_from([None, 2]))
    shape = (n,) if columns is None else (n, columns)
    alpha = draw(arrays(np.float64, shape, elements=st.floats(-2, 2)))
    return kernel, alpha


def _naive_cost(kernel, alpha, omit):
    alpha = alpha.reshape(kernel.shape[0], -1)
    block = np.linalg.inv(kernel)[np.ix_(omit, omit)]
    return float(np.sum(alpha[omit] * (np.linalg.inv(block) @ alpha[omit])))


@given(problems(), st.data())
@example((np.array([[2.0]]), np.array([1.5])), None)
def test_omission_cost_is_the_schur_complement(problem, data):
    kernel, alpha = problem
    n = kernel.shape[0]
    omit = [0] if data is None else data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    scale = max(float(np.sum(alpha.reshape(n, -1) * (kernel @ alpha.reshape(n, -1)))), 1e-12)
    assert abs(omission_cost(kernel, alpha, omit) - _naive_cost(kernel, alpha, omit)) <= FLOAT64_REASON * scale
    if len(omit) < n:
        assert abs(omission_cost(kernel, alpha, omit) - t2.schur_loss(kernel, alpha, np.array(omit))) \
            <= FLOAT64_REASON * scale


@given(problems())
def test_per_point_costs_and_loo_residuals(problem):
    kernel, alpha = problem
    n = kernel.shape[0]
    diagonal = np.diag(np.linalg.inv(kernel))
    np.testing.assert_allclose(inverse_diagonal(kernel), diagonal, rtol=FLOAT64_REASON)
    costs = omission_costs(kernel, alpha)
    rows = alpha.reshape(n, -1)
    scale = max(float(np.sum(rows * (kernel @ rows))), 1e-12)
    np.testing.assert_allclose(costs, np.sum(rows**2, axis=1) / diagonal, rtol=FLOAT64_REASON, atol=1e-15)
    residuals = loo_residuals(kernel, alpha)
    assert residuals.shape == alpha.shape
    if n > 1:
        refit = loo_residuals_by_refit(kernel, kernel @ alpha)
        assert np.max(np.abs(residuals - refit)) <= FLOAT64_REASON * max(np.max(np.abs(kernel @ alpha)), 1e-12)
        assert np.max(np.abs(costs - np.sum(rows * refit.reshape(n, -1), axis=1))) <= FLOAT64_REASON * scale


def _antipodal_and_close() -> np.ndarray:
    x = np.eye(6, 4)
    x[1] = -x[0]
    x[2] = x[3] + 1e-3 * x[4]
    return x


@given(arrays(np.float64, (6, 4), elements=st.floats(-1, 1)), st.sampled_from(["relu:2", "erf:3:sw=1.5:sb=0.1"]))
@example(_antipodal_and_close(), "relu:2")
def test_identities_on_ntk_gram_matrices(points, spec):
    """Omission cost = Schur loss and c_i = alpha_i r_i on the analytic NTK at drawn sphere points (fixed shape:
    one compilation); near-duplicates make K ill-conditioned, so the tolerance scales with cond(K)."""
    from hypothesis import assume

    norms = np.linalg.norm(points, axis=1, keepdims=True)
    assume(np.all(norms > 0.1))
    x = points / norms
    assume(np.min(np.linalg.norm(x[:, None] - x[None], axis=-1) + 2 * np.eye(6)) > 1e-4)
    kernel = t2._gram(spec, x)
    alpha = np.linalg.solve(kernel, np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0]))
    scale = float(alpha @ kernel @ alpha)
    # round-off amplified by cond(K): measured <= 0.08 * 1e-15 cond(K) over 200 draws (some 1e-3 apart)
    tolerance = 1e-15 * np.linalg.cond(kernel) * 100
    for omit in ([0], [1, 2], [0, 3, 4, 5]):
        assert abs(omission_cost(kernel, alpha, omit) - t2.schur_loss(kernel, alpha, np.array(omit))) <= \
            tolerance * scale
    refit = loo_residuals_by_refit(kernel, kernel @ alpha)
    assert np.max(np.abs(omission_costs(kernel, alpha) - alpha * refit)) <= tolerance * scale


def test_omitting_everything_costs_the_whole_norm():
    kernel = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 1.5]])
    alpha = np.array([1.0, -2.0, 0.5])
    assert omission_cost(kernel, alpha, [2, 0, 1]) == pytest.approx(alpha @ kernel @ alpha, rel=1e-14)


@pytest.mark.parametrize("kernel,alpha,omit,message", [
    (np.ones((2, 3)), np.ones(2), [0], "square"),
    (np.array([[1.0, np.nan], [np.nan, 1.0]]), np.ones(2), [0], "NaN"),
    (np.array([[1.0, 0.5], [0.0, 1.0]]), np.ones(2), [0], "not symmetric"),
    (np.array([[1.0, 1.0], [1.0, 1.0]]), np.ones(2), [0], "not positive definite"),
    (np.eye(2), np.ones(3), [0], "alpha must have shape"),
    (np.eye(2), np.array([1.0, np.inf]), [0], "alpha contains"),
    (np.eye(2), np.ones(2), [], "nonempty"),
    (np.eye(2), np.ones(2), [0, 0], "repeated"),
    (np.eye(2), np.ones(2), [2], r"\[0, 2\)"),
    (np.eye(2), np.ones(2), [True, False], "boolean"),
    (np.eye(2), np.ones(2), [0.5], "integer"),
])
def test_bad_input_is_named(kernel, alpha, omit, message):
    with pytest.raises(ValueError, match=message):
        omission_cost(kernel, alpha, omit)


@given(st.integers(0, 2**31 - 1))
def test_exact_rational_relations_hold(seed):
    from theory.distillation import rational_evaluations

    evaluations = rational_evaluations(seed, n_train=3, n_distilled=1, n_features=4)
    assert all(e.holds for e in evaluations), [(e.name, e.value) for e in evaluations if not e.holds]


CHEAP_STEPS = {
    "T2": ("exact rationals", "identities on NTK Gram matrices", "M = N - 1 attack", "costs do not add"),
    "T3": ("exact rationals", "identity on NTK blocks", "the distillation code", "bound (a), random points", "bound (b)",
           "converse of (b)"),
}
"""Symbolic derivations run in test_mutations_distill_theory's unmutated baseline; the adversarial ascent and the
finite-network step run in `proofs-check run --profile quick` (~10 s each)."""


@pytest.mark.parametrize("claim", [t2.CLAIM, t3.CLAIM], ids=lambda c: c.id)
def test_cheap_steps_pass_on_the_quick_profile(claim, tmp_path):
    ctx = Context(profile="quick", out_dir=tmp_path)
    ran = []
    for kind, step in claim.steps():
        if step.name in CHEAP_STEPS[claim.id]:
            outcomes = run_step(kind, step, ctx)
            failed = [(o.name, o.measured, o.expected, o.details.get("error")) for o in outcomes if o.failed]
            assert not failed, failed
            assert all(o.reason for o in outcomes)
            ran.append(step.name)
    assert ran == list(CHEAP_STEPS[claim.id])


@given(st.integers(0, 2**32 - 1), arrays(np.float64, (2,), elements=st.floats(-2, 2)),
       st.floats(0.0, 1.0))
@example(0, np.zeros(2), 0.0)
def test_t3_bounds_on_drawn_sets(seed, lam, closeness):
    """Bounds (a) and (b) of T3 on the relu:2 NTK: 6 training points, 2 distilled, 1 probe on S^3 (drawn from a
    seed; ``closeness`` 1 puts the first distilled point on a training point, 0 leaves it independent)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(9, 4))
    x[6] = closeness * x[0] + (1 - closeness) * x[6]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x_t, x_s, probe = x[:6], x[6:8], x[8:]
    k_tt, k_ts, k_ss = t3._blocks("relu:2", x_t, x_s)
    alpha = np.linalg.solve(k_tt, np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0]))
    y_s = k_ss @ lam
    loss = t3.rkip_loss(k_tt, k_ts, k_ss, alpha, y_s)
    assert loss >= 0 and abs(loss - t3.attack_loss(k_tt, k_ts, k_ss, alpha, lam)) <= 1e-10 * (alpha @ k_tt @ alpha)
    assert t3.kip_ratio(k_tt, k_ts, k_ss, alpha, y_s) <= 1.0
    p = dict(x_t=x_t, x_s=x_s, alpha=alpha)
    gap, diagonal = t3._gap_and_diagonal("relu:2", probe, p, t3.distilled_coefficients(k_ss, y_s))
    assert float(t3.pointwise_ratio(np.asarray(gap), loss, np.asarray(diagonal))[0]) <= 1.0
