"""Kernel computations over many devices and in bounded memory: Gram matrices, kernel regression, target-set sums.

The same code runs on one CPU, on several GPUs of one host and on several hosts: every function takes a
``jax.sharding.Mesh`` with one axis, ``"points"`` (:func:`points_mesh`), shards the rows of its first point set
over it (``NamedSharding(mesh, P("points"))``) and replicates the rest; inside, ``shard_map`` runs the per-block
computation on each device and ``psum`` adds the partial sums. A point count that the device count does not divide
is padded with copies of the first row, whose results are dropped (rows) or weighted by zero (sums).

Multi-GPU host: ``points_mesh()`` takes every local GPU. Several hosts: call ``jax.distributed.initialize()`` on
each (coordinator address, process count and id, or the cluster's environment variables) before anything else;
``jax.devices()`` then lists every host's devices and ``points_mesh()`` spans them all (see README).

The distillation losses are numerics.distill's own (:func:`sharded_kip_loss`, :func:`sharded_rkip_loss`: its
``kip_loss`` / ``rkip_loss`` over its ``target_blocks`` layout, the block axis sharded); nothing here redefines them.

Kernels are any ``kernel(x1, x2) -> (n1, n2)`` function, e.g. ``lambda a, b: analytic_ntk(arch, a, b)``.

Memory bounds (float64, 8 bytes a number):
- :func:`blocked_gram`: the (n1, n2) result plus one block's work, ``block * n2 * W`` numbers, W the kernel's
  intermediate arrays per entry (about 10 for the analytic ReLU NTK of numerics.kernels);
- :func:`blocked_matvec` (K v without K): ``block * n2 * W`` numbers, the (n1, n2) matrix is never formed;
- sharded functions: the same per device, with n1 / devices rows each.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.shard_map import shard_map
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from numerics import distill
from theory.architecture import Architecture

Kernel = Callable[[jax.Array, jax.Array], jax.Array]
AXIS = "points"


def points_mesh(devices=None) -> Mesh:
    """A one-axis mesh ("points") over ``devices`` (default: every device JAX sees, on every host)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (AXIS,))


def _pad_rows(x: jax.Array, multiple: int) -> tuple[jax.Array, int]:
    n = x.shape[0]
    extra = (-n) % multiple
    if extra:
        x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (extra, *x.shape[1:]))])
    return x, n


def _sharded_rows(mesh: Mesh, x: jax.Array) -> tuple[jax.Array, int]:
    padded, n = _pad_rows(jnp.asarray(x), mesh.size)
    return jax.device_put(padded, NamedSharding(mesh, P(AXIS))), n


def sharded_gram(kernel: Kernel, x1: jax.Array, x2: jax.Array, mesh: Mesh, *, block: int | None = None) -> jax.Array:
    """K(x1, x2), (n1, n2), rows of x1 sharded over ``mesh`` (x2 replicated); each device evaluates its rows in
    blocks of ``block`` (:func:`blocked_gram`)."""
    rows, n = _sharded_rows(mesh, x1)
    x2 = jax.device_put(jnp.asarray(x2), NamedSharding(mesh, P()))
    local = (lambda a, b: blocked_gram(kernel, a, b, block=block)) if block else kernel
    gram = shard_map(local, mesh=mesh, in_specs=(P(AXIS), P()), out_specs=P(AXIS), check_rep=False)(rows, x2)
    return gram[:n]


def sharded_predict(kernel: Kernel, x_test: jax.Array, x_train: jax.Array, coefficients: jax.Array, mesh: Mesh, *,
                    block: int | None = None) -> jax.Array:
    """Kernel regression f(x_test) = K(x_test, x_train) coefficients (coefficients = (K + ridge I)^-1 y, e.g. by
    :func:`kernel_ridge_solve`), test rows sharded over ``mesh``; with ``block`` each device never holds more than
    ``block`` rows of K(x_test, x_train)."""
    rows, n = _sharded_rows(mesh, x_test)
    replicated = NamedSharding(mesh, P())
    x_train, coefficients = (jax.device_put(jnp.asarray(a), replicated) for a in (x_train, coefficients))

    def local(a, b, c):
        return blocked_matvec(kernel, a, b, c, block=block or a.shape[0])

    out = shard_map(local, mesh=mesh, in_specs=(P(AXIS), P(), P()), out_specs=P(AXIS), check_rep=False)(
        rows, x_train, coefficients)
    return out[:n]


def sharded_sum(per_row: Callable[..., jax.Array], rows: tuple[jax.Array, ...], replicated: tuple, mesh: Mesh) -> jax.Array:
    """sum_i per_row(rows_block, *replicated)[i] over every row i of the arrays in ``rows`` (which share their row
    count), the rows sharded over ``mesh``: each device sums its block, ``psum`` adds the blocks. ``per_row`` maps
    blocks of rows (and the replicated arguments) to one value per row; padded rows are weighted by zero.
    Used for losses that are sums over a target set."""
    padded = [_pad_rows(jnp.asarray(r), mesh.size)[0] for r in rows]
    n = rows[0].shape[0]
    weights = (jnp.arange(padded[0].shape[0]) < n).astype(padded[0].dtype)
    sharded = [jax.device_put(r, NamedSharding(mesh, P(AXIS))) for r in (*padded, weights)]
    fixed = [jax.device_put(jnp.asarray(a), NamedSharding(mesh, P())) for a in replicated]

    def local(*args):
        blocks, weight, rest = args[:len(rows)], args[len(rows)], args[len(rows) + 1:]
        return jax.lax.psum(jnp.sum(weight * per_row(*blocks, *rest)), AXIS)

    specs = (*(P(AXIS),) * (len(rows) + 1), *(P(),) * len(fixed))
    return shard_map(local, mesh=mesh, in_specs=specs, out_specs=P(), check_rep=False)(*sharded, *fixed)


def sharded_block_mean(loss_of_blocks: Callable[..., jax.Array], x_blocks: jax.Array, value_blocks: jax.Array,
                       mask: jax.Array, replicated: tuple, mesh: Mesh) -> jax.Array:
    """A loss that is a masked mean over blocks of a target set, with the block axis sharded over ``mesh``.

    ``loss_of_blocks(x_blocks, value_blocks, mask, *replicated)`` takes (B, b, d), (B, b, C), (B, b) blocks (mask 1
    for a real row, 0 for padding) and returns sum_i mask_i l_i / sum_i mask_i (e.g. numerics.distill's KIP loss,
    whose target blocks come from its ``target_blocks``). Each device evaluates it on its blocks; the device means
    L_d are recombined with their row counts N_d: L = sum_d N_d L_d / sum_d N_d. A device holding padding alone
    evaluates a dummy all-ones mask whose value is discarded (no 0 / 0, no NaN gradient).
    """
    blocks = x_blocks.shape[0]
    extra = (-blocks) % mesh.size
    if extra:
        x_blocks = jnp.concatenate([x_blocks, jnp.broadcast_to(x_blocks[:1], (extra, *x_blocks.shape[1:]))])
        value_blocks = jnp.concatenate([value_blocks, jnp.zeros((extra, *value_blocks.shape[1:]), value_blocks.dtype)])
        mask = jnp.concatenate([mask, jnp.zeros((extra, *mask.shape[1:]), mask.dtype)])
    rows = NamedSharding(mesh, P(AXIS))
    sharded = [jax.device_put(a, rows) for a in (x_blocks, value_blocks, mask)]
    fixed = [jax.device_put(jnp.asarray(a), NamedSharding(mesh, P())) for a in replicated]

    def local(xb, vb, mb, *rest):
        count = jnp.sum(mb)
        real = count > 0
        value = loss_of_blocks(xb, vb, jnp.where(real, mb, jnp.ones_like(mb)), *rest)
        return jax.lax.psum(jnp.where(real, value * count, 0.0), AXIS) / jax.lax.psum(count, AXIS)

    specs = (P(AXIS), P(AXIS), P(AXIS), *(P(),) * len(fixed))
    return shard_map(local, mesh=mesh, in_specs=specs, out_specs=P(), check_rep=False)(*sharded, *fixed)


def sharded_kip_loss(arch: Architecture, x_support: jax.Array, y_support: jax.Array, x_blocks: jax.Array,
                     y_blocks: jax.Array, mask: jax.Array, mesh: Mesh, *,
                     ridge_factor: float = distill.RIDGE_FACTOR) -> jax.Array:
    """numerics.distill's :func:`~numerics.distill.kip_loss` (the one definition of the KIP loss, a masked mean over
    the target blocks of ``distill.target_blocks``) with the block axis sharded over ``mesh``
    (:func:`sharded_block_mean`). Differentiable in (X_S, y_S); equals the one-device value up to the order of the
    partial sums."""
    def local(xb, yb, mb, xs, ys):
        return distill.kip_loss(arch, xs, ys, xb, yb, mb, ridge_factor=ridge_factor)

    return sharded_block_mean(local, x_blocks, y_blocks, mask, (x_support, y_support), mesh)


def sharded_rkip_loss(arch: Architecture, x_support: jax.Array, y_support: jax.Array, x_blocks: jax.Array,
                      alpha_blocks: jax.Array, mask: jax.Array, mesh: Mesh, *, alpha_norm_sq: jax.Array | float,
                      ridge_factor: float = distill.RIDGE_FACTOR) -> jax.Array:
    """numerics.distill's :func:`~numerics.distill.rkip_loss`, a^2 - 2 sum_blocks cross_b + beta^T K_SS beta, with
    the block axis sharded over ``mesh``. Each device evaluates distill's loss on its blocks with alpha_norm_sq = 0,
    minus the same loss over no blocks (its K_SS term): -2 cross_d; ``psum`` adds those and the support term is
    added once. Round-off: absolute, about devices * eps * (beta^T K_SS beta)."""
    blocks = x_blocks.shape[0]
    extra = (-blocks) % mesh.size
    if extra:
        x_blocks = jnp.concatenate([x_blocks, jnp.broadcast_to(x_blocks[:1], (extra, *x_blocks.shape[1:]))])
        alpha_blocks = jnp.concatenate([alpha_blocks, jnp.zeros((extra, *alpha_blocks.shape[1:]), alpha_blocks.dtype)])
        mask = jnp.concatenate([mask, jnp.zeros((extra, *mask.shape[1:]), mask.dtype)])

    def rkip(xs, ys, xb, ab, mb):
        return distill.rkip_loss(arch, xs, ys, xb, ab, mb, alpha_norm_sq=0.0, ridge_factor=ridge_factor)

    def local(xb, ab, mb, xs, ys):
        return jax.lax.psum(rkip(xs, ys, xb, ab, mb) - rkip(xs, ys, xb[:0], ab[:0], mb[:0]), AXIS)

    rows = NamedSharding(mesh, P(AXIS))
    sharded = [jax.device_put(a, rows) for a in (x_blocks, alpha_blocks, mask)]
    fixed = [jax.device_put(jnp.asarray(a), NamedSharding(mesh, P())) for a in (x_support, y_support)]
    cross = shard_map(local, mesh=mesh, in_specs=(P(AXIS), P(AXIS), P(AXIS), P(), P()), out_specs=P(),
                      check_rep=False)(*sharded, *fixed)
    return alpha_norm_sq + cross + rkip(x_support, y_support, x_blocks[:0], alpha_blocks[:0], mask[:0])


# ---------------------------------------------------------------------------------------------------------
# Bounded memory on one device
# ---------------------------------------------------------------------------------------------------------

def _row_blocks(x: jax.Array, block: int) -> tuple[jax.Array, int]:
    padded, n = _pad_rows(x, block)
    return padded.reshape(-1, block, *x.shape[1:]), n


def blocked_gram(kernel: Kernel, x1: jax.Array, x2: jax.Array, *, block: int = 1024) -> jax.Array:
    """K(x1, x2) evaluated ``block`` rows at a time (lax.map): peak memory is the result plus one block's
    intermediates (module docstring), whatever n1."""
    blocks, n = _row_blocks(jnp.asarray(x1), min(block, x1.shape[0]))
    return jax.lax.map(lambda a: kernel(a, x2), blocks).reshape(-1, x2.shape[0])[:n]


def blocked_matvec(kernel: Kernel, x1: jax.Array, x2: jax.Array, v: jax.Array, *, block: int = 1024) -> jax.Array:
    """K(x1, x2) v, ``block`` rows of K at a time; K itself is never formed (memory block * n2 * W numbers)."""
    blocks, n = _row_blocks(jnp.asarray(x1), min(block, x1.shape[0]))
    return jax.lax.map(lambda a: kernel(a, x2) @ v, blocks).reshape(-1, *v.shape[1:])[:n]


def kernel_ridge_solve(gram: jax.Array, y: jax.Array, *, ridge: float, refinements: int = 2) -> jax.Array:
    """(K + ridge I)^-1 y by Cholesky with ``refinements`` steps of iterative refinement (x += solve(r), r = y -
    (K + ridge I) x): each step cuts the error by about cond * eps (Higham, Accuracy and Stability of Numerical
    Algorithms, Ch. 12), which matters when K is ill-conditioned."""
    matrix = gram + ridge * jnp.eye(gram.shape[0], dtype=gram.dtype)
    factor = jax.scipy.linalg.cho_factor(matrix, lower=True)
    x = jax.scipy.linalg.cho_solve(factor, y)
    for _ in range(refinements):
        x = x + jax.scipy.linalg.cho_solve(factor, y - matrix @ x)
    return x


def kernel_ridge_cg(kernel: Kernel, x: jax.Array, y: jax.Array, *, ridge: float, block: int = 1024,
                    tol: float = 1e-10, maxiter: int | None = None) -> jax.Array:
    """(K(x, x) + ridge I)^-1 y by conjugate gradients with blocked matrix-vector products: for N too large to
    hold K (memory block * N * W numbers instead of N^2); converges in about sqrt(cond) log(1/tol) iterations."""
    def matvec(v):
        return blocked_matvec(kernel, x, x, v, block=block) + ridge * v

    solution, _ = jax.scipy.sparse.linalg.cg(matvec, y, tol=tol, maxiter=maxiter)
    return solution
