"""How far training left the frozen-NTK regime: kernel distance, parameter movement, and the part of the
update that no NTK attack can explain.

Three numbers for a trained network theta_0 -> theta_f on its training set X (N points, C outputs),
with J_theta(X) the (N C x P) Jacobian and K_theta = J_theta J_theta^T the empirical NTK:

- kernel distance (Fort et al. 2020, "Deep learning versus kernel learning", eq. 3)::

      d(K_0, K_f) = 1 - <K_0, K_f>_F / (||K_0||_F ||K_f||_F)

  0 when K_f is a positive multiple of K_0 (the kernel only rescaled), at most 1 for PSD kernels;
- relative parameter movement ||theta_f - theta_0|| / ||theta_0||;
- relative span residual ||Delta theta - J_0^T a*|| / ||Delta theta||, a* = argmin_a ||Delta theta - J_0^T a||
  (least squares): the part of the update outside span{grad_theta f_0(x_i)}. The attack of Loo et al.
  (arXiv:2302.01428) models Delta theta = J_0(X_T)^T alpha, so this part is what no attack in that model
  explains. It is 0 (to round-off) for linearized training, whose every step lies in the row space of J_0
  (:mod:`numerics.training`).

The least-squares problem is solved in the dual (N C unknowns), never with the P-column Jacobian: the normal
equations K_0 a = J_0 Delta theta (J_0 Delta theta by one JVP), a by an eigendecomposition of K_0 with
eigenvalues below ``rcond`` lambda_max dropped (numpy's lstsq convention), and the residual formed
explicitly as Delta theta - J_0^T a (one VJP) so that it does not suffer the cancellation of
||Delta theta||^2 - ||projection||^2.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from numerics.networks import Network, Params
from numerics.training import as_float64, flatten_params, jacobian_transpose_times, ntk_matrix, param_difference

RCOND = 1e-12
"""Eigenvalues of K_0 below RCOND * lambda_max are treated as zero in the least-squares solve (float64 with
cond(K_0) up to ~1e10 measured on the sweep's cells; a K_0 that is singular has its null space dropped)."""


def kernel_distance(k_0: Any, k_f: Any) -> float:
    """1 - <K_0, K_f>_F / (||K_0||_F ||K_f||_F) (Fort et al. 2020); ValueError for a zero or non-finite kernel."""
    a = np.asarray(k_0, dtype=np.float64)
    b = np.asarray(k_f, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"kernels must be matrices of the same shape, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("kernels must be finite")
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        raise ValueError("a zero kernel has no direction: the kernel distance is undefined")
    return float(1.0 - np.sum(a * b) / norms)


def relative_movement(params_0: Params, params_f: Params) -> float:
    """||theta_f - theta_0|| / ||theta_0|| over all parameters."""
    delta = flatten_params(param_difference(params_f, params_0))
    return float(jnp.linalg.norm(delta) / jnp.linalg.norm(flatten_params(params_0)))


def span_residual(network: Network, params_0: Params, params_f: Params, x: Any, *,
                  rcond: float = RCOND) -> float:
    """||Delta theta - J_0^T a*|| / ||Delta theta|| with a* the least-squares coefficients (module docstring).

    nan when Delta theta = 0 (no update: nothing to explain)."""
    x = jnp.asarray(x, dtype=jnp.float64)
    params_0, params_f = as_float64(params_0), as_float64(params_f)
    delta = param_difference(params_f, params_0)
    norm = float(jnp.linalg.norm(flatten_params(delta)))
    if norm == 0:
        return float("nan")
    _, j_delta = jax.jvp(lambda p: network.apply(p, x), (params_0,), (delta,))     # J_0 Delta theta, (N, C)
    kernel = np.asarray(ntk_matrix(network, params_0, x))                          # (N C, N C), sample-major
    eigenvalues, vectors = np.linalg.eigh(kernel)
    keep = eigenvalues > rcond * eigenvalues[-1]
    rhs = vectors.T @ np.asarray(j_delta).reshape(-1)
    coefficients = vectors[:, keep] @ (rhs[keep] / eigenvalues[keep])
    projection = jacobian_transpose_times(network.apply, params_0, x, coefficients.reshape(j_delta.shape))
    residual = flatten_params(delta) - flatten_params(projection)
    return float(jnp.linalg.norm(residual) / norm)


@dataclasses.dataclass(frozen=True)
class Movement:
    """The three measures of :mod:`numerics.movement` for one trained network."""

    kernel_distance: float
    relative_movement: float
    span_residual: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def measure(network: Network, params_0: Params, params_f: Params, x: Any) -> Movement:
    """Kernel distance between K_{theta_0} and K_{theta_f} on ``x`` (the network's own empirical NTK at both;
    1 when K_f vanished), relative parameter movement and relative span residual."""
    x = jnp.asarray(x, dtype=jnp.float64)
    params_0, params_f = as_float64(params_0), as_float64(params_f)
    k_0 = ntk_matrix(network, params_0, x)
    k_f = ntk_matrix(network, params_f, x)
    # a network whose every unit died on the training set has K_f = 0: no direction left, counted as the
    # largest distance, 1 (measured: width-16 relu networks trained at step 1 / lambda_max(K_0) end so)
    vanished = not np.any(np.asarray(k_f))
    return Movement(kernel_distance=1.0 if vanished else kernel_distance(k_0, k_f),
                    relative_movement=relative_movement(params_0, params_f),
                    span_residual=span_residual(network, params_0, params_f, x))
