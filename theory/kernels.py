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
from theory.layers import STATE, PairState, activation_of, input_state, k11, k12, k22, kdot, layers_of, n_in

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


def apply_layer(layer, state: PairState, *, width=width_symbol, first: bool = False) -> PairState:
    """``layer``'s symbolic step (theory.layers) evaluated at ``state``."""
    values = dict(zip(STATE, state.as_tuple()))
    values[n_in] = dim if first else width
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
