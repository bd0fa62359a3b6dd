"""The Mehler (Hermite) series of the dual kernels without a closed form (numerics.kernels._hermite_series): against
scipy's adaptive quadrature and the 2-D rule, its truncation bound, which branch a call takes, its tangents, and the
shapes convolutional chains pass. The exact half (the series of a polynomial is its Isserlis dual) is in
tests/test_dual.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from numerics import kernels
from numerics.kernels import _quadrature_pair, analytic_ntk
from numerics.quadrature import gaussian_expectation_2d, scalar_function
from theory.architecture import parse_spec
from theory.dual import QUADRATURE, DualKernel, x_symbol
from theory.expressions import parse_activation

FORMULAS = ["tanh(x)", "tanh(3*x)", "sin(x)", "log(1+exp(x))", "exp(-x**2)", "x*tanh(x)"]
POINTS = [(0.05, 0.3, 1.0), (1.0, 1.0, 1.0), (0.7, 2.0, -1.0), (1.5, 0.2, 0.0), (10.0, 10.0, 1.0)]
"""(a, b, rho): coincident, antipodal and independent inputs, variances 0.05 to 10 (10: the tails of tanh(x) fail the
tolerance there, so its bound is exercised where it is not small)."""
SCIPY_TOLERANCE = 1e-12
"""gaussian_expectation_2d's requested tolerance per nested integral: the series is compared with it to within its
bound plus this (measured where the series is taken: <= 4.4e-16 off scipy, for all six formulas)."""


ULP = 1e-15
"""The same computation compiled in a jax.lax.cond branch and on its own (XLA fuses it differently): measured 5.6e-17
apart (one ulp of 0.17). Where series and rule are both accurate the values cannot tell the branches apart; the flag
(the very scalar the call branches on) does, and where they differ (>= 1e-12: tanh(x) at variance 10) so do the
values."""


def _pair(text):
    phi = parse_activation(text) if isinstance(text, str) else text
    pair, _ = _quadrature_pair(DualKernel(str(text), phi, None, None, QUADRATURE))
    return pair, scalar_function(phi), scalar_function(sp.diff(phi, x_symbol))


@pytest.mark.parametrize("text", FORMULAS)
def test_series_is_within_its_bound_of_scipy_and_the_call_takes_it_where_the_bound_is_met(text):
    """Wherever the coefficients' 1-D rule resolves phi and phi' the series alone is within its Cauchy-Schwarz bound
    sqrt(T_K(a) T_K(b)) of scipy (measured: the bound is tight at rho = 1, a = b, e.g. tanh(x) at a = 10: error 7.0e-8,
    bound 7.0e-8; tanh(3*x) at a = 1: 3.2e-8 and 3.2e-8; at a = 10 tanh(3*x) is not resolved, and its error 8.5268e-4
    passed the truncation bound 8.5235e-4: the call takes the rule there); where the call takes it (every tail
    within HERMITE_TOLERANCE) it is within 1e-12 of scipy and is what the call returns; elsewhere the call returns the
    2-D rule's value (to ULP: the same sums compiled inside or outside a jax.lax.cond)."""
    pair, f, f_prime = _pair(text)
    rng = np.random.default_rng(sum(map(ord, text)))
    points = POINTS + [(float(np.exp(rng.uniform(np.log(0.05), np.log(10.0)))),
                        float(np.exp(rng.uniform(np.log(0.05), np.log(10.0)))), float(rng.uniform(-1, 1)))]
    taken = []
    for a, b, rho in points:
        c = rho * np.sqrt(a * b)
        args = tuple(map(jnp.float64, (a, b, c)))
        value, kdot, value_bound, kdot_bound, resolved, accepted = pair.series_bounds(*args)
        reference = gaussian_expectation_2d(f, f, a, b, c), gaussian_expectation_2d(f_prime, f_prime, a, b, c)
        out, rule = pair(*args), pair.rule_pair(*args)
        for series, bound, ref, got, by_rule in zip((value, kdot), (value_bound, kdot_bound), reference, out, rule):
            error = abs(float(series) - ref)
            if bool(resolved):
                assert error <= float(bound) + SCIPY_TOLERANCE * max(1.0, abs(ref)), (a, b, rho, error, float(bound))
            if bool(accepted):
                assert error <= SCIPY_TOLERANCE * max(1.0, abs(ref)) and abs(float(got) - float(series)) <= ULP
            else:
                assert abs(float(got) - float(by_rule)) <= ULP
        assert bool(resolved) or not bool(accepted)
        taken.append(bool(accepted))
    # measured tails (HERMITE_ORDER): unit variances take the series except tanh(3*x) (T_K / q 4e-8 at a = 1);
    # variance 10 takes it for sin(x) and softplus only
    assert taken[0] and taken[1] == (text != "tanh(3*x)")
    assert taken[4] == (text in ("sin(x)", "log(1+exp(x))"))


def test_a_kink_and_a_wide_variance_take_the_rule():
    """abs(x) (a kink: the tails after 257 terms are 6.0e-5 of q for phi and 1.2e-2 for phi' = sign(x), measured at
    unit variance; coefficients decaying like n^(-5/4) and n^(-3/4)) and tanh(x) at variance 10 (tail 9e-8 of q) fail
    the tolerance: the call returns the 2-D rule's value; tanh(x) at unit variance returns the series'. The flag read
    here is the scalar the call's jax.lax.cond branches on."""
    abs_pair, _, _ = _pair(sp.Abs(x_symbol))
    one, wide = jnp.float64(1.0), jnp.float64(10.0)
    assert not bool(abs_pair.series_bounds(one, one, jnp.float64(0.5))[-1])
    half = jnp.float64(0.5)
    assert abs(float(abs_pair(one, one, half)[0]) - float(abs_pair.rule_pair(one, one, half)[0])) <= ULP
    tanh_pair, _, _ = _pair("tanh(x)")
    assert not bool(tanh_pair.series_bounds(wide, one, jnp.float64(0.5))[-1])
    assert bool(tanh_pair.series_bounds(one, one, jnp.float64(0.5))[-1])
    assert bool(tanh_pair.tangent_by_series(one, one)) and not bool(tanh_pair.tangent_by_series(wide, one))
    # a whole layer call decides once: one wide variance among the rows sends every entry to the rule
    rows, columns = jnp.asarray([[1.0], [10.0]]), jnp.asarray([[0.5, 1.0]])
    cross = 0.3 * jnp.sqrt(rows * columns)
    series = tanh_pair.series_bounds(rows, columns, cross)[0]
    np.testing.assert_allclose(np.asarray(tanh_pair(rows, columns, cross)[0]),
                               np.asarray(tanh_pair.rule_pair(rows, columns, cross)[0]), rtol=0, atol=ULP)
    assert float(jnp.max(jnp.abs(series - tanh_pair.rule_pair(rows, columns, cross)[0]))) > 1e-12  # distinguishable


def test_series_takes_broadcast_variances_of_any_shape():
    """Convolutional chains pass the row variances as (n1, 1, P, 1) and the columns' as (1, n2, 1, P): coefficients
    are computed on those shapes and the entries broadcast, equal to one scalar call per entry (the same float64
    sums in another batching and fusion: measured at most 6.7e-16 apart over all 96 entries)."""
    pair, _, _ = _pair("tanh(x)")
    rng = np.random.default_rng(4)
    a = jnp.asarray(rng.uniform(0.2, 2.0, size=(3, 1, 4, 1)))
    b = jnp.asarray(rng.uniform(0.2, 2.0, size=(1, 2, 1, 4)))
    c = jnp.asarray(rng.uniform(-1, 1, size=(3, 2, 4, 4))) * jnp.sqrt(a * b)
    value, kdot = pair(a, b, c)
    assert value.shape == kdot.shape == (3, 2, 4, 4)
    for index in [(0, 0, 0, 0), (2, 1, 3, 2), (1, 0, 2, 3)]:
        one = pair(a[index[0], 0, index[2], 0], b[0, index[1], 0, index[3]], c[index])
        assert abs(float(one[0]) - float(value[index])) <= 2e-15 and abs(float(one[1]) - float(kdot[index])) <= 2e-15


@pytest.mark.parametrize("spec", ["expr:2:phi=log(1+exp(x))", "expr:2:sb=0.1:phi=x*tanh(x)"])
def test_gram_gradient_by_the_series_matches_finite_differences(spec):
    """A Gram matrix K(X, X) (coincident inputs on its diagonal, rho = 1) differentiated through the series' Price
    tangents (the call's tangent takes the series at these variances: checked), against central differences (step
    1e-5: truncation ~1e-10 relative, cancellation ~1e-11); measured worst of 3 directions 2.1e-10 (softplus) and
    5.0e-10 (x*tanh(x))."""
    arch = parse_spec(spec)
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(5, 4)))
    x = 2.0 * x / jnp.linalg.norm(x, axis=1, keepdims=True)  # ||x||^2 = d
    pair, _ = kernels.dual_functions(arch)
    variance = jnp.float64(arch.sigma_w**2 + arch.sigma_b**2)
    assert bool(pair.tangent_by_series(variance, variance))
    f = lambda z: jnp.sum(analytic_ntk(arch, z) ** 2)  # noqa: E731
    grad = jax.grad(f)(x)
    assert bool(jnp.all(jnp.isfinite(grad)))
    for _ in range(3):
        direction = jnp.asarray(rng.normal(size=(5, 4)))
        numeric = (f(x + 1e-5 * direction) - f(x - 1e-5 * direction)) / 2e-5
        assert abs(float(jnp.vdot(grad, direction)) - float(numeric)) <= 1e-8 * abs(float(numeric))


def test_forcing_the_rule_gives_the_same_ntk(monkeypatch):
    """HERMITE_TOLERANCE < 0 forces the 2-D rule (the benchmark's baseline): the same NTK on 12 points of unit mean
    square (layer variances 1 and 0.39, where the tails are at the round-off floor and both duals are within 1e-15 of
    scipy) to float64 round-off: measured 2.4e-15 relative. (At points of mean square 2.5 the series is 3.3e-12 off the
    rule, its tail there, inside HERMITE_TOLERANCE.)"""
    arch = parse_spec("expr:2:phi=tanh(x)")
    x = jnp.asarray(np.random.default_rng(6).normal(size=(12, 8)))
    x = np.sqrt(8.0) * x / jnp.linalg.norm(x, axis=1, keepdims=True)
    series = np.asarray(analytic_ntk(arch, x))
    monkeypatch.setattr(kernels, "HERMITE_TOLERANCE", -1.0)
    kernels._clear_caches()
    try:
        pair, _ = kernels.dual_functions(arch)
        assert not bool(pair.series_bounds(jnp.float64(1.0), jnp.float64(1.0), jnp.float64(0.5))[-1])
        rule = np.asarray(analytic_ntk(arch, x))
    finally:
        monkeypatch.undo()
        kernels._clear_caches()
    assert np.max(np.abs(series - rule)) <= 1e-13 * np.max(np.abs(rule))


def test_a_vmapped_kernel_keeps_one_unbatched_branch_decision():
    """The kernel-space attack differentiates the NTK under jax.vmap over independent starts: the series' decision
    stays one scalar for the batch (numerics.kernels._every_variance_meets), so the call still branches (a cond in
    the jaxpr; a batched predicate made it a select that runs the rule too), and every member's value and gradient
    equal its own unbatched call's (measured 1.1e-15 relative; 1e-12 allows fusion order)."""
    arch = parse_spec("expr:2:phi=tanh(x)")
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(4, 3)))
    starts = jnp.asarray(rng.normal(size=(3, 2, 3)))

    def loss(z):
        return jnp.sum(analytic_ntk(arch, z, x) ** 2)

    batched = jax.vmap(jax.value_and_grad(loss))
    assert "cond[" in str(jax.make_jaxpr(jax.vmap(loss))(starts))
    values, grads = batched(starts)
    for k in range(starts.shape[0]):
        value, grad = jax.value_and_grad(loss)(starts[k])
        assert abs(float(values[k]) - float(value)) <= 1e-12 * abs(float(value))
        assert float(jnp.max(jnp.abs(grads[k] - grad))) <= 1e-12 * float(jnp.max(jnp.abs(grad)))


def test_nested_vmaps_keep_the_branch():
    """An outer jax.vmap met the inner one's rule body (a plain comparison), batched it and turned the cond into a
    select that runs the 2-D rule every time; the rule now calls the decision again (conds in the nested gradient's
    jaxpr, values equal to the unbatched call's)."""
    arch = parse_spec("expr:2:phi=tanh(x)")
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(3, 2)))
    starts = jnp.asarray(rng.normal(size=(2, 2, 1, 2)))

    def loss(z):
        return jnp.sum(analytic_ntk(arch, z, x) ** 2)

    assert "cond[" in str(jax.make_jaxpr(jax.vmap(jax.vmap(jax.value_and_grad(loss))))(starts))  # traced only
    values = jax.vmap(jax.vmap(loss))(starts)  # values compiled (the gradients' compilation took 10 s more)
    value = loss(starts[1, 0])
    assert abs(float(values[1, 0]) - float(value)) <= 1e-12 * abs(float(value))  # ULP-level: fusion order


def test_a_zero_variance_is_finite_on_both_branches():
    """A zero variance (an all-zero input or patch, no bias): the rule divided 0 by 0 for the correlation and gave NaN,
    so whether NaN came out hung on another entry sending the call to the rule (variance 50 there). Both branches now
    give E[phi(0) phi(v)] = 0 and E[phi'(0) phi'(v)] = E[tanh'(v)] (0.6057 at unit variance, by scipy), and Price's
    1-D rule gives the partials where a variance is 0 (the 2-D rule's slope in sqrt(a) is infinite there)."""
    from scipy import integrate, stats

    pair, _, _ = _pair("tanh(x)")
    zero, one = jnp.float64(0.0), jnp.float64(1.0)
    expected = integrate.quad(lambda z: stats.norm.pdf(z) * (1 - np.tanh(z) ** 2), -40, 40, epsabs=1e-14)[0]
    for value, derivative in (pair(zero, one, zero), pair.rule_pair(zero, one, zero)):
        assert float(value) == 0.0 and abs(float(derivative) - expected) <= 1e-12  # measured 1.1e-16 / 5.6e-16
    mixed = jnp.asarray([[0.0], [50.0]]), jnp.asarray([[1.0, 2.0]]), jnp.zeros((2, 2))  # 50: the rule for the call
    assert bool(jnp.all(jnp.isfinite(jnp.stack(pair(*mixed)))))
    grad = jax.grad(lambda a: jnp.sum(pair(a, *mixed[1:])[1]))(mixed[0])
    series_grad = jax.grad(lambda a: jnp.sum(pair(a, *mixed[1:])[1]))(jnp.asarray([[0.0], [1.0]]))
    assert bool(jnp.all(jnp.isfinite(grad))) and abs(float(grad[0, 0]) - float(series_grad[0, 0])) <= 1e-9


def test_float32_inputs_give_the_float64_kernel():
    """float32 inputs: the series' sums ran a float32 carry against float64 coefficients (a TypeError in the scan);
    every kernel now reads its inputs as float64 (its documented type) and equals the one of the same inputs given in
    float64; the gradient keeps the inputs' type."""
    arch = parse_spec("expr:2:phi=tanh(x)")
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    single = analytic_ntk(arch, jnp.asarray(x))
    assert single.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(single), np.asarray(analytic_ntk(arch, jnp.asarray(x, jnp.float64))),
                               rtol=1e-14)  # the same float64 numbers: measured 0 apart
    grad = jax.grad(lambda z: jnp.sum(analytic_ntk(arch, z, jnp.asarray(x))))(jnp.asarray(x))
    assert grad.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize("spec", ["expr:2:phi=tanh(x)", "expr:2:phi=log(1+exp(x))"])
def test_the_gradient_at_an_all_zero_input_is_finite_and_right(spec):
    """An all-zero input (variance 0, no biases) had a NaN gradient from the second layer on: the diagonal's rule was
    differentiated through sqrt(a) at a = 0 (a review); its slope there is Price's E[phi'^2 + phi phi''] by the same
    rule. The zero row's gradient matches central differences (measured 3e-10 relative; 1e-7 allows the
    differences' own error at step 1e-5)."""
    f = kernels.analytic_kernel_fn(parse_spec(spec))
    x = np.random.default_rng(0).normal(size=(3, 4))
    x[1] = 0.0
    others = jnp.asarray(x)

    def loss(z):
        return jnp.sum(f(z, others)[1])

    grad = np.asarray(jax.grad(loss)(jnp.asarray(x)))
    assert np.all(np.isfinite(grad))
    step, numeric = 1e-5, np.empty(4)
    for j in range(4):
        shift = np.zeros_like(x)
        shift[1, j] = step
        numeric[j] = (float(loss(jnp.asarray(x + shift))) - float(loss(jnp.asarray(x - shift)))) / (2 * step)
    assert np.max(np.abs(grad[1] - numeric)) <= 1e-7 * np.max(np.abs(numeric)), (grad[1], numeric)
