"""The project's documentation, read as one: README.md, then the reference pages under docs/.

Tests that check what the documentation says, or run its examples, read it through here, so that a paragraph moved
from README to a reference page (or between pages) is still found. docs/claims.md is generated from the registry
(``python -m proofs_check.docs``) and has tests of its own.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = (ROOT / "README.md",
         *sorted(path for path in (ROOT / "docs").glob("*.md") if path.name != "claims.md"))
"""The documentation files in their fixed order: README first, then docs/*.md (but claims.md) by name."""

_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")


def documentation_text() -> str:
    """Every documentation file's text, in the order of FILES, separated by a blank line."""
    return "\n\n".join(path.read_text() for path in FILES)


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every markdown heading of text, outside fenced code blocks."""
    found, fenced = [], False
    for index, line in enumerate(text.split("\n")):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            found.append((index, len(match.group(1)), match.group(2)))
    return found


def sections(path: Path) -> list[tuple[int, str, str]]:
    """(level, title, text) of every heading of the file: from the heading to the next heading of the same or a
    higher level (a ``## `` section holds its ``### `` ones), or to the end of the file."""
    lines = path.read_text().split("\n")
    marks = headings("\n".join(lines))
    found = []
    for number, (index, level, title) in enumerate(marks):
        end = next((other for other, other_level, _ in marks[number + 1:] if other_level <= level), len(lines))
        found.append((level, title, "\n".join(lines[index:end])))
    return found


def section_and_file(title: str) -> tuple[str, Path]:
    """The first ``## `` or ``### `` section titled ``title`` in the documentation files, and its file."""
    for path in FILES:
        for level, found, text in sections(path):
            if level in (2, 3) and found == title:
                return text, path
    raise LookupError(f"no '## {title}' or '### {title}' section in the documentation "
                      f"({', '.join(str(path.relative_to(ROOT)) for path in FILES)}): was it renamed or removed?")


def section(title: str) -> str:
    """The text of the first ``## `` or ``### `` section titled ``title`` in the documentation files."""
    return section_and_file(title)[0]
