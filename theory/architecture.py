"""Fully connected architectures and their compact command-line spec.

A spec string is ``ACTIVATION:DEPTH[:KEY=VALUE]...``, for example ``relu:2`` or
``erf:3:sw=1.5:sb=0.1``. Keys:

- ``sw``, ``sb``: weight and bias standard deviations (sigma_w, sigma_b); ``sb=0`` means no biases.
- ``param``: ``ntk`` (default) or ``standard`` parametrization.
- ``res``: a residual branch scale s > 0 (NTK parametrization): after the first dense layer, ``depth`` residual
  blocks h -> h + s Dense(phi(h)), then phi and the readout (theory.layers.layers_of); default 0, a plain MLP.
- activation parameters, as the activation's entry in the registry (theory.activations) declares them, e.g.
  ``alpha`` (leaky_relu), ``a`` and ``b`` (abrelu), ``k`` (monomial), ``coeffs`` (poly: comma-separated),
  ``phi`` (expr: a formula in ``x``, e.g. ``expr:2:phi=tanh(x)``, read by theory.expressions.parse_expression).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator, Mapping

from theory import activations

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


class SpecError(ValueError):
    """A malformed architecture spec or an unknown activation."""


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A fully connected network: ``depth`` hidden layers of ``activation`` and a linear readout.

    Layers (NTK parametrization, docs/claims.md, "Setting and notation"):
    h^{l+1} = (sigma_w / sqrt(n_l)) W^{l+1} a^l + sigma_b b^{l+1},  W, b ~ N(0, 1).
    In the standard parametrization W ~ N(0, sigma_w^2 / n_l) and b ~ N(0, sigma_b^2) instead.

    ``activation_params`` is a tuple of (name, value) pairs so that the dataclass stays hashable
    (it keys compiled-function caches).
    """

    activation: str = "relu"
    depth: int = 2
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    parameterization: str = "ntk"
    activation_params: tuple[tuple[str, object], ...] = ()
    residual_scale: float = 0.0
    """s > 0: the hidden layers are residual blocks h + s Dense(phi(h)) (theory.layers.layers_of); 0: none."""

    def __post_init__(self):
        if not (math.isfinite(self.residual_scale) and self.residual_scale >= 0):
            raise SpecError(f"res (the residual branch scale) must be finite and >= 0, got {self.residual_scale!r}")
        if self.residual_scale > 0 and self.parameterization != "ntk":
            raise SpecError("residual blocks (res=) are defined in the NTK parametrization only")
        if self.activation not in ACTIVATION_PARAMETERS:
            raise SpecError(
                f"unknown activation {self.activation!r}; known: {', '.join(ACTIVATION_PARAMETERS)}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise SpecError(f"depth must be an integer >= 1, got {self.depth!r}")
        if not (math.isfinite(self.sigma_w) and self.sigma_w > 0):
            raise SpecError(f"sigma_w must be finite and > 0, got {self.sigma_w!r}")
        if not (math.isfinite(self.sigma_b) and self.sigma_b >= 0):
            raise SpecError(f"sigma_b must be finite and >= 0, got {self.sigma_b!r}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise SpecError(
                f"parameterization must be one of {PARAMETERIZATIONS}, got {self.parameterization!r}")
        allowed = ACTIVATION_PARAMETERS[self.activation]
        names = [name for name, _ in self.activation_params]
        for name in names:
            if name not in allowed:
                raise SpecError(f"activation {self.activation!r} takes no parameter {name!r}"
                                f" (it takes: {', '.join(allowed) or 'none'})")
        merged = dict(DEFAULT_ACTIVATION_PARAMETERS.get(self.activation, {}))
        merged.update(self.activation_params)
        missing = [name for name in allowed if name not in merged]
        if missing:
            raise SpecError(f"activation {self.activation!r} needs parameter(s) {', '.join(missing)}")
        object.__setattr__(self, "activation_params", tuple(sorted(merged.items())))

    @property
    def params(self) -> dict[str, object]:
        """Activation parameters as a dict."""
        return dict(self.activation_params)

    @property
    def has_bias(self) -> bool:
        return self.sigma_b > 0

    @property
    def spec(self) -> str:
        """The compact spec string that :func:`parse_spec` turns back into this architecture."""
        parts = [self.activation, str(self.depth)]
        if self.sigma_w != 1.0:
            parts.append(f"sw={self.sigma_w:g}")
        if self.sigma_b != 0.0:
            parts.append(f"sb={self.sigma_b:g}")
        if self.parameterization != "ntk":
            parts.append(f"param={self.parameterization}")
        if self.residual_scale:
            parts.append(f"res={self.residual_scale:g}")
        for name, value in self.activation_params:
            if isinstance(value, tuple):
                value = ",".join(f"{v:g}" for v in value)
            elif isinstance(value, float):
                value = f"{value:g}"
            parts.append(f"{name}={value}")
        return ":".join(parts)

    def __str__(self) -> str:
        return self.spec


def _parse_value(activation: str, key: str, text: str) -> object:
    """Read a parameter's text by its kind in the registry entry (theory.activations.PARAMETER_KINDS)."""
    kind = activations.get(activation).parameters[key]
    try:
        if kind == "int":
            value = int(text)
            if value < 0:
                raise ValueError
            return value
        if kind == "floats":
            values = tuple(float(v) for v in text.split(","))
            if not values or not all(math.isfinite(v) for v in values):
                raise ValueError
            return values
        if kind == "expression":
            from theory.expressions import parse_expression  # whitelist parser; raises SpecError naming the token

            parse_expression(text)
            return text.strip()
        value = float(text)
        if not math.isfinite(value):
            raise ValueError
        return value
    except SpecError:
        raise
    except ValueError:
        raise SpecError(f"bad value {text!r} for {key!r} of activation {activation!r}") from None


def parse_spec(spec: str) -> Architecture:
    """Parse ``ACTIVATION:DEPTH[:KEY=VALUE]...`` (see the module docstring) into an Architecture."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError("empty architecture spec; expected ACTIVATION:DEPTH[:KEY=VALUE]..., e.g. relu:2")
    parts = spec.strip().split(":")
    activation = parts[0].strip().lower()
    if activation not in ACTIVATION_PARAMETERS:
        raise SpecError(f"unknown activation {activation!r} in spec {spec!r}; "
                        f"known: {', '.join(ACTIVATION_PARAMETERS)}")
    if len(parts) < 2:
        raise SpecError(f"spec {spec!r} lacks a depth; expected ACTIVATION:DEPTH, e.g. {activation}:2")
    try:
        depth = int(parts[1])
    except ValueError:
        raise SpecError(f"depth {parts[1]!r} in spec {spec!r} is not an integer") from None
    fields: dict[str, object] = {}
    act_params: dict[str, object] = {}
    for item in parts[2:]:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise SpecError(f"option {item!r} in spec {spec!r} is not KEY=VALUE")
        if key in fields or key in act_params:
            raise SpecError(f"option {key!r} given twice in spec {spec!r}")
        if key in ("sw", "sb", "res"):
            try:
                fields[key] = float(text)
            except ValueError:
                raise SpecError(f"bad value {text!r} for {key!r} in spec {spec!r}") from None
        elif key == "param":
            fields[key] = text.strip()
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
