"""Deliberate bugs in the code behind claims E1 and H1 make those claims FAIL (and the unmutated code passes).

E1's trend checks run on synthetic sweep rows whose trends hold by construction (tests/test_sweep.py), so a
bug in the statistics is what flips the outcome; the movement measure runs on a real one-cell sweep.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from numerics import movement, networks, sweep
from proofs_check.claims import e1, h1
from test_sweep import synthetic_rows  # tests/ is on sys.path (pytest rootdir-relative imports)
from claim_mutation import failed_outcomes


def _failed(claim, name: str, tmp_path, profile: str = "quick") -> list[str]:
    return failed_outcomes(claim, name, tmp_path, profile=profile, all_applicable=True)


@pytest.fixture
def synthetic_sweep(monkeypatch):
    rows = synthetic_rows(datasets=("sphere",))
    monkeypatch.setattr(e1, "sweep_rows", lambda ctx: rows)
    return rows


def test_e1_trends_pass_on_rows_where_they_hold(synthetic_sweep, tmp_path):
    assert _failed(e1.CLAIM, "trends", tmp_path) == []


def test_e1_fails_when_a_trivial_reconstruction_reveals_a_point(synthetic_sweep, tmp_path):
    """The success measure must fail trivial reconstructions: with the closeness factor lowered to 1 they revealed up
    to 25% of a cell's training points and E1 still passed (no outcome read best_trivial_revealed)."""
    assert _failed(e1.CLAIM, "trivial baselines fail", tmp_path) == []
    synthetic_sweep[3]["best_trivial_revealed"] = 0.25
    failed = _failed(e1.CLAIM, "trivial baselines fail", tmp_path)
    assert len(failed) == 1 and "largest fraction revealed by a trivial reconstruction" in failed[0], failed


def test_d1_rate_reports_unconverged_training_per_architecture(monkeypatch, tmp_path):
    """A network that stops short of the loss threshold fails that architecture's rate outcome in one line (it used to
    raise, erroring the step for every --arch given beside it)."""
    from proofs_check.claims import d1

    monkeypatch.setattr(d1, "RATE_TRAIN_STEPS", 3)
    failed = failed_outcomes(d1.CLAIM, "(ii) deviation rate", tmp_path)
    assert failed and all("not computable: m=32 seed 0: training stopped by budget" in line for line in failed), failed
    assert len(failed) == len(d1.RATE_ARCHS["quick"]), failed


def _boundary_rows(revealed: dict[tuple, float], unfitted=()) -> list[dict]:
    """Sweep rows, one seed per (width, N, training), sphere, NTK parametrization; ``unfitted`` cells end at the
    zero function's loss (no network fitted: numerics.sweep.usable leaves them out)."""
    rows = []
    for (width, n, training), value in revealed.items():
        loss = 0.5 * n if (width, n, training) in unfitted else 1e-11
        rows.append(dict(dataset="sphere", width=width, n=n, param="ntk", training=training, seed=0,
                         revealed=value, train_stop="threshold" if loss < 1 else "budget", train_loss=loss))
    return rows


def test_e1_boundary_fails_when_linearized_fails_where_standard_succeeds(monkeypatch, tmp_path):
    """The regime boundary's containment and bracketing can fail; a cell where no standard-trained network fitted
    is not compared (it says nothing), and a linearized failure there no longer fails the claim. Each training mode
    must reach 50% somewhere (the quick grid's standard training peaked at 34% and its containment held vacuously)."""
    grid = {(16, 10, "linearized"): 0.2, (16, 10, "standard"): 0.0, (64, 10, "linearized"): 0.9,
            (64, 10, "standard"): 0.6}
    for revealed, unfitted, verdict in (
            (grid, (), "pass"),
            ({**grid, (16, 10, "standard"): 0.7}, (), "fail"),           # linearized fails where standard succeeds
            ({**grid, (16, 10, "standard"): 0.7}, ((16, 10, "standard"),), "pass"),   # ... but no network fitted
            ({key: 0.1 for key in grid}, (), "fail"),                    # nothing reaches 50%: no boundary in the grid
            ({**grid, (64, 10, "standard"): 0.4}, (), "fail")):          # standard never does: containment is vacuous
        rows = _boundary_rows(revealed, unfitted)
        monkeypatch.setattr(e1, "sweep_rows", lambda ctx, rows=rows: rows)
        failed = _failed(e1.CLAIM, "regime boundary", tmp_path)
        assert (failed == []) == (verdict == "pass"), (revealed, unfitted, failed)


def test_e1_trends_fail_when_most_networks_did_not_fit(monkeypatch, tmp_path):
    """Trends computed on the fitted networks alone cannot pass when much of the grid did not fit (a training
    regression): the synthetic rows whose trends pass, with two of every three standard-trained networks at the
    zero function's loss."""
    rows = [dict(r, train_stop="budget", train_loss=0.5 * r["n"]) if r["training"] == "standard" and r["seed"] < 2
            else r for r in synthetic_rows(datasets=("sphere",))]
    monkeypatch.setattr(e1, "sweep_rows", lambda ctx: rows)
    failed = _failed(e1.CLAIM, "trends", tmp_path)
    assert any("networks that fitted their training set" in f and "48 of 72" in f for f in failed), failed


def test_e1_reports_the_count_when_no_trend_can_be_computed(monkeypatch, tmp_path):
    """Every standard-trained network unfitted: no linearized/standard pair is left, and the report names the count
    and the uncomputable trends instead of ending the step in an exception."""
    rows = [dict(r, train_stop="budget", train_loss=0.5 * r["n"]) if r["training"] == "standard" else r
            for r in synthetic_rows(datasets=("sphere",))]
    monkeypatch.setattr(e1, "sweep_rows", lambda ctx: rows)
    failed = _failed(e1.CLAIM, "trends", tmp_path)
    assert any("networks that fitted their training set" in f and "36 of 72" in f for f in failed), failed
    assert any("the four trends: not computable" in f for f in failed), failed


def test_e1_trends_fail_on_rows_where_width_hurts(monkeypatch, tmp_path):
    monkeypatch.setattr(e1, "sweep_rows", lambda ctx: synthetic_rows(datasets=("sphere",), flip=True))
    failed = _failed(e1.CLAIM, "trends", tmp_path)
    assert any("width" in f for f in failed), failed


def _paired_swapped(monkeypatch):
    """The paired difference takes standard minus linearized (the two trainings swapped)."""
    real = sweep.paired_difference

    def swapped(rows, **kwargs):
        other = {"linearized": "standard", "standard": "linearized"}
        return real([{**r, "training": other[r["training"]]} for r in rows], **kwargs)

    monkeypatch.setattr(sweep, "paired_difference", swapped)


def _ranks_from_argsort(monkeypatch):
    """Ranks taken as argsort (the positions of the sorted values), not the ranks of the values."""
    import scipy.stats

    monkeypatch.setattr(scipy.stats, "rankdata", lambda values: np.argsort(values, kind="stable").astype(float))


def _unstratified(monkeypatch):
    """The width and N trends pooled over all cells instead of within fixed settings."""
    real = sweep.spearman_trend
    monkeypatch.setattr(sweep, "spearman_trend", lambda rows, field, **kw: real(rows, field, **{**kw, "strata": ()}))


@pytest.mark.parametrize("mutate", [_paired_swapped, _ranks_from_argsort, _unstratified])
def test_e1_trend_mutations_fail_the_claim(mutate, synthetic_sweep, monkeypatch, tmp_path):
    mutate(monkeypatch)
    assert _failed(e1.CLAIM, "trends", tmp_path), f"{mutate.__name__} went unnoticed"


def test_e1_span_check_fails_when_the_projection_is_wrong(monkeypatch, tmp_path):
    """A one-cell sweep (sphere, width 16, N = 4, linearized): the real span residual passes; a projection
    onto the span that drops half of J_0^T a* leaves a residual of ~0.5 and fails."""
    tiny = (sweep.Grid(datasets=("sphere",), widths=(16,), ns=(4,), params=("ntk",), trainings=("linearized",),
                       seeds=(0,)), sweep.Budget(train_steps=200, attack_steps=5))
    monkeypatch.setattr(e1, "grid_and_budget", lambda ctx: tiny)
    e1._ROWS.clear()
    assert _failed(e1.CLAIM, "linearized update in the span", tmp_path / "real") == []
    real = movement.jacobian_transpose_times
    monkeypatch.setattr(movement, "jacobian_transpose_times",
                        lambda *args: __import__("jax").tree.map(lambda a: 0.5 * a, real(*args)))
    e1._ROWS.clear()
    assert _failed(e1.CLAIM, "linearized update in the span", tmp_path / "mutated")
    e1._ROWS.clear()



def test_e1_membership_control_fails_when_members_and_non_members_are_not_told_apart(monkeypatch, tmp_path):
    """A two-seed sweep (sphere, width 128, N = 4, linearized; members revealed 1.0 on both networks): the real code
    passes. Draws that ignore their seed (both networks trained on the same points: the sweep's trends still run) leave
    no non-member to score; a public set ten times too far (the measure credits anything near the data) reveals
    non-members; an attack that returns its random start reveals no member. Each fails the step."""
    from numerics import attack, audit

    tiny = (sweep.Grid(datasets=("sphere",), widths=(128,), ns=(4,), params=("ntk",), trainings=("linearized",),
                       seeds=(0, 1)), sweep.Budget(train_steps=1000, attack_steps=400))
    monkeypatch.setattr(e1, "grid_and_budget", lambda ctx: tiny)
    step = "members and non-members"
    e1._ROWS.clear()
    assert _failed(e1.CLAIM, step, tmp_path / "real") == []
    load, references, run = audit.load_dataset, audit.reference_sets, attack.parameter_space_attack
    mutations = {
        "seed ignored": (audit, "load_dataset", lambda name, n, *, seed=0, **kw: load(name, n, seed=0, **kw)),
        "public set too far": (audit, "reference_sets", lambda *a, **kw: dataclasses.replace(
            references(*a, **kw), public=10 * references(*a, **kw).public)),
        "attack returns its start": (attack, "parameter_space_attack", lambda *a, **kw: run(*a, **{**kw, "lr": 1e-12})),
    }
    for name, (module, attribute, mutated) in mutations.items():
        with monkeypatch.context() as patch:
            patch.setattr(module, attribute, mutated)
            e1._ROWS.clear()
            assert _failed(e1.CLAIM, step, tmp_path / name.replace(" ", "-")), f"{name} went unnoticed"
    e1._ROWS.clear()

def test_e1_derivation_fails_when_the_sweeps_kernel_distance_is_not_scale_free(monkeypatch, tmp_path):
    """The symbolic d(K, cK) = 0 says nothing about the sweep's own distance: with numerics.movement.kernel_distance
    dividing by ||K_0||^2 instead of ||K_0|| ||K_f|| the derivation step must fail (it passed before: only the trend
    noticed)."""
    assert _failed(e1.CLAIM, "kernel distance is scale-free", tmp_path) == []

    def unscaled(k_0, k_f):
        a, b = np.asarray(k_0, np.float64), np.asarray(k_f, np.float64)
        return float(1.0 - np.sum(a * b) / np.linalg.norm(a) ** 2)

    monkeypatch.setattr(movement, "kernel_distance", unscaled)
    failed = _failed(e1.CLAIM, "kernel distance is scale-free", tmp_path)
    assert any("numerics.movement.kernel_distance(K, c K)" in f for f in failed), failed


def test_h1_unrolled_spot_check_reads_the_residual_before_expansion(monkeypatch, tmp_path):
    """A wrong simplification (sympy's expand made to return 0) leaves the symbolic comparison empty; the spot check
    evaluates the unexpanded residual and fails where the Euler operator is wrong (it read the expanded 0 before)."""
    import sympy as sp

    real_operator, real_expand, real_unrolled = h1._euler_operator, sp.expand, h1.unrolled_network

    def wrong_expand(expression, *args, **kwargs):
        return sp.Integer(0)

    def unrolled(depth, **kwargs):  # the networks themselves are built with the real expand
        sp.expand = real_expand
        try:
            return real_unrolled(depth, **kwargs)
        finally:
            sp.expand = wrong_expand

    monkeypatch.setattr(h1, "_euler_operator", lambda f, weights: 2 * real_operator(f, weights))
    monkeypatch.setattr(h1, "unrolled_network", unrolled)
    monkeypatch.setattr(sp, "expand", wrong_expand)
    failed = _failed(h1.CLAIM, "Euler by induction", tmp_path)
    assert any("unrolled" in f for f in failed), failed


def test_h1_induction_fails_with_a_wrong_relu_derivative(monkeypatch, tmp_path):
    import sympy as sp

    assert _failed(h1.CLAIM, "Euler by induction", tmp_path) == []
    monkeypatch.setattr(h1, "_relu_region", lambda h, sign: (sign * h, sp.Integer(1)))  # relu'(z) = 1 everywhere
    failed = _failed(h1.CLAIM, "Euler by induction", tmp_path)
    assert any("step" in f for f in failed), failed


def test_h1_euler_check_fails_on_a_network_with_a_hidden_output_shift(monkeypatch, tmp_path):
    real = networks.make_network

    def shifted(arch, width, out_dim=1):
        network = real(arch, width, out_dim)
        return dataclasses.replace(network, apply_fn=lambda params, x: network.apply_fn(params, x) + 0.1)

    monkeypatch.setattr(networks, "make_network", shifted)
    failed = _failed(h1.CLAIM, "Euler on drawn networks", tmp_path)
    assert any("own networks" in f for f in failed), failed


TINY_KKT = {"quick": dict(n=20, width=16, steps=600, seeds=1)}
"""Tiny rich networks and a short attack: the KKT checks' logic on real numerics (about 15 s). They reveal next to
nothing (two hidden layers 1 of 20 digits, one hidden layer none: measured), so the revealed steps are judged on
SMALL_KKT below."""
REVEALED_CONTRAST_OUTCOME = "the attack reveals fewer digits on one hidden layer"
"""A fragment of the name of H1's counterexample outcome that compares the revealed fractions of the two networks."""


def _kkt_steps_failed(tmp_path) -> list[str]:
    from numerics import kkt

    h1._EXPERIMENTS.clear()
    kkt._kkt_runner.cache_clear()
    failed = []
    for name in ("KKT attack on a rich network", "the KKT condition does not identify the data"):
        failed += _failed(h1.CLAIM, name, tmp_path / name.split()[0])
    h1._EXPERIMENTS.clear()
    kkt._kkt_runner.cache_clear()
    return [name for name in failed if REVEALED_CONTRAST_OUTCOME not in name]  # TINY_KKT reveals too little for it


def test_h1_kkt_checks_fail_when_the_attack_cannot_move_its_candidates(monkeypatch, tmp_path):
    """The modified ReLU's derivative set to 0: grad_theta f loses its first-layer part, the attack cannot fit
    theta_f (relative KKT loss ~ ||W||^2 / ||theta||^2) and the fit check fails; unmutated, both steps pass."""
    from numerics import kkt

    monkeypatch.setattr(h1, "KKT_SETTINGS", TINY_KKT)
    assert _kkt_steps_failed(tmp_path / "real") == []
    original = kkt.modified_relu  # derivative 0 (the plain ReLU's almost everywhere): grad_x of grad_theta f vanishes
    monkeypatch.setattr(kkt, "modified_relu", lambda alpha: original(alpha, slope=lambda z: 0.0 * z))
    failed = _kkt_steps_failed(tmp_path / "mutated")
    assert any("KKT loss reached by the attack" in f for f in failed), failed


def test_h1_ratio_contrast_fails_when_the_truth_loss_is_inflated(monkeypatch, tmp_path):
    """The loss at the training set computed 100x too large (e.g. its NNLS fit without the labels): the one-layer
    ratio falls further below its line and passed alone; the two-hidden-layer contrast falls below it too and fails."""
    from numerics import kkt

    monkeypatch.setattr(h1, "KKT_SETTINGS", TINY_KKT)
    real = kkt.truth_kkt_loss
    monkeypatch.setattr(kkt, "truth_kkt_loss", lambda *args, **kwargs: 100 * real(*args, **kwargs))
    failed = _kkt_steps_failed(tmp_path)
    assert any("two hidden layers, where the attack recovers" in f for f in failed), failed


def test_h1_one_layer_premise_fails_when_training_stops_before_the_annealing(monkeypatch, tmp_path):
    """The annealing of the direction phase skipped: the one-hidden-layer network stops short of its KKT limit (Clarke
    residual measured 0.21 at N = 20, width 16, against 0.0076 annealed, which the test above runs) and the
    counterexample's premise fails."""
    from numerics import kkt

    monkeypatch.setattr(kkt, "anneal_direction", lambda network, params, x, y, **options: params)
    failed = _one_layer_counterexample_failed(monkeypatch, tmp_path)
    assert any("Clarke slope" in f for f in failed), failed


def _one_layer_counterexample_failed(monkeypatch, tmp_path, settings=None) -> list[str]:
    """H1's one-hidden-layer counterexample on ``settings`` (TINY_KKT when None), its experiments computed afresh (and
    dropped after)."""
    monkeypatch.setattr(h1, "KKT_SETTINGS", settings or TINY_KKT)
    h1._EXPERIMENTS.clear()
    try:
        return _failed(h1.CLAIM, "the KKT condition does not identify the data", tmp_path)
    finally:
        h1._EXPERIMENTS.clear()


def test_h1_one_layer_counterexample_fails_when_the_attack_returns_the_data(monkeypatch, tmp_path):
    """The candidates scored replaced by the training digits themselves (an attack that does recover them): both
    networks reveal every digit, the two-layer minus one-layer contrast of the counterexample falls to 0 and fails;
    unmutated it passes on SMALL_KKT (two hidden layers reveal 60%, one 40%: measured)."""
    from numerics import audit

    real = audit.leakage
    unmutated = _one_layer_counterexample_failed(monkeypatch, tmp_path / "real", SMALL_KKT)
    assert not any(REVEALED_CONTRAST_OUTCOME in f for f in unmutated), unmutated

    def leaked(recon, dataset, references, **options):
        recon = np.concatenate([np.asarray(dataset.x), np.asarray(recon)])[:len(recon)]
        return real(recon, dataset, references, **options)

    monkeypatch.setattr(audit, "leakage", leaked)
    failed = _one_layer_counterexample_failed(monkeypatch, tmp_path / "mutated", SMALL_KKT)
    assert any(REVEALED_CONTRAST_OUTCOME in f for f in failed), failed


SMALL_KKT = {"quick": dict(n=10, width=64, steps=3000, seeds=1)}
"""N = 10 digits, width 64, seed 0: the two-hidden-layer network's pooled KKT attack reveals 60% (measured), so the
recovery step's verdict is decided by the code, not by a borderline number; about 10 s per run."""


def test_h1_recovery_fails_when_the_modified_relu_has_the_wrong_sign(monkeypatch, tmp_path):
    """The attack's ReLU derivative sigmoid(-alpha z) instead of sigmoid(alpha z) (a unit counted as active where it is
    off): grad_theta f of the candidates is the wrong network's and the recovery step fails; unmutated, it passes
    on the same small setting."""
    from numerics import kkt

    monkeypatch.setattr(h1, "KKT_SETTINGS", SMALL_KKT)

    def recovery_failed(folder):
        h1._EXPERIMENTS.clear()
        kkt._kkt_runner.cache_clear()
        try:
            return _failed(h1.CLAIM, "the KKT attack recovers digits", folder)
        finally:
            h1._EXPERIMENTS.clear()
            kkt._kkt_runner.cache_clear()

    assert recovery_failed(tmp_path / "real") == []
    original = kkt.modified_relu
    monkeypatch.setattr(kkt, "modified_relu", lambda alpha: original(alpha, slope=lambda z: jax.nn.sigmoid(-alpha * z)))
    failed = recovery_failed(tmp_path / "mutated")
    assert any("revealed by the KKT attack" in f for f in failed), failed


def _kkt_run(mu_min: float) -> dict:
    """One seed of H1's rich KKT experiment as numerics.kkt.regime_experiment reports it, the quick profile's measured
    values (premise 0.24, attack loss 1.5e-3, mu >= 0.056) with the smallest returned mu set to ``mu_min``."""
    return {"seed": 0, "spec": "relu:2:sw=2:param=standard", "width": 128, "n": 20, "kkt_residual": 0.24,
            "kkt_attack_loss": 1.5e-3, "clarke": None, "truth_kkt_loss": 0.02, "scores": {"kkt": {"revealed": 0.25}},
            "baselines": {"noise + mean": {"revealed": 0.0}},
            "kkt_mu": {"min": mu_min, "negative": int(mu_min < 0), "count": 320, "mu_min": 0.05}}


def test_h1_attack_fails_when_it_returns_a_negative_mu(monkeypatch, tmp_path):
    """The attack's hinge relu(mu_min - mu)^2 dropped (numerics/kkt.py, _kkt_runner's objective): mu_i < 0 fits
    theta_f better (KKT loss 1.5e-3 -> 1.1e-3, measured) but is no KKT condition; no outcome read the returned mu and
    H1 passed. The step on the experiment's reported numbers: the sign outcome alone fails at min mu = -2.2."""
    monkeypatch.setattr(h1, "_runs", lambda ctx, regime="rich": [_kkt_run(0.056)])
    assert _failed(h1.CLAIM, "KKT attack on a rich network", tmp_path / "real") == []
    monkeypatch.setattr(h1, "_runs", lambda ctx, regime="rich": [_kkt_run(-2.2)])
    failed = _failed(h1.CLAIM, "KKT attack on a rich network", tmp_path / "mutated")
    assert len(failed) == 1 and "coefficient mu_i (the KKT condition needs mu_i >= 0)" in failed[0], failed


def test_e1_membership_control_scores_the_largest_n_the_attack_works_on(monkeypatch, tmp_path):
    """Among the linearized settings with mean success >= MEMBER_FLOOR the control takes the largest N (its "0
    non-members" then bounds their rate tighter: Clopper-Pearson 0 of 8 0.37, 0 of 32 0.11), and reports the bound;
    the highest mean alone (the rule before) took N = 10 on these rows."""
    from scipy.stats import binomtest

    rows, taken = synthetic_rows(datasets=("sphere",)), []
    grid = sweep.Grid(datasets=("sphere",), widths=(16, 64, 256), ns=(10, 40), params=("ntk", "standard"),
                      trainings=("linearized", "standard"), seeds=(0, 1, 2))
    monkeypatch.setattr(e1, "grid_and_budget", lambda ctx: (grid, sweep.Budget(train_steps=1, attack_steps=1)))
    monkeypatch.setattr(e1, "sweep_rows", lambda ctx: rows)

    def control(cell, other, budget):
        taken.append(cell)
        return {s: {"members": 1.0, "non_members": 0.0, "non_member_count": cell.n, "shared": 0,
                    "cell_revealed": 1.0} for s in (cell.seed, other)}

    monkeypatch.setattr(sweep, "membership_control", control)
    outcome = e1.check_membership(e1.Context(out_dir=tmp_path))
    assert [c.n for c in taken] == [40] and outcome.passed, outcome
    bound = binomtest(0, 80).proportion_ci(0.95, method="exact").high
    assert f"0 of 80 points: rate <= {bound:.2f}" in outcome.measured
    for count, scored in ((0, 8), (0, 32), (3, 20)):
        assert e1.non_member_upper_bound(count, scored) == pytest.approx(
            binomtest(count, scored).proportion_ci(0.95, method="exact").high, abs=1e-12)


def _revealed_run(seed: int, attack: float, baselines: dict[str, float], n: int = 20) -> dict:
    return {"seed": seed, "n": n, "scores": {"kkt": {"revealed": attack}},
            "baselines": {name: {"revealed": value} for name, value in baselines.items()}}


def test_h1_pools_the_seeds_digits_and_the_baselines_the_same_way():
    """H1's revealed margins over several seeds of N digits each: the attack's fraction of all the digits minus the
    best baseline's fraction of the same digits (the best of the baselines' pooled counts, not each seed's best,
    which would charge the attack for a different baseline at every seed), counted in digits so that exactly 6 of 60
    is the bar 0.1 itself (summed as floats, 0.0 + 0.05 + 0.25 over 3 is 0.0999...)."""
    runs = [_revealed_run(0, 0.25, {"mean image": 0.10, "held-out points": 0.0}),
            _revealed_run(1, 0.05, {"mean image": 0.0, "held-out points": 0.10}),
            _revealed_run(2, 0.30, {"mean image": 0.0, "held-out points": 0.0})]
    assert h1._pooled_counts(runs) == (12, 2, 60)
    assert h1._pooled_margin(runs) == 10 / 60
    assert h1._margins(runs) == pytest.approx([0.15, -0.05, 0.30], abs=1e-15)  # a seed alone may fall below 0.1
    at_the_bar = [_revealed_run(s, a, {"noise": 0.0}) for s, a in enumerate((0.0, 0.05, 0.25))]
    assert sum(r["scores"]["kkt"]["revealed"] for r in at_the_bar) / 3 < 0.1
    assert h1._pooled_margin(at_the_bar) == h1.RECOVERY_MARGIN
    one_layer = [_revealed_run(s, a, {"noise": 0.0}) for s, a in enumerate((0.0, 0.05, 0.05))]
    two_layers = [_revealed_run(s, a, {"noise": 0.0}) for s, a in enumerate((0.05, 0.15, 0.20))]
    assert h1._contrast(two_layers, one_layer) == h1.REVEALED_CONTRAST  # 6 of 60 digits fewer, exactly


@pytest.mark.parametrize("runs, problem", [
    ([], "no seeds"),
    ([_revealed_run(0, 0.2, {"noise": 0.0}), _revealed_run(1, 0.2, {"mean image": 0.0})], "different trivial"),
    ([_revealed_run(0, float("nan"), {"noise": 0.0})], "not a number"),
    ([_revealed_run(0, 0.2, {"noise": 0.0}), _revealed_run(1, 0.2, {"noise": float("nan")})], "not a number"),
    ([_revealed_run(0, 0.2, {"noise": 0.0}), _revealed_run(1, 0.2, {"noise": 0.0}, n=10)], "different numbers"),
])
def test_h1_pooling_refuses_what_it_cannot_count(runs, problem):
    with pytest.raises(ValueError, match=problem):
        h1._pooled_margin(runs)


def test_h1_contrast_compares_the_same_draws_of_digits_only():
    two_layers = [_revealed_run(s, 0.3, {"noise": 0.0}) for s in (0, 1, 2)]
    with pytest.raises(ValueError, match="different draws of digits"):
        h1._contrast(two_layers, [_revealed_run(s, 0.0, {"noise": 0.0}) for s in (1, 2, 3)])
    assert h1._contrast(two_layers, [_revealed_run(s, 0.0, {"noise": 0.0}) for s in (0, 1, 2)]) == 18 / 60
