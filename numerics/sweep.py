"""The finite-width sweep: where does the attack stop working, and how does that track the kernel's movement?

A *cell* is one setting: dataset (digits-odd-even, sphere), hidden width m, training-set size N,
parametrization (ntk, standard), training (linearized, standard) and seed. Each cell

1. draws the data (:func:`numerics.audit.load_dataset`) and a relu network of ``DEPTH`` hidden layers, trains
   it (:func:`numerics.audit.train_on`: heavy-ball full-batch on MSE, step LEARNING_RATE / lambda_max(K_0), until the loss
   is 1e-10 or the step budget is spent), linearized (the frozen-NTK model) or not;
2. measures how far training left the frozen-NTK regime (:func:`numerics.movement.measure`: kernel distance,
   relative parameter movement, residual outside span{grad f_0(x_i)});
3. runs Loo et al.'s parameter-space attack (M = 2N, theta_0, box prior; :func:`numerics.attack.parameter_space_attack`);
4. scores it with the success measure that trivial reconstructions fail (:func:`numerics.privacy.revealed`:
   the fraction of private points some reconstruction is twice as close to as to every public point), with
   the L2 and SSIM matching curves, and scores the trivial baselines the same way.

Every cell is stored as ``cells/<key>.json`` in the sweep folder, ``key`` a hash of everything that
determines its result (:func:`cell_key`), and a row is added to ``results.csv`` / ``results.json``. A cell
whose file exists is not recomputed, so an interrupted sweep resumes and a larger sweep reuses a smaller
one's cells (same budgets, same key).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from numerics.checkpoint import raise_if_interrupted
from numerics.data import check_seed, positive_int
from numerics.progress import duration
from numerics.statistics import percentile_interval, stratified_expanded_tail

DATASETS = ("digits-odd-even", "sphere")
PARAMETRIZATIONS = ("ntk", "standard")
TRAININGS = ("linearized", "standard")
DEPTH = 2
"""Hidden layers of every network of the sweep (relu, no biases: the setting of Loo et al.'s figures)."""
FORMAT_VERSION = 1
LEARNING_RATE = 0.5
"""Step size in units of 1 / lambda_max(K_0), heavy-ball momentum 0.9 (as numerics.audit.train_on, which uses 1):
at 1 / lambda_max nonlinear training of width-16 and -64 networks diverged in 2 of 4 sphere cells measured."""
BASELINE_SEED_OFFSET = 7_000_001
"""Trivial baselines are drawn with seed BASELINE_SEED_OFFSET + cell seed, never the data's seed (see run_cell)."""
CSV_COLUMNS = ("dataset", "width", "n", "param", "training", "seed", "revealed", "revealed_count",
               "best_trivial_revealed", "ssim_ge_0.4", "ssim_ge_0.9", "median_l2", "kernel_distance",
               "relative_movement", "span_residual", "train_loss", "train_steps", "train_stop", "attack_loss",
               "seconds", "key")


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every cell of a sweep shares: step budgets of training and of the attack, attack learning rate."""

    train_steps: int = 5000
    attack_steps: int = 1000
    attack_lr: float = 0.02

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Cell:
    dataset: str
    width: int
    n: int
    param: str
    training: str
    seed: int

    def spec(self) -> str:
        return f"relu:{DEPTH}" + (":param=standard" if self.param == "standard" else "")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Grid:
    """The settings a sweep covers (every combination); ``cells()`` lists them in a fixed order."""

    datasets: tuple[str, ...]
    widths: tuple[int, ...]
    ns: tuple[int, ...]
    params: tuple[str, ...] = PARAMETRIZATIONS
    trainings: tuple[str, ...] = TRAININGS
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_grid(self)

    def cells(self) -> list[Cell]:
        return [Cell(d, w, n, p, t, s) for d, w, n, p, t, s in itertools.product(
            self.datasets, self.widths, self.ns, self.params, self.trainings, self.seeds)]


MAX_CELLS = 100_000
"""The most cells a sweep grid may have: the README grid has 240 (about 5 minutes on 2 cores); 100,000 cells would
take days, and a grid of 10^8 spent minutes just listing its cells before printing anything."""


def check_cell_count(*axis_lengths: int) -> None:
    """ValueError when a grid whose axes have these lengths (datasets, widths, N, parametrizations, trainings, seeds)
    has more than :data:`MAX_CELLS` cells; the command line asks before it lists the seeds."""
    count = math.prod(axis_lengths)
    if count > MAX_CELLS:
        raise ValueError(f"the grid has {count:,} cells, more than the {MAX_CELLS:,} a sweep may have: fewer seeds, "
                         "widths, N, datasets, parametrizations or trainings")


def check_grid(grid: Grid) -> None:
    """ValueError naming the first bad setting: unknown names, non-positive sizes, N the dataset cannot supply, more
    than :data:`MAX_CELLS` cells."""
    from numerics import audit

    check_cell_count(*map(len, (grid.datasets, grid.widths, grid.ns, grid.params, grid.trainings, grid.seeds)))

    for name, values, known in (("dataset", grid.datasets, DATASETS), ("param", grid.params, PARAMETRIZATIONS),
                                ("training", grid.trainings, TRAININGS)):
        if not values:
            raise ValueError(f"the sweep needs at least one {name}")
        for value in values:
            if value not in known:
                raise ValueError(f"unknown {name} {value!r}; known: {', '.join(known)}")
    for name, values, check in (("width", grid.widths, positive_int), ("n", grid.ns, positive_int),
                                ("seed", grid.seeds, check_seed)):
        if not values:
            raise ValueError(f"the sweep needs at least one {name}")
        for value in values:
            check(name, value)
    for dataset in grid.datasets:
        for n in grid.ns:
            audit.check_n(dataset, n, label="N")


def cell_key(cell: Cell, budget: Budget) -> str:
    """16 hex digits of the SHA-256 of the cell's settings, the budget and the format version."""
    text = json.dumps({"cell": cell.as_dict(), "budget": budget.as_dict(), "depth": DEPTH, "format": FORMAT_VERSION},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------
# One cell
# ---------------------------------------------------------------------------------------------------------

def run_cell(cell: Cell, budget: Budget) -> dict[str, Any]:
    """Train, measure the movement, attack and score one cell (module docstring); a JSON-ready row."""
    return attack_cell(cell, budget)[0]


def attack_cell(cell: Cell, budget: Budget) -> tuple[dict[str, Any], np.ndarray | None]:
    """:func:`run_cell`'s row and the attack's reconstructions (None where training diverged)."""
    import jax

    from numerics import audit, movement
    from numerics.attack import parameter_space_attack
    from numerics.metrics import match
    from numerics.networks import make_network
    from numerics.training import ntk_matrix, train
    from theory.architecture import parse_spec

    start = time.perf_counter()
    arch = parse_spec(cell.spec())
    dataset = audit.load_dataset(cell.dataset, cell.n, seed=cell.seed)
    network = make_network(arch, cell.width, dataset.y.shape[1])
    params_0 = network.init(jax.random.PRNGKey(cell.seed), dataset.d)
    lambda_max = float(np.linalg.eigvalsh(np.asarray(ntk_matrix(network, params_0, dataset.x)))[-1])
    with warnings.catch_warnings():  # a diverged cell is recorded (train_stop) and counted by the sweep's summary
        warnings.filterwarnings("ignore", message="training diverged", category=RuntimeWarning)
        trained = train(network, params_0, dataset.x, dataset.y, learning_rate=LEARNING_RATE / lambda_max,
                        momentum=0.9, linearized=cell.training == "linearized", max_steps=budget.train_steps,
                        loss_threshold=1e-10, progress=False)
    finite = all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(trained.params_f))
    if not finite or trained.stop_reason == "diverged":
        # nothing to measure or attack: the row is kept (the table shows it) and left out of trends and figures
        return {**cell.as_dict(), "key": cell_key(cell, budget), "budget": budget.as_dict(), "depth": DEPTH,
                "revealed": float("nan"), "revealed_count": 0, "best_trivial_revealed": float("nan"),
                "kernel_distance": float("nan"),
                "relative_movement": float("nan"), "span_residual": float("nan"), "train_loss": float("nan"),
                "train_steps": int(trained.steps), "train_stop": trained.stop_reason, "attack_loss": float("nan"),
                "seconds": time.perf_counter() - start}, None
    moved = movement.measure(network, trained.params_0, trained.params_f, dataset.x)
    result = parameter_space_attack(arch, trained.params_0, trained.params_f, 2 * cell.n, in_dim=dataset.d,
                                    key=jax.random.PRNGKey(cell.seed + 1), steps=budget.attack_steps,
                                    lr=budget.attack_lr, box=dataset.box, progress=False, chunk=budget.attack_steps)
    references = audit.reference_sets(cell.dataset, dataset, seed=cell.seed)
    # the baselines get their own stream: with the data's seed, "noise + mean" on the sphere would replay the
    # normal draws of the private points themselves (sphere() normalizes default_rng(seed).standard_normal)
    leak = audit.leakage(result.x_recon, dataset, references, seed=BASELINE_SEED_OFFSET + cell.seed)
    attack_row = leak.rows[audit.ATTACK_ROW]
    l2 = match(result.x_recon, dataset.x, metric="l2", threshold=None)
    baselines = {name: row["revealed"] for name, row in leak.rows.items() if row["trivial"]}
    return {
        **cell.as_dict(), "key": cell_key(cell, budget), "budget": budget.as_dict(), "depth": DEPTH,
        "revealed": attack_row["revealed"], "revealed_count": attack_row["revealed_count"],
        "ratio_curve": np.sort(leak.ratios[audit.ATTACK_ROW])[::-1].tolist(),
        "ssim_curve": attack_row.get("ssim_curve"), "ssim_ge_0.4": attack_row.get("ssim_ge_0.4"),
        "ssim_ge_0.9": attack_row.get("ssim_ge_0.9"), "l2_curve": np.asarray(l2.curve).tolist(),
        "median_l2": float(np.median(l2.curve)), "baselines": baselines,
        "best_trivial_revealed": max(baselines.values()),
        **moved.as_dict(),
        "train_loss": float(trained.final_loss), "train_steps": int(trained.steps), "train_stop": trained.stop_reason,
        "attack_loss": float(result.final_loss), "seconds": time.perf_counter() - start,
    }, np.asarray(result.x_recon)


def membership_control(cell: Cell, other_seed: int, budget: Budget) -> dict[str, Any]:
    """The attack on two networks of one setting trained on independent draws (``cell.seed`` and ``other_seed``),
    each network's reconstructions scored against both training sets by the success measure
    (:func:`numerics.privacy.revealed`, the same public set as its cell): ``members`` is the fraction of a network's
    own training points revealed, ``non_members`` the fraction of the other draw's points (those not also in its
    own set) revealed. An attack that reads the network reveals members and not non-members; a measure that
    anything of the right distribution passes reveals both. Returns per seed: members, non_members, the points
    left out as shared by both draws, and the cell row's revealed (the sweep's number for the same cell)."""
    from numerics import audit, privacy

    other = dataclasses.replace(cell, seed=other_seed)
    runs = {}
    for one in (cell, other):
        row, x_recon = attack_cell(one, budget)
        if x_recon is None:
            raise ValueError(f"training diverged in the cell {one.as_dict()}: nothing to attack")
        dataset = audit.load_dataset(one.dataset, one.n, seed=one.seed)
        public = audit.reference_sets(one.dataset, dataset, seed=one.seed).public
        runs[one.seed] = (row, x_recon, dataset.x, public)
    out = {}
    for seed, partner in ((cell.seed, other_seed), (other_seed, cell.seed)):
        row, x_recon, own, public = runs[seed]
        _, _, theirs, their_public = runs[partner]
        shared = np.array([any(np.array_equal(point, mine) for mine in own) for point in theirs])
        members = privacy.revealed(x_recon, own, public).mask
        non_members = privacy.revealed(x_recon, theirs[~shared], their_public).mask if not shared.all() else None
        out[seed] = {"members": float(np.mean(members)),
                     "non_members": float(np.mean(non_members)) if non_members is not None else float("nan"),
                     "non_member_count": int(np.count_nonzero(~shared)), "shared": int(np.count_nonzero(shared)),
                     "cell_revealed": float(row["revealed"])}
    return out


# ---------------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    return value  # NaN stays a float: json writes it as NaN and reads it back (a diverged cell's movement)


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def cell_path(folder: Path, cell: Cell, budget: Budget) -> Path:
    return Path(folder) / "cells" / f"{cell_key(cell, budget)}.json"


def load_cell(folder: Path, cell: Cell, budget: Budget) -> dict[str, Any] | None:
    """The stored row of ``cell``, or None when absent or unreadable (it is then recomputed)."""
    path = cell_path(folder, cell, budget)
    if not path.is_file():
        return None
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON (or a 5000-digit number), nested 10^5 deep
        return None
    return row if isinstance(row, dict) and row.get("key") == cell_key(cell, budget) else None


def write_tables(folder: Path, rows: Sequence[dict[str, Any]]) -> tuple[Path, Path]:
    """results.csv (the scalar columns of :data:`CSV_COLUMNS`) and results.json (every field), one row per cell."""
    folder = Path(folder)
    json_path, csv_path = folder / "results.json", folder / "results.csv"
    _write_atomic(json_path, json.dumps(_plain(list(rows)), indent=1))
    temporary = csv_path.with_name(csv_path.name + ".tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _plain(row.get(k)) for k in CSV_COLUMNS})
    os.replace(temporary, csv_path)
    return csv_path, json_path


@dataclasses.dataclass
class SweepResult:
    rows: list[dict[str, Any]]
    computed: int
    reused: int
    seconds: float
    csv_path: Path
    json_path: Path
    reused_from_other_code: int = 0


CODE_PACKAGES = ("numerics", "theory")
"""The packages whose source a cell's numbers depend on (:func:`code_fingerprint`)."""


def code_fingerprint() -> str:
    """The fingerprint of CODE_PACKAGES (numerics.checkpoint.source_fingerprint): recorded in each computed cell, so
    that a sweep reusing cells computed by other code says so (cells are keyed by their settings only)."""
    from numerics.checkpoint import source_fingerprint

    return source_fingerprint(CODE_PACKAGES)


def from_other_code(rows: Iterable[dict[str, Any]]) -> int:
    """How many of ``rows`` were computed by other code than this (:func:`code_fingerprint`), or predate the record."""
    return sum(row.get("code") != code_fingerprint() for row in rows)


def run_sweep(grid: Grid, budget: Budget, folder: str | os.PathLike, *,
              report: Callable[[str], None] = lambda line: None, cell_fn: Callable = run_cell,
              reuse_other_code: bool = True, estimate: bool = True) -> SweepResult:
    """Run every cell of ``grid`` not already stored in ``folder``; returns all rows in grid order.

    After each cell its JSON is written, the tables are rewritten with one more row, and ``report`` gets a
    line with the cells done, the cells left and an estimate of the time left (the mean time of the cells
    computed so far times the cells left; ``estimate=False``: the line without it). Ctrl-C loses only the cell in progress; rerunning resumes. Each computed
    row records :func:`code_fingerprint`; stored cells computed by other code are reused, and ``report`` says how many,
    unless ``reuse_other_code`` is False: then they are computed again (and overwritten).
    """
    folder = Path(folder)
    (folder / "cells").mkdir(parents=True, exist_ok=True)
    cells = grid.cells()
    rows: dict[int, dict[str, Any]] = {}
    stale = 0  # cells stored by other code, computed again since reuse_other_code is False
    damaged = 0  # cell files that cannot be read (truncated, edited): computed again
    for index, cell in enumerate(cells):
        stored = load_cell(folder, cell, budget)
        if stored is not None and (reuse_other_code or not from_other_code([stored])):
            rows[index] = stored
        stale += stored is not None and index not in rows
        damaged += stored is None and cell_path(folder, cell, budget).is_file()
    reused = len(rows)
    notes = [f"{stale} of them stored by other code"] if stale else []
    notes += [f"{damaged} of them stored but unreadable"] if damaged else []
    report(f"{len(cells)} cells: {reused} stored in {folder / 'cells'}, {len(cells) - reused} to compute"
           + (f" ({'; '.join(notes)}: computed again)" if notes else ""))
    other_code = from_other_code(rows.values())
    if other_code:
        report(f"note: {other_code} of the stored cells were computed by other code than this (their numerics/ and "
               "theory/ differ, or they predate the record); they are reused as they are (proofs-check sweep "
               "--recompute-other-code computes them again)")
    start = time.perf_counter()
    computed = 0
    csv_path, json_path = write_tables(folder, [rows[i] for i in sorted(rows)])
    for index, cell in enumerate(cells):
        if index in rows:
            continue
        row = {**_plain(cell_fn(cell, budget)), "code": code_fingerprint()}
        _write_atomic(cell_path(folder, cell, budget), json.dumps(row))
        rows[index] = row
        computed += 1
        csv_path, json_path = write_tables(folder, [rows[i] for i in sorted(rows)])
        elapsed = time.perf_counter() - start
        left = len(cells) - len(rows)
        report(f"cell {len(rows)}/{len(cells)} done ({cell.dataset} m={cell.width} N={cell.n} {cell.param} "
               f"{cell.training} seed {cell.seed}: {_outcome(row)}, {row['seconds']:.1f} s)"
               + (f"; about {duration(elapsed / computed * left)} left" if estimate else ""))
        raise_if_interrupted()  # a Ctrl-C that Python discarded during the cell stops the sweep here
    return SweepResult(rows=[rows[i] for i in range(len(cells))], computed=computed, reused=reused,
                       seconds=time.perf_counter() - start, csv_path=csv_path, json_path=json_path,
                       reused_from_other_code=other_code)


def _outcome(row: dict[str, Any]) -> str:
    if row.get("train_stop") == "diverged":
        return "training diverged"
    if not fitted(row):
        return f"training did not fit (loss {float(row['train_loss']):.3g}, zero function {zero_function_loss(row):g})"
    return f"revealed {row['revealed']:.0%}"


# ---------------------------------------------------------------------------------------------------------
# Summaries: means over seeds, the regime boundary
# ---------------------------------------------------------------------------------------------------------

FIT_FRACTION = 1e-3
"""A cell's network fitted its training set when training ends with loss <= FIT_FRACTION x the zero function's loss
(:func:`zero_function_loss`); the attack is about trained networks. Measured on the
full sweep (240 cells, 5 seeds): every cell that fitted stopped at the 1e-10 loss target; the 19 that did not (width
16, standard training, 8 of them with every ReLU dead) ended at 0.40-1.0 of 0.5 N, with revealed 0%."""


def zero_function_loss(row: dict[str, Any]) -> float:
    """The training loss of the zero function in a cell, 0.5 sum_i ||y_i||^2 = 0.5 N: run_cell trains on
    sum-reduced MSE (numerics.training.train's default) and both DATASETS have one +-1 target per point
    (tests/test_sweep.py checks both)."""
    return 0.5 * int(row["n"])


def fitted(row: dict[str, Any]) -> bool:
    """Whether the cell's training neither diverged nor stopped short of fitting its training set (FIT_FRACTION)."""
    return row.get("train_stop") != "diverged" and float(row["train_loss"]) <= FIT_FRACTION * zero_function_loss(row)


def usable(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose network fitted its training set (:func:`fitted`). A diverged cell has no model to attack, and
    one that did not fit is no trained network: both are reported in the table and counted, never scored as a
    success or a failure of the attack."""
    return [r for r in rows if fitted(r)]


def mean_over_seeds(rows: Iterable[dict[str, Any]], value: str = "revealed") -> dict[tuple, float]:
    """(dataset, width, n, param, training) -> mean of ``value`` over the seeds present."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        key = (row["dataset"], int(row["width"]), int(row["n"]), row["param"], row["training"])
        groups.setdefault(key, []).append(float(row[value]))
    return {key: float(np.mean(values)) for key, values in groups.items()}


def regime_boundary(rows: Iterable[dict[str, Any]], *, threshold: float = 0.5) -> dict[tuple, dict[str, Any]]:
    """Per (dataset, param, training): the (width, N) cells whose mean revealed fraction over seeds is below
    ``threshold`` (the attack fails there), and per N the smallest width from which every wider cell reaches
    it (None when even the widest does not)."""
    means = mean_over_seeds(rows)
    out: dict[tuple, dict[str, Any]] = {}
    for dataset, width, n, param, training in sorted(means):
        entry = out.setdefault((dataset, param, training), {"failing": [], "min_width": {}})
        if means[(dataset, width, n, param, training)] < threshold:
            entry["failing"].append((width, n))
    for (dataset, param, training), entry in out.items():
        ns = sorted({k[2] for k in means if k[0] == dataset and k[3] == param and k[4] == training})
        for n in ns:
            widths = sorted(k[1] for k in means if k[0] == dataset and k[2] == n and k[3] == param and k[4] == training)
            ok = [means[(dataset, w, n, param, training)] >= threshold for w in widths]
            first = None
            for i in range(len(widths)):
                if all(ok[i:]):
                    first = widths[i]
                    break
            entry["min_width"][n] = first
    return out


# ---------------------------------------------------------------------------------------------------------
# Figures (the project's one style)
# ---------------------------------------------------------------------------------------------------------

def _panel_per_training(chosen: Sequence[dict[str, Any]], ylabel: str, panel_size: tuple[float, float],
                        suptitle: str):
    """A figure with one axes per training mode present in ``chosen`` (width on x); (fig, axes, trainings)."""
    from proofs_check import figures

    trainings = [t for t in TRAININGS if any(r["training"] == t for r in chosen)]
    fig, axes = figures.new_figure(title=[f"{t} training" for t in trainings], xlabel="width m (hidden units)",
                                   ylabel=ylabel, ncols=len(trainings),
                                   size=(panel_size[0] * len(trainings), panel_size[1]), suptitle=suptitle)
    return fig, (axes if isinstance(axes, list) else [axes]), trainings


def success_vs_width_figure(path: str | os.PathLike, rows: Sequence[dict[str, Any]], dataset: str) -> Path:
    """Revealed fraction (mean over seeds, min-max bars) against width, one line per N; one axes per training
    mode, solid for NTK and dashed for standard parametrization."""
    from proofs_check import figures

    chosen = [r for r in rows if r["dataset"] == dataset]
    fig, axes, trainings = _panel_per_training(
        chosen, "private points revealed (fraction)", (5.2, 4.2),
        f"attack success against width, {dataset} (mean over seeds, min-max bars)")
    ns = sorted({int(r["n"]) for r in chosen})
    colours = {n: f"C{i}" for i, n in enumerate(ns)}
    widths = sorted({int(r["width"]) for r in chosen})
    for ax, training in zip(axes, trainings):
        for param, style in (("ntk", "-"), ("standard", "--")):
            for n in ns:
                points = [(w, [r["revealed"] for r in chosen if r["training"] == training and r["param"] == param
                               and int(r["n"]) == n and int(r["width"]) == w]) for w in widths]
                points = [(w, v) for w, v in points if v]
                if not points:
                    continue
                x = np.array([w for w, _ in points], float)
                mean = np.array([np.mean(v) for _, v in points])
                low = mean - np.array([np.min(v) for _, v in points])
                high = np.array([np.max(v) for _, v in points]) - mean
                ax.errorbar(x, mean, yerr=[low, high], linestyle=style, marker="o", color=colours[n], capsize=2,
                            label=f"N = {n}, {param} param")
        ax.set_xscale("log")
        figures.reference_line(ax, y=0.5, label="50% (regime boundary)")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=6)
        figures.readable_log_ticks(ax, "x", values=widths)
    return figures.save(fig, path)


def success_vs_kernel_distance_figure(path: str | os.PathLike, rows: Sequence[dict[str, Any]],
                                      rho: float | None = None) -> Path:
    """Scatter of every cell and seed: revealed fraction against the kernel distance (log x)."""
    from proofs_check import figures

    title = "attack success against kernel movement, cells whose network fitted"
    if rho is not None:
        title += f" (Spearman {rho:.2f})"
    fig, ax = figures.new_figure(title=title, xlabel="kernel distance (1 - cosine of K_0 and K_f)",
                                 ylabel="private points revealed (fraction)", size=(6.0, 4.4))
    floor = 1e-12
    markers = {("digits-odd-even", "linearized"): ("o", "C0"), ("digits-odd-even", "standard"): ("s", "C1"),
               ("sphere", "linearized"): ("^", "C2"), ("sphere", "standard"): ("v", "C3")}
    for (dataset, training), (marker, colour) in markers.items():
        chosen = [r for r in rows if r["dataset"] == dataset and r["training"] == training]
        if not chosen:
            continue
        x = np.maximum([float(r["kernel_distance"]) for r in chosen], floor)
        y = [float(r["revealed"]) for r in chosen]
        ax.scatter(x, y, marker=marker, color=colour, alpha=0.6, s=18, label=f"{dataset}, {training}")
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.05)
    figures.reference_line(ax, y=0.5, label="50%")
    ax.legend(fontsize=7)
    figures.readable_log_ticks(ax, "x")
    return figures.save(fig, path)


def heatmap_figure(path: str | os.PathLike, rows: Sequence[dict[str, Any]], dataset: str, param: str) -> Path:
    """Mean revealed fraction on the width x N grid, one panel per training mode."""
    from proofs_check import figures

    chosen = [r for r in rows if r["dataset"] == dataset and r["param"] == param]
    means = mean_over_seeds(chosen)
    widths = sorted({int(r["width"]) for r in chosen})
    ns = sorted({int(r["n"]) for r in chosen})
    fig, axes, trainings = _panel_per_training(
        chosen, "training points N (count)", (4.6, 3.8),
        f"revealed fraction (mean over seeds), {dataset}, {param} parametrization")
    for ax, training in zip(axes, trainings):
        grid = np.array([[means.get((dataset, w, n, param, training), np.nan) for w in widths] for n in ns])
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        ax.set_xticks(range(len(widths)), [str(w) for w in widths])
        ax.set_yticks(range(len(ns)), [str(n) for n in ns])
        for i in range(len(ns)):
            for j in range(len(widths)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0%}", ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] < 0.5 else "black")
    return figures.save(fig, path)


# ---------------------------------------------------------------------------------------------------------
# Trends with bootstrap intervals over cells and seeds
# ---------------------------------------------------------------------------------------------------------

TREND_REPLICATES = 1000
"""Bootstrap replicates behind a trend's 95% interval: 25 in each plain tail (200 left 5, an end read off noise), 10-16
in the expanded tails of the seeds-resampled trends (:func:`interval_tail`: 1.0-1.2% on the README grid's 5 seeds
per cell, 1.6% on the quick grid's 8)."""
TREND_MIN_SEEDS = 5
"""Seeds per cell below which ``proofs-check sweep`` reports a trend's value and no interval: 2 seeds give a cell only
3 distinct resamples, and a percentile bootstrap over few samples undercovers (a mean of n samples: simulated
coverage of a nominal 95% interval 53% at 2, 71% at 3, 81% at 4), which the expanded tail corrects only in part."""


@dataclasses.dataclass(frozen=True)
class Trend:
    """A statistic of the sweep's rows with its bootstrap interval (read at :func:`interval_tail`)."""

    name: str
    value: float
    low: float
    high: float
    n_rows: int
    level: float
    dropped: int = 0
    """Bootstrap replicates whose statistic was undefined (a variable constant in the resample), left out of the
    interval: counted so that an interval resting on a fraction of its replicates shows it."""
    tail: float | None = None
    """The tail probability the interval's ends were read at (:func:`interval_tail`)."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cell_groups(rows: Sequence[dict[str, Any]], keys: tuple[str, ...]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(tuple(row[k] for k in keys), []).append(index)
    return list(groups.values())


def _seed_resample(groups: list[list[int]], rng: np.random.Generator) -> np.ndarray:
    """Every cell kept once (the design), its seeds drawn with replacement."""
    return np.concatenate([np.asarray(g)[rng.integers(0, len(g), size=len(g))] for g in groups])


def _two_level_resample(groups: list[list[int]], rng: np.random.Generator) -> np.ndarray:
    """Cells drawn with replacement, then each drawn cell's seeds drawn with replacement (Davison & Hinkley
    1997, Sec. 3.8: resampling both stages of a two-stage design)."""
    chosen = rng.integers(0, len(groups), size=len(groups))
    return np.concatenate([np.asarray(groups[g])[rng.integers(0, len(groups[g]), size=len(groups[g]))]
                           for g in chosen])


def interval_tail(level: float, groups: list[list[int]], *, seeds_only: bool) -> float:
    """The tail probability at which a trend's bootstrap interval is read. Where only the seeds are resampled, the
    settings kept as the grid's design (the width and N trends, the paired difference), each setting's seeds are a
    stratum: the expanded tail of a stratified design (numerics.statistics.stratified_expanded_tail: harmonic mean
    stratum size, pooled degrees of freedom). Where the settings are resampled too (the pooled kernel-distance trend,
    which treats the grid's settings as draws): the plain (1 - level) / 2, which undercovers over few settings (8 on
    the quick grid, where the tail expanded at 8 would read 0.57% and the interval [-0.90, 0.11] at grid seeds 8-15:
    stated in E1's observations, not corrected)."""
    if not seeds_only:
        return (1 - level) / 2
    return stratified_expanded_tail(level, [len(g) for g in groups])


def spearman_trend(rows: Sequence[dict[str, Any]], field: str, *, rng: np.random.Generator,
                   n_boot: int = TREND_REPLICATES, level: float = 0.95, target: str = "revealed",
                   strata: tuple[str, ...] = ()) -> Trend:
    """Spearman rank correlation of ``target`` with ``field`` over rows (cell x seed), with a bootstrap
    interval that resamples cells and, within them, seeds.

    With ``strata`` (e.g. ("n", "param", "training") for the width trend) the correlation is computed within
    each group of rows that share those settings and averaged over the groups: the trend with the other
    factors held fixed (a pooled correlation would let the width effect drown the N effect, and vice versa).
    A group or replicate where either variable is constant (correlation undefined) is dropped; the replicates
    dropped are counted (Trend.dropped).

    Resampling: without strata, cells with replacement and then seeds within them (two-level); with strata,
    the grid's cells are the design (each stratum keeps all its levels of ``field``) and the seeds of every
    cell are resampled: a stratum with two levels of N loses its correlation whenever a cell-level resample
    draws one level twice (on the quick grid the N interval was then [-0.98, 0.25] around -0.60). The interval's
    ends are read at :func:`interval_tail`."""
    from scipy.stats import rankdata

    rows = list(rows)
    x = np.array([float(r[field]) for r in rows])
    y = np.array([float(r[target]) for r in rows])
    stratum = np.array([hash(tuple(r[k] for k in strata)) for r in rows])

    def pooled(index):
        if index.size < 2 or np.ptp(x[index]) == 0 or np.ptp(y[index]) == 0:
            return np.nan
        # Spearman = Pearson correlation of the (average-tie) ranks
        return float(np.corrcoef(rankdata(x[index]), rankdata(y[index]))[0, 1])

    def rho(index):
        if not strata:
            return pooled(index)
        values = [pooled(index[stratum[index] == s]) for s in np.unique(stratum[index])]
        values = [v for v in values if np.isfinite(v)]
        return float(np.mean(values)) if values else np.nan

    groups = _cell_groups(rows, ("dataset", "width", "n", "param", "training"))
    resample = _seed_resample if strata else _two_level_resample
    replicates = np.array([rho(resample(groups, rng)) for _ in range(n_boot)])
    dropped = int(np.count_nonzero(~np.isfinite(replicates)))
    replicates = replicates[np.isfinite(replicates)]
    tail = interval_tail(level, groups, seeds_only=bool(strata))
    low, high = percentile_interval(replicates, tail) if replicates.size else (np.nan, np.nan)
    within = f" within ({', '.join(strata)})" if strata else ""
    return Trend(name=f"Spearman({target}, {field}){within}", value=rho(np.arange(len(rows))), low=float(low),
                 high=float(high), n_rows=len(rows), level=level, dropped=dropped, tail=tail)


def paired_difference(rows: Sequence[dict[str, Any]], *, rng: np.random.Generator, n_boot: int = TREND_REPLICATES,
                      level: float = 0.95, target: str = "revealed") -> Trend:
    """Mean over matched (dataset, width, N, param, seed) of target(linearized) - target(standard training),
    with a bootstrap that keeps the grid's settings (the design) and resamples the seeds of each (a fixed-design
    mean; resampling 4 settings, as on the quick grid, undercovered)."""
    by_key: dict[tuple, dict[str, float]] = {}
    for row in rows:
        key = (row["dataset"], row["width"], row["n"], row["param"], row["seed"])
        by_key.setdefault(key, {})[row["training"]] = float(row[target])
    pairs = [dict(dataset=k[0], width=k[1], n=k[2], param=k[3], training="pair", seed=k[4],
                  diff=v["linearized"] - v["standard"]) for k, v in by_key.items() if len(v) == 2]
    if not pairs:
        raise ValueError("no cell was run with both linearized and standard training")
    diff = np.array([p["diff"] for p in pairs])
    groups = _cell_groups(pairs, ("dataset", "width", "n", "param"))
    replicates = np.array([diff[_seed_resample(groups, rng)].mean() for _ in range(n_boot)])
    tail = interval_tail(level, groups, seeds_only=True)
    low, high = percentile_interval(replicates, tail)
    return Trend(name=f"mean {target}(linearized) - {target}(standard)", value=float(diff.mean()), low=float(low),
                 high=float(high), n_rows=len(pairs), level=level, tail=tail)


TREND_SIGNS = {"width": 1, "n": -1, "kernel_distance": -1, "paired": 1}
"""The direction each trend should have where the paper's finding holds: success grows with width, falls with
N and with the kernel distance, and linearized training leaks more than standard training."""


def trends(rows: Sequence[dict[str, Any]], *, rng: np.random.Generator,
           n_boot: int = TREND_REPLICATES) -> dict[str, Trend]:
    """The four trends of claim E1 on ``rows`` (one dataset's, usually): width and N each with the other
    settings held fixed (stratified), the kernel distance pooled over all cells (it is an outcome of training,
    not a setting), and the paired linearized - standard difference."""
    return {"width": spearman_trend(rows, "width", rng=rng, n_boot=n_boot, strata=("n", "param", "training")),
            "n": spearman_trend(rows, "n", rng=rng, n_boot=n_boot, strata=("width", "param", "training")),
            "kernel_distance": spearman_trend(rows, "kernel_distance", rng=rng, n_boot=n_boot),
            "paired": paired_difference(rows, rng=rng, n_boot=n_boot)}
