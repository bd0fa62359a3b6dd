"""The NNGP / NTK layer recursion of a fully connected network, composed symbolically.

NTK parametrization (Jacot et al. 2018, arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720):

    Sigma^1 = sigma_w^2 <x, x'> / d + sigma_b^2,              Theta^1 = Sigma^1
    Sigma^{l+1} = sigma_w^2 E[phi(u) phi(v)] + sigma_b^2
    Theta^{l+1} = Sigma^{l+1} + sigma_w^2 E[phi'(u) phi'(v)] Theta^l

with (u, v) ~ N(0, Sigma^l restricted to {x, x'}). In the standard parametrization (neural-tangents'
convention, Sohl-Dickstein et al. 2020, arXiv:2001.07301) the NTK depends on the width n_l of the layer
feeding each weight matrix:

    Theta^1 = <x, x'> + [bias],   Theta^{l+1} = n_l E[phi(u) phi(v)] + [bias] + sigma_w^2 E[phi' phi'] Theta^l

where [bias] is 1 when the network has biases. The outputs of a network with ``depth`` hidden layers are
Sigma^{depth+1} and Theta^{depth+1}. Each layer's step is written once, in :mod:`theory.layers`; this module
composes the steps symbolically and :mod:`numerics.kernels` compiles the same step expressions.
"""

from __future__ import annotations


import dataclasses

import sympy as sp

from theory.architecture import Architecture
from theory.dual import CLOSED_FORM, DualKernel, a_var, as_rational, b_var, c_var, dual_kernel
from theory.layers import (POOLING_KINDS, SPATIAL_KINDS, STATE, ZERO_STATE, PairState, activation_of, image_shape,
                           input_state, k11, k12, k22, kdot, layers_of, n_in, positions)

q12 = sp.Symbol("q12", real=True)
q11, q22 = sp.symbols("q11 q22", positive=True)
dim, width_symbol = sp.symbols("d m", positive=True)


KernelState = PairState
"""Sigma(x, x), Sigma(x, x'), Sigma(x', x') and Theta(x, x') after some layer (theory.layers.PairState)."""


def _dual_values(kernel: DualKernel, state: PairState) -> dict:
    """The dual symbols of an activation step (theory.layers) at ``state``, from the sympy dual pair."""
    if kernel.method != CLOSED_FORM:
        raise ValueError(f"activation {kernel.name} has no closed-form dual kernel; it is evaluated by "
                         "quadrature in numerics.kernels, not composed symbolically")
    cross = {a_var: state.s11, b_var: state.s22, c_var: state.s12}
    return {k11: kernel.value_diagonal.subs(a_var, state.s11), k22: kernel.value_diagonal.subs(a_var, state.s22),
            k12: kernel.value.subs(cross, simultaneous=True), kdot: kernel.derivative.subs(cross, simultaneous=True)}


def apply_layer(layer, state: PairState, *, width=width_symbol, first: bool = False, fan_in=None) -> PairState:
    """``layer``'s symbolic step (theory.layers) evaluated at ``state``; the width feeding it is ``fan_in``
    (default: the input dimension d for the ``first`` layer, else ``width``)."""
    values = dict(zip(STATE, state.as_tuple()))
    values[n_in] = fan_in if fan_in is not None else (dim if first else width)
    activation = activation_of(layer)
    if activation is not None:
        values.update(_dual_values(dual_kernel(activation.name, activation.params), state))
    out = layer.step()
    return PairState(*(expr.subs(values, simultaneous=True) for expr in out.as_tuple()))


def compose(arch: Architecture, depth: int | None = None) -> KernelState:
    """The kernels after ``depth`` hidden layers (default ``arch.depth``) and the readout layer, in terms of
    q_ij = <x_i, x_j>, the input dimension d and (standard parametrization) the width m."""
    depth = arch.depth if depth is None else depth
    chain = layers_of(arch)
    if depth != arch.depth:
        chain = layers_of(dataclasses.replace(arch, depth=depth))
    state = input_state(q11, q12, q22, dim)
    for index, layer in enumerate(chain):
        state = apply_layer(layer, state, first=index == 0)
    return state


def relu_ntk_depth_one(arch: Architecture) -> sp.Expr:
    """Closed form of the one-hidden-layer, bias-free ReLU NTK in NTK parametrization, written with the
    angle t between x and x' (Cho & Saul 2009; Arora et al. 2019, arXiv:1904.11955):

        Theta = sigma_w^4 |x| |x'| (sin t + (pi - t) cos t) / (2 pi d) + sigma_w^4 <x, x'> (pi - t) / (2 pi d)

    An independent statement against which :func:`compose` is checked (see :func:`as_arccos`).
    """
    sw2 = as_rational(arch.sigma_w) ** 2
    norm = sp.sqrt(q11 * q22)
    t = sp.acos(q12 / norm)
    return sw2**2 * (norm * (sp.sin(t) + (sp.pi - t) * sp.cos(t)) + q12 * (sp.pi - t)) / (2 * sp.pi * dim)


def as_arccos(expr: sp.Expr) -> sp.Expr:
    """Rewrite atan2(y, x) as arccos(x / sqrt(x^2 + y^2)), valid since every y here is a square root >= 0."""
    return expr.replace(sp.atan2, lambda y, x: sp.acos(x / sp.sqrt(x**2 + y**2)))


def _next_fan_in(layer, fan_in, width):
    """The width feeding the layer after ``layer`` (activations keep it; pooling is handled by the caller)."""
    if layer.kind == "activation":
        return fan_in
    if layer.kind in SPATIAL_KINDS and layer.channels is not None:
        return layer.channels
    return width


class SymbolicEvaluation:
    """How :func:`compose_chain` evaluates each layer: by substituting into the layers' sympy steps (exact for
    exact inputs). A numerical reference may swap in faster arithmetic with the same interface."""

    zero = ZERO_STATE

    def elementwise(self, layer, state: PairState, fan_in) -> PairState:
        return apply_layer(layer, state, fan_in=fan_in)

    def patch(self, layer, patch: list[PairState], fan_in) -> PairState:
        return PairState(*(e.subs(n_in, fan_in) for e in layer.step(patch).as_tuple()))

    def pool(self, layer, states: list[PairState]) -> PairState:
        return layer.step(states)


def compose_chain(chain: tuple, x1, x2, *, width=width_symbol, evaluate=None) -> PairState:
    """The kernels after the serial ``chain`` of theory.layers layers (the last one the readout) at two flat
    inputs ``x1``, ``x2`` (sequences of sympy numbers or symbols, length d).

    Fully connected chains start from the pair state (|x|^2 / d, <x, x'> / d, |x'|^2 / d, 0). Convolutional
    chains read the inputs as images (theory.layers.image_shape) and carry a state per pixel pair: Sigma(x,
    x')[p, p'] = <x_p, x'_p'> / C and Theta[p, p'] (C channels), and each input's own Sigma(x, x)[p, q]
    (the same steps applied to the pair (x, x)); an elementwise step at (p, p') reads Sigma(x, x)[p, p] and
    Sigma(x', x')[p', p'], a convolution reads its patch (:meth:`theory.layers.Conv.patch`), and the pooling
    layer's step turns the pixel pairs into one pair state. ``evaluate`` (default :class:`SymbolicEvaluation`)
    applies the steps."""
    evaluate = evaluate or SymbolicEvaluation()
    chain = tuple(chain)
    d = len(x1)
    dims = {layer.spatial_dims for layer in chain if layer.kind in SPATIAL_KINDS}
    if not dims:
        state = PairState(sum(u * u for u in x1) / d, sum(u * v for u, v in zip(x1, x2)) / d,
                          sum(v * v for v in x2) / d, evaluate.zero.theta)
        fan_in = d
        for layer in chain:
            state = evaluate.elementwise(layer, state, fan_in)
            fan_in = _next_fan_in(layer, fan_in, width)
        return state
    full = image_shape(d, dims.pop())
    shape, channels = full[:-1], full[-1]
    cells = positions(shape)
    pixel = {cell: i for i, cell in enumerate(cells)}

    def gram(u, v):
        return {(p, q): sum(u[pixel[p] * channels + k] * v[pixel[q] * channels + k] for k in range(channels))
                / channels for p in cells for q in cells}

    cross, self1, self2 = gram(x1, x2), gram(x1, x1), gram(x2, x2)
    theta = {pair: evaluate.zero.theta for pair in cross}
    fan_in = channels
    layers = iter(chain)

    def states(own1, own2, sigma, tangent):
        return {(p, q): PairState(own1[p, p], sigma[p, q], own2[q, q], tangent[p, q]) for p, q in sigma}

    for layer in layers:
        problems = {"cross": states(self1, self2, cross, theta), "self1": states(self1, self1, self1, theta),
                    "self2": states(self2, self2, self2, theta)}
        if layer.kind in POOLING_KINDS:
            pairs = layer.pooled_pairs(shape)
            pooled = {name: evaluate.pool(layer, [problem[pair] for pair in pairs]) for name, problem in
                      problems.items()}
            state = PairState(pooled["self1"].s12, pooled["cross"].s12, pooled["self2"].s12, pooled["cross"].theta)
            fan_in = fan_in * layer.fan_in_factor(shape)
            break
        new = {}
        for name, problem in problems.items():
            if layer.kind in SPATIAL_KINDS:
                new[name] = {(p, q): evaluate.patch(layer, [evaluate.zero if read is None else problem[read]
                                                            for read in layer.patch(p, q, shape)], fan_in)
                             for p, q in problem}
            else:
                new[name] = {pair: evaluate.elementwise(layer, problem[pair], fan_in) for pair in problem}
        cross, self1, self2 = ({pair: s.s12 for pair, s in new[name].items()} for name in ("cross", "self1", "self2"))
        theta = {pair: s.theta for pair, s in new["cross"].items()}
        fan_in = _next_fan_in(layer, fan_in, width)
    for layer in layers:
        state = evaluate.elementwise(layer, state, fan_in)
        fan_in = _next_fan_in(layer, fan_in, width)
    return state
