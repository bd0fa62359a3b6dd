"""numerics.sweep and `proofs-check sweep`: caching, resume, reuse, tables, trends, boundary, bad input, figures."""

import json

import numpy as np
import pytest

from numerics import sweep
from proofs_check import cli, figures


def synthetic_rows(seed: int = 0, *, datasets=("digits-odd-even", "sphere"), flip: bool = False) -> list[dict]:
    """Rows where the paper's trends hold by construction (``flip`` reverses the width trend)."""
    rng = np.random.default_rng(seed)
    rows = []
    for dataset in datasets:
        for width in (16, 64, 256):
            for n in (10, 40):
                for param in ("ntk", "standard"):
                    for training in ("linearized", "standard"):
                        for s in range(3):
                            step = np.log2(width / 16) / 4 * (-1 if flip else 1)
                            value = 0.4 + step - 0.3 * (n == 40) - 0.2 * (training == "standard")
                            rows.append(dict(dataset=dataset, width=width, n=n, param=param, training=training,
                                             seed=s, revealed=float(np.clip(value + 0.05 * rng.normal(), 0, 1)),
                                             kernel_distance=(3.0 if training == "standard" else 1.0) / width,
                                             span_residual=1e-12 if training == "linearized" else 0.5,
                                             best_trivial_revealed=0.0, train_stop="threshold", train_loss=1e-11))
    return rows


def fake_cell(calls):
    def run(cell, budget):
        calls.append(cell)
        value = min(1.0, cell.width / 64) * (0.5 if cell.training == "standard" else 1.0)
        return {**cell.as_dict(), "key": sweep.cell_key(cell, budget), "revealed": value, "revealed_count": 1,
                "best_trivial_revealed": 0.0, "kernel_distance": 1.0 / cell.width, "span_residual": 0.0,
                "relative_movement": 0.1, "train_loss": 0.0, "train_steps": 1, "train_stop": "threshold",
                "attack_loss": 0.0, "seconds": 0.0}

    return run


GRID = dict(datasets=("sphere",), widths=(16, 64), ns=(4,), params=("ntk",), trainings=("linearized", "standard"))


def test_sweep_caches_cells_resumes_and_reuses_them_in_a_larger_grid(tmp_path):
    calls, lines = [], []
    budget = sweep.Budget(train_steps=10, attack_steps=10)
    small = sweep.Grid(**GRID, seeds=(0,))
    first = sweep.run_sweep(small, budget, tmp_path, report=lines.append, cell_fn=fake_cell(calls))
    assert (first.computed, first.reused, len(calls)) == (4, 0, 4)
    assert any("about" in line and "left" in line and "4/4" in line for line in lines)
    again = sweep.run_sweep(small, budget, tmp_path, cell_fn=fake_cell(calls))
    assert (again.computed, again.reused, len(calls)) == (0, 4, 4)
    larger = sweep.run_sweep(sweep.Grid(**GRID, seeds=(0, 1)), budget, tmp_path, cell_fn=fake_cell(calls))
    assert (larger.computed, larger.reused) == (4, 4)
    rows = json.loads((tmp_path / "results.json").read_text())
    assert len(rows) == 8 and len((tmp_path / "results.csv").read_text().splitlines()) == 9
    other_budget = sweep.run_sweep(small, sweep.Budget(train_steps=11, attack_steps=10), tmp_path,
                                   cell_fn=fake_cell(calls))
    assert other_budget.computed == 4  # a different budget is a different cell
    lines.clear()  # sweep --no-progress: the cell lines without the estimate of the time left
    sweep.run_sweep(small, sweep.Budget(train_steps=12, attack_steps=10), tmp_path, report=lines.append,
                    cell_fn=fake_cell(calls), estimate=False)
    cell_lines = [line for line in lines if line.startswith("cell ")]
    assert len(cell_lines) == 4 and not any("left" in line for line in cell_lines)


def test_a_sweep_says_when_it_reuses_cells_computed_by_other_code(tmp_path, monkeypatch):
    """Cells are keyed by their settings; each records the fingerprint of numerics/ and theory/ that computed it,
    and a rerun under other code reuses them but says how many (it was silent)."""
    calls, lines = [], []
    budget = sweep.Budget(train_steps=10, attack_steps=10)
    grid = sweep.Grid(**GRID, seeds=(0,))
    first = sweep.run_sweep(grid, budget, tmp_path, cell_fn=fake_cell(calls))
    assert first.reused_from_other_code == 0 and {r["code"] for r in first.rows} == {sweep.code_fingerprint()}
    again = sweep.run_sweep(grid, budget, tmp_path, report=lines.append, cell_fn=fake_cell(calls))
    assert again.reused_from_other_code == 0 and not any("other code" in line for line in lines)
    monkeypatch.setattr(sweep, "code_fingerprint", lambda: "edited")
    changed = sweep.run_sweep(grid, budget, tmp_path, report=lines.append, cell_fn=fake_cell(calls))
    assert (changed.reused, changed.computed, changed.reused_from_other_code) == (4, 0, 4)
    assert any(line.startswith("note: 4 of the stored cells were computed by other code") for line in lines)
    lines.clear()
    fresh = sweep.run_sweep(grid, budget, tmp_path, report=lines.append, cell_fn=fake_cell(calls),
                            reuse_other_code=False)
    assert (fresh.reused, fresh.computed, fresh.reused_from_other_code) == (0, 4, 0)
    assert lines[0].endswith("4 to compute (4 of them stored by other code: computed again)")
    assert {r["code"] for r in json.loads((tmp_path / "results.json").read_text())} == {"edited"}
    settled = sweep.run_sweep(grid, budget, tmp_path, cell_fn=fake_cell(calls), reuse_other_code=False)
    assert (settled.reused, settled.computed) == (4, 0)
    damaged = sorted((tmp_path / "cells").glob("*.json"))[0]  # a cut-short file is recomputed, not "other code"
    damaged.write_text(damaged.read_text()[:10])
    lines.clear()
    sweep.run_sweep(grid, budget, tmp_path, report=lines.append, cell_fn=fake_cell(calls), reuse_other_code=False)
    assert lines[0].endswith("1 to compute (1 of them stored but unreadable: computed again)"), lines[0]


def test_an_interrupted_sweep_keeps_finished_cells_and_resumes(tmp_path):
    budget = sweep.Budget(train_steps=10, attack_steps=10)
    grid = sweep.Grid(**GRID, seeds=(0, 1))
    calls = []
    real = fake_cell(calls)

    def interrupted(cell, b):
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(cell, b)

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(grid, budget, tmp_path, cell_fn=interrupted)
    assert len(list((tmp_path / "cells").glob("*.json"))) == 3
    resumed = sweep.run_sweep(grid, budget, tmp_path, cell_fn=fake_cell([]))
    assert (resumed.reused, resumed.computed) == (3, 5)


def test_trends_recover_the_signs_built_into_synthetic_rows():
    rows = [r for r in synthetic_rows() if r["dataset"] == "sphere"]
    found = sweep.trends(rows, rng=np.random.default_rng(0), n_boot=200)
    assert found["width"].low > 0 and found["n"].high < 0 and found["kernel_distance"].high < 0
    assert found["paired"].low > 0 and 0.1 < found["paired"].value <= 0.2  # 0.2 built in, less where clipped at 0
    flipped = sweep.trends([r for r in synthetic_rows(flip=True) if r["dataset"] == "sphere"],
                           rng=np.random.default_rng(0), n_boot=200)
    assert flipped["width"].high < 0
    assert found["kernel_distance"].dropped == 0  # 24 cells: a resample with one distance value never occurs


def test_trend_counts_the_replicates_it_drops():
    """Two cells: a cell-level resample draws the same cell twice half the time, the width is then constant and
    the replicate undefined; it is left out of the interval and counted (was dropped silently)."""
    rows = [dict(dataset="sphere", width=w, n=4, param="ntk", training="linearized", seed=s, revealed=w / 64 + s / 10)
            for w in (16, 64) for s in range(3)]
    trend = sweep.spearman_trend(rows, "width", rng=np.random.default_rng(0), n_boot=400)
    assert 120 < trend.dropped < 280 and trend.as_dict()["dropped"] == trend.dropped


def test_seed_resampled_trends_read_the_stratified_expanded_tail_and_the_pooled_one_plain(monkeypatch):
    """The width and N trends and the paired difference keep the grid's settings and resample the seeds of each: their
    interval is read at the stratified expanded tail (numerics.statistics.stratified_expanded_tail), wider than the
    plain one on the same replicates; the pooled kernel-distance trend resamples the settings too and keeps the plain
    tail. A setting left with one seed is not resampled and does not count."""
    from numerics.statistics import stratified_expanded_tail

    groups = [[0, 1, 2, 3, 4, 5, 6, 7]] * 7 + [[8, 9]] + [[10]]
    assert sweep.interval_tail(0.95, groups, seeds_only=True) == stratified_expanded_tail(0.95, [8] * 7 + [2])
    assert sweep.interval_tail(0.95, groups, seeds_only=False) == pytest.approx(0.025, abs=1e-15)
    assert sweep.interval_tail(0.95, [[0]] * 4, seeds_only=True) == pytest.approx(0.025, abs=1e-15)  # none resampled
    rows = [r for r in synthetic_rows() if r["dataset"] == "sphere"]
    expanded = {"width": sweep.spearman_trend(rows, "width", rng=np.random.default_rng(3), n_boot=400, strata=("n",)),
                "paired": sweep.paired_difference(rows, rng=np.random.default_rng(3), n_boot=400)}
    assert all(0.005 < trend.tail < 0.025 for trend in expanded.values())  # 3 seeds x 24 settings: measured 0.7%
    monkeypatch.setattr(sweep, "interval_tail", lambda level, groups, seeds_only: (1 - level) / 2)
    plain = {"width": sweep.spearman_trend(rows, "width", rng=np.random.default_rng(3), n_boot=400, strata=("n",)),
             "paired": sweep.paired_difference(rows, rng=np.random.default_rng(3), n_boot=400)}
    for name in expanded:
        assert expanded[name].low < plain[name].low and plain[name].high < expanded[name].high, name


@pytest.mark.parametrize("dataset", sweep.DATASETS)
def test_the_zero_function_loss_is_half_n_on_every_sweep_dataset(dataset):
    """fitted() measures a cell's training loss against 0.5 N: the sum-reduced MSE of the zero function on the
    dataset's targets, which holds while every sweep dataset has one +-1 target per point."""
    from numerics import audit
    from numerics.training import train
    import inspect

    data = audit.load_dataset(dataset, 10, seed=3)
    assert 0.5 * float(np.sum(np.asarray(data.y) ** 2)) == sweep.zero_function_loss({"n": 10}) == 5.0
    assert inspect.signature(train).parameters["reduction"].default == "sum"  # what run_cell trains with


def test_cells_whose_network_did_not_fit_are_left_out_like_diverged_ones():
    """A network that stopped at its step budget far above a fit (all ReLUs dead: loss 0.5 N, the zero function's)
    is no trained network: it is not scored as a failure of the attack (numerics.sweep.FIT_FRACTION)."""
    base = dict(dataset="sphere", width=16, n=10, param="standard", training="standard", seed=0, revealed=0.0)
    rows = [{**base, "train_stop": "threshold", "train_loss": 8e-11},
            {**base, "train_stop": "budget", "train_loss": 3e-3},           # close to a fit: 6e-4 of 0.5 N
            {**base, "train_stop": "budget", "train_loss": 5.0},            # the zero function
            {**base, "train_stop": "budget", "train_loss": 4.5},            # measured on the full sweep
            {**base, "train_stop": "diverged", "train_loss": float("nan")}]
    assert [sweep.fitted(r) for r in rows] == [True, True, False, False, False]
    assert sweep.usable(rows) == rows[:2]
    assert "did not fit (loss 5, zero function 5)" in sweep._outcome(rows[2])


def test_a_sweep_where_no_network_fitted_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    dead = dict(dataset="sphere", width=16, n=4, param="ntk", training="standard", seed=0, revealed=0.0,
                train_stop="budget", train_loss=2.0)
    estimates = []
    monkeypatch.setattr(sweep, "run_sweep", lambda *args, **kwargs: estimates.append(kwargs["estimate"]) or
                        sweep.SweepResult(rows=[dead], computed=1, reused=0, seconds=0.0, csv_path=tmp_path / "r.csv",
                                          json_path=tmp_path / "r.json"))
    argv = ["sweep", "--datasets", "sphere", "--widths", "16", "--ns", "4", "--params", "ntk", "--trainings",
            "standard", "--seeds", "1", "--out", str(tmp_path / "s")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no cell's network fitted its training set" in err and "widen" in err, err
    assert cli.main([*argv, "--no-progress"]) == 1 and estimates == [True, False]  # the shared option, wired


def test_regime_boundary_lists_failing_cells_and_the_smallest_width_per_n():
    rows = [r for r in synthetic_rows() if r["dataset"] == "sphere" and r["param"] == "ntk"]
    entry = sweep.regime_boundary(rows)[("sphere", "ntk", "linearized")]
    # linearized: 0.4 + log2(m/16)/4 - 0.3 [N=40] +- noise 0.05: below 0.5 only at m = 16 (0.4 and 0.1)
    assert set(entry["failing"]) == {(16, 10), (16, 40)}
    assert entry["min_width"] == {10: 64, 40: 64}
    standard = sweep.regime_boundary(rows)[("sphere", "ntk", "standard")]   # 0.2 lower: m=64, N=40 at 0.4 fails
    assert set(standard["failing"]) == {(16, 10), (16, 40), (64, 40)} and standard["min_width"] == {10: 64, 40: 256}


def test_the_boundary_line_reads_naturally_where_no_cell_fails():
    """The sweep's summary said "revealed < 50% at none" where the attack failed in no cell."""
    rows = [r for r in synthetic_rows() if r["dataset"] == "sphere" and r["param"] == "ntk"]
    boundary = sweep.regime_boundary(rows)
    assert cli._boundary_text(boundary[("sphere", "ntk", "linearized")]) == "revealed < 50% at m=16 N=10, m=16 N=40"
    wide = sweep.regime_boundary([r for r in rows if r["width"] >= 64])[("sphere", "ntk", "linearized")]
    assert wide["failing"] == [] and cli._boundary_text(wide) == "revealed < 50% in no cell"


@pytest.mark.parametrize("argv, words", [
    (["--widths", "0"], "width"), (["--widths", "16,x"], "not an integer"), (["--datasets", "mnist"], "unknown"),
    (["--ns", "3"], "--ns value 3: digits-odd-even draws equal numbers of its 2 classes, so every --ns value must be "
                    "even"), (["--params", "ntk,ntk"], "twice"),
    (["--seeds", "0"], "positive"), (["--widths", ""], "--widths: is empty: give comma-separated"),
    (["--ns", "100000"], "--ns value 100000: digits-odd-even has"), (["--ns", "4,100000"], "--ns value 100000:"),
])
def test_bad_sweep_input_is_one_line_and_exit_2(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "run_cell", lambda *a: pytest.fail("no cell may run on bad input"))
    assert cli.main(["sweep", *argv, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("proofs-check: error:") and words in err


def test_a_grid_built_in_python_names_n_as_n():
    """The command line names its option (above); a Grid made in Python names the setting N, not an option."""
    with pytest.raises(ValueError, match=r"^N 3: digits-odd-even draws equal numbers of its 2 classes, so N must be "
                                         r"even$"):
        sweep.Grid(datasets=("digits-odd-even",), widths=(16,), ns=(3,))


def test_sweep_command_end_to_end_writes_tables_summary_and_styled_figures(tmp_path, capsys, monkeypatch):
    """Real cells (tiny budgets): 4 of the 16 networks, width 16 with standard training, do not fit their training
    set (loss 0.5 N: every ReLU dead) and are counted apart, not scored."""
    made = []
    real_save = figures.save
    monkeypatch.setattr(figures, "save", lambda fig, path: made.append(path) or real_save(fig, path))
    argv = ["sweep", "--datasets", "sphere", "--widths", "16,64", "--ns", "4,8", "--params", "ntk", "--seeds", "2", "--out",
            str(tmp_path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "revealed < 50%" in out and "16 cells computed" in out
    assert "cell(s) did not fit their training set" in " ".join(out.split())
    summary = json.loads((tmp_path / "summary.json").read_text())
    # measured 12 fitted, 4 not (the width-16 standard-trained networks): the split, not its exact count, is checked
    assert summary["cells"] + summary["did_not_fit"] + summary["diverged"] == 16 and summary["did_not_fit"] >= 1
    assert "width" in summary["trends"]["sphere"]
    # two seeds per cell: the trends' values, no interval (TREND_MIN_SEEDS)
    assert all(t["low"] is None and t["high"] is None and t["dropped"] is None and "seeds per cell" in t["no interval"]
               for t in summary["trends"]["sphere"].values())
    assert made  # and tests/conftest.py checks their style
    # one cell stamped as computed by other code: reused with a note, or computed again on request
    cell_file = sorted((tmp_path / "cells").glob("*.json"))[0]
    cell_file.write_text(json.dumps({**json.loads(cell_file.read_text()), "code": "other"}))
    assert cli.main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "note: 1 of the stored cells were computed by other code" in out and "0 cells computed, 16 reused" in out
    assert cli.main([*argv, "--recompute-other-code"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(1 of them stored by other code: computed again)" in out and "1 cells computed, 15 reused" in out
    assert json.loads(cell_file.read_text())["code"] == sweep.code_fingerprint()


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"revealed": ' + "9" * 5000 + "}", "not json"])
def test_a_cell_nested_too_deep_or_with_a_huge_number_is_recomputed(tmp_path, text):
    """json.loads raised RecursionError (arrays nested 10^5 deep) or ValueError (a 5000-digit integer) out of the
    sweep's cache: a traceback where an unreadable cell is recomputed."""
    from numerics.sweep import Budget, Cell, cell_path, load_cell

    cell, budget = Cell("sphere", 16, 4, "ntk", "linearized", 0), Budget()
    path = cell_path(tmp_path, cell, budget)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert load_cell(tmp_path, cell, budget) is None
