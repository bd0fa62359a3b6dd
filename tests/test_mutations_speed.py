"""Deliberate bugs in the cheaper attack formulations make R1 FAIL (the claim, not only a unit test).

As tests/test_mutations.py: each mutation is a one-line bug applied in-process, and the owning R1 step is run on
the quick profile with proofs_check.registry.run_step; the same steps pass unmutated in tests/test_claim_r1_t1.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from numerics import attack
from proofs_check.claims import r1
from claim_mutation import clear_attack_caches, failed_outcomes


@pytest.fixture(autouse=True)
def fresh_caches():
    """Compiled functions look global names up when traced: clear the caches around each mutation."""
    clear_attack_caches()
    yield
    clear_attack_caches()


def _failed(name: str, tmp_path) -> list[str]:
    """One R1 step on relu:2 alone (the bias-free chain, as the mutations below need; the default adds a biased one)."""
    return failed_outcomes(r1.CLAIM, name, tmp_path, archs=("relu:2",))


def _quadratic_term_halved(monkeypatch):
    """lambda^T K lambda computed as half of itself (a lost factor in the layer-by-layer Gram form)."""
    real = attack._quadratic
    monkeypatch.setattr(attack, "_quadratic", lambda factors, lam: 0.5 * real(factors, lam))


def _weight_scale_dropped(monkeypatch):
    """J Delta theta without the weight scale s_W of the NTK parametrization (s_W = 1 instead of sigma_w/sqrt(n))."""
    monkeypatch.setattr(attack, "_layer_scales", lambda arch, fan_in: (1.0, 0.0))


def _readout_vectors_transposed(monkeypatch):
    """The backpropagated vectors of every layer summed over outputs (g_i = sum_k delta_ik instead of lambda-weighted)."""
    monkeypatch.setattr(attack, "_quadratic", lambda factors, lam: sum(
        jnp.sum(gram * (jnp.sum(back, axis=1) @ jnp.sum(back, axis=1).T)) for gram, back in factors))


@pytest.mark.parametrize("mutate", [_quadratic_term_halved, _weight_scale_dropped, _readout_vectors_transposed],
                         ids=lambda m: m.__name__.strip("_"))
def test_kernel_form_mutation_fails_r1_attack_gradient(mutate, monkeypatch, tmp_path):
    mutate(monkeypatch)
    failed = _failed("attack gradient", tmp_path)
    assert any("(kernel form)" in name for name in failed), failed


def _curvature_dropped(monkeypatch):
    """The fused reverse sweep without the phi'' term (the slopes' own dependence on X forgotten)."""
    real = attack._activation_derivatives

    def without_curvature(phi, h):
        value, slope, curvature = real(phi, h)
        return value, slope, jnp.zeros_like(curvature)

    monkeypatch.setattr(attack, "_activation_derivatives", without_curvature)


def _slope_cotangent_from_deltas(monkeypatch):
    """d E / d phi'(h^l) contracted with delta^l (slope included) instead of the pre-slope vectors u^l."""
    real = attack._FusedPass
    monkeypatch.setattr(attack, "_FusedPass", lambda inputs, slopes, curvatures, pre_slope, deltas, *rest: real(
        inputs, slopes, curvatures, deltas[:-1], deltas, *rest))


@pytest.mark.parametrize("mutate", [_curvature_dropped, _slope_cotangent_from_deltas],
                         ids=lambda m: m.__name__.strip("_"))
def test_fused_form_mutation_fails_r1_attack_gradient(mutate, monkeypatch, tmp_path):
    mutate(monkeypatch)
    failed = _failed("attack gradient", tmp_path)
    assert any("(fused form)" in name for name in failed), failed


def _stored_transposes_untransposed(monkeypatch):
    """fused_weights and fused_delta store each square weight matrix as it is instead of transposed (shapes
    still fit, the numbers do not): R1 runs the fused form on operands prepared as the attack prepares them."""

    def square_untransposed(matrix):
        return matrix if matrix.shape[0] == matrix.shape[1] else jnp.transpose(matrix)

    monkeypatch.setattr(attack, "fused_weights", lambda params: params if isinstance(params, attack.FusedWeights)
                        else attack.FusedWeights(tuple((W, square_untransposed(W), b)
                                                       for W, b in attack.dense_layers(params))))
    monkeypatch.setattr(attack, "fused_delta", lambda delta: delta._replace(transposed=tuple(
        square_untransposed(u) if v is None else None for u, v, _ in delta.layers)))


def test_unfaithful_stored_transposes_fail_r1_attack_gradient(monkeypatch, tmp_path):
    _stored_transposes_untransposed(monkeypatch)
    failed = _failed("attack gradient", tmp_path)
    assert any("(fused form)" in name for name in failed), failed
    assert not any("(JVP form)" in name or "(kernel form)" in name for name in failed), failed


def test_a_wrong_bias_scale_fails_r1_attack_gradient_on_the_biased_chain(monkeypatch, tmp_path):
    """The kernel and fused forms with the bias scale s_b doubled: invisible on bias-free relu:2 (s_b = 0), so R1's
    default chains include relu:2:sb=0.3, whose kernel-form gradient is then O(1) off."""
    real = attack._layer_scales
    monkeypatch.setattr(attack, "_layer_scales", lambda arch, fan_in: (real(arch, fan_in)[0], 2 * real(arch, fan_in)[1]))
    assert _failed("attack gradient", tmp_path / "bias-free") == []  # s_b = 0 hides it
    failed = failed_outcomes(r1.CLAIM, "attack gradient", tmp_path, archs=("relu:2:sb=0.3",))
    assert any("(kernel form)" in name for name in failed), failed


def test_profiled_gradient_mutation_fails_r1_on_the_quick_profile(monkeypatch, tmp_path):
    """The profiled loss's gradient with its X part halved: the quick profile checks the profiled form on relu:2
    (it was full-profile only, so a wrong factor there passed every quick run)."""
    real = attack.profiled_loss_and_grad

    def halved(*args, **kwargs):
        loss, grad_x, *rest = real(*args, **kwargs)
        return (loss, 0.5 * grad_x, *rest)

    monkeypatch.setattr(attack, "profiled_loss_and_grad", halved)
    failed = failed_outcomes(r1.CLAIM, "attack gradient", tmp_path)  # the default chains: the profiled form on relu:2
    assert failed and all("(profiled lambda)" in name for name in failed), failed

