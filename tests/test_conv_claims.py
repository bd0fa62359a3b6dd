"""D1 and R1 on convolutional and other layer chains: the nested sub-network of R1's width limit, the chain-wide
traits and input dimension the claims ask of an Architecture, and `proofs-check run D1 R1 --arch` accepting every
chain with an analytic kernel (and refusing, one line and exit 2, a chain without one)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numerics.networks import forward, make_network, sub_network
from proofs_check import cli
from theory import layers as L
from theory.architecture import parse_spec

CONV_GAP = "conv3x3:c=8 > relu > conv3x3:c=8 > relu > gap > dense"
CONV_FLATTEN = "conv3x3 > relu > conv3x3 > relu > flatten > dense"


@pytest.mark.parametrize("spec", [CONV_FLATTEN, "conv3x3 > relu > conv3x3 > relu > gap > dense > relu > dense",
                                  "conv3 > relu > flatten > dense", "relu:2"])
def test_sub_network_is_the_narrow_network_inside_the_wide_one(spec):
    """The first m channels / units of a wide bias-free relu network, every other hidden unit silenced in the wide
    one: the wide network's output is the sub-network's times sqrt(m / M) per layer that reads hidden units (the
    NTK parametrization's 1 / sqrt(fan-in); relu is positively homogeneous). Slicing the readout's rows after
    flatten channel-major instead of per position, or leaving a kernel whole, breaks the equality."""
    arch = parse_spec(spec)
    d, wide, narrow = arch.input_dim_at_least(5), 7, 3
    params = make_network(arch, wide).init(jax.random.PRNGKey(0), d)
    sub = sub_network(arch, params, narrow)
    assert jax.tree.map(jnp.shape, sub) == jax.tree.map(jnp.shape, make_network(arch, narrow).init(
        jax.random.PRNGKey(1), d))

    def silenced(p):  # every hidden unit beyond the first ``narrow`` gets zero incoming weights: its output is 0
        if isinstance(p, tuple) and len(p) == 2 and hasattr(p[0], "ndim") and p[0].shape[-1] == wide:
            return (p[0].at[..., narrow:].set(0.0), p[1])
        return p

    readers = sum(isinstance(layer, (L.Dense, L.Conv)) for layer in arch.layers) - 1
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, d)))
    np.testing.assert_allclose(forward(arch, [silenced(p) for p in params], x),
                               forward(arch, sub, x) * np.sqrt(narrow / wide) ** readers,
                               rtol=1e-12)  # float64 round-off of a few sums of products


def test_sub_network_of_a_residual_chain_has_the_narrow_shapes():
    arch = parse_spec("dense:sb=0.1 > res:s=0.5:act=relu > relu > dense")
    sub = sub_network(arch, make_network(arch, 7).init(jax.random.PRNGKey(0), 5), 3)
    assert jax.tree.map(jnp.shape, sub) == jax.tree.map(jnp.shape, make_network(arch, 3).init(
        jax.random.PRNGKey(1), 5))


def test_traits_and_input_dimension_are_chain_wide():
    assert parse_spec(CONV_GAP).positively_homogeneous and not parse_spec(CONV_GAP).smooth
    assert not parse_spec("conv3x3:sb=0.1 > relu > gap > dense").positively_homogeneous  # a bias
    assert not parse_spec("dense > erf > dense > relu > dense").smooth  # one relu anywhere
    assert parse_spec("dense > erf > dense > erf > dense").smooth
    assert not parse_spec("dense > relu > dense > erf > dense").positively_homogeneous
    assert [parse_spec(CONV_GAP).input_dim_at_least(d) for d in (1, 4, 5, 8, 9, 10)] == [1, 4, 9, 9, 9, 16]
    assert parse_spec("conv3 > relu > gap > dense").input_dim_at_least(5) == 5 == parse_spec("relu:2").input_dim_at_least(5)
    assert "fixed channel count" in parse_spec(CONV_GAP).width_limit_obstacle
    assert "no hidden layer" in parse_spec("dense").width_limit_obstacle
    assert all(parse_spec(spec).width_limit_obstacle is None for spec in (CONV_FLATTEN, "relu:2", "relu:1:res=0.5"))


@pytest.fixture
def stub_run(monkeypatch):
    """`run` validates its arguments as always, then records them instead of running the claims."""
    seen = []
    commands = tuple(dataclasses.replace(c, run=lambda args: seen.append(args) or 0) if c.name == "run" else c
                     for c in cli.COMMANDS)
    monkeypatch.setattr(cli, "COMMANDS", commands)
    return seen


def test_run_takes_convolutional_and_mixed_chains_for_d1_and_r1(stub_run, tmp_path):
    for spec in (CONV_GAP, CONV_FLATTEN, "dense > erf > dense > relu > dense"):
        assert cli.main(["run", "D1", "R1", "K1", "--arch", spec, "--out", str(tmp_path / "out")]) == 0
        assert [a.spec for a in stub_run.pop().arch] == [parse_spec(spec).spec]


def test_run_refuses_a_chain_without_an_analytic_kernel(stub_run, monkeypatch, tmp_path, capsys):
    def unwritten(self, state=None):
        raise NotImplementedError("not written")

    monkeypatch.setattr(L.GlobalAveragePool, "step", unwritten)
    assert cli.main(["run", "D1", "R1", "--arch", CONV_GAP, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "D1, R1 do not apply: its analytic kernel is not available" in err, err
    assert not stub_run and not (tmp_path / "out").exists()
    # T1 checks fixed architectures: an --arch for it is refused rather than silently ignored
    assert cli.main(["run", "T1", "t1", "--arch", CONV_GAP, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "T1 checks fixed architectures and does not take --arch" in err, err
    assert not stub_run
