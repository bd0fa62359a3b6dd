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

Everything else a layer kind means is written on its class too (:class:`Layer`): its token in the chain grammar and
its canonical text, its validation, where it may stand in a chain, how it maps the variance Sigma(x, x); the
registry (:func:`register_layer_kind`, :func:`layer_kinds`) is what theory.architecture's parser iterates over, so
a new layer kind is one class, registered, from any module.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import sympy as sp

from theory import activations

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


class Layer:
    """What a layer kind says about itself, read by theory.architecture (the chain grammar and its rules), the
    kernels and the networks. A kind is a frozen dataclass deriving from this, with its :meth:`step` on the pair
    state and its :meth:`map_variance`, registered with :func:`register_layer_kind`; the traits below are
    overridden where they differ."""

    kind = "layer"
    """Its short name (the claims and the kernels' messages tell kinds apart by it)."""
    names: tuple[str, ...] = ()
    """Its keywords in the chain grammar, as listed in messages (``convK`` stands for conv3, conv5x5, ...); empty:
    it reads names of another registry (the activations)."""
    noun = "a layer"
    """The layer in words, with its article (messages)."""
    readout = False
    """Whether it may be a chain's last layer (the dense readout)."""
    needs_gaussian_input = False
    """Whether its input must be Gaussian at infinite width (an elementwise nonlinearity reads it)."""
    gaussian_output: bool | None = None
    """Whether its output is Gaussian at infinite width: True (weights), False (a nonlinearity), None: as its input."""
    spatial = False
    """Whether it reads images (the flat inputs reshaped by :func:`image_shape`); such a kind has ``spatial_dims``
    and ``channels`` (None: the network's width)."""
    pooling = False
    """Whether it turns the per-pixel-pair states into one pair state (``pooled_pairs``, ``fan_in_factor``): the
    one pooling layer between a chain's spatial and flat layers."""
    keeps_positions = False
    """A pooling layer whose output is positions x channels (flatten), not channels."""
    flat_input = False
    """Whether it reads flat feature vectors: in a convolutional chain, after the pooling layer."""
    adds_input = False
    """Whether its output is its input plus a branch (a residual block): the input must have the network's width."""
    takes_width = False
    """Whether the network's width sets its number of outputs (hidden units, or channels left to the width)."""
    positively_homogeneous = False
    """Whether it maps k h to k times its output for every k > 0, biases aside (theory.architecture.Architecture
    .positively_homogeneous: reconstruction then recovers directions only). A kind that does not say so is taken not
    to be (a normalization layer is not): linear kinds (weights, pooling, a scaling) set it True."""

    @classmethod
    def reads(cls, name: str) -> bool:
        """Whether ``name`` (a lower-case token head) names this kind."""
        return name in cls.names

    @classmethod
    def parse(cls, name: str, options) -> "Layer":
        """The layer of a token named ``name``; ``options`` (theory.architecture.LayerOptions) reads its
        KEY=VALUE items and refuses those left over. Default: a kind without options."""
        options.refuse_unknown("none")
        return cls()

    def spec_text(self, options: list[str]) -> str:
        """Its token in a canonical spec; ``options``: its weights' KEY=VALUE items not at the chain's defaults."""
        return ":".join([self.names[0]] + options)

    def canonical(self) -> "Layer":
        """The layer validated (theory.architecture.SpecError names the problem), in its canonical form."""
        return self

    @property
    def weight_layer(self):
        """The layer holding its weights (sigma_w, sigma_b, parameterization): itself, a residual block's branch
        dense layer, or None."""
        return None

    @property
    def dual_activation(self) -> "Activation | None":
        """The activation whose dual pair its step uses (its dual symbols), if any."""
        return None

    def fan_out(self, fan_in, width):
        """The width feeding the next layer, from ``fan_in`` (the one feeding this layer) and the network's
        ``width``: ``fan_in`` for a layer without weights (a layer of weights gives the width or its channels)."""
        return fan_in

    def step(self, state: PairState = SYMBOLIC_STATE) -> PairState:
        """Its map of the pair state (Sigma(x, x), Sigma(x, x'), Sigma(x', x'), Theta(x, x')) as sympy expressions;
        a kind without one has no analytic kernel (theory.architecture.Architecture.has_kernel)."""
        raise NotImplementedError(f"{type(self).__name__} has no kernel step")

    def stax(self, units: int):
        """Its neural-tangents layer as (name, args, kwargs) (numerics.networks builds it)."""
        raise NotImplementedError(f"{type(self).__name__} has no neural-tangents layer")


class _Weighted(Layer):
    """A layer of weights W ~ N(0, 1) scaled by sigma_w and a bias by sigma_b (dense or convolutional)."""

    gaussian_output = True
    takes_width = True
    positively_homogeneous = True  # linear, its bias counted by has_bias

    @property
    def has_bias(self) -> bool:
        return self.sigma_b > 0

    @property
    def weight_layer(self):
        return self

    def fan_out(self, fan_in, width):
        """Its outputs: the network's width."""
        return width

    def map_variance(self, variance: float, activation_mean: float | None) -> float:
        """q -> sigma_w^2 q + sigma_b^2 (a convolution's zero padding only lowers it)."""
        return float(self.sigma_w) ** 2 * variance + float(self.sigma_b) ** 2

    def canonical(self) -> "Layer":
        from theory.architecture import check_weights

        check_weights(self, self.noun)
        return self


def _exact(value: float) -> sp.Expr:
    return sp.nsimplify(value, rational=True)


@dataclasses.dataclass(frozen=True)
class Dense(_Weighted):
    """A fully connected layer, h' = (sigma_w / sqrt(n_in)) W a + sigma_b b (NTK parametrization) or
    W a + b with W ~ N(0, sigma_w^2 / n_in), b ~ N(0, sigma_b^2) (standard)."""

    sigma_w: float = 1.0
    sigma_b: float = 0.0
    parameterization: str = "ntk"
    kind = "dense"
    names = ("dense",)
    noun = "a dense layer"
    readout = True
    flat_input = True

    @classmethod
    def parse(cls, name: str, options) -> "Dense":
        layer = cls(**options.weights())
        options.refuse_unknown("sw, sb, param")
        return layer

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
class Activation(Layer):
    """An elementwise activation from the registry (theory.activations), with its parameters."""

    name: str
    params: tuple[tuple[str, object], ...] = ()
    kind = "activation"
    noun = "an activation"
    needs_gaussian_input = True
    gaussian_output = False

    @classmethod
    def reads(cls, name: str) -> bool:
        return name in activations.names()

    @classmethod
    def parse(cls, name: str, options) -> "Activation":
        activation = options.activation(name)
        options.refuse_unknown(", ".join(activations.get(name).parameters) or "none")
        return activation

    def spec_text(self, options: list[str]) -> str:
        from theory.architecture import activation_items

        return ":".join([self.name] + activation_items(self.params))

    def canonical(self) -> "Activation":
        from theory.architecture import canonical_activation

        return canonical_activation(self.name, self.params)

    @property
    def dual_activation(self) -> "Activation":
        return self

    @property
    def positively_homogeneous(self) -> bool:
        """phi(k u) = k phi(u) for k > 0: the registry's trait (homogeneous of degree 1: relu, abrelu, identity)."""
        return activations.get(self.name).homogeneous_degree == 1

    def map_variance(self, variance: float, activation_mean: float | None) -> float:
        """q -> E[phi(u)^2], u ~ N(0, q): ``activation_mean``."""
        return activation_mean

    def step(self, state: PairState = SYMBOLIC_STATE) -> PairState:
        """Sigma' = (k11, k12, k22) = dual value at the state, Theta' = kdot Theta."""
        return PairState(k11, k12, k22, kdot * state.theta)


@dataclasses.dataclass(frozen=True)
class Residual(Layer):
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
    names = ("res",)
    noun = "a residual block"
    needs_gaussian_input = True
    flat_input = True
    adds_input = True
    takes_width = True

    @classmethod
    def parse(cls, name: str, options) -> "Residual":
        options.require(("s", "act"), "a residual block is res:s=SCALE:act=ACTIVATION, e.g. res:s=0.5:act=relu")
        scale = options.number("s")
        act = options.text("act").lower()
        activation = options.activation(act)
        dense = Dense(**options.weights())
        options.refuse_unknown("s, act, sw, sb, param" + "".join(f", {p}" for p in activations.get(act).parameters))
        return cls(scale, dense, activation)

    def spec_text(self, options: list[str]) -> str:
        from theory.architecture import activation_items, number_text

        return ":".join(["res", f"s={number_text(self.scale)}", f"act={self.activation.name}"]
                        + activation_items(self.activation.params) + options)

    def canonical(self) -> "Residual":
        from theory.architecture import (SpecError, canonical_activation, check_positive, check_residual_scale,
                                         check_weights)

        check_positive("the residual branch scale (s, res)", self.scale)
        check_residual_scale(self.scale)
        if not isinstance(self.dense, Dense):
            raise SpecError(f"a residual block's branch ends in a dense layer, got {self.dense!r}")
        check_weights(self.dense, "a residual branch")
        if self.dense.parameterization != "ntk":
            raise SpecError("residual blocks (res) are defined in the NTK parametrization only")
        if not isinstance(self.activation, Activation):
            raise SpecError(f"a residual block's branch starts with an activation, got {self.activation!r}")
        return Residual(self.scale, self.dense, canonical_activation(self.activation.name, self.activation.params))

    @property
    def weight_layer(self) -> Dense:
        return self.dense

    @property
    def dual_activation(self) -> Activation:
        return self.activation

    @property
    def positively_homogeneous(self) -> bool:
        """h + s W phi(h) is, where phi is (its dense layer's bias counted by has_bias)."""
        return self.activation.positively_homogeneous

    def fan_out(self, fan_in, width):
        """The sum keeps the width (its input has it, and so has its branch's dense layer)."""
        return width

    def map_variance(self, variance: float, activation_mean: float | None) -> float:
        """q -> q + s^2 (sigma_w^2 E[phi(u)^2] + sigma_b^2), u ~ N(0, q): the identity plus the branch."""
        return variance + float(self.scale) ** 2 * self.dense.map_variance(activation_mean, None)

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


CONV_NAME = re.compile(r"conv([0-9]+)(?:x([0-9]+))?")
"""A convolution's token: convK (1D) or convKxK (2D), K the window's taps per axis."""


@dataclasses.dataclass(frozen=True)
class Conv(_Weighted):
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
    names = ("convK", "convKxK")
    noun = "a convolution"
    spatial = True

    @classmethod
    def reads(cls, name: str) -> bool:
        return CONV_NAME.fullmatch(name) is not None

    @classmethod
    def parse(cls, name: str, options) -> "Conv":
        window = tuple(int(k) for k in CONV_NAME.fullmatch(name).groups() if k is not None)
        channels = options.integer("c", "'c' (channels)")
        layer = cls(window, channels, **options.weights())
        options.refuse_unknown("c, sw, sb, param")
        return layer

    def spec_text(self, options: list[str]) -> str:
        channels = [] if self.channels is None else [f"c={self.channels}"]
        return ":".join(["conv" + "x".join(str(k) for k in self.window)] + channels + options)

    def canonical(self) -> "Conv":
        from theory.architecture import MAX_CHANNELS, MAX_WINDOW, SpecError, check_weights

        window = tuple(self.window) if isinstance(self.window, (tuple, list)) else None
        if not window or len(window) not in (1, 2) or not all(
                isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= MAX_WINDOW for k in window):
            raise SpecError(f"a convolution's window is 1 or 2 integers from 1 to {MAX_WINDOW}, got {self.window!r}")
        if self.channels is not None and not (isinstance(self.channels, int) and not isinstance(self.channels, bool)
                                              and 1 <= self.channels <= MAX_CHANNELS):
            raise SpecError(f"a convolution's channels (c) must be an integer from 1 to {MAX_CHANNELS}, "
                            f"got {self.channels!r}")
        check_weights(self, self.noun)
        return Conv(window, self.channels, self.sigma_w, self.sigma_b, self.parameterization)

    @property
    def takes_width(self) -> bool:
        return self.channels is None

    def fan_out(self, fan_in, width):
        """Its channels, or the width when it has none of its own."""
        return self.channels if self.channels is not None else width

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


class _Pooling(Layer):
    """A pooling layer: per-pixel-pair states to one pair state, a linear map (the same for Sigma and Theta)."""

    pooling = True
    positively_homogeneous = True

    def map_variance(self, variance: float, activation_mean: float | None) -> float:
        """Per-unit variance at most kept: q (an upper bound)."""
        return variance


@dataclasses.dataclass(frozen=True)
class GlobalAveragePool(_Pooling):
    """Mean over the spatial positions (neural-tangents' stax.GlobalAvgPool): h = (1 / P) sum_p h_p, so
    Sigma'(x, x') = (1 / P^2) sum over ALL pixel pairs (p, p') of Sigma[p, p'], Theta' likewise."""

    kind = "gap"
    names = ("gap",)
    noun = "a global average pooling"

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
class Flatten(_Pooling):
    """Positions times channels into one vector (stax.Flatten): the next dense layer sees <a, a'> / (P n) =
    mean over the P positions of Sigma[p, p] (same position in both inputs), Theta' likewise; its fan-in is
    P times the channels (this matters in the standard parametrization)."""

    kind = "flatten"
    names = ("flatten",)
    noun = "a flatten"
    keeps_positions = True

    def pooled_pairs(self, shape: tuple[int, ...]) -> tuple[tuple, ...]:
        return tuple((p, p) for p in positions(shape))

    def step(self, pooled=None) -> PairState:
        """Mean of the states of :meth:`pooled_pairs` (the same-position pairs; default: a one-pixel image's)."""
        return mean_state((SYMBOLIC_STATE,) if pooled is None else pooled)

    def fan_in_factor(self, shape: tuple[int, ...]) -> int:
        return len(positions(shape))

    def stax(self, units: int | None = None):
        return ("Flatten", (), {})


_LAYER_KINDS: dict[str, type[Layer]] = {}


LAYER_KEYWORD = re.compile(r"[a-z][a-z0-9_]*")
"""A layer keyword: lower case (the parser lowers every token head), no separator of the grammar."""


class LayerKindError(activations.RegistryError, TypeError):
    """A layer kind :func:`register_layer_kind` refuses: the activation registry's RegistryError (a ValueError), so
    one ``except RegistryError`` catches both registries' refusals; also a TypeError, for a class of the wrong
    type."""


def register_layer_kind(kind: type[Layer]) -> type[Layer]:
    """Add the layer kind ``kind`` (a :class:`Layer` class) to the chain grammar, after the kinds registered
    before it. Refused (:class:`LayerKindError`): a class that does not declare its own ``kind`` name (a subclass
    of Dense would evict Dense under "dense"), a name another class holds (the same class, or one defined again
    at the same place, as a re-run notebook cell does, replaces it in place), a keyword another kind reads or that
    the parser cannot read, and a kind without :meth:`Layer.map_variance` (the variance check would skip it)."""
    if not (isinstance(kind, type) and issubclass(kind, Layer)):
        raise LayerKindError(f"a layer kind is a theory.layers.Layer class, got {kind!r}")
    if "kind" not in vars(kind):
        raise LayerKindError(f"{kind.__name__} does not declare its own kind name (a class attribute kind = '...')")
    holder = _LAYER_KINDS.get(kind.kind)
    if holder is not None and (holder.__module__, holder.__qualname__) != (kind.__module__, kind.__qualname__):
        raise LayerKindError(f"layer kind name {kind.kind!r} of {kind.__name__} is {holder.__name__}'s already")
    reads_its_names = kind.reads.__func__ is Layer.reads.__func__  # not a pattern of its own, as Conv's convK
    unreadable = [name for name in kind.names if reads_its_names and not LAYER_KEYWORD.fullmatch(name)]
    if unreadable:
        raise LayerKindError(f"layer keyword {unreadable[0]!r} of {kind.__name__} cannot be read by the chain grammar "
                         "(lower-case letters, digits and _, starting with a letter)")
    taken = [(name, other) for name in kind.names for other in _LAYER_KINDS.values()
             if other.kind != kind.kind and other.reads(name)]
    if taken:
        name, other = taken[0]
        holder = f"the registered activation {name!r}" if other is Activation else f"{other.__name__}'s"
        raise LayerKindError(f"layer keyword {name!r} of {kind.__name__} is {holder} already")
    if not callable(getattr(kind, "map_variance", None)):
        raise LayerKindError(f"{kind.__name__} has no map_variance (how it maps the variance Sigma(x, x): "
                        "theory.architecture.variance_path checks what every activation sees with it)")
    _LAYER_KINDS[kind.kind] = kind
    return kind


def unregister_layer_kind(kind: type[Layer]) -> None:
    """Remove ``kind`` from the chain grammar (nothing when another class holds its name). Caches keyed by layers
    (kernels, variance checks) may keep its layers alive, never serve them for another kind's: layers compare by
    class."""
    if _LAYER_KINDS.get(kind.kind) is kind:
        del _LAYER_KINDS[kind.kind]


def layer_kinds() -> tuple[type[Layer], ...]:
    """The registered layer kinds, in the order the parser tries them."""
    return tuple(_LAYER_KINDS.values())


def layer_names() -> tuple[str, ...]:
    """The keywords of the chain grammar (besides the activations of their registry), as listed in messages."""
    return tuple(name for kind in _LAYER_KINDS.values() for name in kind.names)


def kind_reading(name: str) -> type[Layer] | None:
    """The first registered kind that reads the token head ``name`` (lower case), or None."""
    return next((kind for kind in _LAYER_KINDS.values() if kind.reads(name)), None)


BUILT_IN_KINDS = (Dense, Conv, GlobalAveragePool, Flatten, Residual, Activation)
"""The layer kinds registered when this module is imported (what a fresh process knows)."""

for _kind in BUILT_IN_KINDS:
    register_layer_kind(_kind)


def only_built_in_kinds() -> bool:
    """Whether the chain grammar holds exactly :data:`BUILT_IN_KINDS` (proofs-check run --jobs)."""
    return tuple(_LAYER_KINDS.values()) == BUILT_IN_KINDS


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
    """The activation whose dual pair a layer's step uses (its dual symbols), if any (:attr:`Layer.dual_activation`)."""
    return getattr(layer, "dual_activation", None)


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
