"""Layer kinds: each written once, as a symbolic step on the pair state, a finite layer and traits.

A network is a serial composition of layers (``relu:2`` expands to Dense > relu > Dense > relu > Dense, see
:func:`layers_of`). The pair state of two inputs x, x' after a layer is (Sigma(x, x), Sigma(x, x'),
Sigma(x', x'), Theta(x, x')), the NNGP and NTK of that layer's outputs (neural-tangents' convention:
Novak et al. 2020, arXiv:1912.02803). Each layer kind maps it, as sympy expressions in the symbols
below, by the layer's own rule:

- Dense (NTK parametrization): Sigma' = sigma_w^2 Sigma + sigma_b^2,  Theta' = Sigma'(x, x') + sigma_w^2 Theta;
  standard parametrization: Theta' = n_in Sigma(x, x') + [bias] + sigma_w^2 Theta (n_in: the input width).
- Activation phi: Sigma' = E[phi(u) phi(v)],  Theta' = E[phi'(u) phi'(v)] Theta,
  (u, v) ~ N(0, Sigma restricted to {x, x'}); the dual pair appears as the symbols ``k11, k12, k22, kdot``.

The inputs enter as the state (|x|^2 / d, <x, x'> / d, |x'|^2 / d, 0) with n_in = d.
:mod:`theory.kernels` composes the steps symbolically (dual symbols replaced by the activation's sympy
dual pair); :mod:`numerics.kernels` compiles the very same step expressions with sympy.lambdify (dual
symbols fed by the compiled dual pair). There is no second, hand-written copy of a step.
"""

from __future__ import annotations

import dataclasses
import itertools

import sympy as sp

s11, s22 = sp.symbols("s11 s22", positive=True)
s12, theta = sp.symbols("s12 theta", real=True)
k11, k22 = sp.symbols("k11 k22", positive=True)
k12, kdot = sp.symbols("k12 kdot", real=True)
n_in = sp.Symbol("n_in", positive=True)

STATE = (s11, s12, s22, theta)
"""The pair state's symbols, in the order of :class:`PairState`'s fields."""
STEP_ARGUMENTS = STATE + (k11, k12, k22, kdot, n_in)
"""Every symbol a step may use: the state, the dual pair at that state, the width feeding the layer."""


@dataclasses.dataclass(frozen=True)
class PairState:
    """Sigma(x, x), Sigma(x, x'), Sigma(x', x') and Theta(x, x') after some layer."""

    s11: sp.Expr
    s12: sp.Expr
    s22: sp.Expr
    theta: sp.Expr

    def as_tuple(self) -> tuple[sp.Expr, ...]:
        return (self.s11, self.s12, self.s22, self.theta)


SYMBOLIC_STATE = PairState(*STATE)


def _exact(value: float) -> sp.Expr:
    return sp.nsimplify(value, rational=True)


@dataclasses.dataclass(frozen=True)
class Dense:
    """A fully connected layer, h' = (sigma_w / sqrt(n_in)) W a + sigma_b b (NTK parametrization) or
    W a + b with W ~ N(0, sigma_w^2 / n_in), b ~ N(0, sigma_b^2) (standard)."""

    sigma_w: float = 1.0
    sigma_b: float = 0.0
    parameterization: str = "ntk"
    kind = "dense"
    preserves_sphere = False
    homogeneous_degree = 1  # without biases: h'(k a) = k h'(a)

    @property
    def has_bias(self) -> bool:
        return self.sigma_b > 0

    def step(self, state: PairState = SYMBOLIC_STATE) -> PairState:
        sw2, sb2 = _exact(self.sigma_w) ** 2, _exact(self.sigma_b) ** 2
        new = [sw2 * s + sb2 for s in (state.s11, state.s12, state.s22)]
        if self.parameterization == "ntk":
            ntk = new[1] + sw2 * state.theta
        else:
            ntk = n_in * state.s12 + (1 if self.has_bias else 0) + sw2 * state.theta
        return PairState(new[0], new[1], new[2], ntk)

    def stax(self, units: int):
        """The neural-tangents layer (built by numerics.networks, which imports neural-tangents)."""
        return ("Dense", (int(units),), {"W_std": self.sigma_w, "b_std": self.sigma_b if self.has_bias else None,
                                         "parameterization": self.parameterization})


@dataclasses.dataclass(frozen=True)
class Activation:
    """An elementwise activation from the registry (theory.activations), with its parameters."""

    name: str
    params: tuple[tuple[str, object], ...] = ()
    kind = "activation"
    preserves_sphere = False

    def step(self, state: PairState = SYMBOLIC_STATE) -> PairState:
        """Sigma' = (k11, k12, k22) = dual value at the state, Theta' = kdot Theta."""
        return PairState(k11, k12, k22, kdot * state.theta)


@dataclasses.dataclass(frozen=True)
class Residual:
    """A fully connected residual block h -> h + s Dense(phi(h)) (pre-activation, as in He et al. 2016,
    arXiv:1603.05027), NTK parametrization.

    Step: state' = state + s^2 (Dense o phi)(state), for Sigma and Theta alike. The identity path and the
    branch add without cross terms at infinite width: the branch ends in a dense layer whose zero-mean weights
    are independent of h, so E[h_i (W phi(h))_i] = 0, and the same holds for the cross terms of the
    Jacobians (Yang 2019, arXiv:1902.04760; neural-tangents' FanOut / FanInSum)."""

    scale: float
    dense: Dense
    activation: Activation
    kind = "residual"
    preserves_sphere = False

    def step(self, state: PairState = SYMBOLIC_STATE) -> PairState:
        branch = self.dense.step(self.activation.step(state))
        s2 = _exact(self.scale) ** 2
        return PairState(*(old + s2 * new for old, new in zip(state.as_tuple(), branch.as_tuple())))


def same_offsets(taps: int) -> tuple[int, ...]:
    """The offsets o of a window of ``taps`` taps under SAME padding: output p reads inputs p + o, with
    (taps - 1) // 2 zeros before and the rest after (XLA's and so neural-tangents' convention; -1, 0, 1 for 3)."""
    before = (int(taps) - 1) // 2
    return tuple(range(-before, int(taps) - before))


def window_offsets(window: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Every offset of a (1D or 2D) window, row-major: the product of the axes' :func:`same_offsets`."""
    return tuple(itertools.product(*(same_offsets(taps) for taps in window)))


def shifted_position(position: tuple[int, ...], offset: tuple[int, ...],
                     shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """p + o, or None where it falls outside the image: the zero padding (that input is 0, its covariances 0)."""
    moved = tuple(p + o for p, o in zip(position, offset))
    return moved if all(0 <= m < n for m, n in zip(moved, shape)) else None


def positions(shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The pixel positions of an image of ``shape`` (spatial axes only), row-major like a reshape."""
    return tuple(itertools.product(*(range(n) for n in shape)))


ZERO_STATE = PairState(sp.Integer(0), sp.Integer(0), sp.Integer(0), sp.Integer(0))
"""The pair state of a padded (zero) pixel."""


def mean_state(states) -> PairState:
    """The componentwise mean of pair states (each Sigma and Theta is linear in the layer's inputs)."""
    states = tuple(states)
    return PairState(*(sp.Add(*values) / len(states) for values in zip(*(s.as_tuple() for s in states))))


@dataclasses.dataclass(frozen=True)
class Conv:
    """A convolution with stride 1 and SAME padding over images (2D window, e.g. (3, 3)) or sequences (1D, e.g.
    (3,)); ``channels`` output channels, None: the network's width. NTK parametrization: h'_p = (sigma_w /
    sqrt(n_in |window|)) sum_o W_o a_{p+o} + sigma_b b (neural-tangents' stax.Conv), standard: W ~ N(0,
    sigma_w^2 / (n_in |window|)).

    The pair state is per pixel pair: Sigma(x, x')[p, p'] between pixel p of x and pixel p' of x' (and
    Sigma(x, x)[p, p], Sigma(x', x')[p', p'], Theta[p, p']). Step (Novak et al. 2019, arXiv:1810.05148; Arora
    et al. 2019, arXiv:1904.11955): the patch mean over the window's offsets o,

        M[p, p'] = (1 / |window|) sum_o Sigma[p + o, p' + o]     (0 where p + o or p' + o is padding),

    then the dense step on M: Sigma' = sigma_w^2 M + sigma_b^2, Theta' = Sigma' + sigma_w^2 mean_o Theta[p + o,
    p' + o] (standard: the fan-in n_in |window|). :meth:`step` takes the patch (one pair state per offset, the
    zero state for padding) and is what numerics.kernels compiles; :meth:`patch` says which pixel pair each
    offset reads."""

    window: tuple[int, ...]
    channels: int | None = None
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    parameterization: str = "ntk"
    kind = "conv"
    preserves_sphere = False
    homogeneous_degree = 1

    @property
    def has_bias(self) -> bool:
        return self.sigma_b > 0

    @property
    def spatial_dims(self) -> int:
        return len(self.window)

    @property
    def offsets(self) -> tuple[tuple[int, ...], ...]:
        return window_offsets(self.window)

    def patch(self, position, position_other, shape) -> tuple[tuple | None, ...]:
        """Per offset o: the pixel pair (p + o, p' + o) whose state feeds output pair (p, p'), or None (padding)."""
        out = []
        for offset in self.offsets:
            moved, moved_other = shifted_position(position, offset, shape), shifted_position(position_other, offset,
                                                                                                shape)
            out.append(None if moved is None or moved_other is None else (moved, moved_other))
        return tuple(out)

    def patch_symbols(self) -> tuple[PairState, ...]:
        """One pair state of symbols per offset: (s11_j, s12_j, s22_j, theta_j), the state at the j-th shifted
        pixel pair (s11_j: Sigma(x, x) at p + o_j; s22_j: Sigma(x', x') at p' + o_j)."""
        return tuple(PairState(sp.Symbol(f"s11_{j}", nonnegative=True), sp.Symbol(f"s12_{j}", real=True),
                               sp.Symbol(f"s22_{j}", nonnegative=True), sp.Symbol(f"theta_{j}", real=True))
                     for j in range(len(self.offsets)))

    def dense(self) -> Dense:
        """The dense step that follows the patch mean (a convolution is a dense layer on patches)."""
        return Dense(self.sigma_w, self.sigma_b, self.parameterization)

    def step(self, patch=None) -> PairState:
        """The state at (p, p') after the convolution, from ``patch`` (default: :meth:`patch_symbols`)."""
        patch = self.patch_symbols() if patch is None else tuple(patch)
        if len(patch) != len(self.offsets):
            raise ValueError(f"a {self.window} window reads {len(self.offsets)} pixel pairs, got {len(patch)}")
        out = self.dense().step(mean_state(patch))
        if self.parameterization == "standard":  # the fan-in of a weight is the patch: n_in |window| inputs
            out = PairState(*(e.subs(n_in, n_in * len(patch)) for e in out.as_tuple()))
        return out

    def stax(self, units: int):
        """The neural-tangents layer (``units``: the channel count when ``channels`` is None)."""
        channels = self.channels if self.channels is not None else int(units)
        return ("Conv", (int(channels), tuple(self.window)),
                {"padding": "SAME", "W_std": self.sigma_w, "b_std": self.sigma_b if self.has_bias else None,
                 "parameterization": self.parameterization})


@dataclasses.dataclass(frozen=True)
class GlobalAveragePool:
    """Mean over the spatial positions (neural-tangents' stax.GlobalAvgPool): h = (1 / P) sum_p h_p, so
    Sigma'(x, x') = (1 / P^2) sum over ALL pixel pairs (p, p') of Sigma[p, p'], Theta' likewise."""

    kind = "gap"
    preserves_sphere = False
    homogeneous_degree = 1
    def pooled_pairs(self, shape: tuple[int, ...]) -> tuple[tuple, ...]:
        cells = positions(shape)
        return tuple((p, q) for p in cells for q in cells)

    def fan_in_factor(self, shape: tuple[int, ...]) -> int:
        """The layer after it sees the channels only."""
        return 1

    def step(self, pooled=None) -> PairState:
        """The pooled state from the states of :meth:`pooled_pairs` (in that order; default: a one-pixel image's
        symbolic state): their mean. Its s12 and theta are the new Sigma(x, x') and Theta; the new Sigma(x, x) is
        the same step on the pair (x, x)."""
        return mean_state((SYMBOLIC_STATE,) if pooled is None else pooled)

    def stax(self, units: int | None = None):
        return ("GlobalAvgPool", (), {})


@dataclasses.dataclass(frozen=True)
class Flatten:
    """Positions times channels into one vector (stax.Flatten): the next dense layer sees <a, a'> / (P n) =
    mean over the P positions of Sigma[p, p] (same position in both inputs), Theta' likewise; its fan-in is
    P times the channels (this matters in the standard parametrization)."""

    kind = "flatten"
    preserves_sphere = False
    homogeneous_degree = 1

    def pooled_pairs(self, shape: tuple[int, ...]) -> tuple[tuple, ...]:
        return tuple((p, p) for p in positions(shape))

    def step(self, pooled=None) -> PairState:
        """Mean of the states of :meth:`pooled_pairs` (the same-position pairs; default: a one-pixel image's)."""
        return mean_state((SYMBOLIC_STATE,) if pooled is None else pooled)

    def fan_in_factor(self, shape: tuple[int, ...]) -> int:
        return len(positions(shape))

    def stax(self, units: int | None = None):
        return ("Flatten", (), {})


SPATIAL_KINDS = ("conv",)
"""Layer kinds that need images (flat inputs are reshaped with :func:`image_shape`)."""
POOLING_KINDS = ("gap", "flatten")
"""Layer kinds that turn per-pixel-pair states into one pair state."""


def image_shape(dim: int, spatial_dims: int) -> tuple[int, ...]:
    """The shape (without batch) that a flat input of ``dim`` features takes before a convolution with
    ``spatial_dims`` window axes: (s, s, 1) with s^2 = dim in 2D (the 8x8 digits: (8, 8, 1)), (dim, 1) in 1D.
    Every public function keeps inputs flat, shape (N, dim); convolutional networks reshape with this."""
    if spatial_dims == 1:
        return (int(dim), 1)
    if spatial_dims == 2:
        side = int(round(dim ** 0.5))
        if side * side != dim:
            raise ValueError(f"a 2D convolution needs square images: {dim} input features is not a square")
        return (side, side, 1)
    raise ValueError(f"convolutions have 1 or 2 spatial axes, got {spatial_dims}")


def activation_of(layer) -> Activation | None:
    """The activation whose dual pair a layer's step uses (its dual symbols), if any."""
    if isinstance(layer, Activation):
        return layer
    return getattr(layer, "activation", None)


def fully_connected(dense: Dense, activation: Activation, depth: int, residual_scale: float = 0.0) -> tuple:
    """The chain of the fully connected shorthand (theory.architecture): ``depth`` times (dense > activation),
    then the dense readout; with a residual scale s > 0, dense > ``depth`` residual blocks > activation > dense."""
    if residual_scale:
        return (dense,) + (Residual(residual_scale, dense, activation),) * depth + (activation, dense)
    return (dense, activation) * depth + (dense,)


def layers_of(arch) -> tuple:
    """The serial composition an :class:`theory.architecture.Architecture` stands for, input to readout: a
    tuple of the layer objects above. ``relu:2`` is Dense > relu > Dense > relu > Dense; with a residual scale
    s, Dense > ``depth`` residual blocks > activation > Dense readout (:func:`fully_connected`).

    Contract for building networks and kernels from it: the first layer gets n_in = d (the flat input's
    dimension; a convolutional chain reads the input as an image of :func:`image_shape`); a Conv whose
    ``channels`` is None and every hidden Dense use the network's width; the last layer is the Dense readout
    (validated by theory.architecture)."""
    return arch.layers


def input_state(q11, q12, q22, d) -> PairState:
    """The inputs as a pair state: (|x|^2 / d, <x, x'> / d, |x'|^2 / d), no tangent kernel yet."""
    return PairState(q11 / d, q12 / d, q22 / d, sp.Integer(0))
