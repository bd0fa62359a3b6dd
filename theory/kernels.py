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
Sigma^{depth+1} and Theta^{depth+1}. The same layer map is compiled numerically by
:mod:`numerics.kernels`.
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from theory.architecture import Architecture
from theory.dual import CLOSED_FORM, DualKernel, a_var, as_rational, b_var, c_var, dual_for

q12 = sp.Symbol("q12", real=True)
q11, q22 = sp.symbols("q11 q22", positive=True)
dim, width_symbol = sp.symbols("d m", positive=True)


@dataclasses.dataclass(frozen=True)
class KernelState:
    """Sigma(x, x), Sigma(x, x'), Sigma(x', x') and Theta(x, x') after some layer."""

    s11: sp.Expr
    s12: sp.Expr
    s22: sp.Expr
    theta: sp.Expr


def input_layer(arch: Architecture) -> KernelState:
    """The first dense layer, in terms of q_ij = <x_i, x_j> and the input dimension d."""
    sw2, sb2 = as_rational(arch.sigma_w) ** 2, as_rational(arch.sigma_b) ** 2

    def sigma(q):
        return sw2 * q / dim + sb2

    if arch.parameterization == "ntk":
        theta = sigma(q12)
    else:
        theta = q12 + (1 if arch.has_bias else 0)
    return KernelState(sigma(q11), sigma(q12), sigma(q22), theta)


def layer_step(arch: Architecture, state: KernelState, kernel: DualKernel | None = None) -> KernelState:
    """One activation + dense layer of the recursion (module docstring)."""
    kernel = kernel or dual_for(arch)
    if kernel.method != CLOSED_FORM:
        raise ValueError(f"activation {arch.activation} has no closed-form dual kernel; it is evaluated by "
                         "quadrature in numerics.kernels, not composed symbolically")
    sw2, sb2 = as_rational(arch.sigma_w) ** 2, as_rational(arch.sigma_b) ** 2
    cross = {a_var: state.s11, b_var: state.s22, c_var: state.s12}
    value = kernel.value.subs(cross, simultaneous=True)
    derivative = kernel.derivative.subs(cross, simultaneous=True)
    s11 = sw2 * kernel.value_diagonal.subs(a_var, state.s11) + sb2
    s22 = sw2 * kernel.value_diagonal.subs(a_var, state.s22) + sb2
    s12 = sw2 * value + sb2
    if arch.parameterization == "ntk":
        theta = s12 + sw2 * derivative * state.theta
    else:
        theta = width_symbol * value + (1 if arch.has_bias else 0) + sw2 * derivative * state.theta
    return KernelState(s11, s12, s22, theta)


def compose(arch: Architecture, depth: int | None = None) -> KernelState:
    """The kernels after ``depth`` hidden layers (default ``arch.depth``) and the readout layer."""
    state = input_layer(arch)
    kernel = dual_for(arch)
    for _ in range(arch.depth if depth is None else depth):
        state = layer_step(arch, state, kernel)
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
