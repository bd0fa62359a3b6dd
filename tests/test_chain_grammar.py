"""The `>` chain grammar of architecture specs: round trips, canonical form, the shorthand as a chain, errors."""

import pickle

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from proofs_check.cli import main
from theory import layers as L
from theory.architecture import Architecture, NotShorthandError, SpecError, parse_spec

ACTIVATIONS = [("relu", ()), ("erf", ()), ("leaky_relu", (("alpha", 0.2),)), ("abrelu", (("a", -0.5), ("b", 1.0))),
               ("monomial", (("k", 3),)), ("poly", (("coeffs", (0.5, 1.0, 0.25)),)), ("expr", (("phi", "tanh(x)"),)),
               ("identity", ())]

numbers = st.one_of(st.sampled_from([0.5, 1.0, 1.5, 2.0]),
                    st.floats(0.01, 4.0, allow_nan=False, allow_infinity=False))
biases = st.one_of(st.sampled_from([0.0, 0.1]), st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False))
activation_layers = st.sampled_from(ACTIVATIONS).map(lambda a: L.Activation(*a))


@st.composite
def architectures(draw):
    """Chains: an optional convolutional part (convs and activations, then gap or flatten), dense layers,
    activations and residual blocks, a dense readout; one parameterization."""
    standard = draw(st.booleans()) and draw(st.booleans())
    param = "standard" if standard else "ntk"
    uniform = draw(st.booleans())
    shared = (draw(numbers), draw(biases))

    def weights():
        return shared if uniform else (draw(numbers), draw(biases))

    chain = []

    def gaussian():  # an activation needs a weighted layer before it (possibly through the gap or flatten)
        last = [layer for layer in chain if not isinstance(layer, (L.GlobalAveragePool, L.Flatten))]
        return bool(last) and not isinstance(last[-1], L.Activation)

    def width_input():  # a residual block adds its branch to its input, which must have the network's width
        if any(isinstance(layer, (L.Dense, L.Residual)) for layer in chain):
            return True
        convs = [layer for layer in chain if isinstance(layer, L.Conv)]
        return isinstance(chain[-1] if chain else None, (L.GlobalAveragePool, L.Activation)) and any(
            isinstance(layer, L.GlobalAveragePool) for layer in chain) and convs[-1].channels is None

    if draw(st.booleans()):
        rank = draw(st.sampled_from([1, 2]))
        for _ in range(draw(st.integers(1, 3))):
            window = tuple(draw(st.integers(1, 5)) for _ in range(rank))
            channels = draw(st.one_of(st.none(), st.integers(1, 64)))
            chain.append(L.Conv(window, channels, *weights(), param))
            if draw(st.booleans()):
                chain.append(draw(activation_layers))
        chain.append(draw(st.sampled_from([L.GlobalAveragePool(), L.Flatten()])))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["dense", "activation", "residual"] if not standard else ["dense", "activation"]))
        if kind == "dense" or not gaussian() or (kind == "residual" and not width_input()):
            chain.append(L.Dense(*weights(), param))
        elif kind == "activation":
            chain.append(draw(activation_layers))
        else:
            chain.append(L.Residual(draw(numbers), L.Dense(*weights(), param), draw(activation_layers)))
    chain.append(L.Dense(*weights(), param))
    return _resolved(lambda: Architecture.of(chain))


def _resolved(build):
    """``build()``, or the example rejected where a quadrature formula's deeper variances are out of its rule's reach
    (theory.architecture.variance_path; tanh(x) at sw up to 4)."""
    try:
        return build()
    except SpecError as error:
        assume("sees variance" not in str(error) and "overflows float64" not in str(error))
        raise


shorthands = st.builds(
    lambda act, depth, sw, sb, standard, res: _resolved(lambda: Architecture(
        act[0], depth, sw, sb, "standard" if standard and not res else "ntk", act[1], res)),
    st.sampled_from(ACTIVATIONS), st.integers(1, 4), numbers, biases, st.booleans(),
    st.one_of(st.just(0.0), numbers))


@settings(max_examples=150, deadline=None)
@given(st.one_of(architectures(), shorthands))
def test_spec_round_trips_exactly(arch):
    assert parse_spec(arch.spec) == arch
    assert parse_spec(arch.spec).spec == arch.spec
    assert hash(parse_spec(arch.spec)) == hash(arch)
    assert pickle.loads(pickle.dumps(arch)) == arch
    assert L.layers_of(parse_spec(arch.spec)) == arch.layers


def _spelled_out(arch) -> str:
    """A non-canonical spelling of ``arch``: every layer written out, every option explicit, odd spacing."""
    tokens = []
    for layer in arch.layers:
        weighted = layer.dense if isinstance(layer, L.Residual) else layer
        options = (f":sw={weighted.sigma_w!r}:sb={weighted.sigma_b!r}:param={weighted.parameterization}"
                   if isinstance(weighted, (L.Dense, L.Conv)) else "")
        act = "".join(f":{k}={','.join(map(repr, v)) if isinstance(v, tuple) else v}"
                      for k, v in L.activation_of(layer).params) if L.activation_of(layer) else ""
        if isinstance(layer, L.Dense):
            tokens.append("DENSE" + options)
        elif isinstance(layer, L.Conv):
            tokens.append("conv" + "x".join(map(str, layer.window))
                          + ("" if layer.channels is None else f":c={layer.channels}") + options)
        elif isinstance(layer, L.Residual):
            tokens.append(f"res:act={layer.activation.name}{act}:s={layer.scale!r}" + options)
        elif isinstance(layer, L.Activation):
            tokens.append(layer.name + act)
        else:
            tokens.append("gap" if isinstance(layer, L.GlobalAveragePool) else "flatten")
    return "  >".join(tokens)


@settings(max_examples=100, deadline=None)
@given(st.one_of(architectures(), shorthands))
def test_any_spelling_parses_to_the_same_architecture_with_one_canonical_spec(arch):
    parsed = parse_spec(_spelled_out(arch))
    assert parsed == arch
    assert parsed.spec == arch.spec


@pytest.mark.parametrize("shorthand, chain", [
    ("relu:2", "dense > relu > dense > relu > dense"),
    ("erf:3:sw=1.5:sb=0.1", "sw=1.5:sb=0.1 > dense > erf > dense > erf > dense > erf > dense"),
    ("erf:1:sw=1.5:sb=0.1", "dense:sw=1.5:sb=0.1 > erf > dense:sb=0.1:sw=1.5"),
    ("leaky_relu:2:alpha=0.2", "dense > leaky_relu:alpha=0.2 > dense > leaky_relu:alpha=0.2 > dense"),
    ("relu:4:sb=0.2:param=standard", "param=standard:sb=0.2 > " + "dense > relu > " * 4 + "dense"),
    ("relu:2:res=0.5", "dense > res:s=0.5:act=relu > res:s=0.5:act=relu > relu > dense"),
    ("expr:1:phi=tanh(x)", "dense > expr:phi=tanh(x) > dense"),
])
def test_the_shorthand_is_its_chain(shorthand, chain):
    arch = parse_spec(shorthand)
    assert parse_spec(chain) == arch and parse_spec(chain).spec == shorthand
    assert arch.layers == L.layers_of(arch) == parse_spec(chain).layers
    assert arch.is_shorthand


def test_chain_properties_and_shorthand_fields():
    conv = parse_spec("conv3x3:c=64 > relu > conv3x3:c=64 > relu > gap > dense")
    assert conv.spec == "conv3x3:c=64 > relu > conv3x3:c=64 > relu > gap > dense"
    assert conv.spatial_dims == 2 and conv.is_convolutional and not conv.is_mlp and not conv.has_bias
    assert conv.layers[0] == L.Conv((3, 3), 64) and conv.layers[4] == L.GlobalAveragePool()
    assert parse_spec("conv3:c=16 > erf > flatten > dense").spatial_dims == 1
    assert [a.name for a in parse_spec("dense > relu > dense > res:s=1:act=erf > dense").activation_layers] == ["relu", "erf"]
    with pytest.raises(NotShorthandError, match="is a layer chain"):
        conv.depth
    mlp = parse_spec("relu:3:sb=0.1")
    assert (mlp.activation, mlp.depth, mlp.sigma_b, mlp.residual_scale) == ("relu", 3, 0.1, 0.0) and mlp.is_mlp
    assert parse_spec("relu:2:res=0.5").has_residual and not parse_spec("relu:2:res=0.5").is_mlp
    assert Architecture("relu", 2) == parse_spec("relu:2") and {parse_spec("relu:2"): 1}[Architecture()] == 1


@pytest.mark.parametrize("spec, message", [
    ("conv3x3 > relu > dense", "'dense' after 'conv3x3': a convolutional chain must pool (gap) or flatten before"),
    ("conv3x3 > relu > gap > dense > conv3x3 > gap > dense", "'conv3x3' after 'gap': convolutions come before"),
    ("dense > conv3x3 > gap > dense", "'dense' before 'gap'"),
    ("gap > dense", "'gap' needs a convolution before it"),
    ("conv3x3 > gap > conv3x3 > dense", "convolutions come before the gap"),
    ("conv3x3 > gap > flatten > dense", "'flatten' after 'gap': one gap or flatten per network"),
    ("conv3 > conv3x3 > gap > dense", "same number of spatial axes"),
    ("dense > relu", "the last layer must be the dense readout, got 'relu'"),
    ("relu > dense", "'relu' first: an activation needs a Gaussian input"),
    ("dense > relu > erf > dense", "'erf' after 'relu': an activation needs a Gaussian input"),
    ("dense > relu > res:s=1:act=erf > dense", "'res:s=1:act=erf' after 'relu': a residual block needs a Gaussian"),
    ("conv3x3 > relu > gap > relu > dense", "'relu' after 'gap'"),
    ("relu:2 > dense", "option '2' in layer 'relu:2'"),
    ("conv3y3 > gap > dense", "unknown layer 'conv3y3'"),
    ("conv3x3:c=0 > gap > dense", "channels (c) must be an integer from 1"),
    ("conv3x3:c=two > gap > dense", "bad value 'two' for 'c'"),
    ("conv99x3 > gap > dense", "window is 1 or 2 integers from 1 to 64"),
    ("dense:foo=1", "unknown option 'foo' in layer 'dense:foo=1'"),
    ("dense > relu:alpha=1 > dense", "unknown option 'alpha' in layer 'relu:alpha=1'"),
    ("res:s=0.5 > dense", "lacks act="),
    ("res:s=0:act=relu > dense", "residual branch scale"),
    ("dense > res:s=1:act=tanhh > dense", "unknown activation 'tanhh'"),
    ("dense >> dense", "empty layer"),
    ("sw=1 > ", "empty layer"),
    ("sw=2", "has options but no layers"),
    ("foo=2 > dense", "unknown option 'foo' in the options"),
    ("dense:sw=-1", "sigma_w (sw) of a dense layer must be finite and > 0"),
    ("dense:sw=nan", "sigma_w (sw) of a dense layer must be finite"),
    ("dense:param=mean_field", "parameterization must be one of"),
    ("dense:param=standard > relu > dense:param=ntk", "share one parameterization"),
    ("param=standard > dense > res:s=1:act=relu > dense", "NTK parametrization only"),
    # the skip would carry 2 channels (or positions x channels) against the branch's width units: a shape error
    ("conv3x3:c=2 > gap > res:s=0.5:act=relu > dense", "which here has 2 channels (c=); put a dense layer before it"),
    ("conv3x3 > flatten > res:s=0.5:act=relu > dense", "which here has positions x channels; put a dense layer"),
    ("dense > expr:phi=__import__('os') > dense", "name '__import__' is not allowed"),
])
def test_bad_chains_name_the_problem(spec, message):
    with pytest.raises(SpecError, match=None) as error:
        parse_spec(spec)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("spec, message", [
    ("conv3x3 > relu > dense", "must pool (gap) or flatten"),
    ("conv3y3 > gap > dense", "unknown layer 'conv3y3'"),
    ("conv3x3:c=2 > gap > res:s=0.5:act=relu > dense", "a residual block adds its branch"),
])
def test_bad_chains_through_the_cli_are_one_line_and_exit_2(spec, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["run", "K1"], ["attack"]):
        assert main([*command, "--arch", spec]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("proofs-check: error: ") and message in err, err
    assert not list(tmp_path.iterdir())


def test_commands_that_need_a_kernel_refuse_chains_without_one(capsys, tmp_path, monkeypatch):
    """A layer kind without its kernel step: distillation and the claims refuse the chain, one line, exit 2."""
    def unwritten(self, state=None):
        raise NotImplementedError("not written")

    monkeypatch.setattr(L.GlobalAveragePool, "step", unwritten)
    monkeypatch.chdir(tmp_path)
    spec = "conv3x3 > relu > gap > dense"
    assert not parse_spec(spec).has_kernel and parse_spec("relu:2:res=0.5").has_kernel
    for argv, message in ((["distill", "--arch", spec], "analytic kernel of this chain is not available"),
                          (["run", "K1", "--arch", spec], "K1 do not apply: its analytic kernel is not available"),
                          (["run", "D1", "R1", "--arch", spec], "D1, R1 do not apply")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not list(tmp_path.iterdir())
