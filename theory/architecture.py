"""Architectures as serial compositions of layers, and their compact command-line spec.

A spec is either the fully connected shorthand or a chain of layers joined by ``>``:

- Shorthand ``ACTIVATION:DEPTH[:KEY=VALUE]...``, e.g. ``relu:2`` or ``erf:3:sw=1.5:sb=0.1``: ``depth`` times
  dense > activation, then the dense readout (theory.layers.layers_of). Keys:

  - ``sw``, ``sb``: weight and bias standard deviations (sigma_w, sigma_b); ``sb=0`` means no biases.
  - ``param``: ``ntk`` (default) or ``standard`` parametrization.
  - ``res``: a residual branch scale s > 0 (NTK parametrization): after the first dense layer, ``depth`` residual
    blocks h -> h + s Dense(phi(h)), then phi and the readout; default 0, a plain MLP.
  - activation parameters, as the activation's entry in the registry (theory.activations) declares them, e.g.
    ``alpha`` (leaky_relu), ``a`` and ``b`` (abrelu), ``k`` (monomial), ``coeffs`` (poly: comma-separated),
    ``phi`` (expr: a formula in ``x``, e.g. ``expr:2:phi=tanh(x)``, read by theory.expressions.parse_expression).

- Chain ``[OPTIONS >] LAYER > LAYER > ...``, each layer ``NAME[:KEY=VALUE]...``, e.g.
  ``conv3x3:c=64 > relu > conv3x3:c=64 > relu > gap > dense`` or ``dense > relu > dense > relu > dense``:

  - ``dense`` (keys sw, sb): a fully connected layer; the last layer of every chain is a dense readout;
  - ``convK`` (1D) or ``convKxK`` (2D) (keys c = output channels, default the network's width, sw, sb): a
    convolution with stride 1 and SAME padding over the input read as an image (theory.layers.image_shape);
  - ``gap`` (global average pooling) or ``flatten``: exactly one, between the convolutions and the dense layers;
  - ``res`` (keys s = branch scale > 0, act = activation, its parameters, sw, sb): h -> h + s Dense(act(h));
  - an activation name from the registry with its parameters, e.g. ``relu`` or ``leaky_relu:alpha=0.2``; its
    input must be Gaussian at infinite width: a dense, convolutional or residual layer comes before it (before
    a residual block too), possibly through the gap or flatten;
  - OPTIONS, a first token of KEY=VALUE items only (sw, sb, param), is the default of every weighted layer,
    e.g. ``sb=0.1:param=standard > dense > erf > dense``.

  Each layer kind reads its own token and says where it may stand (theory.layers.Layer); the parser and the
  composition rules here iterate over the registered kinds (theory.layers.register_layer_kind).

Both forms denote one :class:`Architecture`, its layer chain: ``dense > relu > dense > relu > dense`` and
``relu:2`` are equal, and :attr:`Architecture.spec` writes the canonical form (the shorthand whenever it can
express the chain), so ``parse_spec(a.spec) == a``. Specs are data: every value goes through a typed reader
(numbers, the whitelist expression parser), never eval.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Callable, Iterator, Mapping

import sympy as sp

from theory import activations
from theory import layers as L


class _RegistryView(Mapping):
    """A read-only mapping over the activation registry (theory.activations), always current."""

    def __init__(self, field: Callable[[activations.Activation], object]):
        self._field = field

    def __getitem__(self, name: str):
        try:
            return self._field(activations.get(name))
        except activations.RegistryError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(activations.names())

    def __len__(self) -> int:
        return len(activations.names())


ACTIVATION_PARAMETERS: Mapping[str, tuple[str, ...]] = _RegistryView(lambda entry: tuple(entry.parameters))
"""Registered activation names and the parameters each takes (a view of theory.activations)."""

DEFAULT_ACTIVATION_PARAMETERS: Mapping[str, Mapping[str, object]] = _RegistryView(lambda entry: entry.defaults)

PARAMETERIZATIONS = ("ntk", "standard")
WEIGHT_OPTIONS = ("sw", "sb", "param")
"""Options of every weighted layer, also accepted as the chain's leading defaults token."""
MAX_LAYERS = 1000
MAX_CHANNELS = 1 << 16
MAX_WINDOW = 64
"""Sanity bounds on a spec (a model file's spec is untrusted input), not limits of the code."""

RESERVED_OPTIONS = (*WEIGHT_OPTIONS, "res", "s", "act", "c")
"""Spec options of the shorthand and of the chain's layers: no activation parameter may take these names."""


def is_layer_keyword(name: str) -> bool:
    """Whether ``name`` is a keyword of the chain grammar, read by a registered layer kind
    (theory.layers.layer_names; convK and convKxK by pattern)."""
    name = name.strip().lower()
    return any(kind.reads(name) for kind in L.layer_kinds() if kind.names)


class SpecError(ValueError):
    """A malformed architecture spec, an unknown activation or layer, or a chain that does not compose."""


class NotShorthandError(SpecError):
    """A field of the fully connected shorthand (activation, depth, ...) asked of a general layer chain."""


def number_text(value) -> str:
    """The shortest text that reads back as exactly ``value``: ``:g`` when it is exact and no longer than repr (a
    subnormal 1e-320 read back from :g's "9.99989e-321", which a spec then showed), else repr."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    text, exact = f"{value:g}", repr(float(value))
    return text if float(text) == value and len(text) <= len(exact) else exact


def check_positive(name: str, value, *, zero: bool = False) -> float:
    """``value``, when finite and > 0 (``zero``: >= 0); else SpecError naming it by ``name``."""
    try:
        ok = math.isfinite(value) and (value >= 0 if zero else value > 0)
    except TypeError:
        ok = False
    if not ok:
        raise SpecError(f"{name} must be finite and {'>=' if zero else '>'} 0, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------------
# Layer validation: every layer object of a chain passes through here (parsed or constructed)
# ------------------------------------------------------------------------------------------------

def unknown_activation(name: str, where: str = "", alternatives: str = "") -> SpecError:
    """The refusal of an activation name the registry lacks (one text for every place a spec names one): a name
    registered by the user's own code in another process (a saved model of it, read in a shell) gets the hint."""
    return SpecError(f"unknown activation {name!r}{where}; known: {', '.join(ACTIVATION_PARAMETERS)}{alternatives} "
                     "(an activation registered by your own code, theory.activations.register, must be registered in "
                     "this process too)")


def canonical_activation(name: str, params=()) -> L.Activation:
    """A validated activation layer: a registered name, its parameters only, defaults filled in, sorted."""
    if name not in ACTIVATION_PARAMETERS:
        raise unknown_activation(name)
    allowed = ACTIVATION_PARAMETERS[name]
    given = dict(params)
    for key in given:
        if key not in allowed:
            raise SpecError(f"activation {name!r} takes no parameter {key!r} (it takes: {', '.join(allowed) or 'none'})")
    merged = dict(DEFAULT_ACTIVATION_PARAMETERS.get(name, {}))
    merged.update(given)
    missing = [key for key in allowed if key not in merged]
    if missing:
        raise SpecError(f"activation {name!r} needs parameter(s) {', '.join(missing)}")
    rule = activations.get(name).check
    problem = rule(merged) if rule is not None else None
    if problem:
        raise SpecError(f"activation {name!r}: {problem}")
    items = tuple(sorted(merged.items()))
    problem = _values_problem(name, items)
    if problem:
        raise SpecError(f"activation {name!r}: {problem}")
    return L.Activation(name, items)


ACTIVATION_PARAMETER_LIMIT = 1e3
"""Every number among an activation's parameters lies in [-1e3, 1e3], the bound of sw (WEIGHT_SCALE_RANGE): measured,
leaky_relu:2:alpha=1e308, abrelu:2:a=1e308 and poly:2:coeffs=1e300,1e300 overflowed after training."""


def parameter_range_problem(parameters: dict, items) -> str | None:
    """The first (name, value) of ``items`` with a number outside :data:`ACTIVATION_PARAMETER_LIMIT`, in words, else
    None; ``parameters`` maps names to their kinds (theory.activations.Activation.parameters). Specs and registered
    defaults alike (a default of 1e9 was registered, then refused in every spec as a value no one had typed)."""
    for key, value in items:
        kind = parameters.get(key)
        numbers = value if kind == "floats" else (value,) if kind in ("float", "int") else ()
        numbers = [v for v in numbers if isinstance(v, (int, float))]  # other types: phi's own rules refuse them
        if any(abs(v) > ACTIVATION_PARAMETER_LIMIT for v in numbers):
            shown = number_text(value) if kind != "floats" else ",".join(map(number_text, value))
            return (f"{key}={shown}: every number of an activation's parameters must be from "
                    f"{-ACTIVATION_PARAMETER_LIMIT:g} to {ACTIVATION_PARAMETER_LIMIT:g}")
    return None


@functools.lru_cache(maxsize=4096)
def _values_problem(name: str, items: tuple) -> str | None:
    """What makes these parameter values unusable (the problem in words), or None: a number outside
    :data:`ACTIVATION_PARAMETER_LIMIT`, or phi at these values shown to break the rules of an ``expr:`` formula
    (theory.expressions.check_activation_expression: the zero function, numerically too; values above its magnitude
    limit; growth faster than every exp(c x^2); another symbol), the rules :func:`theory.activations.check_entry`
    asks of the defaults when an entry is registered. Cached per (name, values); the cache clears when the registry
    changes."""
    from theory.expressions import check_activation_expression

    entry = activations.get(name)
    out_of_range = parameter_range_problem(entry.parameters, items)
    if out_of_range:
        return out_of_range
    if entry.parameters and all(kind == "expression" for kind in entry.parameters.values()):
        return None  # an expr: formula was checked by its parser (theory.expressions.parse_activation), all rules
    try:
        phi = entry.expression(dict(items))
        check_activation_expression(phi, str(phi), smooth=entry.dual is None and entry.stax is None, proven_only=True)
    except SpecError as error:
        return str(error)
    except (sp.SympifyError, TypeError, ValueError, ZeroDivisionError, KeyError) as error:
        return f"phi cannot be formed at these values ({type(error).__name__}: {error})"
    return None


activations.on_change(_values_problem.cache_clear)


WEIGHT_SCALE_RANGE = (1e-3, 1e3)
"""sw lies in this range and sb in [0, its upper end]: outside it the kernels and the training that the numerics
compute overflow or divide by zero (measured: relu:2 with sw=1e308 overflowed in the NTK, sw=1e-300 divided by 0,
sw=1e10 trained to loss 3e26, erf:2:sb=1e200 failed in JAX), while sw=1e3 and sw=1e-3 train and attack."""


def check_weights(layer, what: str) -> None:
    """SpecError unless ``layer``'s sigma_w lies in :data:`WEIGHT_SCALE_RANGE`, its sigma_b from 0 to the range's
    upper end and its parameterization is known; ``what``: the layer in words ("a dense layer")."""
    low, high = WEIGHT_SCALE_RANGE
    check_positive(f"sigma_w (sw) of {what}", layer.sigma_w)
    check_positive(f"sigma_b (sb) of {what}", layer.sigma_b, zero=True)
    if not low <= layer.sigma_w <= high:
        raise SpecError(f"sigma_w (sw) of {what} must be from {low:g} to {high:g}, got {layer.sigma_w!r}")
    if layer.sigma_b > high:
        raise SpecError(f"sigma_b (sb) of {what} must be from 0 to {high:g}, got {layer.sigma_b!r}")
    if layer.parameterization not in PARAMETERIZATIONS:
        raise SpecError(f"parameterization must be one of {PARAMETERIZATIONS}, got {layer.parameterization!r}")


def check_residual_scale(scale: float) -> None:
    """The residual branch scale is at most sw's upper bound (it scales the branch's weights once more): measured,
    res=1e308 failed in training's eigensolver."""
    if scale > WEIGHT_SCALE_RANGE[1]:
        raise SpecError(f"the residual branch scale (s, res) must be at most {WEIGHT_SCALE_RANGE[1]:g}, got {scale!r}")


def canonical_layer(layer):
    """``layer`` validated (a ValueError subclass, SpecError, names the problem), activations canonical: its
    kind's own rules (theory.layers.Layer.canonical)."""
    if not isinstance(layer, L.layer_kinds()):
        raise SpecError(f"not a layer of theory.layers: {layer!r}")
    layer = layer.canonical()
    try:
        problem = _step_problem(layer)
    except TypeError:  # an unhashable layer of a user's kind: checked without the cache
        problem = _step_problem.__wrapped__(layer)
    if problem:
        raise SpecError(f"{type(layer).__name__} layer {layer!r}: {problem}")
    return layer


@functools.lru_cache(maxsize=1024)
def _step_problem(layer) -> str | None:
    """What is wrong with a (per-unit) layer's symbolic step, in words, or None: it must give a
    theory.layers.PairState of sympy expressions in theory.layers.STEP_ARGUMENTS alone. A registered kind whose step
    returned a plain tuple, or used a symbol of its own, raised AttributeError or NameError from generated code
    inside the kernels (a trial). Spatial and pooling steps read patches and pooled states: not checked here."""
    if getattr(layer, "spatial", False) or getattr(layer, "pooling", False):
        return None
    try:
        state = layer.step()
    except NotImplementedError:  # no kernel step: Architecture.has_kernel says so where a kernel is needed
        return None
    except Exception as error:  # code: whatever it raises, one line
        return f"its step raised {type(error).__name__}: {error}"
    if not isinstance(state, L.PairState):
        return (f"its step returns {type(state).__name__}, not a theory.layers.PairState (Sigma(x, x), Sigma(x, x'), "
                "Sigma(x', x'), Theta)")
    try:
        values = [sp.sympify(value, strict=True) for value in state.as_tuple()]
    except sp.SympifyError:
        return "its step gives values that are not sympy expressions"
    strays = sorted({symbol.name for value in values for symbol in value.free_symbols
                     if symbol not in L.STEP_ARGUMENTS})
    if strays:
        return (f"its step uses symbols other than theory.layers' state, dual pair and n_in ({', '.join(strays)}); "
                "build it from theory.layers.SYMBOLIC_STATE")
    return None


def _weight_layers(chain: tuple) -> list:
    """The layers holding the chain's weights (theory.layers.Layer.weight_layer), in order."""
    return [layer.weight_layer for layer in chain if layer.weight_layer is not None]


UNIT_INPUT_MEAN_SQUARE = 1.0
"""The inputs' mean square ||x||^2 / d at which :func:`_check_variance_path` follows the variances (unit-variance
data; the claims' normal points have about 1)."""


@functools.lru_cache(maxsize=256)
def _diagonal_function(name: str, params: tuple) -> Callable[[float], float]:
    """q -> E[phi(u)^2], u ~ N(0, q), from an activation's closed-form or polynomial dual, in plain floats."""
    from theory.dual import a_var, b_var, c_var, dual_kernel

    value = sp.lambdify((a_var, b_var, c_var), dual_kernel(name, params).value, modules="math")
    return lambda q: value(q, q, q)


activations.on_change(_diagonal_function.cache_clear)


def variance_path(chain: tuple, mean_square: float = UNIT_INPUT_MEAN_SQUARE) -> Iterator[tuple[object, float, float]]:
    """Sigma(x, x) followed through ``chain`` from inputs of ``mean_square`` = ||x||^2 / d: (layer, the variance it
    sees, the kernels' quadrature error estimate there) for every activation (a residual block's included), the
    estimate being theory.expressions.resolution_at's relative change under step halving (0 for a closed-form or
    polynomial dual, whose diagonal is evaluated exactly; inf on overflow; nan where phi cannot be evaluated in plain
    floats); then (None, the output variance, 0), the variance nan where a layer could not be evaluated. Each layer
    maps q by its kind's theory.layers.Layer.map_variance: dense and convolutional layers to sigma_w^2 q +
    sigma_b^2 (a convolution's zero padding only lowers it), an activation to E[phi(u)^2], u ~ N(0, q), and a
    residual block adds s^2 times its branch."""
    from theory.dual import QUADRATURE, dual_kernel
    from theory.expressions import resolution_at

    def through(layer, variance):
        kernel = dual_kernel(layer.name, layer.params)
        if kernel.method == QUADRATURE:
            return resolution_at(kernel.phi, variance)  # (nan, nan) for a phi math cannot evaluate: unknown
        try:  # a closed form or exact Gaussian moments: the diagonal itself (nan where it cannot be evaluated)
            mean = float(_diagonal_function(layer.name, layer.params)(variance))
        except OverflowError:
            mean = math.inf
        except (TypeError, ValueError, ArithmeticError, NameError):
            mean = math.nan
        return mean, 0.0

    variance = float(mean_square)
    for layer in chain:
        if not callable(getattr(layer, "map_variance", None)):
            raise TypeError(f"variance_path has no variance map for a {type(layer).__name__} layer: give its kind "
                            "map_variance (theory.layers.Layer; the layer's own check of the variance an activation "
                            "sees would pass silently)")
        activation, mean = L.activation_of(layer), None
        if activation is not None:
            mean, change = through(activation, variance)
            yield activation, variance, change
            if math.isnan(mean):  # not evaluable here: the path stops, unknown
                variance = math.nan
                break
        try:
            variance = layer.map_variance(variance, mean)
        except ArithmeticError:  # a kind's own map overflowed (e.g. k^2 q in float): beyond every bound
            variance = math.inf
        if not variance < 1e300:
            break
    yield None, variance, 0.0


VARIANCE_MAP_POINTS = ((0.5, 0.3), (2.0, 1.7))
"""(variance q, the activation's E[phi(u)^2]) at which a layer's map_variance must equal its step's Sigma(x, x)."""


@functools.lru_cache(maxsize=4096)
def _check_variance_map(layer) -> None:
    """SpecError unless ``layer.map_variance(q, m)`` equals the Sigma(x, x) of ``layer.step`` at coincident inputs
    (state q, q, q; dual value m there), to 1e-9 relative: a trial's kind whose map_variance said k q where its step
    said k^2 q let variance_path pass a spec whose kernels overflow. Image and pooling layers are left out (their
    map is an upper bound per pixel), as are steps in symbols other than the state's and the dual's."""
    if getattr(layer, "spatial", False) or getattr(layer, "pooling", False):
        return
    try:
        step = layer.step(L.SYMBOLIC_STATE).s11
    except Exception:  # a kind's code: its kernels report what it raises
        return
    width = 64
    for variance, mean in VARIANCE_MAP_POINTS:
        values = {L.s11: variance, L.s12: variance, L.s22: variance, L.theta: 1, L.k11: mean, L.k12: mean,
                  L.k22: mean, L.kdot: 1, L.n_in: width}
        try:
            from_step = complex(sp.sympify(step).subs(values).evalf())
            from_map = float(layer.map_variance(variance, mean))
        except (TypeError, ValueError, ArithmeticError):
            return
        if math.isinf(from_map) and math.isinf(from_step.real) and not from_step.imag:
            continue  # both overflow (k * k * q at a huge k): the variance path refuses it in its own words
        if from_step.imag or not abs(from_map - from_step.real) <= 1e-9 * max(1.0, abs(from_step.real)):
            raise SpecError(f"{_layer_spec(layer, {})}: its kind's map_variance gives {from_map:.6g} at variance "
                            f"{variance:g} where its step gives Sigma(x, x) = {from_step.real:.6g}; the two must "
                            "agree (theory.architecture.variance_path follows map_variance to check every "
                            "activation's input)")


@functools.lru_cache(maxsize=4096)
def _check_variance_path(chain: tuple) -> None:
    """Sigma(x, x) followed from inputs of mean square 1 (:func:`variance_path`) must stay below 1e300 (monomial:12:k=3:
    sw=2 reached inf), and an activation integrated by quadrature must stay resolved at every layer's variance:
    refused (SpecError, one line) where the error estimate exceeds theory.expressions.QUADRATURE_RESOLUTION. The
    formula rules check unit variance only; deeper layers see others (exp(2*x): 3.0e3 at its second layer, whose
    kernel overflowed). Every command refuses such a spec: the claims, distillation and the kernel-space attack
    would compute wrong kernels."""
    from theory.expressions import QUADRATURE_RESOLUTION, beyond

    for layer in chain:
        _check_variance_map(layer)
    for index, (layer, variance, change) in enumerate(variance_path(chain, UNIT_INPUT_MEAN_SQUARE), start=1):
        if layer is None:
            if variance >= 1e300:  # inf included; nan (a path not evaluable) is not refused
                raise SpecError(f"the kernel overflows float64 for inputs of mean square {UNIT_INPUT_MEAN_SQUARE:g}: "
                                "Sigma(x, x) exceeds 1e300 (its activations or its layers' scales grow it too fast "
                                "for this depth); use fewer layers, smaller weight scales or a slower-growing phi")
        elif change > QUADRATURE_RESOLUTION:  # inf included; nan (phi not evaluable in plain floats) is unknown
            if math.isinf(change):  # an overflow, or phi undefined at a node (sinc's 0/0 at x = 0, gamma's poles)
                shown = ("is not finite in float64 (phi or phi' overflows there, or is undefined at one of the rule's "
                         "nodes, such as 0/0 at x = 0)")
                advice = "use fewer layers, a smaller sw, or a phi that is finite at every real x in plain floats"
            else:
                shown = (f"has the error estimate {beyond(change, QUADRATURE_RESOLUTION)} (its step halved, its range "
                         f"widened, or phi's frequency against its step; at most {QUADRATURE_RESOLUTION:g})")
                advice = "use fewer layers, a smaller sw or a slower-growing phi"
            raise SpecError(f"activation layer {index} ({_layer_spec(layer, {})}) sees variance {variance:.3g} for "
                            f"inputs of mean square {UNIT_INPUT_MEAN_SQUARE:g}, where the kernels' quadrature of "
                            f"E[phi(u)^2] or E[phi'(u)^2] {shown}: its kernels would be wrong; {advice}")


activations.on_change(_check_variance_path.cache_clear)  # a re-registered activation may change a chain's path


def _check_chain(chain: tuple) -> None:
    """The composition rules, read off the layer kinds' traits (theory.layers.Layer): a readout (dense) last;
    spatial layers (convolutions, one rank) before exactly one pooling layer (gap or flatten), flat-input layers
    (dense layers, residual blocks) after it (one that adds its input straight after it only when that input has
    the network's width: a gap over convolutions without c=); one parameterization."""
    if not chain:
        raise SpecError("an architecture needs at least one layer (its dense readout)")
    if len(chain) > MAX_LAYERS:
        raise SpecError(f"an architecture has at most {MAX_LAYERS} layers, got {len(chain)}")
    if not chain[-1].readout:
        raise SpecError(f"the last layer must be the dense readout, got {_layer_spec(chain[-1], {})!r}")
    params = {w.parameterization for w in _weight_layers(chain)}
    if len(params) > 1:
        raise SpecError("all layers of a network share one parameterization (param=ntk or param=standard), "
                        f"got {' and '.join(sorted(params))}")
    gaussian = False  # whether the layer's input is Gaussian at infinite width (a weighted layer's output)
    for index, layer in enumerate(chain):
        if layer.needs_gaussian_input and not gaussian:
            before = f"after {_layer_spec(chain[index - 1], {})!r}" if index else "first"
            raise SpecError(f"{_layer_spec(layer, {})!r} {before}: {layer.noun} needs a Gaussian input at infinite "
                            "width, the output of a dense, convolutional or residual layer (neural-tangents' rule)")
        if layer.gaussian_output is not None:
            gaussian = layer.gaussian_output
    pools = [i for i, layer in enumerate(chain) if layer.pooling]
    convs = [i for i, layer in enumerate(chain) if layer.spatial]
    if not convs:
        if pools:
            raise SpecError(f"{_layer_spec(chain[pools[0]], {})!r} needs a convolution before it")
        return
    if len({chain[i].spatial_dims for i in convs}) > 1:
        raise SpecError("all convolutions of a network have the same number of spatial axes (1D or 2D)")
    if not pools:
        after = next(i for i, layer in enumerate(chain) if i > convs[0] and layer.flat_input)
        raise SpecError(f"{_layer_spec(chain[after], {})!r} after {_layer_spec(chain[convs[0]], {})!r}: a "
                        "convolutional chain must pool (gap) or flatten before its dense layers")
    pool = pools[0]
    if convs[-1] > pool:
        late = next(i for i in convs if i > pool)
        raise SpecError(f"{_layer_spec(chain[late], {})!r} after {_layer_spec(chain[pool], {})!r}: "
                        "convolutions come before the gap or flatten")
    if len(pools) > 1:
        raise SpecError(f"{_layer_spec(chain[pools[1]], {})!r} after {_layer_spec(chain[pool], {})!r}: one gap or "
                        f"flatten per network, got {len(pools)}")
    flat = [i for i, layer in enumerate(chain[:pool]) if layer.flat_input]
    if flat:
        raise SpecError(f"{_layer_spec(chain[flat[0]], {})!r} before {_layer_spec(chain[pool], {})!r}: a convolutional "
                        "chain must pool (gap) or flatten before its dense layers")
    first_flat = next(i for i in range(pool + 1, len(chain)) if chain[i].flat_input)
    positions = chain[pool].keeps_positions
    if chain[first_flat].adds_input and (positions or chain[convs[-1]].channels is not None):
        # the branch ends in a dense layer of the network's width; the skip carries the pooled features
        reads = "positions x channels" if positions else f"{chain[convs[-1]].channels} channels (c=)"
        raise SpecError(f"{_layer_spec(chain[first_flat], {})!r} after {_layer_spec(chain[pool], {})!r}: a "
                        f"residual block adds its branch (the network's width) to its input, which here has {reads}; "
                        "put a dense layer before it"
                        + ("" if positions else " or leave c= out of the last convolution"))


# ------------------------------------------------------------------------------------------------
# The architecture
# ------------------------------------------------------------------------------------------------

_SHORTHAND_FIELDS = ("activation", "depth", "sigma_w", "sigma_b", "parameterization", "activation_params",
                     "residual_scale")


class Architecture:
    """A network: a serial composition of :mod:`theory.layers` layers (:attr:`layers`), immutable and hashable
    (it keys compiled-function caches); two architectures are equal when their chains are.

    ``Architecture(activation, depth, sigma_w, sigma_b, parameterization, activation_params, residual_scale)``
    builds the fully connected shorthand: ``depth`` hidden layers of ``activation`` and a linear readout
    (NTK parametrization, docs/claims.md, "Setting and notation"):
    h^{l+1} = (sigma_w / sqrt(n_l)) W^{l+1} a^l + sigma_b b^{l+1},  W, b ~ N(0, 1);
    in the standard parametrization W ~ N(0, sigma_w^2 / n_l) and b ~ N(0, sigma_b^2) instead.
    :meth:`of` builds any chain. The shorthand's fields (``activation``, ``depth``, ...) exist when the chain is
    one (:attr:`is_shorthand`); asking them of another chain raises :class:`NotShorthandError`.
    """

    __slots__ = ("_layers", "_shorthand")

    def __init__(self, activation: str = "relu", depth: int = 2, sigma_w: float = 1.0, sigma_b: float = 0.0,
                 parameterization: str = "ntk", activation_params: tuple[tuple[str, object], ...] = (),
                 residual_scale: float = 0.0):
        if not (isinstance(residual_scale, (int, float)) and math.isfinite(residual_scale) and residual_scale >= 0):
            raise SpecError(f"res (the residual branch scale) must be finite and >= 0, got {residual_scale!r}")
        check_residual_scale(residual_scale)
        if residual_scale > 0 and parameterization != "ntk":
            raise SpecError("residual blocks (res=) are defined in the NTK parametrization only")
        activation_layer = canonical_activation(activation, activation_params)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise SpecError(f"depth must be an integer >= 1, got {depth!r}")
        if depth > MAX_LAYERS // 2:
            raise SpecError(f"depth must be at most {MAX_LAYERS // 2}, got {depth}")
        dense = L.Dense(sigma_w, sigma_b, parameterization)
        check_weights(dense, "a dense layer")
        chain = L.fully_connected(dense, activation_layer, depth, residual_scale)
        self._set(chain, dict(activation=activation, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b,
                              parameterization=parameterization, activation_params=activation_layer.params,
                              residual_scale=residual_scale))

    @classmethod
    def of(cls, layers) -> "Architecture":
        """The architecture of a chain of :mod:`theory.layers` layers, validated (SpecError names the problem)."""
        chain = tuple(canonical_layer(layer) for layer in layers)
        _check_chain(chain)
        shorthand = _shorthand_of(chain)
        if shorthand is not None:
            return cls(**shorthand)
        self = object.__new__(cls)
        self._set(chain, None)
        return self

    def _set(self, chain: tuple, shorthand: dict | None) -> None:
        _check_variance_path(chain)
        object.__setattr__(self, "_layers", chain)
        object.__setattr__(self, "_shorthand", shorthand)

    def __setattr__(self, name, value):
        raise AttributeError("Architecture is immutable")

    def __eq__(self, other):
        return isinstance(other, Architecture) and self._layers == other._layers

    def __hash__(self):
        return hash(("Architecture", self._layers))

    def __reduce__(self):
        return (parse_spec, (self.spec,))

    def __repr__(self) -> str:
        return f"parse_spec({self.spec!r})"

    def __str__(self) -> str:
        return self.spec

    # -- the chain ------------------------------------------------------------------------------------------

    @property
    def layers(self) -> tuple:
        """The serial composition, input to readout (theory.layers objects)."""
        return self._layers

    @property
    def is_shorthand(self) -> bool:
        """Whether the chain is a fully connected ``ACTIVATION:DEPTH`` network (residual blocks included)."""
        return self._shorthand is not None

    @property
    def is_mlp(self) -> bool:
        """A plain fully connected network: (dense > activation) * depth > dense, one activation and one dense
        layer kind throughout (the hand-written forward pass and the kernel-form attack apply to it)."""
        return self._shorthand is not None and not self._shorthand["residual_scale"]

    @property
    def has_residual(self) -> bool:
        """Whether a layer adds its input to a branch (a residual block)."""
        return any(layer.adds_input for layer in self._layers)

    @property
    def spatial_dims(self) -> int | None:
        """1 or 2 for a convolutional network (its window's axes), None otherwise."""
        return next((layer.spatial_dims for layer in self._layers if layer.spatial), None)

    @property
    def is_convolutional(self) -> bool:
        return self.spatial_dims is not None

    def check_input(self, dim: int) -> None:
        """SpecError unless flat inputs of ``dim`` features fit the chain (a 2D convolution reads them as square
        images, theory.layers.image_shape)."""
        if self.spatial_dims is not None:
            try:
                L.image_shape(int(dim), self.spatial_dims)
            except ValueError as error:
                raise SpecError(f"{self.spec}: {error}") from None

    def input_dim_at_least(self, dim: int) -> int:
        """The smallest input dimension >= ``dim`` that the chain reads (:meth:`check_input`): ``dim`` itself, or
        for a 2D convolution the next square (5 -> 9: 3x3 images). The claims that draw small synthetic inputs
        ask it once for their dimension."""
        if self.spatial_dims != 2:
            return int(dim)
        side = math.isqrt(max(int(dim) - 1, 0)) + 1
        return side * side

    @property
    def width_limit_obstacle(self) -> str | None:
        """Why the finite networks of this chain do not approach its infinite-width limit as the width of
        numerics.networks.make_network grows, or None when they do: no hidden layer (a lone readout, exact and
        width-free at every width), or a convolution with a fixed channel count (c=)."""
        weighted = [layer for layer in self._layers if layer.weight_layer is not None]
        if len(weighted) < 2:
            return "no hidden layer: the network is its own linearization and its NTK is exact at every width"
        fixed = [layer for layer in weighted if not layer.takes_width]
        if fixed:
            return (f"{len(fixed)} convolution(s) with a fixed channel count (c=): the network does not approach its "
                    "infinite-width limit as the width grows (leave c= out to let the width set the channels)")
        return None

    @property
    def width_rate_obstacle(self) -> str | None:
        """Why no rate in the width is fitted for this chain (D1's deviation rate, R1's width limit), or None:
        :attr:`width_limit_obstacle`, or standard parametrization, where the rates are not stated."""
        if self.parameterization != "ntk":
            return ("the width rates are stated in NTK parametrization: there one network's first m units are an "
                    "exact width-m draw and the limit kernel does not depend on the width; in standard "
                    "parametrization the NTK grows with the width")
        return self.width_limit_obstacle

    @property
    def width_sets_layers(self) -> bool:
        """Whether the width of numerics.networks.make_network sets any layer: a hidden dense layer, a residual
        branch or a convolution without its own channel count. False when every convolution fixes its channels
        (c=) and the only dense layer is the readout: then every width gives the same network."""
        return any(layer.takes_width for layer in self._layers[:-1])

    def named(self, width: int, *, short: bool = False) -> str:
        """The network as people read it: "relu:2 width 256" (short: "relu:2 m=256"), or where the width sets no
        layer (:attr:`width_sets_layers`) the spec with "(channels fixed by c=)" or "(no hidden layer)" (short:
        the spec alone)."""
        if self.width_sets_layers:
            return f"{self.spec} m={width}" if short else f"{self.spec} width {width}"
        return self.spec if short else f"{self.spec} ({self.fixed_size})"

    @property
    def fixed_size(self) -> str | None:
        """Why the width sets no layer (:attr:`width_sets_layers` False): "channels fixed by c=" or "no hidden
        layer"; None where it sets one."""
        if self.width_sets_layers:
            return None
        fixed = any(layer.weight_layer is not None and not layer.takes_width for layer in self._layers)
        return "channels fixed by c=" if fixed else "no hidden layer"

    @property
    def smooth(self) -> bool:
        """Whether no activation of the chain (residual branches included) is piecewise linear (the registry's
        trait), so that the network is smooth in its parameters."""
        return not any(activations.get(layer.name).piecewise_linear for layer in self.activation_layers)

    @property
    def positively_homogeneous(self) -> bool:
        """f(k x) = k f(x) for every k > 0: no biases and every layer positively homogeneous (its kind's trait,
        theory.layers.Layer.positively_homogeneous: dense, convolutional and pooling layers are linear, an activation
        and a residual block are where the registry says phi is of degree 1; a registered kind that does not say so
        is not)."""
        return not self.has_bias and all(layer.positively_homogeneous for layer in self._layers)

    @property
    def has_kernel(self) -> bool:
        """Whether every layer has its symbolic kernel step (theory.layers), so that the analytic NNGP and NTK
        exist (numerics.kernels): a layer kind whose step is not written yet raises NotImplementedError there."""
        try:
            for layer in self._layers:
                layer.step()
        except NotImplementedError:
            return False
        return True

    @property
    def parameterization(self) -> str:
        """The parameterization every weighted layer shares (validated)."""
        weighted = _weight_layers(self._layers)
        return weighted[0].parameterization if weighted else "ntk"

    @property
    def has_bias(self) -> bool:
        return any(w.has_bias for w in _weight_layers(self._layers))

    @property
    def activation_layers(self) -> tuple[L.Activation, ...]:
        """The distinct activations of the chain (residual branches included), in order of appearance."""
        seen: list[L.Activation] = []
        for layer in self._layers:
            activation = L.activation_of(layer)
            if activation is not None and activation not in seen:
                seen.append(activation)
        return tuple(seen)

    # -- the shorthand's fields -----------------------------------------------------------------------------

    def _field(self, name: str):
        if self._shorthand is None:
            raise NotShorthandError(f"{self.spec} is a layer chain, not a fully connected ACTIVATION:DEPTH network: "
                                    f"it has no single {name}")
        return self._shorthand[name]

    activation = property(lambda self: self._field("activation"), doc="The shorthand's activation name.")
    depth = property(lambda self: self._field("depth"), doc="The shorthand's number of hidden layers.")
    sigma_w = property(lambda self: self._field("sigma_w"))
    sigma_b = property(lambda self: self._field("sigma_b"))
    activation_params = property(lambda self: self._field("activation_params"),
                                 doc="Activation parameters as sorted (name, value) pairs, defaults filled in.")
    residual_scale = property(lambda self: self._field("residual_scale"),
                              doc="s > 0: residual blocks h + s Dense(phi(h)) (theory.layers.layers_of); 0: none.")

    @property
    def params(self) -> dict[str, object]:
        """Activation parameters as a dict."""
        return dict(self.activation_params)

    # -- the spec -------------------------------------------------------------------------------------------

    @property
    def spec(self) -> str:
        """The canonical spec that :func:`parse_spec` turns back into this architecture: the shorthand when the
        chain is one, else the chain (options shared by every weighted layer in a leading token)."""
        if self._shorthand is not None:
            return _shorthand_spec(self._shorthand)
        return _chain_spec(self._layers)


def activation_items(params) -> list[str]:
    """An activation's parameters as spec options, ``KEY=VALUE`` (a tuple's values comma-separated)."""
    items = []
    for name, value in params:
        if isinstance(value, tuple):
            value = ",".join(number_text(v) for v in value)
        else:
            value = number_text(value)
        items.append(f"{name}={value}")
    return items


def _shorthand_spec(fields: dict) -> str:
    parts = [fields["activation"], str(fields["depth"])]
    if fields["sigma_w"] != 1.0:
        parts.append(f"sw={number_text(fields['sigma_w'])}")
    if fields["sigma_b"] != 0.0:
        parts.append(f"sb={number_text(fields['sigma_b'])}")
    if fields["parameterization"] != "ntk":
        parts.append(f"param={fields['parameterization']}")
    if fields["residual_scale"]:
        parts.append(f"res={number_text(fields['residual_scale'])}")
    return ":".join(parts + activation_items(fields["activation_params"]))


_DEFAULTS = {"sw": 1.0, "sb": 0.0, "param": "ntk"}


def _weight_values(layer) -> dict[str, object]:
    return {"sw": layer.sigma_w, "sb": layer.sigma_b, "param": layer.parameterization}


def _layer_spec(layer, shared: dict) -> str:
    """One layer's token (theory.layers.Layer.spec_text); options in ``shared`` (the chain's leading token) and
    defaults are left out."""
    weighted = layer.weight_layer
    options = []
    if weighted is not None:
        for key, value in _weight_values(weighted).items():
            if key not in shared and value != _DEFAULTS[key]:
                options.append(f"{key}={number_text(value)}")
    return layer.spec_text(options)


def _chain_spec(chain: tuple) -> str:
    values = [_weight_values(w) for w in _weight_layers(chain)]
    shared = {}
    for key in WEIGHT_OPTIONS:
        distinct = {v[key] for v in values}
        if len(distinct) == 1 and values[0][key] != _DEFAULTS[key]:
            shared[key] = values[0][key]
    tokens = [_layer_spec(layer, shared) for layer in chain]
    if shared:
        tokens.insert(0, ":".join(f"{key}={number_text(value)}" for key, value in shared.items()))
    return " > ".join(tokens)


def _shorthand_of(chain: tuple) -> dict | None:
    """The shorthand fields whose expansion (theory.layers.fully_connected) is exactly ``chain``, or None."""
    if len(chain) < 3 or not isinstance(chain[0], L.Dense) or chain[-1] != chain[0]:
        return None
    dense, middle = chain[0], chain[1:-1]
    if isinstance(middle[0], L.Residual):
        activation, scale, depth = middle[-1], middle[0].scale, len(middle) - 1
    elif isinstance(middle[0], L.Activation):
        activation, scale, depth = middle[0], 0.0, (len(middle) + 1) // 2
    else:
        return None
    if not isinstance(activation, L.Activation) or depth < 1 or depth > MAX_LAYERS // 2:
        return None
    if L.fully_connected(dense, activation, depth, scale) != chain:
        return None
    return dict(activation=activation.name, depth=depth, sigma_w=dense.sigma_w, sigma_b=dense.sigma_b,
                parameterization=dense.parameterization, activation_params=activation.params,
                residual_scale=scale)


# ------------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------------

def _parse_value(activation: str, key: str, text: str) -> object:
    """Read a parameter's text by its kind in the registry entry (theory.activations.PARAMETER_KINDS)."""
    kind = activations.get(activation).parameters[key]
    try:
        if kind == "int":
            value = _int_text(text)
            if value < 0:
                raise ValueError
            return value
        if kind == "floats":
            values = tuple(_float_text(v) for v in text.split(","))
            if not values or not all(math.isfinite(v) for v in values):
                raise ValueError
            return values
        if kind == "expression":
            from theory.expressions import parse_activation  # whitelist parser + activation rules; one-line SpecError

            parse_activation(text.strip())  # the stripped text: one cache entry per formula
            return text.strip()
        value = _float_text(text)
        if not math.isfinite(value):
            raise ValueError
        return value
    except SpecError:
        raise
    except ValueError:
        raise SpecError(f"bad value {text!r} for {key!r} of activation {activation!r}") from None


_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")
_FLOAT_TEXT = re.compile(r"\s*[+-]?(([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?|(?i:nan|inf|infinity))\s*")


def _int_text(text: str) -> int:
    """``int(text)`` for plain ASCII decimal digits only (Python's int also reads '1_0' and full-width digits); a
    sign is read, for the rules on values to name a negative one (relu:-1: depth must be an integer >= 1)."""
    if not _INTEGER_TEXT.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _float_text(text: str) -> float:
    """``float(text)`` for a plain ASCII decimal literal only (no '1_0', no full-width digits); 'nan' and 'inf' are
    read, for the rules on values to name them."""
    if not _FLOAT_TEXT.fullmatch(text):
        raise ValueError(text)
    return float(text)


def _float(text: str, key: str, where: str) -> float:
    try:
        value = _float_text(text)
    except ValueError:
        raise SpecError(f"bad value {text!r} for {key!r} in {where}") from None
    return value


DEPTH_IN_CHAIN_HINT = " (a depth like relu:2 belongs to the shorthand, not to a chain)"
"""Added to the refusal of an activation layer of a chain with a number where its options go (dense > relu:2)."""


def _items(token: str, where: str, *, activation: bool = False) -> dict[str, str]:
    """``KEY=VALUE`` items of a token (after its name), each key once; ``activation``: the token is an activation
    layer's, whose bare integer is a depth that the chain does not take (:data:`DEPTH_IN_CHAIN_HINT`)."""
    items: dict[str, str] = {}
    for item in token.split(":"):
        key, sep, text = item.partition("=")
        key = key.strip().lower()  # names are case-blind, as the layers'
        if not sep or not key:
            hint = DEPTH_IN_CHAIN_HINT if activation and _INTEGER_TEXT.fullmatch(item) else ""
            raise SpecError(f"option {item.strip()!r} in {where} is not KEY=VALUE{hint}")
        if key in items:
            raise SpecError(f"option {key!r} given twice in {where}")
        items[key] = text.strip()
    return items


def _weights(items: dict[str, str], defaults: dict[str, object], where: str) -> dict[str, object]:
    values = dict(_DEFAULTS) | defaults
    for key in ("sw", "sb"):
        if key in items:
            values[key] = _float(items.pop(key), key, where)
    if "param" in items:
        values["param"] = items.pop("param").strip().lower()
    return {"sigma_w": values["sw"], "sigma_b": values["sb"], "parameterization": values["param"]}


def _unknown(items: dict, allowed: str, where: str) -> None:
    if items:
        raise SpecError(f"unknown option {next(iter(items))!r} in {where}; allowed: {allowed}")


class LayerOptions:
    """The ``KEY=VALUE`` options of one layer token of a chain, with the chain's leading defaults: a layer kind's
    ``parse`` (theory.layers.Layer.parse) takes the options it knows, each read by its typed reader (one-line
    SpecError naming the token), and :meth:`refuse_unknown` refuses the rest."""

    def __init__(self, items: dict[str, str], defaults: dict[str, object], where: str):
        self._items, self._defaults, self.where = items, defaults, where

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def require(self, keys, usage: str) -> None:
        """SpecError unless every one of ``keys`` is given; ``usage`` says how the token is written."""
        for key in keys:
            if key not in self._items:
                raise SpecError(f"{self.where} lacks {key}=; {usage}")

    def text(self, key: str) -> str:
        return self._items.pop(key)

    def number(self, key: str) -> float:
        return _float(self._items.pop(key), key, self.where)

    def integer(self, key: str, what: str) -> int | None:
        """An integer option (``what``: its name in the message), None when not given."""
        if key not in self._items:
            return None
        text = self._items.pop(key)
        try:
            return _int_text(text)
        except ValueError:
            raise SpecError(f"bad value {text!r} for {what} in {self.where}") from None

    def weights(self) -> dict[str, object]:
        """sigma_w, sigma_b and parameterization: sw, sb and param, else the chain's defaults, else 1, 0, ntk."""
        return _weights(self._items, self._defaults, self.where)

    def activation(self, name: str) -> L.Activation:
        """The activation ``name`` with the parameters among the options (canonical_activation)."""
        if name not in ACTIVATION_PARAMETERS:
            raise unknown_activation(name, f" in {self.where}")
        allowed = ACTIVATION_PARAMETERS[name]
        params = {}
        for key in list(self._items):
            if key in allowed:
                params[key] = _parse_value(name, key, self._items.pop(key))
        return canonical_activation(name, tuple(params.items()))

    def refuse_unknown(self, allowed: str) -> None:
        """SpecError naming an option no reader took (``allowed``: the token's options, in words)."""
        _unknown(self._items, allowed, self.where)


def _parse_layer(token: str, defaults: dict[str, object], spec: str):
    """The layer of one token, parsed by the registered kind that reads its name (theory.layers.kind_reading)."""
    head, _, rest = token.partition(":")
    name = head.strip().lower()
    where = f"layer {token!r} of spec {spec!r}"
    items = _items(rest, where, activation=name in ACTIVATION_PARAMETERS) if rest.strip() or ":" in token else {}
    kind = L.kind_reading(name)
    if kind is None:
        raise SpecError(f"unknown layer {head.strip()!r} in spec {spec!r}; layers: {', '.join(L.layer_names())} "
                        f"or an activation ({', '.join(ACTIVATION_PARAMETERS)})")
    return kind.parse(name, LayerOptions(items, defaults, where))


def parse_chain(spec: str) -> Architecture:
    """Parse ``[OPTIONS >] LAYER > LAYER > ...`` (module docstring) into an Architecture."""
    tokens = [token.strip() for token in spec.split(">")]
    if any(token.count("(") > token.count(")") for token in tokens[:-1]):  # a '>' inside a formula's parentheses
        raise SpecError(f"'>' inside parentheses in spec {spec!r}: '>' separates layers, and a formula (phi=) has no "
                        "comparisons (Piecewise, Max and the like are not among its functions)")
    empty = [i for i, token in enumerate(tokens) if not token]
    if empty:
        raise SpecError(f"empty layer (two '>' in a row, or one at an end) in spec {spec!r}")
    defaults: dict[str, object] = {}
    first = tokens[0].split(":")[0]
    if "=" in first:
        where = f"the options {tokens[0]!r} of spec {spec!r}"
        items = _items(tokens[0], where)
        for key in ("sw", "sb"):
            if key in items:
                defaults[key] = _float(items.pop(key), key, where)
        if "param" in items:
            defaults["param"] = items.pop("param")
        _unknown(items, "sw, sb, param", where)
        tokens = tokens[1:]
        if not tokens:
            raise SpecError(f"spec {spec!r} has options but no layers")
    chain = []
    for token in tokens:
        layer = _parse_layer(token, defaults, spec)
        try:
            chain.append(canonical_layer(layer))
        except SpecError as error:
            raise SpecError(f"{error} (layer {token!r})") from None
    return Architecture.of(chain)


def parse_spec(spec: str) -> Architecture:
    """Parse a spec (module docstring): the shorthand ``ACTIVATION:DEPTH[:KEY=VALUE]...`` or a ``>`` chain."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError("empty architecture spec; expected ACTIVATION:DEPTH[:KEY=VALUE]... (e.g. relu:2) "
                        "or a chain of layers (e.g. dense > relu > dense)")
    head = spec.strip().split(":")[0].strip().lower()
    if ">" in spec or "=" in head or is_layer_keyword(head):
        return parse_chain(spec)
    parts = spec.strip().split(":")
    activation = parts[0].strip().lower()
    if activation not in ACTIVATION_PARAMETERS:
        raise unknown_activation(activation, f" in spec {spec!r}", f"; or a chain of layers ({', '.join(L.layer_names())})")
    if len(parts) < 2:
        raise SpecError(f"spec {spec!r} lacks a depth; expected ACTIVATION:DEPTH, e.g. {activation}:2")
    try:
        depth = _int_text(parts[1])
    except ValueError:
        raise SpecError(f"depth {parts[1]!r} in spec {spec!r} is not an integer") from None
    fields: dict[str, object] = {}
    act_params: dict[str, object] = {}
    for item in parts[2:]:
        key, sep, text = item.partition("=")
        key = key.strip().lower()  # names are case-blind, as the activation's
        if not sep:
            raise SpecError(f"option {item!r} in spec {spec!r} is not KEY=VALUE")
        if key in fields or key in act_params:
            raise SpecError(f"option {key!r} given twice in spec {spec!r}")
        if key in ("sw", "sb", "res"):
            fields[key] = _float(text, key, f"spec {spec!r}")
        elif key == "param":
            fields[key] = text.strip().lower()
        elif key in ACTIVATION_PARAMETERS[activation]:
            act_params[key] = _parse_value(activation, key, text)
        else:
            raise SpecError(f"unknown option {key!r} in spec {spec!r}; allowed: sw, sb, param, res"
                            + "".join(f", {p}" for p in ACTIVATION_PARAMETERS[activation]))
    return Architecture(
        activation=activation,
        depth=depth,
        sigma_w=fields.get("sw", 1.0),
        sigma_b=fields.get("sb", 0.0),
        parameterization=fields.get("param", "ntk"),
        activation_params=tuple(act_params.items()),
        residual_scale=fields.get("res", 0.0),
    )
