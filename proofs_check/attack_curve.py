"""``proofs-check attack-curve``: the attack's success against its step budget, for several architectures and
training modes on one private set, beside the trivial baselines (numerics.privacy).

For each architecture (``--arch``, any spec: fully connected, residual, convolutional) and training mode
(``--training``), one network is trained (numerics.audit.train_on) and attacked once
(numerics.attack.parameter_space_attack, the largest of ``--budgets`` Adam steps, its softplus annealing spread
over all of them); the reconstructions reached after each budget in ``--budgets`` are scored by
numerics.audit.leakage. Writes
``OUT/attack_curve.json`` (every score), ``OUT/attack_curve.png`` (revealed fraction and SSIM >= 0.9 fraction
against the budget; each trivial baseline a horizontal line), ``OUT/run.json`` (the settings, for ``--resume``)
and, per series, ``OUT/<arch>-<hash>-<training>/`` (:func:`_folder_name`): ``model.npz``, ``series.json`` (its
training, then its scores),
the training and attack checkpoints and ``reconstructions-<steps>.npz`` (the reconstructions at each budget,
saved as the attack reaches it). ``--resume`` reads every finished series back and continues the one in progress
from its last saved chunk, so that an interrupted and resumed run scores what an uninterrupted one does (exactly,
or up to float rounding where slow steps size the attack's chunks by their measured time).
``--combine DIR...`` draws earlier runs (e.g. one per architecture, run in parallel) in one figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
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
    from proofs_check.cli import MAX_COUNT

    if max(values) > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{max(values)} in {text!r} is too large: at most {MAX_COUNT}")
    if list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"budgets must increase, got {text}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from numerics.audit import DATASETS
    from proofs_check.cli import add_no_progress, architecture, folder, positive_float, positive_int, seed

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
                             "the largest")
    parser.add_argument("--lr", type=positive_float, default=0.02, help="attack learning rate")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the data draw, the networks and the attacks")
    parser.add_argument("--out", type=folder, default="reports/attack-curve", help="output folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out: finished series are read back, the one in progress resumes "
                             "its training or attack (same settings, --budgets included)")
    add_no_progress(parser)
    parser.add_argument("--rescale", action="store_true",
                        help="attack Delta theta / s with s = ||Delta theta|| / sqrt(M mean_x Theta_0(x, x)) over M public "
                             "points, so that the coefficients lambda start at their scale (the reconstructions are "
                             "those of the unscaled loss: lambda = s mu)")
    parser.add_argument("--combine", nargs="+", type=folder, metavar="DIR",
                        help="train and attack nothing: draw the series of earlier attack-curve runs (same dataset, "
                             "N, seed and budgets) in one figure and JSON in --out")


DEFAULT_WIDTH = 1024

RESULT = "attack_curve.json"
FIGURE = "attack_curve.png"
SAME = ("dataset", "n", "recon", "seed", "budgets")
"""What combined runs must share."""
SERIES_FILES = {"record": "series.json", "model": "model.npz", "train": "train_checkpoint.npz",
                "attack": "attack_checkpoint.npz", "clock": "attack_clock.json"}
"""The files of one series in its folder ``OUT/<arch>-<hash>-<training>/`` (:func:`_folder_name`), besides
:data:`SNAPSHOT` at each budget."""
SNAPSHOT = "reconstructions-{steps}.npz"
"""The reconstructions after ``steps`` attack steps and the attack's seconds to them (x, seconds)."""


RUN_OPTIONS = ("arch", "width", "training", "dataset", "n", "train_steps", "budgets", "lr", "seed", "rescale")
"""The options (destinations) that describe the series to run; --combine draws earlier runs instead."""


def settings(args) -> dict[str, Any]:
    """What a resumed run must share with the run it continues: everything that changes a series' scores. The
    budgets too: the attack anneals its softplus over the largest, and a finished series has no reconstructions
    at a budget added later."""
    return {"arch": [arch.spec for arch in args.arch], "training": list(args.training),
            "width": args.width if any(arch.width_sets_layers for arch in args.arch) else None,
            "dataset": args.dataset, "n": args.n, "seed": args.seed, "train_steps": args.train_steps,
            "budgets": list(args.budgets), "lr": args.lr, "rescale": bool(args.rescale)}


def _shown(name: str, value: Any) -> str:
    """A setting as the refusal of a --resume names it."""
    if name in ("arch", "training", "budgets") and isinstance(value, list):
        return ", ".join(map(str, value)) if name != "budgets" else ",".join(map(str, value))
    if name == "rescale":
        return "on" if value else "off"
    return str(value)


def _combined(folders) -> dict:
    from proofs_check.cli import UsageError

    records = []
    for folder in folders:
        try:
            records.append(json.loads((folder / RESULT).read_text()))
        except (OSError, ValueError, RecursionError):
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
    from numerics.checkpoint import FileError
    from proofs_check.cli import UsageError, check_resumed_settings, earlier_run, given_twice, unused_width
    from theory.architecture import parse_spec

    if args.combine:
        given = [name for name in ("arch", "training", "resume") if getattr(args, name)]
        if given:
            raise UsageError(f"--{given[0]} describes {'a run to continue' if given[0] == 'resume' else 'runs to make'}"
                             "; --combine draws earlier ones")
        seen = {}
        for folder in args.combine:
            if folder.resolve() in seen:
                raise UsageError(f"--combine {folder} is given twice ({seen[folder.resolve()]} is the same folder): "
                                 "its series would be drawn twice")
            seen[folder.resolve()] = folder
        if any(args.out.resolve() == folder.resolve() for folder in args.combine):
            raise UsageError(f"--out {args.out} is one of the --combine folders: its {RESULT} would be replaced by the "
                             "combination; choose another --out")
        args.record = _combined(args.combine)
        return
    args.arch = args.arch or [parse_spec(spec) for spec in DEFAULT_ARCHS]
    args.training = args.training or list(TRAININGS)
    for option, values in (("--arch", [arch.spec for arch in args.arch]), ("--training", args.training)):
        twice = given_twice(option, values, "each would train and attack the same series")
        if twice is not None:
            raise UsageError(twice)
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
    args.previous = None
    try:
        args.previous = earlier_run(args.out, "attack-curve", "an attack-curve run", resume=args.resume)
        if not args.resume or args.previous is None:
            return
        check_resumed_settings(args.previous["settings"], settings(args), args.out, _shown,
                               typed=getattr(args, "typed", None), options_recorded="options" in args.previous)
        for arch, training, folder in plan(args):  # every saved piece readable before any work
            try:
                _saved_series(args, folder, arch)
            except FileError as error:
                text = str(error)
                raise UsageError(text if "remove it" in text else f"{text}; remove {folder} to redo that series, or "
                                 "drop --resume to start afresh") from None
    except FileError as error:  # run.json that cannot be used
        raise UsageError(str(error)) from None


def plan(args) -> list[tuple[Any, str, Path]]:
    """The series of the run, in order: (architecture, training mode, folder)."""
    return [(arch, training, args.out / _folder_name(arch.spec, training))
            for arch in args.arch for training in args.training]


def _saved_series(args, folder: Path, arch) -> dict:
    """What a series folder holds, read and checked (numerics.checkpoint.FileError, one line, for a file that
    cannot be used): "record" (series.json, or None), "model" (numerics.training.SavedModel, or None), "train" and
    "attack" (the step each checkpoint reached, or None) and "snapshots" ({steps: (x, seconds)})."""
    from numerics import audit
    from numerics.checkpoint import Checkpoint, CheckpointError, first_difference, read_npz
    from numerics.training import load_model

    paths = {key: folder / name for key, name in SERIES_FILES.items()}
    saved: dict[str, Any] = {"record": None, "model": None, "train": None, "attack": None, "snapshots": {}}
    if paths["record"].is_file():
        try:
            record = json.loads(paths["record"].read_text())
        except (OSError, ValueError, RecursionError) as error:
            raise CheckpointError(f"{paths['record']} is unreadable ({error}); remove it to redo that series") from None
        problem = _record_problem(record, args.budgets)
        if problem:
            raise CheckpointError(f"{paths['record']} is not an attack-curve series record ({problem}); remove it to "
                                  "redo that series")
        if first_difference(record.get("settings", {}), settings(args)) is not None:
            raise CheckpointError(f"{paths['record']} was written by a run with other settings than {args.out}; "
                                  "remove it to redo that series")
        saved["record"] = record
        if record.get("complete"):
            return saved
    if paths["model"].is_file():
        saved["model"] = load_model(paths["model"])
    for key in ("train", "attack"):
        if paths[key].is_file():
            saved[key] = Checkpoint(paths[key], kind=key).peek()[0]
    shape = ((2 * args.n, audit.input_dimension(args.dataset)), ("f",))
    for budget in args.budgets:
        path = folder / SNAPSHOT.format(steps=budget)
        if path.is_file():
            arrays = read_npz(path, what="attack-curve reconstructions", max_other_bytes=0,
                              expected={"x": shape, "seconds": ((), ("f",))})
            if set(arrays) != {"x", "seconds"}:
                raise CheckpointError(f"{path} lacks its reconstructions or their time; remove it to redo that "
                                      "series' attack")
            saved["snapshots"][budget] = (arrays["x"], float(arrays["seconds"]))
    return saved


def _record_problem(record: Any, budgets) -> str | None:
    """What makes a series.json unusable by --resume, or None: every field the run reads back, with its type (its
    training, and once complete its scores at each budget in order and the baselines' rows)."""
    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if not isinstance(record, dict):
        return "not a JSON object"
    trained = record.get("training")
    if not isinstance(trained, dict):
        return "no training record"
    kinds = {"train_steps": lambda v: isinstance(v, int) and not isinstance(v, bool), "final_train_loss": number,
             "train_learning_rate": number, "stop_reason": lambda v: isinstance(v, str),
             "resumed_from": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))}
    for key, fits in kinds.items():
        if key not in trained or not fits(trained[key]):
            return f"training.{key} missing or of the wrong type"
    if not record.get("complete"):
        return None
    entry, baselines = record.get("entry"), record.get("baselines")
    if not isinstance(entry, dict) or not isinstance(baselines, dict):
        return "no scores"
    points = entry.get("points")
    if not isinstance(points, list) or len(points) != len(budgets):
        return f"not one score per budget ({len(budgets)})"
    for point, budget in zip(points, budgets):
        if not (isinstance(point, dict) and point.get("steps") == budget and number(point.get("revealed"))
                and number(point.get("seconds"))
                and all(number(point[key]) for key in ("ssim_ge_0.9", "ssim_ge_0.4") if key in point)):
            return f"the score at {budget} steps is damaged"
    for name, row in baselines.items():
        if not (isinstance(row, dict) and number(row.get("revealed"))
                and all(number(value) for value in row.values())):
            return f"the baseline row {name!r} is damaged"
    return None


def _folder_name(spec: str, training: str) -> str:
    readable = "".join(c if c.isalnum() or c in "=." else "-" for c in spec).strip("-")[:40]
    return f"{readable}-{hashlib.sha256(spec.encode()).hexdigest()[:6]}-{training}"


def interrupted(args, interruption: KeyboardInterrupt) -> str:
    """attack-curve's Ctrl-C line: the step a loop stopped at (else what the series folder holds) and the series it
    belongs to, and --resume where anything is saved (every series before it is), e.g. "interrupted at step 500 of
    2000 (the attack) in series 2 of 4 (relu:2, standard); rerun with --resume to continue"."""
    from proofs_check.cli import _interrupted_text, _saved_progress, step_text

    if getattr(args, "combine", None):
        return _interrupted_text(interruption, resumable=False)
    now, done = getattr(args, "series_now", None), getattr(args, "series_done", 0)
    if now is None:
        saved = f" with all {done} series finished" if done else ""
    else:
        k, total, spec, training, folder = now
        where = step_text(interruption) or _saved_progress(folder, [
            (SERIES_FILES["attack"], "attack", "the attack", max(args.budgets)),
            (SERIES_FILES["model"], None, "the trained model", None),
            (SERIES_FILES["train"], "train", "training", args.train_steps)])
        saved = f"{where} in series {k} of {total} ({spec}, {training})" if where or k > 1 else ""
    # a resumed run's folder holds a run even before anything new is saved: a plain rerun would start it afresh
    resumable = bool(saved) or (getattr(args, "resume", False) and getattr(args, "previous", None) is not None)
    # the shared wording, with the step (already in ``saved``) and the series it belongs to
    return _interrupted_text(KeyboardInterrupt(), resumable=resumable, started=True, saved=saved)


def _write_json(path: Path, record: dict) -> Path:
    """``record`` as JSON, written under a temporary name and renamed (never a torn file)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(audit_plain(record), indent=2))
    os.replace(temporary, path)
    return path


def _write_snapshot(path: Path, x, seconds: float) -> Path:
    """The reconstructions at one budget (float64) and the attack's seconds to them, written atomically."""
    import numpy as np

    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, x=np.asarray(x, dtype=np.float64), seconds=np.asarray(float(seconds)))
    os.replace(temporary, path)
    return path


def _series_files(folder: Path) -> list[Path]:
    """Every file a series writes in ``folder`` (removed when a run starts afresh)."""
    return [*(folder / name for name in SERIES_FILES.values()), *sorted(folder.glob(SNAPSHOT.format(steps="*")))]


def run(args) -> int:
    import numerics  # noqa: F401  (float64 on)

    from numerics import audit
    from numerics.checkpoint import raise_if_interrupted, write_run
    from proofs_check.cli import command_console, start_or_resume

    console = command_console()
    out: Path = args.out
    if args.combine:
        return _finish(console, out, args.record)
    series_plan = plan(args)
    earlier = []  # the earlier run's series folders: its files go when this run starts afresh
    if args.previous is not None:
        stored = args.previous["settings"]
        specs, trainings = (value if isinstance(value, list) else [] for value in (stored.get("arch"),
                                                                                    stored.get("training")))
        earlier = [out / _folder_name(spec, training) for spec in specs for training in trainings
                   if isinstance(spec, str) and training in TRAININGS]
    resuming = start_or_resume(console, out, [out / RESULT, out / FIGURE, *(path for folder in earlier
                                                                          for path in _series_files(folder))],
                               resume=args.resume, previous=args.previous)
    if not resuming:  # also a folder whose run.json is gone: nothing of a series may pass for this run's
        for _, _, folder in series_plan:
            for path in _series_files(folder):
                path.unlink(missing_ok=True)
    write_run(out, {"command": "attack-curve", "settings": settings(args), "options": args.recorded_options})
    dataset = audit.load_dataset(args.dataset, args.n, seed=args.seed)
    references = audit.reference_sets(args.dataset, dataset, seed=args.seed)
    series: list[dict[str, Any]] = []
    baselines: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    args.series_done = 0
    for k, (arch, training, folder) in enumerate(series_plan, 1):
        args.series_now = (k, len(series_plan), arch.spec, training, folder)  # for the Ctrl-C line (interrupted)
        raise_if_interrupted()  # a Ctrl-C that Python discarded during the previous series
        entry, rows = _series(args, console, dataset, references, arch, training, folder, resuming=resuming)
        series.append(entry)
        baselines.update(rows)
        args.series_done = k
    args.series_now = None
    record = {"dataset": dataset.name, "n": args.n, "recon": 2 * args.n, "seed": args.seed, "lr": args.lr,
              "rescale": bool(args.rescale),
              "budgets": list(args.budgets), "series": series, "baselines": baselines,
              "seconds": round(time.perf_counter() - start, 1), "resumed": resuming,
              "success_measure": "revealed: some reconstruction is 2 times closer to the private point than to every "
                                 "public point, after the best nonnegative rescaling (numerics.privacy.revealed)"}
    return _finish(console, out, record)


def _series(args, console, dataset, references, arch, training: str, folder: Path, *,
            resuming: bool) -> tuple[dict, dict]:
    """Train (or read back) one network, attack it (or continue its attack) and score the reconstructions at each
    budget; every piece is saved in ``folder`` as it is done. Returns the series' entry of attack_curve.json and
    the trivial baselines' rows."""
    import jax
    import jax.flatten_util

    from numerics import audit
    from numerics.attack import attack_divergence, parameter_space_attack
    from numerics.training import load_model
    from proofs_check.cli import RunFailed

    paths = {key: folder / name for key, name in SERIES_FILES.items()}
    images = dataset.image_shape is not None
    name = f"{arch.spec} ({training})"
    saved = _saved_series(args, folder, arch) if resuming else {"record": None, "model": None, "attack": None,
                                                                "train": None, "snapshots": {}}
    record = saved["record"]
    if record is not None and record.get("complete"):
        console.print(f"{name}: finished in the earlier run, read from {paths['record']}")
        _print_points(console, name, record["entry"]["points"], images)
        return {**record["entry"], "model": str(paths["model"])}, record["baselines"]
    folder.mkdir(parents=True, exist_ok=True)
    if record is not None and saved["model"] is not None:
        console.print(f"resuming {args.out}: {name} attacks the model trained there ({paths['model']})")
        trained = record["training"]
    else:
        if saved["train"] is not None:
            console.print(f"resuming {args.out}: training {name} from step {saved['train']} of {args.train_steps}")
        else:
            console.print(f"training {arch.named(args.width)} ({training}) on {dataset.name}, N = {args.n}")
        result = audit.train_on(arch, args.width, dataset, linearized=training == "linearized", seed=args.seed,
                                max_steps=args.train_steps, progress=not args.no_progress,
                                checkpoint=paths["train"], resume=resuming)
        result.save(paths["model"], training_data=(args.dataset, args.n, args.seed))
        trained = {"train_steps": result.steps, "final_train_loss": result.final_loss,
                   "train_learning_rate": result.learning_rate, "stop_reason": result.stop_reason,
                   "resumed_from": result.resumed_from}
        _write_json(paths["record"], {"settings": settings(args), "complete": False, "training": trained})
    model = load_model(paths["model"])  # the attack reads the saved model, resumed or not: the same numbers
    entry = {"arch": arch.spec, "training": training, "width": args.width, "model": str(paths["model"]),
             "parameters": int(jax.flatten_util.ravel_pytree(model.params_0)[0].size),
             **{key: trained[key] for key in ("train_steps", "final_train_loss", "train_learning_rate",
                                              "stop_reason")},
             "points": []}
    scale = audit.coefficient_scale(model.arch, model.width, model.out_dim, model.params_0, model.params_f,
                                    references.public[:2 * args.n]) if args.rescale else 1.0
    entry["delta_scale"], entry["rescaled"] = scale, bool(args.rescale)

    snapshots = dict(saved["snapshots"])
    attack_from = saved["attack"] or 0
    if any(budget <= attack_from and budget not in snapshots for budget in args.budgets):
        # stopped between the attack's checkpoint and the reconstructions at that budget: redo the attack
        console.print(f"{name}: the reconstructions at a budget the attack passed are missing; attacking afresh")
        attack_from = 0
    elif attack_from:
        console.print(f"resuming {args.out}: the attack on {name} from step {attack_from} of {max(args.budgets)}")
    begun = time.perf_counter() - (_clock(paths["clock"]) if attack_from else 0.0)

    def keep(step, x_recon):
        seconds = time.perf_counter() - begun
        if step in args.budgets:
            snapshots[step] = (x_recon, seconds)
            _write_snapshot(folder / SNAPSHOT.format(steps=step), x_recon, seconds)
        _write_json(paths["clock"], {"step": step, "seconds": seconds})

    result = parameter_space_attack(arch, model.params_0, model.params_f, 2 * args.n, in_dim=dataset.d,
                                    key=jax.random.PRNGKey(args.seed + 1), steps=max(args.budgets), lr=args.lr,
                                    delta_scale=scale,
                                    box=dataset.box, progress=not args.no_progress, chunk=math.gcd(*args.budgets),
                                    checkpoint=paths["attack"], resume=attack_from > 0, on_chunk=keep)
    diverged = attack_divergence(result)
    if diverged:  # its scores would be those of a broken run
        raise RunFailed(f"the attack on {name} diverged: {diverged}; rerun without --resume and a smaller --lr (now "
                        f"{args.lr:g})")
    entry["final_loss"] = result.final_loss
    entry["resumed_from"] = {"training": trained["resumed_from"], "attack": result.info["resumed_from"]}
    rows = {}
    for budget in args.budgets:
        x_recon, seconds = snapshots[budget]
        leakage = audit.leakage(x_recon, dataset, references, seed=args.seed)
        row = leakage.rows[audit.ATTACK_ROW]
        point = {"steps": budget, "revealed": row["revealed"], "seconds": round(seconds, 1)}
        if images:
            point.update({"ssim_ge_0.9": row["ssim_ge_0.9"], "ssim_ge_0.4": row["ssim_ge_0.4"]})
        entry["points"].append(point)
        for row_name, trivial in leakage.rows.items():
            if row_name != audit.ATTACK_ROW:
                rows[row_name] = {key: trivial[key] for key in ("revealed", "ssim_ge_0.9", "ssim_ge_0.4")
                                  if key in trivial}
    _print_points(console, name, entry["points"], images)
    entry, rows = audit_plain(entry), audit_plain(rows)
    _write_json(paths["record"], {"settings": settings(args), "complete": True, "training": trained, "entry": entry,
                                  "baselines": rows})
    return entry, rows


def _clock(path: Path) -> float:
    """The attack's seconds at its last saved chunk (0 where the file is missing or damaged: it is only timing)."""
    try:
        seconds = float(json.loads(path.read_text())["seconds"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return 0.0
    return seconds if math.isfinite(seconds) and seconds >= 0 else 0.0


def _print_points(console, name: str, points: list[dict], images: bool) -> None:
    for point in points:
        console.print(f"  {name}, after {point['steps']} attack steps: revealed {point['revealed']:.0%}"
                      + (f", SSIM >= 0.9 {point['ssim_ge_0.9']:.0%}" if images else ""))


def _finish(console, out: Path, record: dict) -> int:
    """Write the JSON and the figure, print the table."""
    from rich.table import Table

    from numerics.checkpoint import software

    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / RESULT, {**record, "software": software()})
    images = any("ssim_ge_0.9" in point for entry in record["series"] for point in entry["points"])
    figure = curve_figure(out / FIGURE, record, images=images)
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
        size=(6.2 * len(measures), 4.2 + 0.22 * (len(record["series"]) + len(record["baselines"]))),
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
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # 6 pt read as 5 (trial)
        figures.readable_log_ticks(ax, "x", values=record["budgets"])
    return fig
