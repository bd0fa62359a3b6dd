"""The symbolic recursion (theory.kernels) against its compiled counterpart and a textbook closed form."""

import numpy as np
import pytest
import sympy as sp

from numerics.kernels import analytic_kernel_fn
from numerics.networks import make_network
from theory.architecture import parse_spec
from theory.kernels import as_arccos, compose, dim, q11, q12, q22, relu_ntk_depth_one, width_symbol


@pytest.mark.parametrize("spec", ["relu:2:sb=0.1", "erf:2:sw=1.5", "abrelu:1:a=-0.3:b=1", "relu:2:param=standard:sb=0.2"])
def test_symbolic_recursion_matches_compiled_kernel(spec):
    arch = parse_spec(spec)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4))
    state = compose(arch)
    values = {q11: x[0] @ x[0], q22: x[1] @ x[1], q12: x[0] @ x[1], dim: 4, width_symbol: 32}
    symbolic = float(state.theta.subs(values).evalf(30))
    compiled = float(analytic_kernel_fn(arch, width=32)(x[:1], x[1:])[1][0, 0])
    # the same recursion evaluated two ways (30-digit sympy vs float64 JAX): float64 round-off
    assert abs(symbolic - compiled) <= 1e-12 * abs(symbolic)


def test_recursion_equals_textbook_relu_ntk():
    arch = parse_spec("relu:1:sw=1.5")
    assert sp.simplify(as_arccos(compose(arch).theta) - relu_ntk_depth_one(arch)) == 0


def test_wrong_recursion_is_detected():
    arch = parse_spec("relu:1")
    wrong = compose(arch).theta * sp.Rational(101, 100)
    assert sp.simplify(as_arccos(wrong) - relu_ntk_depth_one(arch)) != 0


def test_quadrature_activation_cannot_be_composed_symbolically():
    with pytest.raises(ValueError, match="no closed-form"):
        compose(parse_spec("expr:2:phi=tanh(x)"))


def test_make_network_rejects_bad_width():
    with pytest.raises(ValueError, match="width"):
        make_network(parse_spec("relu:2"), 0)


def test_float_parameters_enter_the_symbolic_recursion_exactly():
    """nsimplify without rational=True turns sigma_w = 1.41421356 into sqrt(2): the symbolic kernel was then
    for another network (1e-8 off the compiled one); exact rationals keep them within round-off."""
    import numpy as np

    from numerics.kernels import analytic_kernel_fn
    from proofs_check.claims.k1 import _symbolic_kernels
    from theory.architecture import parse_spec

    arch = parse_spec("relu:2:sw=1.41421356:sb=0.1")
    x1 = np.random.default_rng(0).normal(size=(2, 3))
    x2 = x1[::-1] + 0.1
    symbolic = _symbolic_kernels(arch, x1, x2)
    compiled = np.stack(analytic_kernel_fn(arch)(x1, x2))
    assert np.abs(symbolic - compiled).max() / np.abs(symbolic).max() < 1e-13


def test_the_high_precision_recursion_reaches_deep_networks():
    """K1's 30-digit recursion is evaluated layer by layer: composed into one expression first, its printed tree grew
    4x per layer (relu:8 68 s; a trial's relu:10 never ended); relu:12 and a deep residual chain now agree with the
    compiled kernel to float64 round-off (measured 6.6e-16 and 1.8e-16; 1e-13 as K1's own row)."""
    from numerics.kernels import analytic_kernel_fn
    from proofs_check.claims.k1 import _symbolic_kernels

    x1 = np.random.default_rng(1).normal(size=(2, 3))
    x2 = x1[::-1] + 0.1
    for spec in ("relu:12:sb=0.1", "erf:9:res=0.5"):
        arch = parse_spec(spec)
        symbolic = _symbolic_kernels(arch, x1, x2)
        compiled = np.stack(analytic_kernel_fn(arch)(x1, x2))
        assert np.abs(symbolic - compiled).max() / np.abs(symbolic).max() < 1e-13, spec
