"""The whitelist expression parser: what it accepts, what it refuses (naming the token), and that it runs nothing."""

import builtins

import pytest
import sympy as sp
from hypothesis import given, strategies as st

from theory.architecture import SpecError
from theory.dual import x_symbol
from theory.expressions import CONSTANTS, FUNCTIONS, MAX_LENGTH, VARIABLE, parse_expression

x = x_symbol


@pytest.mark.parametrize("text, expected", [
    ("tanh(x)", sp.tanh(x)),
    ("x**2/2 + 0.1*x", x**2 / 2 + sp.Rational(1, 10) * x),      # decimals are exact rationals
    ("-x", -x),
    ("+x", x),
    ("Max(x, 0) + Heaviside(x)", sp.Max(x, 0) + sp.Heaviside(x)),
    ("Heaviside(x, 0.5)", sp.Heaviside(x, sp.Rational(1, 2))),
    ("erf(x/sqrt(2))", sp.erf(x / sp.sqrt(2))),
    ("abs(x) - Abs(x)", sp.Integer(0)),
    ("exp(-x**2) * pi * E", sp.exp(-x**2) * sp.pi * sp.E),
    ("Min(x, 1, 2*x)", sp.Min(x, 1, 2 * x)),
    ("((((x))))", x),
    ("x**(1/3)", x ** sp.Rational(1, 3)),
    ("1e-3*x", x / 1000),
])
def test_accepts_formulas_in_x(text, expected):
    assert sp.simplify(parse_expression(text) - expected) == 0


def test_variable_is_the_dual_kernels_x():
    assert VARIABLE == x_symbol and parse_expression("x").free_symbols == {x_symbol}


def test_every_whitelisted_name_parses():
    for name, (_, least, _) in FUNCTIONS.items():
        assert isinstance(parse_expression(f"{name}({', '.join(['x'] * least)})"), sp.Expr), name
    for name in CONSTANTS:
        assert parse_expression(f"{name}*x").free_symbols == {x_symbol}


@pytest.mark.parametrize("text, token", [
    ("__import__('os').system('touch pwned')", "name '__import__'"),
    ("import os", "syntax error at 'import'"),
    ("x.real", "attribute access '.real'"),
    ("sin.__class__", "attribute access '.__class__'"),
    ("open('f')", "name 'open'"),
    ("getattr(x, 'a')", "name 'getattr'"),
    ("y + x", "name 'y'"),
    ("exp", "'exp' is a function"),
    ("x > 0", "comparison 'x > 0'"),
    ("x if x else 0", "conditional"),
    ("lambda: 0", "lambda 'lambda: 0'"),
    ("(lambda: 1)()", "lambda"),
    ("[x]", "list '[x]'"),
    ("x[0]", "subscript 'x[0]'"),
    ("'a'", "literal 'a'"),
    ("True", "literal True"),
    ("1j*x", "literal 1j"),
    ("x^2", "operator '^' (write powers as **)"),
    ("x // 2", "operator '//'"),
    ("tanh(x, y=1)", "keyword argument y="),
    ("exp(x, 2)", "exp() takes 1 argument"),
    ("Max(x)", "Max() takes 2 or more"),
    ("x;x", "syntax error at ';'"),
    ("", "empty expression"),
    ("x" + "+x" * MAX_LENGTH, "characters long"),
    ("9**9**9", "exceeds 64"),
    ("x**x", "must be a constant"),
    ("(x+1)**17", "degree above 16"),
    ("(x**8)**8", "degree above 16"),
    ("1/0", "division by zero"),
    ("log(0)", "not finite"),
    ("sqrt(-1)", "not real-valued"),
    ("1e400*x", "not finite"),
    ("x\n+1", "control characters"),
])
def test_refuses_everything_else_naming_the_token(text, token):
    with pytest.raises(SpecError) as error:
        parse_expression(text)
    message = str(error.value)
    assert token in message and "\n" not in message


def test_parsing_never_evaluates_python(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval or exec called while parsing")

    texts = ["tanh(x) + x**2", "__import__('os').system('x')", "Max(x, 0)", "erf(x)*exp(-x)", "x.real"]
    with monkeypatch.context() as patch:
        for name in ("eval", "exec"):  # ast.parse uses compile(..., ONLY_AST), which runs nothing
            patch.setattr(builtins, name, forbidden)
        for text in texts:
            try:
                parse_expression(text)
            except SpecError:
                pass


def _expression_or_one_spec_error(text: str) -> None:
    try:
        result = parse_expression(text)
    except SpecError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(result, sp.Expr) and result.free_symbols <= {x_symbol}


@given(st.text(max_size=60))
def test_arbitrary_text_is_an_expression_or_one_spec_error(text):
    _expression_or_one_spec_error(text)


@given(st.lists(st.sampled_from(["x", "1", "2.5", "+", "-", "*", "/", "**", "(", ")", "tanh(", "Max(x,",
                                 "exp(", ",", "pi", " "]), max_size=30))
def test_token_soup_is_an_expression_or_one_spec_error(tokens):
    _expression_or_one_spec_error("".join(tokens))
