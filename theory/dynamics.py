"""Linearized training dynamics on the MSE loss and the dual coefficients alpha (docs/claims.md#d1).

Linearized model f_lin(theta) = f_0 + J (theta - theta_0), J the Jacobian at theta_0 (N*C x P), K = J J^T,
loss L = (c / 2) ||y - f_lin(theta)||^2 with c = 1 (sum) or c = 1 / N (mean over the N samples).
Gradient flow d theta / dt = -eta grad L = eta c J^T (y - f_lin(theta)) (Lee et al. 2019, arXiv:1902.06720,
eq. 8-9; written below with c = 1, the mean loss only rescales eta) is solved by

    r(t) = y - f_lin(theta_t) = exp(-eta K t) r_0,
    theta_t - theta_0 = J^T K^{-1} (I - exp(-eta K t)) r_0  ->  J^T alpha  (t -> inf),   alpha = K^{-1} r_0,

and alpha = eta * int_0^inf r(t) dt. Discrete gradient descent with steps eta_s, and heavy-ball momentum
beta in optax's convention (m_{s+1} = beta m_s + g_s, theta_{s+1} = theta_s - eta_s m_{s+1}), keep
theta_s - theta_0 = J^T alpha_s and m_s = -J^T mu_s with the dual recursion

    mu_{s+1} = beta mu_s + c r_s,      alpha_{s+1} = alpha_s + eta_s mu_{s+1},

i.e. alpha accumulates the optimizer's own step applied to the dual gradient -c r_s (for beta = 0 this is
the step-size-weighted residual sum c sum_s eta_s r_s). Then r_{s+1} = r_s - eta_s K mu_{s+1}, and the
sum telescopes: K alpha_T = r_0 - r_T exactly, so alpha_T -> K^{-1} r_0 as the residual vanishes. With
momentum the plain residual sum c sum_s eta_s r_s is *not* the right accumulator (with a constant eta it
misses the factor (1 - beta^{T-s}) / (1 - beta) that each residual picks up through the trace).

Each identity is a :class:`Certificate`: an expression claimed to vanish and its reduced residual
(exactly ``0`` when proven). :func:`spot_check` evaluates the unreduced expression at random points, so a
wrong simplification cannot pass unnoticed. (The explicit flow system reduces every matrix product as it
forms it, exactly, to keep the expressions small; there the spot check sees the reduced products.)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterable, Sequence

import mpmath
import sympy as sp

REDUCTIONS = ("sum", "mean")
ACCUMULATORS = ("step", "residual")

eta_symbol = sp.Symbol("eta", positive=True)
t_symbol = sp.Symbol("t", nonnegative=True)
beta_symbol = sp.Symbol("beta", positive=True)
n_samples_symbol = sp.Symbol("N", positive=True, integer=True)


@dataclasses.dataclass(frozen=True)
class Certificate:
    """An identity ``expression == 0`` and its reduced ``residual`` (``0`` when proven, else what remains)."""

    name: str
    expression: sp.Expr | sp.MatrixBase
    residual: sp.Expr | sp.MatrixBase

    @property
    def proven(self) -> bool:
        return self.residual == 0


def _reduce_entry(expr: sp.Expr) -> sp.Expr:
    """cancel() is a canonical form for rational functions; anything else also goes through simplify()."""
    reduced = sp.cancel(sp.expand(expr))
    if reduced != 0 and not reduced.is_rational_function():
        reduced = sp.simplify(reduced)
    return reduced


def reduce_residual(expression: sp.Expr | sp.MatrixBase) -> sp.Expr | sp.MatrixBase:
    """Reduce an explicit (scalar or matrix) expression; ``S.Zero`` when every entry vanishes."""
    if isinstance(expression, sp.MatrixBase):
        reduced = expression.applyfunc(_reduce_entry)
        return sp.S.Zero if all(entry == 0 for entry in reduced) else sp.ImmutableMatrix(reduced)
    return _reduce_entry(expression)


def certificate(name: str, expression: sp.Expr | sp.MatrixBase) -> Certificate:
    return Certificate(name=name, expression=expression, residual=reduce_residual(expression))


def _matrix_certificate(name: str, expression: sp.MatrixExpr) -> Certificate:
    """For identities between matrix symbols (any size): expand and let sympy collect the terms."""
    residual = sp.expand(expression.doit())
    if isinstance(residual, sp.ZeroMatrix) or residual == 0:
        residual = sp.S.Zero
    return Certificate(name=name, expression=expression, residual=residual)


def spot_check(cert: Certificate, rng: Any, samples: int = 3, *, digits: int = 30) -> float:
    """Max |expression| over random values of its free symbols.

    ``rng`` is any generator with ``uniform(low, high)`` and ``normal()`` (e.g. numpy's ``default_rng``).
    Positive symbols are drawn from U(0.5, 2), the others from N(0, 1); the unreduced expression is
    evaluated with mpmath (sympy's own arbitrary-precision backend) at ``digits`` significant digits, so a
    true identity leaves ~10^-digits and a wrong simplification shows as an O(1) value. Identities between
    matrix symbols are evaluated at explicit matrices (:func:`matrix_spot_check`).
    """
    expression = cert.expression
    if isinstance(expression, sp.MatrixExpr) and not isinstance(expression, sp.MatrixBase):
        return matrix_spot_check(expression, rng, samples)
    symbols = sorted(expression.free_symbols, key=str)
    entries = list(expression) if isinstance(expression, sp.MatrixBase) else [expression]
    evaluate = sp.lambdify(symbols, entries, modules="mpmath")
    worst = 0.0
    with mpmath.workdps(digits):
        for _ in range(samples):
            values = [mpmath.mpf(float(rng.uniform(0.5, 2.0) if s.is_positive else rng.normal())) for s in symbols]
            worst = max(worst, *(float(abs(value)) for value in evaluate(*values)))
    return worst



MATRIX_SPOT_SIZES = (3, 4, 5)
"""Sizes given to the dimension symbols of a matrix identity, in name order: distinct, so that a product with a
transposed factor does not conform by accident."""


def _random_rational(rng: Any, positive: bool) -> sp.Rational:
    """An exact rational near a U(0.5, 2) (``positive``) or N(0, 1) draw: three decimals of it."""
    value = rng.uniform(0.5, 2.0) if positive else rng.normal()
    return sp.Rational(round(1000 * float(value)), 1000) or sp.Rational(1, 1000)


def matrix_spot_check(expression: sp.MatrixExpr, rng: Any, samples: int = 3) -> float:
    """Max |entry| of an identity between matrix symbols at explicit matrices: each dimension symbol gets a size of
    :data:`MATRIX_SPOT_SIZES`, each matrix symbol and scalar symbol exact random rationals, and the expression is
    evaluated exactly, so a true identity gives 0 and a wrong one a nonzero rational."""
    matrices = sorted(expression.atoms(sp.MatrixSymbol), key=str)
    symbols = expression.free_symbols - set(matrices)
    shapes = [d for m in [*matrices, expression] for d in m.shape]
    dimensions = sorted({s for d in shapes for s in sp.sympify(d).free_symbols} | {d for d in symbols if d.is_integer},
                        key=str)
    if len(dimensions) > len(MATRIX_SPOT_SIZES):
        raise ValueError(f"{len(dimensions)} dimension symbols; at most {len(MATRIX_SPOT_SIZES)} are given sizes")
    sizes = dict(zip(dimensions, MATRIX_SPOT_SIZES))
    scalars = sorted(symbols - set(dimensions), key=str)
    worst = sp.S.Zero
    for _ in range(samples):
        values: dict = {**sizes, **{s: _random_rational(rng, bool(s.is_positive)) for s in scalars}}
        for m in matrices:
            rows, cols = (int(sp.sympify(d).subs(sizes)) for d in m.shape)
            values[m] = sp.Matrix(rows, cols, lambda i, j: _random_rational(rng, False))
        value = sp.Matrix(expression.subs(values).doit())
        worst = max(worst, *(abs(entry) for entry in value))
    return float(worst)

# ------------------------------------------------------------------------------------------------
# Gradient flow
# ------------------------------------------------------------------------------------------------

@functools.cache
def modal_flow_certificates() -> tuple[Certificate, ...]:
    """The flow along one eigenvector of K (eigenvalue k > 0, r_0-component rho): any size, by diagonalization.

    K = Q diag(k_i) Q^T with Q orthogonal decouples d a / dt = eta (r_0 - K a), theta_t - theta_0 = J^T a(t),
    into scalar modes a(t) = rho (1 - exp(-eta k t)) / k.
    """
    k = sp.Symbol("k", positive=True)
    rho = sp.Symbol("rho", real=True)
    eta, t = eta_symbol, t_symbol
    a = rho * (1 - sp.exp(-eta * k * t)) / k
    return (
        certificate("mode: da/dt = eta (rho - k a)", sp.diff(a, t) - eta * (rho - k * a)),
        certificate("mode: a(0) = 0", a.subs(t, 0)),
        certificate("mode: a(inf) = rho / k", sp.limit(a, t, sp.oo) - rho / k),
        certificate("mode: eta int_0^inf rho exp(-eta k t) dt = rho / k",
                    eta * sp.integrate(rho * sp.exp(-eta * k * t), (t, 0, sp.oo)) - rho / k),
    )


def cayley(parameters: Sequence[sp.Symbol], size: int) -> sp.Matrix:
    """The orthogonal matrix (I - S)(I + S)^{-1} of the skew-symmetric S with the given upper entries."""
    S = sp.zeros(size, size)
    upper = [(i, j) for i in range(size) for j in range(i + 1, size)]
    if len(parameters) != len(upper):
        raise ValueError(f"a {size}x{size} Cayley rotation needs {len(upper)} parameters, got {len(parameters)}")
    for (i, j), value in zip(upper, parameters):
        S[i, j], S[j, i] = value, -value
    eye = sp.eye(size)
    return ((eye - S) * (eye + S).inv()).applyfunc(sp.cancel)


def _cancel(matrix: sp.MatrixBase) -> sp.Matrix:
    return sp.Matrix(matrix).applyfunc(sp.cancel)


def _product(*factors: sp.MatrixBase) -> sp.Matrix:
    """A matrix product with the entries reduced after every multiplication (keeps expressions small)."""
    result = _cancel(factors[-1])
    for factor in reversed(factors[:-1]):
        result = _cancel(factor * result)
    return result


@dataclasses.dataclass(frozen=True)
class FlowSystem:
    """An explicit generic linearized system with the closed-form flow.

    J = Q diag(s) W (any full-row-rank J has this SVD form): Q an n x n and W the first n rows of a p x p
    Cayley rotation, so K = J J^T = Q diag(s^2) Q^T and exp(-eta K t) = Q diag(e_i) Q^T with the mode
    decays e_i = exp(-eta s_i^2 t), kept as symbols so that every expression is affine in them.
    """

    J: sp.Matrix
    K: sp.Matrix
    K_inv: sp.Matrix
    decay: sp.Matrix
    r0: sp.Matrix
    modes: tuple[tuple[sp.Symbol, sp.Expr], ...]
    """(e_i, exp(-eta s_i^2 t)) pairs."""

    @property
    def delta_theta(self) -> sp.Matrix:
        """theta_t - theta_0 = J^T K^{-1} (I - exp(-eta K t)) r_0."""
        return _product(self.J.T, self.K_inv, sp.eye(self.K.shape[0]) - self.decay, self.r0)

    @property
    def alpha(self) -> sp.Matrix:
        return _product(self.K_inv, self.r0)

    def diff_t(self, expr: sp.MatrixBase) -> sp.Matrix:
        """d/dt by the chain rule through the modes: d e_i / dt = d/dt exp(-eta s_i^2 t), differentiated by sympy."""
        out = sp.zeros(*expr.shape)
        for e, decay in self.modes:
            rate = sp.diff(decay, t_symbol).subs(decay, e)
            out += expr.diff(e) * rate
        return _cancel(out)

    def apply_to_modes(self, expr: sp.MatrixBase, operation) -> sp.Matrix:
        """Apply a linear operation in t (a limit, an integral) to an expression affine in the e_i.

        expr = A_0 + sum_i A_i e_i with t-free A's, so op(expr) = op(1) A_0 + sum_i op(e_i(t)) A_i.
        """
        symbols = [e for e, _ in self.modes]
        constant = _cancel(expr.subs({e: 0 for e in symbols}))
        if any(_cancel(expr.diff(a).diff(b)) != sp.zeros(*expr.shape) for a in symbols for b in symbols):
            raise ValueError("expression is not affine in the mode decays")
        out = constant * operation(sp.S.One)
        for e, decay in self.modes:
            out += _cancel(expr.diff(e)) * operation(decay)
        return _cancel(out)


@functools.cache
def flow_system(n: int = 2, p: int = 3) -> FlowSystem:
    """The explicit system of :class:`FlowSystem` for an n x p Jacobian (cached; treat it as read-only)."""
    if not 1 <= n <= p:
        raise ValueError(f"need 1 <= n <= p (J is n x p with full row rank), got n={n}, p={p}")
    q = sp.symbols(f"q1:{n * (n - 1) // 2 + 1}", real=True)
    w = sp.symbols(f"w1:{p * (p - 1) // 2 + 1}", real=True)
    s = sp.symbols(f"s1:{n + 1}", positive=True)
    e = sp.symbols(f"e1:{n + 1}", positive=True)
    r0 = sp.Matrix(sp.symbols(f"rho1:{n + 1}", real=True))
    Q = cayley(q, n)
    W = cayley(w, p)[:n, :]
    J = _product(Q, sp.diag(*s), W)
    K = _product(Q, sp.diag(*[si**2 for si in s]), Q.T)
    K_inv = _product(Q, sp.diag(*[1 / si**2 for si in s]), Q.T)
    decay = _product(Q, sp.diag(*e), Q.T)
    modes = tuple((ei, sp.exp(-eta_symbol * si**2 * t_symbol)) for ei, si in zip(e, s))
    return FlowSystem(J=J, K=K, K_inv=K_inv, decay=decay, r0=r0, modes=modes)


def ode_residual(system: FlowSystem, delta: sp.MatrixBase) -> sp.Matrix:
    """d delta / dt - eta J^T (r_0 - J delta) for a candidate theta_t - theta_0 = ``delta`` (affine in the e_i)."""
    residual_t = _cancel(system.r0 - _product(system.J, delta))
    return _cancel(system.diff_t(delta) - eta_symbol * _product(system.J.T, residual_t))


@functools.cache
def flow_certificates(n: int = 2, p: int = 3) -> tuple[Certificate, ...]:
    """The closed form solves the linearized gradient flow on an explicit generic n x p Jacobian.

    ODE d theta / dt = eta J^T (r_0 - J (theta_t - theta_0)), initial value (all e_i = 1 at t = 0), residual
    r(t) = exp(-eta K t) r_0, the limit J^T alpha, and alpha = eta int_0^inf r(t) dt.
    """
    system = flow_system(n, p)
    J, eta = system.J, eta_symbol
    delta = system.delta_theta
    residual_t = _cancel(system.r0 - _product(J, delta))
    at_zero = {e: decay.subs(t_symbol, 0) for e, decay in system.modes}
    limit = system.apply_to_modes(delta, lambda f: sp.limit(f, t_symbol, sp.oo))
    integral = system.apply_to_modes(_product(system.decay, system.r0),
                                     lambda f: sp.integrate(f, (t_symbol, 0, sp.oo)))
    return (
        certificate("K = J J^T = Q diag(s^2) Q^T", _product(J, J.T) - system.K),
        certificate("K K^{-1} = I", _product(system.K, system.K_inv) - sp.eye(n)),
        certificate("d theta/dt = eta J^T (r_0 - J (theta_t - theta_0))", ode_residual(system, delta)),
        certificate("theta_0 - theta_0 = 0 (initial value)", delta.subs(at_zero)),
        certificate("r(t) = y - f_lin(theta_t) = exp(-eta K t) r_0", residual_t - _product(system.decay, system.r0)),
        certificate("lim_{t->inf} theta_t - theta_0 = J^T alpha", limit - _product(J.T, system.alpha)),
        certificate("eta int_0^inf r(t) dt = alpha = K^{-1} r_0", eta * integral - system.alpha),
    )


# ------------------------------------------------------------------------------------------------
# Discrete gradient descent and heavy-ball momentum
# ------------------------------------------------------------------------------------------------

def _check_options(reduction: str, accumulator: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if accumulator not in ACCUMULATORS:
        raise ValueError(f"accumulator must be one of {ACCUMULATORS}, got {accumulator!r}")


@dataclasses.dataclass(frozen=True)
class UnrolledRun:
    """The symbolic iterates of :func:`unrolled_gd` after the last step, and the symbols they depend on."""

    J: sp.Matrix
    r0: sp.Matrix
    etas: tuple[sp.Symbol, ...]
    beta: sp.Expr
    delta: sp.Matrix
    """theta_T - theta_0."""
    alpha: sp.Matrix
    r_final: sp.Matrix
    """r_T = r_0 - J (theta_T - theta_0)."""


@functools.cache
def unrolled_gd(steps: int = 3, n: int = 2, p: int = 3, *, momentum: bool = False, reduction: str = "sum",
                accumulator: str = "step", dual_scale: sp.Expr | None = None) -> UnrolledRun:
    """``steps`` steps of optax's sgd on (c / 2) ||r_0 - J (theta - theta_0)||^2 (free n x p Jacobian, free step
    sizes eta_s, heavy-ball beta when ``momentum``) and the dual accumulator, unrolled symbolically: the primal
    iteration is g_s = -c J^T r_s, m_{s+1} = beta m_s + g_s, theta_{s+1} = theta_s - eta_s m_{s+1},
    r_s = r_0 - J (theta_s - theta_0), c = 1 (sum) or 1 / N (mean). The dual accumulator is
    ``accumulator="step"`` (mu_{s+1} = beta mu_s + c' r_s, alpha_{s+1} = alpha_s + eta_s mu_{s+1}) or
    ``"residual"`` (alpha_T = c' sum_s eta_s r_s), with c' = ``dual_scale`` (default c). Claim D1 evaluates these
    iterates at exact rationals against numerics.training.train, which ties this loop to the optimizer."""
    _check_options(reduction, accumulator)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    J = sp.Matrix(n, p, lambda i, j: sp.Symbol(f"j{i + 1}{j + 1}", real=True))
    r0 = sp.Matrix(sp.symbols(f"rho1:{n + 1}", real=True))
    etas = sp.symbols(f"eta0:{steps}", positive=True)
    beta = beta_symbol if momentum else sp.S.Zero
    c = sp.S.One if reduction == "sum" else 1 / n_samples_symbol
    c_dual = c if dual_scale is None else sp.sympify(dual_scale, strict=True)
    delta, m = sp.zeros(p, 1), sp.zeros(p, 1)
    alpha, mu = sp.zeros(n, 1), sp.zeros(n, 1)
    for eta in etas:
        r = r0 - J * delta
        m = beta * m - c * J.T * r
        delta = delta - eta * m
        if accumulator == "step":
            mu = beta * mu + c_dual * r
            alpha = alpha + eta * mu
        else:
            alpha = alpha + c_dual * eta * r
    return UnrolledRun(J=J, r0=r0, etas=tuple(etas), beta=beta, delta=delta, alpha=alpha, r_final=r0 - J * delta)


@functools.cache
def gd_certificates(steps: int = 3, n: int = 2, p: int = 3, *, momentum: bool = False,
                    reduction: str = "sum", accumulator: str = "step",
                    dual_scale: sp.Expr | None = None) -> tuple[Certificate, ...]:
    """Unrolled GD / heavy-ball (:func:`unrolled_gd`) on an explicit n x p Jacobian with free entries and free step
    sizes. Certificates: theta_T - theta_0 = J^T alpha_T and K alpha_T = r_0 - r_T. Passing a wrong accumulator or
    scale yields nonzero residuals, which is how the tests show that the certificates can fail. Both hold for any
    loop that feeds primal and dual the same residual, GD or not: that the loop is optax's sgd is checked
    numerically by claim D1 (its iterates at exact rationals against numerics.training.train).
    """
    run = unrolled_gd(steps, n, p, momentum=momentum, reduction=reduction, accumulator=accumulator,
                      dual_scale=dual_scale)
    J, alpha = run.J, run.alpha
    label = f"{'heavy-ball' if momentum else 'GD'}, {reduction} loss, {steps} steps, {accumulator} accumulator"
    return (
        certificate(f"{label}: theta_T - theta_0 = J^T alpha_T", run.delta - J.T * alpha),
        certificate(f"{label}: K alpha_T = r_0 - r_T (telescoping)", J * J.T * alpha - (run.r0 - run.r_final)),
    )


@functools.cache
def induction_certificates() -> tuple[Certificate, ...]:
    """The inductive step for any sizes, any step count, any step sizes (matrix symbols).

    Hypotheses at step s: theta_s - theta_0 = J^T alpha_s, m_s = -J^T mu_s (true at s = 0, all zero).
    One step of optax's heavy-ball sgd (beta = 0 is plain GD; c = 1 or 1/N) preserves both, and with
    r_{s+1} = r_0 - J (theta_{s+1} - theta_0) gives K alpha_{s+1} = r_0 - r_{s+1}.
    """
    n, p = sp.symbols("n p", positive=True, integer=True)
    J = sp.MatrixSymbol("J", n, p)
    alpha, mu, r0 = (sp.MatrixSymbol(name, n, 1) for name in ("alpha", "mu", "r_0"))
    eta, beta, c = sp.Symbol("eta_s", positive=True), beta_symbol, sp.Symbol("c", positive=True)
    delta = J.T * alpha
    m = -J.T * mu
    r = r0 - J * delta
    m_next = beta * m - c * J.T * r
    delta_next = delta - eta * m_next
    mu_next = beta * mu + c * r
    alpha_next = alpha + eta * mu_next
    r_next = r0 - J * delta_next
    return (
        _matrix_certificate("induction: theta_{s+1} - theta_0 = J^T alpha_{s+1}", delta_next - J.T * alpha_next),
        _matrix_certificate("induction: m_{s+1} = -J^T mu_{s+1} (momentum stays in the row space)",
                            m_next + J.T * mu_next),
        _matrix_certificate("induction: K alpha_{s+1} = r_0 - r_{s+1}", J * J.T * alpha_next - (r0 - r_next)),
    )


def all_certificates(n: int = 2, p: int = 3, steps: int = 3) -> list[Certificate]:
    """Every certificate of claim D1: modal and explicit flow, unrolled GD / momentum (sum and mean), induction."""
    out: list[Certificate] = []
    out += modal_flow_certificates()
    out += flow_certificates(n, p)
    for momentum in (False, True):
        for reduction in REDUCTIONS:
            out += gd_certificates(steps, n, p, momentum=momentum, reduction=reduction)
    out += induction_certificates()
    return out


def unproven(certs: Iterable[Certificate]) -> list[Certificate]:
    return [cert for cert in certs if not cert.proven]

