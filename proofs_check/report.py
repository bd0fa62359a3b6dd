"""Writing a run's results: ``report.json`` (schema below), ``report.md`` and the rich table.

report.json schema (version 3; version 2 added each outcome's "status", version 3 writes an n/a outcome's
"passed" as null, neither a pass nor a failure)::

    {
      "schema": 3, "software": {package: version},
      "profile": "quick" | "full", "seed": int, "archs": [spec, ...], "started": ISO time,
      "seconds": float, "complete": bool, "passed": bool | null (null: incomplete and nothing failed),
      "not_run": [id, ...], "interrupted_during": str | null,   (only where "complete" is false)
      "claims": [
        {"id": str, "title": str, "statement": str, "assumptions": [str], "passed": bool, "seconds": float,
         "outcomes": [
           {"name": str, "kind": "derivation" | "check" | "counterexample", "passed": bool | null (n/a),
            "status": "pass" | "FAIL" | "n/a",
            "measured": number | str | null, "expected": str, "reason": str, "seconds": float,
            "figures": [path relative to the report folder], "details": {...}}
         ]}
      ]
    }
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from proofs_check.registry import ClaimResult

SCHEMA_VERSION = 3


def _measured_text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _error(outcome_details: dict) -> str | None:
    error = outcome_details.get("error")
    if error is None:
        return None
    where = outcome_details.get("where")
    return " ".join(str(error).split()) + (f" (at {where})" if where else "")


NARROW_TABLE = 80
"""Below this many columns a table made with :class:`ByWidth` takes its narrow layout (the claim table's six columns
left its steps 7 characters at 60 columns, breaking every word; the claim list cut titles to "Infinite-wid...")."""


class ByWidth:
    """A renderable that is ``narrow()`` where it is printed in fewer than ``below`` columns (default NARROW_TABLE)
    and ``wide()`` elsewhere (each a function returning a rich renderable): wide terminals and logs keep the wide
    layout."""

    def __init__(self, wide, narrow, *, below: int = NARROW_TABLE):
        self.wide, self.narrow, self.below = wide, narrow, below

    def __rich_console__(self, console, options):
        yield (self.narrow if options.max_width < self.below else self.wide)()


def summary_table(results: list[ClaimResult]) -> ByWidth:
    """The terminal table: one row per outcome (a failed step shows its error text) and one per claim; six columns,
    or below NARROW_TABLE columns two, the step's cell holding its claim, kind, measured and expected values."""
    return ByWidth(lambda: _summary_table(results, stacked=False), lambda: _summary_table(results, stacked=True))


def _summary_table(results: list[ClaimResult], *, stacked: bool) -> Table:
    table = Table(title="proofs-check", show_lines=stacked)
    columns = ("step", "result") if stacked else ("claim", "kind", "step", "measured", "expected", "result")
    for column in columns:
        table.add_column(column, overflow="fold")  # words wrap at spaces; only a word wider than its column folds
    for result in results:
        for outcome in result.outcomes:
            status = {"pass": "[green]pass[/green]", "FAIL": "[red]FAIL[/red]", "n/a": "[dim]n/a[/dim]"}[outcome.status]
            error = _error(outcome.details)
            measured = Text(_measured_text(outcome.measured))
            if error is not None:
                measured = Text(f"error: {error}", style="red")
            if stacked:
                step = Text.assemble(outcome.name, "\n", (f"{result.claim.id} {outcome.kind}: ", "dim"), "measured ",
                                     measured, ", expected ", outcome.expected)
                table.add_row(step, status)
            else:
                table.add_row(result.claim.id, outcome.kind, outcome.name, measured, outcome.expected, status)
        verdict = "[bold green]PASSED[/bold green]" if result.passed else "[bold red]FAILED[/bold red]"
        claim, title, seconds = f"[bold]{result.claim.id}[/bold]", result.claim.title, f"{result.seconds:.1f} s"
        if stacked:
            table.add_row(Text.from_markup(f"{claim} {title} ({seconds})"), verdict, end_section=True)
        else:
            table.add_row(claim, "", title, "", seconds, verdict, end_section=True)
    return table


def report_dict(results: list[ClaimResult], *, profile: str, seed: int, archs: list[str], started: str,
                seconds: float, not_run: list[str] = (), interrupted_during: str | None = None) -> dict:
    """The report (report.json). A run interrupted after some claims finished (``not_run``: the ids it did not
    finish, ``interrupted_during``: the step or steps running when it stopped, "ID: step" joined by "; ") is
    ``complete`` false, and ``passed`` is then null (the run did not establish every selected claim), or false
    where a finished claim failed."""
    from numerics.checkpoint import software

    complete = not not_run
    failed = not all(r.passed for r in results)
    return {
        "schema": SCHEMA_VERSION,
        "software": software(),
        "profile": profile,
        "seed": seed,
        "archs": archs,
        "started": started,
        "seconds": round(seconds, 2),
        "complete": complete,
        **({} if complete else {"not_run": list(not_run), "interrupted_during": interrupted_during}),
        "passed": False if failed else True if complete else None,
        "claims": [
            {
                "id": r.claim.id,
                "title": r.claim.title,
                "statement": r.claim.statement,
                "assumptions": list(r.claim.assumptions),
                "passed": r.passed,
                "seconds": round(r.seconds, 2),
                "outcomes": [o.as_dict() for o in r.outcomes],
            }
            for r in results
        ],
    }


def markdown_cell(value) -> str:
    """Text for one cell of a GitHub-style markdown table: ``|`` escaped, line breaks and runs of blanks
    turned into single spaces (either would end the row)."""
    return " ".join(str(value).split()).replace("\\", "\\\\").replace("|", "\\|")


def _row(*cells) -> str:
    return "| " + " | ".join(markdown_cell(cell) for cell in cells) + " |"


def _markdown(report: dict) -> str:
    failed = [claim["id"] for claim in report["claims"] if not claim["passed"]]
    overall = ("FAILED" if failed else "PASSED") if report.get("complete", True) else \
        ("INCOMPLETE; FAILED: " + ", ".join(failed) if failed else "INCOMPLETE")
    lines = [
        "# proofs-check report",
        "",
        f"Profile `{report['profile']}`, seed {report['seed']}, started {report['started']}, "
        f"{report['seconds']} s. Overall: **{overall}**.",
        "",
    ]
    if not report.get("complete", True):
        lines += [f"Interrupted during {report['interrupted_during']}: this report holds the claims that finished; "
                  f"not run: {', '.join(report['not_run'])}.", ""]
    if report["archs"]:
        lines += [f"Architectures: {', '.join(f'`{a}`' for a in report['archs'])}", ""]
    for claim in report["claims"]:
        lines += [f"## {claim['id']}: {claim['title']} - {'passed' if claim['passed'] else 'FAILED'}", "",
                  claim["statement"], ""]
        if claim["assumptions"]:
            lines += ["Assumptions: " + "; ".join(claim["assumptions"]) + ".", ""]
        lines += [_row("kind", "step", "measured", "expected", "tolerance reason", "result"),
                  "|---|---|---|---|---|---|"]
        figures = []
        for o in claim["outcomes"]:
            error = _error(o["details"])
            reason = o["reason"] + (f" (error: {error})" if error else "")
            result = {"pass": "pass", "FAIL": "**FAIL**", "n/a": "n/a"}[o["status"]]
            lines.append(_row(o["kind"], o["name"], _measured_text(o["measured"]), o["expected"], reason, result))
            figures += [f for f in o["figures"] if f not in figures]
        lines.append("")
        for figure in figures:
            lines += [f"![{figure}]({figure})", ""]
    return "\n".join(lines)


REPORT_JSON = "report.json"
"""The file name of a run's report (beside report.md)."""


REPORT_MD = "report.md"


def write_report(out_dir: Path, report: dict) -> tuple[Path, Path]:
    """report.json and report.md, each written under a temporary name and renamed (a Ctrl-C never leaves a torn
    file)."""
    import os

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / REPORT_JSON, out_dir / REPORT_MD
    for path, text in zip(paths, (json.dumps(report, indent=2), _markdown(report))):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
    return paths


def remove_report(out_dir: Path) -> None:
    """Remove an earlier run's report from ``out_dir`` as a run starts: one interrupted before any claim finished
    left the earlier report there, looking like its own."""
    for name in (REPORT_JSON, REPORT_MD):
        (out_dir / name).unlink(missing_ok=True)
