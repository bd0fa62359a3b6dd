"""Networks, training, the attack, save/load and the attack command for any layer chain (residual, convolutional)."""

import functools
import json

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import numerics  # noqa: F401  (float64 on)
from numerics import attack
from numerics._nt import neural_tangents
from numerics.checkpoint import FileError
from numerics.networks import (LayerActivations, chain_forward, forward, make_network, shape_of_params,
                               stax_layer)
from numerics.training import load_model, ntk_matrix, save_model, train
from proofs_check.cli import main
from theory import parse_spec
from theory.layers import image_shape

CHAINS = ["conv3x3:c=3:sb=0.2 > erf > conv2x2 > relu > gap > dense:sb=0.1",
          "sw=1.2:param=standard > conv3:c=2 > leaky_relu > flatten > dense",
          "relu:1:res=0.5:sb=0.1",
          "dense > res:s=0.7:act=erf > relu > dense"]
D, WIDTH, OUT = 16, 5, 2


@functools.cache
def _network(spec):
    arch = parse_spec(spec)
    network = make_network(arch, WIDTH, OUT)
    return arch, network, network.init(jax.random.PRNGKey(0), D)


def _x(n=4, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, D))


@pytest.mark.parametrize("spec", CHAINS)
def test_chain_network_is_neural_tangents_on_flat_inputs(spec):
    """init/apply/kernel_fn take flat (N, d) inputs; the chain forward (activations swappable; convolutions as
    patches times a matrix) is stax's apply."""
    arch, network, params = _network(spec)
    x = _x()
    out = network.apply(params, x)
    assert out.shape == (4, OUT)
    assert float(jnp.max(jnp.abs(chain_forward(arch, params, x) - out))) == 0.0
    assert float(jnp.max(jnp.abs(forward(arch, params, x) - out))) == 0.0
    assert shape_of_params(arch, params)[1] == OUT
    stax = neural_tangents().stax
    chain = arch.layers
    _, stax_apply, kernel_fn = stax.serial(*[stax_layer(layer, WIDTH if i < len(chain) - 1 else OUT)
                                             for i, layer in enumerate(chain)])
    images = x.reshape((4, *image_shape(D, arch.spatial_dims))) if arch.is_convolutional else x
    # convolutions as patches times a matrix vs lax's convolution: float64 round-off (~1e-16 per sum of <= 300 terms)
    assert float(jnp.max(jnp.abs(stax_apply(params, images) - out))) <= 1e-13 * float(jnp.max(jnp.abs(out)))
    if arch.spatial_dims == 1:  # the flat-input wrapper is neural-tangents' own kernel (1D: it compiles fast)
        assert jnp.array_equal(network.kernel_fn(x, x[:2], "ntk"), kernel_fn(images, images[:2], "ntk"))


def test_surrogate_replaces_each_activation_layer_that_has_one():
    """At sharpness beta, relu layers become softplus(beta x) / beta and erf layers stay erf (neural-tangents
    Elementwise layers as the reference)."""
    arch = parse_spec("conv3x3:c=3 > relu > gap > dense > erf > dense")
    network = make_network(arch, WIDTH, OUT)
    params = network.init(jax.random.PRNGKey(2), D)
    beta = 7.0
    stax = neural_tangents().stax
    reference = stax.serial(stax.Conv(3, (3, 3), padding="SAME"), stax.Elementwise(
        lambda z: jax.nn.softplus(beta * z) / beta), stax.GlobalAvgPool(), stax.Dense(WIDTH), stax.Erf(),
        stax.Dense(OUT))[1]
    x = _x()
    smooth = forward(arch, params, x, activation=LayerActivations(arch, beta))
    expected = reference(params, x.reshape(4, 4, 4, 1))
    assert float(jnp.max(jnp.abs(smooth - expected))) <= 1e-14  # the same operations in the same order
    assert float(jnp.max(jnp.abs(smooth - network.apply(params, x)))) > 1e-3  # and the smoothing does something


@pytest.mark.parametrize("spec", ["conv2x2:c=2 > relu > gap > dense:sb=0.1"])
def test_jvp_gradient_matches_autodiff_on_chains(spec):
    arch, network, params_0 = _network(spec)
    params_f = jax.tree_util.tree_map(lambda a: a * 1.05, params_0)
    delta = jax.tree_util.tree_map(lambda a, b: a - b, params_f, params_0)
    x, lam = _x(3, 5), jax.random.normal(jax.random.PRNGKey(6), (3, OUT))
    phi = LayerActivations(arch, 20.0)
    loss, grads = attack.loss_and_grad(arch, (params_0, params_f), delta, x, lam, activation=phi, method="auto")
    ref_loss, ref_grads = attack.loss_and_grad(arch, (params_0, params_f), delta, x, lam, activation=phi,
                                               method="autodiff")
    assert abs(float(loss - ref_loss)) <= 1e-12 * float(ref_loss)  # one number, two summation orders: round-off
    for mine, theirs in zip(grads, ref_grads):
        # the same products in another order (forward over reverse vs reverse over reverse): float64 round-off
        assert float(jnp.linalg.norm(mine - theirs) / jnp.linalg.norm(theirs)) <= 1e-10


def test_mlp_only_formulations_are_refused_on_chains():
    arch, _, params_0 = _network(CHAINS[0])
    params_f = jax.tree_util.tree_map(lambda a: a * 1.05, params_0)
    for options in (dict(method="kernel"), dict(mode="profiled")):
        with pytest.raises(ValueError, match="written for plain fully connected networks"):
            attack.parameter_space_attack(arch, params_0, params_f, 2, in_dim=D, key=jax.random.PRNGKey(0), steps=1,
                                          progress=False, **options)
    with pytest.raises(ValueError, match="in_dim=15 inputs: a 2D convolution needs square images"):
        attack.parameter_space_attack(arch, params_0, params_f, 2, in_dim=15, key=jax.random.PRNGKey(0), steps=1,
                                      progress=False)


def test_linearized_training_of_a_conv_net_stays_in_the_span_of_j0():
    """theta_s - theta_0 = J_0^T alpha_s at every step (the dual accumulator, numerics.training) on a conv net, with
    the step size from its empirical NTK (neural-tangents' Jacobian contraction), checked against J J^T."""
    arch, network, params_0 = _network("conv2x2:c=2 > relu > gap > dense:sb=0.1")
    x, y = _x(3, 8), jax.random.normal(jax.random.PRNGKey(9), (3, OUT))
    jacobian = jax.jacfwd(lambda p: network.apply(p, x))(params_0)
    rows = jnp.concatenate([j.reshape(3 * OUT, -1) for j in jax.tree_util.tree_leaves(jacobian)], axis=1)
    kernel = ntk_matrix(network, params_0, x)
    # two contractions of the same Jacobian: float64 round-off
    assert float(jnp.max(jnp.abs(kernel - rows @ rows.T)) / jnp.max(jnp.abs(kernel))) <= 1e-12
    result = train(network, params_0, x, y, learning_rate=1.0 / float(jnp.linalg.eigvalsh(kernel)[-1]), momentum=0.9,
                   linearized=True, max_steps=50, chunk_size=50, progress=False)
    assert result.in_dim == D and result.final_loss < 0.5 * float(jnp.sum((y - network.apply(params_0, x)) ** 2))
    _, vjp = jax.vjp(lambda p: network.apply(p, x), params_0)
    flat = jax.flatten_util.ravel_pytree
    delta, span = flat(result.delta)[0], flat(vjp(result.alpha)[0])[0]
    # an exact identity of the linearized dynamics: float64 round-off accumulated over 50 steps
    assert float(jnp.linalg.norm(delta - span) / jnp.linalg.norm(delta)) <= 1e-10


@pytest.mark.parametrize("spec", CHAINS)
def test_save_and_load_any_chain(spec, tmp_path):
    arch, network, params_0 = _network(spec)
    params_f = jax.tree_util.tree_map(lambda a: a + 0.5, params_0)
    path = save_model(tmp_path / "m.npz", params_0, params_f, arch, WIDTH, OUT, in_dim=D)
    saved = load_model(path)
    assert saved.arch == arch and saved.in_dim == D and (saved.width, saved.out_dim) == (WIDTH, OUT)
    assert all(jnp.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(saved.params_f),
                                                     jax.tree_util.tree_leaves(params_f)))
    with np.load(path) as data:
        contents = dict(data)
    key = max((k for k in contents if k.startswith("params_f")), key=lambda k: contents[k].ndim)
    np.savez(tmp_path / "bad.npz", **{**contents, key: contents[key][..., :-1]})
    with pytest.raises(FileError, match="expected shape"):
        load_model(tmp_path / "bad.npz")
    if arch.is_convolutional:
        with pytest.raises(ValueError, match="pass in_dim"):
            save_model(tmp_path / "n.npz", params_0, params_f, arch, WIDTH, OUT)
        if arch.spatial_dims == 2:  # a stored input size that is no square image: named, not a shape error
            np.savez(tmp_path / "dim.npz", **{**contents, "in_dim": np.asarray(D - 1)})
            with pytest.raises(FileError, match=f"in_dim = {D - 1} does not fit .*not a square"):
                load_model(tmp_path / "dim.npz")


def test_the_attack_command_on_residual_and_conv_nets(tmp_path, capsys):
    common = ["--n", "2", "--train-steps", "10", "--steps", "2", "--no-progress"]
    # --width only where it sets a layer (the conv chain refuses it: tests/test_cli.py)
    for spec, width, out in (("relu:1:res=0.5", ["--width", "4"], "res"),
                             ("conv3x3:c=2 > relu > gap > dense", [], "conv")):
        assert main(["attack", "--arch", spec, *width, *common, "--out", str(tmp_path / out)]) == 0
        metrics = json.loads((tmp_path / out / "metrics.json").read_text())
        assert metrics["arch"] == spec and metrics["attack"]["method"] == "jvp" and metrics["attack"]["steps"] == 2
    # 10 training steps do not reach the 1e-10 target: the command says so instead of attacking silently
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("note: training stopped (budget) at step 10 with loss") == 2
    # the residual net's width sets its layers; the conv net's channels are all fixed by c=, so no width is named
    assert "attacking relu:1:res=0.5 width 4 with" in out
    assert "attacking conv3x3:c=2 > relu > gap > dense (channels fixed by c=) with" in out
    # the conv run records no width (any width is the same network); a folder from before, which recorded one,
    # resumes all the same
    record = json.loads((tmp_path / "conv" / "run.json").read_text())
    assert record["settings"]["width"] is None
    record["settings"]["width"] = 1024
    (tmp_path / "conv" / "run.json").write_text(json.dumps(record))
    assert main(["attack", "--arch", "conv3x3:c=2 > relu > gap > dense", "--n", "2", "--train-steps", "10", "--steps",
                 "3", "--no-progress", "--resume", "--out", str(tmp_path / "conv")]) == 0
    assert json.loads((tmp_path / "conv" / "metrics.json").read_text())["attack"]["steps"] == 3
    capsys.readouterr()
    for argv, message in ((["attack", "--arch", "conv3x3 > relu > gap > dense", "--mode", "profiled"],
                           "--mode profiled needs "),
                          (["attack", "--arch", "conv3x3 > relu > gap > dense", "--dataset", "sphere"],
                           "10 input features is not a square (--dataset sphere)")):
        assert main([*argv, "--out", str(tmp_path / "refused")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "refused").exists()


def test_kernel_space_attack_takes_a_convolutional_chain():
    """The infinite-width attack on flat inputs reads a conv chain's analytic kernel (numerics.kernels) and descends."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, D))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = attack.kernel_space_attack(parse_spec("conv2x2:c=2 > relu > gap > dense"), x, rng.normal(size=3), 4,
                                        key=jax.random.PRNGKey(0), steps=10, restarts=1, polish_iterations=0)
    assert np.isfinite(result.final_loss) and result.loss_curve[-1] < result.loss_curve[0]


@pytest.mark.parametrize("spec,sets", [("relu:2", True), ("relu:1:res=0.5", True), ("conv3x3 > relu > gap > dense", True),
                                       ("conv3x3:c=8 > relu > conv3x3:c=8 > relu > gap > dense", False),
                                       ("conv3x3:c=8 > relu > gap > dense > relu > dense", True), ("dense", False)])
def test_width_sets_layers_only_where_make_network_reads_it(spec, sets):
    """Architecture.width_sets_layers against the networks themselves: two widths give different parameter
    shapes exactly when it says the width sets a layer."""
    arch = parse_spec(spec)
    assert arch.width_sets_layers == sets
    in_dim = arch.input_dim_at_least(9)
    shapes = [jax.tree_util.tree_map(lambda a: a.shape, make_network(arch, w).init(jax.random.PRNGKey(0), in_dim))
              for w in (3, 5)]
    assert (shapes[0] != shapes[1]) == sets
