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
    listing = sub.add_parser("list", help="list the registered claims")
    listing.add_argument("--markdown", action="store_true", help="print every claim's statement, derivation "
                         "and checks as Markdown (the source of docs/claims.md)")
    run = sub.add_parser("run", help="run claims and write the report", epilog=ARCH_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("ids", nargs="*", metavar="ID", help="claim IDs (default: all)")
    run.add_argument("--arch", action="append", default=[], metavar="SPEC",
                     help="architecture spec (repeatable); replaces the claim's default architectures")
    run.add_argument("--profile", choices=("quick", "full"), default="quick")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, default=Path("reports/latest"), help="report folder")

    attack = sub.add_parser("attack", help="train (or load) a network, reconstruct its training set, score it",
                            epilog=ARCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    attack.add_argument("--dataset", default="digits-odd-even",
                        help="training set (digits-odd-even, digits-ten-class, sphere); with --model, the set "
                             "the model was trained on, used for scoring")
    attack.add_argument("--n", type=int, default=20, help="number of training points")
    attack.add_argument("--arch", default="relu:2", metavar="SPEC")
    attack.add_argument("--width", type=int, default=1024)
    attack.add_argument("--training", choices=("linearized", "standard"), default="linearized")
    attack.add_argument("--train-steps", type=int, default=20_000, help="training step budget")
    attack.add_argument("--model", type=Path, help="a saved model (.npz from numerics.training.save_model)")
    attack.add_argument("--recon", type=int, help="number of reconstructions M (default 2N)")
    attack.add_argument("--steps", type=int, default=10_000, help="attack steps (Adam)")
    attack.add_argument("--lr", type=float, default=0.02, help="attack learning rate")
    attack.add_argument("--at", choices=("theta0", "thetaf", "both"), default="theta0",
                        help="parameters at which the attack takes gradients")
    attack.add_argument("--seed", type=int, default=0)
    attack.add_argument("--out", type=Path, default=Path("reports/attack"))
    attack.add_argument("--resume", action="store_true", help="continue the attack from its checkpoint")
    attack.add_argument("--no-progress", action="store_true")
    return parser


def _list_claims(markdown: bool = False) -> int:
    if markdown:
        from proofs_check.claims import load_claims
        from proofs_check.docs import claims_markdown

        sys.stdout.write(claims_markdown(load_claims()))
        return 0
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


def _attack(args) -> int:
    import numerics  # noqa: F401  (float64 on)
    import jax
    from rich.console import Console

    from numerics import audit
    from numerics.attack import parameter_space_attack
    from numerics.training import load_model

    if args.n < 1 or args.width < 1 or args.steps < 1 or (args.recon is not None and args.recon < 1):
        raise UsageError("--n, --width, --steps and --recon must be positive")
    if args.dataset not in audit.DATASETS:
        raise UsageError(f"unknown dataset {args.dataset!r}; known: {', '.join(audit.DATASETS)}")
    console = Console()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    dataset = audit.load_dataset(args.dataset, args.n, seed=args.seed)
    info: dict = {"dataset": dataset.name, "n": args.n, "seed": args.seed}
    if args.model:
        saved = load_model(args.model)
        arch, width, params_0, params_f = saved.arch, saved.width, saved.params_0, saved.params_f
        info["model"] = str(args.model)
    else:
        arch, width = parse_spec(args.arch), args.width
        console.print(f"training {arch.spec} width {width} ({args.training}) on {dataset.name}, N = {args.n}")
        trained = audit.train_on(arch, width, dataset, linearized=args.training == "linearized", seed=args.seed,
                                 max_steps=args.train_steps, progress=not args.no_progress)
        params_0, params_f = trained.params_0, trained.params_f
        info["model"] = str(trained.save(out / "model.npz"))
        info["training"] = {"mode": args.training, "steps": trained.steps, "final_loss": trained.final_loss,
                            "stop_reason": trained.stop_reason, "seconds": round(trained.seconds, 1)}
    n_recon = args.recon or 2 * args.n
    console.print(f"attacking {arch.spec} width {width} with M = {n_recon} reconstructions, {args.steps} steps")
    result = parameter_space_attack(arch, params_0, params_f, n_recon, in_dim=dataset.x.shape[1],
                                    key=jax.random.PRNGKey(args.seed + 1), steps=args.steps, lr=args.lr,
                                    at=args.at, box=dataset.box, checkpoint=out / "attack_checkpoint.npz",
                                    resume=args.resume, progress=not args.no_progress)
    scored = audit.score(result.x_recon, dataset)
    files = [audit.curve_figure(out / "curve.png", {f"{arch.spec} m={width}": scored})]
    if dataset.image_shape is not None:
        files.append(audit.reconstruction_grid(out / "reconstructions.png", result.x_recon, dataset, scored))
    metrics = {**info, "arch": arch.spec, "width": width, "n_recon": n_recon, "attack_steps": result.steps,
               "attack_loss": result.final_loss, "attack_at": args.at, **audit.metrics_dict(scored)}
    files.append(audit.write_metrics(out / "metrics.json", metrics))
    good = scored.fraction_good
    console.print(f"fraction of training points reconstructed ({scored.metric}, threshold {scored.threshold}): "
                  f"{'-' if good is None else f'{good:.2f}'}; files: {', '.join(str(f) for f in files)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "list":
            return _list_claims(args.markdown)
        if args.command == "attack":
            return _attack(args)
        return _run(args)
    except (UsageError, SpecError) as error:
        print(f"proofs-check: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
