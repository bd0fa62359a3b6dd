"""The reconstruction loss in kernel form, its profiled minimum, and the steps of Theorem 1 (sympy only).

Loo et al. 2023 (arXiv:2302.01428), Sec. 3: an attacker who knows theta_0 and theta_f minimizes

    L(X_R, lambda) = || Delta theta - J(X_R)^T lambda ||^2 .

With Delta theta = J(X_T)^T alpha (lazy training, docs/claims.md#d1) and K(A, B) = J(A) J(B)^T,

    L = alpha^T K_TT alpha - 2 alpha^T K_TR lambda + lambda^T K_RR lambda                  (R1)

and profiling lambda out (K_RR invertible) gives lambda* = K_RR^-1 K_RT alpha and the Schur complement

    L*(X_R) = alpha^T (K_TT - K_TR K_RR^-1 K_RT) alpha >= 0 .

Theorem 1 (docs/claims.md#t1): reconstructions that coincide can be merged (the loss depends only on the summed
coefficient at each location), so L = c^T Theta_U c for the merged coefficient vector c on the union U of
distinct locations; strict positive definiteness of Theta on U then forces c = 0.

Each function returns :class:`Certificate` objects: an identity ``expression == 0`` kept unsimplified (so it
can be evaluated numerically by :meth:`Certificate.spot_check`) and its simplified ``residual``; a residual
of exactly 0 proves the identity for the stated (small, explicit) sizes. The identities are polynomial or
rational in the matrix entries, so holding for symbolic entries at these sizes is a proof at these sizes;
the general case is the same bilinear algebra.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Sequence

import sympy as sp

from theory.architecture import Architecture
from theory.dual import a_var, b_var, c_var, dual_for, is_zero_on_domain
from theory.kernels import compose, dim, q11, q12, q22

_G = sp.Function("G")


def kernel(p: sp.Expr, q: sp.Expr) -> sp.Expr:
    """An arbitrary symmetric kernel Theta(p, q) = G(p, q) + G(q, p), symmetric under any substitution."""
    return _G(p, q) + _G(q, p)


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A symbolic identity ``expression == 0`` and its simplified ``residual`` (0 proves it)."""

    name: str
    expression: sp.Expr
    residual: sp.Expr
    constrained: tuple[sp.Symbol, ...] = ()
    """Symbols drawn by :meth:`spot_check` inside the kernel domain: (q11, q22, q12) with |q12| < sqrt(q11 q22)."""

    @property
    def proven(self) -> bool:
        return self.residual == 0

    def spot_check(self, rng: Any, *, samples: int = 3) -> float:
        """Largest |expression| at random values of its free symbols, evaluated with 30 significant digits
        (the undefined kernel G is replaced by a concrete function), so a wrong simplification cannot pass
        unnoticed. ``rng`` is any generator with ``uniform(low, high, size=)`` (e.g. numpy's ``default_rng``)."""
        import mpmath

        concrete = self.expression.replace(_G, lambda p, q: sp.exp(-(p - 2 * q) ** 2 / 3) + p * q)
        symbols = sorted(concrete.free_symbols, key=sp.default_sort_key)
        evaluate = sp.lambdify(symbols, concrete, modules="mpmath")
        worst = 0.0
        with mpmath.workdps(30):
            for _ in range(samples):
                values = dict(zip(symbols, (mpmath.mpf(v) for v in rng.uniform(0.5, 1.5, size=len(symbols)))))
                if self.constrained:
                    a, b, c = self.constrained
                    variances = {s: values.get(s, mpmath.mpf(1)) for s in (a, b)}
                    values[c] = mpmath.mpf(rng.uniform(-0.95, 0.95)) * mpmath.sqrt(variances[a] * variances[b])
                    values.update(variances)
                worst = max(worst, float(abs(evaluate(*(values[s] for s in symbols)))))
        return worst


def symbolic_matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    """A rows x cols matrix of real symbols name_i_j."""
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}_{j}", real=True))


def symbolic_symmetric(name: str, size: int) -> sp.Matrix:
    """A symmetric size x size matrix of real symbols name_i_j (i <= j)."""
    return sp.Matrix(size, size, lambda i, j: sp.Symbol(f"{name}_{min(i, j)}_{max(i, j)}", real=True))


def symbolic_vector(name: str, size: int) -> sp.Matrix:
    """A column of real symbols name_i."""
    return sp.Matrix(size, 1, lambda i, _: sp.Symbol(f"{name}_{i}", real=True))


def scalar_entry(matrix: sp.Matrix) -> sp.Expr:
    """The entry of a 1 x 1 matrix."""
    return matrix[0, 0]


def first_nonzero(matrix: sp.Matrix) -> sp.Expr:
    """0 if every entry is 0, else the first nonzero entry (a scalar residual for a vector identity)."""
    for entry in matrix:
        if entry != 0:
            return entry
    return sp.Integer(0)


def kernel_form_loss(alpha: sp.Matrix, lam: sp.Matrix, k_tt: sp.Matrix, k_tr: sp.Matrix,
                     k_rr: sp.Matrix) -> sp.Expr:
    """alpha^T K_TT alpha - 2 alpha^T K_TR lambda + lambda^T K_RR lambda (Loo et al. 2023, Sec. 3)."""
    return scalar_entry(alpha.T * k_tt * alpha - 2 * alpha.T * k_tr * lam + lam.T * k_rr * lam)


def kernel_form_certificate(*, n_train: int = 2, n_recon: int = 2, n_out: int = 1,
                            n_params: int = 3) -> Certificate:
    """||J_T^T alpha - J_R^T lambda||^2 = alpha^T K_TT alpha - 2 alpha^T K_TR lambda + lambda^T K_RR lambda
    with K_AB = J_A J_B^T, for symbolic Jacobians J_T (N C x P), J_R (M C x P)."""
    j_t = symbolic_matrix("JT", n_train * n_out, n_params)
    j_r = symbolic_matrix("JR", n_recon * n_out, n_params)
    alpha, lam = symbolic_vector("alpha", n_train * n_out), symbolic_vector("lambda", n_recon * n_out)
    difference = j_t.T * alpha - j_r.T * lam
    parameter_loss = scalar_entry(difference.T * difference)
    kernel_loss = kernel_form_loss(alpha, lam, j_t * j_t.T, j_t * j_r.T, j_r * j_r.T)
    expression = parameter_loss - kernel_loss
    return Certificate(f"parameter-space loss = kernel form (N={n_train}, M={n_recon}, C={n_out}, P={n_params})",
                       expression, sp.expand(expression))


def _symbolic_kernels(n_train: int, n_recon: int):
    k_tt = symbolic_symmetric("KTT", n_train)
    k_rr = symbolic_symmetric("KRR", n_recon)
    k_rt = symbolic_matrix("KRT", n_recon, n_train)
    return k_tt, k_rt.T, k_rr, symbolic_vector("alpha", n_train), symbolic_vector("lambda", n_recon)


def profile_certificates(*, n_train: int = 2, n_recon: int = 2) -> list[Certificate]:
    """Profiling lambda out of the kernel-form loss, for symbolic symmetric K_TT, K_RR and any K_RT.

    - stationarity: grad_lambda L = 2 K_RR lambda - 2 K_RT alpha vanishes at lambda* = K_RR^-1 K_RT alpha;
    - value: L(lambda*) = alpha^T (K_TT - K_TR K_RR^-1 K_RT) alpha (the Schur complement of K_RR);
    - completing the square: L(lambda) = L* + (lambda - lambda*)^T K_RR (lambda - lambda*), so lambda* is
      the global minimizer whenever K_RR is positive definite.
    """
    k_tt, k_tr, k_rr, alpha, lam = _symbolic_kernels(n_train, n_recon)
    k_rt = k_tr.T
    loss = kernel_form_loss(alpha, lam, k_tt, k_tr, k_rr)
    inverse = k_rr.inv()
    optimum = inverse * k_rt * alpha
    at_optimum = dict(zip(lam, optimum))
    schur = scalar_entry(alpha.T * (k_tt - k_tr * inverse * k_rt) * alpha)
    gradient = sp.Matrix([sp.diff(loss, entry) for entry in lam])
    gradient_at_optimum = gradient.subs(at_optimum, simultaneous=True)
    value = loss.subs(at_optimum, simultaneous=True) - schur
    shift = lam - optimum
    square = loss - schur - scalar_entry(shift.T * k_rr * shift)
    sizes = f"(N={n_train}, M={n_recon})"
    return [
        Certificate(f"stationarity of lambda* = K_RR^-1 K_RT alpha {sizes}", first_nonzero(gradient_at_optimum),
                    first_nonzero(gradient_at_optimum.applyfunc(sp.cancel))),
        Certificate(f"L(lambda*) = Schur complement form {sizes}", value, sp.cancel(sp.together(value))),
        Certificate(f"L = L* + (lambda - lambda*)^T K_RR (lambda - lambda*) {sizes}", square,
                    sp.cancel(sp.together(square))),
    ]


def schur_norm_certificate(*, n_train: int = 1, n_recon: int = 2, n_params: int = 3) -> Certificate:
    """L* = ||J_T^T alpha - J_R^T lambda*||^2 (a squared norm, hence >= 0) for symbolic Jacobians:
    the Schur-complement form equals the parameter-space loss at the profiled coefficients."""
    j_t = symbolic_matrix("JT", n_train, n_params)
    j_r = symbolic_matrix("JR", n_recon, n_params)
    alpha = symbolic_vector("alpha", n_train)
    k_tr, k_rr = j_t * j_r.T, j_r * j_r.T
    inverse = k_rr.inv()
    optimum = inverse * k_tr.T * alpha
    residual_vector = j_t.T * alpha - j_r.T * optimum
    norm = scalar_entry(residual_vector.T * residual_vector)
    schur = scalar_entry(alpha.T * (j_t * j_t.T - k_tr * inverse * k_tr.T) * alpha)
    expression = norm - schur
    return Certificate(f"Schur complement = ||J_T^T alpha - J_R^T lambda*||^2 (N={n_train}, M={n_recon}, "
                       f"P={n_params})", expression, sp.cancel(sp.together(expression)))


def lagrange_certificate(*, n_train: int = 2, n_params: int = 3) -> Certificate:
    """For M = 1: K_RR L* = sum_{i<j} (u_i w_j - u_j w_i)^2 with u = J_T^T alpha, w = J_R^T (Lagrange's
    identity), an explicit sum of squares showing L* >= 0."""
    j_t = symbolic_matrix("JT", n_train, n_params)
    w = symbolic_vector("JR", n_params)
    alpha = symbolic_vector("alpha", n_train)
    u = j_t.T * alpha
    k_rr = scalar_entry(w.T * w)
    k_tr = j_t * w
    schur = scalar_entry(alpha.T * (j_t * j_t.T) * alpha) - scalar_entry(alpha.T * k_tr) ** 2 / k_rr
    squares = sum((u[i] * w[j] - u[j] * w[i]) ** 2 for i, j in itertools.combinations(range(n_params), 2))
    expression = k_rr * schur - squares
    return Certificate(f"M = 1: K_RR L* is a sum of squares (N={n_train}, P={n_params})", expression,
                       sp.expand(sp.cancel(expression)))


def _points(prefix: str, count: int) -> list[sp.Symbol]:
    return [sp.Symbol(f"{prefix}{i}", real=True) for i in range(1, count + 1)]


def infinite_width_loss(x_train: Sequence[sp.Expr], alpha: Sequence[sp.Expr], x_recon: Sequence[sp.Expr],
                        lam: Sequence[sp.Expr]) -> sp.Expr:
    """L_inf = ||sum_i alpha_i Theta(x_i, .) - sum_j lambda_j Theta(x^R_j, .)||_H^2 written with the
    reproducing property, for the symmetric kernel :func:`kernel`."""
    points = list(x_train) + list(x_recon)
    weights = list(alpha) + [-w for w in lam]
    return sum(wi * wj * kernel(pi, pj) for (pi, wi), (pj, wj) in
               itertools.product(zip(points, weights), repeat=2))


def merge_certificate() -> Certificate:
    """Merging coincident reconstructions: with x^R_2 = x^R_1, L_inf depends on lambda_1, lambda_2 only
    through lambda_1 + lambda_2 (the first step of the proof of Theorem 1)."""
    x = _points("x", 2)
    r = _points("r", 3)
    alpha, lam = _points("a", 2), _points("l", 3)
    merged = infinite_width_loss(x, alpha, r, lam).subs(r[1], r[0])
    single = infinite_width_loss(x, alpha, [r[0], r[2]], [lam[0] + lam[1], lam[2]])
    expression = merged - single
    return Certificate("merging coincident reconstructions sums their coefficients", expression,
                       sp.expand(expression))


def union_form_certificate(assignment: Sequence[object], n_train: int) -> Certificate:
    """L_inf = c^T Theta_U c on the union U of distinct locations (the second step of Theorem 1's proof).

    ``assignment[j]`` is where reconstruction j sits: an int i < n_train means on training point x_i, any
    other label a fresh location shared by every reconstruction with that label. The merged coefficient
    of a training location is alpha_i minus the lambdas on it, of a fresh location minus the lambdas on it.
    """
    x = _points("x", n_train)
    alpha = _points("a", n_train)
    lam = _points("l", len(assignment))
    fresh = sorted({label for label in assignment if not isinstance(label, int)}, key=str)
    z = {label: sp.Symbol(f"z_{label}", real=True) for label in fresh}
    location = [x[label] if isinstance(label, int) else z[label] for label in assignment]
    union = list(x) + [z[label] for label in fresh]
    coefficients = list(alpha) + [sp.Integer(0)] * len(fresh)
    for j, label in enumerate(assignment):
        index = label if isinstance(label, int) else n_train + fresh.index(label)
        coefficients[index] -= lam[j]
    c = sp.Matrix(coefficients)
    gram = sp.Matrix(len(union), len(union), lambda i, j: kernel(union[i], union[j]))
    expression = infinite_width_loss(x, alpha, location, lam) - scalar_entry(c.T * gram * c)
    return Certificate(f"L_inf = c^T Theta_U c for assignment {tuple(assignment)}", expression,
                       sp.expand(expression))


def union_form_certificates(*, n_train: int = 2, n_recon: int = 3) -> list[Certificate]:
    """:func:`union_form_certificate` for every way of placing ``n_recon`` reconstructions on the training
    points or on fresh locations (each coincidence pattern once: fresh labels in order of appearance)."""
    out = []
    for raw in itertools.product(range(n_train + n_recon), repeat=n_recon):
        if _canonical_fresh(raw, n_train) != raw:
            continue
        assignment = [value if value < n_train else f"f{value - n_train}" for value in raw]
        out.append(union_form_certificate(assignment, n_train))
    return out


def _canonical_fresh(raw: tuple[int, ...], n_train: int) -> tuple[int, ...]:
    """Relabel fresh locations (values >= n_train) in order of first appearance: n_train, n_train + 1, ..."""
    mapping: dict[int, int] = {}
    out = []
    for value in raw:
        if value < n_train:
            out.append(value)
        else:
            mapping.setdefault(value, n_train + len(mapping))
            out.append(mapping[value])
    return tuple(out)


def homogeneity_certificates(arch: Architecture) -> list[Certificate]:
    """Theta(k x, x') = k Theta(x, x') for k > 0 (bias-free, positively homogeneous activation, NTK
    parametrization), by induction over the layers.

    Under x -> k x the first layer scales (Sigma(x, x), Sigma(x, x'), Sigma(x', x'), Theta) by
    (k^2, k, 1, k). One layer preserves this pattern when, in the dual-kernel variables (a, b, c),
    value(k^2 a, b, k c) = k value(a, b, c), derivative(k^2 a, b, k c) = derivative(a, b, c) and
    value(k^2 a, k^2 a, k^2 a) = k^2 value(a, a, a) (sigma_b = 0: no constant is added); these three are
    the certificates. Hence (k x, alpha / k) and (x, alpha) define the same RKHS element, the scale
    ambiguity that confines Theorem 1 to the sphere for bias-free ReLU networks (docs/claims.md#t1, counterexample (i)).
    """
    if not arch.positively_homogeneous or arch.parameterization != "ntk":
        raise ValueError("homogeneity needs a bias-free NTK architecture whose activation is positively homogeneous "
                         f"of degree 1 (theory.activations), got {arch.spec}")
    dual = dual_for(arch)
    k = sp.Symbol("k", positive=True)
    scale = {a_var: k**2 * a_var, c_var: k * c_var}

    def strip_scale(expr: sp.Expr) -> sp.Expr:
        """atan2(k y, k x) = atan2(y, x) for k > 0, a rule sympy does not apply by itself."""
        def rule(y, x):
            y_k, x_k = sp.cancel(y / k), sp.cancel(x / k)
            return sp.atan2(y_k, x_k) if not (y_k.has(k) or x_k.has(k)) else sp.atan2(y, x)
        return expr.replace(sp.atan2, rule)

    out = []
    for label, expr, degree in (("value", dual.value, 1), ("derivative", dual.derivative, 0)):
        expression = expr.subs(scale, simultaneous=True) - k**degree * expr
        out.append(Certificate(f"{arch.activation}: {label}(k^2 a, b, k c) = k^{degree} {label}(a, b, c)",
                               expression, is_zero_on_domain(strip_scale(sp.factor_terms(expression))),
                               constrained=(a_var, b_var, c_var)))
    diagonal = dual.value_diagonal.subs(a_var, k**2 * a_var) - k**2 * dual.value_diagonal
    out.append(Certificate(f"{arch.activation}: value on the diagonal scales by k^2", diagonal,
                           sp.simplify(diagonal), constrained=(a_var, b_var, c_var)))
    return out


def linear_kernel_certificate(arch: Architecture) -> Certificate:
    """Identity activation, no biases: Theta(x, x') = (L + 1) sigma_w^(2(L+1)) <x, x'> / d, a kernel of
    rank <= d (docs/claims.md#t1, counterexample (ii)); checked against the composed recursion."""
    if arch.activation != "identity" or arch.has_bias or arch.parameterization != "ntk":
        raise ValueError(f"the linear closed form needs a bias-free identity NTK architecture, got {arch.spec}")
    sw2 = sp.nsimplify(arch.sigma_w, rational=True) ** 2
    closed_form = (arch.depth + 1) * sw2 ** (arch.depth + 1) * q12 / dim
    expression = compose(arch).theta - closed_form
    return Certificate(f"{arch.spec}: Theta = (L+1) sigma_w^(2(L+1)) <x,x'> / d", expression,
                       sp.simplify(expression), constrained=(q11, q22, q12))
