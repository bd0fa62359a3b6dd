"""E1: finite width: the attack's success tracks how far training leaves the frozen-NTK regime (docs/claims.md#e1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp

from proofs_check.registry import Claim, Context, Outcome, Step, exact, register, within

QUICK_GRID = dict(datasets=("sphere",), widths=(32, 128), ns=(4, 16), params=("ntk",),
                  trainings=("linearized", "standard"), seeds=tuple(range(8)))
"""Eight cells x eight seeds on the sphere (the compilation per cell dominates, a further seed costs ~0.2 s, and with
three seeds the N trend's interval was [-1.0, 0.93]): widths 32 and 128 put the cells on both sides of the 50%
boundary under both training modes, where N and the training mode still change the outcome (mean revealed, seeds
0-7: linearized 0.75 / 0.16 at width 32, N = 4 / 16, and 0.91 / 0.71 at 128; standard 0.08 / 0.01 and 0.72 / 0.28).
At widths 32 and 64 (before) no standard-trained cell reached 50% (at most 0.34), so the boundary's "linearized
failures within standard failures" held whatever the attack did; at width 512 every linearized cell was revealed and
the N trend had nothing to act on (interval [-1.0, 0.45]); at width 16 standard training left 6 of 16 networks short of
a fit (5 with every ReLU dead). Every outcome passes on grid seeds 0-7, 8-15 and 16-23 (62, 64, 64 of 64 rows fit;
kernel-distance trend -0.82 [-0.90, -0.44], -0.65 [-0.88, -0.08], -0.75 [-0.88, -0.34]). The full profile runs the
README grid (proofs_check.cli.SWEEP_DEFAULTS)."""
MIN_FITTED = 0.8
"""Per dataset, at least this fraction of the sweep's networks must fit their training set (numerics.sweep.fitted):
the trends are computed on those alone, so a training regression that left most networks unfitted must fail the
claim rather than thin its evidence. Measured 112 / 120 (digits) and 109 / 120 (sphere) on the full grid (5 seeds per
cell), 62 / 64 on the quick one."""
QUICK_BUDGET = dict(train_steps=1000, attack_steps=400)
BOOTSTRAP = {"quick": 1000, "full": 2000}
"""Bootstrap replicates per trend: the seeds-resampled trends read expanded tails (numerics.sweep.interval_tail),
1.6% at the quick grid's 8 seeds per cell (16 replicates of 1000) and 1.0-1.2% on the README grid's 5 (19-24 of
2000)."""
LEVEL = 0.95
SPAN_TOLERANCE = 1e-6
"""Linearized training moves theta only along J_0^T (numerics.training), so its residual outside the span is
round-off amplified by cond(K_0) in the least-squares solve: measured 0 ... 5e-10 on the sweep's cells; a
standard-trained cell is at 1e-2 ... 1."""


def grid_and_budget(ctx: Context):
    from numerics import sweep
    from proofs_check.cli import SWEEP_DEFAULTS

    if ctx.quick:
        return sweep.Grid(**QUICK_GRID), sweep.Budget(**QUICK_BUDGET)
    split = lambda text, cast=str: tuple(cast(v) for v in text.split(","))  # noqa: E731
    grid = sweep.Grid(datasets=split(SWEEP_DEFAULTS["datasets"]), widths=split(SWEEP_DEFAULTS["widths"], int),
                      ns=split(SWEEP_DEFAULTS["ns"], int), params=split(SWEEP_DEFAULTS["params"]),
                      trainings=split(SWEEP_DEFAULTS["trainings"]), seeds=tuple(range(SWEEP_DEFAULTS["seeds"])))
    return grid, sweep.Budget(train_steps=SWEEP_DEFAULTS["train_steps"], attack_steps=SWEEP_DEFAULTS["attack_steps"])


_ROWS: dict[tuple, list] = {}


def sweep_rows(ctx: Context) -> list[dict]:
    """Every row of the sweep for this profile, computed into (or resumed from) ``OUT/sweep`` and cached in-process.
    The checks score the cells whose network fitted its training set (numerics.sweep.usable)."""
    from numerics import sweep

    key = (ctx.profile, str(ctx.out_dir))
    if key not in _ROWS:
        grid, budget = grid_and_budget(ctx)
        result = sweep.run_sweep(grid, budget, Path(ctx.out_dir) / "sweep", report=ctx.advance)
        _ROWS[key] = result.rows
    return _ROWS[key]


# ------------------------------------------------------------------------------------------------
# Derivation
# ------------------------------------------------------------------------------------------------

def derive_kernel_distance(ctx: Context) -> list[Outcome]:
    """d(K, c K) = 0 for c > 0 (a rescaled kernel has not moved), and d(K_0, K_f) = 1 - cos of the Frobenius angle."""
    entries = sp.symbols("k0:4", real=True)
    c = sp.Symbol("c", positive=True)
    k = sp.Matrix(2, 2, entries)
    inner = sum(k[i] * (c * k[i]) for i in range(4))
    norm = sp.sqrt(sum(e**2 for e in entries))
    scaled_norm = sp.sqrt(sp.factor(sum((c * e) ** 2 for e in entries)))   # sqrt(c^2 |K|^2) = c |K| for c > 0
    distance = 1 - inner / (norm * scaled_norm)
    symbolic = exact("d(K, c K) = 1 - <K, cK>_F / (||K||_F ||cK||_F) == 0 for c > 0", sp.simplify(distance))
    # the sweep's own distance (numerics.movement.kernel_distance) on Gram matrices: scale-free
    from numerics.movement import kernel_distance

    rng = ctx.rng("e1-kernel-distance")
    worst = 0.0
    for _ in range(20):
        features = rng.normal(size=(8, 5))
        gram = features @ features.T
        worst = max([worst] + [abs(kernel_distance(gram, scale * gram)) for scale in (1e-3, 0.7, 3.0, 1e4)])
    numeric = within("numerics.movement.kernel_distance(K, c K), 20 Gram matrices 8 x 8, c from 1e-3 to 1e4: max |d|",
                     worst, 1e-14, "rounding of one inner product and two norms (measured 4.4e-16); a distance that "
                     "is not scale-free is O(1) off")
    return [symbolic, numeric]


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------

def _trend_outcome(trend, sign: int, dataset: str, reason: str, **details) -> Outcome:
    passed = trend.low > 0 if sign > 0 else trend.high < 0
    return Outcome(name=f"{dataset}: {trend.name} over {trend.n_rows} {'pairs' if 'mean' in trend.name else 'rows'}",
                   passed=bool(passed), measured=f"{trend.value:.3f} [{trend.low:.3f}, {trend.high:.3f}]",
                   expected=f"{LEVEL:.0%} interval {'> 0' if sign > 0 else '< 0'}", reason=reason,
                   details={**trend.as_dict(), **details})


WITHIN_SETTINGS = ("width", "n", "param", "training")
"""The kernel-distance trend is judged pooled over cells (the kernel's movement is an outcome of training, not a
setting); the same trend within fixed settings, where only the seed varies, is reported beside it (details
``within_fixed_settings``) and in the claim's observations."""

TREND_REASONS = {
    "width": "wider networks stay closer to the frozen NTK, whose Delta theta = J_0^T alpha the attack inverts",
    "n": "more points share the same parameters: each is weighted less in Delta theta and harder to isolate",
    "kernel_distance": "pooled over cells, so a trend across settings: width, N and the training mode move the kernel "
                       "and the success together (the attack models Delta theta with the initial kernel). Not tested: "
                       "that at fixed settings the seed-to-seed spread of the distance predicts success (details "
                       "within_fixed_settings; quick grid -0.12 [-0.41, 0.15], observations)",
    "paired": "linearized training is the frozen-NTK model exactly (span residual 0); standard training is not",
}


def check_trends(ctx: Context) -> list[Outcome]:
    """Per dataset, the four trends with bootstrap intervals over cells and seeds
    (numerics.sweep.trends), and the figures."""
    from numerics import sweep

    every = sweep_rows(ctx)
    rows = sweep.usable(every)
    outcomes = []
    for dataset in sorted({r["dataset"] for r in every}):
        all_of_it = [r for r in every if r["dataset"] == dataset]
        chosen = [r for r in rows if r["dataset"] == dataset]
        outcomes.append(Outcome(
            name=f"{dataset}: networks that fitted their training set (the rows the trends use)",
            passed=len(chosen) >= MIN_FITTED * len(all_of_it), measured=f"{len(chosen)} of {len(all_of_it)}",
            expected=f">= {MIN_FITTED:.0%}", reason="trends of the fitted networks alone must still cover most of "
            "the grid (measured 91-100%)", details={
                "rows_computed_by_other_code": sweep.from_other_code(all_of_it),
                "did_not_fit": [{k: r[k] for k in ("width", "n", "param", "training", "seed", "train_loss",
                                                   "train_stop")} for r in all_of_it if not sweep.fitted(r)]}))
        try:
            found = sweep.trends(chosen, rng=ctx.rng("e1-bootstrap", dataset), n_boot=BOOTSTRAP[ctx.profile])
        except ValueError as error:  # too few fitted cells for a trend: a failed outcome beside the count above
            outcomes.append(Outcome(name=f"{dataset}: the four trends", passed=False,
                                    measured=f"not computable: {error}", expected="computed from the fitted rows",
                                    reason="the grid's fitted cells must vary width, N and the training mode"))
            continue
        within_settings = sweep.spearman_trend(chosen, "kernel_distance", rng=ctx.rng("e1-within", dataset),
                                               n_boot=BOOTSTRAP[ctx.profile], strata=WITHIN_SETTINGS)
        for name, trend in found.items():
            extra = {"within_fixed_settings": within_settings.as_dict()} if name == "kernel_distance" else {}
            outcomes.append(_trend_outcome(trend, sweep.TREND_SIGNS[name], dataset, TREND_REASONS[name], **extra))
        width_figure = sweep.success_vs_width_figure(ctx.figure_path(f"e1_success_vs_width_{dataset}.png"),
                                                     chosen, dataset)
        relative = str(width_figure.relative_to(ctx.out_dir))
        for outcome in outcomes[-4:]:
            outcome.figures.append(relative)
    rho = sweep.spearman_trend(rows, "kernel_distance", rng=ctx.rng("e1-all"), n_boot=BOOTSTRAP[ctx.profile])
    scatter = sweep.success_vs_kernel_distance_figure(ctx.figure_path("e1_success_vs_kernel_distance.png"), rows,
                                                      rho.value)
    if len({r["dataset"] for r in every}) > 1:  # with one dataset it is the per-dataset outcome again, counted twice
        overall = _trend_outcome(rho, -1, "all cells that fitted", TREND_REASONS["kernel_distance"])
        overall.figures.append(str(scatter.relative_to(ctx.out_dir)))
        outcomes.append(overall)
    else:  # the scatter goes with the per-dataset kernel-distance outcome
        for outcome in outcomes:
            if "kernel_distance)" in outcome.name:
                outcome.figures.append(str(scatter.relative_to(ctx.out_dir)))
    return outcomes


def check_span_residual(ctx: Context) -> Outcome:
    """Every linearized cell's update lies in span{grad f_0(x_i)} (the premise of the attack holds exactly)."""
    from numerics import sweep

    rows = sweep.usable(sweep_rows(ctx))
    linear = [float(r["span_residual"]) for r in rows if r["training"] == "linearized"]
    standard = [float(r["span_residual"]) for r in rows if r["training"] == "standard"]
    outcome = within(f"max span residual over {len(linear)} linearized cells", max(linear), SPAN_TOLERANCE,
                     "linearized steps are J_0^T (something); round-off times cond(K_0) only",
                     standard_min_median=[min(standard), float(np.median(standard))] if standard else None)
    return outcome


def check_baselines(ctx: Context) -> Outcome:
    """The success measure fails trivial reconstructions in every cell the trends use: the best of the mean, noise and
    held-out points reveals nothing (else the trends could track the measure rather than the attack)."""
    from numerics import sweep

    rows = sweep.usable(sweep_rows(ctx))
    trivial = [float(r["best_trivial_revealed"]) for r in rows]
    attack = [float(r["revealed"]) for r in rows]
    return within(f"largest fraction revealed by a trivial reconstruction over {len(rows)} cells", max(trivial), 0.0,
                  "success must be a measure that reconstructions knowing nothing private fail (numerics.privacy: "
                  "measured 0 in every cell of both grids; with the factor 2 lowered to 1 they reveal up to 25%)",
                  attack_revealed_max_mean=[max(attack), float(np.mean(attack))],
                  trivial_revealed_mean=float(np.mean(trivial)))


MEMBER_FLOOR = 0.5
"""The membership control is informative only where the attack works: each network's own training points must be
revealed at least this often (the boundary's level); measured 0.75 and 0.62 (quick: sphere, width 128, N = 16,
linearized, seeds 0 and 1), 0 on both when the attack returns its random start."""


def non_member_upper_bound(count: int, scored: int, level: float = LEVEL) -> float:
    """Clopper-Pearson upper end of the two-sided ``level`` interval of a rate seen ``count`` times in ``scored``
    trials: what "non-members revealed 0" bounds (0 of 8: 0.37; 0 of 32: 0.11)."""
    from numerics.statistics import exact_rate_interval

    return exact_rate_interval(count, scored, level)[1]


def check_membership(ctx: Context) -> Outcome:
    """Members against non-members: per dataset, among the linearized settings whose mean success reaches
    MEMBER_FLOOR the one with the largest N (the most points scored: the bound on the non-member rate tightens with
    them; the highest mean breaks ties, and decides where no setting reaches the floor), two seeds. Each network's
    reconstructions reveal its own training points and none of the other draw's (numerics.sweep.
    membership_control): the measure tracks what the network was trained on, not the data distribution."""
    from numerics import sweep

    grid, budget = grid_and_budget(ctx)
    means = sweep.mean_over_seeds(sweep.usable(sweep_rows(ctx)))
    chosen, rank = {}, {}
    for (dataset, width, n, param, training), value in means.items():
        order = (value >= MEMBER_FLOOR, n * (value >= MEMBER_FLOOR), value)
        if training == "linearized" and (dataset not in rank or order > rank[dataset]):
            chosen[dataset] = (sweep.Cell(dataset, width, n, param, training, grid.seeds[0]), value)
            rank[dataset] = order
    if not chosen or len(grid.seeds) < 2:
        return Outcome(name="members revealed, non-members not", passed=False, measured="no setting to run",
                       expected=">= 1 linearized setting and 2 seeds", reason="the control needs two draws")
    details, members, non_members, consistent, scored, found = {}, [], [], True, 0, 0
    for dataset, (cell, value) in sorted(chosen.items()):
        ctx.advance(f"membership control on {dataset}: two networks, each attacked")
        control = sweep.membership_control(cell, grid.seeds[1], budget)
        details[f"{dataset} width {cell.width} N {cell.n} {cell.param} linearized (mean revealed {value:.2f})"] = {
            f"seed {seed}": entry for seed, entry in control.items()}
        members += [entry["members"] for entry in control.values()]
        non_members += [entry["non_members"] for entry in control.values()]
        scored += sum(entry["non_member_count"] for entry in control.values() if not np.isnan(entry["non_members"]))
        found += sum(round(entry["non_members"] * entry["non_member_count"]) for entry in control.values()
                     if not np.isnan(entry["non_members"]))
        # the control scores as the sweep does: a network's own points, the same fraction as its cell's row
        consistent &= all(entry["members"] == entry["cell_revealed"] for entry in control.values())
    passed = min(members) >= MEMBER_FLOOR and all(value == 0 for value in non_members) and consistent
    shown = lambda v: "none to score (the draws share every point)" if np.isnan(v) else f"{v:.2f}"  # noqa: E731
    bound = non_member_upper_bound(found, scored) if scored else float("nan")
    details["non-member points scored, revealed, 95% upper bound on the rate (Clopper-Pearson)"] = [scored, found, bound]
    return Outcome(
        name="members revealed, non-members not: each network's reconstructions against its own training set and "
             "against an independent draw of the same size",
        passed=bool(passed),
        measured=f"members revealed {', '.join(f'{v:.2f}' for v in members)}; non-members "
                 + ", ".join(map(shown, non_members))
                 + (f" ({found} of {scored} points: rate <= {bound:.2f} at 95%)" if scored else "")
                 + ("" if consistent else "; members differ from the sweep's score of the same cell"),
        expected=f"members >= {MEMBER_FLOOR:g} on every network; non-members 0",
        reason="the attack inverts the network's parameter change, which holds its own training points and no others; "
               "non-members revealed would mean the measure credits anything drawn from the data distribution "
               "(as a trivial reconstruction, which reveals 0); members below the floor would leave the control "
               "with nothing to contrast. The setting is the one with the most points among those the attack works "
               "on, since 0 non-members revealed bounds their rate only as tightly as the points scored allow "
               "(two-sided 95% Clopper-Pearson upper end: 0 of 8 points, N = 4, 0.37; 0 of 32, N = 16, 0.11)",
        details=details)


def check_boundary(ctx: Context) -> Outcome:
    """The regime boundary found by the sweep: per dataset and parametrization, the (width, N) cells whose mean
    revealed fraction over seeds is below 50%, for linearized and for standard training. Where standard
    training only adds deviations from the frozen NTK, its failing cells include the linearized ones; and the
    grid must bracket the boundary (some cell at or above 50%), else it lies outside the grid. A (width, N) cell where
    no standard-trained network fitted its training set (numerics.sweep.usable) says nothing either way."""
    from numerics import sweep

    rows = sweep.usable(sweep_rows(ctx))
    boundary = sweep.regime_boundary(rows)
    means = sweep.mean_over_seeds(rows)
    details, contained, passing = {}, True, 0
    for (dataset, param, training), entry in sorted(boundary.items()):
        details[f"{dataset} {param} {training}"] = {
            "failing (width, N)": entry["failing"],
            "smallest width reaching 50% from there on, per N": entry["min_width"]}
        if training == "linearized" and (dataset, param, "standard") in boundary:
            measured = {(w, n) for (d, w, n, p, t) in means if (d, p, t) == (dataset, param, "standard")}
            compared = {cell for cell in entry["failing"] if cell in measured}
            contained &= compared <= set(boundary[(dataset, param, "standard")]["failing"])
            if compared != set(entry["failing"]):
                details[f"{dataset} {param} {training}"]["not compared (no standard-trained network fitted)"] = sorted(
                    set(entry["failing"]) - compared)
    modes = ("linearized", "standard")
    failing = {t: sum(len(v["failing"]) for k, v in boundary.items() if k[2] == t) for t in modes}
    # each training mode's boundary must lie inside the grid, on every dataset: with no standard-trained cell at or
    # above 50% (the quick grid at widths 32 and 64 peaked at 34%, QUICK_GRID) "linearized failures within standard
    # failures" holds whatever the attack does
    above = {}  # cells at or above 50% per (dataset, parametrization, training)
    for (dataset, _, _, param, mode), value in means.items():
        above[(dataset, param, mode)] = above.get((dataset, param, mode), 0) + (value >= 0.5)
    reaching = {(dataset, t): sum(count for (d, _, mode), count in above.items() if (d, mode) == (dataset, t))
                for dataset in sorted({key[0] for key in above}) for t in modes}
    unbracketed = [f"{dataset} {t}" for (dataset, t), count in reaching.items() if count == 0]
    details["cells at or above 50% per dataset and training"] = {f"{d} {t}": c for (d, t), c in reaching.items()}
    # per parametrization the inclusion can still hold vacuously (full grid: digits, NTK parametrization, standard
    # training stays below 50% in every cell, at most 40%): named here, not failed, since the grid brackets each mode
    details["inclusion vacuous (no standard-trained cell at or above 50%)"] = sorted(
        f"{d} {p}" for (d, p, mode), count in above.items() if mode == "standard" and count == 0)
    return Outcome(
        name="regime boundary: cells below 50% revealed (mean over seeds) under linearized training are also below "
             "under standard training, and under each training mode some cell of each dataset reaches 50%",
        passed=bool(contained and not unbracketed),
        measured=f"below 50%: {failing['linearized']} linearized, {failing['standard']} standard cells; at or above: "
                 + ", ".join(f"{c} {d} {t}" for (d, t), c in reaching.items())
                 + ("" if contained else "; a linearized failure is not a standard failure"),
        expected="linearized failures within standard failures; >= 1 cell at or above 50% per dataset and mode",
        reason="a boundary is located only if the grid has cells on both sides of it, for each training mode (else "
               "the containment holds vacuously); standard training deviates from the model the attack inverts, "
               "linearized training does not", details={**details, "unbracketed": unbracketed})


CLAIM = register(Claim(
    id="E1",
    quick_seconds=34,
    title="Finite width: success depends on how far training leaves the frozen-NTK regime",
    statement=("On finite networks the reconstruction attack (Loo et al. 2023) succeeds where training stays close "
               "to the frozen NTK: its success (the fraction of training points revealed, a measure that trivial "
               "reconstructions fail) rises with width, falls with the number of training points N and, across "
               "those settings, with the kernel distance 1 - <K_0, K_f>_F / (||K_0|| ||K_f||) (settings that move "
               "the kernel more reveal less), and is higher for linearized than for standard training of the same "
               "network."),
    assumptions=["relu networks with 2 hidden layers, no biases; full-batch heavy-ball training on MSE",
                 "success = numerics.privacy.revealed (factor 2 closer than to every public point)",
                 "trends, not single numbers: Spearman correlations and a paired difference, with bootstrap "
                 "intervals over cells and seeds"],
    derivation=("Linearized training keeps Delta theta = J_0^T alpha exactly (claim D1), the model the attack "
                "inverts (claim R1); standard training adds a component outside span{grad f_0(x_i)} and moves the "
                "kernel. The kernel distance is scale-free: d(K, cK) = 0 for c > 0 (derived), so it measures a change "
                "of the kernel's shape, which is what the attack's model of Delta theta cannot absorb."),
    derivations=[Step("kernel distance is scale-free", "d(K, cK) = 0 symbolically, and "
                      "numerics.movement.kernel_distance (the sweep's) at 20 Gram matrices and c from 1e-3 to 1e4",
                      derive_kernel_distance, tolerance="exact; 1e-14 for the sweep's (measured 4.4e-16)")],
    checks=[
        Step("trends", "Spearman of success with width (> 0), N (< 0), kernel distance (< 0), and linearized minus "
             "standard (> 0), per dataset, with 95% bootstrap intervals (width, N and the paired difference: the grid's "
             "settings kept, the seeds of each resampled, read at a stratified expanded percentile tail; the kernel "
             "distance, pooled over cells: cells, then seeds within them, plain tails); the kernel-distance trend "
             "within fixed settings reported beside it", check_trends,
             tolerance=f"the whole interval on the predicted side of 0; and at least {MIN_FITTED:.0%} of a dataset's "
                       "networks fitted their training set (the trends use those alone; measured 91-100%)"),
        Step("linearized update in the span", "span residual of every linearized cell", check_span_residual,
             tolerance=f"{SPAN_TOLERANCE:g}: round-off times cond(K_0) (measured <= 5e-10)"),
        Step("trivial baselines fail", "largest fraction of training points a trivial reconstruction (mean, noise, "
             "held-out points) reveals in any cell", check_baselines, tolerance="0: exact, no tolerance"),
        Step("members and non-members", "per dataset, among the linearized settings with mean success >= "
             f"{MEMBER_FLOOR:g} the one with the largest N, and two of its seeds: each network attacked, its "
             "reconstructions scored against its own training set and against the other network's; the 95% "
             "Clopper-Pearson upper bound on the non-member rate reported", check_membership,
             tolerance=f"non-members: 0, exact (quick: 0 of 32 points, N = 16, rate <= 0.11 at 95%; the highest-mean "
                       f"setting scored 0 of 8, N = 4, <= 0.37); members >= {MEMBER_FLOOR:g} (the control needs an "
                       "attack that works; measured 0.75 and 0.62)"),
        Step("regime boundary", "the (width, N) cells below 50% revealed, for each training mode: linearized "
             "failures within standard failures, and each mode's boundary inside the grid (some cell of each "
             "dataset at or above 50% under each mode)", check_boundary,
             tolerance="set inclusion and bracketing: no tolerance"),
    ],
    observations=[
        "The kernel-distance trend is mostly a trend across settings: on the quick grid (sphere, grid seeds 0-7) success "
        "against kernel distance pooled over cells is -0.82 [-0.90, -0.44], but within fixed (width, N, "
        "parametrization, training), where only the network's seed moves the kernel, it is -0.12 [-0.41, 0.15] "
        "(grid seeds 8-15: -0.05 [-0.29, 0.27]; 16-23: +0.12 [-0.21, 0.40]). Width, N and the training mode move the "
        "kernel and the success together; at fixed settings the seed-to-seed spread of the kernel distance does not "
        "predict success measurably. Every report gives both (details: within_fixed_settings).",
        "Open: the pooled kernel-distance trend's interval resamples the grid's settings as draws, with the plain "
        "percentile tail, which over the quick grid's 8 settings undercovers (about 90% for a nominal 95%, for a "
        "mean of 8 samples). Read at the tail expanded for 8 samples (0.57%) it would be [-0.90, 0.11] at grid "
        "seeds 8-15 and fail there (it would pass at 0-7 and 16-23), so the quick grid's evidence for the trend "
        "across settings is thinner than its interval says. The full profile's 24 settings per dataset read "
        "-0.835 [-0.907, -0.644] (digits) and -0.768 [-0.869, -0.567] (sphere), plain tails (2026-12-07 23:13; "
        "-0.87 [-0.91, -0.73] and -0.76 [-0.87, -0.55] on the same grid 22 hours earlier, the cells moving with the "
        "machine's rounding).",
    ],
    references=["Loo et al. 2023, arXiv:2302.01428, Sec. 5", "Fort et al. 2020, arXiv:2010.15110 (kernel distance)",
                "Lee et al. 2019, arXiv:1902.06720"],
))
