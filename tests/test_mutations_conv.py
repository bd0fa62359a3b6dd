"""Deliberate bugs in the convolution, pooling and residual steps make claim K1 itself FAIL.

Each mutation is planted in the one symbolic definition (theory.layers), from which both the compiled kernel and
the 40-digit reference are generated, so only the independent references (neural-tangents' stax kernels, the
derivations from the layers' definitions) can catch it. The convolutional chains of K1(e) are narrowed to one
chain that shows each bug (the claim's code unchanged otherwise), to keep the tests short; the first test also
shows that the narrowed K1(e) passes without the bug."""

from __future__ import annotations

import jax
import pytest
import sympy as sp

from numerics import kernels
from proofs_check.claims import k1
from theory import layers
from proofs_check.claims import k1
from claim_mutation import failed_outcomes


def _failed(step_name: str, tmp_path, archs=()) -> list[str]:
    return failed_outcomes(k1.CLAIM, step_name, tmp_path, archs)


@pytest.fixture(autouse=True)
def fresh_caches():
    jax.clear_caches()
    kernels._clear_caches()
    yield
    kernels._clear_caches()


CONV = "(e) conv neural-tangents"


def test_patch_without_zero_padding_fails_k1(monkeypatch, tmp_path):
    """The border reads the nearest pixel (replicate padding) instead of zeros."""
    def clamped(position, offset, shape):
        return tuple(min(max(p + o, 0), n - 1) for p, o, n in zip(position, offset, shape))

    monkeypatch.setattr(k1, "CONV_QUICK", (("relu", 2, 0.1, "flatten", 1),))
    monkeypatch.setattr(k1, "CONV_SPECS", ())
    assert not _failed(CONV, tmp_path)
    monkeypatch.setattr(layers, "shifted_position", clamped)
    kernels._clear_caches()
    assert _failed(CONV, tmp_path)


def test_patch_mean_over_the_wrong_count_fails_k1(monkeypatch, tmp_path):
    """A 2D window's patch sum divided by kh + kw (= 6 for 3x3) instead of kh kw (= 9)."""
    real = layers.Conv.step

    def step(self, patch=None):
        out = real(self, patch)
        count, wrong = len(self.offsets), sum(self.window)
        fix = sp.Rational(count, wrong)
        sb2 = layers._exact(self.sigma_b) ** 2  # every output is sigma_w^2 (patch sums) / count + sigma_b^2
        return layers.PairState(*((v - sb2) * fix + sb2 for v in out.as_tuple()))

    monkeypatch.setattr(layers.Conv, "step", step)
    monkeypatch.setattr(k1, "CONV_QUICK", (("relu", 1, 0.1, "gap", 2),))
    monkeypatch.setattr(k1, "CONV_SPECS", ())
    assert _failed(CONV, tmp_path)


def test_gap_averaging_only_the_diagonal_fails_k1(monkeypatch, tmp_path):
    monkeypatch.setattr(layers.GlobalAveragePool, "pooled_pairs", layers.Flatten.pooled_pairs)
    monkeypatch.setattr(k1, "CONV_QUICK", (("relu", 1, 0.0, "gap", 1),))
    monkeypatch.setattr(k1, "CONV_SPECS", ())
    assert _failed(CONV, tmp_path)


def test_residual_step_with_a_cross_term_fails_k1(monkeypatch, tmp_path):
    """Sigma' = Sigma + s^2 branch + 2 s k12: a cross term E[h phi(h')] that the branch's zero-mean weights kill."""
    real = layers.Residual.step

    def step(self, state=layers.SYMBOLIC_STATE):
        out = real(self, state)
        cross = 2 * layers._exact(self.scale) * layers.k12
        return layers.PairState(out.s11, out.s12 + cross, out.s22, out.theta + cross)

    monkeypatch.setattr(layers.Residual, "step", step)
    assert _failed("layer steps", tmp_path)
    assert _failed("(b) neural-tangents", tmp_path, ["relu:2:sb=0.1:res=0.5"])
