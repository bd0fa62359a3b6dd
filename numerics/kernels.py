"""Compiled kernels: the analytic NNGP / NTK from :mod:`theory`, empirical and Monte Carlo NTKs.

- :func:`analytic_kernel_fn` turns the sympy dual kernels of :mod:`theory.dual` into JAX functions and
  runs the layer recursion of :mod:`theory.kernels` (one fused elementwise map per layer).
- :func:`empirical_ntk` is the exact finite-width NTK K(x, x') = J(x) J(x')^T of a fully connected
  network, computed layer by layer from activations and back-propagated vectors (no P-dimensional
  Jacobian is formed): K = sum_l <delta^{l+1}(x), delta^{l+1}(x')> (s_l^2 <a^l(x), a^l(x')> + beta),
  with s_l = sigma_w / sqrt(n_l), beta = sigma_b^2 (NTK parametrization) or s_l = 1, beta = [bias]
  (standard).
- :func:`monte_carlo_ntk` averages :func:`empirical_ntk` over independent initializations.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from numerics.networks import (LAMBDIFY_MODULES, Params, activation_fn, dense_layers, forward, make_network,
                               shape_of_params)
from theory import activations
from theory.architecture import Architecture
from theory.layers import STEP_ARGUMENTS, Conv, PairState, activation_of, image_shape, layers_of, n_in, positions
from theory.dual import QUADRATURE, DualKernel, a_var, b_var, c_var, dual_for, x_symbol
from theory.expressions import QUADRATURE_NODES, QUADRATURE_RANGE  # the trapezoid rule (and why it is accurate)

KernelFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]

QUADRATURE_BATCH = 256
"""Kernel entries evaluated at once by the quadrature (bounds memory at batch x nodes^2 floats)."""

_GUARDED = {
    # Round-off can push a correlation a hair outside [-1, 1] or a variance below 0; these guards act
    # only at that level (the inputs are covariances built by the recursion, never user data).
    "acos": lambda x: jnp.arccos(jnp.clip(x, -1.0, 1.0)),
    "asin": lambda x: jnp.arcsin(jnp.clip(x, -1.0, 1.0)),
    "sqrt": lambda x: jnp.sqrt(jnp.maximum(x, 0.0)),
}


def lambdify_jax(args, expr, *, cse: bool = False) -> Callable:
    """sympy expression -> JAX function, with the round-off guards above and numerics.networks' mapping of the
    special functions sympy's JAX printer leaves to ``math`` (erf, erfc, softplus)."""
    return sp.lambdify(args, expr, modules=[_GUARDED, *LAMBDIFY_MODULES], cse=cse)


EDGE_GAP = 256 * float(np.finfo(np.float64).eps)
"""Relative gap (ab - c^2) / ab below which the angle is taken as exactly 0 or pi.

At coincident inputs the gap is 0 on paper, but a, b and c are rounded through different sums (|x|^2 and a
matrix product): measured up to 7 eps for d = 2 ... 4096, and sqrt turns that into an angle of 4e-8, the
1e-8 kernel error of an unguarded arccos/atan2. 256 eps leaves a 35x margin; it snaps only angles below
sqrt(256 eps) = 2.4e-7, which the rounded covariances cannot resolve anyway (their few-eps rounding already
moves such an angle by 5e-8), so the step kernel moves by at most 2.4e-7 / (2 pi) = 4e-8 there."""

_gap = sp.Symbol("gap_sqrt", nonnegative=True)


def _with_gap_symbol(expr: sp.Expr) -> sp.Expr:
    """Every power (ab - c^2)^e, the angle's sine term, as gap_sqrt^(2e), so the compiled function gets it snapped."""
    base = a_var * b_var - c_var**2
    return expr.replace(lambda e: e.is_Pow and sp.expand(e.base - base) == 0, lambda e: _gap ** (2 * e.exp))


def edge_gap_sqrt(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
    """sqrt(ab - c^2), exactly 0 when the relative gap is below :data:`EDGE_GAP` (coincident or antipodal
    inputs up to round-off); the jnp.where keeps the value (and any gradient through it) finite."""
    gap = a * b - c * c
    far = gap > EDGE_GAP * a * b
    return jnp.where(far, jnp.sqrt(jnp.where(far, gap, 1.0)), 0.0)


def _with_symbolic_jvp(exprs: tuple[sp.Expr, ...]) -> Callable:
    """f(a, b, c) -> tuple of ``exprs``, one fused function whose derivatives are the simplified
    symbolic partials (common subexpressions such as the angle are computed once).

    The angle's sine term sqrt(ab - c^2) is passed in as :func:`edge_gap_sqrt`, exact at the angle edges
    (c = +-sqrt(ab)). Autodiff of the arc-cosine forms breaks there: the pieces have infinite slopes that
    cancel only on paper. The symbolic partials are finite there for the degree-1 kernels (d/dc relu-kernel =
    step-kernel); where a partial is genuinely infinite (d/dc of the step kernel at angle 0 or pi, a cusp of
    the kernel) the tangent uses 0, a subgradient.
    """
    args = (a_var, b_var, c_var)
    values = lambdify_jax(args + (_gap,), [_with_gap_symbol(e) for e in exprs], cse=True)
    partials = lambdify_jax(args + (_gap,), [[_with_gap_symbol(sp.simplify(sp.diff(e, v))) for v in args]
                                            for e in exprs])

    @jax.custom_jvp
    def fn(a, b, c):
        zero = jnp.zeros(jnp.broadcast_shapes(a.shape, b.shape, c.shape), dtype=c.dtype)
        return tuple(v + zero for v in values(a, b, c, edge_gap_sqrt(a, b, c)))

    @fn.defjvp
    def fn_jvp(primals, tangents):
        out = fn(*primals)
        zero = jnp.zeros_like(out[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            rows = partials(*primals, edge_gap_sqrt(*primals))
        tangent_out = []
        for row in rows:
            tangent = zero
            for slope, dx in zip(row, tangents):
                slope = slope + zero
                tangent = tangent + jnp.where(jnp.isfinite(slope), slope, 0.0) * dx
            tangent_out.append(tangent)
        return out, tuple(tangent_out)

    return fn


COINCIDENT_GAP = 1e-8
"""Quadrature pairs with 1 - rho^2 at or below this take their derivatives from Price's theorem at rho = +-1
(:func:`_quadrature_pair`); above it, from autodiff of the rule itself, whose error through 1/sqrt(1 - rho^2) stays
near round-off / 1e-4."""
COINCIDENT_NODES = 16 * (QUADRATURE_NODES - 1) + 1
"""Nodes of the 1-D trapezoid rule (same range) for Price's derivatives at rho = +-1: they need the second and third
derivatives of phi, sharper than phi; 2049 nodes cost less than one pass of the 129 x 129 rule."""


HERMITE_ORDER = 256
"""Terms n = 0 .. HERMITE_ORDER of the Mehler series (:func:`_hermite_series`). Measured tails T_K / q at K = 256
(phi / phi' / phi'' / phi'''): tanh(x) at variance 1 all at the round-off floor (<= 1e-14), at variance 3
6e-13 / 9e-11 / 1e-8 / 3e-7 (values by the series, tangents by the 2-D rule), at 10 9e-8 (the 2-D rule); sin(x) and
softplus at the floor up to variance 10 (phi''' of softplus 1e-9 there); tanh(3*x) at variance 1 4e-8 (the 2-D
rule). K = 128 left tanh(x)'s phi''' at variance 1 at 3e-9, so its Gram gradients would have taken the slow rule."""
HERMITE_RANGE = 16.0
"""Half-width of the 1-D rule for the Hermite coefficients: |psi_n(z)| <= 1.09 exp(-z^2 / 4) / sqrt(2 pi) for every n
(Cramer's inequality; measured max |psi_n| exp(z^2 / 4) sqrt(2 pi) = 1.0 up to n = 512), 1.6e-28 at z = 16."""
HERMITE_STEP = 1 / 16
"""Step of that rule (a power of 2, so that nodes and weights are exact: a step read off np.linspace(-16, 16, 641)
as 0.05000000000000071 put every series value 1.4e-14 off). psi_n is the orthonormal Hermite function
He_n(z) exp(-z^2 / 4) / sqrt(sqrt(2 pi) n!), a solution of y'' + (n + 1/2 - z^2 / 4) y = 0, times the smooth
exp(-z^2 / 4) / (2 pi)^(1/4): it oscillates with wavenumber at most sqrt(K + 1/2) = 16 at K = 256, 6 nodes per
period, inside the trapezoid rule's spectral regime (Nyquist step pi / 16 = 0.196); the rule's own accuracy on phi
is checked per call by the halving test of :func:`_hermite_series`."""
HERMITE_TOLERANCE = 1e-10
"""Relative tail T_K(a) / q(a) (and relative change of q(a) when the coefficients' step is doubled) every variance of
a layer call must meet for the Mehler series to be used; then every entry's truncation error is at most
HERMITE_TOLERANCE sqrt(q(a) q(b)) (Cauchy-Schwarz), 1e4 times below the 2-D rule's resolution
(theory.expressions.QUADRATURE_RESOLUTION, 1e-6) and far above the round-off floor of T_K (measured |T_K| / q <=
1e-15 for sin(x), whose tail is nil: T_K is q minus a sum of 257 squares). A negative value forces the 2-D rule (then
clear the caches, numerics.kernels._clear_caches; benchmarks/hermite_duals.py times both).

The guarantee is relative to sqrt(q(a) q(b)), the scale of the kernel's diagonal, not to each entry: an entry far
smaller than that keeps an absolute error near round-off times the diagonal. For bounded phi no entry is that small
where it matters (a review measured every accepted entry within 1e-10 of the scale for 11 activations), but a growing
phi cancels: exp(x) at rho = -1 (E[e^u e^-u] = 1 from terms of size e^{2a}) is 1.3e-8 off at a = 9, 1e-6 at a = 12.
The quadrature itself sees only [-HERMITE_RANGE, HERMITE_RANGE]: mass of phi^2 beyond it escapes both tests
(3e-10 of q for exp(x) at a = 24, the largest variance its halving test passes)."""
DIAGONAL_PRICE_BELOW = 1e-12
"""Variances at or below which the diagonal's slope is Price's E[phi'^2 + phi phi''] (:func:`_quadrature_pair`'s
value_diagonal): there u = sqrt(a) z is within 1e-5 of 0 at every node, where that rule is exact to round-off."""
HERMITE_BATCH = 64
"""Variances whose coefficients are computed at once (memory: batch x 513 nodes x 4 derivative orders)."""


@functools.cache
def hermite_functions(order: int = HERMITE_ORDER) -> tuple[np.ndarray, np.ndarray]:
    """(nodes z_j, weights step * psi_n(z_j) of shape (order + 1, nodes)) on [-HERMITE_RANGE, HERMITE_RANGE] with step
    HERMITE_STEP, where psi_n(z) = He_n(z) N(z) / sqrt(n!) (He_n the probabilists' Hermite polynomial, N the standard
    normal density), by the normalized three-term recurrence psi_0 = N, psi_1 = z N,
    psi_{n+1} = (z psi_n - sqrt(n) psi_{n-1}) / sqrt(n + 1): every term stays below 1.09 exp(-z^2 / 4) / sqrt(2 pi)
    (Cramer's inequality), where He_n(z) and n! alone overflow float64 past n = 170."""
    half = int(round(HERMITE_RANGE / HERMITE_STEP))
    nodes = HERMITE_STEP * np.arange(-half, half + 1)
    psi = np.empty((order + 1, nodes.size))
    psi[0] = np.exp(-0.5 * nodes**2) / np.sqrt(2 * np.pi)
    psi[1] = nodes * psi[0]
    for n in range(1, order):
        psi[n + 1] = (nodes * psi[n] - np.sqrt(n) * psi[n - 1]) / np.sqrt(n + 1)
    return nodes, HERMITE_STEP * psi


def mehler_sums(rho: jax.Array, pairs: list[tuple[jax.Array, jax.Array]]) -> list[jax.Array]:
    """sum_{n=0}^{K} rho^n l_n r_n for each (l, r) in ``pairs`` (coefficients on their last axis, l on the row points'
    own shape, r on the columns'), by Horner's rule from n = K down: memory O(entries), the coefficients are
    broadcast one term at a time; |rho| <= 1 keeps every partial sum bounded."""
    xs = [(jnp.moveaxis(left, -1, 0), jnp.moveaxis(right, -1, 0)) for left, right in pairs]

    def step(totals, terms):
        return tuple(total * rho + left * right for total, (left, right) in zip(totals, terms)), None

    totals, _ = jax.lax.scan(step, tuple(jnp.zeros_like(rho) for _ in pairs), xs, reverse=True, unroll=8)
    return list(totals)


def _hermite_series(derivative_of: Callable, tolerance: float):
    """The Mehler (Hermite) series of the dual kernels (Mehler 1866; O'Donnell, Analysis of Boolean Functions ch. 11;
    the dual-activation form: Daniely, Frostig & Singer 2016, "Toward deeper understanding of neural networks"):
    with rho = c / sqrt(ab) and h_n(a) = E[f(sqrt(a) z) He_n(z)] / sqrt(n!), z ~ N(0, 1),

        E[f(u) g(v)] = sum_n rho^n h_n^f(a) h_n^g(b),        (u, v) ~ N(0, [[a, c], [c, b]]).

    Parseval: sum_n h_n(a)^2 = q(a) = E[f(sqrt(a) z)^2], so the tail after n = K is at most
    sqrt(T_K^f(a) T_K^g(b)) with T_K(a) = q(a) - sum_{n<=K} h_n(a)^2 (Cauchy-Schwarz, |rho| <= 1). The coefficients
    of phi^(o), o = 0 .. 3, are computed on each variance's own (unbroadcast) shape by a 1-D trapezoid rule
    (:func:`hermite_functions`): points x 513 nodes x 257 terms, then Horner on the entries (:func:`mehler_sums`),
    against 129^2 evaluations of phi per entry for the 2-D rule.

    Returns ``coefficients(a, orders) -> (h of shape a.shape + (len(orders), K + 1), tails T_K and changes
    |q_h - q_2h| of shape a.shape + (len(orders),), excess)``, where ``excess`` <= 0 says every variance meets
    ``tolerance``: T_K <= tolerance q and the 1-D rule's q moves by at most tolerance q when its step is doubled (the
    coefficients are resolved: the bound sqrt(T_K(a) T_K(b)) covers truncation, not a rule too coarse for phi)."""
    nodes, weighted = hermite_functions()
    density = HERMITE_STEP * np.exp(-0.5 * nodes**2) / np.sqrt(2 * np.pi)
    coarse = 2 * density[::2]  # every other node: the halving test

    def one(a, orders):
        values = [derivative_of(order, jnp.sqrt(a) * nodes) for order in orders]
        h = jnp.stack([weighted @ f for f in values])
        q = jnp.stack([density @ (f * f) for f in values])
        q_coarse = jnp.stack([coarse @ (f[::2] * f[::2]) for f in values])
        tails, changes = q - jnp.sum(h * h, axis=-1), jnp.abs(q - q_coarse)
        return h, tails, changes, jnp.max(jnp.maximum(tails, changes) - tolerance * q)

    def coefficients(a, orders):
        flat = jnp.reshape(a, (-1,))
        h, tails, changes, excess = jax.lax.map(lambda v: one(v, orders), flat, batch_size=HERMITE_BATCH)
        return (h.reshape(a.shape + h.shape[1:]), tails.reshape(a.shape + tails.shape[1:]),
                changes.reshape(a.shape + changes.shape[1:]), jnp.max(excess, initial=-jnp.inf))

    return coefficients


@jax.custom_batching.custom_vmap
def _every_variance_meets(excess: jax.Array) -> jax.Array:
    """excess <= 0: the series' tolerance is met at every variance of a call (the scalar its jax.lax.cond branches on).
    Under jax.vmap (the kernel-space attack's independent starts) it stays one unbatched scalar: the series for the
    whole batch when every member meets the tolerance, else the rule for all (both are the same kernel to within the
    tolerance). A batched predicate would turn the cond into a select that runs both branches, the rule every time."""
    return excess <= 0


@_every_variance_meets.def_vmap
def _every_variance_meets_batched(axis_size, in_batched, excess):
    """One decision for the batch, by this same function, so that an outer jax.vmap meets it again (a plain
    comparison here was batched by the outer vmap of a nested one: no cond left, the rule ran every time)."""
    return _every_variance_meets(jnp.max(excess)), False


def _correlation(a, b, c):
    """rho = c / sqrt(ab), clipped to [-1, 1] (round-off), 0 where a variance is 0 (then c is 0 too)."""
    scale = jnp.sqrt(a * b)
    positive = scale > 0
    return jnp.clip(jnp.where(positive, c, 0.0) / jnp.where(positive, scale, 1.0), -1.0, 1.0)


def _quadrature_pair(kernel: DualKernel, *, tolerance: float | None = None):
    """E[f(u) f(v)] by the Mehler series of :func:`_hermite_series` where every variance of a call meets ``tolerance``
    (default :data:`HERMITE_TOLERANCE`), else by the tensor trapezoid rule: u = sqrt(a) z1,
    v = sqrt(b)(rho z1 + sqrt(1-rho^2) z2).

    The rule's derivatives: autodiff of the rule (the exact slope of the computed value) where
    1 - rho^2 > COINCIDENT_GAP. At
    coincident or antipodal inputs autodiff went through sqrt(1 - rho^2), whose slope is infinite there, and gave NaN
    (every Gram matrix K(X, X) had a NaN gradient in X, since its diagonal feeds the next layer: KIP and the
    kernel-space attack stopped with "not finite", measured on expr:2:phi=tanh(x)). There the tangent is Price's
    theorem (Price 1958) at rho = +-1, where v = +-sqrt(b / a) u and every expectation is one-dimensional:
    d/dc E[g(u) h(v)] = E[g'(u) h'(v)], d/da E[g(u) h(v)] = E[g''(u) h(v)] / 2 (d/db alike), read by a finer 1-D
    rule (:data:`COINCIDENT_NODES`; Price read by the 129 x 129 rule everywhere was 8e-4 off on tanh(3*x) at unit
    variance, and 2.45 relative on a gradient through its second layer)."""
    # numpy constants: the functions below may first be built inside a trace, and a custom_jvp function must not
    # close over its tracers
    nodes = np.linspace(-QUADRATURE_RANGE, QUADRATURE_RANGE, QUADRATURE_NODES)
    weights = (nodes[1] - nodes[0]) * np.exp(-0.5 * nodes**2) / np.sqrt(2 * np.pi)
    pair_weights = weights[:, None] * weights[None, :]
    fine_nodes = np.linspace(-QUADRATURE_RANGE, QUADRATURE_RANGE, COINCIDENT_NODES)
    fine_weights = (fine_nodes[1] - fine_nodes[0]) * np.exp(-0.5 * fine_nodes**2) / np.sqrt(2 * np.pi)
    compiled = [lambdify_jax(x_symbol, sp.diff(kernel.phi, x_symbol, order)) for order in range(4)]

    def derivative_of(order, z):
        """The order-th derivative of phi at the nodes z."""
        return compiled[order](z) + jnp.zeros_like(z)

    def rule(a, b, c, *, safe: bool = False):
        """(E[phi phi], E[phi' phi']) by the 2-D rule; ``safe``: sqrt(1 - rho^2) with a finite slope everywhere (its
        value is then 0 at gaps <= COINCIDENT_GAP, where the tangent it gives is not used)."""
        rho = _correlation(a, b, c)  # 0 where a variance is 0 (c / sqrt(ab) was 0 / 0, NaN)
        gap = 1 - rho**2
        if safe:
            far = gap > COINCIDENT_GAP
            sine = jnp.where(far, jnp.sqrt(jnp.where(far, gap, 1.0)), 0.0)
        else:
            sine = jnp.sqrt(gap)
        u = jnp.sqrt(a) * nodes[:, None]
        v = jnp.sqrt(b) * (rho * nodes[:, None] + sine * nodes[None, :])
        return (jnp.sum(pair_weights * derivative_of(0, u) * derivative_of(0, v)),
                jnp.sum(pair_weights * derivative_of(1, u) * derivative_of(1, v)))

    def coincident_partials(a, b, c):
        """Price's partials at rho = sign(c) by the fine 1-D rule: d/da, d/db, d/dc of the value, then of the
        derivative kernel."""
        u = jnp.sqrt(a) * fine_nodes
        v = jnp.where(c < 0, -1.0, 1.0) * jnp.sqrt(b) * fine_nodes
        at_u = [derivative_of(k, u) for k in range(4)]
        at_v = [derivative_of(k, v) for k in range(4)]

        def mean(i, j):
            return jnp.sum(fine_weights * at_u[i] * at_v[j])
        return (0.5 * mean(2, 0), 0.5 * mean(0, 2), mean(1, 1), 0.5 * mean(3, 1), 0.5 * mean(1, 3), mean(2, 2))

    def partials_entry(abc):
        """d/da, d/db, d/dc of (value, derivative kernel) at one entry: the rule's own, or Price's where coincident
        (lax.cond: one of the two is computed)."""
        a, b, c = abc
        # Price's 1-D rule is also exact where a variance is 0 (u or v is then the constant 0), where the rule's own
        # slope in sqrt(a) is infinite
        near = (1 - _correlation(a, b, c) ** 2 <= COINCIDENT_GAP) | (a * b <= 0)
        return (jax.lax.cond(
            near, lambda v: jnp.reshape(jnp.stack(coincident_partials(*v)), (2, 3)),
            lambda v: jax.jacfwd(lambda w: jnp.stack(rule(w[0], w[1], w[2], safe=True)))(v), jnp.stack([a, b, c])),)

    def entrywise(function, arrays, batch_size=QUADRATURE_BATCH):
        """``function`` of one entry's scalars, over broadcast arrays, in batches (None: one entry at a time, so
        that a lax.cond inside runs one branch)."""
        shape = jnp.broadcast_shapes(*(t.shape for t in arrays))
        flat = [jnp.broadcast_to(t, shape).reshape(-1) for t in arrays]
        return tuple(out.reshape(shape + out.shape[1:])
                     for out in jax.lax.map(function, flat, batch_size=batch_size))

    tolerance_used = HERMITE_TOLERANCE if tolerance is None else tolerance
    coefficients = _hermite_series(derivative_of, tolerance_used)

    def rule_pair(a, b, c):
        """(value, derivative kernel) by the 2-D rule."""
        return entrywise(lambda abc: rule(*abc), (a, b, c))

    def series(a, b, c, orders, pairs):
        """The Mehler sums of ``pairs`` (indices into ``orders``), deferred, and whether every variance met the
        tolerance."""
        (ha, _, _, excess_a), (hb, _, _, excess_b) = coefficients(a, orders), coefficients(b, orders)
        sums = functools.partial(mehler_sums, _correlation(a, b, c), [(ha[..., i, :], hb[..., j, :]) for i, j in pairs])
        return sums, _every_variance_meets(jnp.maximum(excess_a, excess_b))

    @jax.custom_jvp
    def pair(a, b, c):
        """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]): the Mehler series where every variance of the call meets the
        tolerance (one scalar decision, jax.lax.cond: one branch runs), else the 2-D rule."""
        sums, accepted = series(a, b, c, (0, 1), [(0, 0), (1, 1)])
        return tuple(jax.lax.cond(accepted, lambda: tuple(sums()), lambda: rule_pair(a, b, c)))

    @pair.defjvp
    def pair_jvp(primals, tangents):
        """Partials by Price's theorem on the series, d/da E[f(u) g(v)] = E[f''(u) g(v)] / 2 and
        d/dc E[f(u) g(v)] = E[f'(u) g'(v)]: Mehler sums of the coefficients of phi to its third derivative, finite at
        rho = +-1, and no K arrays of the entries' shape kept for reverse mode; taken where the tails of all four
        meet the tolerance, else the 2-D rule's partials (autodiff of the rule, Price's 1-D rule at coincident
        inputs). They depend on the primals alone, so the tangent is plainly linear in (da, db, dc) (reverse mode)."""
        a, b, c = primals
        sums, accepted = series(a, b, c, (0, 1, 2, 3), [(0, 0), (1, 1), (2, 0), (0, 2), (3, 1), (1, 3), (2, 2)])

        def by_series():
            value, kdot, e20, e02, e31, e13, e22 = sums()
            partials = jnp.stack([jnp.stack([0.5 * e20, 0.5 * e02, kdot], axis=-1),
                                  jnp.stack([0.5 * e31, 0.5 * e13, e22], axis=-1)], axis=-2)
            return (value, kdot), partials

        def by_rule():
            (partials,) = entrywise(partials_entry, primals, batch_size=None)
            return tuple(rule_pair(a, b, c)), partials

        out, partials = jax.lax.cond(accepted, by_series, by_rule)
        da, db, dc = tangents
        return out, tuple(partials[..., k, 0] * da + partials[..., k, 1] * db + partials[..., k, 2] * dc
                          for k in range(2))

    def series_bounds(a, b, c):
        """Test hook: (value, derivative kernel) by the series alone, their truncation bounds sqrt(T_K(a) T_K(b)),
        whether the 1-D rule resolves phi and phi' at both variances (|q_h - q_2h| <= tolerance q: where it does not,
        the coefficients themselves are off and the bound covers only the truncation), and whether :func:`pair` takes
        the series."""
        (ha, ta, ca, excess_a), (hb, tb, cb, excess_b) = coefficients(a, (0, 1)), coefficients(b, (0, 1))
        value, kdot = mehler_sums(_correlation(a, b, c), [(ha[..., k, :], hb[..., k, :]) for k in range(2)])
        bounds = jnp.sqrt(jnp.maximum(ta, 0.0) * jnp.maximum(tb, 0.0))
        qa, qb = ta + jnp.sum(ha * ha, axis=-1), tb + jnp.sum(hb * hb, axis=-1)
        resolved = jnp.all(ca <= tolerance_used * qa, axis=-1) & jnp.all(cb <= tolerance_used * qb, axis=-1)
        accepted = _every_variance_meets(jnp.maximum(excess_a, excess_b))
        return value, kdot, bounds[..., 0], bounds[..., 1], resolved, accepted

    def tangent_by_series(a, b):
        """Test hook: whether the tangent of :func:`pair` takes the series (phi to its third derivative within the
        tolerance)."""
        return _every_variance_meets(jnp.maximum(coefficients(a, (0, 1, 2, 3))[3], coefficients(b, (0, 1, 2, 3))[3]))

    pair.series_bounds, pair.tangent_by_series, pair.rule_pair = series_bounds, tangent_by_series, rule_pair

    def diagonal_terms(a):
        """The 1-D rule's nodes u = sqrt(a) z and weights, shaped to broadcast against ``a``."""
        z = nodes.reshape((1,) * a.ndim + (-1,))
        return jnp.sqrt(a)[..., None] * z, weights.reshape(z.shape)

    @jax.custom_jvp
    def value_diagonal(a):
        """E[phi(sqrt(a) z)^2] by the 129-node 1-D rule, not by the series' Parseval sum: theory.expressions' resolution
        check reads this very rule (one definition), which needs no truncation; the series at rho = 1 is within
        its tail T_K(a) <= HERMITE_TOLERANCE q(a) of it where taken (measured <= 1e-15 at unit variance)."""
        u, w = diagonal_terms(a)
        return jnp.sum(w * derivative_of(0, u) ** 2, axis=-1)

    @value_diagonal.defjvp
    def value_diagonal_jvp(primals, tangents):
        """The rule's own slope, sum_j w_j phi(u_j) phi'(u_j) z_j / sqrt(a) (what autodiff gives: the exact slope of
        the computed value), where a > DIAGONAL_PRICE_BELOW; below, Price's theorem d/da E[phi(u)^2] =
        E[phi'(u)^2 + phi(u) phi''(u)] by the same rule, finite at a = 0, where autodiff went through d sqrt(a) / da
        and gave NaN (every input of zero variance, an all-zero row without biases, had a NaN gradient from the
        second layer on: a review). Price's form everywhere put tanh(3*x)'s Gram gradient 4e-4 off the rule's."""
        (a,), (da,) = primals, tangents
        u, w = diagonal_terms(a)
        value = jnp.sum(w * derivative_of(0, u) ** 2, axis=-1)
        far = a > DIAGONAL_PRICE_BELOW
        root = jnp.sqrt(jnp.where(far, a, 1.0))[..., None]
        own = jnp.sum(w * derivative_of(0, u) * derivative_of(1, u) * u / root**2, axis=-1)  # z / sqrt(a) = u / a
        price = jnp.sum(w * (derivative_of(1, u) ** 2 + derivative_of(0, u) * derivative_of(2, u)), axis=-1)
        return value, jnp.where(far, own, price) * da

    return pair, value_diagonal


@functools.cache
def dual_functions(arch: Architecture):
    """Compiled ``pair(a, b, c) -> (value, derivative)`` and ``value_diagonal(a)`` for ``arch``'s activation."""
    kernel = dual_for(arch)
    if kernel.method == QUADRATURE:
        return _quadrature_pair(kernel, tolerance=HERMITE_TOLERANCE)
    diagonal = lambdify_jax((a_var,), kernel.value_diagonal)
    pair = _with_symbolic_jvp((kernel.value, kernel.derivative))
    return pair, lambda a: diagonal(a) + jnp.zeros_like(a)


def _check_inputs(x1: jax.Array, x2: jax.Array) -> None:
    if x1.ndim != 2 or x2.ndim != 2:
        raise ValueError(f"inputs must be 2-D (points x features), got shapes {x1.shape} and {x2.shape}")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"inputs have different feature dimensions: {x1.shape[1]} and {x2.shape[1]}")


@functools.cache
def compiled_step(layer) -> Callable:
    """``layer``'s symbolic step (theory.layers) compiled by sympy.lambdify: a function of
    (s11, s12, s22, theta, k11, k12, k22, kdot, n_in) returning the next (s11, s12, s22, theta)."""
    return lambdify_jax(STEP_ARGUMENTS, list(layer.step().as_tuple()))


@functools.cache
def compiled_patch_step(layer: Conv) -> Callable:
    """A convolution's symbolic step (theory.layers.Conv.step: patch mean, then the dense step) compiled by
    sympy.lambdify: a function of the patch's states (s11_j, s12_j, s22_j, theta_j for each window offset j)
    and n_in, returning the next (s11, s12, s22, theta) at the output pixel pair."""
    arguments = tuple(symbol for state in layer.patch_symbols() for symbol in state.as_tuple()) + (n_in,)
    return lambdify_jax(arguments, list(layer.step().as_tuple()))


@functools.cache
def patch_tables(layer: Conv, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather indices of :meth:`theory.layers.Conv.patch`, shape (offsets, P^2) over output pixel pairs
    (p, p') in row-major order: the pair (p + o, p' + o) as p_o P + p'_o, and p_o, p'_o themselves; a padded
    pair points at index P^2 (pairs) or P (pixels), where the gathered arrays carry an appended zero."""
    cells = positions(shape)
    count = len(cells)
    index = {cell: i for i, cell in enumerate(cells)}
    pair = np.full((len(layer.offsets), count * count), count * count, dtype=np.int32)
    first = np.full(pair.shape, count, dtype=np.int32)
    second = np.full(pair.shape, count, dtype=np.int32)
    for i, p in enumerate(cells):
        for k, q in enumerate(cells):
            for j, read in enumerate(layer.patch(p, q, shape)):
                if read is not None:
                    first[j, i * count + k], second[j, i * count + k] = index[read[0]], index[read[1]]
                    pair[j, i * count + k] = first[j, i * count + k] * count + second[j, i * count + k]
    return pair, first, second


@functools.cache
def pooling_weights(layer, shape: tuple[int, ...]) -> np.ndarray:
    """The (P, P) weights w[p, p'] with which a pooling layer's symbolic step (theory.layers: GlobalAveragePool,
    Flatten) combines the pixel pairs' states into Sigma' = sum w[p, p'] Sigma[p, p']: read off the coefficients
    of the step applied to one symbol per pooled pair (it must be linear, the same for Sigma and Theta)."""
    cells = positions(shape)
    index = {cell: i for i, cell in enumerate(cells)}
    pairs = layer.pooled_pairs(shape)
    symbols = [sp.Symbol(f"pooled_{n}", real=True) for n in range(len(pairs))]
    out = layer.step([PairState(s, s, s, s) for s in symbols])
    coefficients = out.s12.as_coefficients_dict()
    if sp.expand(out.s12 - out.theta) != 0 or coefficients.get(sp.Integer(1), 0) != 0 or \
            any(not term.is_Symbol for term in coefficients):
        raise ValueError(f"{layer.kind}: a pooling step must be the same linear map for Sigma and Theta")
    weights = np.zeros((len(cells), len(cells)))
    for symbol, (p, q) in zip(symbols, pairs):
        weights[index[p], index[q]] += float(coefficients.get(symbol, 0))
    return weights


def _spatial_dims(chain: tuple) -> int | None:
    """The number of spatial axes of a chain's convolutions (None: a fully connected chain); checks the order
    (convolutions, then one pooling layer, then dense layers) and that they agree."""
    dims = {layer.spatial_dims for layer in chain if layer.spatial}
    pooling = [index for index, layer in enumerate(chain) if layer.pooling]
    convs = [index for index, layer in enumerate(chain) if layer.spatial]
    if not dims:
        if pooling:
            raise ValueError(f"{chain[pooling[0]].kind} needs convolutions before it")
        return None
    if len(dims) > 1:
        raise ValueError(f"convolutions with {sorted(dims)} spatial axes in one chain")
    if len(pooling) != 1 or convs[-1] > pooling[0]:
        raise ValueError("a convolutional chain needs one pooling layer (gap or flatten) after its convolutions "
                         "and before the readout")
    return dims.pop()


def _compiled_chain(chain: tuple) -> list[tuple]:
    """Per layer: its kind, compiled step and, for an activation, the compiled dual pair feeding its dual symbols."""
    compiled = []
    for layer in chain:
        activation = activation_of(layer)
        duals = None if activation is None else \
            dual_functions(Architecture(activation.name, 1, activation_params=activation.params))
        if layer.spatial:
            compiled.append((layer, compiled_patch_step(layer), None))
        elif layer.pooling:
            compiled.append((layer, None, None))
        else:
            compiled.append((layer, compiled_step(layer), duals))
    return compiled


_UNUSED = 0.0  # a step ignores the dual symbols (dense) or n_in (activation) it does not use


def _elementwise(step, duals, s11, s12, s22, theta, fan_in):
    """One elementwise step (dense, activation, residual) on a state, dual symbols fed by the compiled pair."""
    if duals is None:
        return step(s11, s12, s22, theta, _UNUSED, _UNUSED, _UNUSED, _UNUSED, fan_in)
    pair, value_diagonal = duals
    k12, kdot = pair(s11, s22, s12)
    return step(s11, s12, s22, theta, value_diagonal(s11), k12, value_diagonal(s22), kdot, fan_in)


def _diagonal(self_state: jax.Array) -> jax.Array:
    """Sigma(x, x)[p, p] from the per-input (N, P, P) state."""
    return jnp.diagonal(self_state, axis1=-2, axis2=-1)


def gather_pixels(values: jax.Array, table: np.ndarray) -> list[jax.Array]:
    """Per row j of ``table``: values[..., table[j]], where the index one past the end reads 0 (padding); one
    gather for all rows."""
    padded = jnp.concatenate([values, jnp.zeros(values.shape[:-1] + (1,), values.dtype)], axis=-1)
    gathered = padded[..., jnp.asarray(table)]
    return [gathered[..., j, :] for j in range(table.shape[0])]


def gather_pairs(state: jax.Array, table: np.ndarray) -> list[jax.Array]:
    """Per row j of ``table`` (over the P^2 pixel pairs): the (..., P, P) state at the pairs it names."""
    pixels = state.shape[-1]
    flat = state.reshape(state.shape[:-2] + (pixels * pixels,))
    return [rows.reshape(state.shape) for rows in gather_pixels(flat, table)]


@functools.cache
def shift_plan(layer: Conv, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...] | None:
    """The window's offsets when :func:`patch_tables` (that is, theory.layers.Conv.patch) reads, for every
    offset o and pixel pair (p, p'), exactly the pair (p + o, p' + o) with zeros outside the image: then a
    convolution step is a sum of statically shifted, zero-padded copies of the state (fast, fused by XLA).
    None when the definition reads anything else: the step then gathers by the tables themselves."""
    pair, first, second = patch_tables(layer, shape)
    cells = np.array(positions(shape)).reshape(-1, len(shape))
    count = len(cells)
    for j, offset in enumerate(layer.offsets):
        moved = cells + np.asarray(offset)
        inside = np.all((moved >= 0) & (moved < np.asarray(shape)), axis=1)
        index = np.where(inside, np.ravel_multi_index(tuple(np.clip(moved, 0, np.asarray(shape) - 1).T), shape), count)
        both = inside[:, None] & inside[None, :]
        expected_pair = np.where(both, index[:, None] * count + index[None, :], count * count).reshape(-1)
        expected_first = np.where(both, index[:, None], count).reshape(-1)
        expected_second = np.where(both, index[None, :], count).reshape(-1)
        if not (np.array_equal(pair[j], expected_pair) and np.array_equal(first[j], expected_first)
                and np.array_equal(second[j], expected_second)):
            return None
    return tuple(layer.offsets)


def _shifted(state: jax.Array, shape: tuple[int, ...], offsets, axes_groups: int) -> list[jax.Array]:
    """state[..., p + o, p' + o] (``axes_groups`` = 2: a pixel-pair state (..., P, P)) or state[..., p + o]
    (1: per-pixel values (..., P)) for each offset o, zero outside the image: one zero pad, static slices."""
    k = len(shape)
    lead = state.shape[:state.ndim - axes_groups]
    grid = state.reshape(lead + tuple(shape) * axes_groups)
    low = [max(0, -min(o[a] for o in offsets)) for a in range(k)]
    high = [max(0, max(o[a] for o in offsets)) for a in range(k)]
    padded = jnp.pad(grid, [(0, 0)] * len(lead) + list(zip(low, high)) * axes_groups)
    out = []
    for o in offsets:
        index = tuple(slice(low[a] + o[a], low[a] + o[a] + shape[a]) for a in range(k)) * axes_groups
        out.append(padded[(Ellipsis,) + index].reshape(state.shape))
    return out


def _conv_step(layer, step, shape, cross, theta, selves, fan_in):
    """The compiled convolution step on the cross state (N1, N2, P, P) and the inputs' own states (N1 + N2, P, P):
    each offset's pixel pairs read as theory.layers.Conv.patch says (zeros for padding), then the lambdified step.
    The reads are static shifts when :func:`shift_plan` confirms that this is what the definition says, else
    gathers by :func:`patch_tables`."""
    n1, n2, pixels = cross.shape[0], cross.shape[1], cross.shape[-1]
    v = _diagonal(selves)
    plan = shift_plan(layer, shape)
    if plan is not None:
        def pairs(state):
            return _shifted(state, shape, plan, 2)

        def variances(values, which, out_shape):
            # the state of a pair (p + o, p' + o) with one pixel outside is the zero state (Conv.patch)
            inside = _shifted(jnp.ones((pixels, pixels), values.dtype), shape, plan, 2)
            moved = _shifted(values, shape, plan, 1)
            expand = (slice(None), None) if which == "first" else (None, slice(None))
            return [(m[(Ellipsis,) + expand] * mask[None]).reshape(out_shape) for m, mask in zip(moved, inside)]
    else:
        pair, first, second = patch_tables(layer, shape)
        tables = {"first": first, "second": second}

        def pairs(state):
            return gather_pairs(state, pair)

        def variances(values, which, out_shape):
            return [rows.reshape(out_shape) for rows in gather_pixels(values, tables[which])]

    def run(s11_rows, s12_rows, s22_rows, theta_rows, out_shape):
        arguments = [part for parts in zip(s11_rows, s12_rows, s22_rows, theta_rows) for part in parts]
        return [value + jnp.zeros(out_shape, cross.dtype) for value in step(*arguments, fan_in)]

    out = run(variances(v[:n1], "first", (n1, 1, pixels, pixels)), pairs(cross),
              variances(v[n1:], "second", (1, n2, pixels, pixels)), pairs(theta), cross.shape)
    own = run(variances(v, "first", selves.shape), pairs(selves), variances(v, "second", selves.shape),
              [jnp.zeros((), selves.dtype)] * len(layer.offsets), selves.shape)
    return out[1], out[3], own[1]


@functools.cache
def chain_kernel_fn(chain: tuple, *, width: int | None = None) -> KernelFn:
    """Jitted ``(x1, x2) -> (nngp, ntk)``, float64 arrays of shape (n1, n2), of the infinite-width network that
    the serial ``chain`` of :mod:`theory.layers` layers stands for (its last layer is the readout).

    Inputs are flat, shape (N, d). A chain with convolutions reads them as images
    (theory.layers.image_shape(d, spatial axes)) and carries per-pixel-pair states: Sigma(x, x')[p, p'] and
    Theta[p, p'] of shape (N1, N2, P, P) and each input's own Sigma(x, x)[p, q] of shape (N1 + N2, P, P) (its diagonal
    feeds the activations' dual kernels, its pooled value the layers after pooling); the pooling layer turns
    them into the usual pair state. Every step is compiled from the layers' sympy steps. ``width`` is needed
    (and used) only in the standard parametrization, whose NTK scales with the hidden width.
    """
    chain = tuple(chain)
    if width is None and any(layer.weight_layer is not None and layer.weight_layer.parameterization == "standard"
                             for layer in chain):
        raise ValueError("the standard-parametrization NTK depends on the hidden width: pass width=")
    spatial_dims = _spatial_dims(chain)
    compiled = _compiled_chain(chain)
    hidden = width if width is not None else 1  # the width feeding a layer after a hidden one (Layer.fan_out)

    @jax.jit
    def kernel_fn(x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
        _check_inputs(x1, x2)
        # float64 whatever the inputs' type (a float32 carry against the series' float64 coefficients was a TypeError)
        x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
        d = x1.shape[1]
        layers = iter(compiled)
        if spatial_dims is None:
            fan_in = d
            s11 = jnp.sum(x1**2, axis=1)[:, None] / d
            s22 = jnp.sum(x2**2, axis=1)[None, :] / d
            s12 = (x1 @ x2.T) / d
            theta = jnp.zeros_like(s12)
        else:
            full = image_shape(d, spatial_dims)
            shape, channels = full[:-1], full[-1]
            pixels = len(positions(shape))
            images1, images2 = x1.reshape(-1, pixels, channels), x2.reshape(-1, pixels, channels)
            cross = jnp.einsum("npc,mqc->nmpq", images1, images2) / channels
            theta = jnp.zeros_like(cross)
            both = jnp.concatenate([images1, images2])
            selves = jnp.einsum("npc,nqc->npq", both, both) / channels  # Sigma(x, x)[p, q] of x1's then x2's
            n1 = images1.shape[0]
            fan_in = channels
            for layer, step, duals in layers:
                if layer.pooling:
                    weights = jnp.asarray(pooling_weights(layer, shape))
                    s12 = jnp.einsum("nmpq,pq->nm", cross, weights)
                    theta = jnp.einsum("nmpq,pq->nm", theta, weights)
                    pooled = jnp.einsum("npq,pq->n", selves, weights)
                    s11, s22 = pooled[:n1, None], pooled[None, n1:]
                    fan_in = fan_in * layer.fan_in_factor(shape)
                    break
                if layer.spatial:
                    cross, theta, selves = _conv_step(layer, step, shape, cross, theta, selves, fan_in)
                else:
                    v = _diagonal(selves)
                    out = _elementwise(step, duals, v[:n1, None, :, None], cross, v[None, n1:, None, :], theta,
                                       fan_in)
                    cross, theta = out[1] + jnp.zeros_like(cross), out[3] + jnp.zeros_like(cross)
                    selves = _elementwise(step, duals, v[:, :, None], selves, v[:, None, :], jnp.zeros_like(selves),
                                          fan_in)[1] + jnp.zeros_like(selves)
                fan_in = layer.fan_out(fan_in, hidden)
        for layer, step, duals in layers:
            s11, s12, s22, theta = _elementwise(step, duals, s11, s12, s22, theta, fan_in)
            fan_in = layer.fan_out(fan_in, hidden)
        return s12 + jnp.zeros_like(theta), theta

    return kernel_fn


def pair_state_entries(arch: Architecture, dim: int) -> int:
    """Entries of the kernel state per pair of inputs, the factor by which one kernel entry costs more than a
    fully connected one: 1 without convolutions, pixels^2 with them (Sigma(x, x')[p, p'] per pixel pair,
    :func:`chain_kernel_fn`; 4096 for the 8x8 digits)."""
    if arch.spatial_dims is None:
        return 1
    pixels = int(np.prod(image_shape(int(dim), arch.spatial_dims)[:-1]))
    return pixels * pixels



def pair_work(arch: Architecture, dim: int, *, by_series: bool = False) -> int:
    """What one kernel entry costs, in units of a fully connected closed-form entry: :func:`pair_state_entries`
    times 1 plus, per activation layer whose dual is computed by quadrature, the 2 x QUADRATURE_NODES^2 products of
    its 2-D rule (value and derivative kernels), or with ``by_series`` the 2 x (HERMITE_ORDER + 1) terms of its Mehler
    series (where :func:`_quadrature_pair` takes it; the coefficients, once per variance, are not counted). A time
    estimate for chunk and block sizes (memory is bounded by pair_state_entries and QUADRATURE_BATCH):
    expr:2:phi=tanh(x) on the digits is 66565 units per entry by the rule, 1029 by the series."""
    activations = [activation for activation in map(activation_of, layers_of(arch)) if activation is not None]
    quadrature_layers = sum(
        dual_for(Architecture(activation.name, 1, activation_params=activation.params)).method == QUADRATURE
        for activation in activations)
    per_layer = 2 * (HERMITE_ORDER + 1) if by_series else 2 * QUADRATURE_NODES**2
    return pair_state_entries(arch, dim) * (1 + per_layer * quadrature_layers)

def analytic_kernel_fn(arch: Architecture, *, width: int | None = None) -> KernelFn:
    """Jitted ``(x1, x2) -> (nngp, ntk)``, float64 arrays of shape (n1, n2), of the infinite-width network:
    :func:`chain_kernel_fn` of the architecture's layers (theory.layers.layers_of). ``width`` is dropped in the NTK
    parametrization, whose kernel does not depend on it, so that every width shares one compiled function (K1's
    rate check asked for five widths and compiled the same kernel five times: 3 s of its 9 s for tanh's series)."""
    if arch.parameterization == "standard" and width is None:
        raise ValueError("the standard-parametrization NTK depends on the hidden width: pass width=")
    return _analytic_kernel_fn(arch, width if arch.parameterization == "standard" else None)


@functools.cache
def _analytic_kernel_fn(arch: Architecture, width: int | None) -> KernelFn:
    return chain_kernel_fn(layers_of(arch), width=width)


def analytic_ntk_fn(arch: Architecture, *, width: int | None = None) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Jitted ``(x1, x2) -> ntk``: :func:`analytic_kernel_fn` without writing out the NNGP (a quarter faster on
    a 2000 x 2000 Gram matrix, where the work is memory traffic); one function for every width, as there."""
    both = analytic_kernel_fn(arch, width=width)  # validates width
    return _analytic_ntk_fn(both)


@functools.cache
def _analytic_ntk_fn(both: KernelFn) -> Callable[[jax.Array, jax.Array], jax.Array]:
    return jax.jit(lambda x1, x2: both(x1, x2)[1])


def analytic_ntk(arch: Architecture, x1: jax.Array, x2: jax.Array | None = None, *,
                 width: int | None = None) -> jax.Array:
    """The infinite-width NTK Theta(x1, x2), shape (n1, n2)."""
    x1 = jnp.asarray(x1)
    x2 = x1 if x2 is None else jnp.asarray(x2)
    return analytic_ntk_fn(arch, width=width)(x1, x2)


def _backprop_vectors(arch: Architecture, params: Params, preacts: list, out_dim: int, phi) -> list:
    """delta_l = d f / d h_l (outputs of dense layer l), shape (N, C, n_l), readout first."""
    layers = dense_layers(params)
    n = preacts[0].shape[0] if preacts else None
    delta = jnp.broadcast_to(jnp.eye(out_dim, dtype=preacts[0].dtype if preacts else None), (n, out_dim, out_dim))
    deltas = [delta]
    for index in range(arch.depth, 0, -1):
        W, _ = layers[index]
        back = delta @ W.T
        if arch.parameterization == "ntk":
            back = back * (arch.sigma_w / float(np.sqrt(W.shape[0])))
        h = preacts[index - 1]
        slope = jax.jvp(phi, (h,), (jnp.ones_like(h),))[1]
        delta = back * slope[:, None, :]
        deltas.append(delta)
    return deltas[::-1]


def empirical_ntk(arch: Architecture, params: Params, x1: jax.Array, x2: jax.Array | None = None, *,
                  activation=None) -> jax.Array:
    """K_theta(x1, x2) = J(x1) J(x2)^T, shape (n1, n2, C, C) (neural-tangents' ``trace_axes=()`` layout).

    ``activation`` overrides the network's activation (e.g. the smoothed ReLU of the attack).
    """
    if not arch.is_mlp:
        return _stax_empirical_ntk(arch, params, x1, x2, activation)
    phi = activation or activation_fn(arch)
    same = x2 is None
    x2 = x1 if same else x2
    out1, inputs1, pre1 = forward(arch, params, x1, activation=phi, return_layers=True)
    deltas1 = _backprop_vectors(arch, params, pre1, out1.shape[1], phi)
    if same:
        inputs2, deltas2 = inputs1, deltas1
    else:
        out2, inputs2, pre2 = forward(arch, params, x2, activation=phi, return_layers=True)
        deltas2 = _backprop_vectors(arch, params, pre2, out2.shape[1], phi)
    ntk_param = arch.parameterization == "ntk"
    bias = (arch.sigma_b**2 if ntk_param else 1.0) if arch.has_bias else 0.0
    total = 0.0
    for a1, a2, d1, d2 in zip(inputs1, inputs2, deltas1, deltas2):
        scale = arch.sigma_w**2 / a1.shape[1] if ntk_param else 1.0
        features = scale * (a1 @ a2.T) + bias
        total = total + features[:, :, None, None] * jnp.einsum("ikn,jmn->ijkm", d1, d2)
    return total


def _stax_empirical_ntk(arch: Architecture, params: Params, x1, x2, activation) -> jax.Array:
    """J(x1) J(x2)^T by neural-tangents' empirical_ntk_fn (Jacobian contraction), for layer chains that the
    layer-by-layer formula above does not cover (residual blocks, convolutions)."""
    from numerics._nt import neural_tangents

    if activation is not None:
        raise NotImplementedError(f"{arch.spec}: no swapped activation for residual networks")
    width, out_dim = shape_of_params(arch, params)
    apply_fn = make_network(arch, int(width), int(out_dim)).apply_fn
    fn = neural_tangents().empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=1)
    return fn(x1, x2, params)


def flatten_ntk(kernel: jax.Array) -> jax.Array:
    """(n1, n2, C, C) -> (n1 C, n2 C), rows indexed sample-major (i, k) like the Jacobian J(X)."""
    n1, n2, c1, c2 = kernel.shape
    return jnp.transpose(kernel, (0, 2, 1, 3)).reshape(n1 * c1, n2 * c2)


def monte_carlo_ntk(arch: Architecture, width: int, x1: jax.Array, x2: jax.Array | None = None, *,
                    key: jax.Array, n_samples: int, out_dim: int = 1) -> jax.Array:
    """Mean of the empirical NTK over ``n_samples`` independent initializations, shape (n1, n2, C, C)."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    network = make_network(arch, width, out_dim)

    @jax.jit
    def one(sample_key):
        return empirical_ntk(arch, network.init(sample_key, x1.shape[1]), x1, x2)

    return sum(one(k) for k in jax.random.split(key, n_samples)) / n_samples


def _clear_caches() -> None:
    """A registry change may redefine an activation: drop everything compiled from one."""
    for cached in (dual_functions, compiled_step, compiled_patch_step, patch_tables, shift_plan, pooling_weights,
                   chain_kernel_fn, _analytic_kernel_fn, _analytic_ntk_fn):
        getattr(cached, "cache_clear", lambda: None)()  # a test may have swapped one for a plain function


activations.on_change(_clear_caches)
