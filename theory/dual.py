"""Dual activations: E[phi(u) phi(v)] and E[phi'(u) phi'(v)] for (u, v) ~ N(0, [[a, c], [c, b]]).

Closed forms (Cho & Saul 2009, arXiv:0911.5078 for the arc-cosine kernels; Williams 1997 for erf):

- relu:   E[relu(u) relu(v)] = (sqrt(ab - c^2) + (pi - t) c) / (2 pi),  t = arccos(c / sqrt(ab))
- step:   E[step(u) step(v)] = (pi - t) / (2 pi)
- abrelu: phi = a_- min(x, 0) + a_+ max(x, 0):  (a_+ - a_-)^2 relu-kernel + a_+ a_- c,
          derivative (a_+ - a_-)^2 step-kernel + a_+ a_-
- erf:    (2 / pi) arcsin(2c / sqrt((1 + 2a)(1 + 2b))),  derivative (4 / pi) / sqrt((1 + 2a)(1 + 2b) - 4c^2)
- polynomials: exact Gaussian moments E[u^j v^k] (Isserlis), any degree.

Every closed form carries certificates (:func:`certificates`): Price's theorem d/dc E[f(u) g(v)] =
E[f'(u) g'(v)] holds symbolically, and at c = 0 the kernel factorizes into E[phi(u)] E[phi(v)], computed
here by sympy's own integration. An ODE in c with its initial value determines the kernel, so the two
together derive it. Activations given as an arbitrary sympy expression get a closed form when they are
polynomials, and numerical quadrature (numerics.kernels) otherwise (``method`` says which).
"""

from __future__ import annotations

import cmath
import dataclasses
import functools
from typing import TYPE_CHECKING

import sympy as sp

from theory import activations
from theory.expressions import parse_activation

if TYPE_CHECKING:
    from theory.architecture import Architecture

a_var, b_var = sp.symbols("a b", positive=True)
c_var = sp.Symbol("c", real=True)
x_symbol = sp.Symbol("x", real=True)

CLOSED_FORM = "closed form"
QUADRATURE = "quadrature"


@dataclasses.dataclass(frozen=True)
class DualKernel:
    """The dual pair of one activation, as sympy expressions in the variances a, b and covariance c.

    ``value`` is E[phi(u) phi(v)] and ``derivative`` E[phi'(u) phi'(v)]; both are ``None`` when
    ``method`` is quadrature (no closed form; evaluate numerically from ``phi``).
    """

    name: str
    phi: sp.Expr
    value: sp.Expr | None
    derivative: sp.Expr | None
    method: str

    @property
    def phi_prime(self) -> sp.Expr:
        return sp.diff(self.phi, x_symbol)

    @functools.cached_property
    def value_diagonal(self) -> sp.Expr | None:
        """E[phi(u)^2] for u ~ N(0, a): ``value`` at b = c = a, simplified."""
        return None if self.value is None else _diagonal(self.value)

    @functools.cached_property
    def derivative_diagonal(self) -> sp.Expr | None:
        return None if self.derivative is None else _diagonal(self.derivative)


def _diagonal(expr: sp.Expr) -> sp.Expr:
    return sp.simplify(expr.subs({b_var: a_var}).subs({c_var: a_var}))


def angle(a=a_var, b=b_var, c=c_var) -> sp.Expr:
    """The angle t in [0, pi] with cos t = c / sqrt(ab), written as atan2(sqrt(ab - c^2), c).

    Equal to arccos(c / sqrt(ab)) on the domain, but exact at the edges: when c^2 = ab holds exactly
    (coincident or antipodal inputs) it gives 0 or pi, whereas arccos of a rounded ratio
    1 - 1e-16 is already 1.5e-8 away.
    """
    return sp.atan2(sp.sqrt(a * b - c**2), c)


def relu_kernel(a=a_var, b=b_var, c=c_var) -> sp.Expr:
    """E[relu(u) relu(v)] = (sqrt(ab - c^2) + (pi - t) c) / (2 pi), the arc-cosine kernel of degree 1."""
    return (sp.sqrt(a * b - c**2) + (sp.pi - angle(a, b, c)) * c) / (2 * sp.pi)


def step_kernel(a=a_var, b=b_var, c=c_var) -> sp.Expr:
    """E[step(u) step(v)] = (pi - t) / (2 pi), the arc-cosine kernel of degree 0."""
    return (sp.pi - angle(a, b, c)) / (2 * sp.pi)


def gaussian_moment(j: int, k: int, a=a_var, b=b_var, c=c_var) -> sp.Expr:
    """E[u^j v^k] for (u, v) ~ N(0, [[a, c], [c, b]]) (Isserlis' theorem).

    Writes u = sqrt(a) z1, v = (c / sqrt(a)) z1 + sqrt(b - c^2 / a) z2 with z1, z2 independent standard
    normals and uses E[z^n] = (n - 1)!! for even n, 0 for odd n.
    """
    z1, z2 = sp.symbols("z1 z2", real=True)
    u = sp.sqrt(a) * z1
    v = (c / sp.sqrt(a)) * z1 + sp.sqrt(b - c**2 / a) * z2
    poly = sp.Poly(sp.expand(u**j * v**k), z1, z2)
    total = sp.Integer(0)
    for (n1, n2), coeff in poly.terms():
        if n1 % 2 or n2 % 2:
            continue
        total += coeff * sp.factorial2(n1 - 1) * sp.factorial2(n2 - 1)
    return sp.expand(sp.cancel(sp.expand(total)))


def polynomial_kernel(phi: sp.Expr) -> sp.Expr:
    """E[phi(u) phi(v)] for a polynomial phi, by Gaussian moments."""
    coeffs = sp.Poly(phi, x_symbol).all_coeffs()[::-1]
    total = sp.Integer(0)
    for j, cj in enumerate(coeffs):
        for k, ck in enumerate(coeffs):
            if cj != 0 and ck != 0:
                total += cj * ck * gaussian_moment(j, k)
    return sp.expand(total)


def hermite_polynomial(n: int, z: sp.Symbol) -> sp.Expr:
    """The probabilists' Hermite polynomial He_n(z): He_0 = 1, He_1 = z, He_{n+1} = z He_n - n He_{n-1}
    (orthogonal under N(0, 1): E[He_m(z) He_n(z)] = n! [m = n])."""
    previous, current = sp.Integer(0), sp.Integer(1)
    for k in range(n):
        previous, current = current, sp.expand(z * current - k * previous)
    return current


def hermite_coefficient(f: sp.Expr, n: int, variance=a_var) -> sp.Expr:
    """h_n(a) = E[f(sqrt(a) z) He_n(z)] / sqrt(n!), z ~ N(0, 1), exactly for a polynomial f (E[z^k] = (k - 1)!!);
    0 for n above f's degree."""
    z = sp.Symbol("z", real=True)
    poly = sp.Poly(sp.expand(f.subs(x_symbol, sp.sqrt(variance) * z) * hermite_polynomial(n, z)), z)
    mean = sum((coeff * sp.factorial2(k - 1) for (k,), coeff in poly.terms() if k % 2 == 0), sp.Integer(0))
    return sp.expand(mean / sp.sqrt(sp.factorial(n)))


def mehler_kernel(f: sp.Expr, g: sp.Expr, terms: int) -> sp.Expr:
    """sum_{n < terms} rho^n h_n^f(a) h_n^g(b), rho = c / sqrt(ab): the Mehler (Hermite) series of E[f(u) g(v)],
    (u, v) ~ N(0, [[a, c], [c, b]]) (Mehler 1866; O'Donnell, Analysis of Boolean Functions ch. 11; Daniely, Frostig &
    Singer 2016 for dual activations), which numerics.kernels sums in float64 for activations without a closed form.
    For polynomials of degree p it ends at n = p, and ``terms`` = p + 1 gives :func:`polynomial_kernel` exactly."""
    rho = c_var / sp.sqrt(a_var * b_var)
    return sp.expand(sum((rho**n * hermite_coefficient(f, n, a_var) * hermite_coefficient(g, n, b_var)
                          for n in range(terms)), sp.Integer(0)))


def activation_expression(text: str) -> sp.Expr:
    """Parse a user activation (a formula in ``x``) with the whitelist parser and the activation rules
    (theory.expressions.parse_activation); nothing is evaluated."""
    return parse_activation(text)


as_rational = activations.exact
"""A numeric parameter as an exact sympy number (rationals for floats): certificates and recursions stay exact."""


def _polynomial(name: str, phi: sp.Expr) -> DualKernel:
    return DualKernel(name=name, phi=phi, value=polynomial_kernel(phi),
                      derivative=polynomial_kernel(sp.diff(phi, x_symbol)), method=CLOSED_FORM)


@functools.cache
def dual_kernel(activation: str, params: tuple = ()) -> DualKernel:
    """The dual pair of a registered activation (:mod:`theory.activations`): the entry's closed form, exact
    Gaussian moments when phi is a polynomial, else quadrature (``method``)."""
    from theory.architecture import SpecError

    try:
        entry = activations.get(activation)
    except activations.RegistryError as error:
        raise SpecError(str(error)) from None
    p = dict(entry.defaults)
    p.update(params)
    phi = entry.expression(p)
    if entry.dual is not None:
        value, derivative = entry.dual(p)
        return DualKernel(name=activation, phi=phi, value=sp.sympify(value, strict=True), derivative=sp.sympify(derivative, strict=True),
                          method=CLOSED_FORM)
    if entry.polynomial_degree(p) is not None:
        return _polynomial(activation, sp.expand(phi))
    return DualKernel(name=activation, phi=phi, value=None, derivative=None, method=QUADRATURE)


activations.on_change(dual_kernel.cache_clear)


def dual_for(arch: "Architecture") -> DualKernel:
    return dual_kernel(arch.activation, arch.activation_params)


# ----------------------------------------------------------------------------------------------
# Certificates
# ----------------------------------------------------------------------------------------------

_w = sp.Symbol("w", positive=True)


def _on_domain(expr: sp.Expr) -> sp.Expr:
    """Substitute c = sqrt(ab) (1 - w^2) / (1 + w^2), w > 0, which sweeps the open domain |c| < sqrt(ab).

    On it sqrt(ab - c^2) = 2 sqrt(ab) w / (1 + w^2) is explicit, so sympy can decide whether a residual
    containing square roots vanishes on the whole domain.
    """
    return expr.subs(c_var, sp.sqrt(a_var * b_var) * (1 - _w**2) / (1 + _w**2))


_TRIG_OR_HYPERBOLIC = (sp.sinh, sp.cosh, sp.tanh, sp.sin, sp.cos, sp.tan)


def _as_exponentials(expr: sp.Expr) -> sp.Expr:
    """``expr`` with sinh, cosh, sin, cos, ... rewritten as exponentials, expanded and merged (an identity, so a 0
    it reaches is a proof): simplify leaves exp(-x) sinh(x) + exp(-2x)/2 - 1/2 (the diagonal of sin(w x)'s dual)
    standing, and took 8 s to get nowhere on it."""
    return sp.expand(sp.powsimp(sp.expand(expr.rewrite(sp.exp)), combine="exp"))


REFUTING_POINTS = ((sp.Rational(5, 4), sp.Rational(7, 9), sp.Rational(1, 3)),
                   (sp.Rational(2, 3), sp.Rational(3, 2), sp.Rational(-1, 2)))
"""Points (a, b, c) inside the domain |c| < sqrt(ab) at which a residual in a, b, c alone is evaluated (40 digits)
before it is simplified: a value clearly off zero refutes the identity at once."""


def refuted_at_a_point(expr: sp.Expr) -> bool:
    """Whether ``expr`` (free symbols among a, b, c) is nonzero at a point of :data:`REFUTING_POINTS`: evaluated to
    40 and to 80 digits, the two values agree to 1e-10 relative and exceed 1e-25 (round-off of a true zero, even
    one that cancels large terms, shrinks with the digits instead). A nonzero value at one point of the domain
    proves the identity false, so it needs no simplification: sympy's simplify took 27 s to refute a wrong sin
    dual's Price residual, this 0.02 s. Anything that does not evaluate to a finite number refutes nothing."""
    if not expr.free_symbols <= {a_var, b_var, c_var}:
        return False
    for a, b, c in REFUTING_POINTS:
        at_point = expr.subs({a_var: a, b_var: b, c_var: c})
        try:
            low, high = (complex(sp.N(at_point, digits)) for digits in (40, 80))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            continue
        if all(map(cmath.isfinite, (low, high))) and abs(high) > 1e-25 and abs(low - high) <= 1e-10 * abs(high):
            return True
    return False


def is_zero_on_domain(expr: sp.Expr) -> sp.Expr:
    """Simplified residual of ``expr`` on |c| < sqrt(ab); ``0`` certifies the identity. A residual that is clearly
    nonzero at a point of the domain (:func:`refuted_at_a_point`) is returned as it is, unsimplified."""
    if expr.has(*_TRIG_OR_HYPERBOLIC) and _as_exponentials(expr) == 0:  # the cheap route first (0.1 s against 8 s)
        return sp.Integer(0)
    if refuted_at_a_point(expr):
        return expr
    residual = sp.simplify(expr)
    if residual == 0:
        return residual
    residual = sp.simplify(sp.factor(sp.simplify(_on_domain(residual))))
    if residual != 0 and residual.has(*_TRIG_OR_HYPERBOLIC):
        rewritten = _as_exponentials(residual)
        if rewritten == 0:
            return rewritten
    return residual


def gaussian_expectation(f: sp.Expr, variance=a_var) -> sp.Expr:
    """E[f(u)] for u ~ N(0, variance), by sympy integration."""
    density = sp.exp(-x_symbol**2 / (2 * variance)) / sp.sqrt(2 * sp.pi * variance)
    return sp.simplify(sp.integrate(sp.expand(f * density), (x_symbol, -sp.oo, sp.oo)))


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A symbolic identity ``expression == 0`` over |c| < sqrt(ab), and its simplified ``residual``.

    ``residual == 0`` proves it; ``expression`` is kept unsimplified so that it can also be evaluated
    numerically at random points (a wrong simplification cannot then pass unnoticed).
    """

    name: str
    expression: sp.Expr
    residual: sp.Expr

    @property
    def proven(self) -> bool:
        return self.residual == 0


def _certificate(name: str, expression: sp.Expr) -> Certificate:
    return Certificate(name=name, expression=expression, residual=is_zero_on_domain(expression))


def price_certificate(kernel: DualKernel) -> Certificate:
    """d/dc E[phi(u) phi(v)] - E[phi'(u) phi'(v)] = 0 (Price's theorem)."""
    return _certificate("price: d/dc value = derivative", sp.diff(kernel.value, c_var) - kernel.derivative)


def factorization_certificate(kernel: DualKernel, *, derivative: bool = False) -> Certificate:
    """value(c = 0) - E[phi(u)] E[phi(v)] = 0: at zero covariance u and v are independent."""
    expr = kernel.derivative if derivative else kernel.value
    f = kernel.phi_prime if derivative else kernel.phi
    mean_u = gaussian_expectation(f, a_var)
    mean_v = mean_u.subs(a_var, b_var)
    which = "derivative" if derivative else "value"
    return _certificate(f"factorization at c = 0 ({which})", expr.subs(c_var, 0) - mean_u * mean_v)


def step_density_certificate() -> Certificate:
    """Price's theorem for the step kernel: d/dc E[step(u) step(v)] is the N(0, Sigma) density at 0."""
    density_at_origin = 1 / (2 * sp.pi * sp.sqrt(a_var * b_var - c_var**2))
    return _certificate("price for step: d/dc step-kernel = density at 0",
                        sp.diff(step_kernel(), c_var) - density_at_origin)


DIAGONAL_NAME = "diagonal: value(a, a, a) = E[phi(u)^2]"

DIAGONAL_INTEGRAL_SECONDS = 30.0
"""How long the diagonal certificate of a registered (not built-in) activation lets sympy integrate E[phi(u)^2]: a
trial's GELU (x^2 Phi(x)^2 under a Gaussian) ran for over 10 minutes with no word. Past it the certificate is left out
and K1 checks the identity numerically instead (its row says so). The built-in activations' integrals are known to
finish (1-5 s each on 2 loaded cores) and run in the process without a limit."""


class IntegralTimeout(Exception):
    """Sympy did not finish an integral within its time limit (or could not be asked to in a fresh process)."""


_EXPECTATION_PROGRAM = (
    "import pickle, sys\n"
    "from theory.dual import gaussian_expectation\n"
    "f, variance = pickle.load(sys.stdin.buffer)\n"
    "pickle.dump(gaussian_expectation(f, variance), sys.stdout.buffer)\n")
"""What the fresh interpreter of :func:`expectation_within` runs: its input and output are pickles of sympy
expressions made by this process (never text to parse)."""


def expectation_within(f: sp.Expr, seconds: float, variance=a_var) -> sp.Expr:
    """:func:`gaussian_expectation` computed by a fresh interpreter that is ended after ``seconds``
    (:class:`IntegralTimeout`). A separate process, not a signal in this one: interrupting sympy's integration can
    leave its global tables half built (meijerint's lookup table: erf's integrals then stayed unevaluated for the
    rest of the process, a review found). Not multiprocessing: its spawned child runs the user's main script again."""
    import os
    import pickle
    import subprocess
    import sys

    try:
        given = pickle.dumps((f, variance))
    except Exception as error:  # e.g. a sympy function class defined in a script
        raise IntegralTimeout(f"could not be handed to a fresh process ({type(error).__name__}: {error})") from None
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    try:
        done = subprocess.run([sys.executable, "-c", _EXPECTATION_PROGRAM], input=given, capture_output=True,
                              timeout=seconds, env=environment, check=False)
    except subprocess.TimeoutExpired:
        raise IntegralTimeout(f"not finished within {seconds:g} s") from None
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise IntegralTimeout(f"its process failed ({last})")
    return pickle.loads(done.stdout)


def _built_in(name: str) -> bool:
    """Whether the registry's entry ``name`` is the built-in one (a kernel made by hand may name no entry)."""
    try:
        entry = activations.get(name)
    except activations.RegistryError:
        return False
    return any(entry is built_in for built_in in activations.BUILTIN)


def diagonal_certificate(kernel: DualKernel) -> Certificate:
    """value(b = c = a) - E[phi(u)^2] = 0, the kernel on the diagonal against a direct 1-D integral. For an
    activation that is not built in, sympy integrates in a fresh process given :data:`DIAGONAL_INTEGRAL_SECONDS`,
    and :class:`IntegralTimeout` says it did not finish."""
    if _built_in(kernel.name):
        expectation = gaussian_expectation(kernel.phi**2, a_var)
    else:
        expectation = expectation_within(kernel.phi**2, DIAGONAL_INTEGRAL_SECONDS)
    return _certificate(DIAGONAL_NAME, kernel.value_diagonal - expectation)


_DIAGONAL_LEFT_OUT: dict = {}
"""DualKernel -> why :func:`certificates` left its diagonal certificate out (IntegralTimeout's words)."""


@functools.cache
def certificates(kernel: DualKernel) -> list[Certificate]:
    """Every symbolic certificate that applies to ``kernel`` (none for quadrature activations). The diagonal one is
    left out when sympy cannot integrate E[phi(u)^2] in time (:data:`DIAGONAL_INTEGRAL_SECONDS`): see
    :func:`diagonal_left_out`."""
    if kernel.method != CLOSED_FORM:
        return []
    out = [price_certificate(kernel), factorization_certificate(kernel),
           factorization_certificate(kernel, derivative=True)]
    entry = activations.get(kernel.name)
    if entry.piecewise_linear:
        out.append(step_density_certificate())
    if entry.certify_diagonal:
        try:
            out.append(diagonal_certificate(kernel))
        except IntegralTimeout as error:
            _DIAGONAL_LEFT_OUT[kernel] = str(error)
    return out


def _forget_certificates() -> None:  # an entry registered again may differ in its traits (certify_diagonal, ...)
    certificates.cache_clear()
    _DIAGONAL_LEFT_OUT.clear()


activations.on_change(_forget_certificates)


def diagonal_left_out(kernel: DualKernel) -> str | None:
    """Why :func:`certificates` could not build the diagonal certificate the entry asks for (e.g. "not finished
    within 30 s"), or None when it did or the entry does not ask for one."""
    if kernel.method != CLOSED_FORM or not activations.get(kernel.name).certify_diagonal:
        return None
    certificates(kernel)
    return _DIAGONAL_LEFT_OUT.get(kernel)
