"""Dataset distillation with the NTK: KIP and RKIP, kernel-ridge prediction, and a minimum distance to protected points.

A distilled (support) set S = (X_S, y_S) of M points stands in for a target set T = (X_T, y_T) of N points.
Kernel ridge regression on S predicts f_S(x) = Theta(x, X_S) beta_S with beta_S = (K_SS + r_S I)^-1 y_S.

- KIP (Nguyen et al. 2021, arXiv:2011.00050): minimize the mean squared error of f_S on the target set,

      L_KIP(X_S, y_S) = (1 / 2N) sum_i || y_i - f_S(x_i) ||^2                          (:func:`kip_loss`)

- RKIP (Loo et al. 2023, arXiv:2302.01428): minimize the squared RKHS distance between the full-data
  kernel regressor f_T = Theta(., X_T) alpha, alpha = (K_TT + r_T I)^-1 y_T, and f_S,

      L_RKIP(X_S, y_S) = || f_T - f_S ||_H^2 = alpha^T K_TT alpha - 2 alpha^T K_TS beta_S + beta_S^T K_SS beta_S
                                                                                         (:func:`rkip_loss`)

  which is the infinite-width reconstruction attack's loss with lambda = beta_S (docs/claims.md#r1): the attack
  with M < N is a distillation algorithm.

Ridge: r = ``ridge_factor`` * tr(K) / n for the n x n matrix K being inverted, default ``RIDGE_FACTOR`` = 1e-5
(the setting of the KIP and RKIP reference code). Optimizer: optax Adam on X_S and (``learn_labels=True``) y_S.

Memory: the target set is processed in blocks of ``block_size`` rows (fewer where a block would exceed
``KERNEL_BLOCK_ENTRIES`` kernel-state entries, e.g. for convolutional kernels; padded with zero-weight rows), each
block under ``jax.checkpoint`` inside a ``lax.scan``; one step holds the M x M support kernel, one block's
b x M kernel with its per-layer intermediates (about 4 (depth + 1) b M floats) and the N x d target set, so
memory is O(N d + M^2 + depth b M), independent of N^2. RKIP needs alpha once: it is solved from K_TT built
block by block (8 N^2 bytes: 200 MB for N = 5000), or passed in with ``alpha=``. :func:`kip_loss` and
:func:`rkip_loss` take the target set already cut into blocks ((B, b, d) with a (B, b) weight mask), so that
the blocks can be sharded across devices.

Minimum distance (privacy): with ``protected`` points P and ``min_distance`` r, every distilled point keeps

    d(x_s, p) = min_{c >= 0} || c x_s - p || >= r      for every p in P,

the distance of :func:`numerics.privacy.revealed` (a bias-free ReLU network cannot see the scale of its
input, so an attack recovers distilled points only up to it). It is enforced by *projection* after every Adam
step (:func:`project_min_distance`): d(x, p) = ||p|| sin(angle(x, p)) when <x, p> > 0 (else ||p||), so the
constraint keeps x outside the cone of half-angle arcsin(r / ||p||) around p; a violating x is projected onto
that cone's surface (the exact Euclidean projection for one p), the most violated p first, for
``PROJECTION_SWEEPS`` sweeps. Since d(x, p) <= ||p|| for every x, r > min_p ||p|| is impossible (ValueError).

Example::

    train, test = digits(task="ten_class", split="train"), digits(task="ten_class", split="test")
    result = distill(parse_spec("relu:2"), train.x, train.y, train.labels, per_class=1, method="kip",
                     steps=2000, key=jax.random.PRNGKey(0))
    accuracy(predict(parse_spec("relu:2"), result.x, result.y, test.x), test.labels)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numerics.checkpoint import Checkpoint, fingerprint, interruptible
from numerics.data import positive_int as _positive_int
from numerics.data import positive_number as _positive
from numerics.data import validate_points
from numerics.kernels import analytic_ntk, analytic_ntk_fn, pair_state_entries, pair_work
from numerics.omission import inverse_diagonal, loo_residuals, omission_cost, omission_costs  # noqa: F401 (re-export)
from numerics.progress import ChunkSizer, duration, progress_bar, step_time
from theory.architecture import Architecture

METHODS = ("kip", "rkip")
RIDGE_FACTOR = 1e-5
"""Default ridge: r = RIDGE_FACTOR * tr(K) / n (KIP/RKIP reference code)."""
BLOCK_SIZE = 512
"""Target rows per block (memory: module docstring)."""
PROJECTION_SWEEPS = 8
"""Sweeps of the minimum-distance projection after each step (one cone per point and sweep)."""
MIN_DISTANCE_SLACK = 1e-9
"""The distance a projected point keeps beyond ``min_distance`` (relative), so round-off cannot undo it."""
KERNEL_BLOCK_ENTRIES = 2 ** 24
"""Kernel-state entries one kernel block may hold (rows x columns x :func:`numerics.kernels.pair_state_entries`):
16.8 M float64 numbers, 134 MB per intermediate array. Fully connected kernels keep ``block_size`` rows up to
N = 32768 columns; a convolutional one on the 8x8 digits (4096 entries per pair) gets 3 rows against N = 1258
columns, where 512 rows asked for 115 GB."""
SLOW_STEP_WORK = 10_000_000
"""Work per step (target points x support points x :func:`numerics.kernels.pair_work`) above which a run times its
first steps one at a time, sizes its chunks to the measured step and says how long the whole run will take: a
convolutional chain on the 8x8 digits (conv3x3:c=4 > relu > gap > dense), N = 1258 targets and 10 support points,
is 5e7 and took 32.5 s per step on 2 cores at load 7, against 0.01 s for relu:2 at the same N (1.3e4);
expr:2:phi=tanh(x) there is 8.4e8 (its quadrature duals; about 43 s per step, measured by a trial run whose
100-step chunks let Ctrl-C wait over an hour when quadrature was not counted)."""
KERNEL_BLOCK_WORK = 2 ** 24
"""Work (rows x columns x :func:`numerics.kernels.pair_work`) one block of :func:`kernel_matrix` may take, so that its
progress bar advances and a Ctrl-C takes effect within about a second or two: 1 row against the 1258 digits for
a quadrature dual by its 2-D rule (the memory rule alone gave one block of 512 rows, over ten minutes), 12 by its
Mehler series."""
KERNEL_BLOCK_SLOW_SECONDS = 4.0
"""A block of :func:`kernel_matrix` sized for the Mehler series that takes longer than this (compilation apart) ran
the 2-D rule (the series is decided per call: a row of wide variance sends its block to the rule); the blocks after
it are sized for the rule. Measured on 2 cores: 12 rows of expr:2:phi=tanh(x) against the 1258 digits 0.09 s by the
series (most of it the columns' coefficients, recomputed per call), 7.9 s by the rule (so at most one such block)."""
VALIDATION_SEED = 20260
"""Seed of :func:`validation_split` (fixed: the held-out part of the training split is the same for every run)."""


@dataclasses.dataclass(frozen=True, eq=False)
class DistillResult:
    """A distilled set and how it was found.

    Attributes:
      x: (M, d) distilled points.
      y: (M, C) their labels (learned or fixed).
      classes: (M,) the class each point was initialized from (a real point of that class).
      init_index: (M,) index into the target set of each point's initialization.
      loss_curve: the objective (:func:`kip_loss` or :func:`rkip_loss` / alpha^T K_TT alpha) at every step.
      method: "kip" or "rkip".
      steps: Adam steps taken.
      info: ridge factor, minimum distance reached, resumption, ...
    """

    x: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    init_index: np.ndarray
    loss_curve: np.ndarray
    method: str
    steps: int
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Kernel ridge regression
# ---------------------------------------------------------------------------------------------------------

def ridge_of(kernel: jax.Array, ridge_factor: float = RIDGE_FACTOR) -> jax.Array:
    """r = ridge_factor * tr(K) / n for an n x n kernel matrix K."""
    return ridge_factor * jnp.trace(kernel) / kernel.shape[0]


def kernel_block_rows(arch: Architecture, dim: int, columns: int, block_size: int = BLOCK_SIZE) -> int:
    """Rows per kernel block against ``columns`` points: ``block_size``, fewer when the block would hold more
    than ``KERNEL_BLOCK_ENTRIES`` kernel-state entries."""
    per_row = max(1, int(columns)) * pair_state_entries(arch, dim)
    return max(1, min(int(block_size), KERNEL_BLOCK_ENTRIES // per_row))



def kernel_matrix_rows(arch: Architecture, dim: int, columns: int, block_size: int = BLOCK_SIZE, *,
                       by_series: bool = False) -> int:
    """Rows per block of :func:`kernel_matrix`: :func:`kernel_block_rows` (memory), fewer when a block would take
    more than ``KERNEL_BLOCK_WORK`` (time: its progress bar and Ctrl-C act between blocks), its quadrature duals
    counted by their 2-D rule or, with ``by_series``, by their Mehler series (:func:`numerics.kernels.pair_work`)."""
    work_rows = KERNEL_BLOCK_WORK // (max(1, int(columns)) * pair_work(arch, dim, by_series=by_series))
    return max(1, min(kernel_block_rows(arch, dim, columns, block_size), work_rows))


def kernel_matrix(arch: Architecture, x1: Any, x2: Any = None, *, block_size: int = BLOCK_SIZE,
                  progress: str | None = None) -> np.ndarray:
    """Theta(x1, x2) as a numpy array, built in row blocks of :func:`kernel_matrix_rows` (memory bounded by
    ``KERNEL_BLOCK_ENTRIES`` whatever the architecture, time by ``KERNEL_BLOCK_WORK``); ``progress`` names a progress
    bar over the rows.

    Quadrature duals take their Mehler series where it converges (numerics.kernels._quadrature_pair, decided per
    call): blocks are first sized for the series and, once a block takes over ``KERNEL_BLOCK_SLOW_SECONDS`` (it ran
    the 2-D rule), for the rule. Blocks were sized for the rule alone: the 1258 digits' kernel of expr:2:phi=tanh(x)
    took 1258 one-row calls, ~110 s, for ~1 s of work. Each block size is compiled once, ahead of its timed call, and
    the last block is padded to the size of the others (rows are independent: the same numbers, no new compilation;
    2 s per shape for a series dual)."""
    a = jnp.asarray(x1, jnp.float64)
    b = a if x2 is None else jnp.asarray(x2, jnp.float64)
    n, dim, columns = a.shape[0], a.shape[1], b.shape[0]
    rule_rows = kernel_matrix_rows(arch, dim, columns, block_size)
    rows = min(n, kernel_matrix_rows(arch, dim, columns, block_size, by_series=True))
    kernel_fn = analytic_ntk_fn(arch)
    compiled = {}
    out = np.empty((n, columns))
    with progress_bar(enabled=progress is not None and rule_rows < n, transient=True) as bar:
        task = bar.add_task(progress or "kernel rows", total=n)
        start = 0
        while start < n:
            block = a[start:start + rows]
            taken = block.shape[0]
            if taken < rows:
                block = jnp.concatenate([block, jnp.broadcast_to(block[:1], (rows - taken, dim))])
            if rows not in compiled:
                compiled[rows] = kernel_fn.lower(block, b).compile()
            began = time.perf_counter()
            out[start:start + taken] = np.asarray(compiled[rows](block, b))[:taken]
            if time.perf_counter() - began > KERNEL_BLOCK_SLOW_SECONDS and rows > rule_rows:
                rows = rule_rows
            start += taken
            bar.update(task, completed=start)
    return out


def _ridge_solve(kernel: np.ndarray, values: np.ndarray, ridge_factor: float) -> np.ndarray:
    """(K + r I)^-1 values by scipy Cholesky, r = ridge_factor tr(K) / n (:func:`ridge_of` for numpy matrices)."""
    import scipy.linalg

    ridge = ridge_factor * np.trace(kernel) / kernel.shape[0]
    return scipy.linalg.cho_solve(scipy.linalg.cho_factor(kernel + ridge * np.eye(kernel.shape[0])), values)


def support_coefficients(arch: Architecture, x_support: jax.Array, y_support: jax.Array, *,
                         ridge_factor: float = RIDGE_FACTOR) -> jax.Array:
    """beta_S = (K_SS + r I)^-1 y_S (Cholesky), r = ridge_factor tr(K_SS) / M."""
    k_ss = analytic_ntk(arch, x_support)
    m = k_ss.shape[0]
    factor = jax.scipy.linalg.cho_factor(k_ss + ridge_of(k_ss, ridge_factor) * jnp.eye(m, dtype=k_ss.dtype))
    return jax.scipy.linalg.cho_solve(factor, y_support)


def predict(arch: Architecture, x_support: Any, y_support: Any, x_query: Any, *, ridge_factor: float = RIDGE_FACTOR,
            block_size: int = BLOCK_SIZE, progress: str | None = None) -> np.ndarray:
    """Kernel ridge regression f_S(X_Q) = Theta(X_Q, X_S) (K_SS + r I)^-1 y_S, queries in blocks; (Q, C)."""
    x_s = jnp.asarray(validate_points(x_support, name="x_support"), jnp.float64)
    y_s = jnp.asarray(np.asarray(y_support, np.float64).reshape(x_s.shape[0], -1))
    x_q = validate_points(x_query, name="x_query").astype(np.float64)
    if x_q.shape[1] != x_s.shape[1]:
        raise ValueError(f"x_query has {x_q.shape[1]} features, x_support {x_s.shape[1]}")
    k_ss = kernel_matrix(arch, x_s, block_size=block_size, progress=progress and f"{progress}: K_SS")
    beta = _ridge_solve(k_ss, np.asarray(y_s), ridge_factor)
    return kernel_matrix(arch, x_q, x_s, block_size=block_size, progress=progress and f"{progress}: K_QS") @ beta


def accuracy(predictions: Any, labels: Any) -> float:
    """Fraction of rows whose prediction gives the label: argmax for C > 1 outputs, sign (1 = positive) for C = 1."""
    pred = np.asarray(predictions, np.float64)
    labels = np.asarray(labels)
    pred = pred.reshape(pred.shape[0], -1)
    if pred.shape[0] != labels.shape[0]:
        raise ValueError(f"{pred.shape[0]} predictions for {labels.shape[0]} labels")
    guess = (pred[:, 0] > 0).astype(np.int64) if pred.shape[1] == 1 else np.argmax(pred, axis=1)
    return float(np.mean(guess == labels))


def support_accuracy(arch: Architecture, x_support: Any, y_support: Any, x_test: Any, labels_test: Any, *,
                     ridge_factor: float = RIDGE_FACTOR, progress: str | None = None) -> float:
    """:func:`accuracy` of :func:`predict` on a test set (``progress``: a progress bar's name)."""
    return accuracy(predict(arch, x_support, y_support, x_test, ridge_factor=ridge_factor, progress=progress),
                    labels_test)


# ---------------------------------------------------------------------------------------------------------
# Blocks of the target set, and the two losses
# ---------------------------------------------------------------------------------------------------------

def target_blocks(x: np.ndarray, values: np.ndarray, block_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Cut (N, d) points and (N, C) values into (B, b, d), (B, b, C) and a (B, b) weight mask (1 real, 0 pad)."""
    n = x.shape[0]
    b = min(block_size, n)
    blocks = -(-n // b)
    pad = blocks * b - n
    xp = np.concatenate([x, np.repeat(x[:1], pad, axis=0)]) if pad else x
    vp = np.concatenate([values, np.zeros((pad, values.shape[1]))]) if pad else values
    mask = np.concatenate([np.ones(n), np.zeros(pad)])
    return (jnp.asarray(xp.reshape(blocks, b, -1)), jnp.asarray(vp.reshape(blocks, b, -1)),
            jnp.asarray(mask.reshape(blocks, b)))


def kip_loss(arch: Architecture, x_support: jax.Array, y_support: jax.Array, x_blocks: jax.Array,
             y_blocks: jax.Array, mask: jax.Array, *, ridge_factor: float = RIDGE_FACTOR) -> jax.Array:
    """L_KIP = (1 / 2N) sum_i mask_i ||y_i - Theta(x_i, X_S) beta_S||^2, N = sum(mask), summed block by block.

    Nguyen et al. 2021 (arXiv:2011.00050), Eq. 2, with beta_S = (K_SS + r I)^-1 y_S.
    """
    beta = support_coefficients(arch, x_support, y_support, ridge_factor=ridge_factor)

    @jax.checkpoint
    def block(x_b, y_b, m_b):
        residual = y_b - analytic_ntk(arch, x_b, x_support) @ beta
        return jnp.sum(m_b[:, None] * residual**2)

    def body(total, blk):
        return total + block(*blk), None

    total, _ = jax.lax.scan(body, jnp.zeros((), x_support.dtype), (x_blocks, y_blocks, mask))
    return 0.5 * total / jnp.sum(mask)


def rkip_loss(arch: Architecture, x_support: jax.Array, y_support: jax.Array, x_blocks: jax.Array,
              alpha_blocks: jax.Array, mask: jax.Array, *, alpha_norm_sq: jax.Array | float,
              ridge_factor: float = RIDGE_FACTOR) -> jax.Array:
    """L_RKIP = ||f_T - f_S||_H^2 = alpha^T K_TT alpha - 2 sum_blocks alpha_b^T K_bS beta_S + beta_S^T K_SS beta_S.

    Loo et al. 2023 (arXiv:2302.01428), RKIP; ``alpha_norm_sq`` = alpha^T K_TT alpha (a constant of X_S).
    """
    k_ss = analytic_ntk(arch, x_support)
    m = k_ss.shape[0]
    factor = jax.scipy.linalg.cho_factor(k_ss + ridge_of(k_ss, ridge_factor) * jnp.eye(m, dtype=k_ss.dtype))
    beta = jax.scipy.linalg.cho_solve(factor, y_support)

    @jax.checkpoint
    def block(x_b, a_b, m_b):
        return jnp.sum((m_b[:, None] * a_b) * (analytic_ntk(arch, x_b, x_support) @ beta))

    def body(total, blk):
        return total + block(*blk), None

    cross, _ = jax.lax.scan(body, jnp.zeros((), x_support.dtype), (x_blocks, alpha_blocks, mask))
    return alpha_norm_sq - 2.0 * cross + jnp.sum(beta * (k_ss @ beta))


def full_data_alpha(arch: Architecture, x: np.ndarray, y: np.ndarray, *, ridge_factor: float = RIDGE_FACTOR,
                    block_size: int = BLOCK_SIZE) -> tuple[np.ndarray, float]:
    """alpha = (K_TT + r I)^-1 y_T (K_TT built block by block, scipy Cholesky) and alpha^T K_TT alpha."""
    k = kernel_matrix(arch, x, block_size=block_size)
    alpha = _ridge_solve(k, y, ridge_factor)
    return alpha, float(np.sum(alpha * (k @ alpha)))


# ---------------------------------------------------------------------------------------------------------
# The minimum-distance projection
# ---------------------------------------------------------------------------------------------------------

def rescaled_distance(x: jax.Array, protected: jax.Array) -> jax.Array:
    """D[s, p] = min_{c >= 0} ||c x_s - p|| = ||p|| sin(angle) if <x_s, p> > 0, else ||p|| (numerics.privacy)."""
    inner = x @ protected.T
    xn2 = jnp.sum(x**2, axis=1)[:, None]
    pn2 = jnp.sum(protected**2, axis=1)[None, :]
    explained = jnp.where(xn2 > 0, jnp.maximum(inner, 0.0) ** 2 / jnp.where(xn2 > 0, xn2, 1.0), 0.0)
    return jnp.sqrt(jnp.maximum(pn2 - explained, 0.0))


def project_min_distance(x: jax.Array, protected: jax.Array, min_distance: float | jax.Array, *,
                         sweeps: int = PROJECTION_SWEEPS) -> jax.Array:
    """Move each row of x the least (in L2) so that its rescaled distance to every protected point is
    >= min_distance: rotate it, in the plane of x and p, out to the cone of half-angle
    theta_p = arcsin(min_distance (1 + slack) / ||p||) around p and project onto that ray (norm ||x|| cos(theta_p - phi)).
    Per sweep each row is projected away from its most violated p."""
    pn = jnp.linalg.norm(protected, axis=1)
    u = protected / pn[:, None]
    theta = jnp.arcsin(jnp.clip(min_distance * (1 + MIN_DISTANCE_SLACK) / pn, 0.0, 1.0))

    def sweep(x, _):
        xn = jnp.linalg.norm(x, axis=1, keepdims=True)
        cos_phi = jnp.clip((x @ u.T) / jnp.maximum(xn, 1e-300), -1.0, 1.0)
        phi = jnp.arccos(cos_phi)                                      # (M, P)
        violation = theta[None, :] - phi
        worst = jnp.argmax(violation, axis=1)
        rows = jnp.arange(x.shape[0])
        up, th, ph = u[worst], theta[worst], phi[rows, worst]
        along = jnp.sum(x * up, axis=1, keepdims=True) * up
        ortho = x - along
        on = jnp.linalg.norm(ortho, axis=1, keepdims=True)
        # x parallel to p: any orthogonal direction works; take the first coordinate axis made orthogonal to p
        fallback = jnp.zeros_like(x).at[:, 0].set(1.0)
        fallback = fallback - jnp.sum(fallback * up, axis=1, keepdims=True) * up
        fallback = jnp.where(jnp.linalg.norm(fallback, axis=1, keepdims=True) > 1e-8, fallback,
                             jnp.zeros_like(x).at[:, 1].set(1.0) - up[:, 1:2] * up)
        w = jnp.where(on > 1e-12 * jnp.maximum(xn, 1e-300), ortho / jnp.maximum(on, 1e-300),
                      fallback / jnp.linalg.norm(fallback, axis=1, keepdims=True))
        direction = jnp.cos(th)[:, None] * up + jnp.sin(th)[:, None] * w
        projected = (xn[:, 0] * jnp.cos(th - ph))[:, None] * direction
        return jnp.where((violation[rows, worst] > 0)[:, None], projected, x), None

    x, _ = jax.lax.scan(sweep, x, None, length=sweeps)
    return x


# ---------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------

def check_min_distance(protected: Any, min_distance: float | None) -> np.ndarray | None:
    """The protected points as float64, after checking that ``min_distance`` can be met: every distance
    d(x, p) <= ||p||, so min_distance > min_p ||p|| is impossible. Returns None without a constraint."""
    if protected is None and min_distance is None:
        return None
    if protected is None or min_distance is None:
        raise ValueError("give both protected points and min_distance, or neither")
    p = validate_points(protected, name="protected").astype(np.float64)
    if isinstance(min_distance, bool) or not isinstance(min_distance, (int, float, np.integer, np.floating)) \
            or not math.isfinite(min_distance) or min_distance < 0:
        raise ValueError(f"min_distance must be a finite number >= 0, got {min_distance!r}")
    norms = np.linalg.norm(p, axis=1)
    if min_distance * (1 + MIN_DISTANCE_SLACK) >= norms.min():
        i = int(np.argmin(norms))
        raise ValueError(f"min_distance {min_distance:g} cannot be met: no point is farther than ||p|| = "
                         f"{norms[i]:.4g} from protected point {i} (distance after the best nonnegative rescaling); "
                         f"choose min_distance < {norms.min():.4g}")
    return p


def check_per_class(labels: np.ndarray, per_class: int, n_classes: int) -> None:
    """ValueError naming the smallest class when it has fewer than ``per_class`` points."""
    counts = np.bincount(labels, minlength=n_classes)
    if counts.min() < per_class:
        k = int(np.argmin(counts))
        raise ValueError(f"per_class = {per_class} but class {k} has only {int(counts[k])} points in the target set "
                         f"(classes have {int(counts.min())} to {int(counts.max())})")


def validation_split(labels: Any, fraction: float, *, seed: int = VALIDATION_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of a training set for model selection: (kept, held_out) index arrays, sorted.

    From every class, round(fraction * count) points (at least 1, at most count - 1) are held out, drawn with
    ``numpy.random.default_rng(seed)`` class by class; the rest is kept. Only training indices are involved:
    the test split never enters model selection.
    """
    labels = np.asarray(labels)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) \
            or not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    held = []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        if members.size < 2:
            raise ValueError(f"class {k} has {members.size} point(s): cannot hold out a validation part")
        count = min(max(int(round(fraction * members.size)), 1), members.size - 1)
        held.append(rng.choice(members, count, replace=False))
    held_out = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(labels.shape[0]), held_out)
    return kept, held_out


# ---------------------------------------------------------------------------------------------------------
# The distillation loop
# ---------------------------------------------------------------------------------------------------------

@functools.cache
def _chunk_runner(arch: Architecture, method: str, lr: float, label_lr: float, learn_labels: bool,
                  ridge_factor: float, constrained: bool, length: int):
    optimizer = optax.multi_transform({"x": optax.adam(lr), "y": optax.adam(label_lr) if learn_labels
                                       else optax.set_to_zero()}, {"x": "x", "y": "y"})

    def objective(variables, data):
        x_blocks, v_blocks, mask, scale = data
        if method == "kip":
            return kip_loss(arch, variables["x"], variables["y"], x_blocks, v_blocks, mask, ridge_factor=ridge_factor)
        return rkip_loss(arch, variables["x"], variables["y"], x_blocks, v_blocks, mask, alpha_norm_sq=scale,
                         ridge_factor=ridge_factor) / scale

    def step(carry, _, data, protected, min_distance):
        variables, state = carry
        loss, grads = jax.value_and_grad(objective)(variables, data)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats with its int32 step count
            updates, state = optimizer.update(grads, state, variables)
        variables = optax.apply_updates(variables, updates)
        if constrained:
            variables = {**variables, "x": project_min_distance(variables["x"], protected, min_distance)}
        return (variables, state), loss

    @jax.jit
    def run(carry, data, protected, min_distance):
        return jax.lax.scan(lambda c, t: step(c, t, data, protected, min_distance), carry, None, length=length)

    return optimizer, run


DIVERGED_LOSS_RATIO = 1.0
"""A distillation diverged when its last loss ends above DIVERGED_LOSS_RATIO x its first (the loss at the initial real
points): the kernel-ridge objective is bounded, so a too large Adam step does not blow it up but leaves it higher
than it started. Measured on digits (relu:2; ten-class 1/class, odd/even 2/class; KIP and RKIP; 200 steps): --lr
0.001-10 ended at 0.18-0.95 x the start, --lr 1e3, 1e6 and 1e12 at 1.005-2.26 x (test accuracy 0.199 at 1e6
and 1e12). At every step 2-20 with --lr 0.001 and 0.01 (the default; also 10/class and fixed labels) the loss stayed at or
below 0.9999 x and 0.998 x its start, so the rule does not fire on a sound short run; at lr 0.1 RKIP 10/class rose
to 1.006 x at step 2 before falling (a 2-step run there is flagged), and a trial's 121/class at lr 0.01 rose to 1.45 x
after 2 steps and fell to 1.5e-2 x by step 30 (the message names both remedies: a smaller --lr, more steps)."""


def distill_divergence(result: DistillResult) -> str | None:
    """Why ``result`` (of :func:`distill`) diverged, or None: distilled points, labels or losses not finite, or the
    last loss above :data:`DIVERGED_LOSS_RATIO` x the first (the steps made it worse than the real points it
    started from)."""
    curve = np.asarray(result.loss_curve)
    if not (np.all(np.isfinite(result.x)) and np.all(np.isfinite(result.y))):
        return f"its distilled points or labels are not finite after {result.steps} steps"
    if not np.all(np.isfinite(curve)):
        return f"its loss stopped being finite at step {int(np.argmin(np.isfinite(curve))) + 1} of {result.steps}"
    if curve.size > 1 and curve[-1] > DIVERGED_LOSS_RATIO * curve[0]:
        return (f"its loss ended at {curve[-1]:.4g} after {result.steps} steps, above where it started "
                f"({curve[0]:.4g}): the steps made no progress")
    return None


def initial_support(labels: np.ndarray, per_class: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` distinct target points of every class (seeded), class by class."""
    return np.concatenate([rng.choice(np.flatnonzero(labels == k), per_class, replace=False)
                           for k in range(n_classes)])


def distill(arch: Architecture, x_target: Any, y_target: Any, labels: Any, *, per_class: int, method: str = "kip",
            steps: int = 1000, lr: float = 0.01, label_lr: float | None = None, learn_labels: bool = True,
            ridge_factor: float = RIDGE_FACTOR, block_size: int = BLOCK_SIZE, protected: Any = None,
            min_distance: float | None = None, seed: int = 0, alpha: Any = None,
            checkpoint: str | os.PathLike | None = None, resume: bool = False, progress: bool = True,
            chunk: int = 100, validation: tuple[Any, Any] | None = None, eval_every: int = 100) -> DistillResult:
    """Distill (x_target, y_target) into ``per_class`` points of each class by KIP or RKIP (module docstring).

    ``labels`` (N,) are the integer classes used to initialize the support set with real points of each
    class (seeded by ``seed``); y_S starts as those points' targets and is learned with Adam (rate
    ``label_lr``, default ``lr``) when ``learn_labels``, fixed otherwise. With ``protected`` and
    ``min_distance`` every distilled point is kept at rescaled distance >= min_distance from every protected
    point (projection, module docstring); the initialization is projected too. Steps run in jitted chunks of
    ``chunk``; between chunks the progress bar advances and, with ``checkpoint``, the state is saved;
    ``resume=True`` continues from it (same settings and data, else SettingsMismatch; a larger ``steps``
    extends the run). Ctrl-C stops after the current chunk, once saved (numerics.checkpoint.Interrupted).

    Model selection (early stopping): with ``validation=(x_val, labels_val)`` (points held out of the
    *training* data, e.g. by :func:`validation_split`; never the test set), the support set is scored by
    kernel-ridge :func:`accuracy` on the validation points at step 0 and every ``eval_every`` steps (and at the
    last step), and the result is the support set with the best validation accuracy (the earliest on ties),
    not the last one. ``info`` then holds ``selected_step``, ``validation_accuracy`` (of the selected set) and
    ``validation_curve`` ((steps, accuracies)); ``final_x``/``final_y`` keep the last iterate. The best set so
    far is checkpointed, so resuming selects over the whole run. Without ``validation`` the last iterate is
    returned, as before.
    """
    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be a theory.Architecture, got {type(arch).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    x = validate_points(x_target, name="x_target").astype(np.float64)
    y = validate_points(np.asarray(y_target, dtype=np.float64).reshape(x.shape[0], -1) if np.ndim(y_target) == 1
                        else y_target, name="y_target").astype(np.float64)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y_target has {y.shape[0]} rows but x_target has {x.shape[0]}")
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"labels must be {x.shape[0]} nonnegative integers, got shape {labels.shape}, dtype {labels.dtype}")
    per_class = _positive_int("per_class", per_class)
    steps = _positive_int("steps", steps)
    chunk = _positive_int("chunk", chunk)
    eval_every = _positive_int("eval_every", eval_every)
    block_size = _positive_int("block_size", block_size)
    lr = _positive("lr", lr)
    label_lr = lr if label_lr is None else _positive("label_lr", label_lr)
    ridge_factor = _positive("ridge_factor", ridge_factor)
    n_classes = int(labels.max()) + 1
    check_per_class(labels, per_class, n_classes)
    protected_np = check_min_distance(protected, min_distance)
    if protected_np is not None and protected_np.shape[1] != x.shape[1]:
        raise ValueError(f"protected points have {protected_np.shape[1]} features, x_target {x.shape[1]}")

    val = None
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError("validation must be a pair (x_val, labels_val)")
        x_val = validate_points(validation[0], name="x_val").astype(np.float64)
        labels_val = np.asarray(validation[1])
        if x_val.shape[1] != x.shape[1]:
            raise ValueError(f"x_val has {x_val.shape[1]} features, x_target {x.shape[1]}")
        if labels_val.shape != (x_val.shape[0],) or not np.issubdtype(labels_val.dtype, np.integer):
            raise ValueError(f"labels_val must be {x_val.shape[0]} integers, got shape {labels_val.shape}, "
                             f"dtype {labels_val.dtype}")
        val = (x_val, labels_val)

    rng = np.random.default_rng(seed)
    index = initial_support(labels, per_class, n_classes, rng)
    x_s = jnp.asarray(x[index])
    constrained = protected_np is not None
    p_j = jnp.asarray(protected_np if constrained else np.zeros((1, x.shape[1])))
    r_j = jnp.asarray(float(min_distance) if constrained else 0.0)
    if constrained:
        x_s = project_min_distance(x_s, p_j, r_j)
    variables = {"x": x_s, "y": jnp.asarray(y[index])}

    if method == "kip":
        values, scale = y, 1.0
    else:
        if alpha is None:
            values, scale = full_data_alpha(arch, x, y, ridge_factor=ridge_factor, block_size=block_size)
        else:
            values = np.asarray(alpha, np.float64).reshape(y.shape)
            scale = float(jnp.sum(jnp.asarray(values) * (analytic_ntk(arch, jnp.asarray(x)) @ jnp.asarray(values))))
    x_blocks, v_blocks, mask = target_blocks(x, values, kernel_block_rows(arch, x.shape[1], x_s.shape[0], block_size))
    data = (x_blocks, v_blocks, mask, jnp.asarray(scale))

    optimizer, _ = _chunk_runner(arch, method, lr, label_lr, bool(learn_labels), ridge_factor, constrained, chunk)
    carry = (variables, optimizer.init(variables))
    settings = {"arch": arch.spec, "method": method, "per_class": per_class, "lr": lr, "label_lr": label_lr,
                "learn_labels": bool(learn_labels), "ridge_factor": ridge_factor, "seed": seed,
                "data": fingerprint(x, y, labels), "min_distance": None if not constrained else float(min_distance),
                "protected": None if not constrained else fingerprint(protected_np)}
    if val is not None:  # only added with selection, so checkpoints without it keep their settings
        settings.update(validation=fingerprint(*val), eval_every=eval_every)
    store = None if checkpoint is None else Checkpoint(checkpoint, kind="distill", settings=settings)
    start, curves = 0, []
    if store is not None and resume and store.exists():
        saved = store.load(carry, budget=steps)
        carry = jax.tree_util.tree_map(jnp.asarray, saved.state)
        start, curves = saved.step, [saved.extras["loss_curve"]]
        if val is not None:
            best = {key: saved.extras[f"best_{key}"] for key in ("x", "y", "step", "accuracy")}
            val_steps = list(saved.extras["val_steps"].tolist())
            val_accs = list(saved.extras["val_accuracies"].tolist())

    def validate(step_now, variables_now):
        """Score the current support set on the validation points; keep it when strictly better."""
        nonlocal best
        xv, yv = np.asarray(variables_now["x"]), np.asarray(variables_now["y"])
        acc = accuracy(predict(arch, xv, yv, val[0], ridge_factor=ridge_factor, block_size=block_size), val[1])
        val_steps.append(step_now)
        val_accs.append(acc)
        if best is None or acc > float(best["accuracy"]):
            best = {"x": xv, "y": yv, "step": np.asarray(step_now), "accuracy": np.asarray(acc)}

    def extras_now():
        extras = {"loss_curve": np.concatenate(curves)}
        if val is not None:
            extras.update({f"best_{key}": value for key, value in best.items()})
            extras.update(val_steps=np.asarray(val_steps, np.int64), val_accuracies=np.asarray(val_accs))
        return extras

    if val is not None and start == 0:
        best, val_steps, val_accs = None, [], []
        validate(0, carry[0])
    elif val is None:
        best = None

    with progress_bar(enabled=progress, value_name="loss") as bar, interruptible() as stop:
        task = bar.add_task(f"{method.upper()} {arch.spec}, {per_class}/class", total=steps, completed=start,
                            value=float(curves[-1][-1]) if curves and curves[-1].size else None)
        step = start
        work = x.shape[0] * x_s.shape[0] * pair_work(arch, x.shape[1])
        sizer = ChunkSizer(chunk, heavy=work > SLOW_STEP_WORK)
        while step < steps:
            length = sizer.length(steps - step)
            if val is not None:
                length = min(length, eval_every - step % eval_every)
            _, run = _chunk_runner(arch, method, lr, label_lr, bool(learn_labels), ridge_factor, constrained, length)
            started = time.perf_counter()
            carry, losses = run(carry, data, p_j, r_j)
            losses = np.asarray(losses)
            remaining = sizer.ran(time.perf_counter() - started, steps - step - length, length)
            if progress and remaining is not None:
                bar.console.print(
                    f"note: one step takes {step_time(sizer.seconds_per_step)} ({x.shape[0]} targets x "
                    f"{x_s.shape[0]} points, {pair_work(arch, x.shape[1])} units of work per pair), so the "
                    f"{steps - step - length} steps left take about {duration(remaining)}; Ctrl-C keeps a "
                    "checkpoint to resume from")
            curves.append(losses)
            step += length
            bar.update(task, completed=step, value=float(losses[-1]))
            if val is not None and (step % eval_every == 0 or step == steps):
                validate(step, carry[0])
            if store is not None:
                store.save(carry, step=step, budget=steps, extras=extras_now())
            stop.check(step, total=steps, what="distillation", path=None if store is None else store.path)
    variables = carry[0]
    x_out, y_out = np.asarray(variables["x"]), np.asarray(variables["y"])
    info: dict[str, Any] = {"ridge_factor": ridge_factor, "lr": lr, "label_lr": label_lr,
                            "learn_labels": bool(learn_labels), "resumed_from": start}
    if val is not None:
        info.update(final_x=x_out, final_y=y_out, selected_step=int(best["step"]),
                    validation_accuracy=float(best["accuracy"]), eval_every=eval_every, n_validation=val[0].shape[0],
                    validation_curve=(np.asarray(val_steps, np.int64), np.asarray(val_accs)))
        x_out, y_out = np.asarray(best["x"]), np.asarray(best["y"])
    if constrained:
        reached = float(np.min(np.asarray(rescaled_distance(jnp.asarray(x_out), p_j))))
        info.update(min_distance=float(min_distance), min_distance_reached=reached)
    return DistillResult(x=x_out, y=y_out, classes=labels[index], init_index=index,
                         loss_curve=np.concatenate(curves) if curves else np.zeros(0), method=method, steps=steps,
                         info=info)


# ---------------------------------------------------------------------------------------------------------
# RKIP-finite: the parameter-space attack with M < N as a distillation of a finite trained network
# ---------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class FiniteDistillation:
    """Reconstructions X_R of a finite trained network with their labels y_R = K_theta(X_R, X_R) lambda."""

    x: np.ndarray
    y: np.ndarray
    attack: Any
    """The :class:`numerics.attack.AttackResult` (lambda in ``coefficients``)."""


def rkip_finite(arch: Architecture, params_0: Any, params_f: Any, n_recon: int, *, in_dim: int, key: jax.Array,
                steps: int, at: str = "thetaf", **attack_options) -> FiniteDistillation:
    """Loo et al.'s parameter-space attack with M = ``n_recon`` < N reconstructions, read as distillation.

    The attack fits Delta theta ~ J_theta*(X_R)^T lambda (theta* = theta_f by default, ``at``); a network
    moved by that Delta theta changes its outputs at X_R by J_theta*(X_R) Delta theta = K_theta*(X_R, X_R)
    lambda, so the distilled labels are

        y_R = K_theta*(X_R, X_R) lambda          (factor 1: the attack's lambda is in units of J^T lambda;
                                                  the training loss is the sum-reduced MSE of numerics.training)

    with K the empirical NTK (M C x M C, sample-major). ``attack_options`` go to
    :func:`numerics.attack.parameter_space_attack` (box, lr, beta_schedule, checkpoint, progress, ...).
    """
    from numerics.attack import parameter_space_attack
    from numerics.kernels import empirical_ntk, flatten_ntk

    result = parameter_space_attack(arch, params_0, params_f, n_recon, in_dim=in_dim, key=key, steps=steps, at=at,
                                    **attack_options)
    params = params_0 if at == "theta0" else params_f
    lam = np.asarray(result.coefficients)
    kernel = np.asarray(flatten_ntk(empirical_ntk(arch, params, jnp.asarray(result.x_recon))))
    y = (kernel @ lam.reshape(-1)).reshape(lam.shape)
    return FiniteDistillation(x=np.asarray(result.x_recon), y=y, attack=result)


def network_accuracy(arch: Architecture, width: int, x: Any, y: Any, x_test: Any, labels_test: Any, *, seed: int,
                     linearized: bool = False, max_steps: int = 5000,
                     loss_threshold: float = 1e-8) -> tuple[float, str]:
    """(test accuracy, the training's ``stop_reason``) of a fresh finite network (init seed ``seed``) trained on
    (x, y): full-batch heavy-ball (momentum 0.9) on the sum-reduced MSE with step 1 / lambda_max(K_0), as
    :func:`numerics.audit.train_on`; ``stop_reason`` (numerics.training.TrainResult) is "budget" when ``max_steps``
    ran out before the loss reached ``loss_threshold``."""
    from numerics.networks import make_network
    from numerics.training import linearized_apply, ntk_matrix, train

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64).reshape(x.shape[0], -1)
    network = make_network(arch, width, y.shape[1])
    params_0 = network.init(jax.random.PRNGKey(seed), x.shape[1])
    lambda_max = float(np.linalg.eigvalsh(np.asarray(ntk_matrix(network, params_0, x)))[-1])
    trained = train(network, params_0, x, y, learning_rate=1.0 / lambda_max, momentum=0.9, linearized=linearized,
                    max_steps=max_steps, loss_threshold=loss_threshold, progress=False)
    apply = linearized_apply(network.apply_fn, trained.params_0) if linearized else network.apply_fn
    outputs = apply(trained.params_f, jnp.asarray(x_test, jnp.float64))
    return accuracy(np.asarray(outputs), labels_test), trained.stop_reason


# ---------------------------------------------------------------------------------------------------------
# Distillation as a defense (claim T4): attack a model trained on the private set and models trained on
# distilled sets, score both with the same success measure
# ---------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class DefenseRow:
    """One setting of the defense experiment.

    ``name`` ("private set" for the baseline), ``kind`` (what the model was trained on: "private", "distilled"
    or "class means", the private set's own class means), ``size`` (points the model was trained on),
    ``min_distance`` (None: no constraint), ``test_accuracy`` (kernel regression on the training set of the model),
    ``leakage`` (numerics.privacy.leakage_table rows: the attack's and the trivial reconstructions'),
    ``training_leakage`` (the model's training points themselves scored as reconstructions: what an attack that
    recovers them exactly reveals; all of the private set for the baseline),
    ``min_distance_reached`` (smallest rescaled distance of a training point to a private point; None for the
    baseline),
    ``attack_relative_loss`` (final profiled loss / alpha^T Theta alpha), ``x_recon``, ``x_train``;
    for a distilled row, ``objective_ratio`` (the distillation's objective at its last step / at its start: what
    the steps achieved) and ``start_accuracy`` (test accuracy of the points it started from, the coreset projected
    to the same minimum distance), else None.
    """

    name: str
    size: int
    min_distance: float | None
    test_accuracy: float
    leakage: dict[str, dict[str, Any]]
    training_leakage: dict[str, Any] | None
    min_distance_reached: float | None
    attack_relative_loss: float
    x_recon: np.ndarray
    x_train: np.ndarray
    kind: str = "distilled"
    objective_ratio: float | None = None
    start_accuracy: float | None = None

    @property
    def revealed(self) -> float:
        return float(self.leakage["attack"]["revealed"])

    def summary(self) -> dict[str, Any]:
        trivial = {k: {"revealed": v["revealed"], "ssim_ge_0.4": v.get("ssim_ge_0.4")}
                   for k, v in self.leakage.items() if v.get("trivial")}
        attack = self.leakage["attack"]
        return {"name": self.name, "kind": self.kind, "size": self.size, "min_distance": self.min_distance,
                "test_accuracy": self.test_accuracy, "revealed": attack["revealed"],
                "revealed_count": attack["revealed_count"], "ssim_ge_0.4": attack.get("ssim_ge_0.4"),
                "ssim_ge_0.9": attack.get("ssim_ge_0.9"),
                "training_points_revealed": None if self.training_leakage is None
                else self.training_leakage["revealed"],
                "min_distance_reached": self.min_distance_reached,
                "attack_relative_loss": self.attack_relative_loss, "objective_ratio": self.objective_ratio,
                "start_accuracy": self.start_accuracy, "trivial": trivial}


DEFENSE_ROWS_FILE = "defense_rows.npz"
"""The file in a ``defend`` run folder that keeps every finished :class:`DefenseRow` (:func:`save_defense_rows`), so
that ``defend --resume`` reads them back instead of computing them again."""

_DEFENSE_ROW_ARRAYS = ("x_recon", "x_train")


def save_defense_rows(path, rows) -> None:
    """Write finished :class:`DefenseRow` s to ``path`` (an .npz of plain arrays: each row's reconstructions and
    training points, and the other fields as JSON text; no pickle), under a temporary name and renamed."""
    import json
    from pathlib import Path

    from numerics.audit import plain_json

    arrays = {f"{name}_{i}": np.asarray(getattr(row, name)) for i, row in enumerate(rows)
              for name in _DEFENSE_ROW_ARRAYS}
    fields = [plain_json({field.name: getattr(row, field.name) for field in dataclasses.fields(row)
                          if field.name not in _DEFENSE_ROW_ARRAYS}) for row in rows]
    arrays["rows"] = np.asarray(json.dumps(fields))
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(temporary, path)


def load_defense_rows(path) -> list[DefenseRow]:
    """The rows :func:`save_defense_rows` wrote ([] when there is no file), read safely (numerics.checkpoint.read_npz:
    no pickle); raises numerics.checkpoint.FileError (one line) for a file that is not such a record."""
    import json
    from pathlib import Path

    from numerics.checkpoint import FileError, read_npz

    path = Path(path)
    if not path.exists():
        return []
    what = "defend record of finished settings"
    contents = read_npz(path, what=what)
    try:
        fields = json.loads(str(contents["rows"]))
        rows = []
        for i, record in enumerate(fields):
            if not isinstance(record, dict):
                raise TypeError(f"row {i} is not a record")
            arrays = {name: np.asarray(contents[f"{name}_{i}"], np.float64) for name in _DEFENSE_ROW_ARRAYS}
            training = record.get("training_leakage")
            if isinstance(training, dict) and "ratio" in training:
                training = {**training, "ratio": np.asarray(training["ratio"], np.float64)}
            rows.append(DefenseRow(**{**record, "training_leakage": training}, **arrays))
    except (KeyError, TypeError, ValueError, RecursionError) as error:  # a missing array, an unknown field, ...
        raise FileError(f"{path} is not {'a ' + what}: {error}") from None
    return rows


def attack_kernel_model(arch: Architecture, x_train: np.ndarray, y_train: np.ndarray, n_recon: int, *, key: jax.Array,
                        steps: int, restarts: int, polish_iterations: int, ridge_factor: float = RIDGE_FACTOR):
    """The released model is kernel (ridge) regression on (x_train, y_train), the kernel-regime network at
    infinite width: Delta theta = J_0^T alpha with alpha = (Theta + r I)^-1 y. Attack it with the kernel-space
    attack (numerics.attack.kernel_space_attack, lambda profiled out), reconstructions free in R^d."""
    from numerics.attack import kernel_space_attack

    alpha = np.asarray(support_coefficients(arch, jnp.asarray(x_train), jnp.asarray(y_train),
                                            ridge_factor=ridge_factor))
    return kernel_space_attack(arch, x_train, alpha, n_recon, key=key, steps=steps, restarts=restarts,
                               domain="euclidean", polish_iterations=polish_iterations, polish_top=1)


def defense_experiment(arch: Architecture, private: Any, test: Any, references: Any, *, sizes: tuple[int, ...],
                       distances: tuple[float | None, ...], n_recon: int, attack_steps: int, restarts: int = 1,
                       polish_iterations: int = 100, distill_steps: int = 500, distill_lr: float = 0.01,
                       method: str = "kip", seed: int = 0, factor: float | None = None, class_means: bool = False,
                       advance=lambda message: None, on_row=lambda rows: None,
                       finished: tuple[DefenseRow, ...] | list[DefenseRow] = ()) -> list[DefenseRow]:
    """Claim T4's experiment (docs/claims.md#t4).

    ``private`` (a numerics.data.Dataset with labels) is the private set T; the baseline model is trained on it.
    For every size k in ``sizes`` (a multiple of the number of classes) and minimum distance r in ``distances``
    (None: unconstrained), T is distilled (``method``) into k points at rescaled distance >= r from every private
    point, and a model is trained on them. Every model is the kernel-regime network at infinite width
    (:func:`attack_kernel_model`), attacked with the same budget (``n_recon`` reconstructions, ``attack_steps``,
    ``restarts``, ``polish_iterations``), and scored against T by numerics.privacy.revealed (public set
    ``references.public``), beside the trivial reconstructions (numerics.audit.leakage). With ``class_means`` a
    last row (kind "class means") is a model trained on the private set's class means (:func:`private_class_means`,
    the defense by averaging), attacked and scored the same way. ``on_row(rows)`` is called after every setting
    (e.g. to write partial results). ``finished`` holds the first rows of an interrupted run with the same
    arguments (:func:`load_defense_rows`): each is taken as it is, in order, while its name is the next setting's;
    every setting draws its own randomness (the distillation from ``seed``, the attack from ``seed`` and the
    setting's place), so the rows computed after them are those of a run never interrupted.
    """
    from numerics import audit, privacy

    factor = privacy.DEFAULT_FACTOR if factor is None else factor
    n_classes = len(private.class_names)
    rows = []
    finished = list(finished)

    def reused(name) -> bool:
        """Take the next finished row when it is this setting's, instead of computing it again."""
        if len(rows) < len(finished) and finished[len(rows)].name == name:
            rows.append(finished[len(rows)])
            advance(f"T4: {name}: finished earlier, read back")
            return True
        return False

    def score(name, kind, size, r, x_train, y_train, reached=None, tag=0, objective_ratio=None, start_accuracy=None):
        advance(f"T4: attacking the model trained on {name}")
        result = attack_kernel_model(arch, x_train, y_train, n_recon, key=jax.random.PRNGKey(seed * 1000 + tag),
                                     steps=attack_steps, restarts=restarts, polish_iterations=polish_iterations)
        leak = audit.leakage(result.x_recon, private, references, seed=seed, factor=factor)
        own = privacy.leakage_scores(x_train, private.x, references.public, factor=factor)
        rows.append(DefenseRow(name=name, kind=kind, size=size, min_distance=r,
                               test_accuracy=support_accuracy(arch, x_train, y_train, test.x, test.labels),
                               leakage=leak.rows, training_leakage=own, min_distance_reached=reached,
                               attack_relative_loss=float(result.info["relative_loss"]), x_recon=result.x_recon,
                               x_train=np.asarray(x_train), objective_ratio=objective_ratio,
                               start_accuracy=start_accuracy))
        on_row(rows)

    if not reused("private set"):
        score("private set", "private", private.n, None, private.x, private.y)
    tag = 1
    for size in sizes:
        if size % n_classes:
            raise ValueError(f"distilled size {size} is not a multiple of the {n_classes} classes")
        for r in distances:
            label = f"distilled {size}" + ("" if r is None else f", min distance {r:g}")
            if reused(label):
                tag += 1
                continue
            advance(f"T4: distilling {size} points, "
                    + ("no minimum distance" if r is None else f"minimum distance {r:g}"))
            result = distill(arch, private.x, private.y, private.labels, per_class=size // n_classes, method=method,
                             steps=distill_steps, lr=distill_lr, protected=None if r is None else private.x,
                             min_distance=r, seed=seed, progress=False)
            reached = float(np.min(np.asarray(rescaled_distance(jnp.asarray(result.x), jnp.asarray(private.x)))))
            start = jnp.asarray(private.x[result.init_index])
            if r is not None:
                start = project_min_distance(start, jnp.asarray(private.x), r)
            curve = np.asarray(result.loss_curve)
            score(label, "distilled", size, r, result.x, result.y, reached=reached, tag=tag,
                  objective_ratio=float(curve[-1] / curve[0]),
                  start_accuracy=support_accuracy(arch, start, private.y[result.init_index], test.x, test.labels))
            tag += 1
    if class_means and not reused(CLASS_MEANS_ROW):
        x_means, y_means = private_class_means(private)
        reached = float(np.min(np.asarray(rescaled_distance(jnp.asarray(x_means), jnp.asarray(private.x)))))
        score(CLASS_MEANS_ROW, "class means", x_means.shape[0], None, x_means, y_means, reached=reached, tag=tag)
    return rows


CLASS_MEANS_ROW = "private class means"
"""Name of :func:`defense_experiment`'s class-means row."""


def private_class_means(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a training set made of a labelled dataset's class means (numerics.privacy.class_means), one point
    per class, its target the mean of the class's targets (the class's own target when targets depend only on
    the class)."""
    from numerics.privacy import class_means

    return class_means(dataset.x, dataset.labels), class_means(dataset.y, dataset.labels)


def class_targets(dataset: Any) -> np.ndarray:
    """(C, outputs) target of each class of a labelled dataset, in class order (its first point's: the targets of a
    ten-class dataset depend only on the class): the targets of a training set made of points that are not the
    dataset's own (held-out digits, their class means)."""
    return np.stack([np.asarray(dataset.y)[np.asarray(dataset.labels) == k][0]
                     for k in range(len(dataset.class_names))])


def held_out_training_sets(private: Any, references: Any, *, size: int, rng: np.random.Generator,
                           means_of: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Training sets that hold no private data, as (x, y) by name, targets those of the class
    (:func:`class_targets`): "held-out points" (``size`` digits of ``references.pool``, the training split less
    the private set, size / classes per class, drawn with ``rng`` by :func:`initial_support`) and "class means"
    (numerics.privacy.class_means of the whole pool: the points of the trivial reconstruction of that name, one per
    class); with ``means_of`` also "class means of held-out points" (the class means of ``means_of`` more pool digits
    drawn with ``rng``, as many as the private set for a comparator that saw as much data)."""
    from numerics.privacy import class_means

    n_classes = len(private.class_names)
    targets = class_targets(private)
    held_out = initial_support(references.pool_labels, size // n_classes, n_classes, rng)
    sets = {"class means": (class_means(references.pool, references.pool_labels), targets),
            "held-out points": (references.pool[held_out], targets[references.pool_labels[held_out]])}
    if means_of is not None:
        drawn = initial_support(references.pool_labels, means_of // n_classes, n_classes, rng)
        sets["class means of held-out points"] = (class_means(references.pool[drawn], references.pool_labels[drawn]),
                                                  targets)
    return sets


RKIP_FINITE_FILES = {"train": "train_checkpoint.npz", "model": "model.npz", "attack": "attack_checkpoint.npz",
                     "reconstructions": "reconstructions.npz", "stages": "rkip_finite_stages.json"}
"""The files of a resumable :func:`rkip_finite_experiment` in its ``folder``, one stage after another: training's
checkpoint, then the trained network (its training record in the stage file), the attack's checkpoint, then the
reconstructions (X_R, y_R), and the stage file with each fresh network's accuracy as it is found."""
RKIP_FINITE_NETWORK_SEEDS = (100, 101, 102)
"""Init seeds of the fresh networks of :func:`rkip_finite_experiment`."""


def _write_json(path, record: dict[str, Any]) -> None:
    """``record`` as JSON, written under a temporary name and renamed (the file exists only complete)."""
    import json
    from pathlib import Path

    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record, indent=1))
    os.replace(temporary, path)


def rkip_finite_stages(folder) -> dict[str, Any]:
    """The stages a resumable :func:`rkip_finite_experiment` saved in ``folder`` (its stage file; {} when there is
    none or it cannot be read): "training" (the attacked network's training record, saved with model.npz),
    "attack" (the attack's record, saved with reconstructions.npz) and "networks" ({"original": [[accuracy,
    stop_reason], ...], "reconstructed": [...]}, the fresh networks done)."""
    import json
    from pathlib import Path

    path = Path(folder) / RKIP_FINITE_FILES["stages"]
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON (or a 5000-digit number), nested 10^5 deep
        return {}
    return record if isinstance(record, dict) else {}


def rkip_finite_experiment(arch: Architecture, *, n: int, n_recon: int, width: int, steps: int,
                           net_seeds: tuple[int, ...] = RKIP_FINITE_NETWORK_SEEDS, seed: int = 0,
                           train_steps: int = 5000, progress: bool = False, folder=None, resume: bool = False,
                           report=None) -> dict[str, Any]:
    """RKIP-finite on digits odd/even: train a linearized network of ``width`` on ``n`` digits (numerics.audit.train_on),
    distill it by the parameter-space attack with ``n_recon`` < n reconstructions (:func:`rkip_finite`, ``steps``
    Adam steps, box prior), then test accuracy of fresh networks (standard training, init seeds ``net_seeds``) and of
    kernel regression trained on (X_R, y_R), beside the same trained on the original n points and kernel regression
    on random subsets of n_recon original points (mean of 5). ``training`` says how each network's training
    stopped (numerics.training.TrainResult.stop_reason; "budget": ``train_steps`` ran out first).

    With ``folder`` every stage is saved there as it ends (:data:`RKIP_FINITE_FILES`): training and the attack keep
    their checkpoints (every chunk), the trained network, the reconstructions and each fresh network's accuracy
    their files. ``resume=True`` reads back the stages found (a stage counts only where every stage before it was
    read back) and continues the one in progress from its checkpoint; the caller makes sure that the folder's run
    had the same settings. Without ``resume`` every stage is computed afresh and its files replaced. Ctrl-C stops
    training or the attack after the current chunk, once saved (numerics.checkpoint.Interrupted), and the rest
    between stages (KeyboardInterrupt, numerics.checkpoint.raise_if_interrupted). ``report(message)`` is told
    which stages were read back."""
    from pathlib import Path

    from numerics import audit
    from numerics.checkpoint import raise_if_interrupted
    from numerics.data import digits
    from numerics.training import linearized_apply, load_model

    say = report or (lambda message: None)
    paths = None if folder is None else {key: Path(folder) / name for key, name in RKIP_FINITE_FILES.items()}
    stages = rkip_finite_stages(folder) if paths is not None and resume else {}
    record: dict[str, Any] = {}

    def save_stages():
        if paths is not None:
            _write_json(paths["stages"], record)
        raise_if_interrupted()  # a Ctrl-C that Python discarded during the stage stops here, once it is saved

    data = digits(task="odd_even", n=n, seed=seed)
    test = digits(task="odd_even", split="test")
    model_read = "training" in stages and paths["model"].is_file()  # each stage only after the ones before it
    if model_read:
        saved = load_model(paths["model"])
        params_0, params_f = saved.params_0, saved.params_f
        record["training"] = stages["training"]
        say(f"the trained network: read back from {paths['model']}")
    else:
        trained = audit.train_on(arch, width, data, linearized=True, seed=seed, max_steps=train_steps,
                                 progress=progress, checkpoint=None if paths is None else paths["train"],
                                 resume=resume)
        params_0, params_f = trained.params_0, trained.params_f
        record["training"] = {"steps": trained.steps, "final_loss": trained.final_loss,
                              "stop_reason": trained.stop_reason}
        if paths is not None:
            trained.save(paths["model"], training_data=("digits-odd-even", n, seed))
        save_stages()
    attack_read = model_read and "attack" in stages and paths["reconstructions"].is_file()
    if attack_read:
        with np.load(paths["reconstructions"], allow_pickle=False) as stored:
            x_r, y_r = np.asarray(stored["x"]), np.asarray(stored["y"])
        record["attack"] = stages["attack"]
        say(f"the reconstructions: read back from {paths['reconstructions']}")
    else:
        found = rkip_finite(arch, params_0, params_f, n_recon, in_dim=data.d, key=jax.random.PRNGKey(seed + 1),
                            steps=steps, box=data.box, progress=progress, chunk=100,
                            checkpoint=None if paths is None else paths["attack"], resume=resume and model_read)
        x_r, y_r = found.x, found.y
        record["attack"] = {"steps": found.attack.steps,
                            "relative_attack_loss": found.attack.final_loss / found.attack.info["delta_theta_sqnorm"]}
        if paths is not None:
            temporary = paths["reconstructions"].with_name(paths["reconstructions"].name + ".tmp")
            with open(temporary, "wb") as handle:
                np.savez(handle, x=x_r, y=y_r)
            os.replace(temporary, paths["reconstructions"])
        save_stages()
    rng = np.random.default_rng(seed)
    subsets = [rng.choice(n, n_recon, replace=False) for _ in range(5)]
    model = linearized_apply(audit.make_network(arch, width, 1).apply_fn, params_0)
    out: dict[str, Any] = {
        "N": n, "M": n_recon, "width": width, "attack_steps": steps, "seed": seed,
        "label_factor": "y_R = K_thetaf(X_R, X_R) lambda",
        "relative_attack_loss": record["attack"]["relative_attack_loss"],
        "trained_network": accuracy(np.asarray(model(params_f, jnp.asarray(test.x))), test.labels),
        "krr_original": support_accuracy(arch, data.x, data.y, test.x, test.labels),
        "krr_reconstructed": support_accuracy(arch, x_r, y_r, test.x, test.labels),
        "krr_random_subset": float(np.mean([support_accuracy(arch, data.x[i], data.y[i], test.x, test.labels)
                                            for i in subsets])),
    }
    out["training"] = {"attacked": dict(record["training"])}
    done = stages.get("networks", {}) if attack_read else {}
    record["networks"] = {}
    for name, (x, y) in {"original": (data.x, data.y), "reconstructed": (x_r, y_r)}.items():
        kept = [tuple(entry) for entry in done.get(name, [])][:len(net_seeds)]
        if kept:
            say(f"{len(kept)} fresh network(s) trained on the {name} points: read back")
        record["networks"][name] = [list(entry) for entry in kept]
        for s in net_seeds[len(kept):]:
            kept.append(network_accuracy(arch, width, x, y, test.x, test.labels, seed=s, max_steps=train_steps))
            record["networks"][name].append(list(kept[-1]))
            save_stages()
        out[f"networks_{name}"] = [float(acc) for acc, _ in kept]
        out["training"][f"networks_{name}"] = [str(reason) for _, reason in kept]
    out["gap_points"] = 100 * (np.mean(out["networks_original"]) - np.mean(out["networks_reconstructed"]))
    return out
