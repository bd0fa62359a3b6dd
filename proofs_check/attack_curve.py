"""``proofs-check attack-curve``: the attack's success against its step budget, for several architectures and
training modes on one private set, beside the trivial baselines (numerics.privacy).

For each architecture (``--arch``, any spec: fully connected, residual, convolutional) and training mode
(``--training``), one network is trained (numerics.audit.train_on) and attacked once
(numerics.attack.parameter_space_attack, the largest of ``--budgets`` Adam steps, its softplus annealing spread
over all of them); the reconstructions reached after each budget in ``--budgets`` are scored by
numerics.audit.leakage. Writes
``OUT/attack_curve.json`` (every score), ``OUT/attack_curve.png`` (revealed fraction and SSIM >= 0.9 fraction
against the budget; each trivial baseline a horizontal line) and ``OUT/<arch>-<training>/model.npz``.
``--combine DIR...`` draws earlier runs (e.g. one per architecture, run in parallel) in one figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

DEFAULT_ARCHS = ("relu:2", "conv3x3:c=32 > relu > conv3x3:c=32 > relu > gap > dense")
DEFAULT_BUDGETS = (100, 250, 500, 1000, 2000)
TRAININGS = ("linearized", "standard")


def budgets(text: str) -> tuple[int, ...]:
    """Comma-separated attack step budgets, each a positive integer, increasing."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"budgets must be positive integers, got {text}")
    if list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"budgets must increase, got {text}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from numerics.audit import DATASETS
    from proofs_check.cli import architecture, folder, positive_float, positive_int, seed

    parser.add_argument("--arch", action="append", type=architecture, metavar="SPEC",
                        help=f"architecture (repeatable; default: {' and '.join(repr(a) for a in DEFAULT_ARCHS)})")
    parser.add_argument("--width", type=positive_int, default=None,
                        help=f"hidden width of the layers without their own size (dense; conv without c=; default "
                             f"{DEFAULT_WIDTH})")
    parser.add_argument("--training", action="append", choices=TRAININGS,
                        help="training dynamics (repeatable; default: both)")
    parser.add_argument("--dataset", choices=list(DATASETS), default="digits-odd-even", help="training set")
    parser.add_argument("--n", type=positive_int, default=20, help="number of training points")
    parser.add_argument("--train-steps", type=positive_int, default=20_000, help="training step budget")
    parser.add_argument("--budgets", type=budgets, default=DEFAULT_BUDGETS,
                        help="attack steps at which the reconstructions are scored, comma-separated; the attack runs "
                             "the largest (default: %(default)s)")
    parser.add_argument("--lr", type=positive_float, default=0.02, help="attack learning rate")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the data draw, the networks and the attacks")
    parser.add_argument("--out", type=folder, default="reports/attack-curve", help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--rescale", action="store_true",
                        help="attack Delta theta / s with s = ||Delta theta|| / sqrt(M mean_x Theta_0(x, x)) over M public "
                             "points, so that the coefficients lambda start at their scale (the reconstructions are "
                             "those of the unscaled loss: lambda = s mu)")
    parser.add_argument("--combine", nargs="+", type=folder, metavar="DIR",
                        help="train and attack nothing: draw the series of earlier attack-curve runs (same dataset, "
                             "N, seed and budgets) in one figure and JSON in --out")


DEFAULT_WIDTH = 1024

RESULT = "attack_curve.json"
SAME = ("dataset", "n", "recon", "seed", "budgets")
"""What combined runs must share."""


def _combined(folders) -> dict:
    from proofs_check.cli import UsageError

    records = []
    for folder in folders:
        try:
            records.append(json.loads((folder / RESULT).read_text()))
        except (OSError, ValueError):
            raise UsageError(f"--combine {folder}: no readable {RESULT} there (an attack-curve run's --out)") from None
    for folder, record in zip(folders[1:], records[1:]):
        for key in SAME:
            if record.get(key) != records[0].get(key):
                raise UsageError(f"--combine {folder}: its {key} is {record.get(key)!r}, but {folders[0]} has "
                                 f"{records[0].get(key)!r}")
    combined = dict(records[0])
    combined["series"] = [entry for record in records for entry in record["series"]]
    combined["seconds"] = round(sum(record["seconds"] for record in records), 1)
    combined["combined_from"] = [str(folder) for folder in folders]
    return combined


def check(args) -> None:
    from numerics import audit
    from proofs_check.cli import UsageError, unused_width
    from theory.architecture import parse_spec

    if args.combine:
        given = [name for name in ("arch", "training") if getattr(args, name)]
        if given:
            raise UsageError(f"--{given[0]} describes runs to make; --combine draws earlier ones")
        if any(args.out.resolve() == folder.resolve() for folder in args.combine):
            raise UsageError(f"--out {args.out} is one of the --combine folders: its {RESULT} would be replaced by the "
                             "combination; choose another --out")
        args.record = _combined(args.combine)
        return
    args.arch = args.arch or [parse_spec(spec) for spec in DEFAULT_ARCHS]
    args.training = args.training or list(TRAININGS)
    for option, values in (("--arch", [arch.spec for arch in args.arch]), ("--training", args.training)):
        twice = next((value for i, value in enumerate(values) if value in values[:i]), None)
        if twice is not None:
            raise UsageError(f"{option} {twice} is given twice (each would train and attack the same series)")
    unused = unused_width(args.width, args.arch)
    if unused is not None:
        raise UsageError(unused)
    args.width = DEFAULT_WIDTH if args.width is None else args.width
    try:
        audit.check_n(args.dataset, args.n)
    except ValueError as error:
        raise UsageError(str(error)) from None
    for arch in args.arch:
        try:
            arch.check_input(audit.input_dimension(args.dataset))
        except ValueError as error:
            raise UsageError(f"--arch {error} (--dataset {args.dataset})") from None


def _folder_name(arch, training: str) -> str:
    readable = "".join(c if c.isalnum() or c in "=." else "-" for c in arch.spec).strip("-")[:40]
    return f"{readable}-{hashlib.sha256(arch.spec.encode()).hexdigest()[:6]}-{training}"


def interrupted(args, interruption: KeyboardInterrupt) -> str:
    """attack-curve's Ctrl-C line: it keeps no checkpoints (the snapshots at each budget live in memory), so a rerun
    trains and attacks every series again."""
    from proofs_check.cli import step_text

    return f"interrupted{step_text(interruption)}; attack-curve does not resume: a rerun starts over"


def run(args) -> int:
    import numerics  # noqa: F401  (float64 on)
    import jax
    import jax.flatten_util
    from rich.console import Console

    from numerics import audit
    from numerics.attack import attack_divergence, parameter_space_attack
    from numerics.checkpoint import raise_if_interrupted
    from proofs_check.cli import RunFailed

    console = Console(highlight=False)
    out: Path = args.out
    if args.combine:
        return _finish(console, out, args.record)
    dataset = audit.load_dataset(args.dataset, args.n, seed=args.seed)
    references = audit.reference_sets(args.dataset, dataset, seed=args.seed)
    images = dataset.image_shape is not None
    series: list[dict[str, Any]] = []
    baselines: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    chunk = math.gcd(*args.budgets)  # every budget ends a chunk
    for arch in args.arch:
        for training in args.training:
            raise_if_interrupted()  # a Ctrl-C that Python discarded during the previous series
            console.print(f"training {arch.named(args.width)} ({training}) on {dataset.name}, N = {args.n}")
            trained = audit.train_on(arch, args.width, dataset, linearized=training == "linearized", seed=args.seed,
                                     max_steps=args.train_steps, progress=not args.no_progress)
            model = trained.save(out / _folder_name(arch, training) / "model.npz")
            entry = {"arch": arch.spec, "training": training, "width": args.width, "model": str(model),
                     "parameters": int(jax.flatten_util.ravel_pytree(trained.params_0)[0].size),
                     "train_steps": trained.steps, "final_train_loss": trained.final_loss,
                     "train_learning_rate": trained.learning_rate,
                     "stop_reason": trained.stop_reason, "points": []}
            params_f, scale = trained.params_f, 1.0
            if args.rescale:
                scale = coefficient_scale(trained, references.public[:2 * args.n])
                params_f = jax.tree_util.tree_map(lambda a, b: a + (b - a) / scale, trained.params_0, trained.params_f)
            entry["delta_scale"], entry["rescaled"] = scale, bool(args.rescale)
            snapshots: dict[int, Any] = {}
            begun = time.perf_counter()

            def keep(step, x_recon, begun=begun, snapshots=snapshots):
                if step in args.budgets:
                    snapshots[step] = (x_recon, time.perf_counter() - begun)

            result = parameter_space_attack(arch, trained.params_0, params_f, 2 * args.n, in_dim=dataset.d,
                                            key=jax.random.PRNGKey(args.seed + 1), steps=max(args.budgets), lr=args.lr,
                                            box=dataset.box, progress=not args.no_progress, chunk=chunk,
                                            on_chunk=keep)
            diverged = attack_divergence(result)
            if diverged:  # its scores would be those of a broken run
                raise RunFailed(f"the attack on {arch.spec} ({training}) diverged: {diverged}; rerun with a smaller "
                                f"--lr (now {args.lr:g})")
            entry["final_loss"] = result.final_loss
            for budget in args.budgets:
                x_recon, seconds = snapshots[budget]
                leakage = audit.leakage(x_recon, dataset, references, seed=args.seed)
                row = leakage.rows[audit.ATTACK_ROW]
                point = {"steps": budget, "revealed": row["revealed"], "seconds": round(seconds, 1)}
                if images:
                    point.update({"ssim_ge_0.9": row["ssim_ge_0.9"], "ssim_ge_0.4": row["ssim_ge_0.4"]})
                entry["points"].append(point)
                for name, trivial in leakage.rows.items():
                    if name != audit.ATTACK_ROW:
                        baselines[name] = {key: trivial[key] for key in ("revealed", "ssim_ge_0.9", "ssim_ge_0.4")
                                           if key in trivial}
                console.print(f"  {arch.spec} ({training}), after {budget} attack steps: revealed {row['revealed']:.0%}"
                              + (f", SSIM >= 0.9 {row['ssim_ge_0.9']:.0%}" if images else ""))
            series.append(entry)
    record = {"dataset": dataset.name, "n": args.n, "recon": 2 * args.n, "seed": args.seed, "lr": args.lr,
              "rescale": bool(args.rescale),
              "budgets": list(args.budgets), "series": series, "baselines": baselines,
              "seconds": round(time.perf_counter() - start, 1),
              "success_measure": "revealed: some reconstruction is 2 times closer to the private point than to every "
                                 "public point, after the best nonnegative rescaling (numerics.privacy.revealed)"}
    return _finish(console, out, record)


def _finish(console, out: Path, record: dict) -> int:
    """Write the JSON and the figure, print the table."""
    from rich.table import Table

    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT).write_text(json.dumps(audit_plain(record), indent=2))
    images = any("ssim_ge_0.9" in point for entry in record["series"] for point in entry["points"])
    figure = curve_figure(out / "attack_curve.png", record, images=images)
    table = Table(title=f"revealed fraction (SSIM >= 0.9) against attack steps, {record['dataset']}, N = {record['n']}")
    table.add_column("architecture")
    table.add_column("training")
    for budget in record["budgets"]:
        table.add_column(f"{budget} steps", justify="right")
    for entry in record["series"]:
        table.add_row(entry["arch"], entry["training"] + (" (rescaled)" if entry.get("rescaled") else ""), *[
            f"{p['revealed']:.0%}" + (f" ({p['ssim_ge_0.9']:.0%})" if images else "") for p in entry["points"]])
    for name, values in record["baselines"].items():
        table.add_row(f"{name} (trivial)", "-", *[f"{values['revealed']:.0%}" + (
            f" ({values['ssim_ge_0.9']:.0%})" if images else "")] * len(record["budgets"]))
    console.print(table)
    console.print(f"files: {out / RESULT}, {figure}")
    return 0


def coefficient_scale(trained, public) -> float:
    """s = ||Delta theta|| / sqrt(M mean_x Theta_0(x, x)) over M public points x: J(X_R)^T lambda has norm about
    |lambda| sqrt(M mean Theta_0(x, x)), so Delta theta / s is matched by coefficients of order one, the scale at
    which the attack starts them. Minimizing ||Delta theta / s - J^T mu||^2 over (X_R, mu) is minimizing the
    attack's loss over (X_R, lambda = s mu), divided by s^2 (the start, Adam's steps in mu, the minimizers in X_R)."""
    import jax.numpy as jnp
    import numpy as np
    from jax.flatten_util import ravel_pytree

    from numerics.networks import make_network
    from numerics.training import ntk_matrix

    network = make_network(trained.arch, trained.width, trained.out_dim)
    diagonal = np.diag(np.asarray(ntk_matrix(network, trained.params_0, jnp.asarray(public))))
    delta = ravel_pytree(trained.delta)[0]
    return float(jnp.linalg.norm(delta) / np.sqrt(len(public) * np.mean(diagonal)))


def audit_plain(record):
    """JSON-ready: numpy scalars as Python numbers."""
    import numpy as np

    if isinstance(record, dict):
        return {str(k): audit_plain(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [audit_plain(v) for v in record]
    if isinstance(record, (np.floating, np.integer, np.bool_)):
        return record.item()
    return record


def _label(entry: dict) -> str:
    rescaled = f", Delta theta / {entry['delta_scale']:.3g}" if entry.get("rescaled") else ""
    return f"{entry['arch']} ({entry['training']}{rescaled})"


def curve_figure(path: Path, record: dict, *, images: bool) -> Path:
    """:func:`curve_axes`, saved to ``path``."""
    from proofs_check import figures

    return figures.save(curve_axes(record, images=images), path)


def curve_axes(record: dict, *, images: bool):
    """Revealed fraction (left) and SSIM >= 0.9 fraction (right, images) against the attack's step budget, one line
    per architecture and training mode, each trivial baseline a horizontal line."""
    from proofs_check import figures

    measures = [("revealed", "revealed private points (fraction)")]
    if images:
        measures.append(("ssim_ge_0.9", "private points with SSIM >= 0.9 (fraction)"))
    fig, axes = figures.new_figure(
        title=["revealed (2x closer than every public point)", "matched SSIM >= 0.9"][:len(measures)],
        xlabel="attack steps (count)", ylabel=[label for _, label in measures], ncols=len(measures),
        size=(6.2 * len(measures), 4.2 + 0.16 * (len(record["series"]) + len(record["baselines"]))),
        suptitle=f"attack success against its step budget: {record['dataset']}, N = {record['n']}, "
                 f"M = {record['recon']}")
    axes = axes if len(measures) > 1 else [axes]
    styles = ("--", "-.", ":", (0, (1, 3)), (0, (5, 5)))
    for ax, (key, _) in zip(axes, measures):
        for entry in record["series"]:
            steps = [p["steps"] for p in entry["points"]]
            ax.semilogx(steps, [p[key] for p in entry["points"]], "o-" if entry["training"] == "linearized" else "s--",
                        label=_label(entry))
        for (name, values), style in zip(record["baselines"].items(), styles):
            figures.reference_line(ax, y=values[key], label=f"{name} (trivial): {values[key]:.0%}", linestyle=style)
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16))
        figures.readable_log_ticks(ax, "x", values=record["budgets"])
    return fig
