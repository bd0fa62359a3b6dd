"""Omission costs and leave-one-out residuals of kernel interpolation (docs/claims.md#t2).

Loo et al. 2023 (arXiv:2302.01428), Sec. 5: with the attack's candidates restricted to the training points,
leaving out the subset O costs (block inversion: the Schur complement of K_RR in K, R the kept points)

    c_O = tr alpha_O^T [(K^-1)_OO]^-1 alpha_O ,

and for one point c_i = |alpha_i|^2 / (K^-1)_ii = <alpha_i, r_i> with r_i = alpha_i / (K^-1)_ii the
leave-one-out residual (the target y_i = (K alpha)_i minus the prediction at x_i of the interpolant fitted on
the other N - 1 points). Everything is computed in float64 from one Cholesky factor of K.

Example:
    >>> import numpy as np
    >>> from numerics.omission import omission_cost, omission_costs
    >>> kernel = np.array([[2.0, 0.5], [0.5, 1.0]]); alpha = np.array([1.0, -1.0])
    >>> bool(np.isclose(omission_cost(kernel, alpha, [0]), omission_costs(kernel, alpha)[0]))
    True
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.linalg

SYMMETRY_TOLERANCE = 1e-10
"""Relative asymmetry max |K - K^T| / max |K| accepted: analytic Gram matrices are symmetric to ~1e-16
(measured on relu:2 NTKs); a transposed or mixed-up block is O(1) off."""


def _kernel(kernel_tt: Any) -> np.ndarray:
    kernel = np.asarray(kernel_tt, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] == 0:
        raise ValueError(f"kernel_tt must be a nonempty square matrix (N, N), got shape {kernel.shape}")
    if not np.all(np.isfinite(kernel)):
        raise ValueError("kernel_tt contains NaN or inf")
    scale = float(np.max(np.abs(kernel)))
    asymmetry = float(np.max(np.abs(kernel - kernel.T)))
    if asymmetry > SYMMETRY_TOLERANCE * scale:
        raise ValueError(f"kernel_tt is not symmetric (max |K - K^T| = {asymmetry:.3g} of max |K| = {scale:.3g})")
    return kernel


def _alpha(alpha: Any, n: int) -> np.ndarray:
    values = np.asarray(alpha, dtype=np.float64)
    if values.ndim not in (1, 2) or values.shape[0] != n:
        raise ValueError(f"alpha must have shape (N,) or (N, C) with N = {n}, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("alpha contains NaN or inf")
    return values


def _cholesky(kernel: np.ndarray) -> tuple[np.ndarray, bool]:
    try:
        return scipy.linalg.cho_factor(kernel, lower=True)
    except np.linalg.LinAlgError:
        raise ValueError("kernel_tt is not positive definite (Cholesky failed): duplicated training points or a "
                         "rank-deficient kernel; merge duplicates or add a ridge") from None


def _omitted(omit: Any, n: int) -> np.ndarray:
    index = np.atleast_1d(np.asarray(omit))
    if index.ndim != 1 or index.size == 0:
        raise ValueError(f"omit must be a nonempty sequence of indices, got {omit!r}")
    if index.dtype == bool:
        raise ValueError("omit must hold integer indices, not a boolean mask")
    if not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"omit must hold integer indices, got dtype {index.dtype}")
    if np.any(index < 0) or np.any(index >= n):
        raise ValueError(f"omit indices must lie in [0, {n}), got {index.tolist()}")
    if np.unique(index).size != index.size:
        raise ValueError(f"omit has repeated indices: {index.tolist()}")
    return index


def inverse_diagonal(kernel_tt: Any) -> np.ndarray:
    """diag(K^-1) = squared column norms of L^-1 for K = L L^T."""
    kernel = _kernel(kernel_tt)
    lower, _ = _cholesky(kernel)
    inverse_lower = scipy.linalg.solve_triangular(lower, np.eye(kernel.shape[0]), lower=True)
    return np.sum(inverse_lower**2, axis=0)


def omission_cost(kernel_tt: Any, alpha: Any, omit: Sequence[int]) -> float:
    """tr alpha_O^T [(K^-1)_OO]^-1 alpha_O: the attack's best loss when the candidates are the training points
    without O (T2; block inversion). ``alpha`` is (N,) or (N, C); omitting every point gives tr alpha^T K alpha."""
    kernel = _kernel(kernel_tt)
    n = kernel.shape[0]
    values = _alpha(alpha, n).reshape(n, -1)
    index = _omitted(omit, n)
    factor = _cholesky(kernel)
    selector = np.zeros((n, index.size))
    selector[index, np.arange(index.size)] = 1.0
    inverse_block = scipy.linalg.cho_solve(factor, selector)[index]
    inverse_block = (inverse_block + inverse_block.T) / 2
    alpha_o = values[index]
    block_factor = scipy.linalg.cho_factor(inverse_block, lower=True)
    return float(np.sum(alpha_o * scipy.linalg.cho_solve(block_factor, alpha_o)))


def omission_costs(kernel_tt: Any, alpha: Any) -> np.ndarray:
    """c_i = |alpha_i|^2 / (K^-1)_ii for every training point (T2), shape (N,)."""
    kernel = _kernel(kernel_tt)
    values = _alpha(alpha, kernel.shape[0]).reshape(kernel.shape[0], -1)
    return np.sum(values**2, axis=1) / inverse_diagonal(kernel)


def loo_residuals(kernel_tt: Any, alpha: Any) -> np.ndarray:
    """r_i = alpha_i / (K^-1)_ii: y_i minus the prediction at x_i of the kernel interpolant of (X_T without x_i,
    y without y_i), y = K alpha. Same shape as ``alpha``."""
    kernel = _kernel(kernel_tt)
    values = _alpha(alpha, kernel.shape[0])
    diagonal = inverse_diagonal(kernel)
    return values / (diagonal if values.ndim == 1 else diagonal[:, None])


def loo_residuals_by_refit(kernel_tt: Any, targets: Any) -> np.ndarray:
    """The definition of r_i, by N refits: y_i - K_{i,-i} K_{-i,-i}^-1 y_{-i} (O(N^4); for checks)."""
    kernel = _kernel(kernel_tt)
    n = kernel.shape[0]
    y = _alpha(targets, n)
    residuals = np.empty_like(y)
    for i in range(n):
        keep = np.delete(np.arange(n), i)
        factor = _cholesky(kernel[np.ix_(keep, keep)])
        residuals[i] = y[i] - kernel[i, keep] @ scipy.linalg.cho_solve(factor, y[keep])
    return residuals
