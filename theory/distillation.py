"""Omission costs (T2) and reconstruction as distillation (T3), as symbolic certificates (sympy only).

Loo et al. 2023 (arXiv:2302.01428), Sec. 5-6. With candidates restricted to training points, leaving out a
subset O of the N training points costs (block inversion; the Schur complement of K_RR in K, R the kept points)

    L*(X_T without O) = alpha^T (K - K_:R K_RR^-1 K_R:) alpha = alpha_O^T [(K^-1)_OO]^-1 alpha_O ,      (T2)

and for one point c_i = alpha_i^2 / (K^-1)_ii = alpha_i r_i with r_i = alpha_i / (K^-1)_ii the leave-one-out
residual of kernel interpolation (y = K alpha; r_i = y_i - K_iR K_RR^-1 y_R).

For M < N reconstructions X_S with coefficients lambda, the labels y_S = K_SS lambda turn the attack loss into
the RKIP loss (kernel inducing points measured in the RKHS norm):

    L(X_S, lambda) = ||f_T - f_S||_H^2 ,   f_T = Theta(., X_T) alpha,  f_S = Theta(., X_S) K_SS^-1 y_S .     (T3)

Consequences, with g = f_T - f_S: (a) |g(x)| = |<g, Theta(x, .)>_H| <= sqrt(L) sqrt(Theta(x, x)) (reproducing
property and Cauchy-Schwarz); (b) when f_T interpolates y on X_T, the KIP error ||y - f_S(X_T)||^2 =
||g(X_T)||^2 <= lambda_max(K_TT) L (Rayleigh quotient).

A kernel is written through features, K(A, B) = J_A J_B^T (J symbolic): every PSD Gram matrix has this form,
and an inequality becomes an identity ``bound - value == explicit sum of squares`` (Lagrange's identity for
(a); a singular-value parametrization J_T = Q diag(s) R^T, with orthogonal Q, R from Cayley transforms, for
(b)). Each certificate is a :class:`~theory.reconstruction.Certificate` (simplified residual 0 proves it at
the stated sizes); :func:`rational_evaluations` evaluates the same quantities at random exact rationals.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Sequence

import sympy as sp

from theory.reconstruction import (Certificate, first_nonzero, scalar_entry, symbolic_matrix, symbolic_symmetric,
                                   symbolic_vector)


def _zero(expression: sp.Expr) -> sp.Expr:
    return sp.cancel(sp.together(expression))


def _matrix_certificate(name: str, difference: sp.Matrix, simplify=_zero) -> Certificate:
    """A matrix identity ``difference == 0``: the expression is the unsimplified sum of squared entries (so the
    spot check sees every entry), the residual the first entry that does not simplify to 0."""
    expression = sum(entry**2 for entry in difference)
    return Certificate(name, expression, first_nonzero(difference.applyfunc(simplify)))


# ------------------------------------------------------------------------------------------------
# The formulas (shared by the certificates and the exact-rational evaluations)
# ------------------------------------------------------------------------------------------------

def schur_loss(kernel: sp.Matrix, alpha: sp.Matrix, omit: Sequence[int]) -> sp.Expr:
    """alpha^T (K - K_:R K_RR^-1 K_R:) alpha: the attack's profiled loss with the kept points R as candidates
    (docs/claims.md#r1)."""
    keep = [i for i in range(kernel.rows) if i not in set(omit)]
    k_all_r = kernel.extract(list(range(kernel.rows)), keep)
    k_rr = kernel.extract(keep, keep)
    return scalar_entry(alpha.T * (kernel - k_all_r * k_rr.inv() * k_all_r.T) * alpha)


def omission_cost(kernel: sp.Matrix, alpha: sp.Matrix, omit: Sequence[int]) -> sp.Expr:
    """alpha_O^T [(K^-1)_OO]^-1 alpha_O (T2)."""
    omit = list(omit)
    inverse_block = kernel.inv().extract(omit, omit)
    alpha_o = alpha.extract(omit, [0])
    return scalar_entry(alpha_o.T * inverse_block.inv() * alpha_o)


def loo_residual(kernel: sp.Matrix, alpha: sp.Matrix, i: int) -> sp.Expr:
    """r_i = y_i - K_iR K_RR^-1 y_R with y = K alpha: the target minus the prediction of the interpolant
    fitted on the other points."""
    y = kernel * alpha
    keep = [j for j in range(kernel.rows) if j != i]
    k_ir = kernel.extract([i], keep)
    k_rr = kernel.extract(keep, keep)
    return y[i] - scalar_entry(k_ir * k_rr.inv() * y.extract(keep, [0]))


def attack_loss(k_tt: sp.Matrix, k_ts: sp.Matrix, k_ss: sp.Matrix, alpha: sp.Matrix, lam: sp.Matrix) -> sp.Expr:
    """alpha^T K_TT alpha - 2 alpha^T K_TS lambda + lambda^T K_SS lambda (the kernel form, R1)."""
    return scalar_entry(alpha.T * k_tt * alpha - 2 * alpha.T * k_ts * lam + lam.T * k_ss * lam)


def rkip_loss(k_tt: sp.Matrix, k_ts: sp.Matrix, k_ss: sp.Matrix, alpha: sp.Matrix, y_s: sp.Matrix) -> sp.Expr:
    """||f_T - f_S||_H^2 with f_S = Theta(., X_S) beta, beta = K_SS^-1 y_S, expanded by the reproducing
    property: <Theta(., a), Theta(., b)>_H = Theta(a, b)."""
    beta = k_ss.inv() * y_s
    return scalar_entry(alpha.T * k_tt * alpha - 2 * alpha.T * k_ts * beta + beta.T * k_ss * beta)


def kip_error(k_tt: sp.Matrix, k_ts: sp.Matrix, k_ss: sp.Matrix, alpha: sp.Matrix, y_s: sp.Matrix) -> sp.Expr:
    """sum_i (y_i - f_S(x_i))^2 with y = K_TT alpha (f_T interpolates y) and no ridge."""
    error = k_tt * alpha - k_ts * k_ss.inv() * y_s
    return scalar_entry(error.T * error)


# ------------------------------------------------------------------------------------------------
# T2 certificates
# ------------------------------------------------------------------------------------------------

def omission_certificates(*, n_train: int = 3) -> list[Certificate]:
    """Leaving out O costs alpha_O^T [(K^-1)_OO]^-1 alpha_O, for every nonempty proper O (symbolic symmetric
    K, n_train x n_train)."""
    kernel, alpha = symbolic_symmetric("K", n_train), symbolic_vector("alpha", n_train)
    certificates = []
    for size in range(1, n_train):
        for omit in itertools.combinations(range(n_train), size):
            expression = schur_loss(kernel, alpha, omit) - omission_cost(kernel, alpha, omit)
            certificates.append(Certificate(f"Schur loss = alpha_O^T [(K^-1)_OO]^-1 alpha_O, O = {set(omit)} "
                                            f"(N={n_train})", expression, _zero(expression)))
    return certificates


def loo_certificates(*, n_train: int = 3) -> list[Certificate]:
    """r_i = alpha_i / (K^-1)_ii, hence c_i = alpha_i^2 / (K^-1)_ii = alpha_i r_i (symbolic K)."""
    kernel, alpha = symbolic_symmetric("K", n_train), symbolic_vector("alpha", n_train)
    inverse = kernel.inv()
    residual = loo_residual(kernel, alpha, 0)
    identity = residual - alpha[0] / inverse[0, 0]
    cost = omission_cost(kernel, alpha, [0]) - alpha[0] * residual
    return [Certificate(f"LOO residual r_0 = alpha_0 / (K^-1)_00 (N={n_train})", identity, _zero(identity)),
            Certificate(f"c_0 = alpha_0 r_0 (N={n_train})", cost, _zero(cost))]


# ------------------------------------------------------------------------------------------------
# T3 certificates
# ------------------------------------------------------------------------------------------------

def _feature_kernels(n_train: int, n_distilled: int, n_features: int):
    j_t, j_s = symbolic_matrix("JT", n_train, n_features), symbolic_matrix("JS", n_distilled, n_features)
    return j_t, j_s, j_t * j_t.T, j_t * j_s.T, j_s * j_s.T


def rkip_certificates(*, n_train: int = 3, n_distilled: int = 2) -> list[Certificate]:
    """Attack loss = RKIP loss under y_S = K_SS lambda (symbolic symmetric kernels), and the RKIP loss is the
    squared feature-space distance ||J_T^T alpha - J_S^T beta||^2 (so it is the RKHS distance, >= 0). The inverse
    direction, L_RKIP(X_S, y_S) = L(X_S, K_SS^-1 y_S), is no certificate: both sides are the same expression by
    the definitions (0 before any simplification), so the bijection rests on K_SS^-1 K_SS = I in the first one."""
    k_tt, k_ss = symbolic_symmetric("KTT", n_train), symbolic_symmetric("KSS", n_distilled)
    k_ts = symbolic_matrix("KTS", n_train, n_distilled)
    alpha, lam = symbolic_vector("alpha", n_train), symbolic_vector("lambda", n_distilled)
    identity = attack_loss(k_tt, k_ts, k_ss, alpha, lam) - rkip_loss(k_tt, k_ts, k_ss, alpha, k_ss * lam)
    sizes = f"(N={n_train}, M={n_distilled})"
    j_t, j_s, f_tt, f_ts, f_ss = _feature_kernels(2, 1, 3)
    alpha_f, y_f = symbolic_vector("alpha", 2), symbolic_vector("yS", 1)
    difference = j_t.T * alpha_f - j_s.T * f_ss.inv() * y_f
    norm = rkip_loss(f_tt, f_ts, f_ss, alpha_f, y_f) - scalar_entry(difference.T * difference)
    return [
        Certificate(f"L(X_S, lambda) = L_RKIP(X_S, K_SS lambda) {sizes}", identity, _zero(identity)),
        Certificate("L_RKIP = ||J_T^T alpha - J_S^T K_SS^-1 y_S||^2 (features; N=2, M=1, P=3)", norm, _zero(norm)),
    ]


def pointwise_bound_certificate(*, n_train: int = 2, n_distilled: int = 1, n_features: int = 3) -> Certificate:
    """Bound (a): L Theta(x, x) - (f_T(x) - f_S(x))^2 = sum_{k<l} (u_k w_l - u_l w_k)^2 (Lagrange's identity),
    u = J_T^T alpha - J_S^T beta the feature vector of g = f_T - f_S, w = J_x^T the feature vector of
    Theta(x, .); so |g(x)| <= sqrt(L) sqrt(Theta(x, x))."""
    j_t, j_s, k_tt, k_ts, k_ss = _feature_kernels(n_train, n_distilled, n_features)
    j_x = symbolic_matrix("Jx", 1, n_features)
    alpha, beta = symbolic_vector("alpha", n_train), symbolic_vector("beta", n_distilled)
    loss = rkip_loss(k_tt, k_ts, k_ss, alpha, k_ss * beta)
    gap = scalar_entry(j_x * j_t.T * alpha - j_x * j_s.T * beta)
    theta_xx = scalar_entry(j_x * j_x.T)
    u, w = j_t.T * alpha - j_s.T * beta, j_x.T
    squares = sum((u[k] * w[l] - u[l] * w[k]) ** 2 for k, l in itertools.combinations(range(n_features), 2))
    expression = loss * theta_xx - gap**2 - squares
    return Certificate(f"(a) L Theta(x, x) - (f_T - f_S)(x)^2 = sum of squares (N={n_train}, M={n_distilled}, "
                       f"P={n_features})", expression, _zero(expression))


def _cayley(parameters: Sequence[sp.Symbol], size: int) -> sp.Matrix:
    """The orthogonal matrix (I - A)(I + A)^-1 of the skew-symmetric A filled with ``parameters``."""
    skew = sp.zeros(size, size)
    for (i, j), p in zip(itertools.combinations(range(size), 2), parameters):
        skew[i, j], skew[j, i] = p, -p
    identity = sp.eye(size)
    return (identity - skew) * (identity + skew).inv()


def kip_bound_certificates(*, n_train: int = 2, n_distilled: int = 1, n_features: int = 3) -> list[Certificate]:
    """Bound (b), as a chain of identities.

    1. With y = K_TT alpha (f_T interpolates) the KIP residual is g on the training set: y - f_S(X_T) = J_T u
       with u = J_T^T alpha - J_S^T beta, so the KIP error is |J_T u|^2, and L_RKIP = |u|^2.
    2. Every J_T is Q S R^T with Q, R orthogonal (here Cayley transforms, certified orthogonal) and S = diag(s)
       (N x P), s_0 the largest singular value (s_k^2 = s_0^2 - t_k^2). With J_T := Q S R^T (symbolic):
       K_TT = J_T J_T^T = Q diag(s^2) Q^T, so lambda_max = s_0^2; and with z = R^T u, |J_T u|^2 = |S z|^2 and
       |u|^2 = |z|^2 (each certified with J_T written out, so they use Q^T Q = I and R^T R = I).
    3. Rayleigh: s_0^2 |z|^2 - |S z|^2 = sum_{k>=1} t_k^2 z_k^2 + s_0^2 sum_{k>=N} z_k^2 >= 0.
    Together: KIP error = |J_T u|^2 = |S z|^2 <= s_0^2 |z|^2 = lambda_max(K_TT) L_RKIP.
    """
    j_t, j_s, k_tt, k_ts, k_ss = _feature_kernels(n_train, n_distilled, n_features)
    alpha, y_s = symbolic_vector("alpha", n_train), symbolic_vector("yS", n_distilled)
    beta = k_ss.inv() * y_s
    u = j_t.T * alpha - j_s.T * beta
    residual = k_tt * alpha - k_ts * beta
    value = kip_error(k_tt, k_ts, k_ss, alpha, y_s) - scalar_entry(u.T * j_t.T * j_t * u)
    loss = rkip_loss(k_tt, k_ts, k_ss, alpha, y_s) - scalar_entry(u.T * u)
    sizes = f"(N={n_train}, M={n_distilled}, P={n_features})"

    q = _cayley([sp.Symbol("q", real=True)], n_train)
    r = _cayley([sp.Symbol(f"r{k}", real=True) for k in range(n_features * (n_features - 1) // 2)], n_features)
    s0 = sp.Symbol("s0", positive=True)
    t = [sp.Symbol(f"t{k}", real=True) for k in range(1, n_train)]
    singular_sq = [s0**2] + [s0**2 - tk**2 for tk in t]
    s = sp.zeros(n_train, n_features)
    for k, value_sq in enumerate(singular_sq):
        s[k, k] = sp.sqrt(value_sq)
    z = symbolic_vector("z", n_features)
    squares = (sum(tk**2 * z[k + 1] ** 2 for k, tk in enumerate(t))
               + s0**2 * sum(z[k] ** 2 for k in range(n_train, n_features)))
    rayleigh = s0**2 * scalar_entry(z.T * z) - scalar_entry((s * z).T * (s * z)) - squares
    # J_T written as Q S R^T: the decomposition's identities use the orthogonality of Q and R, not s s^T alone
    factored = q * s * r.T
    v = symbolic_vector("v", n_features)
    z_of_v = r.T * v
    image = scalar_entry((factored * v).T * (factored * v)) - scalar_entry((s * z_of_v).T * (s * z_of_v))
    length = scalar_entry(v.T * v) - scalar_entry(z_of_v.T * z_of_v)
    return [
        _matrix_certificate(f"(b) y - f_S(X_T) = J_T u when y = K_TT alpha {sizes}", residual - j_t * u),
        Certificate(f"(b) KIP error = |J_T u|^2 {sizes}", value, _zero(value)),
        Certificate(f"(b) L_RKIP = |u|^2 {sizes}", loss, _zero(loss)),
        _matrix_certificate(f"(b) Q^T Q = I for the Cayley transform (N={n_train})", q.T * q - sp.eye(n_train)),
        _matrix_certificate(f"(b) R^T R = I for the Cayley transform (P={n_features})",
                            r.T * r - sp.eye(n_features)),
        _matrix_certificate(f"(b) J_T J_T^T = Q diag(s_0^2, s_0^2 - t^2) Q^T for J_T = Q S R^T (N={n_train}, "
                            f"P={n_features})", factored * factored.T - q * sp.diag(*singular_sq) * q.T),
        Certificate(f"(b) |J_T v|^2 = |S R^T v|^2 for J_T = Q S R^T (N={n_train}, P={n_features})", image,
                    _zero(image)),
        Certificate(f"(b) |v|^2 = |R^T v|^2 (P={n_features})", length, _zero(length)),
        Certificate(f"(b) s_0^2 |z|^2 - |diag(s) z|^2 = sum of squares (Rayleigh; N={n_train}, P={n_features})",
                    rayleigh, sp.expand(rayleigh)),
    ]


# ------------------------------------------------------------------------------------------------
# Exact-rational evaluations
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One exact evaluation: ``value`` is a sympy Rational; ``holds`` says whether the relation held exactly."""

    name: str
    value: sp.Rational
    relation: str
    holds: bool


def _rational(rng: random.Random, low: int = -4, high: int = 4) -> sp.Rational:
    return sp.Rational(rng.randint(low, high), rng.randint(1, 3))


def _rational_matrix(rng: random.Random, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: _rational(rng))


def _positive_definite(matrix: sp.Matrix) -> bool:
    """Sylvester's criterion, exactly."""
    return all(matrix[:k, :k].det() > 0 for k in range(1, matrix.rows + 1))


def rational_evaluations(seed: int, *, n_train: int = 4, n_distilled: int = 2, n_features: int = 7
                         ) -> list[Evaluation]:
    """The T2 and T3 relations at one random exact-rational instance: a Gram matrix K = J J^T + I/2 of
    rational features (strictly PD), rational alpha, lambda, y_S and a probe point x.

    - T2: Schur loss - omission cost == 0 for O = {0} and O = {0, 1}; LOO residual - alpha_0 / (K^-1)_00 == 0.
    - T3: attack loss - RKIP loss == 0; L Theta(x, x) - g(x)^2 >= 0; with r = KIP error / L, the matrix
      r I - K_TT is not PD (r <= lambda_max(K_TT), exactly, by Sylvester's criterion); and the converse's
      counterexample: labels y = K_TS beta give KIP error == 0 while L_RKIP > 0; and (b) again at a near-tight
      instance where only det(r I - K_TT) decides (:func:`_tight_kip_evaluations`).
    """
    rng = random.Random(seed)
    total = n_train + n_distilled + 1
    features = _rational_matrix(rng, total, n_features)
    gram = features * features.T + sp.eye(total) / 2
    t, s, x = list(range(n_train)), list(range(n_train, n_train + n_distilled)), [total - 1]
    k_tt, k_ts, k_ss = gram.extract(t, t), gram.extract(t, s), gram.extract(s, s)
    alpha, lam = _rational_matrix(rng, n_train, 1), _rational_matrix(rng, n_distilled, 1)
    while not any(alpha):
        alpha = _rational_matrix(rng, n_train, 1)
    out = []
    for omit in ([0], [0, 1]):
        difference = schur_loss(k_tt, alpha, omit) - omission_cost(k_tt, alpha, omit)
        out.append(Evaluation(f"T2 Schur loss - omission cost, O = {set(omit)}", difference, "== 0", difference == 0))
    difference = loo_residual(k_tt, alpha, 0) - alpha[0] / k_tt.inv()[0, 0]
    out.append(Evaluation("T2 LOO residual - alpha_0 / (K^-1)_00", difference, "== 0", difference == 0))

    y_s = k_ss * lam
    loss = rkip_loss(k_tt, k_ts, k_ss, alpha, y_s)
    difference = attack_loss(k_tt, k_ts, k_ss, alpha, lam) - loss
    out.append(Evaluation("T3 attack loss - L_RKIP", difference, "== 0", difference == 0))
    beta = k_ss.inv() * y_s
    gap = scalar_entry(gram.extract(x, t) * alpha - gram.extract(x, s) * beta)
    slack = loss * gram[x[0], x[0]] - gap**2
    out.append(Evaluation("T3 (a) L Theta(x, x) - (f_T - f_S)(x)^2", slack, ">= 0", slack >= 0))
    ratio = kip_error(k_tt, k_ts, k_ss, alpha, y_s) / loss
    out.append(Evaluation("T3 (b) KIP error / L_RKIP (r I - K_TT must not be PD)", ratio, "<= lambda_max(K_TT)",
                          not _positive_definite(ratio * sp.eye(n_train) - k_tt)))
    generating = _rational_matrix(rng, n_distilled, 1)
    while not any(generating):
        generating = _rational_matrix(rng, n_distilled, 1)
    interpolant = k_tt.inv() * (k_ts * generating)
    kip_zero = kip_error(k_tt, k_ts, k_ss, interpolant, k_ss * generating)
    rkip_positive = rkip_loss(k_tt, k_ts, k_ss, interpolant, k_ss * generating)
    out.append(Evaluation("T3 converse: KIP error when y = f_S(X_T)", kip_zero, "== 0", kip_zero == 0))
    out.append(Evaluation("T3 converse: L_RKIP for the same sets", rkip_positive, "> 0", rkip_positive > 0))
    out += _tight_kip_evaluations(k_tt, k_ts, k_ss)
    return out


def _tight_kip_evaluations(k_tt: sp.Matrix, k_ts: sp.Matrix, k_ss: sp.Matrix) -> list[Evaluation]:
    """Bound (b) where only the full determinant of r I - K_TT can decide it: distilled labels y_S = 0 (f_S = 0) and
    alpha = v, the top eigenvector of K_TT (mpmath's eigsy on its float64 entries, 30 working digits) rounded to a
    rational (denominator 2^50), so r = KIP error / L_RKIP = v^T K^2 v / v^T K v is a Rayleigh quotient (of K^(1/2) v)
    that is <= lambda_max(K_TT) exactly and ~1e-28 relative below it. The training points are reordered so that v's
    largest component comes last: then lambda_max of the leading (N-1) block is strictly below lambda_max(K_TT) (strict
    interlacing when v's last component is not 0 and lambda_max is simple), so r lies above it (the first evaluation
    checks this: every leading minor of r I - K_TT below full size > 0, computed directly; a block-diagonal K_TT with
    the top eigenvector on one point needs the reordering). Sylvester's criterion must then say "not PD" from
    det(r I - K_TT) <= 0 alone."""
    import mpmath  # sympy's own arbitrary-precision backend (theory/ stays free of numpy)

    n_train = k_tt.rows
    with mpmath.workdps(30):
        values, vectors = mpmath.eigsy(mpmath.matrix([[float(k_tt[i, j]) for j in range(n_train)]
                                                      for i in range(n_train)]))
        column = max(range(n_train), key=lambda k: values[k])
        top = [float(vectors[i, column]) for i in range(n_train)]
    last = max(range(n_train), key=lambda i: abs(top[i]))
    order = [i for i in range(n_train) if i != last] + [last]
    k_tt, k_ts, top = k_tt.extract(order, order), k_ts.extract(order, list(range(k_ts.cols))), [top[i] for i in order]
    alpha = sp.Matrix([sp.Rational(int(round(c * 2**50)), 2**50) for c in top])
    y_s = sp.zeros(k_ss.rows, 1)
    ratio = kip_error(k_tt, k_ts, k_ss, alpha, y_s) / rkip_loss(k_tt, k_ts, k_ss, alpha, y_s)
    shifted = ratio * sp.eye(n_train) - k_tt
    below = min(shifted[:k, :k].det() for k in range(1, n_train))
    name = "T3 (b) near-tight: y_S = 0, alpha = top eigenvector of K_TT (rational)"
    return [Evaluation(f"{name}, min leading minor of r I - K_TT below full size (only the determinant decides)",
                       below, "> 0", below > 0),
            Evaluation(f"{name}, KIP error / L_RKIP (r I - K_TT must not be PD)", ratio, "<= lambda_max(K_TT)",
                       not _positive_definite(shifted))]
