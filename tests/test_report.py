"""report.md renders with every table row intact (markdown-it-py, GitHub-style tables); the terminal table
shows a failed step's error text."""

import io
import re

from markdown_it import MarkdownIt
from rich.console import Console

from proofs_check.registry import Claim, ClaimResult, Context, Outcome, Step, above, at_least, run_step, within
from proofs_check import report
from proofs_check.report import markdown_cell, report_dict, summary_table, write_report

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _source_cells(line: str) -> int:
    """Cells of one table row as a GitHub-style renderer splits it: at pipes not escaped by a backslash."""
    parts = _UNESCAPED_PIPE.split(line.strip())
    if parts and parts[0] == "":
        parts = parts[1:]
    if parts and parts[-1] == "":
        parts = parts[:-1]
    return len(parts)


def assert_tables_intact(markdown: str) -> int:
    """Render ``markdown`` and check that every row of every table has its header's number of cells, and that
    every line that looks like a table row belongs to a rendered table. Returns the number of body rows."""
    lines = markdown.splitlines()
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    in_tables, rows, header = set(), 0, None
    for token in tokens:
        if token.type == "table_open":
            in_tables.update(range(*token.map))
        if token.type == "tr_open":
            (line_number, _) = token.map
            cells = _source_cells(lines[line_number])
            if header is None:
                header = cells
            else:
                assert cells == header, f"row {line_number + 1} has {cells} cells, header {header}: {lines[line_number]}"
                rows += 1
        if token.type == "table_close":
            header = None
    stray = [i + 1 for i, line in enumerate(lines) if line.startswith("|") and i not in in_tables]
    assert not stray, f"lines {stray} look like table rows but are outside every table"
    return rows


def _nasty_results() -> list[ClaimResult]:
    def boom(ctx):
        raise RuntimeError("kaput | with a pipe\nand a second line")

    (raised,) = run_step("check", Step("a | step", "", boom), Context())
    outcomes = [
        within("error | bound", 3e-11, 1e-10, "round-off | of float64 \n over 10 steps"),
        Outcome(name="fit", passed=False, measured="-0.512 [-0.6, -0.4] | x", expected="-0.5 in 95% | interval",
                reason="a\\|b", kind="check"),
        raised,
    ]
    claim = Claim(id="X1", title="pipes | everywhere", statement="s", assumptions=["a | b"])
    return [ClaimResult(claim=claim, outcomes=outcomes, seconds=0.1)]


def test_report_md_renders_every_row_with_the_headers_cells(tmp_path):
    results = _nasty_results()
    report = report_dict(results, profile="quick", seed=0, archs=["expr:2:phi=Max(x, 0)"], started="now",
                         seconds=1.0)
    _, md_path = write_report(tmp_path, report)
    assert assert_tables_intact(md_path.read_text()) == 3


def test_unescaped_cells_would_break_the_table():
    """The check above can fail: the same rows without escaping lose cells."""
    broken = "| a | b |\n|---|---|\n| x | y | z |\n"
    try:
        assert_tables_intact(broken)
    except AssertionError:
        pass
    else:
        raise AssertionError("a row with an extra cell was not noticed")


def test_markdown_cell_escapes_pipes_and_flattens_lines():
    assert markdown_cell("a | b\nc") == "a \\| b c"
    assert markdown_cell("a\\|b") == "a\\\\\\|b"


def test_terminal_table_shows_the_error_of_a_failed_step():
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(summary_table(_nasty_results()))
    text = console.file.getvalue()
    assert "error: RuntimeError: kaput | with a pipe and a second line" in text


def _words_broken(text: str, names: list[str]) -> list[str]:
    """The words of ``names`` that a rendered table does not show whole (a word folded or cut over two lines)."""
    shown = set(re.findall(r"[^\s│┃]+", text))
    return [word for name in names for word in name.split() if word not in shown]


def test_a_narrow_terminal_table_breaks_no_word():
    """At 60 columns the six-column table gave the step 7 characters: "equalit|y case", "countere|xample" (trial 27);
    below report.NARROW_TABLE columns each outcome is stacked in one cell, and wider consoles keep the six columns."""
    names = ["RKIP equality case: the counterexample Reconstruction", "L_RKIP(X_S, y_S) = L(X_S, K_SS^-1 y_S)"]
    outcomes = [within(name, 3e-11, 1e-10, "round-off") for name in names]
    claim = Claim(id="X1", title="Reconstruction is dataset distillation", statement="s", assumptions=[])
    results = [ClaimResult(claim=claim, outcomes=outcomes, seconds=0.1)]
    for width in (60, 40):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(summary_table(results))
        text = console.file.getvalue()
        assert not _words_broken(text, names + [claim.title]) and "measured 3e-11" in text, text
    console = Console(file=io.StringIO(), width=report.NARROW_TABLE, color_system=None)
    console.print(summary_table(results))
    header = console.file.getvalue().splitlines()[2]
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == ["claim", "kind", "step", "measured", "expected",
                                                                 "result"], header


def test_the_claim_list_in_a_narrow_terminal_cuts_no_title(monkeypatch):
    """`proofs-check list` at 60 columns cut titles to "Infinite-wid..." (its count columns took the room)."""
    from proofs_check import claims, cli

    step = Step("s", "", lambda ctx: [])
    listed = {"K1": Claim(id="K1", title="Infinite-width kernels of fully connected, residual and convolutional "
                                        "networks", statement="s", assumptions=[], derivations=[step] * 3,
                          checks=[step] * 7, counterexamples=[step])}
    monkeypatch.setattr(claims, "load_claims", lambda: listed)
    console = Console(file=io.StringIO(), width=60, color_system=None)
    monkeypatch.setattr(cli, "command_console", lambda: console)
    assert cli.main(["list"]) == 0
    text = console.file.getvalue()
    assert not _words_broken(text, [listed["K1"].title, "3 derivations, 7 checks, 1 counterexample"]), text


def test_above_is_strict_where_at_least_is_not():
    """A paired interval's lower end at exactly 0 (two identical scores) must fail ``above`` and pass ``at_least``."""
    assert not above("x", 0.0, 0.0, "r").passed and above("x", 1e-300, 0.0, "r").passed
    assert at_least("x", 0.0, 0.0, "r").passed
    assert not above("x", float("nan"), 0.0, "r").passed and above("x", 1.0, 0.0, "r").expected == "> 0"


def test_the_outcome_helpers_take_the_kind_as_a_field_not_as_a_detail():
    """``kind=`` given to within / at_least / above is the outcome's kind; it was swept into ``details`` (and shown in
    report.json beside the measured values) while run_step set the real kind from the step."""
    for helper in (within, at_least, above):
        outcome = helper("x", 1.0, 0.5, "r", kind="counterexample", margins=[1.0])
        assert (outcome.kind, outcome.details) == ("counterexample", {"margins": [1.0]})
        assert helper("x", 1.0, 0.5, "r").kind == "check"


def test_an_interrupted_report_says_incomplete_and_keeps_a_failure(tmp_path):
    """An interrupted run's report is incomplete (passed null), but a finished claim that failed makes it false and
    report.md says INCOMPLETE; FAILED: X1 (it said INCOMPLETE alone, hiding the failure)."""
    failed = report_dict(_nasty_results(), profile="quick", seed=0, archs=[], started="now", seconds=1.0,
                         not_run=["K1"], interrupted_during="K1: a step")
    assert (failed["complete"], failed["passed"], failed["not_run"]) == (False, False, ["K1"])
    _, md_path = write_report(tmp_path, failed)
    assert "Overall: **INCOMPLETE; FAILED: X1**" in md_path.read_text()
    assert not list(tmp_path.glob("*.tmp"))  # written under temporary names and renamed
    passed = [ClaimResult(claim=Claim(id="X2", title="t", statement="s", assumptions=[]), outcomes=[within("e", 0.0, 1.0, "r")],
                          seconds=0.1)]
    incomplete = report_dict(passed, profile="quick", seed=0, archs=[], started="now", seconds=1.0, not_run=["K1"],
                             interrupted_during="K1: a step")
    assert incomplete["passed"] is None
    assert "Overall: **INCOMPLETE**." in write_report(tmp_path, incomplete)[1].read_text()
