"""The one parser for expressions written by users or read from files: a whitelist, never ``eval``.

``sympy.sympify`` calls Python's ``eval``: a model file whose stored activation is
``__import__('os').system(...)`` would run that command when loaded. :func:`parse_expression` instead
parses the text with Python's ``ast`` module (which only builds a syntax tree, it runs nothing) and
translates it node by node into sympy; every node outside the grammar below is rejected with a
:class:`~theory.architecture.SpecError` that names the offending token.

Grammar (whitespace free)::

    expr   := number | x | CONSTANT | expr OP expr | -expr | +expr | FUNCTION(expr, ...) | (expr)
    OP     := + | - | * | / | **
    number := an int or float literal (no complex, no bool), taken exactly as a decimal (0.1 = 1/10)

``FUNCTIONS`` and ``CONSTANTS`` below are the only names (besides ``x``); there is no attribute access,
subscript, keyword argument, comparison, lambda, string or any other call. Limits keep a hostile text
from costing time or memory: at most ``MAX_LENGTH`` characters and ``MAX_DEPTH`` levels of nesting,
exponents that are constants of magnitude at most ``MAX_EXPONENT``, constant powers whose value
stays below 10**``MAX_DIGITS``, and polynomials of degree at most ``MAX_DEGREE``. The result must be real-valued and finite where it is constant (no
``zoo``, ``nan``, ``I``).

Example::

    parse_expression("tanh(x) + 0.1*x**2")     # tanh(x) + x**2/10
    parse_expression("__import__('os')")       # SpecError: name '__import__' is not allowed ...
"""

from __future__ import annotations

import ast
import functools
import math
import sys
from typing import Callable, Mapping

import sympy as sp

from theory.architecture import SpecError

VARIABLE = sp.Symbol("x", real=True)
"""The one free symbol of an activation expression (equal to :data:`theory.dual.x_symbol`)."""
UNDECIDED = "cannot establish"
"""How a rule's message starts when sympy could not decide it (a formula is refused; a registry entry is not)."""

FUNCTIONS: Mapping[str, tuple[Callable[..., sp.Expr], int, int | None]] = {
    # name: (sympy function, least and most number of arguments; None = any number)
    "exp": (sp.exp, 1, 1),
    "log": (sp.log, 1, 1),
    "sqrt": (sp.sqrt, 1, 1),
    "sin": (sp.sin, 1, 1),
    "cos": (sp.cos, 1, 1),
    "tan": (sp.tan, 1, 1),
    "sinh": (sp.sinh, 1, 1),
    "cosh": (sp.cosh, 1, 1),
    "tanh": (sp.tanh, 1, 1),
    "atan": (sp.atan, 1, 1),
    "asinh": (sp.asinh, 1, 1),
    "erf": (sp.erf, 1, 1),
    "erfc": (sp.erfc, 1, 1),
    "abs": (sp.Abs, 1, 1),
    "Abs": (sp.Abs, 1, 1),
    "sign": (sp.sign, 1, 1),
    "Heaviside": (sp.Heaviside, 1, 2),
    "Max": (sp.Max, 2, None),
    "Min": (sp.Min, 2, None),
}
"""The functions an expression may call."""

CONSTANTS: Mapping[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}
"""Named constants an expression may use."""

MAX_LENGTH = 256
"""Longest accepted text, in characters."""
MAX_DEPTH = 64
"""Deepest accepted nesting of syntax-tree nodes (operations, calls, operands)."""
MAX_EXPONENT = 64
"""Largest accepted |exponent| in ``a ** b`` (the exponent must be a constant)."""
MAX_DEGREE = 16
"""Highest accepted degree of a polynomial expression (its dual kernel is a double sum of Gaussian moments)."""
MAX_DIGITS = 300
"""Constant powers must stay below 10**MAX_DIGITS in magnitude (sympy would compute them exactly)."""

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_UNARY = {ast.USub: "-", ast.UAdd: "+"}


def grammar_summary(*, activation: bool = False) -> str:
    """One line describing what an expression may contain (for help texts and error messages); ``activation``: only
    the functions an activation formula may use (the kinked ones of NOT_SMOOTH parse but are refused there)."""
    names = [name for name, (function, _, _) in FUNCTIONS.items() if not (activation and function in NOT_SMOOTH)]
    return f"x, numbers, + - * / **, {', '.join(CONSTANTS)} and the functions {', '.join(names)}"


def _token(text: str, offset: int | None) -> str:
    """The word or symbol of ``text`` starting at ``offset`` (0-based), for error messages."""
    if offset is None or not 0 <= offset < len(text):
        return text.strip()[:20]
    rest = text[offset:]
    word = ""
    for char in rest:
        if char.isalnum() or char == "_":
            word += char
        else:
            break
    return word or rest[0]


_FORBIDDEN_OPERATORS = {ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitOr: "|", ast.BitAnd: "&",
                        ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.Not: "not"}


def _describe(node: ast.AST, text: str) -> str | None:
    """Why ``node`` (alone, ignoring its children) is outside the grammar, or None when it is allowed.

    Nodes without a position in the text (operators, argument lists) are reported by their parent.
    """
    if not hasattr(node, "col_offset"):
        return None
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        allowed = _OPERATORS if isinstance(node, ast.BinOp) else _UNARY
        if type(node.op) in allowed:
            return None
        symbol = _FORBIDDEN_OPERATORS.get(type(node.op), type(node.op).__name__)
        return f"operator {symbol!r}" + (" (write powers as **)" if symbol == "^" else "")
    if isinstance(node, ast.Constant):
        if type(node.value) in (int, float):
            return None
        return f"literal {ast.get_source_segment(text, node) or repr(node.value)}"
    if isinstance(node, ast.Name):
        if node.id == VARIABLE.name or node.id in CONSTANTS or node.id in FUNCTIONS:
            return None  # a function name used without a call is reported by _build
        return f"name {node.id!r}"
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            return None  # the callee itself (a name, an attribute, a call, ...) is reported
        if node.keywords:
            return f"keyword argument {node.keywords[0].arg or '**'}= in {node.func.id}(...)"
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            return f"starred argument in {node.func.id}(...)"
        return None
    if isinstance(node, ast.Attribute):
        return f"attribute access '.{node.attr}'"
    if isinstance(node, ast.Starred):
        return None  # reported by its call
    kind = {"Compare": "comparison", "BoolOp": "boolean operator", "IfExp": "conditional",
            "JoinedStr": "f-string", "FormattedValue": "f-string"}.get(type(node).__name__, type(node).__name__.lower())
    segment = ast.get_source_segment(text, node) or _token(text, node.col_offset)
    return f"{kind} {segment[:30]!r}"


def _depth(node: ast.AST) -> int:
    children = list(ast.iter_child_nodes(node))
    return 1 + max((_depth(child) for child in children), default=0)


def parse_expression(text: str) -> sp.Expr:
    """Parse ``text`` (an expression in ``x``; module docstring) into a sympy expression, evaluating nothing.

    Raises :class:`~theory.architecture.SpecError` naming the offending token for anything outside the
    whitelist: ``parse_expression("__import__('os').system('ls')")`` -> "name '__import__' is not allowed".
    """
    if not isinstance(text, str):
        raise SpecError(f"an expression must be text, got {type(text).__name__}")
    source = text.strip()
    if not source:
        raise SpecError("empty expression; expected a formula in x, e.g. tanh(x)")
    if len(source) > MAX_LENGTH:
        raise SpecError(f"expression is {len(source)} characters long; at most {MAX_LENGTH} are accepted")
    if not source.isprintable():
        raise SpecError(f"expression {source[:40]!r} contains control characters")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        offset = None if error.offset is None else error.offset - 1
        raise SpecError(f"expression {source!r} is not a formula in x: syntax error at "
                        f"{_token(source, offset)!r}") from None
    except (ValueError, RecursionError, MemoryError):
        raise SpecError(f"expression {source[:40]!r} is not a formula in x") from None
    problems = []
    for index, node in enumerate(ast.walk(tree)):  # breadth first: at one position, inner nodes come later
        problem = _describe(node, source)
        if problem is not None:
            problems.append((getattr(node, "col_offset", 0), -index, problem))
    if problems:
        _, _, problem = min(problems)  # the first offending token of the text (innermost at a tie)
        raise SpecError(f"{problem} is not allowed in expression {source!r}; allowed: {grammar_summary(activation=True)}")
    if _depth(tree) > MAX_DEPTH + 1:
        raise SpecError(f"expression {source[:40]!r} nests deeper than {MAX_DEPTH} levels")
    expr = _build(tree.body, source)
    if not isinstance(expr, sp.Expr):
        raise SpecError(f"expression {source!r} is not a formula in x")
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise SpecError(f"expression {source!r} is not finite (it evaluates to {expr})")
    if expr.has(sp.I):
        raise SpecError(f"expression {source!r} is not real-valued (it contains {sp.I})")
    if expr.is_polynomial(VARIABLE) and _degree_bound(expr) > MAX_DEGREE:
        raise SpecError(f"polynomial expression {source!r} has degree above {MAX_DEGREE}")
    return expr


def _degree_bound(expr: sp.Expr) -> int:
    """An upper bound on the degree in x of a polynomial expression, without expanding it."""
    if expr == VARIABLE:
        return 1
    if expr.is_number:
        return 0
    if isinstance(expr, sp.Add):
        return max(_degree_bound(term) for term in expr.args)
    if isinstance(expr, sp.Mul):
        return sum(_degree_bound(factor) for factor in expr.args)
    if isinstance(expr, sp.Pow):
        return _degree_bound(expr.base) * int(abs(expr.exp))
    return MAX_DEGREE + 1


def _number(value: int | float, source: str) -> sp.Expr:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"number {value!r} in expression {source!r} is not finite")
        return sp.Rational(repr(value))  # the decimal as written, exactly: 0.1 -> 1/10
    if abs(value) >= 10**MAX_DIGITS:
        raise SpecError(f"number in expression {source!r} has more than {MAX_DIGITS} digits")
    return sp.Integer(value)


def _power(base: sp.Expr, exponent: sp.Expr, source: str) -> sp.Expr:
    if base == sp.E:  # E**z is exp(z), which the whitelist allows with any argument
        return FUNCTIONS["exp"][0](exponent)
    if not exponent.is_number:
        raise SpecError(f"exponent {_shown(exponent)} in expression {source!r} must be a constant")
    magnitude = abs(float(exponent))
    if magnitude > MAX_EXPONENT:
        raise SpecError(f"exponent {_shown(exponent)} in expression {source!r} exceeds {MAX_EXPONENT} in magnitude")
    if base.is_number:
        size = abs(float(base))
        if size > 1 and magnitude * math.log10(size) > MAX_DIGITS:
            raise SpecError(f"constant power {_shown(base)}**{_shown(exponent)} in expression {source!r} exceeds "
                            f"10**{MAX_DIGITS}")
    return sp.Pow(base, exponent)


def _build(node: ast.AST, source: str) -> sp.Expr:
    """Translate a node that passed the whitelist (see :func:`_describe`) into sympy; a part without x must be a
    float64 number (:func:`_bounded_constant`)."""
    return _bounded_constant(_build_node(node, source), node, source)


def _shown(value: sp.Expr) -> str:
    """``value`` for a message: as written when short, else to 3 digits (10**300 is not printed in full)."""
    text = str(value)
    return text if len(text) <= 24 else str(sp.N(value, 3))


def _bounded_constant(value: sp.Expr, node: ast.AST, source: str) -> sp.Expr:
    """``value`` unless it is a constant part of the formula beyond float64's range (|c| > 1.8e308, the kernels
    compute in float64) or one that sympy cannot evaluate (measured: exp(1e300*1e300) and x*exp(exp(1e3)) made sympy
    raise decimal.InvalidOperation, tanh(cosh(exp(1e3))) mpmath's OverflowError, a traceback each). Infinite and
    complex constants are named by parse_expression's own checks."""
    if value.free_symbols or value.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        return value
    try:
        too_large = bool(abs(sp.N(value, 15)) > sys.float_info.max)
    except (ArithmeticError, ValueError, TypeError, RecursionError):  # sympy or mpmath overflowed evaluating it
        too_large = True
    if too_large:
        segment = ast.get_source_segment(source, node) or _shown(value)
        raise SpecError(f"constant {segment[:40]} in expression {source!r} is beyond float64's range "
                        f"(|c| <= {sys.float_info.max:.2g})")
    return value


def _build_node(node: ast.AST, source: str) -> sp.Expr:
    if isinstance(node, ast.Constant):
        return _number(node.value, source)
    if isinstance(node, ast.Name):
        if node.id == VARIABLE.name:
            return VARIABLE
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise SpecError(f"{node.id!r} is a function; call it, e.g. {node.id}(x), in expression {source!r}")
    if isinstance(node, ast.UnaryOp):
        operand = _build(node.operand, source)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _build(node.left, source), _build(node.right, source)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise SpecError(f"division by zero in expression {source!r}")
            return left / right
        return _power(left, right, source)
    if isinstance(node, ast.Call):
        name = node.func.id
        function, least, most = FUNCTIONS[name]
        count = len(node.args)
        if count < least or (most is not None and count > most):
            wanted = str(least) if least == most else f"{least} or more" if most is None else f"{least} to {most}"
            raise SpecError(f"{name}() takes {wanted} argument(s), got {count}, in expression {source!r}")
        return function(*(_build(arg, source) for arg in node.args))
    raise SpecError(f"expression {source!r} is not a formula in x")  # unreachable after the whitelist


# ------------------------------------------------------------------------------------------------------------
# Activation formulas: the two rules a formula must satisfy before any work starts
# ------------------------------------------------------------------------------------------------------------

NOT_SMOOTH = (sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min, sp.Piecewise, sp.floor, sp.ceiling, sp.DiracDelta)
"""Functions with a kink or a jump: the Gaussian quadrature of formulas without a closed-form dual (trapezoid
rule, accurate for integrands analytic in a strip) loses its accuracy on them (1-6% on Max(x, 0) and abs(x))."""

SPOT_POINTS = tuple(sp.Rational(p) for p in ("-7/2", "-2", "-1", "-1/3", "0", "1/2", "1", "3"))
"""Rational points where a formula is evaluated exactly, as a second guard beside sympy's domain reasoning."""

_SAME_SIGN = {sp.erf: sp.tanh, sp.erfc: lambda u: 1 - sp.tanh(u)}
"""erf and erfc are real-analytic on every real argument but sympy's continuous_domain does not know them: it is
computed with stand-ins of the same sign pattern (tanh: odd, increasing, zero only at 0; 1 - tanh: positive)."""
_BOUNDED = (sp.sin, sp.cos, sp.tanh, sp.atan, sp.erf, sp.erfc)
_EXPONENTIAL = (sp.exp, sp.sinh, sp.cosh, sp.erfc)


def _continuous_on_reals(expr: sp.Expr) -> sp.Set | None:
    """The real x where ``expr`` is real, finite and continuous (sympy's continuous_domain), None if undecided."""
    for function, stand_in in _SAME_SIGN.items():
        expr = expr.replace(function, stand_in)
    try:
        return sp.calculus.util.continuous_domain(expr, VARIABLE, sp.S.Reals)
    except (NotImplementedError, ValueError, TypeError, RecursionError):
        return None


def _where(excluded: sp.Set) -> str:
    """``for x < 0``, ``at x = 0``, ... (a set of real numbers in words, short)."""
    if isinstance(excluded, sp.FiniteSet):
        text = "at x = " + ", ".join(str(point) for point in excluded.args)
    elif isinstance(excluded, sp.Interval) and excluded.start == -sp.oo:
        text = f"for x {'<' if excluded.right_open else '<='} {excluded.end}"
    elif isinstance(excluded, sp.Interval) and excluded.end == sp.oo:
        text = f"for x {'>' if excluded.left_open else '>='} {excluded.start}"
    else:
        text = f"for x in {excluded}"
    return text if len(text) <= 60 else "at some real x"


def _real_everywhere(expr: sp.Expr, source: str) -> None:
    """Rule 1: phi is real and finite at every real x (sympy's continuous domain, then exact spot values)."""
    problem = f"phi={source} is not real and finite"
    domain = _continuous_on_reals(expr)
    if domain is None:
        raise SpecError(f"{UNDECIDED} that phi={source} is real and finite on every real number: an "
                        f"activation must be defined on every real number")
    if domain != sp.S.Reals:
        raise SpecError(f"{problem} {_where(sp.Complement(sp.S.Reals, domain))}: an activation must be defined "
                        f"on every real number")
    for point in SPOT_POINTS:
        value = sp.N(expr.subs(VARIABLE, point), 30)
        if not (value.is_number and value.is_real and value.is_finite):
            raise SpecError(f"{problem} at x = {point} (it is {sp.N(value, 4)}): an activation must be defined on every "
                            f"real number")


def _closed_form_alternative(expr: sp.Expr) -> str:
    """The registered piecewise-linear activations with a closed-form dual, naming the one equal to ``expr``
    when it is a*min(x, 0) + b*max(x, 0) (checked exactly on x > 0 and x < 0)."""
    from theory import activations

    entries = [entry.name for entry in activations.all_activations() if entry.dual is not None
               and entry.piecewise_linear]
    advice = f"use a registered activation with a closed-form dual ({', '.join(entries)})"
    t = sp.Symbol("t", positive=True)
    slopes = [sp.simplify(expr.subs(VARIABLE, sign * t) / (sign * t)) for sign in (1, -1)]
    if all(slope.is_number and slope.is_real for slope in slopes):
        b, a = (activations.exact(slope) for slope in slopes)
        a, b = (format(float(slope), "g") for slope in (a, b))
        if (a, b) == ("0", "1") and "relu" in entries:
            return advice + "; this formula is relu"
        if b == "1" and "leaky_relu" in entries:
            return advice + f"; this formula is leaky_relu:alpha={a}"
        if "abrelu" in entries:
            return advice + f"; this formula is abrelu:a={a}:b={b}"
    return advice


def _smooth(expr: sp.Expr, source: str, *, derivative_domain: bool) -> None:
    """Rule 2: phi and phi' have no kink or jump (no NOT_SMOOTH function; with ``derivative_domain``, phi' is also
    continuous on the reals)."""
    derivative = sp.diff(expr, VARIABLE)
    found = ([function.__name__ for function in NOT_SMOOTH if expr.has(function)]
             or [f"{function.__name__} in its derivative" for function in NOT_SMOOTH if derivative.has(function)])
    if not found:
        if not derivative_domain:
            return
        domain = _continuous_on_reals(derivative)
        if domain == sp.S.Reals:
            return
        found = ["a point where its derivative is undefined" if domain is None
                 else f"a kink {_where(sp.Complement(sp.S.Reals, domain))}"]
    raise SpecError(f"phi={source} is not smooth (it has {', '.join(found)}): activations without a closed-form "
                    f"dual are integrated by a quadrature that is accurate only for smooth ones; "
                    f"{_closed_form_alternative(expr)}")


def _exponential_argument_is_linear(expr: sp.Expr) -> bool:
    """Structural growth bound: every exp/sinh/cosh/erfc argument is a polynomial of degree <= 1 in x or has x
    only inside bounded functions; then |phi| <= C exp(c |x|) (used when sympy's limit is undecided)."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, _EXPONENTIAL):
            argument = node.args[0]
            bounded = argument.replace(lambda e: isinstance(e, _BOUNDED), lambda e: sp.Integer(1))
            if not (argument.is_polynomial(VARIABLE) and sp.degree(argument, VARIABLE) <= 1) \
                    and bounded.has(VARIABLE):
                return False
        if _reciprocal_of_non_polynomial(node):  # e.g. 1/(1 - erf(x)): grows like x exp(x**2)
            return False
    return True


def _reciprocal_of_non_polynomial(node: sp.Basic) -> bool:
    return (isinstance(node, sp.Pow) and bool(node.exp.is_negative) and node.base.has(VARIABLE)
            and not node.base.is_polynomial(VARIABLE))


def _at_most_polynomial(expr: sp.Expr) -> bool:
    """No exp/sinh/cosh/erfc and no reciprocal of a non-polynomial: phi is built from polynomials, reciprocals of
    polynomials (real roots are refused by rule 1), bounded functions, logs and roots, so it grows at most like a
    polynomial (decided without sympy's limit, which can run for minutes on nested formulas)."""
    return not any(isinstance(node, _EXPONENTIAL) or _reciprocal_of_non_polynomial(node)
                   for node in sp.preorder_traversal(expr))


def _grows_at_most_exponentially(expr: sp.Expr, source: str) -> None:
    """Rule 3: log|phi(x)| / x**2 -> 0 (or below) as x -> +-oo, so E[phi(u)^2] is finite under N(0, q) for every q."""
    problem = (f"phi={source} grows too fast: E[phi(u)^2] under u ~ N(0, q) must be finite for every q, "
               f"so log|phi(x)|/x**2 must tend to 0 or below as x -> +-oo")
    if _at_most_polynomial(expr):
        return
    ratio = sp.log(expr**2) / (2 * VARIABLE**2)
    for end in (sp.oo, -sp.oo):
        try:
            limit = sp.limit(ratio, VARIABLE, end)
        except (NotImplementedError, ValueError, TypeError, RecursionError):
            limit = None
        if isinstance(limit, sp.AccumBounds):
            limit = limit.max
        if limit is not None and limit.is_number and limit.is_extended_real:
            if limit > 0:
                raise SpecError(f"{problem} (it tends to {limit} as x -> {end})")
        elif not _exponential_argument_is_linear(expr):
            raise SpecError(f"{UNDECIDED} that phi={source} grows at most like exp(c|x|): "
                            f"E[phi(u)^2] under u ~ N(0, q) must be finite for every q")


@functools.lru_cache(maxsize=256)
def parse_activation(text: str) -> sp.Expr:
    """Parse an activation formula (:func:`parse_expression`) and check it can be used as phi, raising a one-line
    :class:`~theory.architecture.SpecError` otherwise:

    1. real and finite at every real x (``log(x)``, ``sqrt(x)``, ``1/x``, ``tan(x)`` are refused);
    2. smooth: no Abs, sign, Heaviside, Max, Min, ... in phi or phi', and phi' continuous, since formulas have
       no closed-form dual and their quadrature is accurate only for smooth integrands (the message names the
       registered closed-form activation, e.g. ``Max(x, 0)`` -> relu);
    3. growth at most exp(c|x|): log|phi|/x**2 -> 0 (``exp(x**2)`` is refused: E[phi^2] is infinite for q >= 1/4);
    4. (:func:`check_activation_expression`) not the zero function, |phi| <= 1e16 on [-4, 4], and, unless phi is a
       polynomial, resolved by the kernels' quadrature at unit variance (``tanh(1e300*x)``, ``sqrt(x**2+1e-300)``,
       ``exp(7*x)`` are refused: :data:`QUADRATURE_RESOLUTION`).
    """
    expr = parse_expression(text)
    check_activation_expression(expr, text.strip())
    return expr


SAMPLE_POINTS = tuple(sp.Rational(k, 4) for k in range(-16, 17))
"""Where phi's values are read (x = -4, -3.75, ..., 4, exact rationals, 30 digits) by :func:`zero_function_problem`
and :func:`magnitude_problem`."""
NUMERIC_ZERO = 1e-12
"""phi is numerically zero when |phi(x)| <= NUMERIC_ZERO at every sample point: its kernel (~phi^2 <= 1e-24) is
nothing to train on (sin(x)**2 + cos(x)**2 - 1, which sympy does not simplify to 0, trained to a loss of 0.028 and
printed a leakage table; abrelu with a = b = 0 divided by zero after training)."""
MAGNITUDE_LIMIT = 1e16
"""|phi(x)| at the sample points stays below this: the kernels square phi layer after layer (measured: atan(x)*1e15,
up to 1.3e15 there, trains and attacks at depth 1; at depth 2 its second layer sees variance 4.5e29 and
theory.architecture's variance path refuses it; atan(x)*1e50 crashed in training)."""


QUADRATURE_NODES = 129
"""Nodes per axis of the trapezoid rule on [-QUADRATURE_RANGE, QUADRATURE_RANGE] (in units of the standard
deviation) with which numerics.kernels integrates activations without a closed-form dual kernel.

For an integrand analytic in the strip |Im z| < w the trapezoid rule's error decays like exp(-2 pi w / h)
(Trefethen & Weideman, SIAM Review 2014), far faster than Gauss-Hermite for activations with complex
poles: tanh(sqrt(a) z) has w = pi / (2 sqrt(a)), so h = 18/128 gives ~1e-17 at a = 3 and ~1e-10 at a = 10."""
QUADRATURE_RANGE = 9.0
"""The mass of N(0, 1) beyond |z| = 9 is 2e-19."""
QUADRATURE_RESOLUTION = 1e-6
"""At unit variance the kernels' quadrature of E[phi(u)^2] and E[phi'(u)^2] (phi not a polynomial, no closed-form
dual) must change by at most this (relative) when its step is halved or its range widened (:data:`TAIL_EXTENSION`),
an estimate of its error (measured: within 2x of the error against scipy for tanh(c*x) and sqrt(x**2+e); equal to
the exact error, to 0.1%, where phi's mass lies past the range: exp(c*x), sinh(x) at variance 3.19). Kernels this
close are 100x inside claim K1's tolerance against neural-tangents (1e-4); K1's 1e-9 check against scipy still
reports the formulas in between (tanh(3*x): 4e-7; tanh(x) 1e-16, tanh(tanh(tanh(tanh(tanh(x))))) 7e-9). Refused,
measured: sqrt(x**2+1e-300) 3e-2 (K1 found its kernels 5.6e-2 off, not even positive definite), tanh(1e300*x)
overflows (phi'(0) = 1e300: every K1 step raised OverflowError), exp(7*x) 1 (the mass of E[phi(u)^2] sits at u = 14,
beyond the rule's range: its kernel came out 2.5e6 times too small), tanh(4*x) 6e-5, exp(2.3*x) 4.6e-6 (exp(2.1*x),
6.6e-7, passes)."""


TAIL_EXTENSION = 3.0
"""The error estimate also sums the rule over [-QUADRATURE_RANGE - TAIL_EXTENSION, QUADRATURE_RANGE +
TAIL_EXTENSION] (mass of N(0, 1) beyond 12: 4e-33): the mass the kernels' range leaves out, which halving the step
cannot see (measured: exp(2.3*x) halving 7.4e-7, widening 4.6e-6, error 4.6e-6 against the exact exp(2 a^2)).
The wider sum reads 2 x 43 more nodes of phi and of phi' (plain floats, once per formula and layer variance)."""


ALIASING_FREQUENCY = 2 * math.pi * (QUADRATURE_NODES - 1) / (2 * QUADRATURE_RANGE)
"""2 pi / h for the kernels' step h (44.7): by Poisson summation the trapezoid rule reads a component e^{i w z} of
its integrand as if it were at w - 2 pi m / h, so a frequency near 2 pi / h lands on 0 and is counted as a mean.
The 2-D rule meets frequencies up to 2 w of phi(sqrt(a) z) (a product of two) and, across the correlations, every
one in between: the step halving of E[phi(u)^2] sees only those that land on 0 exactly."""


FINE_NODES = 2 * QUADRATURE_NODES - 1
"""Nodes of the halved step (same range): the finer rule of every resolution test."""


def _aliasing_estimate(first: Callable[[float], float], third: Callable[[float], float], scale: float) -> float:
    """The kernels' error from frequencies their step cannot resolve: phi(scale z)'s frequency
    w = scale (E[phi3(scale z)^2] / E[phi1(scale z)^2])^(1/4), phi1 and phi3 its first and third derivatives (exact
    for a sinusoid, weighted to the top of the spectrum otherwise), its products' 2 w against
    :data:`ALIASING_FREQUENCY`: 1 at or past it, else the Gaussian weight exp(-(2 pi / h - 2 w)^2 / 2) with which the
    alias lands on 0 (measured for sin(k x) at unit variance: k = 20 gives 1.6e-5, the halving test's own 1.8e-5
    there; k = 50, 100, 1000 gave kernels up to 1 off, a Gram matrix asymmetric by 0.23, while the halving test
    passed them; k = 19 gives 2e-10)."""
    slope = _gaussian_mean_square(lambda z: first(scale * z), FINE_NODES)
    if not slope > 0:  # phi constant (or its slope not finite: the halving test reports that)
        return 0.0
    frequency = scale * (_gaussian_mean_square(lambda z: third(scale * z), FINE_NODES) / slope) ** 0.25
    if not math.isfinite(frequency) or 2 * frequency >= ALIASING_FREQUENCY:
        return 1.0
    return math.exp(-((ALIASING_FREQUENCY - 2 * frequency) ** 2) / 2)


def _gaussian_mean_square(function: Callable[[float], float], nodes: int, extra_steps: int = 0) -> float:
    """E[f(u)^2], u ~ N(0, 1), by the trapezoid rule of numerics.kernels with ``nodes`` nodes on
    [-QUADRATURE_RANGE, QUADRATURE_RANGE], widened by ``extra_steps`` steps at each end (in plain floats: theory/
    uses no numerical library)."""
    step = 2 * QUADRATURE_RANGE / (nodes - 1)
    total = 0.0
    for index in range(-extra_steps, nodes + extra_steps):
        z = -QUADRATURE_RANGE + index * step
        value = float(function(z))
        total += math.exp(-z * z / 2) * value * value
    return total * step / math.sqrt(2 * math.pi)


@functools.lru_cache(maxsize=256)
def _math_functions(expr: sp.Expr) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """phi and phi' in plain floats (the math module), compiled once per formula."""
    return (sp.lambdify(VARIABLE, expr, modules="math"),
            sp.lambdify(VARIABLE, sp.diff(expr, VARIABLE), modules="math"))


@functools.lru_cache(maxsize=256)
def _math_third_derivative(expr: sp.Expr) -> Callable[[float], float]:
    """phi's third derivative in plain floats, for :func:`_aliasing_estimate`."""
    return sp.lambdify(VARIABLE, sp.diff(expr, VARIABLE, 3), modules="math")


def _aliasing(expr: sp.Expr, scale: float) -> float:
    """:func:`_aliasing_estimate` of phi at ``scale``; 0 where the third derivative cannot be evaluated in plain
    floats (nothing known; the halving test reads phi and phi' themselves)."""
    try:
        return _aliasing_estimate(_math_functions(expr)[1], _math_third_derivative(expr), scale)
    except (ArithmeticError, ValueError, TypeError, NameError):
        return 0.0


SMALLER_SCALES = 48
"""Scales sqrt(q) r^-j, j = 1 .. SMALLER_SCALES, r = 10^(1/48) (4.9% apart, down to sqrt(q) / 10), at which the step
halving also runs: the kernels are used at every variance up to a layer's q, and a small fast component (tanh(x) +
sin(60*x)/1000) aliases where k sqrt(q') meets 2 pi / h, below the q checked (a review: kernels 1.7e-2 off, accepted;
halving 1.1e-9 at q = 1, 0.15 at q = 0.555). An alias window is +-8% wide in scale at its first multiple, so steps
of 4.9% cannot step over it."""


@functools.lru_cache(maxsize=1024)
def _smaller_scales_change(expr: sp.Expr, variance: float) -> tuple[float, float]:
    """(the largest step-halving change of E[phi(u)^2] or E[phi'(u)^2] over the :data:`SMALLER_SCALES` scales below
    sqrt(variance), the variance where it is largest); (0, variance) where nothing could be evaluated (the caller's
    own test at ``variance`` reports that)."""
    worst, where = 0.0, variance
    for j in range(1, SMALLER_SCALES + 1):
        scale = math.sqrt(variance) * 10 ** (-j / SMALLER_SCALES)
        for function in _math_functions(expr):
            try:
                _, change = _step_halving(lambda z: function(scale * z))
            except (ArithmeticError, ValueError, TypeError, NameError):
                continue
            if math.isfinite(change) and change > worst:
                worst, where = change, scale**2
    return worst, where


def _halving_change(function: Callable[[float], float], scale: float = 1.0) -> tuple[float, float]:
    """(E[f(scale u)^2], u ~ N(0, 1), at the finer step, the error estimate of :data:`QUADRATURE_RESOLUTION`): the
    larger relative change of the kernels' rule when its step is halved or its range widened by
    :data:`TAIL_EXTENSION`; (inf, inf) where a sum is not finite. Raises what ``function`` raises: ArithmeticError
    or ValueError (overflow, a math domain error), TypeError or NameError (a function the math module lacks)."""
    def scaled(z):
        return function(scale * z)
    extra_steps = math.ceil(TAIL_EXTENSION * (FINE_NODES - 1) / (2 * QUADRATURE_RANGE))
    fine, halving = _step_halving(scaled)
    wide = _gaussian_mean_square(scaled, FINE_NODES, extra_steps)
    if not (math.isfinite(fine) and math.isfinite(halving) and math.isfinite(wide)):
        return math.inf, math.inf
    widening = abs(wide - fine) / wide if wide else 0.0  # relative to the wider sum: the truth where mass lies past
    return fine, max(halving, widening)


def _step_halving(function: Callable[[float], float]) -> tuple[float, float]:
    """(E[f(u)^2] at the halved step, its relative change from the kernels' step), u ~ N(0, 1)."""
    coarse = _gaussian_mean_square(function, QUADRATURE_NODES)
    fine = _gaussian_mean_square(function, FINE_NODES)
    return fine, abs(coarse - fine) / fine if fine else abs(coarse - fine)


def resolution_at(expr: sp.Expr, variance: float) -> tuple[float, float]:
    """(E[phi(u)^2], the relative change of it or of E[phi'(u)^2] when the rule's step is halved, whichever is
    larger) for u ~ N(0, variance), by the kernels' trapezoid rule; (inf, inf) where float64 overflows or a node is
    outside phi's domain; (nan, nan) where phi uses a function the math module lacks (a registry entry's own sympy
    function): nothing is known then."""
    changes = []
    for function in _math_functions(expr):
        try:
            changes.append(_halving_change(function, math.sqrt(variance)))
        except (ArithmeticError, ValueError):
            return math.inf, math.inf
        except (TypeError, NameError):
            return math.nan, math.nan
    (mean_square, phi_change), (_, derivative_change) = changes
    return mean_square, max(phi_change, derivative_change, _aliasing(expr, math.sqrt(variance)),
                            _smaller_scales_change(expr, float(variance))[0])


def beyond(value: float, bound: float) -> str:
    """``value`` in two significant digits, or more where two would read as ``bound`` itself (a refusal printed
    "changes by 1e-06 ... (at most 1e-06)" for tanh(pi*x), 1.0005e-6)."""
    for digits in (2, 3, 4, 6, 17):
        text = f"{value:.{digits}g}"
        if float(text) != bound:
            return text
    return text


def quadrature_problem(expr: sp.Expr, source: str) -> str | None:
    """The problem in words when the kernels' quadrature does not resolve phi or phi' at unit variance (a kink
    sharper than its step, a steep step, growth whose mass lies beyond its range: :data:`QUADRATURE_RESOLUTION`),
    else None. Unlike :func:`resolution_at`, a function the math module lacks is refused (user formulas use only
    the whitelisted functions, which it has)."""
    for name, function in zip(("phi", "phi'"), _math_functions(expr)):
        try:
            _, change = _halving_change(function)
        except (ArithmeticError, ValueError, TypeError, NameError):
            change = math.inf
        if not math.isfinite(change):
            return (f"phi={source} cannot be integrated by the kernels' quadrature: E[{name}(u)^2], u ~ N(0, 1), is "
                    f"not finite in float64 ({name} overflows, or is undefined at one of its nodes)")
        if change > QUADRATURE_RESOLUTION:
            return (f"phi={source} varies too fast for the kernels' quadrature (a near-kink, a steep step or growth "
                    f"beyond its range): E[{name}(u)^2], u ~ N(0, 1), changes by {beyond(change, QUADRATURE_RESOLUTION)} relative when its step is "
                    f"halved or its range widened (at most {QUADRATURE_RESOLUTION:g}); its kernels would be that far off")
    aliasing = _aliasing(expr, 1.0)
    if aliasing > QUADRATURE_RESOLUTION:
        return (f"phi={source} oscillates too fast for the kernels' quadrature: at u ~ N(0, 1) its frequency, twice "
                f"over in a product, comes within reach of the rule's 2 pi / step = {ALIASING_FREQUENCY:.3g} (aliasing "
                f"estimate {beyond(aliasing, QUADRATURE_RESOLUTION)}, at most {QUADRATURE_RESOLUTION:g}); its kernels would be that far off")
    smaller, where = _smaller_scales_change(expr, 1.0)
    if smaller > QUADRATURE_RESOLUTION:
        return (f"phi={source} has a part too fast for the kernels' quadrature at smaller variances, which the "
                f"kernels also meet: at u ~ N(0, {where:.3g}) E[phi(u)^2] or E[phi'(u)^2] changes by "
                f"{beyond(smaller, QUADRATURE_RESOLUTION)} relative when its step is halved (at most "
                f"{QUADRATURE_RESOLUTION:g}); its kernels would be that far off")
    return None


@functools.lru_cache(maxsize=1024)
def _sample_values(expr: sp.Expr) -> tuple[tuple[sp.Rational, sp.Expr], ...]:
    """(x, |phi(x)|) at the :data:`SAMPLE_POINTS` where phi is a finite number (30 digits), read once for both value
    rules."""
    values = []
    for point in SAMPLE_POINTS:
        value = expr.subs(VARIABLE, point).evalf(30)
        if value.is_number and value.is_finite:
            values.append((point, abs(value)))
    return tuple(values)


def zero_function_problem(expr: sp.Expr, source: str) -> str | None:
    """The zero-function rule (its kernel is 0): the problem in words when ``expr`` is 0, symbolically or at every
    sample point (:data:`NUMERIC_ZERO`), else None."""
    if expr.is_zero:
        return f"phi={source} is the zero function: its kernel is 0, nothing to train or attack"
    values = _sample_values(expr)
    if len(values) == len(SAMPLE_POINTS) and max(size for _, size in values) <= NUMERIC_ZERO:
        return (f"phi={source} is numerically the zero function (|phi(x)| <= {NUMERIC_ZERO:g} for x from -4 to 4): its "
                "kernel is 0, nothing to train or attack")
    return None


def magnitude_problem(expr: sp.Expr, source: str) -> str | None:
    """The problem in words when |phi(x)| exceeds :data:`MAGNITUDE_LIMIT` at a sample point, else None."""
    for point, size in _sample_values(expr):
        if size > MAGNITUDE_LIMIT:
            return (f"phi={source} reaches {sp.Float(size, 3)} at x = {float(point):g}: above "
                    f"{MAGNITUDE_LIMIT:g} the kernels, which square phi at every layer, overflow float64")
    return None


def check_activation_expression(expr: sp.Expr, source: str, *, smooth: bool = True, proven_only: bool = False) -> None:
    """The rules of :func:`parse_activation` on a sympy ``phi`` (``source``: how messages show it): x its only
    symbol, not the zero function (its kernel is 0: nothing to train or attack; symbolically or numerically), rule 1,
    rule 2 when ``smooth`` (phi is integrated by quadrature: no closed-form dual or neural-tangents layer), rule 3,
    values within :data:`MAGNITUDE_LIMIT` and, for a formula the kernels integrate by quadrature (smooth, not a
    polynomial), that quadrature resolving phi and phi' (:func:`quadrature_problem`). ``proven_only`` (registry
    entries, written in code): refuse only what is shown to break a rule, not what sympy cannot decide, and leave the
    quadrature rule out. Extreme numbers can make sympy or mpmath fail inside the rules (measured, each a traceback
    before: erfc(1e300*x)+7*x OverflowError, exp(1e297*x+1e15*x) decimal.InvalidOperation, sqrt(1e-300-x**2)/...
    a ValueError in factoring, cos(sinh(1e300*x)) RecursionError): such a formula is refused as undecided."""
    try:
        _activation_rules(expr, source, smooth=smooth, proven_only=proven_only)
    except SpecError:
        raise
    except (ArithmeticError, ValueError, TypeError, RecursionError) as error:
        if not proven_only:
            raise SpecError(f"{UNDECIDED} that phi={source} is a usable activation: sympy's arithmetic failed on its "
                            f"numbers ({type(error).__name__}); keep its constants and the scale of x moderate") from None


def _activation_rules(expr: sp.Expr, source: str, *, smooth: bool, proven_only: bool) -> None:
    """The body of :func:`check_activation_expression`."""
    others = sorted(str(symbol) for symbol in expr.free_symbols if symbol != VARIABLE)
    if others:
        raise SpecError(f"phi={source} has symbol(s) {', '.join(others)} besides x")
    zero = zero_function_problem(expr, source)
    if zero:
        raise SpecError(zero)
    constant = VARIABLE not in expr.free_symbols or sp.diff(expr, VARIABLE).is_zero
    if constant and (not expr.is_number or expr.is_finite):  # an infinite "constant" is refused as not finite below
        raise SpecError(f"phi={source} is constant: its kernels are constant (rank one, phi' = 0), nothing to train "
                        "or attack")
    if smooth:
        _smooth(expr, source, derivative_domain=False)  # names Max, Abs, ... before asking where phi is defined
    try:
        _real_everywhere(expr, source)
        if smooth:
            _smooth(expr, source, derivative_domain=True)
        _grows_at_most_exponentially(expr, source)
    except SpecError as error:
        if not (proven_only and str(error).startswith(UNDECIDED)):
            raise
    too_large = magnitude_problem(expr, source)
    if too_large:
        raise SpecError(too_large)
    # phi is integrated by quadrature (theory.dual: no closed form); trusted code is not held to it: sinc(x), a
    # test's registered entry, evaluates phi'(0) as 0/0 (in JAX too: its derivative kernel would be NaN)
    quadrature = smooth and not proven_only and not expr.is_polynomial(VARIABLE)
    unresolved = quadrature_problem(expr, source) if quadrature else None
    if unresolved:
        raise SpecError(unresolved)
