"""Finite-width fully connected networks built from a :class:`theory.Architecture`.

The parameters are neural-tangents ``stax`` parameters (a list with ``(W, b)`` for each dense layer,
``b`` is ``None`` without biases, and ``()`` for each activation layer), so a network made here can be
handed to any neural-tangents function. :func:`forward` is this project's own pure-JAX forward pass
over the same parameters; it can swap the activation (the attack smooths ReLU into softplus) and
returns the per-layer quantities that :func:`numerics.kernels.empirical_ntk` needs.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from numerics._nt import neural_tangents
from theory.architecture import Architecture

Params = list
Activation = Callable[[jax.Array], jax.Array]


def _softplus(x: jax.Array, beta: jax.Array | float) -> jax.Array:
    """softplus(beta x) / beta, the smooth stand-in for relu(x) (-> relu(x) as beta -> inf)."""
    return jax.nn.softplus(beta * x) / beta


@functools.cache
def _expr_activation(text: str) -> Activation:
    from theory.dual import activation_expression, x_symbol
    import sympy

    return sympy.lambdify(x_symbol, activation_expression(text), modules="jax")


def activation_fn(arch: Architecture, *, smooth_beta: jax.Array | float | None = None) -> Activation:
    """The elementwise activation of ``arch`` as a JAX function.

    With ``smooth_beta`` set, the piecewise-linear activations (relu, leaky_relu, abrelu) are replaced by
    their softplus smoothing, e.g. relu(x) -> softplus(beta x) / beta (Loo et al. 2023, Sec. 4): ReLU has
    no curvature, so the gradients of its network with respect to inputs vanish to first order.
    """
    p = arch.params
    name = arch.activation
    if name in ("relu", "leaky_relu", "abrelu"):
        neg, pos = {"relu": (0.0, 1.0), "leaky_relu": (p.get("alpha"), 1.0),
                    "abrelu": (p.get("a"), p.get("b"))}[name]
        if smooth_beta is None:
            return lambda x: neg * jnp.minimum(x, 0) + pos * jnp.maximum(x, 0)
        return lambda x: pos * _softplus(x, smooth_beta) - neg * _softplus(-x, smooth_beta)
    if name == "erf":
        return jax.scipy.special.erf
    if name == "identity":
        return lambda x: x
    if name == "monomial":
        return lambda x: x ** p["k"]
    if name == "poly":
        coeffs = p["coeffs"]
        return lambda x: sum(c * x**i for i, c in enumerate(coeffs))
    if name == "expr":
        return _expr_activation(p["phi"])
    raise ValueError(f"unknown activation {name!r}")


def _stax_activation(arch: Architecture):
    stax = neural_tangents().stax
    p = arch.params
    name = arch.activation
    if name == "relu":
        return stax.Relu()
    if name == "erf":
        return stax.Erf()
    if name == "identity":
        return stax.Identity()
    if name == "leaky_relu":
        return stax.LeakyRelu(p["alpha"])
    if name == "abrelu":
        return stax.ABRelu(p["a"], p["b"])
    if name == "monomial":
        return stax.Monomial(p["k"])
    if name == "poly":
        return stax.Polynomial(p["coeffs"])
    if name == "expr":
        return stax.ElementwiseNumerical(_expr_activation(p["phi"]), deg=80)
    raise ValueError(f"unknown activation {name!r}")


@dataclasses.dataclass(frozen=True)
class Network:
    """A finite network: ``arch.depth`` hidden layers of ``width`` units and ``out_dim`` outputs.

    ``init_fn``, ``apply_fn`` and ``kernel_fn`` are neural-tangents' (stax) triple; ``kernel_fn`` is its
    analytic infinite-width kernel, used as the independent reference for this project's kernels.
    """

    arch: Architecture
    width: int
    out_dim: int
    init_fn: Callable
    apply_fn: Callable
    kernel_fn: Callable

    def init(self, key: jax.Array, in_dim: int) -> Params:
        """Draw theta_0 for inputs of dimension ``in_dim``."""
        _, params = self.init_fn(key, (-1, in_dim))
        return params

    def apply(self, params: Params, x: jax.Array) -> jax.Array:
        return self.apply_fn(params, x)


@functools.cache
def make_network(arch: Architecture, width: int, out_dim: int = 1) -> Network:
    """The neural-tangents network of ``arch`` at hidden width ``width``."""
    if not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if not isinstance(out_dim, (int, np.integer)) or out_dim < 1:
        raise ValueError(f"out_dim must be a positive integer, got {out_dim!r}")
    stax = neural_tangents().stax
    b_std = arch.sigma_b if arch.has_bias else None

    def dense(units):
        return stax.Dense(int(units), W_std=arch.sigma_w, b_std=b_std, parameterization=arch.parameterization)

    layers = []
    for _ in range(arch.depth):
        layers += [dense(width), _stax_activation(arch)]
    layers.append(dense(out_dim))
    init_fn, apply_fn, kernel_fn = stax.serial(*layers)
    return Network(arch=arch, width=int(width), out_dim=int(out_dim), init_fn=init_fn,
                   apply_fn=apply_fn, kernel_fn=kernel_fn)


def dense_layers(params: Params) -> list[tuple[jax.Array, jax.Array | None]]:
    """The ``(W, b)`` pairs of the dense layers, input to readout (activation layers dropped)."""
    return [layer for layer in params if isinstance(layer, (tuple, list)) and len(layer) == 2]


def forward(arch: Architecture, params: Params, x: jax.Array, *, activation: Activation | None = None,
            return_layers: bool = False) -> Any:
    """Forward pass over stax parameters.

    NTK parametrization: h^{l+1} = (sigma_w / sqrt(n_l)) a^l W^{l+1} + sigma_b b^{l+1};
    standard: h^{l+1} = a^l W^{l+1} + b^{l+1} (the variances sit in the initialization).
    With ``return_layers`` also returns the inputs a^l of every dense layer and the pre-activations h^l of
    every hidden layer.
    """
    phi = activation or activation_fn(arch)
    layers = dense_layers(params)
    if len(layers) != arch.depth + 1:
        raise ValueError(f"params have {len(layers)} dense layers, architecture {arch.spec} needs {arch.depth + 1}")
    ntk = arch.parameterization == "ntk"
    inputs, preacts = [], []
    a = x
    for index, (W, b) in enumerate(layers):
        inputs.append(a)
        h = a @ W
        if ntk:
            h = h * (arch.sigma_w / float(np.sqrt(a.shape[-1])))  # a Python float keeps float32 inputs float32
        if b is not None:
            h = h + (arch.sigma_b * b if ntk else b)
        if index < arch.depth:
            preacts.append(h)
            a = phi(h)
        else:
            a = h
    if return_layers:
        return a, inputs, preacts
    return a
