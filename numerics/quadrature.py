"""Independent numerical Gaussian expectations (scipy adaptive quadrature) for checking dual kernels.

E[f(u) g(v)], (u, v) ~ N(0, [[a, c], [c, b]]), as the nested integral over independent standard normals
z1, z2 with u = sqrt(a) z1, v = sqrt(b) (rho z1 + sqrt(1 - rho^2) z2), rho = c / sqrt(ab). The inner
integral is split at the kink of a piecewise activation (v = 0); at rho = +-1 the integral is 1-D.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import sympy as sp
from scipy import integrate

from theory.dual import x_symbol

SCALAR_MODULES = [{"Heaviside": lambda x, h=0.5: np.heaviside(x, h)}, "scipy", "numpy"]
_LIMIT = 12.0
"""Standard normal mass beyond |z| = 12 is below 1e-32: the truncation is far under float64 round-off."""


def scalar_function(expr: sp.Expr) -> Callable[[float], float]:
    """A sympy expression in x as a float -> float function (Max/Min/Heaviside/erf supported)."""
    fn = sp.lambdify(x_symbol, expr, modules=SCALAR_MODULES)
    return lambda value: float(fn(value))


def _normal_pdf(z: float) -> float:
    return np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def gaussian_expectation_2d(f: Callable, g: Callable, a: float, b: float, c: float, *,
                            tol: float = 1e-12) -> float:
    """E[f(u) g(v)] by nested adaptive quadrature (absolute tolerance ``tol`` per integral)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"variances must be positive, got a={a}, b={b}")
    rho = c / np.sqrt(a * b)
    if abs(rho) > 1 + 1e-12:
        raise ValueError(f"covariance {c} exceeds sqrt(ab) = {np.sqrt(a * b)}: not a covariance matrix")
    rho = float(np.clip(rho, -1.0, 1.0))
    sa, sb = np.sqrt(a), np.sqrt(b)
    _require_finite(f, sa, "f")
    _require_finite(g, sb, "g")
    s = np.sqrt(max(1.0 - rho * rho, 0.0))
    options = dict(epsabs=tol, epsrel=tol, limit=200)
    if s < 1e-12:
        value, _ = integrate.quad(lambda z: f(sa * z) * g(sb * rho * z) * _normal_pdf(z),
                                  -_LIMIT, _LIMIT, points=[0.0], **options)
        if not np.isfinite(value):
            raise ValueError(f"E[f(u) g(v)] is not finite (a={a}, b={b}, c={c})")
        return value

    def inner(z1: float) -> float:
        kink = -rho * z1 / s
        points = [kink] if -_LIMIT < kink < _LIMIT else None
        value, _ = integrate.quad(lambda z2: g(sb * (rho * z1 + s * z2)) * _normal_pdf(z2),
                                  -_LIMIT, _LIMIT, points=points, **options)
        return f(sa * z1) * _normal_pdf(z1) * value

    value, _ = integrate.quad(inner, -_LIMIT, _LIMIT, points=[0.0], **options)
    if not np.isfinite(value):
        raise ValueError(f"E[f(u) g(v)] is not finite (a={a}, b={b}, c={c})")
    return value


def _require_finite(f: Callable, scale: float, name: str) -> None:
    """Refuse, before QUADPACK sees them, integrands that are not real and finite on the integration range (a NaN
    or complex value inside nested ``quad`` calls gives garbage or crashes; theory.expressions.parse_activation
    refuses such activation formulas earlier, this is the guard for direct callers)."""
    for z in np.linspace(-_LIMIT, _LIMIT, 49):
        try:
            with np.errstate(all="ignore"):
                value = f(scale * z)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            value = float("nan")
        if np.iscomplexobj(value) or not np.isfinite(value):
            raise ValueError(f"{name}({scale * z:.3g}) = {value} is not real and finite: the Gaussian expectation "
                             f"needs a function defined on every real number")
