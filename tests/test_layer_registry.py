"""The layer-kind registry: a new layer kind is one class, registered from outside the package (the "Layer kinds"
block of docs/extending.md, run as written), and the grammar, the rules, the kernels and the networks take it."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from documentation import section
from numerics import kernels, networks
from theory import activations, layers
from theory.architecture import SpecError, is_layer_keyword, parse_spec

SCALED = "dense > scale:k=2 > relu > dense"
SAME = "dense:sw=2 > relu > dense"
"""h -> 2 h after a dense layer of sigma_w = 1 is a dense layer of sigma_w = 2 (no biases, NTK parametrization)."""
EXACT_ALGEBRA = 1e-13
"""The scale layer's kernels against dense:sw=2's: the same products in another order (measured 0)."""
AGAINST_NEURAL_TANGENTS = 1e-12
"""Our compiled kernels and forward pass against neural-tangents' (float64, 3 layers; measured <= 2.9e-16 relative)."""


def _readme_block() -> str:
    (code,) = re.findall(r"```python\n(.*?)```", section("Layer kinds"), flags=re.S)
    return code


@pytest.fixture
def scale_kind():
    names = {}
    exec(compile(_readme_block(), "docs/extending.md", "exec"), names)  # the documentation's own block, verbatim
    try:
        yield names["Scale"]
    finally:
        layers.unregister_layer_kind(names["Scale"])


def test_unknown_until_registered(scale_kind):
    assert SCALED == parse_spec(SCALED).spec and is_layer_keyword("scale")
    with pytest.raises(SpecError, match=r"unknown option 'z' in layer 'scale:z=1' .*; allowed: k"):
        parse_spec("dense > scale:z=1 > relu > dense")
    with pytest.raises(SpecError, match=r"'relu' after 'scale:k=2': an activation needs a Gaussian input"):
        parse_spec("dense > relu > scale:k=2 > relu > dense")  # a scale layer keeps its input's kind
    assert "layers: dense, convK, convKxK, gap, flatten, res, scale or an activation" in _refusal("dense > nope")
    layers.unregister_layer_kind(scale_kind)
    assert "unknown layer 'scale'" in _refusal(SCALED) and not is_layer_keyword("scale")


def _refusal(spec: str) -> str:
    with pytest.raises(SpecError) as error:
        parse_spec(spec)
    return str(error.value)


def test_the_variance_check_follows_the_new_kind(scale_kind):
    """A trial's scale layer once skipped the variance path: now k = 100 is refused as sw = 100 is, in the same
    words."""
    refusal = _refusal("dense > scale:k=100 > expr:phi=exp(2*x) > dense")
    assert refusal == _refusal("dense:sw=100 > expr:phi=exp(2*x) > dense")
    assert "activation layer 1 (expr:phi=exp(2*x)) sees variance 1e+04" in refusal


def test_kernels_and_network_of_the_new_kind(scale_kind):
    scaled, same = parse_spec(SCALED), parse_spec(SAME)
    x1, x2 = (jnp.asarray(np.random.default_rng(seed).normal(size=(3, 4))) for seed in (0, 1))
    ours = kernels.analytic_kernel_fn(scaled)(x1, x2)
    for mine, theirs in zip(ours, kernels.analytic_kernel_fn(same)(x1, x2)):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=EXACT_ALGEBRA)
    network = networks.make_network(scaled, 16)  # the stax layer the class describes
    reference = network.kernel_fn(x1, x2, ("nngp", "ntk"))
    for mine, theirs in zip(ours, (reference.nngp, reference.ntk)):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=AGAINST_NEURAL_TANGENTS)
    params = network.init(jax.random.PRNGKey(0), 4)
    without_scale = [params[0], params[2], params[3]]
    np.testing.assert_allclose(np.asarray(networks.chain_forward(scaled, params, x1)),
                               np.asarray(networks.forward(same, without_scale, x1)), rtol=EXACT_ALGEBRA)
    assert networks.shape_of_params(scaled, params) == (16, 1)


def test_a_layer_first_built_inside_a_jitted_function_keeps_no_tracer(scale_kind):
    """A trial's `attack` on dense > scale:k=2 > relu > dense raised UnexpectedTracerError: the cached apply function
    of the scale layer (stax.DotGeneral, which makes an array of k when built) was first built inside the attack's
    jitted scan and kept that trace's k. Now it is built with concrete values wherever it is first asked for."""
    arch = parse_spec("dense > scale:k=1.75 > relu > dense")  # a k no other test builds, so the cache is cold
    networks._layer_apply.cache_clear()
    params = networks.make_network(arch, 8).init(jax.random.PRNGKey(0), 4)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)))
    inside = jax.jit(lambda x: networks.chain_forward(arch, params, x))(x)  # first built inside a trace
    np.testing.assert_allclose(np.asarray(networks.chain_forward(arch, params, x)), np.asarray(inside),
                               rtol=EXACT_ALGEBRA)  # outside it afterwards: the tracer would leak here


def test_the_new_kind_in_the_standard_parametrization(scale_kind):
    """A weightless kind keeps the width feeding it (Layer.fan_out): the base class once reset it to the network's
    width, and the standard-parametrization NTK of README's scale layer was 7x neural-tangents' (reviewer)."""
    for spec in ("param=standard > dense > scale:k=2 > relu > dense", "param=standard > scale:k=2 > dense > relu > dense"):
        arch = parse_spec(spec)
        x1, x2 = (jnp.asarray(np.random.default_rng(seed).normal(size=(3, 5))) for seed in (0, 1))
        ours = kernels.analytic_kernel_fn(arch, width=16)(x1, x2)
        reference = networks.make_network(arch, 16).kernel_fn(x1, x2, ("nngp", "ntk"))
        for mine, theirs in zip(ours, (reference.nngp, reference.ntk)):
            np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=AGAINST_NEURAL_TANGENTS)


def test_the_registry_refuses_what_would_break_it(scale_kind):
    """A subclass that inherits its kind name once evicted Dense ("dense > relu > dense" became unknown), two kinds
    without a name replaced each other, a keyword the parser cannot read was accepted; unregistering another class
    of the same name removed the holder."""
    import dataclasses

    def kind_like(base, name, **traits):  # a class deriving from ``base``, with its own class attributes
        return dataclasses.dataclass(frozen=True)(type(name, (base,), {"__qualname__": name, **traits}))

    for kind, refusal in [
            (kind_like(layers.Dense, "MyDense"), "MyDense does not declare its own kind name"),
            (kind_like(scale_kind, "Other", kind="scale", names=("other",)),
             "layer kind name 'scale' of Other is Scale's already"),
            (kind_like(scale_kind, "Upper", kind="upper", names=("Up",)),
             "layer keyword 'Up' of Upper cannot be read by the chain grammar"),
            # a trial's kind named like an activation was told it "names another layer kind"
            (kind_like(scale_kind, "Shadow", kind="shadow", names=("relu",)),
             "layer keyword 'relu' of Shadow is the registered activation 'relu' already"),
            (kind_like(scale_kind, "Twin", kind="twin", names=("dense",)), "layer keyword 'dense' of Twin is Dense's "
                                                                          "already")]:
        # the activation registry's error type (a trial met ValueError and TypeError here, RegistryError there)
        with pytest.raises(activations.RegistryError, match=refusal):
            layers.register_layer_kind(kind)
        layers.unregister_layer_kind(kind)  # not the holder of its name: nothing removed
    assert parse_spec(SCALED).spec == SCALED
    assert parse_spec("dense > relu > dense").spec == "relu:1"
    with pytest.raises(SpecError, match="the scale k must be finite and > 0"):
        parse_spec("dense > scale:k=nan > relu > dense")
    # k**2 overflows in map_variance: an OverflowError traceback before variance_path read it as infinite
    assert "the kernel overflows float64" in _refusal("dense > scale:k=1e200 > expr:phi=exp(2*x) > dense")


def test_positive_homogeneity_is_each_kinds_trait(scale_kind):
    """Architecture.positively_homogeneous asks every layer (it once asked the activations only, so any new kind, a
    normalization say, counted as linear): README's scale layer says it is; a kind that does not say so is not."""
    import dataclasses

    assert parse_spec(SCALED).positively_homogeneous and parse_spec("conv3x3 > relu > gap > dense").positively_homogeneous
    assert parse_spec("relu:2:res=0.5").positively_homogeneous and not parse_spec("erf:2").positively_homogeneous
    assert not parse_spec("dense > res:s=0.5:act=erf > relu > dense").positively_homogeneous
    assert not parse_spec("dense > scale:k=2 > relu > dense:sb=0.1").positively_homogeneous  # a bias

    @dataclasses.dataclass(frozen=True)
    class Unsaid(scale_kind):
        kind = "unsaid"
        names = ("unsaid",)
        positively_homogeneous = layers.Layer.positively_homogeneous

        def spec_text(self, options):
            return "unsaid"

    layers.register_layer_kind(Unsaid)
    try:
        assert not parse_spec("dense > unsaid > relu > dense").positively_homogeneous
    finally:
        layers.unregister_layer_kind(Unsaid)


def test_a_kinds_step_is_checked_when_a_spec_names_it():
    """A registered kind whose step returns a plain tuple, or uses a symbol of its own, raised AttributeError or
    NameError from generated code inside the kernels (a trial); a spec naming it is now refused in one line."""
    import dataclasses

    import sympy as sp

    @dataclasses.dataclass(frozen=True)
    class Tup(layers.Layer):
        kind, names, noun = "tup", ("tup",), "a tup layer"

        def step(self, state=layers.SYMBOLIC_STATE):
            return tuple(state.as_tuple())

        def map_variance(self, variance, activation_mean):
            return variance

    @dataclasses.dataclass(frozen=True)
    class Own(Tup):
        kind, names, noun = "own", ("own",), "an own layer"

        def step(self, state=layers.SYMBOLIC_STATE):
            return layers.PairState(*(sp.Symbol("q") * value for value in state.as_tuple()))

    for kind, words in ((Tup, "its step returns tuple, not a theory.layers.PairState"),
                        (Own, "its step uses symbols other than theory.layers' state, dual pair and n_in (q)")):
        layers.register_layer_kind(kind)
        try:
            assert words in _refusal(f"dense > {kind.kind} > relu > dense")
        finally:
            layers.unregister_layer_kind(kind)


def test_a_kind_without_a_usable_stax_layer_is_one_line_when_a_network_is_built():
    """No stax, or a name neural_tangents.stax lacks: NotImplementedError and AttributeError came out of the commands
    (a trial); make_network now says which layer and why (a ValueError, which the commands report with exit 2)."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Nope(layers.Layer):
        kind, names, noun = "nope", ("nope",), "a nope layer"

        def step(self, state=layers.SYMBOLIC_STATE):
            return state

        def map_variance(self, variance, activation_mean):
            return variance

        def stax(self, units):
            return ("Nope", (), {})

    @dataclasses.dataclass(frozen=True)
    class Bare(Nope):
        kind, names, noun = "bare", ("bare",), "a bare layer"
        stax = layers.Layer.stax

    for kind, words in ((Nope, "its stax names 'Nope', which is not a layer of neural_tangents.stax"),
                        (Bare, "has no neural-tangents layer (its kind's stax)")):
        layers.register_layer_kind(kind)
        try:
            with pytest.raises(ValueError, match=re.escape(words)):
                networks.make_network(parse_spec(f"dense > {kind.kind} > relu > dense"), 8)
        finally:
            layers.unregister_layer_kind(kind)


def test_an_overflow_caused_by_a_layer_does_not_blame_the_activation(scale_kind):
    """A trial's dense > scale:k=1e200 > relu > dense was refused as "the activation grows too fast for this depth;
    use ... a slower-growing phi", though relu was not the cause."""
    refusal = _refusal("dense > scale:k=1e200 > relu > dense")
    assert "exceeds 1e300 (its activations or its layers' scales grow it too fast for this depth)" in refusal
    assert "smaller weight scales" in refusal and "the activation grows" not in refusal


def test_a_kind_whose_variance_map_disagrees_with_its_step_is_refused(scale_kind):
    """A trial's scale kind with map_variance k q (its step: k^2 q) let dense > scale:k=1.1 > expr:phi=exp(2*x) >
    dense through, which the right map refuses (variance 1.21, beyond the quadrature's range); now the map is held
    to the step at two variances."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Loose(scale_kind):
        kind, names, noun = "loose", ("loose",), "a loose scale layer"

        def map_variance(self, variance, activation_mean):
            return self.k * variance  # should be k**2 * variance, as its step says

        def spec_text(self, options):
            return f"loose:k={self.k:g}"

    layers.register_layer_kind(Loose)
    try:
        assert _refusal("dense > loose:k=2 > relu > dense") == (
            "loose:k=2: its kind's map_variance gives 1 at variance 0.5 where its step gives Sigma(x, x) = 2; the two "
            "must agree (theory.architecture.variance_path follows map_variance to check every activation's input)")
    finally:
        layers.unregister_layer_kind(Loose)
    assert parse_spec(SCALED).spec == SCALED  # the documented kind's map and step agree
