"""Convolutional kernels (theory.layers Conv, GlobalAveragePool, Flatten) compiled from their symbolic steps,
against neural-tangents' stax kernel_fn on the same layers."""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from numerics import kernels
from numerics._nt import neural_tangents
from numerics.networks import stax_layer
from theory import layers
from theory.layers import Activation, Conv, Dense, Flatten, GlobalAveragePool, image_shape


def nt_kernels(chain, x1, x2, width=8):
    """neural-tangents' (nngp, ntk) of the same chain, inputs reshaped to images."""
    stax = neural_tangents().stax
    _, _, kernel_fn = stax.serial(*[stax_layer(layer, width if i < len(chain) - 1 else 1)
                                    for i, layer in enumerate(chain)])
    spatial = next(layer.spatial_dims for layer in chain if layer.kind == "conv")
    shape = image_shape(x1.shape[1], spatial)
    out = kernel_fn(x1.reshape((-1,) + shape), x2.reshape((-1,) + shape), ("nngp", "ntk"))
    return np.asarray(out.nngp), np.asarray(out.ntk)


CASES = [  # (window, d, activation, sigma_b, pooling, parametrization)
    ((3,), 6, "relu", 0.0, GlobalAveragePool(), "ntk"),
    ((3, 3), 16, "erf", 0.1, Flatten(), "ntk"),
    ((2, 3), 16, "relu", 0.1, Flatten(), "standard"),
]
"""Three of the cases K1(e) runs (the claim covers depth 1-3, both activations, poolings and dimensions); an even
window (2) and the standard parametrization are only here."""


@pytest.mark.parametrize("window, d, activation, sigma_b, pooling, parametrization", CASES)
def test_conv_kernel_matches_neural_tangents(window, d, activation, sigma_b, pooling, parametrization):
    conv = Conv(window, sigma_w=1.3, sigma_b=sigma_b, parameterization=parametrization)
    chain = (conv, Activation(activation), conv, Activation(activation), pooling,
             Dense(1.3, sigma_b, parametrization))
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=(3, d)), rng.normal(size=(2, d))
    ours = kernels.chain_kernel_fn(chain, width=8)(jnp.asarray(x1), jnp.asarray(x2))
    # the same closed forms in float64 (measured <= 1e-15 relative): 1e-10 leaves room for op order
    for mine, theirs in zip(ours, nt_kernels(chain, x1, x2)):
        assert mine.shape == (3, 2)
        assert np.abs(np.asarray(mine) - theirs).max() <= 1e-10 * np.abs(theirs).max()


def test_pooling_weights_come_from_the_symbolic_steps():
    shape = (2, 3)
    assert np.allclose(kernels.pooling_weights(GlobalAveragePool(), shape), np.full((6, 6), 1 / 36), rtol=0, atol=0)
    assert np.array_equal(kernels.pooling_weights(Flatten(), shape), np.eye(6) / 6)


def test_patch_reads_zero_padding_at_the_border():
    conv = Conv((3,))
    assert layers.same_offsets(3) == (-1, 0, 1) and layers.same_offsets(2) == (0, 1)
    assert conv.patch((0,), (2,), (4,)) == (None, ((0,), (2,)), ((1,), (3,)))
    assert conv.patch((3,), (3,), (4,)) == (((2,), (2,)), ((3,), (3,)), None)


@pytest.fixture
def fresh_compiled_kernels():
    kernels._clear_caches()
    yield
    kernels._clear_caches()


def test_perturbing_the_symbolic_conv_step_changes_the_compiled_kernel(monkeypatch, fresh_compiled_kernels):
    """Add 1/10 to Theta in Conv's sympy step: after global average pooling and a dense readout (sigma_w = 1.3)
    the compiled NTK moves by exactly 1.69 / 10, what the perturbed steps say; the NNGP does not move."""
    chain = (Conv((3, 3), sigma_w=1.1), GlobalAveragePool(), Dense(1.3))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 9)))
    before = kernels.chain_kernel_fn(chain)(x[:1], x[1:])
    original = Conv.step

    def perturbed(self, patch=None):
        out = original(self, patch)
        return layers.PairState(out.s11, out.s12, out.s22, out.theta + sp.Rational(1, 10))

    monkeypatch.setattr(Conv, "step", perturbed)
    kernels._clear_caches()
    after = kernels.chain_kernel_fn(chain)(x[:1], x[1:])
    assert float(after[0][0, 0]) == float(before[0][0, 0])
    # two float64 evaluations of kernels ~1 that differ by the 0.169 added: round-off only
    assert abs(float(after[1][0, 0] - before[1][0, 0]) - 0.169) <= 1e-14


def test_chains_are_validated():
    with pytest.raises(ValueError, match="pooling layer"):
        kernels.chain_kernel_fn((Conv((3,)), Activation("relu"), Dense()))
    with pytest.raises(ValueError, match="needs convolutions"):
        kernels.chain_kernel_fn((Dense(), GlobalAveragePool(), Dense()))
    with pytest.raises(ValueError, match="spatial axes"):
        kernels.chain_kernel_fn((Conv((3,)), Conv((3, 3)), Flatten(), Dense()))


def test_conv_kernel_gradients_are_finite_and_match_differences():
    """d/dx of the conv NTK: finite at coincident inputs (the angle edges of every same-position pixel pair), and
    equal to central differences elsewhere."""
    import jax

    chain = (Conv((3,)), Activation("relu"), Conv((3,)), Activation("relu"), GlobalAveragePool(), Dense())
    fn = kernels.chain_kernel_fn(chain)
    rng = np.random.default_rng(4)
    x, direction = jnp.asarray(rng.normal(size=(3, 6))), jnp.asarray(rng.normal(size=(3, 6)))
    assert bool(jnp.all(jnp.isfinite(jax.grad(lambda z: jnp.sum(fn(x, z)[1]))(x))))
    y = x + 0.3 * direction

    def f(z):
        return jnp.sum(fn(x, z)[1] ** 2)

    step = 1e-6
    numeric = (f(y + step * direction) - f(y - step * direction)) / (2 * step)
    # central differences: truncation O(step^2) ~ 1e-12 and cancellation eps / step ~ 1e-10 relative
    assert abs(float(jnp.vdot(jax.grad(f)(y), direction)) - float(numeric)) <= 1e-7 * abs(float(numeric))
