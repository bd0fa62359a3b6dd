"""numerics.movement: kernel distance, parameter movement, and the update's residual outside span{grad f_0(x_i)}."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from numerics import movement
from numerics.data import sphere
from numerics.networks import make_network
from numerics.training import jacobian_transpose_times, train
from theory.architecture import parse_spec


@given(st.integers(0, 2**31 - 1), st.floats(1e-3, 1e3))
def test_kernel_distance_is_zero_for_a_rescaled_kernel(seed, scale):
    a = np.random.default_rng(seed).normal(size=(5, 5))
    k = a @ a.T
    assert abs(movement.kernel_distance(k, scale * k)) <= 1e-14  # cosine of a matrix with itself, round-off only


def test_kernel_distance_of_orthogonal_kernels_is_one():
    assert movement.kernel_distance(np.diag([1.0, 0.0]), np.diag([0.0, 1.0])) == 1.0


@pytest.mark.parametrize("bad", [np.zeros((2, 2)), np.ones((2, 3)), np.array([[np.nan, 0], [0, 1.0]])])
def test_kernel_distance_rejects_bad_kernels(bad):
    with pytest.raises(ValueError):
        movement.kernel_distance(np.eye(2) if bad.shape == (2, 3) else bad, bad)


def _trained(linearized: bool, spec: str = "relu:2", width: int = 16, steps: int = 3000):
    data = sphere(6, 5, seed=1)
    network = make_network(parse_spec(spec), width)
    params_0 = network.init(jax.random.PRNGKey(3), 5)
    result = train(network, params_0, data.x, data.y, learning_rate=0.05, momentum=0.9, linearized=linearized,
                   max_steps=steps, loss_threshold=1e-12, progress=False)
    return network, result, data


def test_span_residual_is_zero_for_an_update_in_the_span_and_one_for_an_orthogonal_one():
    network, result, data = _trained(linearized=True, steps=1)
    x = jnp.asarray(data.x)
    coefficients = jnp.asarray(np.random.default_rng(0).normal(size=(6, 1)))
    inside = jacobian_transpose_times(network.apply, result.params_0, x, coefficients)
    shifted = jax.tree.map(lambda a, b: a + b, result.params_0, inside)
    # the least-squares solve in the dual recovers the coefficients to cond(K_0) * eps ~ 1e-12
    assert movement.span_residual(network, result.params_0, shifted, x) <= 1e-8
    # a random direction in P ~ 400 dimensions has almost all its norm outside a 6-dimensional span
    leaves, tree = jax.tree.flatten(result.params_0)
    keys = jax.random.split(jax.random.PRNGKey(9), len(leaves))
    noise = jax.tree.unflatten(tree, [a + jax.random.normal(k, a.shape, a.dtype) for a, k in zip(leaves, keys)])
    assert movement.span_residual(network, result.params_0, noise, x) >= 0.9


def test_linearized_training_stays_in_the_span_and_standard_training_leaves_it():
    network, lin, data = _trained(linearized=True)
    _, std, _ = _trained(linearized=False)
    frozen = movement.measure(network, lin.params_0, lin.params_f, data.x)
    moved = movement.measure(network, std.params_0, std.params_f, data.x)
    assert frozen.span_residual <= 1e-8      # every linearized step is J_0^T (something): round-off only
    assert moved.span_residual >= 1e-3       # width 16: the kernel moves, the update leaves the span
    assert moved.kernel_distance > 0 and moved.relative_movement > 0
    assert set(moved.as_dict()) == {"kernel_distance", "relative_movement", "span_residual"}
