"""The fused attack step's stored transposes (numerics.attack.fused_weights, fused_delta): a speed-only change, so it
must leave the numbers unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attack_reference import D
from attack_reference import network_pair as _pair
from numerics import attack
from numerics.networks import activation_fn

M = 5


def _relative(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("spec,out_dim,at", [("relu:2", 1, "theta0"), ("erf:2:sb=0.1", 2, "both"),
                                             ("relu:1:sb=0.3:param=standard", 2, "thetaf")])
@pytest.mark.parametrize("low_rank", [True, False], ids=["factored-delta", "dense-delta"])
def test_stored_transposes_change_nothing(spec, out_dim, at, low_rank):
    arch, params_0, params_f = _pair(spec, out_dim, jax.random.PRNGKey(3), width=128)  # wide enough to factor
    delta = jax.tree_util.tree_map(lambda a, b: a - b, params_f, params_0)
    if low_rank:  # Delta theta = J_0(X_T)^T alpha: every Delta W^l has rank <= N C, so factor_delta factors it
        x_t = jax.random.normal(jax.random.PRNGKey(4), (2, D))
        delta = attack.jacobian_transpose_lambda(arch, params_0, x_t, jnp.ones((2, out_dim)))
    factored = attack.factor_delta(delta)
    # a hidden 128 x 128 layer is factored (rank <= 2); relu:1 has only 4 x 128 and 128 x 2 layers, never factored
    assert any(v is not None for _, v, _ in factored.layers) == (low_rank and arch.depth >= 2)
    thetas = attack._select_thetas(at, params_0, params_f)
    x = jax.random.normal(jax.random.PRNGKey(5), (M, D))
    lam = jax.random.normal(jax.random.PRNGKey(6), (M, out_dim))
    phi = activation_fn(arch, smooth_beta=30.0)
    plain = attack.fused_loss_and_grad(arch, thetas, factored, x, lam, activation=phi)
    stored = attack.fused_loss_and_grad(arch, tuple(attack.fused_weights(p) for p in thetas),
                                        attack.fused_delta(factored), x, lam, activation=phi)
    reference = attack.loss_and_grad(arch, thetas, delta, x, lam, activation=phi, method="autodiff")
    for got in (plain, stored):
        assert abs(float(got[0] - reference[0])) <= 1e-12 * float(reference[0])  # measured <= 2e-15
        for g, r in zip(got[1], reference[1]):
            assert _relative(g, r) <= 1e-11  # measured <= 3e-14: only the summation order differs
    profiled = [attack.fused_profiled_loss_and_grad(arch, th, d, x, activation=phi)
                for th, d in ((thetas, factored),
                              (tuple(attack.fused_weights(p) for p in thetas), attack.fused_delta(factored)))]
    assert _relative(profiled[1][1], profiled[0][1]) <= 1e-11
    assert abs(float(profiled[1][0] - profiled[0][0])) <= 1e-12 * abs(float(profiled[0][0]))
