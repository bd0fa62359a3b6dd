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
import math
from typing import Callable, Mapping

import sympy as sp

from theory.architecture import SpecError

VARIABLE = sp.Symbol("x", real=True)
"""The one free symbol of an activation expression (equal to :data:`theory.dual.x_symbol`)."""

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


def grammar_summary() -> str:
    """One line describing what an expression may contain (for help texts and error messages)."""
    return (f"x, numbers, + - * / **, {', '.join(CONSTANTS)} and the functions "
            f"{', '.join(FUNCTIONS)}")


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
        raise SpecError(f"{problem} is not allowed in expression {source!r}; allowed: {grammar_summary()}")
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
    if not exponent.is_number:
        raise SpecError(f"exponent {exponent} in expression {source!r} must be a constant")
    magnitude = abs(float(exponent))
    if magnitude > MAX_EXPONENT:
        raise SpecError(f"exponent {exponent} in expression {source!r} exceeds {MAX_EXPONENT} in magnitude")
    if base.is_number:
        size = abs(float(base))
        if size > 1 and magnitude * math.log10(size) > MAX_DIGITS:
            raise SpecError(f"constant power {base}**{exponent} in expression {source!r} exceeds "
                            f"10**{MAX_DIGITS}")
    return sp.Pow(base, exponent)


def _build(node: ast.AST, source: str) -> sp.Expr:
    """Translate a node that passed the whitelist (see :func:`_describe`) into sympy."""
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
