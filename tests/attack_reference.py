"""Shared references for the attack tests: a network pair (theta_0, theta_f) and the reconstruction loss from the
explicit forward-mode Jacobian, a code path shared with neither the VJP nor the kernel form of numerics.attack."""

import jax
import jax.numpy as jnp

from numerics.networks import forward, make_network
from theory import parse_spec

D, WIDTH = 4, 16


def network_pair(spec, out_dim, key, width=WIDTH, scale=0.05):
    """(arch, theta_0, theta_f) with theta_f = theta_0 + scale * N(0, 1) noise, inputs of dimension D."""
    arch = parse_spec(spec)
    network = make_network(arch, width, out_dim)
    k0, k1 = jax.random.split(key)
    params_0 = network.init(k0, D)
    leaves, treedef = jax.tree_util.tree_flatten(params_0)
    noise = [scale * jax.random.normal(k, leaf.shape) for k, leaf in zip(jax.random.split(k1, len(leaves)), leaves)]
    params_f = jax.tree_util.tree_unflatten(treedef, [a + b for a, b in zip(leaves, noise)])
    return arch, params_0, params_f


def explicit_jacobian_transpose(arch, params, x, lam, activation=None):
    """J(X)^T lambda from the full forward-mode Jacobian (jax.jacfwd, shape (M, C, *leaf)), contracted with
    lambda."""
    jacobian = jax.jacfwd(lambda p: forward(arch, p, x, activation=activation))(params)
    return jax.tree_util.tree_map(lambda j: jnp.tensordot(lam, j, axes=([0, 1], [0, 1])), jacobian)


def explicit_loss(arch, thetas, delta, x, lam, activation=None):
    """sum_theta ||Delta theta - J_theta(X)^T lambda||^2 with the explicit Jacobian."""
    total = 0.0
    for params in thetas:
        residual = jax.tree_util.tree_map(lambda a, b: a - b, delta,
                                          explicit_jacobian_transpose(arch, params, x, lam, activation))
        total = total + sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(residual))
    return total
