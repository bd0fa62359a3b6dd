"""docs/claims.md and README's claims table are generated from the registry and must be up to date."""

import html
import re

import pytest
from markdown_it import MarkdownIt

from proofs_check import cli, docs
from proofs_check.claims import load_claims

OWN_DOCUMENTED = ("D1", "R1", "T1", "T2", "T3")
"""Claims whose modules carry the full documentation (derivation outline, a tolerance reason per step)."""


@pytest.fixture(scope="module")
def registry():
    return load_claims()


def test_generated_files_are_up_to_date(registry):
    stale = [str(path.relative_to(docs.ROOT)) for path, text in docs.expected_files(registry).items()
             if not path.exists() or path.read_text() != text]
    assert not stale, f"stale: {stale}; regenerate with `.venv/bin/python -m proofs_check.docs`"


def test_list_markdown_prints_the_document(registry, capsys):
    assert cli.main(["list", "--markdown"]) == 0
    assert capsys.readouterr().out == docs.claims_markdown(registry)


def test_every_claim_has_its_section_and_table_row(registry):
    text = docs.claims_markdown(registry)
    table = docs.readme_table(registry)
    for claim_id, claim in registry.items():
        assert f'<a id="{claim_id.lower()}"></a>' in text and f"## {claim_id}: " in text
        assert f"docs/claims.md#{claim_id.lower()}" in table
        for _, step in claim.steps():
            assert f"**{docs._paragraph(step.name)}**" in text
    for claim_id in docs.PLANNED:
        assert f"| {claim_id} |" in table


@pytest.mark.parametrize("claim_id", OWN_DOCUMENTED)
def test_documented_claims_say_why_each_tolerance(registry, claim_id):
    claim = registry[claim_id]
    assert claim.derivation and claim.statement and claim.assumptions
    missing = [step.name for _, step in claim.steps() if not step.tolerance.strip()]
    assert not missing, f"{claim_id}: steps without a tolerance reason: {missing}"


def _texts(registry):
    for claim in registry.values():
        yield from (claim.title, claim.statement, claim.derivation, *claim.assumptions, *claim.observations)
        for _, step in claim.steps():
            yield from (step.name, step.description, step.tolerance)


def test_formulas_render_as_plain_text(registry):
    """theta*, (K^-1)_ii, <x, x'> ... must render as written: no emphasis, no HTML, no links."""
    renderer = MarkdownIt("commonmark")
    for text in _texts(registry):
        if not text:
            continue
        rendered = renderer.render(docs._paragraph(text)).strip()
        inner = re.fullmatch(r"<p>(.*)</p>", rendered, flags=re.S)
        assert inner, rendered
        assert html.unescape(inner.group(1)) == " ".join(text.split()), text


@pytest.mark.parametrize("text", ["(K^-1)_ii and x_i)", "theta* = a *b*", "<x, x'> and <b>", "[a](b) `c`",
                                  "back\\slash_"])
def test_escaping_edge_cases(text):
    rendered = MarkdownIt("commonmark").render(docs._paragraph(text)).strip()
    assert html.unescape(rendered[3:-4]) == text


def test_readme_table_needs_its_markers():
    with pytest.raises(ValueError, match="markers"):
        docs.with_readme_table("# no table here\n", "| x |")


def test_regeneration_command_checks_clean(capsys):
    """README's `python -m proofs_check.docs` (here with --check, which writes nothing) finds nothing stale."""
    assert docs.main(["--check"]) == 0
    assert capsys.readouterr().out == ""
