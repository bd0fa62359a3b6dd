"""The fused attack step's feature-major sweeps with stored transposes (numerics.attack.fused_weights,
fused_delta): a speed-only change, so every number must equal the references to round-off."""

import jax
import jax.numpy as jnp
import pytest

from attack_reference import D
from attack_reference import network_pair as _pair
from numerics import attack
from numerics.networks import activation_fn, make_network
from theory import parse_spec

M = 5
CASES = [("relu:2", 1, "theta0"), ("erf:2:sb=0.1", 2, "both"), ("relu:1:sb=0.3:param=standard", 2, "thetaf"),
         ("relu:2:sb=0.2:param=standard", 3, "both")]


def _relative(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def _operands(spec, out_dim, at, low_rank):
    arch, params_0, params_f = _pair(spec, out_dim, jax.random.PRNGKey(3), width=128)  # wide enough to factor
    delta = jax.tree_util.tree_map(lambda a, b: a - b, params_f, params_0)
    if low_rank:  # Delta theta = J_0(X_T)^T alpha: every Delta W^l has rank <= N C, so factor_delta factors it
        x_t = jax.random.normal(jax.random.PRNGKey(4), (2, D))
        delta = attack.jacobian_transpose_lambda(arch, params_0, x_t, jnp.ones((2, out_dim)))
    factored = attack.factor_delta(delta)
    # a hidden 128 x 128 layer is factored (rank <= 2 C); relu:1 has only D x 128 and 128 x C layers, never factored
    assert any(v is not None for _, v, _ in factored.layers) == (low_rank and arch.depth >= 2)
    return arch, attack._select_thetas(at, params_0, params_f), delta, factored


@pytest.mark.parametrize("spec,out_dim,at", CASES)
@pytest.mark.parametrize("low_rank", [True, False], ids=["factored-delta", "dense-delta"])
def test_stored_transposes_change_nothing(spec, out_dim, at, low_rank):
    """Joint mode against autodiff of the loss as written; profiled mode against the autodiff kernel form
    (numerics.attack.profiled_loss_and_grad); each with the operands as given and as the attack prepares them,
    eagerly and inside jit."""
    arch, thetas, delta, factored = _operands(spec, out_dim, at, low_rank)
    prepared = (tuple(attack.fused_weights(p) for p in thetas), attack.fused_delta(factored))
    x = jax.random.normal(jax.random.PRNGKey(5), (M, D))
    lam = jax.random.normal(jax.random.PRNGKey(6), (M, out_dim))
    phi = activation_fn(arch, smooth_beta=30.0)
    scale = len(thetas) * float(factored.sqnorm)  # ||Delta theta||^2 per theta*: L and L* are differences of it
    reference = attack.loss_and_grad(arch, thetas, delta, x, lam, activation=phi, method="autodiff")
    profiled_reference = attack.profiled_loss_and_grad(arch, thetas, delta, x, activation=phi)
    jitted = jax.jit(lambda x_, lam_: attack.fused_loss_and_grad(arch, *prepared, x_, lam_, activation=phi))
    for got in (attack.fused_loss_and_grad(arch, thetas, factored, x, lam, activation=phi),
                attack.fused_loss_and_grad(arch, *prepared, x, lam, activation=phi), jitted(x, lam)):
        assert abs(float(got[0] - reference[0])) <= 1e-12 * scale  # measured <= 5.1e-14: round-off of the sums
        for g, r in zip(got[1], reference[1]):
            assert _relative(g, r) <= 1e-11  # measured <= 8.7e-16: only the summation order differs
    for th, d in ((thetas, factored), prepared):
        loss, grad_x, lam_star, _ = attack.fused_profiled_loss_and_grad(arch, th, d, x, activation=phi)
        # measured <= 3.3e-16, 4.7e-15 and 3.7e-15: the same Cholesky solve of K, products in another order
        assert abs(float(loss - profiled_reference[0])) <= 1e-12 * scale
        assert _relative(grad_x, profiled_reference[1]) <= 1e-10
        assert _relative(lam_star, profiled_reference[2]) <= 1e-10


@pytest.mark.parametrize("spec,out_dim,at", CASES[::3])
def test_float32_runs_in_float32_and_agrees_to_its_precision(spec, out_dim, at):
    arch, thetas, delta, factored = _operands(spec, out_dim, at, low_rank=True)
    cast = lambda tree: jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), tree)  # noqa: E731
    prepared = (tuple(attack.fused_weights(cast(p)) for p in thetas),
                attack.fused_delta(attack.factor_delta(delta, dtype=jnp.float32)))
    x = jax.random.normal(jax.random.PRNGKey(5), (M, D))
    lam = jax.random.normal(jax.random.PRNGKey(6), (M, out_dim))
    phi64 = activation_fn(arch, smooth_beta=30.0)
    phi32 = activation_fn(arch, smooth_beta=jnp.float32(30.0))
    reference = attack.loss_and_grad(arch, thetas, delta, x, lam, activation=phi64, method="autodiff")
    loss, grads = jax.jit(lambda x_, lam_: attack.fused_loss_and_grad(arch, *prepared, x_, lam_, activation=phi32))(
        x.astype(jnp.float32), lam.astype(jnp.float32))
    assert loss.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in grads)
    for g, r in zip(grads, reference[1]):
        assert _relative(g.astype(jnp.float64), r) <= 1e-5  # measured <= 8.6e-7: float32 round-off (eps 1.2e-7)


def test_fused_sweeps_refuse_other_chains_and_prepared_weights_refuse_other_methods():
    """A residual block is not a plain dense layer: the fused sweeps say so instead of computing another
    network's loss; weights prepared for them are refused by the other formulations and make "auto" pick them."""
    arch = parse_spec("erf:1:res=0.3")
    params = make_network(arch, 8, 1).init(jax.random.PRNGKey(0), D)
    x, lam = jnp.ones((2, D)), jnp.ones((2, 1))
    with pytest.raises(NotImplementedError, match="plain fully connected"):
        attack.fused_loss_and_grad(arch, (params,), params, x, lam)
    arch = parse_spec("relu:1")
    params = make_network(arch, 8, 1).init(jax.random.PRNGKey(0), D)
    prepared = (attack.fused_weights(params),)
    for method in ("jvp", "kernel", "autodiff"):
        with pytest.raises(ValueError, match="for method='fused'"):
            attack.loss_and_grad(arch, prepared, params, x, lam, method=method)
    auto = attack.loss_and_grad(arch, prepared, params, x, lam, method="auto")  # width 8 alone would pick "jvp"
    # the same float64 loss by another formulation: round-off only (the losses above measure <= 5.1e-14 relative)
    assert auto[0] == pytest.approx(float(attack.loss_and_grad(arch, (params,), params, x, lam, method="jvp")[0]),
                                    rel=1e-12)
