"""The activation registry: every activation is one :class:`Activation` entry, defined here and nowhere else.

An entry holds everything the package needs to know about an activation phi:

- ``name`` and ``parameters`` (with their kinds and defaults), read by the spec parser
  (``relu:2``, ``leaky_relu:2:alpha=0.2``);
- ``phi``: the activation as a sympy expression in ``x`` (the JAX function is compiled from it by
  ``numerics.networks.activation_fn`` unless ``jax`` overrides it);
- ``dual``: its dual pair (E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for (u, v) ~ N(0, [[a, c], [c, b]]) as sympy
  expressions, or ``None``: then polynomials get exact Gaussian moments and anything else is integrated by
  quadrature (``theory.dual.dual_kernel``);
- ``surrogate``: a smooth stand-in in ``x`` and the sharpness ``beta`` that the parameter-space attack uses
  in place of phi (relu(x) -> softplus(beta x) / beta, Loo et al. 2023, arXiv:2302.01428, Sec. 4);
- ``stax``: the neural-tangents ``stax`` layer (its name and arguments); ``None`` builds
  ``stax.ElementwiseNumerical`` from the JAX function;
- traits: ``piecewise_linear``, ``homogeneous_degree`` (phi(k x) = k^deg phi(x) for k > 0), and the polynomial
  degree, read from ``phi``.

Adding an activation is one call, from anywhere (a test module included)::

    from theory.activations import Activation, register, x
    import sympy as sp
    register(Activation(name="softplus", phi=lambda p: sp.log(1 + sp.exp(x))))

after which, in the same Python process, ``softplus:2`` is a valid spec and
``proofs_check.cli.main(["run", "K1", "--arch", "softplus:2"])`` checks it. A ``proofs-check`` typed in a shell is a
new process that has not run the registering module: there the formula grammar, ``expr:2:phi=log(1+exp(x))``,
needs no code at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Callable, Iterator, Mapping

import sympy as sp

x = sp.Symbol("x", real=True)
"""The activation's argument in every ``phi`` and ``surrogate`` expression."""
beta = sp.Symbol("beta", positive=True)
"""The surrogate's sharpness (the attack anneals it upward, e.g. 10 -> 200)."""

PARAMETER_KINDS = ("float", "int", "floats", "expression")
"""How a parameter's text in a spec is read: a finite float, an integer >= 0, comma-separated finite floats, or
a formula in x (read by the whitelist parser theory.expressions.parse_expression, never evaluated)."""

MAX_MONOMIAL_DEGREE = 5
"""monomial's k runs from 1 to this: k = 0 is a constant (rank-one kernels), and neural-tangents' Monomial layer
refuses higher degrees (NotImplementedError)."""

Params = Mapping[str, object]


class softplus(sp.Function):  # noqa: N801 - printed as ``softplus`` by lambdify, mapped to jax.nn.softplus
    """softplus(z) = log(1 + exp(z)), as a sympy function so that a numerically stable implementation
    (jax.nn.softplus) is used when it is compiled; d/dz softplus(z) = 1 / (1 + exp(-z))."""

    def fdiff(self, argindex=1):
        return 1 / (1 + sp.exp(-self.args[0]))

    def _eval_rewrite_as_log(self, z, **kwargs):
        return sp.log(1 + sp.exp(z))


class RegistryError(ValueError):
    """An unknown activation name, or an entry that contradicts itself."""


@dataclasses.dataclass(frozen=True)
class Activation:
    """One activation: its definition, dual pair, numerical layers and traits (module docstring).

    Callables take the activation's parameters as a dict (defaults filled in); numeric parameters enter
    sympy expressions exactly (:func:`exact`).
    """

    name: str
    phi: Callable[[Params], sp.Expr]
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Parameter name -> kind (one of :data:`PARAMETER_KINDS`), in spec order."""
    defaults: Mapping[str, object] = dataclasses.field(default_factory=dict)
    dual: Callable[[Params], tuple[sp.Expr, sp.Expr]] | None = None
    surrogate: Callable[[Params], sp.Expr] | None = None
    stax: tuple[str, Callable[[Params], tuple]] | None = None
    jax: Callable[[Params], Callable] | None = None
    """Optional JAX function factory; default: phi compiled by sympy.lambdify (numerics.networks)."""
    piecewise_linear: bool = False
    homogeneous_degree: int | None = None
    example: str = ""
    """Parameters K1 checks by default, as spec options (``alpha=0.1``); empty: the defaults."""
    summary: str = ""
    certify_diagonal: bool = True
    """Whether sympy can integrate E[phi(u)^2] in closed form for the diagonal certificate (not for erf)."""
    check: Callable[[Params], str | None] | None = None
    """A rule on the parameters (defaults filled in): the problem in words, or None; a spec breaking it is refused."""

    def __post_init__(self):
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise RegistryError(f"activation name {self.name!r} must be a lower-case identifier")
        upper = [name for name in self.parameters if not name.isidentifier() or name != name.lower()]
        if upper:  # spec option names are case-blind (theory.architecture lower-cases them)
            raise RegistryError(f"activation {self.name!r}: parameter name {upper[0]!r} must be a lower-case identifier")
        bad = [kind for kind in self.parameters.values() if kind not in PARAMETER_KINDS]
        if bad:
            raise RegistryError(f"activation {self.name!r}: parameter kinds {bad} not in {PARAMETER_KINDS}")

    def expression(self, params: Params) -> sp.Expr:
        """phi(x) with the parameters substituted."""
        return sp.sympify(self.phi(dict(params)), strict=True)  # expressions and numbers only, never text

    def polynomial_degree(self, params: Params) -> int | None:
        """Degree of phi when it is a polynomial in x, else None (a trait read from phi itself)."""
        phi = self.expression(params)
        if self.piecewise_linear or not phi.is_polynomial(x):
            return None
        return int(sp.degree(sp.expand(phi), x)) if phi.has(x) else 0

    def surrogate_expression(self, params: Params) -> sp.Expr | None:
        return None if self.surrogate is None else sp.sympify(self.surrogate(dict(params)), strict=True)


_REGISTRY: dict[str, Activation] = {}
_listeners: list[Callable[[], None]] = []


def register(activation: Activation, *, replace: bool = False) -> Activation:
    """Add ``activation`` to the registry (``replace`` to redefine an existing name), after :func:`check_entry`."""
    if activation.name in _REGISTRY and not replace:
        raise RegistryError(f"activation {activation.name!r} is already registered")
    check_entry(activation)
    return _add(activation)


def check_entry(activation: Activation) -> None:
    """RegistryError unless specs can name ``activation`` and its phi is usable: its name is no layer keyword of
    the chain grammar, no parameter is named like a spec option, and phi at the default parameters (when every
    parameter has one) is not shown to break the rules of an ``expr:`` formula
    (theory.expressions.check_activation_expression; smoothness only with neither ``dual`` nor ``stax``)."""
    from theory.architecture import RESERVED_OPTIONS, SpecError, is_layer_keyword, parameter_range_problem
    from theory.expressions import VARIABLE, check_activation_expression

    clashes = [name for name in activation.parameters if name in RESERVED_OPTIONS]
    if clashes:
        raise RegistryError(f"activation {activation.name!r}: parameter name {clashes[0]!r} is a spec option of its "
                            f"own ({', '.join(RESERVED_OPTIONS)}): specs could not set it")
    stray = [name for name in activation.defaults if name not in activation.parameters]
    if stray:
        raise RegistryError(f"activation {activation.name!r}: default for {stray[0]!r}, which is not among its "
                            f"parameters ({', '.join(activation.parameters) or 'none'})")
    out_of_range = parameter_range_problem(activation.parameters, activation.defaults.items())
    if out_of_range:
        raise RegistryError(f"activation {activation.name!r}: default {out_of_range}")
    if is_layer_keyword(activation.name):
        raise RegistryError(f"activation name {activation.name!r} is a layer keyword of the chain grammar (dense, "
                            "gap, flatten, res, convK, convKxK): no spec could name it")
    if all(name in activation.defaults for name in activation.parameters):
        phi = None
        try:
            phi = activation.expression(dict(activation.defaults))
            check_activation_expression(phi, str(phi), smooth=activation.dual is None and activation.stax is None,
                                        proven_only=True)
        except (SpecError, sp.SympifyError, TypeError, ValueError, ZeroDivisionError) as error:
            own = [symbol for symbol in getattr(phi, "free_symbols", ()) if symbol.name == VARIABLE.name
                   and symbol != VARIABLE]
            if own:  # sp.Symbol("x") is another symbol than the variable (its assumptions differ)
                raise RegistryError(f"activation {activation.name!r}: phi uses its own Symbol('x'); build it from "
                                    "theory.activations.x, the variable of every activation") from None
            if isinstance(error, sp.SympifyError):  # text, or an object sympy has no expression for
                raise RegistryError(f"activation {activation.name!r}: phi gives {error.expr!r}, not a sympy "
                                    "expression (text is never parsed): build it from theory.activations.x and "
                                    "sympy's functions, e.g. sp.log(1 + sp.exp(x))") from None
            raise RegistryError(f"activation {activation.name!r}: {error}") from None
        except Exception as error:  # phi is code: whatever it raises, say so in one line
            raise RegistryError(f"activation {activation.name!r}: phi raised {type(error).__name__}: {error} at the "
                                "default parameters") from None
        if activation.dual is not None:
            _check_dual_symbols(activation)
        if activation.jax is not None:
            _check_jax_factory(activation)


def _check_jax_factory(activation: Activation) -> None:
    """RegistryError unless ``jax`` is a factory, parameters -> function: ``jax=jnp.tanh`` itself was accepted, and
    every network of the entry then raised "tanh requires ndarray or scalar arguments, got <class 'dict'>"."""
    hint = "jax must map the parameters to a function, e.g. jax=lambda p: jnp.tanh"
    try:
        function = activation.jax(dict(activation.defaults))
    except Exception as error:  # code: whatever it raises, one line
        raise RegistryError(f"activation {activation.name!r}: jax raised {type(error).__name__} when called with the "
                            f"parameters ({hint})") from None
    if not callable(function):
        raise RegistryError(f"activation {activation.name!r}: jax gives {type(function).__name__}, not a function "
                            f"({hint})")
    _check_jax_matches_phi(activation, function)


JAX_POINTS = (-2.9, -1.7, -0.6, 0.05, 0.4, 1.3, 2.2, 3.1)
"""Where a registered ``jax`` function is compared with ``phi``: not at 0, where a step's value is a convention
(sympy's Heaviside(0) = 1/2, jnp.heaviside(0, 0.) = 0) that changes no kernel."""
JAX_AGREEMENT = 1e-5
"""|jax(t) - phi(t)| <= 1e-5 max(1, |phi(t)|): float32 round-off (JAX's default precision before numerics turns on
float64) is 1e-7; jax.nn.gelu's default tanh form, which is not x Phi(x), is off by up to 2e-4 at these points."""


def _check_jax_matches_phi(activation: Activation, function: Callable) -> None:
    """RegistryError when ``jax`` computes another function than ``phi`` at the default parameters (a trial's
    jax=lambda p: jnp.tanh beside a GELU phi failed K1 (b) at 1.13, with no hint that the two disagreed). A function
    that refuses plain floats is not compared here (theory builds no arrays)."""
    phi = activation.expression(dict(activation.defaults))
    for point in JAX_POINTS:
        try:
            value = complex(function(point))
        except Exception:  # an array-only function, or one that raises: left to K1 (b)
            return
        expected = float(phi.subs(x, sp.Float(point)).evalf())
        if value.imag or not abs(value.real - expected) <= JAX_AGREEMENT * max(1.0, abs(expected)):
            raise RegistryError(f"activation {activation.name!r}: jax computes another function than phi: at x = "
                                f"{point:g} jax gives {value.real if not value.imag else value:.6g}, phi "
                                f"{expected:.6g} (jax.nn.gelu, for one, is the "
                                "tanh approximation unless approximate=False)")


def _check_dual_symbols(activation: Activation) -> None:
    """RegistryError unless ``dual`` at the default parameters is a pair of sympy expressions in theory.dual's
    a_var, b_var, c_var alone: a pair in the user's own symbols("a b c") was accepted and failed later, inside K1,
    as "NameError: name 'c' is not defined"."""
    from theory.dual import a_var, b_var, c_var

    try:
        pair = tuple(activation.dual(dict(activation.defaults)))
    except Exception as error:  # dual is code: whatever it raises, say so in one line
        raise RegistryError(f"activation {activation.name!r}: dual raised {type(error).__name__}: {error} at the "
                            "default parameters") from None
    try:
        expressions = [sp.sympify(value, strict=True) for value in pair]  # sympy or numbers: text is never parsed
    except sp.SympifyError:
        raise RegistryError(f"activation {activation.name!r}: dual gives {pair!r}, not sympy expressions") from None
    if len(expressions) != 2:
        raise RegistryError(f"activation {activation.name!r}: dual gives {len(expressions)} expressions, not the pair "
                            "(E[phi(u) phi(v)], E[phi'(u) phi'(v)])")
    # a Symbol("c") of the user's is another symbol than c_var (whose assumptions differ), though printed alike
    foreign = sorted({symbol.name for value in expressions for symbol in value.free_symbols
                      if symbol not in (a_var, b_var, c_var)})
    if foreign:
        raise RegistryError(f"activation {activation.name!r}: its dual uses symbols other than theory.dual's variances "
                            f"and covariance ({', '.join(foreign)}); build it from theory.dual.a_var, b_var and c_var")


def _add(activation: Activation) -> Activation:
    _REGISTRY[activation.name] = activation
    _changed()
    return activation


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)
    _changed()


@contextlib.contextmanager
def registered(activation: Activation) -> Iterator[Activation]:
    """Register ``activation`` for the duration of a ``with`` block (tests)."""
    previous = _REGISTRY.get(activation.name)
    register(activation, replace=True)
    try:
        yield activation
    finally:
        if previous is None:
            unregister(activation.name)
        else:
            register(previous, replace=True)


def on_change(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the registry changes (caches keyed by activation names clear themselves)."""
    _listeners.append(callback)


def _changed() -> None:
    for callback in _listeners:
        callback()


def get(name: str) -> Activation:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RegistryError(f"unknown activation {name!r}; known: {', '.join(_REGISTRY)}") from None


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def all_activations() -> tuple[Activation, ...]:
    return tuple(_REGISTRY.values())


SURROGATE_SIDES = ("x = u > 0", "x = -u < 0", "x = 0")
"""Where :func:`surrogate_limits` takes the limit: u a positive symbol, so each side is every x of that sign."""


def surrogate_limits(name: str, params: Params) -> tuple[sp.Expr, ...]:
    """lim_{beta -> oo} (surrogate - phi) on each of :data:`SURROGATE_SIDES`, exactly (sympy): all 0 when the
    attack's smooth stand-in tends to phi, which is what lets a loss minimized with it stand for phi's (Loo et al.
    2023, Sec. 4). For abrelu it is (a_+ - a_-) log(1 + exp(-beta |x|)) / beta -> 0."""
    activation = get(name)
    surrogate = activation.surrogate_expression(params)
    if surrogate is None:
        raise RegistryError(f"{name} has no surrogate")
    u = sp.Symbol("u", positive=True)
    gap = (surrogate - activation.expression(params)).rewrite(sp.log)
    return tuple(sp.limit(sp.simplify(gap.subs(x, side)), beta, sp.oo) for side in (u, -u, sp.Integer(0)))


def exact(value) -> sp.Expr:
    """A numeric parameter as an exact sympy number (rationals for floats), so certificates stay exact."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.nsimplify(value, rational=True) if math.isfinite(value) else sp.Float(value)


# ------------------------------------------------------------------------------------------------------------
# The built-in entries
# ------------------------------------------------------------------------------------------------------------

def _abrelu_phi(neg, pos) -> sp.Expr:
    return exact(neg) * sp.Min(x, 0) + exact(pos) * sp.Max(x, 0)


def _abrelu_dual(neg, pos) -> tuple[sp.Expr, sp.Expr]:
    """phi = a_- min(x, 0) + a_+ max(x, 0) = a_- x + (a_+ - a_-) relu(x):
    value (a_+ - a_-)^2 relu-kernel + a_+ a_- c, derivative (a_+ - a_-)^2 step-kernel + a_+ a_-."""
    from theory.dual import c_var, relu_kernel, step_kernel

    neg, pos = exact(neg), exact(pos)
    return ((pos - neg) ** 2 * relu_kernel() + pos * neg * c_var,
            (pos - neg) ** 2 * step_kernel() + pos * neg)


def _abrelu_surrogate(neg, pos) -> sp.Expr:
    """a_+ softplus(beta x) / beta - a_- softplus(-beta x) / beta -> phi as beta -> inf."""
    return (exact(pos) * softplus(beta * x) - exact(neg) * softplus(-beta * x)) / beta


def _erf_dual(p: Params) -> tuple[sp.Expr, sp.Expr]:
    """Williams 1997: (2 / pi) arcsin(2c / sqrt((1 + 2a)(1 + 2b))), derivative (4 / pi) / sqrt((1+2a)(1+2b) - 4c^2)."""
    from theory.dual import a_var, b_var, c_var

    det = (1 + 2 * a_var) * (1 + 2 * b_var)
    return 2 / sp.pi * sp.asin(2 * c_var / sp.sqrt(det)), 4 / sp.pi / sp.sqrt(det - 4 * c_var**2)


def _poly_phi(p: Params) -> sp.Expr:
    return sum((exact(ck) * x**i for i, ck in enumerate(p["coeffs"])), sp.Integer(0))


def _poly_check(p: Params) -> str | None:
    from theory.expressions import zero_function_problem  # the rule expr: formulas and registry entries obey

    phi = _poly_phi(p)
    return zero_function_problem(phi, str(phi))


def _expression_phi(p: Params) -> sp.Expr:
    from theory.expressions import parse_activation  # whitelist parser: untrusted text is data; activation rules

    return parse_activation(str(p["phi"]).strip())


BUILTIN = (
    Activation("relu", phi=lambda p: sp.Max(x, 0), dual=lambda p: _abrelu_dual(0, 1),
               surrogate=lambda p: _abrelu_surrogate(0, 1), stax=("Relu", lambda p: ()),
               piecewise_linear=True, homogeneous_degree=1, summary="max(x, 0)"),
    Activation("erf", phi=lambda p: sp.erf(x), dual=_erf_dual, stax=("Erf", lambda p: ()), certify_diagonal=False,
               summary="erf(x)"),
    Activation("identity", phi=lambda p: x, stax=("Identity", lambda p: ()), homogeneous_degree=1, summary="x"),
    Activation("leaky_relu", phi=lambda p: _abrelu_phi(p["alpha"], 1), parameters={"alpha": "float"},
               defaults={"alpha": 0.1}, dual=lambda p: _abrelu_dual(p["alpha"], 1),
               surrogate=lambda p: _abrelu_surrogate(p["alpha"], 1),
               stax=("LeakyRelu", lambda p: (p["alpha"],)), piecewise_linear=True, homogeneous_degree=1,
               summary="alpha min(x, 0) + max(x, 0)"),
    Activation("abrelu", phi=lambda p: _abrelu_phi(p["a"], p["b"]), parameters={"a": "float", "b": "float"},
               defaults={"a": -0.5, "b": 1.0}, dual=lambda p: _abrelu_dual(p["a"], p["b"]),
               surrogate=lambda p: _abrelu_surrogate(p["a"], p["b"]),
               stax=("ABRelu", lambda p: (p["a"], p["b"])), piecewise_linear=True, homogeneous_degree=1,
               summary="a min(x, 0) + b max(x, 0)"),
    Activation("monomial", phi=lambda p: x ** int(p["k"]), parameters={"k": "int"}, defaults={"k": 2},
               stax=("Monomial", lambda p: (int(p["k"]),)), example="k=3", summary="x**k",
               check=lambda p: None if 1 <= int(p["k"]) <= MAX_MONOMIAL_DEGREE else
               f"k must be an integer from 1 to {MAX_MONOMIAL_DEGREE} (k = 0 is a constant, whose kernels are rank "
               f"one; neural-tangents' Monomial layer, which the numerics use, takes no degree above "
               f"{MAX_MONOMIAL_DEGREE}), got {p['k']}"),
    Activation("poly", phi=_poly_phi, parameters={"coeffs": "floats"},
               stax=("Polynomial", lambda p: (tuple(p["coeffs"]),)), example="coeffs=0.5,1,0.25",
               summary="sum_i c_i x**i", check=_poly_check),
    Activation("expr", phi=_expression_phi, parameters={"phi": "expression"}, example="phi=tanh(x)",
               summary="a formula in x"),
)

for _entry in BUILTIN:  # written and checked here (tests/test_activation_registry.py runs check_entry on each)
    _add(_entry)


def only_built_in() -> bool:
    """Whether the registry holds exactly :data:`BUILTIN` (what a fresh process holds; proofs-check run --jobs)."""
    return len(_REGISTRY) == len(BUILTIN) and all(_REGISTRY.get(entry.name) is entry for entry in BUILTIN)
