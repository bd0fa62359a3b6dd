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
import itertools

import sympy as sp

from theory.architecture import Architecture
from theory.dual import CLOSED_FORM, DualKernel, a_var, as_rational, b_var, c_var, dual_kernel
from theory.layers import (STATE, ZERO_STATE, PairState, activation_of, image_shape, input_state, k11, k12, k22,
                           kdot, layers_of, n_in, positions)

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
    chain = layers_of(arch)
    if depth is not None and depth != arch.depth:
        chain = layers_of(Architecture(arch.activation, depth, arch.sigma_w, arch.sigma_b, arch.parameterization,
                                       arch.activation_params, arch.residual_scale))
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
    dims = {layer.spatial_dims for layer in chain if layer.spatial}
    if not dims:
        state = PairState(sum(u * u for u in x1) / d, sum(u * v for u, v in zip(x1, x2)) / d,
                          sum(v * v for v in x2) / d, evaluate.zero.theta)
        fan_in = d
        for layer in chain:
            state = evaluate.elementwise(layer, state, fan_in)
            fan_in = layer.fan_out(fan_in, width)
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
        if layer.pooling:
            pairs = layer.pooled_pairs(shape)
            pooled = {name: evaluate.pool(layer, [problem[pair] for pair in pairs]) for name, problem in
                      problems.items()}
            state = PairState(pooled["self1"].s12, pooled["cross"].s12, pooled["self2"].s12, pooled["cross"].theta)
            fan_in = fan_in * layer.fan_in_factor(shape)
            break
        new = {}
        for name, problem in problems.items():
            if layer.spatial:
                new[name] = {(p, q): evaluate.patch(layer, [evaluate.zero if read is None else problem[read]
                                                            for read in layer.patch(p, q, shape)], fan_in)
                             for p, q in problem}
            else:
                new[name] = {pair: evaluate.elementwise(layer, problem[pair], fan_in) for pair in problem}
        cross, self1, self2 = ({pair: s.s12 for pair, s in new[name].items()} for name in ("cross", "self1", "self2"))
        theta = {pair: s.theta for pair, s in new["cross"].items()}
        fan_in = layer.fan_out(fan_in, width)
    for layer in layers:
        state = evaluate.elementwise(layer, state, fan_in)
        fan_in = layer.fan_out(fan_in, width)
    return state


# ------------------------------------------------------------------------------------------------
# Derivations of the convolution, pooling and residual steps from the layers' definitions
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Identity:
    """Symbolic identities ``difference == 0`` (one per entry); ``differences`` are kept unsimplified so that
    they can also be evaluated numerically at random points (a wrong simplification cannot then pass)."""

    name: str
    differences: tuple[sp.Expr, ...]

    @property
    def residuals(self) -> tuple[sp.Expr, ...]:
        return tuple(sp.simplify(sp.expand(d)) for d in self.differences)

    @property
    def residual(self) -> sp.Expr:
        """0 when every entry is proven, else the first nonzero residual."""
        return next((r for r in self.residuals if r != 0), sp.Integer(0))


def gaussian_expectation(expr: sp.Expr, variances: dict) -> sp.Expr:
    """E over independent zero-mean Gaussian variables (the keys of ``variances``, their variances the values)
    of a polynomial in them: each monomial prod w^k becomes prod E[w^k] = 0 (k odd), v^(k/2) (k - 1)!!."""
    variables = tuple(variances)
    total = sp.Integer(0)
    for powers, coefficient in sp.Poly(sp.expand(expr), *variables).terms():
        moment = coefficient
        for variable, k in zip(variables, powers):
            moment *= 0 if k % 2 else variances[variable] ** (k // 2) * sp.factorial2(k - 1)
        total += moment
    return sp.expand(total)


def _pair_moments(expr: sp.Expr, left, right, table) -> sp.Expr:
    """Replace every product left[i] * right[j] in a bilinear polynomial by table(i, j) (a second moment)."""
    poly = sp.Poly(sp.expand(expr), *left, *right)
    total = sp.Integer(0)
    for powers, coefficient in poly.terms():
        i = [k for k, p in enumerate(powers[:len(left)]) if p]
        j = [k for k, p in enumerate(powers[len(left):]) if p]
        if sum(powers) == 0:
            total += coefficient
            continue
        if len(i) != 1 or len(j) != 1 or sum(powers) != 2:
            raise ValueError("not bilinear in the two families")
        total += coefficient * table(i[0], j[0])
    return sp.expand(total)


SAME_OFFSETS = {1: (0,), 2: (0, 1), 3: (-1, 0, 1)}
"""The offsets o (output p reads input p + o) of SAME padding for windows of 1, 2 and 3 taps, written out from
XLA's rule, which neural-tangents' stax.Conv uses: k - 1 zeros in all, (k - 1) // 2 of them before the input. The
derivations below read these, not theory.layers.same_offsets (the code under test), so the two are compared."""


def conv_step_derivation(length: int = 4, taps: int = 3, sigma_w=sp.Rational(13, 10),
                         sigma_b=sp.Rational(1, 10)) -> Identity:
    """theory.layers.Conv.step derived from the layer's definition on a 1D image of ``length`` pixels (one
    channel in and out, NTK parametrization): h_p = (sigma_w / sqrt(|w|)) sum_o w_o a_{p+o} + sigma_b b
    (a = 0 outside: SAME zero padding), w_o, b ~ N(0, 1) independent of the inputs a (of x) and a' (of x').

    Sigma'[p, p'] = E[h_p h'_p'] with E[a_i a'_j] = S_ij; Theta'[p, p'] = E[sum over parameters of
    dh_p/dtheta dh'_p'/dtheta]: this layer's w and b, and the earlier parameters through a (chain rule),
    <da_i, da'_j> = T_ij. Both must equal Conv.step at every pixel pair, with the patch of S and T (the patch is
    read at the layer's offsets, the definition at :data:`SAME_OFFSETS`)."""
    from theory.layers import Conv, positions

    layer = Conv((taps,), sigma_w=float(sigma_w), sigma_b=float(sigma_b))
    offsets = SAME_OFFSETS[taps]
    w = sp.symbols(f"w0:{taps}", real=True)
    b = sp.Symbol("b", real=True)
    a, a2 = sp.symbols(f"a0:{length}", real=True), sp.symbols(f"a2_0:{length}", real=True)
    da, da2 = sp.symbols(f"da0:{length}", real=True), sp.symbols(f"da2_0:{length}", real=True)
    S = sp.Matrix(length, length, lambda i, j: sp.Symbol(f"S_{i}_{j}", real=True))
    T = sp.Matrix(length, length, lambda i, j: sp.Symbol(f"T_{i}_{j}", real=True))
    scale = sigma_w / sp.sqrt(taps)

    def pre_activation(values, p):
        return scale * sp.Add(*(w[j] * values[p + o] for j, o in enumerate(offsets) if 0 <= p + o < length)) \
            + sigma_b * b

    weights = {v: sp.Integer(1) for v in w + (b,)}
    differences = []
    cells = positions((length,))
    for (p,), (q,) in itertools.product(cells, cells):
        h, h2 = pre_activation(a, p), pre_activation(a2, q)
        sigma = _pair_moments(gaussian_expectation(h * h2, weights), a, a2, lambda i, j: S[i, j])
        own = sum(sp.diff(h, v) * sp.diff(h2, v) for v in w + (b,))
        chain = sum(sp.diff(h, a[i]) * da[i] for i in range(length)) * \
            sum(sp.diff(h2, a2[j]) * da2[j] for j in range(length))
        theta = _pair_moments(gaussian_expectation(own, weights), a, a2, lambda i, j: S[i, j]) + \
            _pair_moments(gaussian_expectation(chain, weights), da, da2, lambda i, j: T[i, j])
        patch = [ZERO_STATE if read is None else PairState(sp.Integer(0), S[read[0][0], read[1][0]], sp.Integer(0),
                                                            T[read[0][0], read[1][0]])
                 for read in layer.patch((p,), (q,), (length,))]
        step = layer.step(patch)
        differences += [sigma - step.s12, theta - step.theta]
    return Identity(f"conv step on a length-{length} image, window {taps}: E over the weights of the layer's "
                    "definition = Conv.step at every pixel pair (Sigma and Theta)", tuple(differences))


def pointwise_conv_identities() -> list[Identity]:
    """A 1 (1D) or 1x1 (2D) convolution is the dense step at each pixel pair; at an interior pixel pair (whole
    window inside the image) a convolution on a pixel-constant state is the dense step too."""
    from theory.layers import SYMBOLIC_STATE, Conv, Dense

    out = []
    for window in ((1,), (1, 1)):
        for parametrization in ("ntk", "standard"):
            conv = Conv(window, sigma_w=1.3, sigma_b=0.1, parameterization=parametrization)
            dense = Dense(1.3, 0.1, parametrization)
            step = conv.step([SYMBOLIC_STATE])
            out.append(Identity(f"{'x'.join(map(str, window))} convolution ({parametrization}) = dense step per pixel",
                                tuple(x - y for x, y in zip(step.as_tuple(), dense.step().as_tuple()))))
    conv = Conv((3, 3), sigma_w=1.3, sigma_b=0.1)
    step = conv.step([SYMBOLIC_STATE] * len(conv.offsets))
    out.append(Identity("3x3 convolution at an interior pixel pair of a pixel-constant state = dense step",
                        tuple(x - y for x, y in zip(step.as_tuple(), Dense(1.3, 0.1).step().as_tuple()))))
    return out


def padding_factor(window: tuple[int, ...], shape: tuple[int, ...], pooling: str) -> sp.Rational:
    """The share of the window inside the image, averaged as the pooling averages: by counting, independently of
    the steps. GAP: (1 / (|w| P^2)) sum_o n_o^2 with n_o = #{p : p + o inside}; flatten: (1 / (|w| P)) sum_o n_o;
    the offsets o from :data:`SAME_OFFSETS`."""
    from theory.layers import positions, shifted_position

    cells = positions(shape)
    offsets = tuple(itertools.product(*(SAME_OFFSETS[taps] for taps in window)))
    counts = [sum(1 for p in cells if shifted_position(p, o, shape) is not None) for o in offsets]
    size = len(offsets)
    if pooling == "gap":
        return sp.Rational(sum(n * n for n in counts), size * len(cells) ** 2)
    return sp.Rational(sum(counts), size * len(cells))


def pooled_conv_identities() -> list[Identity]:
    """A convolution on a pixel-constant state followed by pooling is the dense step on F times the state, F the
    padding factor (:func:`padding_factor`): F = 17/24 for window 3 on length 4 with gap, (17/24)^2 for 3x3
    on 4x4. Zero padding makes F < 1; with circular padding F would be 1 (the plain dense step)."""
    from theory.layers import SYMBOLIC_STATE, Conv, Dense, Flatten, GlobalAveragePool

    sigma_w, sigma_b = sp.Rational(13, 10), sp.Rational(1, 10)
    out = []
    for window, shape in (((3,), (4,)), ((3, 3), (4, 4)), ((2,), (5,))):
        for pooling in (GlobalAveragePool(), Flatten()):
            conv = Conv(window, sigma_w=float(sigma_w), sigma_b=float(sigma_b))
            cells = positions(shape)
            conv_states = {(p, q): conv.step([ZERO_STATE if read is None else SYMBOLIC_STATE
                                              for read in conv.patch(p, q, shape)]) for p in cells for q in cells}
            pooled = pooling.step([conv_states[pair] for pair in pooling.pooled_pairs(shape)])
            factor = padding_factor(window, shape, pooling.kind)
            expected = Dense(float(sigma_w), float(sigma_b)).step(PairState(*(factor * v for v in
                                                                              SYMBOLIC_STATE.as_tuple())))
            out.append(Identity(f"conv{'x'.join(map(str, window))} on a pixel-constant {shape} state > {pooling.kind} "
                                f"= dense step on {factor} x the state (zero padding)",
                                (pooled.s12 - expected.s12, pooled.theta - expected.theta)))
    return out


def _infinite_width_moments(expr: sp.Expr, rules: dict, variables: tuple) -> sp.Expr:
    """Replace each monomial of a polynomial in ``variables`` by its infinite-width moment from ``rules``
    (monomial -> value); a monomial without a rule becomes a symbol ``unmatched(...)``, which fails any identity
    it reaches (e.g. a surviving cross term between the identity path and a branch)."""
    total = sp.Integer(0)
    for powers, coefficient in sp.Poly(sp.expand(expr), *variables).terms():
        monomial = sp.Mul(*(v**k for v, k in zip(variables, powers)))
        total += coefficient * rules.get(monomial, sp.Symbol(f"unmatched({monomial})"))
    return sp.expand(total)


def residual_step_derivations(units: int = 2, scale=sp.Rational(1, 2), sigma_w=sp.Rational(13, 10),
                              sigma_b=sp.Rational(1, 10)) -> list[Identity]:
    """theory.layers.Residual.step derived from the block's definition, unit 1 of ``units``:
    h'_1 = h_1 + s ((sigma_w / sqrt(n)) sum_j W_j phi(h_j) + sigma_b b), W_j, b ~ N(0, 1) independent of h.

    Sigma' = E[h'_1(x) h'_1(x')] and Theta' = E[sum over parameters of dh'_1(x) dh'_1(x')] (this block's W, b;
    earlier ones through h, also inside phi: chain rule), expectation over W and b first, then the
    infinite-width moments E[h_i h'_i] = Sigma, E[phi(h_j) phi(h'_j)] = k12, <dh_i, dh'_i> = Theta,
    E[phi'(h_j) phi'(h'_j)] <dh_j, dh'_j> = kdot Theta (distinct units independent). Every other monomial, such
    as the cross terms h_1 phi(h'_j) between the two paths, must have dropped out with the weights' zero mean.
    Also the cross terms alone, E[h_1 s (W phi(h'))_1] = 0 for Sigma and Theta."""
    from theory.layers import SYMBOLIC_STATE, Activation, Dense, Residual, k12 as k12_symbol, kdot as kdot_symbol

    n = units
    h, g = sp.symbols(f"h0:{n}", real=True), sp.symbols(f"g0:{n}", real=True)
    f, e = sp.symbols(f"f0:{n}", real=True), sp.symbols(f"e0:{n}", real=True)
    fp, ep = sp.symbols(f"fp0:{n}", real=True), sp.symbols(f"ep0:{n}", real=True)
    dh, dg = sp.symbols(f"dh0:{n}", real=True), sp.symbols(f"dg0:{n}", real=True)
    W, b = sp.symbols(f"W0:{n}", real=True), sp.Symbol("b", real=True)
    c = sigma_w / sp.sqrt(n)
    weights = {v: sp.Integer(1) for v in W + (b,)}
    branch = scale * (c * sp.Add(*(W[j] * f[j] for j in range(n))) + sigma_b * b)
    branch2 = scale * (c * sp.Add(*(W[j] * e[j] for j in range(n))) + sigma_b * b)
    out, out2 = h[0] + branch, g[0] + branch2
    tangent = dh[0] + scale * c * sp.Add(*(W[j] * fp[j] * dh[j] for j in range(n)))
    tangent2 = dg[0] + scale * c * sp.Add(*(W[j] * ep[j] * dg[j] for j in range(n)))
    state = SYMBOLIC_STATE
    rules = {sp.Integer(1): sp.Integer(1)}
    for i in range(n):
        rules[h[i] * g[i]] = state.s12
        rules[f[i] * e[i]] = k12_symbol
        rules[dh[i] * dg[i]] = state.theta
        rules[fp[i] * ep[i] * dh[i] * dg[i]] = kdot_symbol * state.theta
    variables = h + g + f + e + fp + ep + dh + dg
    sigma = _infinite_width_moments(gaussian_expectation(out * out2, weights), rules, variables)
    own = sum(sp.diff(out, v) * sp.diff(out2, v) for v in W + (b,))
    theta = _infinite_width_moments(gaussian_expectation(own + tangent * tangent2, weights), rules, variables)
    block = Residual(float(scale), Dense(float(sigma_w), float(sigma_b)), Activation("relu"))
    step = block.step()
    cross_sigma = gaussian_expectation(h[0] * branch2 + branch * g[0], weights)
    cross_theta = gaussian_expectation(dh[0] * (tangent2 - dg[0]) + (tangent - dh[0]) * dg[0], weights)
    return [Identity(f"residual block, {n} units: E over the branch weights of the block's definition = "
                     "Residual.step (Sigma and Theta)", (sigma - step.s12, theta - step.theta)),
            Identity("residual block: the cross terms between the identity path and the branch vanish",
                     (cross_sigma, cross_theta))]
