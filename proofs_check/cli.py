"""The ``proofs-check`` command: list the claims, run them, write the report.

Exit status: 0 when every selected claim passes, 1 when any fails, 2 on bad usage (unknown claim,
malformed architecture spec, unknown activation), with a one-line message.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from theory.architecture import SpecError, parse_spec

ARCH_HELP = """Architecture spec: ACTIVATION:DEPTH[:KEY=VALUE]..., e.g. relu:2 or erf:3:sw=1.5:sb=0.1.
Activations: relu, erf, identity, leaky_relu (alpha=), abrelu (a=, b=), monomial (k=),
poly (coeffs=c0,c1,...), expr (phi=<sympy expression in x>, e.g. expr:2:phi=tanh(x)).
Keys: sw (sigma_w, default 1), sb (sigma_b, default 0 = no biases), param (ntk | standard)."""


class UsageError(Exception):
    """Bad usage: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="proofs-check", description="Run the claim registry of recon-ntk.",
                     epilog=ARCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the registered claims")
    run = sub.add_parser("run", help="run claims and write the report", epilog=ARCH_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("ids", nargs="*", metavar="ID", help="claim IDs (default: all)")
    run.add_argument("--arch", action="append", default=[], metavar="SPEC",
                     help="architecture spec (repeatable); replaces the claim's default architectures")
    run.add_argument("--profile", choices=("quick", "full"), default="quick")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, default=Path("reports/latest"), help="report folder")
    return parser


def _list_claims() -> int:
    from rich.console import Console
    from rich.table import Table

    from proofs_check.claims import load_claims

    table = Table(title="claims")
    for column in ("id", "title", "derivations", "checks", "counterexamples"):
        table.add_column(column)
    for claim in load_claims().values():
        table.add_row(claim.id, claim.title, str(len(claim.derivations)), str(len(claim.checks)),
                      str(len(claim.counterexamples)))
    Console().print(table)
    return 0


def _run(args) -> int:
    archs = tuple(parse_spec(spec) for spec in args.arch)
    from proofs_check.claims import load_claims

    registry = load_claims()
    ids = [i.upper() for i in args.ids] or list(registry)
    unknown = [i for i in ids if i not in registry]
    if unknown:
        raise UsageError(f"unknown claim {', '.join(unknown)}; known: {', '.join(registry)}")

    import numerics  # noqa: F401  (float64 on)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from proofs_check.registry import Context, run_step, ClaimResult
    from proofs_check.report import report_dict, summary_table, write_report

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    claims = [registry[i] for i in ids]
    started = datetime.datetime.now().isoformat(timespec="seconds")
    start = time.perf_counter()
    results = []
    total = sum(1 for claim in claims for _ in claim.steps())
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("starting", total=total)
        ctx = Context(profile=args.profile, seed=args.seed, out_dir=args.out,
                      advance=lambda message: progress.update(task, description=message))
        for claim in claims:
            ctx.archs = archs if claim.uses_archs else ()
            claim_start = time.perf_counter()
            outcomes = []
            for kind, step in claim.steps():
                progress.update(task, description=f"{claim.id}: {step.name}")
                outcomes.extend(run_step(kind, step, ctx))
                progress.advance(task)
            results.append(ClaimResult(claim=claim, outcomes=outcomes, seconds=time.perf_counter() - claim_start))
    console.print(summary_table(results))
    report = report_dict(results, profile=args.profile, seed=args.seed, archs=[a.spec for a in archs],
                         started=started, seconds=time.perf_counter() - start)
    json_path, md_path = write_report(args.out, report)
    failed = [r.claim.id for r in results if not r.passed]
    verdict = f"[red]FAILED: {', '.join(failed)}[/red]" if failed else "[green]all claims passed[/green]"
    console.print(f"{verdict} in {report['seconds']:.0f} s; report: {md_path} and {json_path}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "list":
            return _list_claims()
        return _run(args)
    except (UsageError, SpecError) as error:
        print(f"proofs-check: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
