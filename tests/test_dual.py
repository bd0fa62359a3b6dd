"""Symbolic dual kernels: certificates are exact, and they can fail."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given
from hypothesis import strategies as st

from numerics.quadrature import gaussian_expectation_2d, scalar_function
from theory.dual import (DualKernel, a_var, b_var, c_var, certificates, dual_kernel, factorization_certificate,
                         gaussian_moment, price_certificate, relu_kernel, step_kernel, x_symbol)

CLOSED = [("relu", ()), ("erf", ()), ("identity", ()), ("leaky_relu", (("alpha", 0.1),)),
          ("abrelu", (("a", -0.5), ("b", 1.0))), ("monomial", (("k", 3),)), ("poly", (("coeffs", (0.5, 1.0, 0.25)),))]


@pytest.mark.parametrize("name, params", CLOSED)
def test_certificates_are_exact(name, params):
    certs = certificates(dual_kernel(name, params))
    assert certs and all(cert.residual == 0 for cert in certs)


def test_wrong_relu_kernel_fails_price():
    wrong = DualKernel(name="relu", phi=sp.Max(x_symbol, 0), value=relu_kernel() * sp.Rational(11, 10),
                       derivative=step_kernel(), method="closed form")
    assert price_certificate(wrong).residual != 0


def test_wrong_erf_constant_fails_factorization():
    erf = dual_kernel("erf")
    wrong = DualKernel(name="erf", phi=erf.phi, value=erf.value + sp.Rational(1, 100), derivative=erf.derivative,
                       method="closed form")
    assert factorization_certificate(wrong).residual != 0
    assert price_certificate(wrong).residual == 0  # a constant shift is invisible to Price: hence both checks



def test_a_hyperbolic_closed_form_is_certified_on_the_diagonal():
    """sin(w x)'s dual exp(-w^2 (a + b) / 2) sinh(w^2 c): its diagonal residual exp(-x) sinh(x) + exp(-2x)/2 - 1/2
    (x = w^2 a) is 0, which simplify left standing (a new user's registered entry failed K1 on it). The certificate
    now rewrites hyperbolic functions as exponentials."""
    from theory.dual import diagonal_certificate, is_zero_on_domain

    w = sp.Rational(4, 5)
    decay = sp.exp(-w**2 * (a_var + b_var) / 2)
    sine = DualKernel(name="sine", phi=sp.sin(w * x_symbol), value=decay * sp.sinh(w**2 * c_var),
                      derivative=w**2 * decay * sp.cosh(w**2 * c_var), method="closed form")
    assert diagonal_certificate(sine).proven  # ~1 s: E[sin(w u)^2] by sympy, the residual by the exponential rewrite
    assert price_certificate(sine).proven
    # the residual it left, by the rule itself (the rewrite as exponentials is an identity: it proves nothing false)
    x = w**2 * a_var
    assert is_zero_on_domain(sp.exp(-x) * sp.sinh(x) + sp.exp(-2 * x) / 2 - sp.Rational(1, 2)) == 0
    # a wrong dual (decay over 3, not 2; derivative 10% off) is refuted by its value at a point of the domain: sympy's
    # simplify took 27 s to refute its Price residual (the suite could not afford a wrong case before)
    wrong_decay = sp.exp(-w**2 * (a_var + b_var) / 3)
    wrong = DualKernel(name="sine", phi=sp.sin(w * x_symbol), value=wrong_decay * sp.sinh(w**2 * c_var),
                       derivative=sp.Rational(11, 10) * w**2 * wrong_decay * sp.cosh(w**2 * c_var), method="closed form")
    assert not price_certificate(wrong).proven and not diagonal_certificate(wrong).proven


def test_a_point_refutes_only_what_is_not_zero():
    """refuted_at_a_point: a true identity that cancels terms of size 1e26 is not refuted (its round-off shrinks with
    the digits), the same plus 1e-20 is; an identity of inverse trigonometric functions is not."""
    from theory.dual import refuted_at_a_point

    big = sp.exp(60 * a_var)
    zero = big * (sp.sinh(c_var)**2 + 1) - big * sp.cosh(c_var)**2
    assert not refuted_at_a_point(zero)
    assert refuted_at_a_point(zero + sp.Rational(1, 10**20))
    ratio = c_var / sp.sqrt(a_var * b_var)
    assert not refuted_at_a_point(sp.acos(ratio) - sp.pi / 2 + sp.asin(ratio))
    assert not refuted_at_a_point(x_symbol * a_var)  # another free symbol: nothing to evaluate

def test_isserlis_fourth_moment():
    # E[u^2 v^2] = ab + 2c^2
    assert sp.simplify(gaussian_moment(2, 2) - (a_var * b_var + 2 * c_var**2)) == 0


def test_non_polynomial_expression_uses_quadrature():
    assert dual_kernel("expr", (("phi", "tanh(x)"),)).method == "quadrature"
    assert dual_kernel("expr", (("phi", "x**3 - x"),)).method == "closed form"


covariances = st.tuples(st.floats(0.2, 3.0), st.floats(0.2, 3.0), st.floats(-1.0, 1.0))


@given(covariances)
@example((1.0, 1.0, 1.0))   # angle 0 (coincident inputs)
@example((2.0, 0.5, -1.0))  # angle pi (antipodal inputs)
def test_relu_pair_matches_quadrature(abr):
    a, b, r = abr
    c = r * np.sqrt(a * b)
    kernel = dual_kernel("relu")
    value = float(kernel.value.subs({a_var: a, b_var: b, c_var: c}).evalf())
    derivative = float(kernel.derivative.subs({a_var: a, b_var: b, c_var: c}).evalf())
    f, fp = scalar_function(kernel.phi), scalar_function(kernel.phi_prime)
    # scipy's nested quad runs at 1e-12 absolute; 1e-9 covers its error estimate with margin
    assert abs(value - gaussian_expectation_2d(f, f, a, b, c)) <= 1e-9
    assert abs(derivative - gaussian_expectation_2d(fp, fp, a, b, c)) <= 1e-9


@pytest.mark.parametrize("phi", [x_symbol**3 - 2 * x_symbol + sp.Rational(1, 3),
                                 3 * x_symbol**4 + x_symbol**2 - 5 * x_symbol, x_symbol**5 - x_symbol**2 + 2])
def test_mehler_series_of_a_polynomial_terminates_at_the_exact_gaussian_moments(phi):
    """The Mehler series behind numerics.kernels' dual kernels without a closed form (k = sum_n rho^n h_n(a) h_n(b),
    theory.dual.mehler_kernel), in exact arithmetic: for phi of degree p the coefficients vanish past n = p, the
    series up to n = p is the Isserlis dual of phi and of phi', and Parseval's sum_n h_n(a)^2 is E[phi(u)^2]."""
    from theory.dual import hermite_coefficient, mehler_kernel, polynomial_kernel

    degree = sp.degree(phi, x_symbol)
    assert hermite_coefficient(phi, degree + 1) == 0 and hermite_coefficient(phi, degree + 2) == 0
    assert hermite_coefficient(phi, degree) != 0
    assert sp.expand(mehler_kernel(phi, phi, degree + 1) - polynomial_kernel(phi)) == 0
    prime = sp.diff(phi, x_symbol)
    assert sp.expand(mehler_kernel(prime, prime, degree) - polynomial_kernel(prime)) == 0
    parseval = sum(hermite_coefficient(phi, n) ** 2 for n in range(degree + 1))
    assert sp.expand(parseval - polynomial_kernel(phi).subs({b_var: a_var, c_var: a_var})) == 0
    # one term short is not the kernel (the check can fail)
    assert sp.expand(mehler_kernel(phi, phi, degree) - polynomial_kernel(phi)) != 0
