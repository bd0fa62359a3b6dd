"""Finite-width networks built from a :class:`theory.Architecture`, one neural-tangents ``stax`` layer per layer
of its chain (:func:`stax_layer`).

The parameters are neural-tangents ``stax`` parameters (a list with one entry per layer: ``(W, b)`` for a
dense or convolutional layer, ``b`` is ``None`` without biases, ``()`` for an activation, pooling or flatten,
the nested tuple of stax.serial for a residual block), so a network made here can be handed to any
neural-tangents function. Inputs are flat, shape (N, d), in every public function: a convolutional network
reads them as images of :func:`theory.layers.image_shape` inside its ``init``/``apply``/``kernel_fn``.
:func:`forward` runs a chain over the same parameters with each activation layer swappable (the attack smooths
ReLU into softplus); for a plain fully connected network it is this project's own pure-JAX pass, faster
than stax's for the attack, which also returns the per-layer quantities that
:func:`numerics.kernels.empirical_ntk` needs.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from numerics._nt import neural_tangents
from numerics.checkpoint import with_article
from theory import activations
from theory.architecture import Architecture
from theory.layers import Activation as ActivationLayer
from theory.layers import Conv as ConvLayer
from theory.layers import Residual as ResidualLayer
from theory.layers import image_shape, layers_of

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
    """Whether the registry gives one of ``arch``'s activations a smooth surrogate for the attack (the relu
    family)."""
    return any(activations.get(layer.name).surrogate is not None for layer in arch.activation_layers)


def layer_activation(layer: ActivationLayer, smooth_beta: jax.Array | float | None = None) -> Activation:
    """An activation layer's JAX function; with ``smooth_beta``, its registry surrogate at that sharpness when it
    has one (relu(x) -> softplus(beta x) / beta), else the function itself."""
    if smooth_beta is not None:
        surrogate = _compiled_surrogate(layer.name, layer.params)
        if surrogate is not None:
            return lambda x: surrogate(x, smooth_beta)
    return _compiled_activation(layer.name, layer.params)


class LayerActivations:
    """The function of every activation layer of a chain (each swapped for its surrogate at ``smooth_beta`` when
    given): :func:`forward` asks it :meth:`for_layer`; called directly it is the chain's one activation."""

    def __init__(self, arch: Architecture, smooth_beta=None):
        self.layers = arch.activation_layers
        self.smooth_beta = smooth_beta
        self.spec = arch.spec

    def for_layer(self, layer: ActivationLayer) -> Activation:
        return layer_activation(layer, self.smooth_beta)

    def __call__(self, x):
        if len(self.layers) != 1:
            raise ValueError(f"{self.spec} has {len(self.layers)} different activations, not one; "
                             "run it through numerics.networks.forward")
        return self.for_layer(self.layers[0])(x)


def activation_fn(arch: Architecture, *, smooth_beta: jax.Array | float | None = None) -> Activation:
    """The elementwise activation of ``arch`` as a JAX function (from its registry entry).

    With ``smooth_beta`` set, an activation whose entry has a surrogate is replaced by it at that sharpness,
    e.g. relu(x) -> softplus(beta x) / beta (Loo et al. 2023, Sec. 4): ReLU has no curvature, so the
    gradients of its network with respect to inputs vanish to first order. For a chain that is not the fully
    connected shorthand: a :class:`LayerActivations` (one function per activation layer).
    """
    if not arch.is_shorthand:
        return LayerActivations(arch, smooth_beta)
    return layer_activation(ActivationLayer(arch.activation, arch.activation_params), smooth_beta)


def _branch_dense(layer: ResidualLayer, units: int):
    """The residual branch's last layer: Dense with W_std = s sigma_w, b_std = s sigma_b (the scale folded in)."""
    s = layer.scale
    return neural_tangents().stax.Dense(int(units), W_std=s * layer.dense.sigma_w,
                                        b_std=s * layer.dense.sigma_b if layer.dense.has_bias else None)


NUMERICAL_DEGREE = 80
"""Gauss-Hermite nodes per axis of neural-tangents' ElementwiseNumerical for an activation without a stax layer
(its own default is 25); K1 builds its reference with more (proofs_check.claims.k1.REFERENCE_DEGREE)."""


def stax_layer(layer, units: int | None = None, *, numerical_degree: int = NUMERICAL_DEGREE):
    """The neural-tangents layer of a :mod:`theory.layers` layer (``units``: a dense layer's output width), built
    as its kind's :class:`LayerNumerics` says (default: the layer's own description, ``layer.stax(units)``).

    An activation takes its registry entry's stax layer; without one, stax.ElementwiseNumerical of its JAX
    function with ``numerical_degree`` Gauss-Hermite nodes per axis.

    Built with concrete values even when first asked for inside a trace (the apply functions are cached, and the
    first call may come from a jitted attack): a layer that makes an array of its constants when built, as
    stax.DotGeneral(rhs=k) does, would otherwise keep a tracer and fail every later call with UnexpectedTracerError."""
    with jax.ensure_compile_time_eval():
        return layer_numerics(layer).stax(layer, units, numerical_degree)


def _described_stax(layer, units, numerical_degree):
    """The stax layer that ``layer.stax(units)`` describes as (name, args, kwargs) (theory imports no JAX). A kind
    without one, or one naming no stax layer, is a ValueError in one line (a trial's registered kinds raised
    NotImplementedError and AttributeError out of the commands)."""
    what = f"{type(layer).__name__} layer {layer!r}"
    try:
        name, args, kwargs = layer.stax(units)
    except NotImplementedError:
        raise ValueError(f"{what} has no neural-tangents layer (its kind's stax): no network of it can be built, "
                         "only its analytic kernels") from None
    except Exception as error:  # a kind's code: whatever it raises, one line
        raise ValueError(f"{what}: its stax raised {type(error).__name__}: {error}") from None
    stax = neural_tangents().stax
    if not (isinstance(name, str) and callable(getattr(stax, name, None))):
        raise ValueError(f"{what}: its stax names {name!r}, which is not a layer of neural_tangents.stax")
    try:
        return getattr(stax, name)(*args, **kwargs)
    except Exception as error:  # wrong arguments for that layer
        raise ValueError(f"{what}: neural_tangents.stax.{name}{tuple(args)} raised {type(error).__name__}: "
                         f"{error}") from None


def _activation_stax(layer: ActivationLayer, units, numerical_degree):
    stax = neural_tangents().stax
    entry = activations.get(layer.name)
    params = dict(entry.defaults) | dict(layer.params)
    if entry.stax is not None:
        name, arguments = entry.stax
        return getattr(stax, name)(*arguments(params))
    with warnings.catch_warnings():  # its notice that the layer is numerical: K1 states its accuracy
        warnings.filterwarnings("ignore", message="Numerical Activation Layer", category=UserWarning)
        return stax.ElementwiseNumerical(layer_activation(layer), deg=int(numerical_degree),
                                         df=_compiled_derivative(*_key(layer)))


def _residual_stax(layer: ResidualLayer, units, numerical_degree):
    """stax.serial(FanOut(2), parallel(Identity, serial(activation, Dense)), FanInSum)."""
    stax = neural_tangents().stax
    branch = _branch_dense(layer, units)
    inner = stax_layer(layer.activation, numerical_degree=numerical_degree)
    return stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(inner, branch)), stax.FanInSum())


def _stax_apply(layer, params, h, phi_of):
    return _layer_apply(layer)(params, h)


def _activation_apply(layer: ActivationLayer, params, h, phi_of):
    return phi_of(layer)(h)


def _residual_apply(layer: ResidualLayer, params, h, phi_of):
    """h + s Dense(phi(h)), the branch's Dense over its parameters (:data:`RESIDUAL_WEIGHTS`)."""
    return h + _branch_apply(layer)(weights_of(layer, params), phi_of(layer.activation)(h))


def _conv_forward(layer: ConvLayer, params, h, phi_of):
    return _conv_apply(layer)(params, h)


RESIDUAL_WEIGHTS = (1, 1, 1)
"""Where a residual block's (W, b) sit in its stax parameters: serial(FanOut, parallel(Identity, serial(activation,
Dense)), FanInSum) -> [1] the parallel, [1] its branch, [1] the branch's Dense."""


@dataclasses.dataclass(frozen=True)
class LayerNumerics:
    """How the numerics run one layer kind (theory.layers; its traits and its own ``stax`` description cover the
    rest): ``stax(layer, units, numerical_degree)``, its neural-tangents layer; ``apply(layer, params, h,
    phi_of)``, its output on ``h`` in :func:`chain_forward` (``phi_of(activation layer)``: the JAX function to
    use); ``weights_at``, the indices of its (W, b) pair within its stax parameters (a layer of weights:
    theory.layers.Layer.weight_layer). A kind without an entry in :data:`LAYER_NUMERICS` takes the defaults:
    the stax layer it describes, stax's apply, (W, b) as its parameters."""

    stax: Callable = _described_stax
    apply: Callable = _stax_apply
    weights_at: tuple[int, ...] = ()


LAYER_NUMERICS: dict[type, LayerNumerics] = {
    ActivationLayer: LayerNumerics(stax=_activation_stax, apply=_activation_apply),
    ResidualLayer: LayerNumerics(stax=_residual_stax, apply=_residual_apply, weights_at=RESIDUAL_WEIGHTS),
    ConvLayer: LayerNumerics(apply=_conv_forward),  # patches times a matrix: faster than stax's in float64
}
"""The numerics of the layer kinds that differ from :class:`LayerNumerics`' defaults, keyed by class."""


def layer_numerics(layer) -> LayerNumerics:
    """The :class:`LayerNumerics` of ``layer``'s kind (the entry of its class or of the nearest base class)."""
    return next((LAYER_NUMERICS[kind] for kind in type(layer).__mro__ if kind in LAYER_NUMERICS), LayerNumerics())


def weights_of(layer, params) -> tuple:
    """The (W, b) pair of a layer of weights within its stax parameters (:attr:`LayerNumerics.weights_at`)."""
    return functools.reduce(lambda container, index: container[index], layer_numerics(layer).weights_at, params)


def _with_weights(layer, params, pair: tuple):
    """``params`` with the layer's (W, b) replaced by ``pair``, stax's own containers (tuples and lists) kept."""
    def replaced(container, path):
        if not path:
            return pair
        return type(container)(replaced(old, path[1:]) if i == path[0] else old for i, old in enumerate(container))

    return replaced(params, layer_numerics(layer).weights_at)


@dataclasses.dataclass(frozen=True)
class Network:
    """A finite network: the layers of ``arch`` with hidden width ``width`` (dense units, and the channels of a
    convolution without its own) and ``out_dim`` outputs.

    ``init_fn``, ``apply_fn`` and ``kernel_fn`` are neural-tangents' (stax) triple, taking flat inputs (N, d)
    (a convolutional network reshapes them with theory.layers.image_shape); ``kernel_fn`` is its analytic
    infinite-width kernel, used as the independent reference for this project's kernels.
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


def as_images(arch: Architecture, x: jax.Array) -> jax.Array:
    """Flat inputs (N, d) as the images a convolutional ``arch`` reads, (N, *image_shape(d, spatial axes));
    any other architecture: x unchanged."""
    if arch.spatial_dims is None:
        return x
    return jnp.reshape(x, (x.shape[0], *image_shape(x.shape[-1], arch.spatial_dims)))


def _flat_inputs(arch: Architecture, init_fn: Callable, apply_fn: Callable,
                 kernel_fn: Callable) -> tuple[Callable, Callable, Callable]:
    """The stax triple of a convolutional network, taking flat inputs (N, d); apply is :func:`chain_forward` (the
    same layers; its convolutions are patches times a matrix, tested against stax's apply)."""
    spatial = arch.spatial_dims

    def init(key, input_shape):
        *batch, dim = input_shape
        return init_fn(key, (*batch, *image_shape(int(dim), spatial)))

    def apply(params, x, **kwargs):  # the chain's own pass: its convolutions are faster in float64 than stax's
        return chain_forward(arch, params, x)

    @functools.wraps(kernel_fn)
    def kernel(x1, x2=None, *args, **kwargs):
        return kernel_fn(as_images(arch, x1), None if x2 is None else as_images(arch, x2), *args, **kwargs)

    return init, apply, kernel


@functools.cache
def make_network(arch: Architecture, width: int, out_dim: int = 1, *,
                 numerical_degree: int = NUMERICAL_DEGREE) -> Network:
    """The neural-tangents network of ``arch`` at hidden width ``width`` (``numerical_degree``: Gauss-Hermite nodes
    per axis of the kernel of an activation without a stax layer, :data:`NUMERICAL_DEGREE`)."""
    if not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if not isinstance(out_dim, (int, np.integer)) or out_dim < 1:
        raise ValueError(f"out_dim must be a positive integer, got {out_dim!r}")
    chain = layers_of(arch)
    layers = [stax_layer(layer, width if index < len(chain) - 1 else out_dim, numerical_degree=numerical_degree)
              for index, layer in enumerate(chain)]
    stax = neural_tangents().stax
    init_fn, apply_fn, kernel_fn = stax.serial(*layers)
    if arch.has_residual:
        kernel_fn = _without_fan_in_warning(kernel_fn)
    if arch.spatial_dims is not None:
        init_fn, apply_fn, kernel_fn = _flat_inputs(arch, init_fn, apply_fn, kernel_fn)
    return Network(arch=arch, width=int(width), out_dim=int(out_dim), init_fn=init_fn,
                   apply_fn=apply_fn, kernel_fn=kernel_fn)


MAX_PARAMETERS = 1 << 27
"""Most parameters a network built from user options may have: 134 M float64 numbers, 1.07 GB per copy of theta;
training and the attack hold about ten copies (theta_0, theta_f, gradients, Adam's moments), so ~11 GB."""


def parameter_count(arch: Architecture, width: int, in_dim: int, out_dim: int = 1) -> int:
    """Parameters of ``make_network(arch, width, out_dim)`` on ``in_dim`` inputs, from shapes only (nothing is
    allocated or drawn)."""
    import math

    network = make_network(arch, int(width), int(out_dim))
    shapes = jax.eval_shape(lambda: network.init(jax.random.PRNGKey(0), int(in_dim)))
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes))


def check_network_size(arch: Architecture, width: int, in_dim: int, out_dim: int = 1, *,
                       option: str = "--width") -> None:
    """ValueError (one line) when the network would have more than ``MAX_PARAMETERS`` parameters."""
    count = parameter_count(arch, width, in_dim, out_dim)
    if count > MAX_PARAMETERS:
        raise ValueError(f"{option} {width}: {arch.spec} would have {count:.3g} parameters ({8 * count / 1e9:.3g} GB "
                         f"per copy in float64); at most {MAX_PARAMETERS} ({8 * MAX_PARAMETERS / 1e9:.2f} GB)")


def dense_layers(params: Params) -> list[tuple[jax.Array, jax.Array | None]]:
    """The ``(W, b)`` pairs of the dense layers, input to readout (activation layers dropped)."""
    return [layer for layer in params if isinstance(layer, (tuple, list)) and len(layer) == 2]


@functools.cache
def _layer_apply(layer) -> Callable:
    """stax's apply function of a weighted, pooling or flatten layer (its output width only shapes init)."""
    return stax_layer(layer, 1)[1]


@functools.cache
def _branch_apply(layer: ResidualLayer) -> Callable:
    return _branch_dense(layer, 1)[1]


@functools.cache
def _conv_apply(layer: ConvLayer) -> Callable:
    """stax.Conv's apply (stride 1, SAME zero padding: (k - 1) // 2 before, the rest after, as lax's), written as
    patches times a matrix: XLA's CPU convolution in float64 is 6-8x slower than this (measured on (40, 8, 8, 32)
    inputs and a 3x3x32x32 filter, forward and gradient). NTK parametrization: (sigma_w / sqrt(C_in |window|)) W * a
    + sigma_b b; standard: W * a + b (tested against neural-tangents' apply)."""
    window = tuple(layer.window)
    size = int(np.prod(window))
    pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in window]
    offsets = list(itertools.product(*[range(k) for k in window]))
    ntk = layer.parameterization == "ntk"

    def apply(params, x):
        W, b = params
        spatial = x.shape[1:-1]
        padded = jnp.pad(x, [(0, 0), *pads, (0, 0)])
        patches = jnp.stack([padded[(slice(None), *(slice(o, o + n) for o, n in zip(offset, spatial)), slice(None))]
                             for offset in offsets], axis=-2)
        out = jnp.einsum("...kc,kco->...o", patches, W.reshape(size, W.shape[-2], W.shape[-1]))
        if ntk:
            out = out * (layer.sigma_w / float(np.sqrt(W.shape[-2] * size)))
        if b is not None:
            out = out + (layer.sigma_b * b if ntk else b)
        return out

    return apply


def chain_forward(arch: Architecture, params: Params, x: jax.Array, *, activation=None) -> jax.Array:
    """f(x) for any chain over its stax parameters, layer by layer with stax's apply functions, each activation
    layer taken from ``activation`` (a :class:`LayerActivations` or one function for all; default: the layers'
    own); a residual block h + s Dense(phi(h)) uses the same phi. Flat inputs (N, d)."""
    chain = layers_of(arch)
    if len(params) != len(chain):
        raise ValueError(f"params have {len(params)} layers, architecture {arch.spec} has {len(chain)}")
    if activation is None:
        def phi_of(layer):
            return layer_activation(layer)
    elif hasattr(activation, "for_layer"):
        phi_of = activation.for_layer
    else:
        def phi_of(layer):
            return activation
    h = as_images(arch, x)
    for layer, p in zip(chain, params):
        h = layer_numerics(layer).apply(layer, p, h, phi_of)
    return h


def forward(arch: Architecture, params: Params, x: jax.Array, *, activation: Activation | None = None,
            return_layers: bool = False) -> Any:
    """Forward pass over stax parameters, any chain (:func:`chain_forward`); a plain fully connected network
    (``arch.is_mlp``) takes this hand-written pass, the fast path of the attack:

    NTK parametrization: h^{l+1} = (sigma_w / sqrt(n_l)) a^l W^{l+1} + sigma_b b^{l+1};
    standard: h^{l+1} = a^l W^{l+1} + b^{l+1} (the variances sit in the initialization).
    With ``return_layers`` (plain fully connected networks only) also returns the inputs a^l of every dense
    layer and the pre-activations h^l of every hidden layer.
    """
    if not arch.is_mlp:
        if return_layers:
            raise NotImplementedError(f"{arch.spec}: per-layer outputs exist for plain fully connected networks "
                                      "(ACTIVATION:DEPTH) only")
        return chain_forward(arch, params, x, activation=activation)
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


def shape_of_params(arch: Architecture, params: Params) -> tuple[int, int]:
    """(width, out_dim) of a network of ``arch`` whose parameters are ``params``, read from the layers that carry
    them (a hidden dense layer, a convolution without its own channel count, a residual branch; width 1 when none
    does); ValueError when ``params`` do not have one entry per layer of the chain."""
    chain = layers_of(arch)
    if not isinstance(params, (list, tuple)) or len(params) != len(chain):
        raise ValueError(f"params do not have the {len(chain)} layers of {with_article(arch.spec)} network")
    width = None
    try:
        out_dim = int(np.shape(params[-1][0])[1])
        for layer, p in zip(chain[:-1], params[:-1]):
            if layer.takes_width and layer.weight_layer is not None:
                width = int(np.shape(weights_of(layer, p)[0])[-1])
                break
    except (TypeError, IndexError):
        raise ValueError(f"params do not have the layers of {with_article(arch.spec)} network") from None
    return (width or 1), out_dim


def sub_network(arch: Architecture, params: Params, width: int) -> Params:
    """The parameters of the first ``width`` units of every hidden layer (dense units, residual branches, and the
    channels of every convolution without its own channel count) of a network of ``arch``: the input of the first
    weighted layer and the readout's outputs are kept whole. In NTK parametrization (weights N(0, 1), the
    1 / sqrt(fan-in) in the forward pass) this is an exact draw of the width-``width`` network, so one wide draw
    serves every narrower width (common random numbers across widths). Convolution kernels are HWIO, sliced on
    their in and out channel axes; a dense layer after ``flatten`` reads positions x channels (stax.Flatten of
    NHWC, channel fastest), so its rows are sliced per position."""
    chain = layers_of(arch)
    full, _ = shape_of_params(arch, params)
    if not 1 <= width <= full:
        raise ValueError(f"width must be from 1 to the network's width {full}, got {width}")
    keep = slice(0, int(width))
    weighted = [i for i, layer in enumerate(chain) if layer.weight_layer is not None]
    out = []
    narrowed = False  # the previous weighted layer's outputs were cut to ``width``
    channels = None  # that layer's number of outputs in the full network
    flattened = False  # a flatten since that layer
    for index, (layer, p) in enumerate(zip(chain, params)):
        flattened = flattened or layer.keeps_positions
        if index not in weighted:
            out.append(p)
            continue
        weights, bias = weights_of(layer, p)
        if flattened:  # rows: position-major, the channels fastest
            rows, cols = weights.shape
            per_position = weights.reshape(rows // channels, channels, cols)
            weights = (per_position[:, keep] if narrowed else per_position).reshape(-1, cols)
            flattened = False
        elif narrowed:
            weights = weights[..., keep, :]
        channels = weights.shape[-1]
        narrowed = index != weighted[-1] and layer.takes_width
        if narrowed:
            weights, bias = weights[..., keep], None if bias is None else bias[..., keep]
        out.append(_with_weights(layer, p, (weights, bias)))
    return out


activations.on_change(_clear_caches)
