"""Layers written once (theory.layers): the symbolic step is what gets compiled, and shorthand specs expand to it."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from numerics import kernels, networks
from numerics.training import load_model
from theory import layers
from theory.architecture import parse_spec
from theory.kernels import compose, dim, q11, q12, q22

DATA = Path(__file__).resolve().parent / "data"


def test_shorthand_expands_to_the_serial_chain():
    chain = layers.layers_of(parse_spec("erf:2:sw=1.5:sb=0.1"))
    assert [layer.kind for layer in chain] == ["dense", "activation", "dense", "activation", "dense"]
    assert chain[0] == layers.Dense(1.5, 0.1, "ntk") and chain[1] == layers.Activation("erf", ())


@pytest.fixture
def fresh_compiled_kernels():
    def clear():
        kernels._clear_caches()

    clear()
    yield
    clear()


def test_perturbing_the_symbolic_step_changes_the_compiled_kernel(monkeypatch, fresh_compiled_kernels):
    """Add 1/10 to the NTK in Dense's sympy step: the compiled kernel moves, by exactly what the perturbed
    symbolic recursion says, so there is no second hand-written copy of the step."""
    arch = parse_spec("relu:2:sb=0.1")
    x = np.random.default_rng(0).normal(size=(2, 3))
    before = float(kernels.analytic_kernel_fn(arch)(jnp.asarray(x[:1]), jnp.asarray(x[1:]))[1][0, 0])
    original = layers.Dense.step

    def perturbed(self, state=layers.SYMBOLIC_STATE):
        out = original(self, state)
        return layers.PairState(out.s11, out.s12, out.s22, out.theta + sp.Rational(1, 10))

    monkeypatch.setattr(layers.Dense, "step", perturbed)
    kernels._clear_caches()
    after = float(kernels.analytic_kernel_fn(arch)(jnp.asarray(x[:1]), jnp.asarray(x[1:]))[1][0, 0])
    values = {q11: x[0] @ x[0], q22: x[1] @ x[1], q12: x[0] @ x[1], dim: 3}
    symbolic = float(compose(arch).theta.subs(values).evalf(30))
    assert abs(after - before) > 0.05  # at least the readout's own +1/10 times a derivative kernel ~1/2
    # the same perturbed recursion evaluated two ways (30-digit sympy vs float64 JAX): float64 round-off
    assert abs(after - symbolic) <= 1e-12 * abs(symbolic)


@pytest.mark.parametrize("name", ["relu2", "erf1_standard"])
def test_models_saved_before_layers_still_load(name):
    """Files written by the code of commit d53e4ce (spec strings relu:2, erf:1:...:param=standard) load, and
    the network their spec now expands to applies to their parameters."""
    model = load_model(DATA / f"model_{name}_d53e4ce.npz")
    network = networks.make_network(model.arch, model.width, model.out_dim)
    out = network.apply(model.params_f, jnp.ones((3, 4)))
    assert out.shape == (3, 2) and np.all(np.isfinite(np.asarray(out)))
    ours = networks.forward(model.arch, model.params_f, jnp.ones((3, 4)))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(out), rtol=1e-12)  # the same network, two passes


@pytest.mark.parametrize("spec", ["relu:1:res=0.5", "relu:3:sw=1.3:sb=0.1:res=0.5", "erf:2:sw=1.3:sb=0.1:res=0.7"])
def test_residual_kernel_matches_neural_tangents(spec):
    """x + s Dense(phi(x)) blocks: the composed steps vs neural-tangents' FanOut / parallel / FanInSum kernel_fn."""
    arch = parse_spec(spec)
    assert parse_spec(arch.spec) == arch and "res=" in arch.spec
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=(4, 5)), rng.normal(size=(3, 5))
    nngp, ntk = kernels.analytic_kernel_fn(arch)(jnp.asarray(x1), jnp.asarray(x2))
    reference = networks.make_network(arch, 64).kernel_fn(x1, x2, ("nngp", "ntk"))
    # both libraries evaluate the same closed forms in float64 (measured <= 1e-15): 1e-10 leaves room for op order
    for ours, theirs in ((nngp, reference.nngp), (ntk, reference.ntk)):
        assert np.abs(np.asarray(ours) - np.asarray(theirs)).max() <= 1e-10 * np.abs(np.asarray(theirs)).max()


def test_residual_diagonal_certificate():
    """For bias-free relu, E[relu(u)^2] = a / 2, so a residual block multiplies Sigma(x, x) by 1 + s^2 sigma_w^2 / 2:
    derived by hand here, and the composed symbolic step must agree exactly."""
    from theory.kernels import apply_layer

    arch = parse_spec("relu:1:sw=1.5:res=0.5")
    block = layers.layers_of(arch)[1]
    assert block.kind == "residual"
    out = apply_layer(block, layers.SYMBOLIC_STATE)
    s, sw = sp.Rational(1, 2), sp.Rational(3, 2)
    assert sp.simplify(out.s11 - (1 + s**2 * sw**2 / 2) * layers.s11) == 0


def test_residual_needs_the_ntk_parametrization():
    from theory.architecture import SpecError

    with pytest.raises(SpecError, match="NTK parametrization only"):
        parse_spec("relu:2:res=0.5:param=standard")
    with pytest.raises(SpecError, match="res"):
        parse_spec("relu:2:res=-1")
