"""The ``proofs-check distill`` command (declared in :data:`proofs_check.cli.COMMANDS`): KIP or RKIP distillation
of a dataset, scored by kernel-ridge test accuracy beside the baselines (full data, random real points, class means).

Writes into ``--out``: ``distilled.png`` (the distilled images with their learned label), ``distilled.npz``
(x, y, classes, init_index, loss_curve), ``metrics.json`` (test accuracy and every baseline), ``run.json``
(the settings, for ``--resume``) and ``distill_checkpoint.npz`` (resumable state, saved every chunk).

Also ``proofs-check defend`` and ``proofs-check rkip-finite`` (numerics.distill.rkip_finite_experiment, each stage
saved in ``--out`` for ``--resume``); ``python -m proofs_check.distill_cli ...`` is the old name of the latter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DISTILL_DATASETS = {"digits-ten-class": "ten_class", "digits-odd-even": "odd_even"}
"""Datasets the command distills (scikit-learn's 8x8 digits, the fixed 70/30 split, centred)."""
DISTILL_FILES = {"checkpoint": "distill_checkpoint.npz", "npz": "distilled.npz", "png": "distilled.png",
                 "metrics": "metrics.json"}
DISTILL_CHUNK = 100
"""Steps per jitted chunk: one checkpoint and progress update after each (Ctrl-C waits for at most one)."""
EVAL_EVERY = 50
"""Steps between the validation checks of --validation-fraction where --eval-every is not given."""
DEFEND_SIZES = (10, 20, 50)
"""Default distilled set sizes of ``defend``."""
RANDOM_BASELINE_DRAWS = 5
"""Random real subsets averaged for the 'random points' baseline."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from numerics.distill import METHODS
    from proofs_check.cli import add_no_progress, folder, kernel_architecture, positive_float, positive_int, seed

    parser.add_argument("--dataset", choices=list(DISTILL_DATASETS), default="digits-ten-class",
                        help="target set: the training split of scikit-learn's 8x8 digits (test split scores)")
    parser.add_argument("--per-class", type=positive_int, default=1, help="distilled points per class")
    parser.add_argument("--method", choices=list(METHODS), default="kip",
                        help="kip: kernel-ridge MSE on the target set; rkip: RKHS distance to the full-data regressor")
    parser.add_argument("--arch", type=kernel_architecture, default="relu:2", metavar="SPEC",
                        help="architecture whose infinite-width NTK is the kernel (NTK parametrization)")
    parser.add_argument("--steps", type=positive_int, default=1000, help="Adam steps")
    parser.add_argument("--lr", type=positive_float, default=0.01, help="Adam learning rate (points and labels)")
    parser.add_argument("--validation-fraction", type=_fraction, default=0.0, metavar="F",
                        help="model selection: hold out this stratified fraction of the training split (fixed seed), "
                             "distill on the rest and keep the support set with the best validation accuracy, "
                             "checked every --eval-every steps (0: no selection, the last step is kept)")
    parser.add_argument("--eval-every", type=positive_int,
                        help=f"steps between validation checks (with --validation-fraction; default: {EVAL_EVERY})")
    parser.add_argument("--fixed-labels", action="store_true", help="keep the labels of the initial points")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the initial points (and the baselines' draws)")
    parser.add_argument("--out", type=folder, default="reports/distill", help="run folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (same settings; a larger --steps extends it)")
    add_no_progress(parser)


def _fraction(text: str) -> float:
    """A fraction in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def require_infinite_width_ntk(arch, user: str) -> None:
    """Refuse an --arch in the standard parametrization where ``user`` (distill, defend, RKIP-finite) needs its
    infinite-width NTK: that NTK grows with the hidden width and has no infinite-width limit."""
    from proofs_check.cli import UsageError

    if arch.parameterization != "ntk":
        raise UsageError(f"--arch {arch.spec}: {user} uses the infinite-width NTK, which needs the NTK "
                         "parametrization (drop param=standard)")


def settings(args) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (--steps is a budget)."""
    out = {"dataset": args.dataset, "per_class": args.per_class, "method": args.method, "arch": args.arch.spec,
           "lr": args.lr, "fixed_labels": args.fixed_labels, "seed": args.seed}
    if args.validation_fraction:
        out.update(validation_fraction=args.validation_fraction, eval_every=args.eval_every)
    return out


def check(args) -> None:
    import numpy as np

    from numerics.checkpoint import Checkpoint, CheckpointError
    from numerics.data import digits
    from proofs_check.cli import UsageError, check_resumed_settings, earlier_run

    if args.eval_every is not None and not args.validation_fraction:
        raise UsageError(f"--eval-every {args.eval_every} sets the steps between validation checks, which need "
                         "--validation-fraction F > 0 (without it the last step is kept); drop --eval-every or pass "
                         "--validation-fraction")
    args.eval_every = EVAL_EVERY if args.eval_every is None else args.eval_every
    require_infinite_width_ntk(args.arch, "distillation")
    target = digits(task=DISTILL_DATASETS[args.dataset], split="train")
    counts = np.bincount(target.labels, minlength=len(target.class_names))
    if args.validation_fraction:
        from numerics.distill import validation_split

        kept, _ = validation_split(target.labels, args.validation_fraction)
        counts = np.bincount(target.labels[kept], minlength=len(target.class_names))
    if args.per_class >= counts.min():  # a support of a whole class starts at loss ~0: nothing to distill
        k = int(np.argmin(counts))
        kept = f" after --validation-fraction {args.validation_fraction:g}" if args.validation_fraction else ""
        raise UsageError(f"--per-class {args.per_class}: {args.dataset} has only {int(counts[k])} training "
                         f"point{'' if counts[k] == 1 else 's'} of class {target.class_names[k]!r}{kept} (classes have {int(counts.min())} to "
                         f"{int(counts.max())}); distilling needs fewer per class than that (a support of the whole "
                         "class fits it exactly from the start)")
    args.previous = None
    try:
        args.previous = earlier_run(args.out, "distill", "a distillation", resume=args.resume)
        if not args.resume or args.previous is None:
            return
        check_resumed_settings(args.previous["settings"], settings(args), args.out,
                               typed=getattr(args, "typed", None), options_recorded="options" in args.previous)
        path = args.out / DISTILL_FILES["checkpoint"]
        if path.is_file():
            step = Checkpoint(path, kind="distill").peek()[0]
            if args.steps < step:
                raise UsageError(f"the distillation in {args.out} is already at step {step}; --steps {args.steps} is "
                                 f"below it (resume with --steps {step} or more, or drop --resume to start afresh)")
    except CheckpointError as error:
        raise UsageError(str(error)) from None


def baselines(arch, target, test, per_class: int, *, seed: int, progress: bool = True) -> dict[str, float]:
    """Test accuracy of kernel ridge regression on: the whole target set (with a progress bar unless not
    ``progress``), random real points (per_class of each class, mean of RANDOM_BASELINE_DRAWS draws) and the class
    means (one per class)."""
    import numpy as np

    from numerics.distill import initial_support, private_class_means, support_accuracy

    n_classes = len(target.class_names)
    rng = np.random.default_rng(seed + 1)
    random = [support_accuracy(arch, target.x[i], target.y[i], test.x, test.labels)
              for i in (initial_support(target.labels, per_class, n_classes, rng) for _ in range(RANDOM_BASELINE_DRAWS))]
    means, mean_targets = private_class_means(target)
    return {"full data": support_accuracy(arch, target.x, target.y, test.x, test.labels,
                                         progress="full-data baseline" if progress else None),
            f"random {per_class}/class (mean of {RANDOM_BASELINE_DRAWS})": float(np.mean(random)),
            "class means (1/class)": support_accuracy(arch, means, mean_targets, test.x, test.labels)}


def distilled_grid(path: Path, images, labels, *, image_shape, value_range, title: str) -> Path:
    """The distilled images, 10 per row, each titled with its label (argmax of the learned label)."""
    from proofs_check import figures

    n = len(images)
    columns = min(n, 10)
    starts = range(0, n, columns)
    return figures.image_grid(path, [list(images[k:k + columns]) for k in starts],
                              [[str(label) for label in labels[k:k + columns]] for k in starts],
                              image_shape=image_shape, value_range=value_range, title=title,
                              inches_wide=max(1.1 * columns, 3.0))


def interrupted(args, interruption: KeyboardInterrupt) -> str:
    """distill's Ctrl-C line: the step the distillation stopped at, or the step its checkpoint holds, and --resume
    (e.g. "interrupted at step 200 of 1000 (distillation); rerun with --resume to continue")."""
    from proofs_check.cli import run_folder_interrupted

    return run_folder_interrupted(args, interruption,
                                  [(DISTILL_FILES["checkpoint"], "distill", "distillation", args.steps)])


def run(args) -> int:
    import numerics  # noqa: F401  (float64 on)
    import numpy as np
    from rich.table import Table

    from numerics.audit import write_metrics
    from numerics.checkpoint import write_run
    from numerics.data import digits
    from numerics.distill import (RIDGE_FACTOR, VALIDATION_SEED, distill, distill_divergence, support_accuracy,
                                  validation_split)
    from proofs_check.cli import RunFailed, command_console, start_or_resume

    console = command_console()
    out = args.out
    paths = {key: out / name for key, name in DISTILL_FILES.items()}
    resuming = start_or_resume(console, out, paths.values(), resume=args.resume, previous=args.previous)
    if resuming and paths["checkpoint"].is_file():
        from numerics.checkpoint import Checkpoint

        step = Checkpoint(paths["checkpoint"], kind="distill").peek()[0]
        console.print(f"resuming {out}: distillation from step {step} of {args.steps}")
    write_run(out, {"command": "distill", "settings": settings(args), "options": args.recorded_options,
                     "steps": args.steps})

    task = DISTILL_DATASETS[args.dataset]
    target, test = digits(task=task, split="train"), digits(task=task, split="test")
    console.print(f"{args.method.upper()} on {target.name} (N = {target.n}) with the {args.arch.spec} NTK: "
                  f"{args.per_class} point(s) per class, {args.steps} steps")
    fit, fit_y, selection = target.x, target.y, None
    fit_labels = target.labels
    if args.validation_fraction:
        kept, held = validation_split(target.labels, args.validation_fraction)
        fit, fit_y, fit_labels = target.x[kept], target.y[kept], target.labels[kept]
        selection = (target.x[held], target.labels[held])
        console.print(f"model selection: {held.size} training digits held out (stratified, seed {VALIDATION_SEED}), "
                      f"distilling on {kept.size}; validation accuracy every {args.eval_every} steps")
    result = distill(args.arch, fit, fit_y, fit_labels, per_class=args.per_class, method=args.method,
                     steps=args.steps, lr=args.lr, learn_labels=not args.fixed_labels, seed=args.seed,
                     checkpoint=paths["checkpoint"], resume=args.resume, progress=not args.no_progress,
                     chunk=DISTILL_CHUNK, validation=selection, eval_every=args.eval_every)
    diverged = distill_divergence(result)
    if diverged is not None:
        remedy = "a smaller --lr" if not np.all(np.isfinite(result.loss_curve)) else \
            "a smaller --lr, or more --steps where the run was short (Adam's first steps can raise the loss before it falls)"
        raise RunFailed(f"the distillation diverged: {diverged}; rerun without --resume with {remedy} "
                        f"(--lr now {args.lr:g}, --steps {args.steps})")
    # the baselines can take longer than the distillation (the full data's N x N kernel; a convolutional chain's
    # took 16-19 min): say what runs, also where no progress bar is drawn
    console.print(f"scoring on {test.name} (N = {test.n}): the distilled set, then the baselines, the full-data one "
                  f"a kernel ridge regression on all N = {target.n} training digits")
    accuracy = support_accuracy(args.arch, result.x, result.y, test.x, test.labels)
    initial = support_accuracy(args.arch, fit[result.init_index], fit_y[result.init_index], test.x,
                               test.labels)
    reference = baselines(args.arch, target, test, args.per_class, seed=args.seed, progress=not args.no_progress)
    predicted = (np.argmax(result.y, axis=1) if result.y.shape[1] > 1 else (result.y[:, 0] > 0).astype(int))
    names = [target.class_names[k] for k in predicted]
    np.savez(paths["npz"], x=result.x, y=result.y, classes=result.classes, init_index=result.init_index,
             loss_curve=result.loss_curve, mean=target.mean)
    raw = target.x + target.mean
    chosen = (f"{args.steps} steps" if selection is None
              else f"step {result.info['selected_step']} of {args.steps} (validation)")
    distilled_grid(paths["png"], target.images(result.x), names, image_shape=target.image_shape,
                   value_range=(float(raw.min()), float(raw.max())),
                   title=f"{args.method.upper()} {args.per_class}/class, {args.arch.spec} NTK, {chosen}: "
                         f"test accuracy {accuracy:.3f} (label above each image)")
    metrics = {"dataset": target.name, "method": args.method, "arch": args.arch.spec, "per_class": args.per_class,
               "steps": args.steps, "resumed_from": result.info["resumed_from"], "lr": args.lr,
               "learn_labels": not args.fixed_labels, "seed": args.seed,
               "ridge": f"{RIDGE_FACTOR:g} * tr(K_SS) / M", "test_accuracy": accuracy,
               "initial_points_accuracy": initial, "baselines": reference,
               "final_loss": float(result.loss_curve[-1]), "loss_curve_first": float(result.loss_curve[0])}
    if selection is not None:
        steps_seen, accuracies = result.info["validation_curve"]
        metrics["model_selection"] = {
            "validation_fraction": args.validation_fraction, "validation_seed": VALIDATION_SEED,
            "n_validation": int(selection[0].shape[0]), "n_distilled_on": int(fit.shape[0]),
            "eval_every": args.eval_every, "selected_step": result.info["selected_step"],
            "validation_accuracy": result.info["validation_accuracy"],
            "validation_curve": {"steps": steps_seen.tolist(), "accuracy": accuracies.tolist()},
            "final_step_test_accuracy": support_accuracy(args.arch, result.info["final_x"], result.info["final_y"],
                                                         test.x, test.labels)}
    write_metrics(paths["metrics"], metrics)
    table = Table(title=f"kernel-ridge test accuracy on {test.name} (N = {test.n})")
    table.add_column("support set")
    table.add_column("points", justify="right")
    table.add_column("test accuracy", justify="right")
    table.add_row(f"[bold]{args.method.upper()} distilled[/bold]", str(result.x.shape[0]), f"{accuracy:.3f}")
    table.add_row("its initial real points", str(result.x.shape[0]), f"{initial:.3f}")
    for name, value in reference.items():
        size = target.n if name == "full data" else (len(target.class_names) if "means" in name else result.x.shape[0])
        table.add_row(name, str(size), f"{value:.3f}")
    console.print(table)
    if selection is not None:
        console.print(f"selected step {result.info['selected_step']} (validation accuracy "
                      f"{result.info['validation_accuracy']:.4f} on {selection[0].shape[0]} held-out training digits)")
    console.print(f"files: {', '.join(str(paths[k]) for k in ('png', 'npz', 'metrics'))}")
    return 0


# ---------------------------------------------------------------------------------------------------------
# defend
# ---------------------------------------------------------------------------------------------------------

def _distance_list(text: str):
    """Comma-separated minimum distances, each once; 'none' = no constraint."""
    import math

    from proofs_check.cli import distinct

    values = []
    for item in text.split(","):
        item = item.strip().lower()
        if item == "none":
            values.append(None)
            continue
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is neither a number nor 'none'") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"minimum distances must be finite and > 0, got {item}")
        values.append(value)
    return distinct(tuple(values), text)


def defend_arguments(parser: argparse.ArgumentParser) -> None:
    from proofs_check.cli import _int_list, folder, kernel_architecture, nonnegative_int, positive_int, seed

    parser.add_argument("--per-class", type=positive_int, default=10, help="private digits per class (N = 10 x this)")
    parser.add_argument("--sizes", type=_int_list, default=DEFEND_SIZES,
                        help="distilled set sizes, comma-separated multiples of 10")
    parser.add_argument("--distances", type=_distance_list, default=(None, 1.5),
                        help="minimum (rescaled) distances to every private point, comma-separated; none = unconstrained")
    parser.add_argument("--arch", type=kernel_architecture, default="relu:2", metavar="SPEC", help="the NTK's architecture")
    parser.add_argument("--attack-steps", type=positive_int, default=1000, help="Adam steps of every attack")
    parser.add_argument("--restarts", type=positive_int, default=1, help="attack restarts")
    parser.add_argument("--polish", type=nonnegative_int, default=200,
                        help="L-BFGS iterations after the attack (0: no polish)")
    parser.add_argument("--distill-steps", type=positive_int, default=1000, help="KIP steps per distilled set")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the private draw, distillation and attacks")
    parser.add_argument("--out", type=folder, default="reports/defend", help="output folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (same settings): the settings it finished are read back, "
                             "the one in progress starts again")


def defend_settings(args) -> dict[str, Any]:
    """What a resumed ``defend`` must share with the run it continues (every option: the rows read back were
    computed with them)."""
    return {"per_class": args.per_class, "sizes": list(args.sizes),
            "distances": ["none" if r is None else r for r in args.distances], "arch": args.arch.spec,
            "attack_steps": args.attack_steps, "restarts": args.restarts, "polish": args.polish,
            "distill_steps": args.distill_steps, "seed": args.seed}


def defend_check(args) -> None:
    import numpy as np

    from numerics.data import digits
    from proofs_check.cli import UsageError

    require_infinite_width_ntk(args.arch, "the kernel-regime model")
    bad = [k for k in args.sizes if k % 10]
    if bad:
        raise UsageError(f"--sizes {bad[0]}: distilled sizes must be multiples of the 10 classes")
    over = [k for k in args.sizes if k > 10 * args.per_class]
    if over:
        given = "" if args.sizes != DEFEND_SIZES else f" (the default sizes are {','.join(map(str, DEFEND_SIZES))})"
        raise UsageError(f"--sizes {over[0]}: a distilled set larger than the private set ({10 * args.per_class}) "
                         f"defends nothing{given}")
    train = digits(task="ten_class", split="train")
    counts = np.bincount(train.labels, minlength=10)
    held_out = min(args.sizes) // 10  # per class, for the held-out-points baseline (trivial_training_sets)
    if args.per_class > counts.min() - held_out:
        raise UsageError(f"--per-class {args.per_class}: the training split has {int(counts.min())} digits of its "
                         f"smallest class, and the held-out baseline takes {held_out} of each class outside the private "
                         f"set (as many as the smallest distilled set, --sizes {min(args.sizes)}): at most "
                         f"{int(counts.min()) - held_out}")
    private = digits(task="ten_class", per_class=args.per_class, seed=args.seed)
    smallest = float(np.linalg.norm(private.x, axis=1).min())
    impossible = [r for r in args.distances if r is not None and r >= smallest]
    if impossible:
        raise UsageError(f"--distances {impossible[0]:g} cannot be met: the private digit closest to the origin has "
                         f"norm {smallest:.4g}, and no point is farther than that from it after rescaling")
    from numerics.checkpoint import CheckpointError, FileError
    from numerics.distill import DEFENSE_ROWS_FILE, load_defense_rows
    from proofs_check.cli import check_resumed_settings, earlier_run

    args.previous, args.finished_rows = None, []
    try:
        args.previous = earlier_run(args.out, "defend", "a defend run", resume=args.resume)
        if args.resume and args.previous is not None:
            check_resumed_settings(args.previous["settings"], defend_settings(args), args.out,
                                   typed=getattr(args, "typed", None), options_recorded="options" in args.previous)
            args.finished_rows = load_defense_rows(args.out / DEFENSE_ROWS_FILE)
    except (CheckpointError, FileError) as error:
        raise UsageError(str(error)) from None


def trivial_training_sets(private, references, *, size: int, seed: int) -> dict[str, tuple]:
    """The trivial stand-ins that form a training set, by their leakage-row names, as (x, y):
    numerics.distill.held_out_training_sets ("class means" of the whole pool, and ``size`` held-out "held-out
    points" drawn with default_rng(seed + 1)). Nothing in them is private."""
    import numpy as np

    from numerics.distill import held_out_training_sets

    return held_out_training_sets(private, references, size=size, rng=np.random.default_rng(seed + 1))


def defend_interrupted(args, interruption: KeyboardInterrupt) -> str:
    """defend's Ctrl-C line: where it stopped, how many settings the run folder keeps (tradeoff.json, "complete":
    false, and the rows themselves for --resume) and how to go on."""
    from proofs_check.cli import step_text

    done = getattr(args, "settings_done", 0)
    where = step_text(interruption)
    if not done:
        return f"interrupted{where}; no setting was finished yet: rerun the same command to start again"
    return (f"interrupted{where}; {args.out} keeps the {done} setting(s) finished (tradeoff.json: \"complete\": "
            "false): rerun with --resume to continue")


def defend(args) -> int:
    import numerics  # noqa: F401  (float64 on)

    from numerics import audit, privacy
    from numerics.checkpoint import raise_if_interrupted, write_run
    from numerics.data import digits
    from numerics.distill import DEFENSE_ROWS_FILE, defense_experiment, save_defense_rows, support_accuracy
    from proofs_check import figures
    from proofs_check.claims import t4
    from proofs_check.cli import command_console, start_or_resume
    from proofs_check.report import ByWidth

    console = command_console()
    out = args.out
    resuming = start_or_resume(console, out, [out / DEFENSE_ROWS_FILE, out / "tradeoff.json", out / "tradeoff.png"],
                               resume=args.resume, previous=getattr(args, "previous", None))
    finished = getattr(args, "finished_rows", []) if resuming else []
    write_run(out, {"command": "defend", "settings": defend_settings(args),
                    "options": getattr(args, "recorded_options", {})})
    if resuming:
        console.print(f"resuming {out}: {len(finished)} setting(s) finished earlier are read back")
    private = digits(task="ten_class", per_class=args.per_class, seed=args.seed)
    test = digits(task="ten_class", split="test")
    references = audit.reference_sets("digits-ten-class", private)
    n_recon = 2 * private.n
    console.print(f"private set: {private.n} digits; attacks with M = {n_recon}, {args.attack_steps} steps; "
                  f"distilled sizes {', '.join(map(str, args.sizes))}, minimum distances "
                  f"{', '.join('none' if r is None else f'{r:g}' for r in args.distances)} (none: unconstrained); and "
                  "the private set's class means")
    record = {"private": private.name, "n_private": private.n, "n_recon": n_recon, "attack_steps": args.attack_steps,
              "restarts": args.restarts, "polish": args.polish, "distill_steps": args.distill_steps,
              "arch": args.arch.spec, "seed": args.seed,
              "success_measure": "numerics.privacy.revealed, factor 2, public set = the digits test split"}

    args.settings_done = len(finished)  # for the Ctrl-C line (defend_interrupted)

    def partial(rows):
        save_defense_rows(out / DEFENSE_ROWS_FILE, rows)
        audit.write_metrics(out / "tradeoff.json", {**record, "complete": False, "settings": t4.rows_json(rows)})
        args.settings_done = len(rows)
        raise_if_interrupted()  # a Ctrl-C that Python discarded during this setting stops here

    rows = defense_experiment(args.arch, private, test, references, sizes=args.sizes, distances=args.distances,
                              n_recon=n_recon, attack_steps=args.attack_steps, restarts=args.restarts,
                              polish_iterations=args.polish, distill_steps=args.distill_steps, seed=args.seed,
                              class_means=True, advance=lambda message: console.print(message), on_row=partial,
                              finished=finished)
    stand_ins = {}
    for name, (x, y) in trivial_training_sets(private, references, size=min(args.sizes), seed=args.seed).items():
        own = privacy.leakage_scores(x, private.x, references.public)
        stand_ins[name] = {"points": int(x.shape[0]), "test_accuracy": support_accuracy(args.arch, x, y, test.x,
                                                                                      test.labels),
                           "training_points_revealed": own["revealed"]}
    trivial_models = {f"{stand_in['points']} {TRIVIAL_ROW_NAMES.get(name, name)}":
                      (stand_in["test_accuracy"], rows[0].leakage[name]["revealed"])
                      for name, stand_in in stand_ins.items() if name in rows[0].leakage}
    fig = t4.tradeoff_figure(None, rows, title=f"attack on kernel-regime models ({args.arch.spec} NTK), M = {n_recon}, "
                                               f"{args.attack_steps} steps; private N = {private.n}",
                             trivial_models=trivial_models)
    png = figures.save(fig, args.out / "tradeoff.png")
    path = audit.write_metrics(args.out / "tradeoff.json", {
        **record, "complete": True, "settings": t4.rows_json(rows), "trivial_test_accuracy": stand_ins})
    console.print(ByWidth(lambda: defend_table(rows, stand_ins, stacked=False),
                          lambda: defend_table(rows, stand_ins, stacked=True)))
    console.print(f"revealed: by the attack on the model (M = {n_recon} reconstructions), or by the trivial "
                  "reconstructions themselves; its points revealed: the model's training points scored as "
                  "reconstructions (what an attack that recovers them exactly reveals). Trivial rows hold no private "
                  "data: their test accuracy is that of a model trained on them where they form a training set (the "
                  "held-out digits' class means; held-out digits, as many as the smallest distilled set); a defense "
                  "pays only if it beats them")
    console.print(f"files: {png}, {path}")
    return 0


def defend_table(rows, stand_ins: dict, *, stacked: bool):
    """``defend``'s table: a model per row, a column per measure; ``stacked`` (narrow terminals: at 60 columns the
    seven columns cut "model trained on" to "trai...") keeps three columns, the other measures in words under the
    model's name."""
    from rich.table import Table

    columns = ("model trained on", "points", "min distance", "revealed", "SSIM >= 0.4", "its points revealed",
               "test accuracy")
    shown_columns = (columns[0], columns[3], columns[6]) if stacked else columns
    table = Table(title="revealed private points against test accuracy", show_lines=stacked)
    for column in shown_columns:
        table.add_column(column, justify="left" if column == "model trained on" else "right")

    def add(cells):
        if stacked:
            words = ", ".join(f"{name} {value}" for name, value in zip(columns[1:], cells[1:])
                              if name not in shown_columns and value != "-")
            table.add_row(f"{cells[0]}\n{words}", *(cells[columns.index(name)] for name in shown_columns[1:]))
        else:
            table.add_row(*cells)

    for row in rows:
        attack = row.leakage["attack"]
        add([row.name, str(row.size), "-" if row.min_distance is None else f"{row.min_distance:g}",
             f"{attack['revealed']:.0%}", f"{attack['ssim_ge_0.4']:.0%}", f"{row.training_leakage['revealed']:.0%}",
             f"{row.test_accuracy:.3f}"])
    trivial = {k: v for k, v in rows[0].leakage.items() if v.get("trivial")}
    for name, value in trivial.items():
        stand_in = stand_ins.get(name)
        shown = TRIVIAL_ROW_NAMES.get(name, name)
        add([f"{shown} (trivial)", "-" if stand_in is None else str(stand_in["points"]), "-",
             f"{value['revealed']:.0%}", f"{value['ssim_ge_0.4']:.0%}",
             "-" if stand_in is None else f"{stand_in['training_points_revealed']:.0%}",
             "-" if stand_in is None else f"{stand_in['test_accuracy']:.3f}"])
    return table


TRIVIAL_ROW_NAMES = {"class means": "held-out class means", "held-out points": "held-out points"}
"""How ``defend``'s table names the trivial reconstructions (numerics.privacy.trivial_reconstructions; "held-out":
training digits outside the private set): the private set's own class means are a row of their own."""


RKIP_FINITE_WIDTH = 512
"""Default hidden width of ``proofs-check rkip-finite``."""
RKIP_FINITE_RESULT = "rkip_finite.json"
"""What ``rkip-finite`` writes at its end (every number of the experiment); its stages' files are
numerics.distill.RKIP_FINITE_FILES."""


def rkip_finite_arguments(parser: argparse.ArgumentParser) -> None:
    from proofs_check.cli import add_no_progress, folder, kernel_architecture, positive_int, seed

    parser.add_argument("--n", type=positive_int, default=20, help="training digits (even; at most the distinct ones)")
    parser.add_argument("--recon", type=positive_int, default=10, help="reconstructions M < N")
    parser.add_argument("--width", type=positive_int, default=None,
                        help=f"hidden width (default {RKIP_FINITE_WIDTH}; only where it sets a layer of --arch)")
    parser.add_argument("--steps", type=positive_int, default=2000, help="attack steps")
    parser.add_argument("--train-steps", type=positive_int, default=5000,
                        help="training step budget of every network (the attacked one and the fresh ones)")
    parser.add_argument("--arch", type=kernel_architecture, default="relu:2", metavar="SPEC",
                        help="architecture of every network (the attacked one and the fresh ones) and of the kernel "
                             "regression (its infinite-width NTK)")
    parser.add_argument("--seed", type=seed, default=0,
                        help="seed of the digits drawn, the attacked network's init and the attack's start")
    parser.add_argument("--out", type=folder, default="reports/rkip-finite", help="run folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (same settings): the stages it finished are read back, the "
                             "one in progress continues from its checkpoint")
    add_no_progress(parser)


def rkip_finite_settings(args) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (all of it: the stages read back were computed
    with these, the step budgets included)."""
    return {"n": args.n, "recon": args.recon, "seed": args.seed, "arch": args.arch.spec, "width": args.width,
            "steps": args.steps, "train_steps": args.train_steps}


def rkip_finite_check(args) -> None:
    from numerics import audit
    from numerics.checkpoint import CheckpointError
    from numerics.networks import check_network_size
    from proofs_check.cli import UsageError, check_resumed_settings, earlier_run, unused_width

    try:
        audit.check_n("digits-odd-even", args.n)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.recon >= args.n:
        raise UsageError(f"--recon {args.recon}: the reconstructions must be fewer than --n {args.n} (M < N is "
                         "distillation)")
    require_infinite_width_ntk(args.arch, "the kernel regression")
    unused = unused_width(args.width, [args.arch])
    if unused is not None:
        raise UsageError(unused)
    args.width = RKIP_FINITE_WIDTH if args.width is None else args.width
    try:
        check_network_size(args.arch, args.width, audit.input_dimension("digits-odd-even"))
    except ValueError as error:
        raise UsageError(str(error)) from None
    args.previous = None
    try:
        args.previous = earlier_run(args.out, "rkip-finite", "an RKIP-finite run", resume=args.resume)
        if args.resume and args.previous is not None:
            check_resumed_settings(args.previous["settings"], rkip_finite_settings(args), args.out,
                                   typed=getattr(args, "typed", None), options_recorded="options" in args.previous)
    except CheckpointError as error:
        raise UsageError(str(error)) from None


def rkip_finite_kept(out: Path, args=None, interruption: KeyboardInterrupt | None = None) -> list[str]:
    """What the run folder ``out`` keeps of an RKIP-finite run, stage by stage, in words (for the Ctrl-C line).
    ``interruption`` (numerics.checkpoint.Interrupted) says whether the loop it stopped had ended (training that met
    its loss target before its budget: its checkpoint is complete, not "at step 205 of 5000")."""
    from numerics.checkpoint import Checkpoint, CheckpointError
    from numerics.distill import RKIP_FINITE_FILES, RKIP_FINITE_NETWORK_SEEDS, rkip_finite_stages

    files = {key: out / name for key, name in RKIP_FINITE_FILES.items()}
    stages = rkip_finite_stages(out)
    step = getattr(interruption, "step", None)
    ended = {interruption.what: step} if step and step == interruption.total else {}

    def checkpoint(key, kind, what, budget):
        try:
            step = Checkpoint(files[key], kind=kind).peek()[0]
        except CheckpointError:  # absent or unreadable
            return []
        if ended.get(what) == step:
            return [f"{what} complete at step {step} (its checkpoint)"]
        return [f"{what} at step {step}{'' if budget is None else f' of {budget}'} (its checkpoint)"]

    if "training" not in stages or not files["model"].is_file():
        return checkpoint("train", "train", "training", getattr(args, "train_steps", None))
    kept = ["the trained network"]
    if "attack" not in stages or not files["reconstructions"].is_file():
        return kept + checkpoint("attack", "attack", "the attack", getattr(args, "steps", None))
    kept.append("the reconstructions")
    done = sum(len(values) for values in stages.get("networks", {}).values())
    if done:
        kept.append(f"{done} of {2 * len(RKIP_FINITE_NETWORK_SEEDS)} fresh networks' accuracies")
    return kept


def rkip_finite_interrupted(args, interruption: KeyboardInterrupt) -> str:
    """rkip-finite's Ctrl-C line: where it stopped, what the run folder keeps, and --resume (e.g. "interrupted at
    step 300 of 2000 (the attack); runs/r keeps the trained network and the attack at step 300 of 2000 (its
    checkpoint): rerun with --resume to continue")."""
    from proofs_check.cli import step_text

    where = step_text(interruption)
    out = getattr(args, "out", None)
    kept = rkip_finite_kept(out, args, interruption) if isinstance(out, Path) and getattr(args, "running", False) else []
    if not kept:
        return f"interrupted{where}; nothing was saved yet: rerun the same command to start again"
    shown = kept[0] if len(kept) == 1 else f"{', '.join(kept[:-1])} and {kept[-1]}"
    return f"interrupted{where}; {out} keeps {shown}: rerun with --resume to continue"


def rkip_finite_run(args) -> int:
    """``proofs-check rkip-finite``: RKIP-finite on digits odd/even (numerics.distill.rkip_finite_experiment), a table
    on screen and every number in rkip_finite.json; each stage saved in --out as it ends (--resume continues)."""
    import numerics  # noqa: F401  (float64 on)

    from numerics.audit import write_metrics
    from numerics.checkpoint import write_run
    from numerics.distill import RKIP_FINITE_FILES, rkip_finite_experiment
    from proofs_check.cli import command_console, start_or_resume

    console = command_console()
    out = args.out
    resuming = start_or_resume(console, out, [*(out / name for name in RKIP_FINITE_FILES.values()),
                                              out / RKIP_FINITE_RESULT], resume=args.resume, previous=args.previous)
    write_run(out, {"command": "rkip-finite", "settings": rkip_finite_settings(args),
                    "options": args.recorded_options})
    args.running = True  # the Ctrl-C line reads the folder from here on (rkip_finite_interrupted)
    if resuming:
        console.print(f"resuming {out}: the stages it finished are read back")
    console.print(f"RKIP-finite: {args.arch.named(args.width)} on N = {args.n} digits (odd vs even, seed {args.seed}), "
                  f"M = {args.recon} reconstructions, {args.steps} attack steps")
    result = rkip_finite_experiment(args.arch, n=args.n, n_recon=args.recon, width=args.width, steps=args.steps,
                                    train_steps=args.train_steps, seed=args.seed, progress=not args.no_progress,
                                    folder=out, resume=resuming, report=lambda message: console.print(message))
    write_metrics(out / RKIP_FINITE_RESULT, result)
    attacked = result["training"]["attacked"]
    reasons = [attacked["stop_reason"], *(reason for name, values in result["training"].items() if name != "attacked"
                                          for reason in values)]
    stopped = sum(reason != "threshold" for reason in reasons)
    if stopped:
        print(f"note: training stopped before its loss target in {stopped} of {len(reasons)} networks (the attacked "
              f"one: {attacked['stop_reason']} at step {attacked['steps']}, loss {attacked['final_loss']:.3g}); the "
              "accuracies are those networks' as they are (raise --train-steps to train further; rkip_finite.json: "
              "training)", file=sys.stderr)
    console.print(rkip_finite_table(result))
    console.print(f"gap: {result['gap_points']:.1f} points (fresh networks' mean accuracy on the originals minus on "
                  "the reconstructions: near 0, the M points teach what the N did); attack loss / ||Delta theta||^2 = "
                  f"{result['relative_attack_loss']:.3g} (0: Delta theta fitted exactly; 1: no better than lambda = 0)")
    console.print(f"files: {out / RKIP_FINITE_RESULT}")
    return 0


def rkip_finite_main(argv: list[str] | None = None) -> int:
    """``python -m proofs_check.distill_cli ...``: the old name of ``proofs-check rkip-finite ...``, kept for notes
    that use it: the same command (its output and exit status)."""
    from proofs_check.cli import main

    return main(["rkip-finite", *(sys.argv[1:] if argv is None else argv)])


def rkip_finite_table(result: dict):
    """The test accuracies of :func:`numerics.distill.rkip_finite_experiment`'s record, one row per training set
    and one column per kind of model; the attacked network (trained on the N digits) has a column of its own."""
    import numpy as np
    from rich.table import Table

    n, m = result["N"], result["M"]
    table = Table(title=f"RKIP-finite: test accuracy (digits, odd vs even) of models trained on N = {n} digits or on "
                        f"M = {m} points")
    table.add_column("trained on")
    for name in ("fresh networks\n(mean)", "each fresh\nnetwork", "kernel\nregression", "the attacked\nnetwork"):
        table.add_column(name, justify="right", no_wrap=True)
    for name, key, bold, attacked in (
            (f"N = {n} training digits", "original", False, f"{result['trained_network']:.3f}"),
            (f"M = {m} reconstructions (X_R, y_R)", "reconstructed", True, "-")):
        values = result[f"networks_{key}"]
        table.add_row(f"[bold]{name}[/bold]" if bold else name, f"{np.mean(values):.3f}",
                      ", ".join(f"{v:.3f}" for v in values), f"{result[f'krr_{key}']:.3f}", attacked)
    table.add_row(f"M = {m} random training digits (mean of 5)", "-", "-", f"{result['krr_random_subset']:.3f}", "-")
    return table


if __name__ == "__main__":  # the old name of ``proofs-check rkip-finite``: the program itself, that subcommand
    sys.argv[1:1] = ["rkip-finite"]
    from proofs_check.launcher import main as program

    program()
