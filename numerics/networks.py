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
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from numerics._nt import neural_tangents
from theory import activations
from theory.architecture import Architecture
from theory.layers import Activation as ActivationLayer
from theory.layers import Residual as ResidualLayer
from theory.layers import layers_of

Params = list
Activation = Callable[[jax.Array], jax.Array]


LAMBDIFY_MODULES = [{"softplus": jax.nn.softplus, "erf": jax.scipy.special.erf, "erfc": jax.scipy.special.erfc},
                    "jax"]
"""sympy -> JAX: the registry's symbolic softplus maps to the stable jax.nn.softplus; sympy's JAX printer leaves
erf and erfc to the math module (scalars only), so they are mapped to jax.scipy.special here."""


FAN_IN_WARNING = "`FanIn` layers assume independent inputs"
"""neural-tangents warns at every kernel evaluation of a residual block; theory.layers.Residual derives why its
two paths are independent at infinite width (the branch ends in a dense layer), so the warning is silenced there."""


def _without_fan_in_warning(kernel_fn: Callable) -> Callable:
    @functools.wraps(kernel_fn)
    def quiet(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=FAN_IN_WARNING, category=UserWarning)
            return kernel_fn(*args, **kwargs)

    return quiet


@functools.cache
def _compiled_activation(name: str, params: tuple) -> Activation:
    """The registry entry's JAX function: its own factory, else phi compiled by sympy.lambdify."""
    entry = activations.get(name)
    p = dict(params)
    if entry.jax is not None:
        return entry.jax(p)
    expression = entry.expression(p)
    fn = sympy.lambdify(activations.x, expression, modules=LAMBDIFY_MODULES)
    if expression.has(activations.x):
        return fn
    return lambda x: fn(x) + jnp.zeros_like(x)  # a constant phi still maps arrays to arrays


@functools.cache
def _compiled_surrogate(name: str, params: tuple) -> Callable | None:
    expression = activations.get(name).surrogate_expression(dict(params))
    if expression is None:
        return None
    return sympy.lambdify((activations.x, activations.beta), expression, modules=LAMBDIFY_MODULES)


@functools.cache
def _compiled_derivative(name: str, params: tuple) -> Activation:
    """phi' from the entry's sympy phi (neural-tangents' numerical layer needs it for the NTK; without it, it
    differentiates by autodiff and warns)."""
    entry = activations.get(name)
    expression = sympy.diff(entry.expression(dict(params)), activations.x)
    fn = sympy.lambdify(activations.x, expression, modules=LAMBDIFY_MODULES)
    return lambda x: fn(x) + jnp.zeros_like(x)


def _key(layer) -> tuple[str, tuple]:
    return layer.name, layer.params


def _clear_caches() -> None:
    _compiled_activation.cache_clear()
    _compiled_surrogate.cache_clear()
    _compiled_derivative.cache_clear()
    make_network.cache_clear()


def has_surrogate(arch: Architecture) -> bool:
    """Whether the registry gives ``arch``'s activation a smooth surrogate for the attack (the relu family)."""
    return activations.get(arch.activation).surrogate is not None


def activation_fn(arch: Architecture, *, smooth_beta: jax.Array | float | None = None) -> Activation:
    """The elementwise activation of ``arch`` as a JAX function (from its registry entry).

    With ``smooth_beta`` set, an activation whose entry has a surrogate is replaced by it at that sharpness,
    e.g. relu(x) -> softplus(beta x) / beta (Loo et al. 2023, Sec. 4): ReLU has no curvature, so the
    gradients of its network with respect to inputs vanish to first order.
    """
    if smooth_beta is not None:
        surrogate = _compiled_surrogate(arch.activation, arch.activation_params)
        if surrogate is not None:
            return lambda x: surrogate(x, smooth_beta)
    return _compiled_activation(arch.activation, arch.activation_params)


def stax_layer(layer, units: int | None = None):
    """The neural-tangents layer of a :mod:`theory.layers` layer (``units``: a dense layer's output width).

    An activation takes its registry entry's stax layer; without one, stax.ElementwiseNumerical of its JAX
    function."""
    stax = neural_tangents().stax
    if isinstance(layer, ActivationLayer):
        entry = activations.get(layer.name)
        params = dict(entry.defaults) | dict(layer.params)
        if entry.stax is not None:
            name, arguments = entry.stax
            return getattr(stax, name)(*arguments(params))
        arch = Architecture(layer.name, 1, activation_params=layer.params)
        with warnings.catch_warnings():  # its notice that the layer is numerical: K1 states its accuracy
            warnings.filterwarnings("ignore", message="Numerical Activation Layer", category=UserWarning)
            return stax.ElementwiseNumerical(activation_fn(arch), deg=80, df=_compiled_derivative(*_key(layer)))
    if isinstance(layer, ResidualLayer):
        s = layer.scale
        branch = stax.Dense(int(units), W_std=s * layer.dense.sigma_w,
                            b_std=s * layer.dense.sigma_b if layer.dense.has_bias else None)
        return stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(stax_layer(layer.activation),
                                                                                        branch)),
                           stax.FanInSum())
    name, args, kwargs = layer.stax(units)
    return getattr(stax, name)(*args, **kwargs)


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
    chain = layers_of(arch)
    layers = [stax_layer(layer, width if index < len(chain) - 1 else out_dim) for index, layer in enumerate(chain)]
    stax = neural_tangents().stax
    init_fn, apply_fn, kernel_fn = stax.serial(*layers)
    if any(isinstance(layer, ResidualLayer) for layer in chain):
        kernel_fn = _without_fan_in_warning(kernel_fn)
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
    if arch.residual_scale:
        if activation is not None or return_layers:
            raise NotImplementedError(f"{arch.spec}: residual networks run through neural-tangents' apply_fn, "
                                      "which has no swapped activation or per-layer outputs")
        width, out_dim = params[0][0].shape[1], params[-1][0].shape[1]
        return make_network(arch, int(width), int(out_dim)).apply(params, x)
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


activations.on_change(_clear_caches)
