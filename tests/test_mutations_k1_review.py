"""A review's mutations under which K1 passed: each now makes the claim itself FAIL at the step that covers the
code, and the real code passes the same step (see test_mutations_k1.py). Each runs one step on the smallest --arch
set that shows it."""

from __future__ import annotations

import pytest

from claim_mutation import failed_outcomes, mutated as _mutated
from numerics import kernels
from proofs_check.claims import k1
from theory import layers
from test_mutations_k1 import fresh_caches  # noqa: F401  (autouse: compiled kernels traced afresh)


def _fails_only_when_mutated(monkeypatch, tmp_path, step_name: str, spec: str, module, name: str, mutation) -> list:
    """The step passes on ``spec`` with the real code, fails with ``module.name`` replaced by ``mutation``."""
    assert not failed_outcomes(k1.CLAIM, step_name, tmp_path / "real", [spec], all_applicable=True)
    monkeypatch.setattr(module, name, mutation)
    kernels._clear_caches()  # rebuilt, so retraced; jax's own caches are kept (a stale trace could only hide it)
    failed = failed_outcomes(k1.CLAIM, step_name, tmp_path / "mutated", [spec])
    assert failed, f"{step_name} passed under the mutation"
    return failed


def test_empirical_ntk_with_the_bias_term_doubled_fails_k1(monkeypatch, tmp_path):
    """numerics.kernels.empirical_ntk with sigma_b^2 -> 2 sigma_b^2: 2% off, which (c)'s fitted slope absorbs;
    (b) compares it with neural-tangents' empirical_ntk_fn at the same parameters."""
    mutation = _mutated(kernels, "empirical_ntk", "arch.sigma_b**2 if ntk_param", "2 * arch.sigma_b**2 if ntk_param")
    failed = _fails_only_when_mutated(monkeypatch, tmp_path, "(b) neural-tangents", "erf:2:sw=1.3:sb=0.1",
                                      kernels, "empirical_ntk", mutation)
    assert all("empirical_ntk" in line for line in failed), failed


def test_same_padding_that_pads_even_windows_on_the_wrong_side_fails_k1(monkeypatch, tmp_path):
    """theory.layers.same_offsets with k // 2 zeros before instead of (k - 1) // 2: wrong for even windows only;
    (e) runs a window of 2 against neural-tangents."""
    mutation = _mutated(layers, "same_offsets", "before = (int(taps) - 1) // 2", "before = int(taps) // 2")
    failed = _fails_only_when_mutated(monkeypatch, tmp_path, "(e) conv neural-tangents",
                                      "sw=1.3 > conv2 > relu > flatten > dense", layers, "same_offsets", mutation)
    assert any("neural-tangents' kernel_fn" in line for line in failed), failed


def test_same_padding_mutation_also_fails_the_conv_step_derivation(monkeypatch, tmp_path):
    """The derivation reads SAME offsets written out by hand (theory.kernels.SAME_OFFSETS), not the code's."""
    monkeypatch.setattr(layers, "same_offsets", _mutated(layers, "same_offsets", "before = (int(taps) - 1) // 2",
                                                         "before = int(taps) // 2"))
    failed = failed_outcomes(k1.CLAIM, "layer steps", tmp_path)
    assert failed and all("window 2" in line for line in failed), failed


def test_flatten_without_the_positions_in_its_fan_in_fails_k1(monkeypatch, tmp_path):
    """theory.layers.Flatten.fan_in_factor returning 1 instead of P: the readout's fan-in after flatten matters only
    in the standard parametrization, which (e) runs through flatten."""
    failed = _fails_only_when_mutated(monkeypatch, tmp_path, "(e) conv neural-tangents",
                                      "param=standard > conv3 > relu > flatten > dense", layers.Flatten,
                                      "fan_in_factor", lambda self, shape: 1)
    assert any("neural-tangents' kernel_fn" in line for line in failed), failed


@pytest.mark.parametrize("step_name", ["(a) quadrature", "(b) neural-tangents"])
def test_quadrature_diagonal_at_the_wrong_scale_fails_k1(step_name, monkeypatch, tmp_path):
    """The quadrature's value_diagonal with u = a z instead of sqrt(a) z: (a) compares the diagonal with scipy, (b)
    a two-layer tanh (whose second layer reads the diagonal) with neural-tangents' ElementwiseNumerical."""
    mutation = _mutated(kernels, "_quadrature_pair", "return jnp.sqrt(a)[..., None] * z, weights",
                        "return a[..., None] * z, weights")
    failed = _fails_only_when_mutated(monkeypatch, tmp_path, step_name, "expr:2:sw=1.3:sb=0.1:phi=tanh(x)",
                                      kernels, "_quadrature_pair", mutation)
    assert any("quadrature" in line for line in failed), failed


@pytest.mark.parametrize("old, new", [
    # the derivative kernel summed over phi's Hermite coefficients instead of phi''s (d_n = h_n)
    ("series(a, b, c, (0, 1), [(0, 0), (1, 1)])", "series(a, b, c, (0, 1), [(0, 0), (0, 0)])"),
    # one Horner term dropped (n = 2: phi' = 1 - tanh^2 is even, so its d_2 is far from 0)
    ("sums = functools.partial(mehler_sums, _correlation(a, b, c), [(ha[..., i, :], hb[..., j, :])",
     "sums = functools.partial(mehler_sums, _correlation(a, b, c), [(ha[..., i, :].at[..., 2].set(0), hb[..., j, :])")])
def test_the_duals_mehler_series_with_a_wrong_term_fails_k1(old, new, monkeypatch, tmp_path):
    """numerics.kernels' Mehler series of a formula activation's duals (taken at the variances of (a)) with a wrong
    coefficient set or a term left out: (a) compares the pair with scipy (measured by hand with the proofs-check CLI
    on expr:2:phi=tanh(x): (a) 0.83 and 0.065 off, (b) and (c) fail too). Dropping the last term (n = 256, ~1e-20
    at these variances) passes, as it should: it changes nothing K1 can resolve."""
    mutation = _mutated(kernels, "_quadrature_pair", old, new)
    failed = _fails_only_when_mutated(monkeypatch, tmp_path, "(a) quadrature", "expr:2:phi=tanh(x)", kernels,
                                      "_quadrature_pair", mutation)
    assert any("scipy quadrature" in line for line in failed), failed


def test_closed_form_recursion_is_also_evaluated_at_exact_rationals(monkeypatch, tmp_path):
    """The depth-1 identity is checked numerically too: a closed form off by one part in a million leaves a spot
    value far above 1e-12, whatever the simplification says (here: it says 0)."""
    import sympy as sp

    from theory import kernels as theory_kernels

    real = theory_kernels.relu_ntk_depth_one
    monkeypatch.setattr(theory_kernels, "relu_ntk_depth_one", lambda arch: real(arch) * (1 + sp.Rational(1, 10**6)))
    monkeypatch.setattr(sp, "simplify", lambda expr, *args, **kwargs: sp.Integer(0))
    failed = failed_outcomes(k1.CLAIM, "recursion", tmp_path, ["relu:1"])
    assert len(failed) == 2 and all("closed-form one-hidden-layer NTK" in line for line in failed), failed
