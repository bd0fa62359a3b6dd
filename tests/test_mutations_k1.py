"""Deliberate bugs in the kernels make K1 itself FAIL (the report is what users read; see test_mutations.py)."""

from __future__ import annotations

import jax
import pytest

from numerics import kernels
from theory import layers
from proofs_check.claims import k1
from claim_mutation import failed_outcomes


def _failed(step_name: str, tmp_path, archs=()) -> list[str]:
    return failed_outcomes(k1.CLAIM, step_name, tmp_path, archs)


@pytest.fixture(autouse=True)
def fresh_caches():
    def clear():
        jax.clear_caches()
        kernels._clear_caches()

    clear()
    yield
    clear()


def test_symbolic_ntk_update_without_the_bias_term_fails_k1(monkeypatch, tmp_path):
    """Theta_{l+1} = Sigma_{l+1} + ... written with Sigma_{l+1} - sigma_b^2 (the bias gradient dropped), in the
    dense layer's one symbolic step (theory.layers), which the compiled kernel is generated from: only
    neural-tangents and the textbook closed form can catch it."""
    real = layers.Dense.step

    def step(self, state=layers.SYMBOLIC_STATE):
        new = real(self, state)
        return layers.PairState(new.s11, new.s12, new.s22, new.theta - layers._exact(self.sigma_b) ** 2)

    assert not _failed("recursion", tmp_path, ["relu:2:sb=0.1"])
    monkeypatch.setattr(layers.Dense, "step", step)
    kernels._clear_caches()
    assert _failed("recursion", tmp_path, ["relu:2:sb=0.1"])


def test_compiled_dual_kernel_off_by_one_in_a_million_fails_k1(monkeypatch, tmp_path):
    real = kernels.dual_functions.__wrapped__

    def dual_functions(arch):
        pair, diagonal = real(arch)
        return (lambda a, b, c: tuple(v * (1 + 1e-6) for v in pair(a, b, c))), diagonal

    monkeypatch.setattr(kernels, "dual_functions", dual_functions)
    assert _failed("(b) neural-tangents", tmp_path, ["relu:2"])
    assert _failed("recursion", tmp_path, ["relu:2"])
