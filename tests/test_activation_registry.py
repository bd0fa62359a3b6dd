"""The activation registry: a new activation is one entry, registered from outside the package, and K1 checks it."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
import sympy as sp

from documentation import documentation_text, section
from proofs_check.cli import main
from theory import activations
from theory.activations import Activation, RegistryError, registered, x
from theory.architecture import SpecError, parse_spec

SOFTPLUS = Activation(name="softplus", phi=lambda p: sp.log(1 + sp.exp(x)), summary="log(1 + exp(x))")
"""The "Extending" recipe (docs/extending.md): no closed form (quadrature), no stax layer (ElementwiseNumerical),
smooth."""


def test_unknown_until_registered():
    with pytest.raises(SpecError, match="unknown activation 'softplus'"):
        parse_spec("softplus:2")
    with registered(SOFTPLUS):
        assert parse_spec("softplus:2").spec == "softplus:2"
    with pytest.raises(SpecError, match="unknown activation 'softplus'") as refusal:
        parse_spec("softplus:2")
    # a model saved by a process that registered it, read in a shell: the line says where the name went (a trial)
    assert "registered by your own code, theory.activations.register, must be registered in this process" in \
        str(refusal.value)


def _readme_recipe() -> str:
    (code,) = re.findall(r"```python\n(.*?)```", section("Activations"), flags=re.S)
    return code


def test_readme_recipe_passes_k1_from_the_command_line(tmp_path, capsys):
    """The "Extending" recipe (docs/extending.md, "Activations"), run as written from this module (not the package),
    registers softplus; then K1 (a) quadrature, (b) neural-tangents, (c) rate and (d) strict PD pass on softplus:2."""
    assert "softplus" not in activations.names()
    try:
        exec(_readme_recipe(), {})  # the documentation's own code block, verbatim
        assert activations.get("softplus").polynomial_degree({}) is None
        status = main(["run", "K1", "--arch", "softplus:2", "--out", str(tmp_path)])
        out = capsys.readouterr().out
        assert status == 0, out
        report = (tmp_path / "report.md").read_text()
    finally:
        activations.unregister("softplus")
    assert parse_spec("expr:2:phi=log(1+exp(x))").activation == "expr"  # README's no-code route to the same phi
    for step in ("vs scipy quadrature", "quadrature architecture, generic and edge points",
                 "slope of relative NTK error", "lambda_min / lambda_max"):
        assert step in report, step
    assert "softplus" in report


def test_readme_and_the_code_give_monomials_the_degrees_the_spec_rules_accept():
    """README's spec table said k runs "0 to 5" (and MAX_MONOMIAL_DEGREE's docstring 0 to it) while k = 0 is
    refused: the documented range is the one parse_spec accepts."""
    def accepted(k: int) -> bool:
        try:
            parse_spec(f"monomial:2:k={k}")
        except SpecError:
            return False
        return True

    degrees = [k for k in range(-2, activations.MAX_MONOMIAL_DEGREE + 3) if accepted(k)]
    assert degrees == list(range(degrees[0], degrees[-1] + 1)) and degrees[-1] == activations.MAX_MONOMIAL_DEGREE
    row = next(line for line in documentation_text().splitlines() if line.startswith("| `k` | monomial"))
    assert f"({degrees[0]} to {degrees[-1]}" in row, row
    source = Path(activations.__file__).read_text()
    docstring = source[source.index("MAX_MONOMIAL_DEGREE = "):].split('"""')[1]
    assert f"k runs from {degrees[0]} to this" in docstring, docstring


def test_traits_come_from_the_entries():
    assert activations.get("relu").piecewise_linear and activations.get("relu").homogeneous_degree == 1
    assert activations.get("poly").polynomial_degree({"coeffs": (0.5, 1.0, 0.25)}) == 2
    assert activations.get("monomial").polynomial_degree({"k": 3}) == 3
    assert activations.get("erf").polynomial_degree({}) is None
    assert activations.get("expr").polynomial_degree({"phi": "x**3 - x"}) == 3
    assert activations.get("expr").polynomial_degree({"phi": "tanh(x)"}) is None


def test_surrogate_tends_to_the_activation():
    """softplus(beta x) / beta -> relu(x) as beta grows: the surrogate differs by at most log(2) / beta."""
    surrogate = activations.get("abrelu").surrogate_expression({"a": -0.5, "b": 1.0})
    phi = activations.get("abrelu").expression({"a": -0.5, "b": 1.0})
    for point in (-1.3, 0.0, 0.7):
        gap = abs(float((surrogate - phi).subs({x: point, activations.beta: 200}).rewrite(sp.log).evalf()))
        assert gap <= 1.5 * float(sp.log(2)) / 200 + 1e-15


def test_duplicate_and_bad_names_are_refused():
    with pytest.raises(RegistryError, match="already registered"):
        activations.register(Activation(name="relu", phi=lambda p: x))
    with pytest.raises(RegistryError, match="lower-case identifier"):
        Activation(name="Soft Plus", phi=lambda p: x)


def test_every_builtin_entry_passes_the_rules_user_entries_get():
    for entry in activations.BUILTIN:
        activations.check_entry(entry)


@pytest.mark.parametrize("name, phi, words", [
    ("gap", lambda p: activations.x, "is a layer keyword of the chain grammar"),
    ("conv3", lambda p: activations.x, "is a layer keyword of the chain grammar"),
    ("logx", lambda p: sp.log(activations.x), "phi=log(x) is not real and finite for x <= 0"),
    ("withy", lambda p: sp.Symbol("y") * activations.x, "has symbol(s) y besides x"),
    ("infinite", lambda p: sp.Integer(1) / 0, "is not real and finite"),
    ("kinked", lambda p: sp.Abs(activations.x), "is not smooth"),
    ("gaussian_growth", lambda p: sp.exp(activations.x ** 2), "grows too fast"),
    ("zero", lambda p: sp.Integer(0), "is the zero function"),
    ("constant", lambda p: sp.Float(1.0), "is constant: its kernels are constant"),
    # sp.Symbol("x") is not the variable (no real=True): "has symbol(s) x besides x" said nothing useful
    ("otherx", lambda p: sp.tanh(sp.Symbol("x")), "phi uses its own Symbol('x'); build it from theory.activations.x"),
])
def test_register_refuses_entries_no_spec_could_use(name, phi, words):
    """Such entries were accepted and failed later: a keyword name could never be parsed, and phi crashed the
    numerics (LinAlgError, TypeError, ZeroDivisionError) only when a network was trained."""
    with pytest.raises(activations.RegistryError, match=re.escape(words)):
        activations.register(activations.Activation(name=name, phi=phi))
    assert name not in activations.names()


def test_a_default_out_of_the_parameter_range_is_refused_at_registration():
    """defaults={"g": 1e9} was registered, then every spec naming the entry was refused over a value no one typed."""
    entry = activations.Activation(name="bigdef", phi=lambda p: sp.tanh(p["g"] * activations.x),
                                   parameters={"g": "float"}, defaults={"g": 1e9})
    with pytest.raises(activations.RegistryError, match=re.escape("activation 'bigdef': default g=1e+09: every number "
                                                                  "of an activation's parameters must be from -1000")):
        activations.register(entry)
    assert "bigdef" not in activations.names()


def test_parameter_values_in_a_spec_obey_the_rules_register_asks_of_the_defaults():
    """A parameter without a default is checked where a spec gives it: g=0 makes phi zero (ZeroDivisionError after
    training before), and exp(g x^2) at g=1 grows as fast as the expr: formula exp(x**2), which is refused."""
    from theory.architecture import SpecError

    scaled = activations.Activation(name="scaled", phi=lambda p: p["g"] * sp.tanh(activations.x),
                                    parameters={"g": "float"})
    gauss = activations.Activation(name="gauss", phi=lambda p: sp.exp(p["g"] * activations.x ** 2),
                                   parameters={"g": "float"})
    with activations.registered(scaled), activations.registered(gauss):
        assert parse_spec("scaled:2:g=0.5").spec == "scaled:2:g=0.5"
        with pytest.raises(SpecError, match="activation 'scaled': phi=0 is the zero function"):
            parse_spec("scaled:2:g=0")
        with pytest.raises(SpecError, match=re.escape("activation 'gauss': phi=exp(1.0*x**2) grows too fast")):
            parse_spec("gauss:1:g=1")
        assert parse_spec("gauss:1:g=-1").spec == "gauss:1:g=-1"


@pytest.mark.parametrize("entry, words", [
    (dict(phi=lambda p: activations.x * p["G"], parameters={"G": "float"}, defaults={"G": 1.0}),
     "parameter name 'G' must be a lower-case identifier"),  # specs are case-blind: G=2 would read as g
    (dict(phi=lambda p: activations.x * p["missing"]), "phi raised KeyError: 'missing' at the default parameters"),
    (dict(phi=lambda p: activations.x, defaults={"g": 1.0}), "default for 'g', which is not among its parameters"),
    # the user's own symbols("a b c") print like theory.dual's but are other symbols: K1 then failed with
    # "NameError: name 'c' is not defined"
    (dict(phi=lambda p: sp.sin(activations.x), dual=lambda p: (sp.Symbol("c"), sp.Integer(1))),
     "its dual uses symbols other than theory.dual's variances and covariance (c); build it from theory.dual.a_var"),
    (dict(phi=lambda p: sp.sin(activations.x), dual=lambda p: (sp.Integer(1),)), "dual gives 1 expressions, not the pair"),
    (dict(phi=lambda p: sp.sin(activations.x), dual=lambda p: ("__import__('os')", 1)),  # text is never parsed
     "dual gives (\"__import__('os')\", 1), not sympy expressions"),
    # the function itself, not a factory: every network raised "tanh requires ndarray ... got <class 'dict'>" (trial)
    (dict(phi=lambda p: sp.tanh(activations.x), jax=lambda z: z + 1), "jax raised TypeError when called with the "
                                                                      "parameters (jax must map the parameters"),
    (dict(phi=lambda p: sp.tanh(activations.x), jax=lambda p: 3), "jax gives int, not a function"),
    # a jax function that is not phi failed K1 (b) at 1.13 with no word on why (a trial: jnp.tanh beside a GELU phi);
    # jax.nn.gelu's default is the tanh approximation, 2e-4 away from x Phi(x), which K1 (b) caught by a factor 2.4
    (dict(phi=lambda p: activations.x * (1 + sp.erf(activations.x / sp.sqrt(2))) / 2, jax=lambda p: jnp.tanh),
     "jax computes another function than phi: at x = -2.9 jax gives -0.99396"),
    (dict(phi=lambda p: activations.x * (1 + sp.erf(activations.x / sp.sqrt(2))) / 2, jax=lambda p: jax.nn.gelu),
     "jax computes another function than phi: at x = -2.9 jax gives -0.00496"),
    (dict(phi=lambda p: sp.tanh(activations.x), jax=lambda p: lambda z: jnp.tanh(z) + 1j * z),  # complex: not phi
     "jax computes another function than phi: at x = -2.9 jax gives -0.99396"),
    # text: was "SympifyError: 'log(1+exp(x))'" (a trial)
    (dict(phi=lambda p: "log(1+exp(x))"), "phi gives 'log(1+exp(x))', not a sympy expression (text is never parsed)"),
])
def test_register_says_what_is_wrong_with_code_in_one_line(entry, words):
    """A phi that raises was a raw KeyError; a default for no parameter was accepted silently."""
    with pytest.raises(activations.RegistryError, match=re.escape(words)):
        activations.register(activations.Activation(name="rough", **entry))
    assert "rough" not in activations.names()


def test_register_refuses_a_parameter_named_like_a_spec_option():
    """``swp:2:sw=3`` would set sigma_w and leave the parameter at its default: the spec could not round-trip."""
    with pytest.raises(activations.RegistryError, match="parameter name 'sw' is a spec option"):
        activations.register(activations.Activation(name="swp", phi=lambda p: activations.x * p["sw"],
                                                     parameters={"sw": "float"}, defaults={"sw": 1.0}))


@pytest.mark.parametrize("name, phi, extra", [
    ("sinc_like", lambda p: sp.sinc(activations.x), {}),  # smooth and bounded; sympy cannot decide rule 1
    ("gelu_exact", lambda p: activations.x * (1 + sp.erf(activations.x / sp.sqrt(2))) / 2,
     {"jax": lambda p: lambda z: jax.nn.gelu(z, approximate=False)}),  # the same function as phi
    ("sign_by_stax", lambda p: sp.sign(activations.x), {"stax": ("Sign", lambda p: ())}),  # NT's layer, no quadrature
])
def test_register_accepts_entries_the_rules_cannot_refuse(name, phi, extra):
    """Code is trusted to be what it says where sympy cannot decide a rule, and smoothness matters only where the
    kernel is integrated by quadrature (no dual, no neural-tangents layer): the review found both refused."""
    try:
        activations.register(activations.Activation(name=name, phi=phi, **extra))
        assert name in activations.names()
    finally:
        activations.unregister(name)


def test_an_entry_the_math_module_cannot_evaluate_is_not_refused_by_the_variance_path():
    """An entry written with the registry's own sympy softplus (no closed form, no stax layer) cannot be evaluated in
    plain floats: the variance path does not know its variances and does not refuse it (it was refused as
    'overflows float64' at variance 1)."""
    import math

    from theory.architecture import variance_path

    entry = activations.Activation(name="own_softplus", phi=lambda p: activations.softplus(activations.x))
    with activations.registered(entry):
        arch = parse_spec("own_softplus:2")
        (layer, variance, change), *_ = variance_path(arch.layers)
        assert variance == 1.0 and math.isnan(change)  # unknown, not an overflow


def test_a_phi_undefined_at_a_node_is_refused_for_that_not_for_growth():
    """sinc(x) = sin(x)/x is registered (smooth, bounded) but is 0/0 at x = 0 in plain floats, a node of the rule: its
    specs were refused as "overflows float64 ... use a slower-growing phi" (a trial: wrong advice for a bounded phi)."""
    with registered(Activation(name="sinc_like", phi=lambda p: sp.sinc(x))):
        with pytest.raises(SpecError) as refusal:
            parse_spec("sinc_like:1")
    assert "is not finite in float64" in str(refusal.value) and "undefined at one of the rule's nodes" in str(refusal.value)
    assert "slower-growing" not in str(refusal.value)
