"""theory.reconstruction: the kernel form, profiling, and Theorem 1's proof steps as certificates."""

import numpy as np
import pytest
import sympy as sp

from theory import parse_spec
from theory import reconstruction as rec

SPOT = 1e-20
"""Spot checks evaluate with 30 significant digits: a true identity leaves ~1e-28."""


def _assert_certified(certificate, seed=0):
    assert certificate.proven, f"{certificate.name}: residual {certificate.residual}"
    assert certificate.spot_check(np.random.default_rng(seed)) < SPOT


@pytest.mark.parametrize("n_out", [1, 2])
def test_kernel_form(n_out):
    _assert_certified(rec.kernel_form_certificate(n_out=n_out))


def test_kernel_form_other_sizes():
    _assert_certified(rec.kernel_form_certificate(n_train=1, n_recon=3, n_params=2))


def test_profiling_certificates():
    certificates = rec.profile_certificates()
    assert len(certificates) == 3
    for certificate in certificates:
        _assert_certified(certificate)


def test_schur_complement_is_a_squared_norm():
    _assert_certified(rec.schur_norm_certificate())


def test_lagrange_sum_of_squares():
    _assert_certified(rec.lagrange_certificate())


def test_merge_certificate():
    _assert_certified(rec.merge_certificate())


def test_union_form_for_every_placement():
    certificates = rec.union_form_certificates(n_train=2, n_recon=2)
    # placements of 2 reconstructions on {x1, x2, fresh...} up to relabelling fresh points: 3 * 3 + 1 = 10
    assert len(certificates) == 10
    for certificate in certificates:
        assert certificate.proven, certificate.name


def test_union_form_with_an_uncovered_training_point():
    certificate = rec.union_form_certificate([0, "z", "z"], n_train=2)
    _assert_certified(certificate)


@pytest.mark.parametrize("spec", ["relu:3", "leaky_relu:2:alpha=0.2", "abrelu:1:a=-0.3:b=2"])
def test_homogeneity(spec):
    for certificate in rec.homogeneity_certificates(parse_spec(spec)):
        _assert_certified(certificate)


@pytest.mark.parametrize("spec", ["identity:1", "identity:3:sw=1.3"])
def test_linear_kernel(spec):
    _assert_certified(rec.linear_kernel_certificate(parse_spec(spec)))


@pytest.mark.parametrize("spec", ["relu:2:sb=0.1", "erf:2", "relu:2:param=standard"])
def test_homogeneity_rejects_other_architectures(spec):
    with pytest.raises(ValueError, match="bias-free"):
        rec.homogeneity_certificates(parse_spec(spec))


def test_linear_kernel_rejects_other_architectures():
    with pytest.raises(ValueError, match="identity"):
        rec.linear_kernel_certificate(parse_spec("relu:2"))


def test_a_false_identity_is_caught():
    """A sign slip in the cross term leaves a nonzero residual and a nonzero spot check."""
    j_t = sp.Matrix(2, 2, sp.symbols("a0:4", real=True))
    j_r = sp.Matrix(1, 2, sp.symbols("b0:2", real=True))
    alpha = sp.Matrix(sp.symbols("al0:2", real=True))
    lam = sp.Matrix([sp.Symbol("l0", real=True)])
    wrong = rec.kernel_form_loss(alpha, -lam, j_t * j_t.T, j_t * j_r.T, j_r * j_r.T)
    diff = j_t.T * alpha - j_r.T * lam
    expression = (diff.T * diff)[0, 0] - wrong
    certificate = rec.Certificate("sign slip", expression, sp.expand(expression))
    assert not certificate.proven
    assert certificate.spot_check(np.random.default_rng(1)) > 1e-3  # 4 alpha lambda K_TR: O(1) at values in [0.5, 1.5]


def test_kernel_is_symmetric_under_substitution():
    p, q = sp.symbols("p q")
    assert rec.kernel(p, q) - rec.kernel(q, p) == 0
    assert sp.expand(rec.kernel(p, q).subs(q, p) - 2 * rec._G(p, p)) == 0
