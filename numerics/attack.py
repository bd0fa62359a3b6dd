"""Reconstruction attacks: on a finite network (parameter space) and at infinite width (kernel space).

Loo et al. 2023 (arXiv:2302.01428), Sec. 3-4. The attacker knows theta_0 and theta_f and minimizes

    L(X_R, lambda) = sum_{theta* in S} || Delta theta - J_theta*(X_R)^T lambda ||^2 ,   Delta theta = theta_f - theta_0

over reconstructions X_R (M x d) and coefficients lambda (M x C), S = {theta_0}, {theta_f} or both
(:func:`parameter_space_attack`). At infinite width, with Delta theta = J_0(X_T)^T alpha, the loss is the
squared RKHS distance between two weighted point sets and lambda can be profiled out (docs/claims.md#r1):

    L*(X_R) = tr alpha^T (Theta_TT - Theta_TR Theta_RR^-1 Theta_RT) alpha              (:func:`kernel_space_attack`)

Gradients of the parameter-space loss avoid reverse-over-reverse differentiation: with
v = Delta theta - J(X)^T lambda held fixed,

    grad_X L = -2 grad_X [ lambda . (J(X) v) ],      grad_lambda L = -2 J(X) v ,

one VJP (for J^T lambda), one JVP of the network in parameter direction v and one reverse pass of that JVP
with respect to X (:func:`loss_and_grad`, ``method="jvp"``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import warnings
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize
from scipy.optimize import linear_sum_assignment

from numerics.checkpoint import Checkpoint, fingerprint, interruptible, with_article
from numerics.data import assert_distinct, validate_points
from numerics.data import positive_int as _check_positive_int
from numerics.data import positive_number as _check_positive
from numerics.kernels import analytic_ntk
from numerics.networks import Params, activation_fn, dense_layers, forward, has_surrogate
from numerics.progress import ChunkSizer, duration, progress_bar, step_time
from theory.architecture import Architecture

AT_CHOICES = ("theta0", "thetaf", "both")
DOMAINS = ("sphere", "euclidean")
ANNEALING = ("geometric", "linear")


@dataclasses.dataclass(frozen=True, eq=False)
class AttackResult:
    """Outcome of an attack.

    Attributes:
      x_recon: (M, d) reconstructions.
      coefficients: lambda, (M, C) for the parameter-space attack; for the kernel-space attack the profiled
        lambda* = Theta_RR^-1 Theta_RT alpha, with alpha's trailing shape ((M,) or (M, C)).
      loss_curve: loss at every optimizer step (of the best restart for the kernel attack; without the
        L-BFGS polish, whose final value is ``final_loss``).
      final_loss: the attack loss at the returned (x_recon, coefficients).
      kind: "parameter" or "kernel".
      steps: optimizer steps taken (Adam).
      restart_losses: final loss of every restart (kernel attack).
      info: anything else worth reporting (final beta, the unsmoothed loss, ridge, ...).
    """

    x_recon: np.ndarray
    coefficients: np.ndarray
    loss_curve: np.ndarray
    final_loss: float
    kind: str
    steps: int
    restart_losses: tuple[float, ...] = ()
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Parameter-space loss and its gradient
# ---------------------------------------------------------------------------------------------------------


class AttackFailed(RuntimeError):
    """An attack that could not produce reconstructions to score (every restart of the kernel-space attack ended
    with a singular Theta_RR): the command line reports it in one line with exit status 1."""


def _tree_sub(a, b):
    return jax.tree_util.tree_map(lambda u, v: u - v, a, b)


def _tree_sqnorm(tree) -> jax.Array:
    return sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(tree))


def jacobian_transpose_lambda(arch: Architecture, params: Params, x: jax.Array, lam: jax.Array, *,
                              activation=None) -> Params:
    """J_theta(X)^T lambda = sum_j sum_k lambda_jk d f_k(x_j) / d theta, one VJP; lam has shape (M, C)."""
    _, vjp = jax.vjp(lambda p: forward(arch, p, x, activation=activation), params)
    return vjp(lam)[0]


def reconstruction_loss(arch: Architecture, thetas: Sequence[Params], delta: Params, x: jax.Array,
                        lam: jax.Array, *, activation=None) -> jax.Array:
    """sum_{theta* in thetas} ||Delta theta - J_theta*(X)^T lambda||^2 (Loo et al. 2023, Eq. 4)."""
    return sum(_tree_sqnorm(_tree_sub(delta, jacobian_transpose_lambda(arch, p, x, lam, activation=activation)))
               for p in thetas)


def loss_and_grad(arch: Architecture, thetas: Sequence[Params], delta: Params, x: jax.Array, lam: jax.Array, *,
                  activation=None, method: str = "jvp") -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """The loss of :func:`reconstruction_loss` and its gradient (d/dX, d/dlambda).

    ``method="jvp"``: with v = Delta theta - J^T lambda fixed, grad_X L = -2 grad_X [lambda . J(X) v] and
    grad_lambda L = -2 J(X) v (module docstring), no reverse-over-reverse. ``method="kernel"``: jax autodiff of
    :func:`kernel_form_loss`, the same loss written as a quadratic in lambda with the empirical NTK built layer
    by layer (no P-vector residual). ``method="fused"``: the same kernel form with a hand-derived reverse sweep
    (:func:`fused_loss_and_grad`, dense chains). ``method="auto"``: the cheaper of "fused" and "jvp"
    (:func:`choose_method`). ``method="autodiff"``: jax.grad of the loss as written (reverse over the VJP), the reference.
    """
    prepared = any(isinstance(p, FusedWeights) for p in thetas)
    if method == "auto":  # weights prepared by fused_weights ask for the fused form
        method = "fused" if prepared else (
            choose_method(_widths(thetas[0]), x.shape[0], lam.shape[1], dtype=x.dtype) if arch.is_mlp else "jvp")
    if method != "fused" and prepared:
        raise ValueError(f"thetas prepared by fused_weights are for method='fused', not {method!r}")
    if method == "autodiff":
        return jax.value_and_grad(
            lambda x_, l_: reconstruction_loss(arch, thetas, delta, x_, l_, activation=activation),
            argnums=(0, 1))(x, lam)
    if method == "kernel":
        return jax.value_and_grad(
            lambda x_, l_: kernel_form_loss(arch, thetas, delta, x_, l_, activation=activation),
            argnums=(0, 1))(x, lam)
    if method == "fused":
        return fused_loss_and_grad(arch, thetas, delta, x, lam, activation=activation)
    if method != "jvp":
        raise ValueError(f"unknown gradient method {method!r}; choose one of {METHODS}")
    total = jnp.zeros((), x.dtype)
    grad_x = jnp.zeros_like(x)
    grad_lam = jnp.zeros_like(lam)
    for p in thetas:
        v = _tree_sub(delta, jacobian_transpose_lambda(arch, p, x, lam, activation=activation))
        total = total + _tree_sqnorm(v)

        def pairing(x_, p=p, v=v):
            _, jv = jax.jvp(lambda q: forward(arch, q, x_, activation=activation), (p,), (v,))
            return jnp.sum(lam * jv), jv

        (_, jv), gx = jax.value_and_grad(pairing, has_aux=True)(x)
        grad_x = grad_x - 2.0 * gx
        grad_lam = grad_lam - 2.0 * jv
    return total, (grad_x, grad_lam)


# ---------------------------------------------------------------------------------------------------------
# The kernel form of the loss: quadratic in lambda, no P-vector residual
# ---------------------------------------------------------------------------------------------------------

METHODS = ("auto", "fused", "kernel", "jvp", "autodiff")
"""Gradient formulations of the parameter-space loss (see :func:`loss_and_grad`); "auto" picks the cheaper of
"fused" and "jvp" from the widths, M and C (:func:`choose_method`)."""
MODES = ("joint", "profiled")
"""Attack modes: Adam over (X_R, lambda) jointly, or over X_R alone with lambda = lambda*(X_R) profiled out."""
PRECISIONS = ("float64", "float32")
PROFILE_RIDGE = 1e-10
"""Ridge of the profiled lambda, relative to the mean diagonal of K_theta(X_R, X_R), used only at a step where
the plain Cholesky factor does not exist (K numerically singular: two reconstructions coincide). 1e-10 keeps
the bias of L* at O(1e-10 |lambda*|^2 mean K_ii) while lifting the float64 round-off floor (~1e-16 ||K||)."""


def _layer_scales(arch: Architecture, fan_in: int) -> tuple[float, float]:
    """(s_W, s_b): d h^{l+1} / d W^{l+1}_pn = s_W a^l_p and d h^{l+1} / d b^{l+1}_n = s_b (0 without biases)."""
    ntk = arch.parameterization == "ntk"
    weight = arch.sigma_w / math.sqrt(fan_in) if ntk else 1.0
    bias = (arch.sigma_b if ntk else 1.0) if arch.has_bias else 0.0
    return weight, bias


class FactoredDelta(NamedTuple):
    """Delta theta with each weight matrix as a product: Delta W^l = U^l V^l (V^l None: U^l is Delta W^l itself),
    the biases Delta b^l as they are, and ||Delta theta||^2 (:func:`factor_delta`)."""

    layers: tuple
    sqnorm: jax.Array
    transposed: tuple = ()  # Delta W^l stored transposed where unfactored, for the fused sweeps (fused_delta)


LOW_RANK_RTOL = 1e-12
"""A factorization Delta W = Q (Q^T Delta W) is used only when ||Delta W - Q Q^T Delta W||_F <= LOW_RANK_RTOL
||Delta W||_F (verified, not assumed): the attack then changes by float64 round-off only."""


def _low_rank(matrix: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """(Q, B) with matrix = Q B to LOW_RANK_RTOL, Q orthonormal (n x r), when that is cheaper to apply
    (r (n + n') < n n' / 2); else None. Randomized range finder with doubling sketch size (Halko, Martinsson and
    Tropp 2011, arXiv:0909.4061, Alg. 4.2) and an explicit residual check."""
    n, n_out = matrix.shape
    norm = np.linalg.norm(matrix)
    if norm == 0:
        return np.zeros((n, 0)), np.zeros((0, n_out))
    k = 16
    while True:
        if k * (n + n_out) >= n * n_out / 2:
            return None
        sketch = matrix @ rng.normal(size=(n_out, k))
        u, s, _ = np.linalg.svd(sketch, full_matrices=False)
        rank = int(np.sum(s > s[0] * 1e-14))
        if rank < k:
            q = u[:, :rank]
            b = q.T @ matrix
            if np.linalg.norm(matrix - q @ b) <= LOW_RANK_RTOL * norm:
                return q, b
        k *= 2


def factor_delta(delta: Params, *, dtype=jnp.float64) -> FactoredDelta:
    """Delta theta for :func:`kernel_terms`: each Delta W^l as a verified low-rank product Q B when cheaper
    (:func:`_low_rank`; after lazy training on N points with C outputs, rank Delta W^l <= N C), else as it is."""
    rng = np.random.default_rng(0)
    layers = []
    for dW, db in dense_layers(delta):
        factors = _low_rank(np.asarray(dW, dtype=np.float64), rng)
        u, v = (jnp.asarray(dW), None) if factors is None else (jnp.asarray(f) for f in factors)
        cast = (lambda a: None if a is None else jnp.asarray(a, dtype))
        layers.append((cast(u), cast(v), cast(db)))
    return FactoredDelta(tuple(layers), jnp.asarray(_tree_sqnorm(delta), dtype))


def _delta_layers(delta) -> list:
    if isinstance(delta, FactoredDelta):
        return list(delta.layers)
    return [(dW, None, db) for dW, db in dense_layers(delta)]


def kernel_terms(arch: Architecture, params: Params, delta: Params | FactoredDelta, x: jax.Array, *,
                 activation=None) -> tuple[jax.Array, list[tuple[jax.Array, jax.Array]]]:
    """J_theta(X) Delta theta (M, C) and the layer factors of the empirical NTK K_theta(X, X), from one forward
    pass and the backpropagated vectors delta^l = d f / d h^{l+1} (M, C, n_{l+1}), without a P-vector:

        (J Delta theta)_ik = sum_l sum_n delta^l_ikn (s_W (a^l Delta W^l)_in + s_b Delta b^l_n),
        K_theta(X, X)_ijkm = sum_l F^l_ij (delta^l_ik . delta^l_jm),   F^l = s_W^2 a^l a^l^T + s_b^2,

    (a^l: the input of dense layer l; s_W, s_b: :func:`_layer_scales`). Returns (J Delta theta, [(F^l, delta^l)]).
    """
    from numerics.kernels import _backprop_vectors

    phi = activation or activation_fn(arch)
    out, inputs, preacts = forward(arch, params, x, activation=phi, return_layers=True)
    deltas = _backprop_vectors(arch, params, preacts, out.shape[1], phi)
    jdelta = jnp.zeros(out.shape, x.dtype)
    factors = []
    for a, back, (dW, dV, db) in zip(inputs, deltas, _delta_layers(delta)):
        s_w, s_b = _layer_scales(arch, a.shape[1])
        direction = s_w * (a @ dW if dV is None else (a @ dW) @ dV)
        if db is not None and s_b:
            direction = direction + s_b * db.reshape(1, -1)
        jdelta = jdelta + jnp.einsum("ikn,in->ik", back, direction)
        gram = s_w**2 * (a @ a.T) + s_b**2
        factors.append((gram, back))
    return jdelta, factors


def _quadratic(factors, lam: jax.Array) -> jax.Array:
    """lambda^T K_theta(X, X) lambda = sum_l sum_ij F^l_ij (g^l_i . g^l_j), g^l_i = sum_k lambda_ik delta^l_ik."""
    total = jnp.zeros((), lam.dtype)
    for gram, back in factors:
        g = jnp.einsum("ik,ikn->in", lam, back)
        total = total + jnp.sum(gram * (g @ g.T))
    return total


def _full_kernel(factors) -> jax.Array:
    """K_theta(X, X) flattened to (M C, M C), row index i C + k."""
    total = 0.0
    for gram, back in factors:
        total = total + gram[:, :, None, None] * jnp.einsum("ikn,jmn->ijkm", back, back)
    m, _, c, _ = total.shape
    return jnp.transpose(total, (0, 2, 1, 3)).reshape(m * c, m * c)


def kernel_form_loss(arch: Architecture, thetas: Sequence[Params], delta: Params | FactoredDelta, x: jax.Array,
                     lam: jax.Array, *, activation=None) -> jax.Array:
    """sum_{theta*} ||Delta theta||^2 - 2 lambda . J_theta*(X) Delta theta + lambda^T K_theta*(X, X) lambda.

    The expansion of :func:`reconstruction_loss` (docs/claims.md#r1) evaluated by :func:`kernel_terms`: its cost
    is O(M P_forward C + M^2 C^2 width) instead of a P-dimensional residual carried through reverse mode.
    """
    sq = delta.sqnorm if isinstance(delta, FactoredDelta) else _tree_sqnorm(delta)
    total = jnp.zeros((), x.dtype)
    for p in thetas:
        jdelta, factors = kernel_terms(arch, p, delta, x, activation=activation)
        total = total + sq - 2.0 * jnp.sum(lam * jdelta) + _quadratic(factors, lam)
    return total


def _profiled_solve(terms, sq: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """lambda* = K^-1 b from the per-theta (J Delta theta, layer factors) of :func:`kernel_terms` (see
    :func:`profiled_lambda`)."""
    b = sum(jdelta for jdelta, _ in terms)
    kernel = sum(_full_kernel(factors) for _, factors in terms)
    return _solve_profiled(b, kernel, len(terms) * sq)


def _solve_profiled(b: jax.Array, kernel: jax.Array, sq_total: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(lambda* = K^-1 b by Cholesky, with the PROFILE_RIDGE only where K is singular; sq_total - b . lambda*;
    the ridge used)."""
    m, c = b.shape
    size = m * c
    chol = jnp.linalg.cholesky(kernel)
    singular = ~jnp.all(jnp.isfinite(chol))
    ridge = jnp.where(singular, PROFILE_RIDGE * jnp.trace(kernel) / size, 0.0).astype(kernel.dtype)
    chol = jnp.where(singular, jnp.linalg.cholesky(kernel + ridge * jnp.eye(size, dtype=kernel.dtype)), chol)
    lam = jax.scipy.linalg.cho_solve((chol, True), b.reshape(size)).reshape(m, c)
    return lam, sq_total - jnp.sum(b * lam), ridge


def profiled_lambda(arch: Architecture, thetas: Sequence[Params], delta: Params | FactoredDelta, x: jax.Array, *,
                    activation=None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """lambda*(X) = K^-1 b with K = sum_{theta*} K_theta*(X, X), b = sum_{theta*} J_theta*(X) Delta theta
    (the stationary point of the loss, which is quadratic in lambda with Hessian 2K), by Cholesky.

    Where the plain factor does not exist (K numerically singular) K + PROFILE_RIDGE mean(diag K) I is factored
    instead. Returns (lambda* (M, C), L*(X) = sum ||Delta theta||^2 - b^T lambda*, ridge used (0 if none)).
    """
    sq = delta.sqnorm if isinstance(delta, FactoredDelta) else _tree_sqnorm(delta)
    terms = [kernel_terms(arch, p, delta, x, activation=activation) for p in thetas]
    return _profiled_solve(terms, sq)


def profiled_loss_and_grad(arch: Architecture, thetas: Sequence[Params], delta: Params | FactoredDelta,
                           x: jax.Array, *, activation=None) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """L*(X) = min_lambda L(X, lambda) and its gradient in X, with lambda*(X) from :func:`profiled_lambda`.

    Envelope theorem: d L*/dX = dL/dX at lambda = lambda*(X) held fixed (dL/dlambda = 0 there), so the gradient is
    that of :func:`kernel_form_loss` at a fixed lambda*: one forward pass of :func:`kernel_terms`, the solve, and
    one reverse pass. Returns (L*, grad_X, lambda*, ridge).
    """
    sq = delta.sqnorm if isinstance(delta, FactoredDelta) else _tree_sqnorm(delta)
    terms, pullback = jax.vjp(
        lambda x_: [kernel_terms(arch, p, delta, x_, activation=activation) for p in thetas], x)
    lam, _, ridge = _profiled_solve(terms, sq)

    def loss_of(terms_):
        return sum(sq - 2.0 * jnp.sum(lam * jdelta) + _quadratic(factors, lam) for jdelta, factors in terms_)

    loss, cotangent = jax.value_and_grad(loss_of)(terms)
    return loss, pullback(cotangent)[0], lam, ridge


# ---------------------------------------------------------------------------------------------------------
# The fused step: the kernel form with a hand-derived reverse pass (dense chains)
# ---------------------------------------------------------------------------------------------------------

class FusedWeights(NamedTuple):
    """The dense layers (W, W^T, b) of one theta*, W^T stored once (:func:`fused_weights`; it doubles the weight
    memory, 134 MB more per 4096 x 4096 float64 matrix). The fused sweeps keep the activations feature-major,
    (n, M): one column per point, and only ever multiply a stored matrix into them, (n', n) @ (n, M). On this
    2-core CPU that layout multiplies fastest with M = 40 columns, in float32 most of all
    (``benchmarks/attack_steps.py --layouts`` times each layout)."""

    layers: tuple


def fused_weights(params: Params | FusedWeights) -> FusedWeights:
    """``params`` with each weight matrix's transpose stored beside it. Call it outside jit, once per attack:
    inside a jitted function XLA does not keep the transpose as a separate row-major array, and the product
    falls back to the slower layout (measured in float32 at width 1024: 116 against 172 steps/s)."""
    if isinstance(params, FusedWeights):
        return params
    return FusedWeights(tuple((W, jnp.transpose(W), b) for W, b in dense_layers(params)))


def fused_delta(delta: FactoredDelta) -> FactoredDelta:
    """``delta`` with the transpose of every unfactored Delta W^l stored (:class:`FusedWeights`' reason)."""
    return delta._replace(transposed=tuple(jnp.transpose(u) if v is None else None for u, v, _ in delta.layers))


class _FusedPass(NamedTuple):
    """What one forward sweep of :func:`_fused_forward` keeps for the reverse sweep (one theta*); feature-major:
    the point index is the last axis."""

    inputs: list       # a^{l-1}, the input of dense layer l (n_{l-1}, M), l = 1..L+1
    slopes: list       # phi'(h^l) (n_l, M), hidden layers l = 1..L
    curvatures: list   # phi''(h^l) (n_l, M)
    pre_slope: list    # u^l = s_{l+1} W^{l+1} delta^{l+1} (n_l, C, M): delta^l = u^l * phi'(h^l)
    deltas: list       # delta^l = d f / d h^l (n_l, C, M), l = 1..L+1 (the readout's is the identity)
    directions: list   # D^l = s_W Delta W^{l T} a^{l-1} + s_b Delta b^l (n_l, M): (J Delta theta)_ik = sum_l delta^l_ik . D^l_i
    grams: list        # F^l = s_W^2 a^{l-1 T} a^{l-1} + s_b^2 (M, M)
    jdelta: jax.Array  # J_theta(X) Delta theta (M, C)


def _activation_derivatives(phi, h: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(phi(h), phi'(h), phi''(h)) elementwise, by forward mode over the elementwise phi."""
    ones = jnp.ones_like(h)
    (value, slope), (_, curvature) = jax.jvp(lambda z: jax.jvp(phi, (z,), (ones,)), (h,), (ones,))
    return value, slope, curvature


def _fused_delta_layers(delta: Params | FactoredDelta) -> list:
    """(U, V, b, U^T) per dense layer: Delta W = U V (V None: U = Delta W, U^T its stored transpose or None)."""
    layers = _delta_layers(delta)
    stored = delta.transposed if isinstance(delta, FactoredDelta) and delta.transposed else (None,) * len(layers)
    return [(u, v, b, t) for (u, v, b), t in zip(layers, stored)]


def _direction(s_w: float, s_b: float, a: jax.Array, layer) -> jax.Array:
    """D^l = s_W Delta W^T a + s_b Delta b, feature-major (n_l, M), from a (n_{l-1}, M)."""
    u, v, db, u_t = layer
    if v is not None:
        product = jnp.transpose(v) @ (jnp.transpose(u) @ a)  # rank r: two thin products
    else:
        product = (jnp.transpose(u) if u_t is None else u_t) @ a
    direction = s_w * product
    if db is not None and s_b:
        direction = direction + s_b * db.reshape(-1, 1)
    return direction


def _fused_forward(arch: Architecture, params: Params | FusedWeights, delta: Params | FactoredDelta, x: jax.Array,
                   phi) -> _FusedPass:
    """One forward sweep, feature-major: activations, the C backpropagated vectors and J Delta theta
    (:func:`kernel_terms`' quantities), keeping what :func:`_fused_backward` reuses.
    h^l = s_W W^{l T} a^{l-1} + s_b b^l (the pass of :func:`numerics.networks.forward`, transposed)."""
    if not arch.is_mlp:
        raise NotImplementedError(f"{arch.spec}: {MLP_ONLY} are written for plain fully connected networks "
                                  "(ACTIVATION:DEPTH) only")
    layers = fused_weights(params).layers
    if len(layers) != arch.depth + 1:
        raise ValueError(f"params have {len(layers)} dense layers, architecture {arch.spec} needs {arch.depth + 1}")
    a = jnp.transpose(x)
    inputs, slopes, curvatures = [], [], []
    for index, (W, W_t, b) in enumerate(layers):
        inputs.append(a)
        s_w, s_b = _layer_scales(arch, W.shape[0])
        h = s_w * (W_t @ a)
        if b is not None:
            h = h + s_b * b.reshape(-1, 1)
        if index < arch.depth:
            a, slope, curvature = _activation_derivatives(phi, h)
            slopes.append(slope)
            curvatures.append(curvature)
    m, c = x.shape[0], layers[-1][0].shape[1]
    deltas = [jnp.broadcast_to(jnp.eye(c, dtype=x.dtype)[:, :, None], (c, c, m))]
    pre_slope = []
    for index in range(len(layers) - 1, 0, -1):  # delta^l from delta^{l+1}, readout first
        W = layers[index][0]
        scale = _layer_scales(arch, W.shape[0])[0]
        if index == len(layers) - 1:  # delta^{L+1} = I: u^L = s_W W for every point, no product with M columns
            u = jnp.broadcast_to((scale * W)[:, :, None], (W.shape[0], c, m))
        else:
            u = scale * (W @ deltas[0].reshape(W.shape[1], c * m)).reshape(W.shape[0], c, m)
        pre_slope.insert(0, u)
        deltas.insert(0, u * slopes[index - 1][:, None, :])
    directions, grams = [], []
    jdelta = jnp.zeros((m, c), x.dtype)
    for a, back, layer in zip(inputs, deltas, _fused_delta_layers(delta)):
        s_w, s_b = _layer_scales(arch, a.shape[0])
        direction = _direction(s_w, s_b, a, layer)
        directions.append(direction)
        grams.append(s_w**2 * (jnp.transpose(a) @ a) + s_b**2)
        jdelta = jdelta + jnp.einsum("nki,ni->ik", back, direction)
    return _FusedPass(inputs, slopes, curvatures, pre_slope, deltas, directions, grams, jdelta)


def _fused_backward(arch: Architecture, params: Params | FusedWeights, delta: Params | FactoredDelta,
                    saved: _FusedPass, lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """d/dX of E(X) = -2 lambda . J(X) Delta theta + lambda^T K_theta(X, X) lambda at a fixed lambda, by hand.

    Written row-major (one row per point) here; the code holds every quantity transposed (one column per point).
    With g^l = sum_k lambda_k delta^l_k (so g^l = s_W^{l+1} (g^{l+1} W^{l+1 T}) * phi'(h^l), g^{L+1} = lambda: the
    rows of J^T lambda), E = sum_l sum_i g^l_i . (F^l g^l - 2 D^l)_i. Its reverse sweep: dE/dg^l = 2 F^l g^l - 2 D^l
    plus s_W^l (dE/dg^{l-1} * phi'(h^{l-1})) W^l; dE/da^{l-1} += 2 s_W^2 (g^l g^l^T) a^{l-1} - 2 s_W g^l Delta W^{l T};
    dE/dh^l = dE/da^l * phi' + (dE/dg^l * (g^l / phi')) * phi''; dE/da^{l-1} += s_W dE/dh^l W^{l T}.
    Two products with each weight matrix (one per sweep direction), whatever C. Returns (E, d E / dX (M, d)).
    """
    layers = fused_weights(params).layers
    depth = len(layers) - 1
    gs = [jnp.einsum("ik,nki->ni", lam, back) for back in saved.deltas]  # g^l, l = 1..L+1 (g^{L+1} = lambda)
    value = jnp.zeros((), lam.dtype)
    grad_inputs = []
    grad_g = []
    for a, g, gram, direction, (u, v, _, _) in zip(saved.inputs, gs, saved.grams, saved.directions,
                                                   _fused_delta_layers(delta)):
        s_w = _layer_scales(arch, a.shape[0])[0]
        fg = g @ gram  # (F g)^T: F is symmetric
        value = value + jnp.sum(g * (fg - 2.0 * direction))
        grad_g.append(2.0 * fg - 2.0 * direction)
        back_dir = u @ g if v is None else u @ (v @ g)
        grad_inputs.append(2.0 * s_w**2 * (a @ (jnp.transpose(g) @ g)) - 2.0 * s_w * back_dir)
    grad_slope = []
    for index in range(depth):  # hidden layers 1..L, upward: g^l depends on g^{l+1}
        carried = grad_g[index] * saved.slopes[index]
        grad_slope.append(grad_g[index] * jnp.einsum("ik,nki->ni", lam, saved.pre_slope[index]))
        if index + 1 < depth:
            W, W_t, _ = layers[index + 1]
            grad_g[index + 1] = grad_g[index + 1] + _layer_scales(arch, W.shape[0])[0] * (W_t @ carried)
    grad_a = grad_inputs[depth]
    for index in range(depth - 1, -1, -1):  # forward pass reversed: h^l = s_W W^{l T} a^{l-1} (+ bias)
        grad_h = grad_a * saved.slopes[index] + grad_slope[index] * saved.curvatures[index]
        W = layers[index][0]
        grad_a = grad_inputs[index] + _layer_scales(arch, W.shape[0])[0] * (W @ grad_h)
    return value, jnp.transpose(grad_a)


def fused_loss_and_grad(arch: Architecture, thetas: Sequence[Params | FusedWeights], delta: Params | FactoredDelta,
                        x: jax.Array, lam: jax.Array, *, activation=None
                        ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """The loss of :func:`kernel_form_loss` and its gradient (d/dX, d/dlambda) with a hand-derived reverse pass
    (:func:`_fused_backward`) that reuses the forward sweep's activations and backpropagated vectors:
    d/dlambda = -2 J Delta theta + 2 K lambda with (K lambda)_ik = sum_l delta^l_ik . (F^l g^l)_i (no M C x M C
    matrix). Per hidden layer of fan-in n, fan-out n': (3 + C) M n n' multiply-adds (forward, C backpropagated
    vectors, two reverse products) against ~8 M n n' for the JVP form. Pass ``thetas`` through
    :func:`fused_weights` and ``delta`` through :func:`fused_delta` once, outside jit, for the fast layout."""
    phi = activation or activation_fn(arch)
    sq = delta.sqnorm if isinstance(delta, FactoredDelta) else _tree_sqnorm(delta)
    total = jnp.zeros((), x.dtype)
    grad_x = jnp.zeros_like(x)
    grad_lam = jnp.zeros_like(lam)
    for p in thetas:
        p = fused_weights(p)  # once per theta: both sweeps read the stored transposes
        saved = _fused_forward(arch, p, delta, x, phi)
        value, gx = _fused_backward(arch, p, delta, saved, lam)
        total = total + sq + value
        grad_x = grad_x + gx
        k_lam = sum(jnp.einsum("nki,ni->ik", back, jnp.einsum("jm,nmj->nj", lam, back) @ gram)
                    for back, gram in zip(saved.deltas, saved.grams))
        grad_lam = grad_lam - 2.0 * saved.jdelta + 2.0 * k_lam
    return total, (grad_x, grad_lam)


def _fused_kernel(saved: _FusedPass) -> jax.Array:
    """K_theta(X, X) flattened to (M C, M C) (row i C + k) from the saved Gram factors and backpropagated vectors."""
    total = 0.0
    for gram, back in zip(saved.grams, saved.deltas):
        n, c, m = back.shape
        flat = jnp.transpose(back, (2, 1, 0)).reshape(m * c, n)
        total = total + jnp.repeat(jnp.repeat(gram, c, axis=0), c, axis=1) * (flat @ jnp.transpose(flat))
    return total


def fused_profiled_loss_and_grad(arch: Architecture, thetas: Sequence[Params | FusedWeights],
                                 delta: Params | FactoredDelta, x: jax.Array, *, activation=None
                                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """:func:`profiled_loss_and_grad` with the fused sweeps: lambda* from the saved K and J Delta theta, the
    envelope gradient from :func:`_fused_backward` at lambda*. Returns (L*, grad_X, lambda*, ridge)."""
    phi = activation or activation_fn(arch)
    sq = delta.sqnorm if isinstance(delta, FactoredDelta) else _tree_sqnorm(delta)
    thetas = [fused_weights(p) for p in thetas]  # once per theta: both sweeps read the stored transposes
    saved = [_fused_forward(arch, p, delta, x, phi) for p in thetas]
    b = sum(s.jdelta for s in saved)
    kernel = sum(_fused_kernel(s) for s in saved)
    lam, loss, ridge = _solve_profiled(b, kernel, len(thetas) * sq)
    grad_x = sum(_fused_backward(arch, p, delta, s, lam)[1] for p, s in zip(thetas, saved))
    return loss, grad_x, lam, ridge


FLOAT32_CROSSOVER = 1.1
"""In float32 "auto" picks the fused form only where the JVP form counts at least 1.1x its multiply-adds: at M = 40,
C = 1 the fused float32 step measured 0.95x the float32 JVP step at width 192 (flop ratio 1.045) and 1.4x at 256
(1.144), so the float64 rule (ratio 1, crossover between 128 and 192) chose the slower form at 192 in float32.
Measured only there (M = 40, C = 1, two hidden layers, one width either side of the crossover)."""


def choose_method(widths: Sequence[int], n_recon: int, out_dim: int, *, dtype: Any = jnp.float64) -> str:
    """The cheaper gradient formulation, "fused" or "jvp", from a multiply-add count per step.

    ``widths`` = (d, n_1, ..., n_L, C). With a dense layer of fan-in n and fan-out n' and M points: the JVP form
    costs ~8 M n n' (forward 1, VJP for J^T lambda 2, JVP of the network in direction v 2, its reverse pass in X
    3), counted 7 here as XLA counts it (7.4 at width 1024, fewer at small widths: it shares the forward sweeps;
    with 8 the choice fell on "fused" at width 128, where it measured 0.88-0.90x the JVP step); the fused kernel
    form (:func:`fused_loss_and_grad`) ~(3 + C) M n n' (forward 1, C backpropagated vectors, 2 in its
    hand-derived reverse sweep; autodiff of the kernel form, "kernel", pays 2 (1 + C)) plus
    ~4 M^2 (n + C^2 n') for the Gram factors F^l, K and their reverse. Measured by benchmarks/attack_steps.py.
    In float32 (``dtype``) the fused form must win by :data:`FLOAT32_CROSSOVER`.
    """
    m, c = int(n_recon), int(out_dim)
    jvp = fused = 0
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        jvp += 7 * m * fan_in * fan_out
        fused += (3 + c) * m * fan_in * fan_out + 4 * m * m * (fan_in + c * c * fan_out)
    crossover = FLOAT32_CROSSOVER if jnp.dtype(dtype) == jnp.float32 else 1.0
    return "fused" if jvp > crossover * fused else "jvp"


def _widths(params: Params) -> tuple[int, ...]:
    layers = dense_layers(params)
    return (int(layers[0][0].shape[0]), *(int(layer[0].shape[1]) for layer in layers))


def box_penalty(x: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """sum relu(lo - x)^2 + relu(x - hi)^2: zero inside the box [lo, hi], quadratic outside (lo, hi: (1, d))."""
    return jnp.sum(jax.nn.relu(lo - x) ** 2) + jnp.sum(jax.nn.relu(x - hi) ** 2)


def beta_at(step: jax.Array, steps: int, schedule: tuple[float, float] | None, anneal: str) -> jax.Array:
    """Softplus sharpness at ``step`` of an annealing over ``steps`` steps: beta_0 -> beta_1, geometric or
    linear in the step, and beta_1 from step ``steps - 1`` on (a resumed attack whose budget was raised
    keeps the final sharpness for the extra steps)."""
    if schedule is None:
        return jnp.asarray(jnp.inf)
    b0, b1 = schedule
    fraction = jnp.minimum(jnp.asarray(step, jnp.float64) / max(steps - 1, 1), 1.0)
    if anneal == "geometric":
        return b0 * (b1 / b0) ** fraction
    return b0 + (b1 - b0) * fraction


# ---------------------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------------------

def _path_name(path) -> str:
    return jax.tree_util.keystr(path) or "<root>"


def _check_params(params_0: Params, params_f: Params) -> None:
    struct_0 = jax.tree_util.tree_structure(params_0)
    struct_f = jax.tree_util.tree_structure(params_f)
    if struct_0 != struct_f:
        raise ValueError(f"params_0 and params_f have different tree structures: {struct_0} vs {struct_f}")
    leaves_0 = jax.tree_util.tree_flatten_with_path(params_0)[0]
    leaves_f = jax.tree_util.tree_leaves(params_f)
    for (path, a), b in zip(leaves_0, leaves_f):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"params_0 and params_f differ in shape at {_path_name(path)}: "
                             f"{np.shape(a)} vs {np.shape(b)}")
    for name, params in (("params_0", params_0), ("params_f", params_f)):
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            if not np.all(np.isfinite(np.asarray(leaf))):
                raise ValueError(f"{name} contains NaN or inf at {_path_name(path)}")


def check_parameter_change(params_0: Params, params_f: Params) -> None:
    """ValueError (one line) unless (params_0, params_f) is a model the attack can invert: equal structures and
    shapes, finite entries, and Delta theta = params_f - params_0 nonzero with ||theta||^2 finite in float64 (a
    model file scaled by 1e300 overflowed and was reported as an attack diverged by its step size)."""
    _check_params(params_0, params_f)
    params_0, params_f = (jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), p) for p in (params_0, params_f))
    squares = [float(_tree_sqnorm(tree)) for tree in (params_0, params_f, _tree_sub(params_f, params_0))]
    if not all(math.isfinite(value) for value in squares):
        raise ValueError("the parameters are too large for float64: ||theta||^2 or ||Delta theta||^2 overflows")
    if squares[2] == 0.0:
        raise ValueError("params_f equals params_0: Delta theta = 0, there is nothing to reconstruct")


SLOW_ATTACK_WORK = 100_000_000
"""Parameters x reconstructions x thetas* above which an attack times its first steps one at a time and sizes
its chunks so that a Ctrl-C or a progress update waits about numerics.progress.PROGRESS_SECONDS: relu:2 at width
4096 with M = 40 (6.8e8) takes 0.12-0.26 s per step (fused, JVP) on 2 cores, so 100-step chunks took 12-26 s;
at width 1024 (4.4e7) a step takes 10-17 ms."""
MLP_ONLY = "the kernel-form gradients (method='kernel' or 'fused') and the profiled mode"
"""What needs the layer-by-layer NTK of a plain fully connected network (:func:`kernel_terms`)."""


def _check_architecture(arch: Architecture, params: Params, in_dim: int, method: str, mode: str) -> int:
    """The output dimension C of ``params``, a network of ``arch`` on ``in_dim`` inputs (ValueError naming the
    first array that disagrees); a ValueError too when an MLP-only formulation is asked of another chain."""
    from numerics.networks import make_network, shape_of_params
    from numerics.training import check_params

    if not arch.is_mlp and (method in ("kernel", "fused") or mode == "profiled"):
        raise ValueError(f"{arch.spec}: {MLP_ONLY} are written for plain fully connected networks (dense and "
                         "activation layers only, no residual blocks or convolutions); use method='jvp', 'autodiff' or 'auto' with mode='joint'")
    try:
        width, out_dim = shape_of_params(arch, params)
        check_params(make_network(arch, width, out_dim), params, in_dim)
    except ValueError as error:
        raise ValueError(f"params are not {with_article(arch.spec)} network on in_dim={in_dim} inputs: "
                         f"{error}") from None
    return out_dim


def _check_box(box, in_dim: int) -> tuple[jax.Array, jax.Array] | None:
    if box is None:
        return None
    if len(box) != 2:
        raise ValueError(f"box must be a pair (lo, hi) of arrays, got {box!r}")
    try:
        lo, hi = (np.broadcast_to(np.asarray(b, dtype=np.float64), (in_dim,)) for b in box)
    except ValueError:
        raise ValueError(f"box bounds must broadcast to the input dimension ({in_dim},), got shapes "
                         f"{np.shape(box[0])} and {np.shape(box[1])}") from None
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("box bounds must be finite")
    if np.any(lo >= hi):
        raise ValueError(f"box needs lo < hi in every coordinate; violated at {np.flatnonzero(lo >= hi).tolist()}")
    return jnp.asarray(lo)[None, :], jnp.asarray(hi)[None, :]


# ---------------------------------------------------------------------------------------------------------
# The parameter-space attack
# ---------------------------------------------------------------------------------------------------------

def _attack_optimizer(lr: float | tuple[float, float | None], horizon: int):
    """optax Adam with step ``lr``, or for ``lr = (lr_0, lr_final)`` a step decaying exponentially from lr_0 to
    lr_final over ``horizon`` steps and held at lr_final after (lr_final None: constant lr_0)."""
    lr_0, lr_final = lr if isinstance(lr, tuple) else (lr, None)
    if lr_final is None:
        return optax.adam(lr_0)
    return optax.adam(optax.exponential_decay(lr_0, max(horizon, 1), lr_final / lr_0, end_value=lr_final))


@functools.cache
def _chunk_runner(arch: Architecture, at: str, steps: int, schedule, anneal: str, lr, has_box: bool,
                  box_weight: float, method: str, length: int, mode: str = "joint"):
    """(optimizer, run): ``run(carry, start, thetas, delta, lo, hi)`` takes ``length`` attack steps in one jitted
    lax.scan; carry = (X_R, lambda, Adam state), the Adam state over (X_R, lambda) ("joint") or X_R alone
    ("profiled", where lambda is lambda*(X_R) of the step). ``lr``: a float or (lr_0, lr_final), see
    :func:`_attack_optimizer`. Returns (carry, (objective per step, ridge per step))."""
    optimizer = _attack_optimizer(lr, steps)
    smooth = schedule is not None and has_surrogate(arch)

    def step(carry, t, thetas, delta, lo, hi):
        x, lam, opt_state = carry
        beta = beta_at(t, steps, schedule, anneal)
        phi = activation_fn(arch, smooth_beta=beta.astype(x.dtype)) if smooth else None
        if mode == "profiled" and method == "fused":
            loss, gx, lam, ridge = fused_profiled_loss_and_grad(arch, thetas, delta, x, activation=phi)
        elif mode == "profiled":
            loss, gx, lam, ridge = profiled_loss_and_grad(arch, thetas, delta, x, activation=phi)
        else:
            loss, (gx, glam) = loss_and_grad(arch, thetas, delta, x, lam, activation=phi, method=method)
            ridge = jnp.zeros((), x.dtype)
        if has_box:
            penalty, gpen = jax.value_and_grad(box_penalty)(x, lo, hi)
            loss = loss + box_weight * penalty
            gx = gx + box_weight * gpen
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats with its int32 step count
            if mode == "profiled":
                updates, opt_state = optimizer.update(gx, opt_state, x)
                x = optax.apply_updates(x, updates)
            else:
                updates, opt_state = optimizer.update((gx, glam), opt_state, (x, lam))
                x, lam = optax.apply_updates((x, lam), updates)
        return (x, lam, opt_state), (loss, ridge)

    @jax.jit
    def run(carry, start, thetas, delta, lo, hi):
        return jax.lax.scan(lambda c, t: step(c, t, thetas, delta, lo, hi), carry, start + jnp.arange(length))

    return optimizer, run


def _select_thetas(at: str, params_0: Params, params_f: Params) -> tuple[Params, ...]:
    return {"theta0": (params_0,), "thetaf": (params_f,), "both": (params_0, params_f)}[at]


MAX_RECON = 1 << 14
"""Most reconstructions an attack may ask for: the fused and profiled forms hold the M x M empirical NTK and its
factors (M^2 floats: 2.1 GB at M = 16384), and the per-step work grows as M x the parameters; the paper's attacks
use M = 2N with N in the hundreds. A request for 10^9 hung after training before this bound."""


def check_recon_count(n_recon: int, name: str = "n_recon") -> int:
    """``n_recon`` when it is a positive integer <= :data:`MAX_RECON`; else one-line ValueError naming ``name``."""
    n_recon = _check_positive_int(name, n_recon)
    if n_recon > MAX_RECON:
        raise ValueError(f"{name} {n_recon}: at most {MAX_RECON} reconstructions (the attack's M x M kernel alone "
                         f"would take {8 * n_recon ** 2 / 1e9:.3g} GB in float64)")
    return n_recon


DIVERGENCE_FACTOR = 1e3
"""A parameter-space attack diverged when its reconstructions or objective are not finite, or its objective ends above
DIVERGENCE_FACTOR x max(its first value, ||Delta theta||^2) (lambda = 0 scores ||Delta theta||^2 per parameter set,
so no sound run ends far above it): measured, --lr 1e6 and 1e12 ended at 2e22 and 3e46, sound runs below their start."""


def attack_divergence(result: AttackResult) -> str | None:
    """Why ``result`` (of :func:`parameter_space_attack`) diverged, or None: reconstructions or objective not finite,
    the objective ending above :data:`DIVERGENCE_FACTOR` x max(start, ||Delta theta||^2), or ending above its first
    value at all (the steps made no progress; its scores would understate the leakage), both evaluated at the final
    softplus sharpness in float64 (the loss curve's first value is at the first beta: annealing alone raised a run
    with lr 1e-5 from 163.4 to 172.4). The last rule is what flags a too large step in the profiled mode, whose
    objective is bounded: measured on digits at the final beta (N = 4 and 10, widths 32 and 256, 5-300 steps, both
    modes, float64 and float32), every run with lr 1e-7 to 0.2 ended at 0.28 to 1 - 1.5e-7 x its start, every run
    with lr 2-1000 at 1.11 x or more."""
    curve, last = np.asarray(result.loss_curve), result.info["final_objective"]
    if not np.all(np.isfinite(np.asarray(result.x_recon))):
        return f"its reconstructions are not finite after {result.steps} steps (objective {last:.3g})"
    if not math.isfinite(last):
        return f"its objective is {last} after {result.steps} steps"
    bound = DIVERGENCE_FACTOR * max(float(curve[0]) if curve.size else 0.0, result.info["delta_theta_sqnorm"])
    if last > bound:
        return (f"its objective ended at {last:.3g} after {result.steps} steps, above {DIVERGENCE_FACTOR:g} times "
                f"where it started ({float(curve[0]):.3g}) and ||Delta theta||^2 "
                f"({result.info['delta_theta_sqnorm']:.3g})")
    start, end = result.info.get("objective_start_end_at_final_beta", (math.inf, last))
    if curve.size > 1 and end > start:
        return (f"its objective ended at {end:.4g} after {result.steps} steps, above where it started ({start:.4g}; "
                "both at the final softplus sharpness): the steps made no progress")
    return None


def attack_start(key: jax.Array, n_recon: int, in_dim: int, out_dim: int, *,
                 init_scale: float = 0.2) -> tuple[jax.Array, jax.Array]:
    """The parameter-space attack's first state from ``key`` (float64): X_R ~ init_scale N(0, 1) (n_recon x in_dim)
    and lambda ~ U(-0.5, 0.5) (n_recon x out_dim). The one definition, so that a check can score the attack's own
    starting point as a baseline (claim T2)."""
    key_x, key_lam = jax.random.split(key)
    return (init_scale * jax.random.normal(key_x, (n_recon, in_dim), jnp.float64),
            jax.random.uniform(key_lam, (n_recon, out_dim), jnp.float64, -0.5, 0.5))


def parameter_space_attack(arch: Architecture, params_0: Params, params_f: Params, n_recon: int, *,
                           in_dim: int, key: jax.Array, steps: int, lr: float = 0.02, at: str = "theta0",
                           beta_schedule: tuple[float, float] | None = (10.0, 200.0), anneal: str = "geometric",
                           box: tuple[Any, Any] | None = None, box_weight: float = 1.0, init_scale: float = 0.2,
                           checkpoint: str | os.PathLike | None = None, resume: bool = False, progress: bool = True,
                           chunk: int = 500, method: str = "auto", mode: str = "joint",
                           precision: str = "float64", lr_final: float | None = None,
                           delta_scale: float = 1.0, on_chunk=None) -> AttackResult:
    """Loo et al.'s attack on a finite network (arXiv:2302.01428, Sec. 4).

    Minimizes sum_{theta* in S} ||theta_f - theta_0 - J_theta*(X_R)^T lambda||^2 (+ ``box_weight`` times
    :func:`box_penalty` when ``box=(lo, hi)`` is given) with optax Adam over X_R (M x in_dim) and lambda
    (M x C); S is {theta_0}, {theta_f} or both (``at``). Initialization: X_R ~ init_scale N(0, 1), lambda ~
    U(-0.5, 0.5). ReLU-type activations are replaced by softplus(beta x) / beta with beta annealed over the
    steps from ``beta_schedule[0]`` to ``[1]`` (``anneal``: geometric or linear; None keeps the exact
    activation). Steps run in jitted ``lax.scan`` chunks of ``chunk`` steps; between chunks the progress
    bar advances (it shows the ``objective``: the smoothed loss plus the box penalty, at that step's beta,
    which is ``loss_curve``) and, with ``checkpoint`` set, a :class:`numerics.checkpoint.Checkpoint` holding
    X_R, lambda, the optimizer state, the step and the loss curve is written. ``resume=True`` continues from
    that file when it exists: every setting and the model must match (else
    :class:`~numerics.checkpoint.SettingsMismatch` names the first that differs), and ``steps`` may be
    raised, which extends the run: the annealing keeps the schedule of the run's first budget, so the extra
    steps run at the final beta_1 (the first steps are exactly those of the shorter run). Otherwise the
    attack starts afresh and overwrites the file. Ctrl-C stops after the current chunk, once it is saved,
    with :class:`~numerics.checkpoint.Interrupted`.

    ``method``: the gradient formulation of the joint mode (:data:`METHODS`; "auto" picks the cheaper of the
    fused kernel form and the JVP form by :func:`choose_method`). ``mode="profiled"``: Adam over X_R alone, with
    lambda = lambda*(X_R) = K_theta(X_R, X_R)^-1 J_theta(X_R) Delta theta at every step
    (:func:`profiled_loss_and_grad`; :func:`fused_profiled_loss_and_grad` for dense chains), the finite-width
    twin of the kernel-space attack. ``lr_final``: the Adam step decays exponentially from ``lr`` to it over the
    budget (None: constant ``lr``). ``precision``: "float32" runs the attack (and holds theta) in single
    precision, "float64" (default) in double; the final losses reported are evaluated in float64 either way.
    ``delta_scale`` s: attack Delta theta / s (gradients still taken at theta_0 and theta_f): minimizing
    ||Delta theta / s - J^T mu||^2 over (X_R, mu) is minimizing the loss over (X_R, lambda = s mu), divided by s^2,
    so s of the order of ||Delta theta|| / ||J^T lambda|| at unit lambda lets the coefficients start at their scale
    (:func:`numerics.audit.coefficient_scale`). The losses, the loss curve and ``coefficients`` (mu) are then those
    of the scaled problem; ``info["delta_scale"]`` records s.
    ``on_chunk(step, X_R)``, when given, is called after every chunk with the step reached and the
    reconstructions there; with it, every multiple of ``chunk`` ends a chunk (slow steps may end others before it:
    proofs-check attack-curve scores at its budgets).
    """
    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be a theory.Architecture, got {type(arch).__name__}")
    check_parameter_change(params_0, params_f)
    n_recon = check_recon_count(n_recon)
    in_dim = _check_positive_int("in_dim", in_dim)
    steps = _check_positive_int("steps", steps)
    chunk = _check_positive_int("chunk", chunk)
    lr = _check_positive("lr", lr)
    lr_final = None if lr_final is None else _check_positive("lr_final", lr_final)
    init_scale = _check_positive("init_scale", init_scale)
    box_weight = _check_positive("box_weight", box_weight)
    delta_scale = _check_positive("delta_scale", delta_scale)
    if at not in AT_CHOICES:
        raise ValueError(f"at must be one of {AT_CHOICES}, got {at!r}")
    if anneal not in ANNEALING:
        raise ValueError(f"anneal must be one of {ANNEALING}, got {anneal!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if beta_schedule is not None:
        if not (isinstance(beta_schedule, (tuple, list)) and len(beta_schedule) == 2):
            raise ValueError(f"beta_schedule must be (beta_start, beta_end) or None, got {beta_schedule!r}")
        beta_schedule = tuple(_check_positive("beta_schedule entry", b) for b in beta_schedule)
    out_dim = _check_architecture(arch, params_0, in_dim, method, mode)
    bounds = _check_box(box, in_dim)
    lo, hi = bounds if bounds is not None else (jnp.zeros((1, in_dim)), jnp.zeros((1, in_dim)))

    params_0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params_0)
    params_f = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params_f)
    delta = _tree_sub(params_f, params_0)
    if delta_scale != 1.0:
        delta = jax.tree_util.tree_map(lambda a: a / delta_scale, delta)
    thetas64 = _select_thetas(at, params_0, params_f)
    dtype = jnp.dtype(precision)
    thetas, delta_run = jax.tree_util.tree_map(lambda a: a.astype(dtype), (thetas64, delta))
    lo, hi = lo.astype(dtype), hi.astype(dtype)
    if method == "auto":
        method = choose_method(_widths(params_0), n_recon, out_dim, dtype=dtype) if arch.is_mlp else "jvp"
    if mode == "profiled" and method not in ("fused", "kernel"):
        method = "fused"  # the profiled mode needs K: the fused sweeps unless the autodiff kernel form is asked
    if mode == "profiled" or method in ("fused", "kernel"):
        delta_run = factor_delta(delta, dtype=dtype)
    if method == "fused":  # transposes stored once, here, for the fused sweeps' fast layout
        thetas, delta_run = tuple(fused_weights(p) for p in thetas), fused_delta(delta_run)

    x, lam = (value.astype(dtype) for value in attack_start(key, n_recon, in_dim, out_dim, init_scale=init_scale))
    optimizer = _attack_optimizer((lr, lr_final), steps)
    start_point = (x, lam)  # the run's first state, also when it resumes: attack_divergence compares against it
    carry = (x, lam, optimizer.init(x if mode == "profiled" else (x, lam)))
    start, curves, horizon, ridges = 0, [np.zeros(0)], steps, 0
    settings = {"arch": arch.spec, "n_recon": n_recon, "in_dim": in_dim, "out_dim": out_dim, "at": at, "lr": lr,
                "beta_schedule": "none" if beta_schedule is None else list(beta_schedule), "anneal": anneal,
                "box": None if bounds is None else fingerprint(*bounds), "box_weight": box_weight,
                "init_scale": init_scale, "model": fingerprint(params_0, params_f), "mode": mode,
                "precision": precision} | ({} if lr_final is None else {"lr_final": lr_final}) \
        | ({} if delta_scale == 1.0 else {"delta_scale": delta_scale})
    store = None if checkpoint is None else Checkpoint(checkpoint, kind="attack", settings=settings)
    if store is not None and resume and store.exists():
        saved = store.load(carry, budget=steps)
        carry = jax.tree_util.tree_map(jnp.asarray, saved.state)
        start, curves = saved.step, [saved.extras["loss_curve"]]
        horizon = int(saved.extras["anneal_steps"])  # the annealing keeps the schedule of the first run

    with progress_bar(enabled=progress, value_name="objective") as bar, interruptible() as stop:
        task = bar.add_task(f"attack {arch.spec}, M = {n_recon}", total=steps, completed=start,
                            value=float(curves[-1][-1]) if curves[-1].size else None)
        step = start
        work = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params_0)) * n_recon * len(thetas)
        sizer = ChunkSizer(chunk, heavy=work > SLOW_ATTACK_WORK)
        while step < steps:
            length = sizer.length(steps - step)
            if on_chunk is not None:  # every multiple of chunk ends one, also when slow steps shorten them
                length = min(length, chunk - step % chunk)
            _, run = _chunk_runner(arch, at, horizon, beta_schedule, anneal, (lr, lr_final), bounds is not None,
                                   box_weight, method, length, mode)
            started = time.perf_counter()
            carry, (losses, ridge) = run(carry, jnp.asarray(step), thetas, delta_run, lo, hi)
            losses = np.asarray(losses, dtype=np.float64)
            remaining = sizer.ran(time.perf_counter() - started, steps - step - length, length)
            if progress and remaining is not None:
                bar.console.print(
                    f"note: one attack step takes {step_time(sizer.seconds_per_step)} ({work:.2g} parameters x "
                    f"reconstructions x parameter sets), so the {steps - step - length} steps left take about "
                    f"{duration(remaining)}; Ctrl-C keeps a checkpoint to resume from")
            ridges += int(np.count_nonzero(np.asarray(ridge)))
            curves.append(losses)
            step += length
            bar.update(task, completed=step, value=float(losses[-1]))
            if store is not None:
                store.save(carry, step=step, budget=steps,
                           extras={"loss_curve": np.concatenate(curves), "anneal_steps": horizon})
            if on_chunk is not None:  # e.g. score the reconstructions along the way (proofs-check attack-curve)
                on_chunk(step, np.asarray(carry[0], dtype=np.float64))
            stop.check(step, total=steps, what="the attack", path=None if store is None else store.path)
    x, lam, _ = carry
    x = jnp.asarray(x, jnp.float64)
    smooth = beta_schedule is not None and has_surrogate(arch)
    final_beta = float(beta_at(steps - 1, horizon, beta_schedule, anneal)) if smooth else None
    phi = activation_fn(arch, smooth_beta=final_beta) if smooth else None
    thetas = thetas64
    if mode == "profiled":  # lambda*(X_R) at the returned X_R, in float64
        lam = profiled_lambda(arch, thetas, delta, x, activation=phi)[0]
    lam = jnp.asarray(lam, jnp.float64)
    final = float(reconstruction_loss(arch, thetas, delta, x, lam, activation=phi))
    unsmoothed = float(reconstruction_loss(arch, thetas, delta, x, lam))
    curve = np.concatenate(curves)
    # the objective where the run started and where it ended, both at the final beta in float64: the loss curve's
    # first and last values are taken at different betas, and annealing alone can raise it (attack_divergence)
    x_0 = jnp.asarray(start_point[0], jnp.float64)
    lam_0 = profiled_lambda(arch, thetas, delta, x_0, activation=phi)[0] if mode == "profiled" else \
        jnp.asarray(start_point[1], jnp.float64)
    penalty = (lambda points: box_weight * float(box_penalty(points, *bounds))) if bounds is not None else \
        (lambda points: 0.0)
    same_beta = (float(reconstruction_loss(arch, thetas, delta, x_0, lam_0, activation=phi)) + penalty(x_0),
                 final + penalty(x))
    return AttackResult(x_recon=np.asarray(x), coefficients=np.asarray(lam), loss_curve=curve,
                        final_loss=final, kind="parameter", steps=steps,
                        info={"final_beta": final_beta, "loss_unsmoothed": unsmoothed,
                              "final_objective": float(curve[-1]) if curve.size else float("nan"),
                              "objective_start_end_at_final_beta": same_beta,
                              "anneal_steps": horizon,
                              "delta_theta_sqnorm": float(_tree_sqnorm(delta)), "parameter_sets": len(thetas),
                              "at": at, "resumed_from": start,
                              "method": "profiled" if mode == "profiled" else method, "mode": mode,
                              "precision": precision, "ridge_steps": ridges, "delta_scale": delta_scale})


# ---------------------------------------------------------------------------------------------------------
# The kernel-space (infinite-width) attack
# ---------------------------------------------------------------------------------------------------------

def profiled_loss(arch: Architecture, x_train: jax.Array, alpha: jax.Array, x_recon: jax.Array, *,
                  ridge: float = 0.0, width: int | None = None) -> tuple[jax.Array, jax.Array]:
    """L*(X_R) = tr alpha^T (Theta_TT - Theta_TR (Theta_RR + ridge I)^-1 Theta_RT) alpha and lambda*.

    The Schur complement of docs/claims.md#r1 (Loo et al. 2023, Sec. 3), computed with a Cholesky factor of
    Theta_RR: L* = tr(alpha^T Theta_TT alpha) - ||C^-1 Theta_RT alpha||_F^2 with Theta_RR = C C^T.
    alpha is (N, C_out); returns (L*, lambda* (M, C_out)).
    """
    k_tt = analytic_ntk(arch, x_train, width=width)
    k_rt = analytic_ntk(arch, x_recon, x_train, width=width)
    k_rr = analytic_ntk(arch, x_recon, width=width)
    m = x_recon.shape[0]
    factor = jax.scipy.linalg.cho_factor(k_rr + ridge * jnp.eye(m), lower=True)
    projected = jax.scipy.linalg.solve_triangular(factor[0], k_rt @ alpha, lower=True)
    loss = jnp.sum(alpha * (k_tt @ alpha)) - jnp.sum(projected**2)
    lam = jax.scipy.linalg.cho_solve(factor, k_rt @ alpha)
    return loss, lam


def _to_domain(z: jax.Array, domain: str) -> jax.Array:
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True) if domain == "sphere" else z


def kernel_space_attack(arch: Architecture, x_train: Any, alpha: Any, n_recon: int, *, key: jax.Array,
                        steps: int = 1500, restarts: int = 8, domain: str = "sphere", lr: float = 0.05,
                        lr_final: float = 1e-4, ridge: float = 0.0, polish_iterations: int = 300, polish_top: int = 2,
                        width: int | None = None) -> AttackResult:
    """Minimize the infinite-width loss with lambda profiled out (:func:`profiled_loss`) over X_R.

    Domain "sphere": X_R = Z / |Z| row-wise, Z unconstrained (initialized N(0, I), uniform on the sphere);
    "euclidean": X_R free in R^d, initialized N(0, s^2 I) with s the rms coordinate of x_train. ``restarts``
    independent starts run together (vmapped Adam, ``steps`` steps, learning rate decaying exponentially
    from ``lr`` to ``lr_final``: the ReLU NTK has a cusp at coincident points, which a fixed step circles);
    the ``polish_top`` best are polished with scipy L-BFGS-B for up to ``polish_iterations`` iterations
    (about 100x lower loss), and the restart with the lowest L* wins. ``ridge`` adds ridge * I to
    Theta_RR (default 0: the exact Schur complement, which the checks of T1 use; a positive ridge biases
    L* upward by O(ridge |lambda*|^2) and is reported in ``info``). A restart whose Theta_RR turns
    numerically singular (two reconstructions collide) gives a NaN loss and is discarded.

    Theorem 1 (docs/claims.md#t1): on the sphere, with distinct training points, nonzero alpha and M >= N, the
    global minimizers (L* = 0) contain every training point; see :func:`recovery` to score a result.
    """
    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be a theory.Architecture, got {type(arch).__name__}")
    x_np = validate_points(x_train, name="x_train").astype(np.float64)
    alpha_np = np.asarray(alpha, dtype=np.float64)
    n, d = x_np.shape
    if alpha_np.ndim not in (1, 2) or alpha_np.shape[0] != n:
        raise ValueError(f"alpha must have shape (N,) or (N, C) with N = {n} training points, got {alpha_np.shape}")
    if not np.all(np.isfinite(alpha_np)):
        rows = np.flatnonzero(~np.isfinite(alpha_np.reshape(n, -1)).all(axis=1))
        raise ValueError(f"alpha contains NaN or inf in rows {rows.tolist()}")
    n_recon = _check_positive_int("n_recon", n_recon)
    steps = _check_positive_int("steps", steps)
    restarts = _check_positive_int("restarts", restarts)
    polish_top = _check_positive_int("polish_top", polish_top)
    lr = _check_positive("lr", lr)
    lr_final = _check_positive("lr_final", lr_final)
    if (isinstance(polish_iterations, bool) or not isinstance(polish_iterations, (int, np.integer))
            or polish_iterations < 0):
        raise ValueError(f"polish_iterations must be an integer >= 0, got {polish_iterations!r}")
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if not (math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be finite and >= 0, got {ridge!r}")
    try:
        assert_distinct(x_np, name="x_train")
    except ValueError as error:
        raise ValueError(f"{error}: the kernel matrix Theta_TT is singular and Theorem 1 needs distinct "
                         "points; merge the duplicates (summing their alpha) before attacking") from None
    if domain == "sphere":
        off = float(np.max(np.abs(np.linalg.norm(x_np, axis=1) - 1.0)))
        if off > 1e-8:
            raise ValueError(f"domain='sphere' needs x_train on the unit sphere, but max | |x| - 1 | = {off:.3g}; "
                             "normalize the points or use domain='euclidean'")
    alpha_rows = alpha_np.reshape(n, -1)
    if not np.any(alpha_rows):
        raise ValueError("alpha is zero: Delta theta = 0, there is nothing to reconstruct")
    silent = np.flatnonzero(~np.any(alpha_rows, axis=1))
    if silent.size:
        warnings.warn(f"alpha is zero for training rows {silent.tolist()}: they do not enter Delta theta and "
                      "cannot be recovered (Theorem 1 assumes every alpha_i != 0)", stacklevel=2)

    x_t = jnp.asarray(x_np)
    a_t = jnp.asarray(alpha_rows)

    def loss_of(z):
        return profiled_loss(arch, x_t, a_t, _to_domain(z, domain), ridge=ridge, width=width)[0]

    batched = jax.vmap(jax.value_and_grad(loss_of))
    optimizer = optax.adam(optax.exponential_decay(lr, steps, lr_final / lr))

    def adam_step(carry, _):
        z, state = carry
        loss, grad = batched(z)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats with its int32 step count
            updates, state = optimizer.update(grad, state, z)
        return (optax.apply_updates(z, updates), state), loss

    @jax.jit
    def run(z0):
        (z, _), losses = jax.lax.scan(adam_step, (z0, optimizer.init(z0)), None, length=steps)
        return z, losses, jax.vmap(loss_of)(z)

    scale = 1.0 if domain == "sphere" else float(np.sqrt(np.mean(x_np**2)))
    z0 = scale * jax.random.normal(key, (restarts, n_recon, d), jnp.float64)
    z_all, curves, finals = (np.array(v) for v in run(z0))
    finals = [float(v) for v in finals]
    if polish_iterations:
        value_and_grad = jax.jit(jax.value_and_grad(loss_of))
        ranked = np.argsort([f if math.isfinite(f) else math.inf for f in finals], kind="stable")
        for r in ranked[:polish_top]:
            z_all[r] = _polish(value_and_grad, z_all[r], polish_iterations)
            finals[r] = float(value_and_grad(jnp.asarray(z_all[r]))[0])
    finite = [f if math.isfinite(f) else math.inf for f in finals]
    if not any(math.isfinite(f) for f in finite):
        raise AttackFailed(f"all {restarts} restarts ended with a singular Theta_RR (colliding reconstructions); "
                           "rerun with a small ridge, e.g. ridge=1e-10")
    best = int(np.argmin(finite))
    x_best = _to_domain(jnp.asarray(z_all[best]), domain)
    loss, lam = profiled_loss(arch, x_t, a_t, x_best, ridge=ridge, width=width)
    lam = np.asarray(lam)
    if alpha_np.ndim == 1:
        lam = lam[:, 0]
    reference = float(jnp.sum(a_t * (analytic_ntk(arch, x_t, width=width) @ a_t)))
    return AttackResult(x_recon=np.asarray(x_best), coefficients=lam, loss_curve=curves[:, best],
                        final_loss=float(loss), kind="kernel", steps=steps, restart_losses=tuple(finals),
                        info={"ridge": ridge, "domain": domain, "best_restart": best,
                              "relative_loss": float(loss) / reference, "alpha_norm_sq_rkhs": reference})


def _polish(value_and_grad, z: np.ndarray, iterations: int) -> np.ndarray:
    """scipy L-BFGS-B on the flattened variables; a non-finite loss (singular Theta_RR) stops the polish."""
    shape = z.shape

    def fun(flat):
        value, grad = value_and_grad(jnp.asarray(flat.reshape(shape)))
        value, grad = float(value), np.asarray(grad, dtype=np.float64).ravel()
        if not (math.isfinite(value) and np.all(np.isfinite(grad))):
            return math.inf, np.zeros_like(flat)
        return value, grad

    start_value = fun(z.ravel())[0]
    result = scipy.optimize.minimize(fun, z.ravel(), jac=True, method="L-BFGS-B",
                                     options={"maxiter": iterations, "ftol": 0.0, "gtol": 0.0})
    if not (math.isfinite(result.fun) and result.fun <= start_value):
        return z
    return result.x.reshape(shape)


# ---------------------------------------------------------------------------------------------------------
# Scoring a reconstruction against the training set
# ---------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class Recovery:
    """How well weighted reconstructions recover the training set (Theorem 1's notion of recovery).

    Reconstructions closer than ``merge_radius`` are merged (coefficients summed, location weighted by
    |coefficient|); merged locations whose summed coefficient is below ``min_weight`` times the largest
    |alpha_i| are dropped (they carry no weight in Delta theta); the rest are matched one-to-one to the
    training points (Hungarian, L2). ``distances[i]`` is the distance of training point i to its match
    (inf when fewer weighted locations than training points remain); ``weight_errors[i]`` is
    |merged coefficient - alpha_i| / max |alpha|; ``spurious`` counts weighted locations left unmatched.
    """

    distances: np.ndarray
    weight_errors: np.ndarray
    spurious: int
    locations: np.ndarray
    weights: np.ndarray

    @property
    def max_distance(self) -> float:
        return float(np.max(self.distances))

    @property
    def max_weight_error(self) -> float:
        return float(np.max(self.weight_errors))


def merge_reconstructions(x_recon: Any, coefficients: Any, *, merge_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge reconstructions closer than ``merge_radius`` (single linkage): the loss depends only on the
    summed coefficient at each location (Theorem 1's first proof step). Returns (locations, weights)."""
    x = validate_points(x_recon, name="x_recon").astype(np.float64)
    lam = np.asarray(coefficients, dtype=np.float64).reshape(x.shape[0], -1)
    labels = np.arange(x.shape[0])
    gaps = np.linalg.norm(x[:, None] - x[None], axis=-1)
    for i, j in zip(*np.nonzero(gaps < merge_radius)):
        li, lj = labels[i], labels[j]
        if li != lj:
            labels[labels == lj] = li
    locations, weights = [], []
    for label in np.unique(labels):
        members = labels == label
        magnitude = np.linalg.norm(lam[members], axis=1)
        share = magnitude / magnitude.sum() if magnitude.sum() > 0 else np.full(members.sum(), 1 / members.sum())
        locations.append(share @ x[members])
        weights.append(lam[members].sum(axis=0))
    return np.asarray(locations), np.asarray(weights)


def recovery(x_recon: Any, coefficients: Any, x_train: Any, alpha: Any, *, merge_radius: float = 1e-2,
             min_weight: float = 1e-3) -> Recovery:
    """Score reconstructions by Theorem 1's criterion (see :class:`Recovery`)."""
    x_t = validate_points(x_train, name="x_train").astype(np.float64)
    a_t = np.asarray(alpha, dtype=np.float64).reshape(x_t.shape[0], -1)
    locations, weights = merge_reconstructions(x_recon, coefficients, merge_radius=merge_radius)
    scale = float(np.max(np.linalg.norm(a_t, axis=1)))
    keep = np.linalg.norm(weights, axis=1) >= min_weight * scale
    locations, weights = locations[keep], weights[keep]
    distances = np.full(x_t.shape[0], np.inf)
    weight_errors = np.full(x_t.shape[0], np.inf)
    spurious = int(locations.shape[0])
    if locations.shape[0]:
        cost = np.linalg.norm(x_t[:, None] - locations[None], axis=-1)
        rows, cols = linear_sum_assignment(cost)
        distances[rows] = cost[rows, cols]
        weight_errors[rows] = np.linalg.norm(weights[cols] - a_t[rows], axis=1) / scale
        spurious = int(locations.shape[0] - rows.size)
    return Recovery(distances=distances, weight_errors=weight_errors, spurious=spurious, locations=locations,
                    weights=weights)
from numerics.kkt import kkt_attack  # noqa: E402,F401  (Haim et al. 2022, theta_f alone: numerics/kkt.py)
