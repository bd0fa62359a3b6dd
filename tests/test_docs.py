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


LINK = re.compile(r"\]\(([^)\s]*)\)")
"""A markdown link's or image's target: ``[text](target)``, ``![alt](target)``."""


def _slug(title: str) -> str:
    """GitHub's anchor for a heading: lowercase, spaces to '-', punctuation other than '-' and '_' dropped."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _anchors(path) -> set[str]:
    """The anchors a markdown file offers: its headings' slugs (numbered -1, -2 ... when repeated, as GitHub does)
    and its explicit ``<a id="...">`` anchors."""
    from documentation import headings

    text = path.read_text()
    anchors, seen = set(re.findall(r'<a id="([^"]+)"></a>', text)), {}
    for _, _, title in headings(text):
        slug = _slug(re.sub(r"[`*]", "", title))
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _markdown_files():
    return [docs.README_PATH, *sorted((docs.ROOT / "docs").glob("*.md"))]


def test_every_link_of_the_documentation_resolves_inside_the_repository():
    """Every link and image of README.md and docs/*.md is relative, names a file of this repository (nothing
    beyond it, such as ../shared/), and where it names an anchor, the target has that heading or anchor."""
    root = docs.ROOT.resolve()
    problems, checked = [], 0
    for path in _markdown_files():
        for target in LINK.findall(path.read_text()):
            checked += 1
            file_part, _, anchor = target.partition("#")
            where = f"{path.relative_to(root)}: ]({target})"
            if re.match(r"[a-z][a-z0-9+.-]*:", file_part, flags=re.I) or file_part.startswith("/"):
                problems.append(f"{where} is not a relative link into the repository")
                continue
            resolved = (path.parent / file_part).resolve() if file_part else path.resolve()
            if not resolved.is_relative_to(root):
                problems.append(f"{where} points outside the repository")
            elif not resolved.is_file():
                problems.append(f"{where} names no file")
            elif anchor and anchor not in _anchors(resolved):
                problems.append(f"{where}: {resolved.relative_to(root)} has no heading or anchor '{anchor}'")
    assert checked > 20 and not problems, "\n".join(problems)


def test_a_broken_link_is_found():
    """The link check's own parts: the slug of a heading with code and punctuation, and the links it reads."""
    assert _slug("Finite width: when the attack works (claims E1 and H1)") == \
        "finite-width-when-the-attack-works-claims-e1-and-h1"
    assert _slug("report.json (schema 3)") == "reportjson-schema-3"
    assert _slug("Time on this machine (2 cores)") == "time-on-this-machine-2-cores"
    assert LINK.findall("see [a](docs/a.md#b) and ![c](../shared/c.png)") == ["docs/a.md#b", "../shared/c.png"]


def test_readme_maps_every_reference_page():
    """README's "Documentation" section links every page under docs/ (the map a reader starts from)."""
    from documentation import section

    text = section("Documentation")
    for page in sorted((docs.ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in text, page.name


def test_a_missing_section_is_named():
    from documentation import FILES, section

    assert FILES[0] == docs.README_PATH and docs.DOCS_PATH not in FILES
    with pytest.raises(LookupError, match="no '## No such section' or '### No such section' section"):
        section("No such section")
