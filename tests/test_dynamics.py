"""theory.dynamics: the certificates of claim D1 reduce to 0, and deliberately wrong formulas do not."""

import numpy as np
import pytest
import sympy as sp

from theory import dynamics

SPOT_TOLERANCE = 1e-10  # rational expressions of O(1) symbols evaluated in float64: measured <= 1e-13


def _assert_proven(certs):
    rng = np.random.default_rng(0)
    for cert in certs:
        assert cert.proven, f"{cert.name}: residual {cert.residual}"
        spot = dynamics.spot_check(cert, rng)
        assert spot is None or spot <= SPOT_TOLERANCE, f"{cert.name}: unreduced expression is {spot} at a random point"


def test_modal_flow_certificates():
    _assert_proven(dynamics.modal_flow_certificates())


def test_flow_certificates_on_explicit_jacobian():
    certs = dynamics.flow_certificates()
    assert len(certs) == 7
    _assert_proven(certs)


@pytest.mark.parametrize("momentum", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_discrete_certificates(momentum, reduction):
    _assert_proven(dynamics.gd_certificates(2, momentum=momentum, reduction=reduction))


def test_induction_certificates_any_size():
    """Proven for matrix symbols, and exactly 0 at explicit random matrices (3 x 4, exact rationals)."""
    certs = dynamics.induction_certificates()
    assert all(dynamics.spot_check(cert, np.random.default_rng(0)) == 0 for cert in certs)
    _assert_proven(certs)


def test_matrix_spot_check_sees_a_wrong_step():
    """The momentum update with its sign flipped (m_{s+1} = beta m_s + c J^T r_s) is nonzero at explicit matrices,
    while the right step is exactly 0."""
    n, p = sp.symbols("n p", positive=True, integer=True)
    J, alpha, r = sp.MatrixSymbol("J", n, p), sp.MatrixSymbol("alpha", n, 1), sp.MatrixSymbol("r", n, 1)
    beta, c = dynamics.beta_symbol, sp.Symbol("c", positive=True)
    m = -J.T * alpha
    wrong = (beta * m + c * J.T * r) + J.T * (beta * alpha + c * r)  # the right step would give 0
    assert dynamics.matrix_spot_check(wrong, np.random.default_rng(0)) > 1e-3
    assert dynamics.matrix_spot_check((beta * m - c * J.T * r) + J.T * (beta * alpha + c * r),
                                      np.random.default_rng(0)) == 0


def test_plain_gd_residual_sum_is_the_step_accumulator():
    """Without momentum, alpha_T = sum_s eta_s r_s is the right accumulator."""
    _assert_proven(dynamics.gd_certificates(2, accumulator="residual"))


def test_mean_loss_without_one_over_n_fails():
    certs = dynamics.gd_certificates(2, reduction="mean", dual_scale=1)
    assert not any(cert.proven for cert in certs)
    assert dynamics.spot_check(certs[-1], np.random.default_rng(1)) > 1e-6


def test_momentum_with_plain_residual_sum_fails():
    certs = dynamics.gd_certificates(2, momentum=True, accumulator="residual")
    assert not any(cert.proven for cert in certs)
    assert dynamics.spot_check(certs[-1], np.random.default_rng(1)) > 1e-6


def test_wrong_flow_closed_form_fails():
    """exp(-2 eta K t) in place of exp(-eta K t): the ODE residual is nonzero, the initial value still holds."""
    system = dynamics.flow_system()
    wrong = system.delta_theta.subs({e: e**2 for e, _ in system.modes})
    assert not dynamics.certificate("wrong ODE", dynamics.ode_residual(system, wrong)).proven
    assert dynamics.certificate("wrong initial value", wrong.subs({e: 1 for e, _ in system.modes})).proven


def test_wrong_mode_fails():
    k, rho = sp.symbols("k rho", positive=True)
    eta, t = dynamics.eta_symbol, dynamics.t_symbol
    wrong = rho * (1 - sp.exp(-eta * k * t)) / (2 * k)
    cert = dynamics.certificate("wrong mode", sp.diff(wrong, t) - eta * (rho - k * wrong))
    assert not cert.proven
    assert dynamics.spot_check(cert, np.random.default_rng(0)) > 1e-6


def test_cayley_is_orthogonal():
    q = sp.symbols("a b c", real=True)
    Q = dynamics.cayley(q, 3)
    assert (Q * Q.T).applyfunc(sp.cancel) == sp.eye(3)


def test_bad_options():
    with pytest.raises(ValueError, match="reduction"):
        dynamics.gd_certificates(2, reduction="median")
    with pytest.raises(ValueError, match="accumulator"):
        dynamics.gd_certificates(2, accumulator="adam")
    with pytest.raises(ValueError, match="steps"):
        dynamics.gd_certificates(0)
    with pytest.raises(ValueError, match="Cayley"):
        dynamics.cayley(sp.symbols("a b"), 3)
    with pytest.raises(ValueError, match="n <= p"):
        dynamics.flow_system(3, 2)
