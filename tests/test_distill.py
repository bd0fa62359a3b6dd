"""numerics.distill: the blocked KIP and RKIP losses against plain NumPy, the minimum-distance projection,
input validation, and a short distillation that improves and resumes exactly."""

import jax.numpy as jnp
import numpy as np
import pytest

import numerics  # noqa: F401  (float64 on)
from numerics import distill as D
from numerics import progress
from numerics.kernels import analytic_ntk
from theory import parse_spec

ARCH = parse_spec("relu:2")


def _problem(seed=0, n=23, m=4, d=6, c=3):
    rng = np.random.default_rng(seed)
    x_t = rng.normal(size=(n, d))
    labels = np.arange(n) % c
    y_t = np.eye(c)[labels]
    x_s = rng.normal(size=(m, d))
    y_s = rng.normal(size=(m, c))
    return x_t, y_t, labels, x_s, y_s


def _kernel(a, b):
    return np.asarray(analytic_ntk(ARCH, jnp.asarray(a), jnp.asarray(b)))


@pytest.mark.parametrize("block_size", [5, 1000])
def test_kip_loss_in_blocks_equals_the_direct_formula(block_size):
    x_t, y_t, _, x_s, y_s = _problem()
    k_ss = _kernel(x_s, x_s)
    ridge = 1e-5 * np.trace(k_ss) / k_ss.shape[0]
    pred = _kernel(x_t, x_s) @ np.linalg.solve(k_ss + ridge * np.eye(len(x_s)), y_s)
    expected = 0.5 * np.mean(np.sum((y_t - pred) ** 2, axis=1))
    blocks = D.target_blocks(x_t, y_t, block_size)
    got = float(D.kip_loss(ARCH, jnp.asarray(x_s), jnp.asarray(y_s), *blocks))
    # tolerance: the same float64 operations in another order (Cholesky vs LU, block sums): ~1e-14 relative
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("block_size", [4])
def test_rkip_loss_is_the_attack_loss_with_lambda_beta(block_size):
    """With ridge 0, L_RKIP(X_S, K_SS lam) = a^T K_TT a - 2 a^T K_TS lam + lam^T K_SS lam (the kernel attack loss)."""
    x_t, y_t, _, x_s, _ = _problem(1)
    rng = np.random.default_rng(2)
    alpha, lam = rng.normal(size=(len(x_t), 3)), rng.normal(size=(len(x_s), 3))
    k_tt, k_ts, k_ss = _kernel(x_t, x_t), _kernel(x_t, x_s), _kernel(x_s, x_s)
    scale = np.sum(alpha * (k_tt @ alpha))
    expected = scale - 2 * np.sum(alpha * (k_ts @ lam)) + np.sum(lam * (k_ss @ lam))
    blocks = D.target_blocks(x_t, alpha, block_size)
    got = float(D.rkip_loss(ARCH, jnp.asarray(x_s), jnp.asarray(k_ss @ lam), *blocks, alpha_norm_sq=scale,
                            ridge_factor=0.0))
    # tolerance: K_SS^-1 (K_SS lam) recovers lam to cond(K_SS) eps ~ 1e-13; the loss is O(scale)
    assert abs(got - expected) <= 1e-9 * scale


def test_predict_and_accuracy_match_numpy():
    x_t, y_t, labels, x_s, y_s = _problem(3)
    k_ss = _kernel(x_s, x_s)
    ridge = 1e-5 * np.trace(k_ss) / len(x_s)
    expected = _kernel(x_t, x_s) @ np.linalg.solve(k_ss + ridge * np.eye(len(x_s)), y_s)
    got = D.predict(ARCH, x_s, y_s, x_t, block_size=7)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)  # same algebra, another factorization
    assert D.accuracy(expected, labels) == np.mean(np.argmax(expected, axis=1) == labels)
    assert D.accuracy(np.array([[0.5], [-0.2], [0.1]]), np.array([1, 0, 0])) == pytest.approx(2 / 3)


def test_full_data_alpha_is_the_ridge_solution_built_in_blocks():
    x_t, y_t, _, _, _ = _problem(4)
    k_tt = _kernel(x_t, x_t)
    expected = np.linalg.solve(k_tt + 1e-5 * np.trace(k_tt) / len(x_t) * np.eye(len(x_t)), y_t)
    alpha, norm_sq = D.full_data_alpha(ARCH, x_t, y_t, block_size=5)
    # same algebra, another factorization: cond(K_TT + r I) = 118 here, so round-off ~1e-14 relative
    np.testing.assert_allclose(alpha, expected, rtol=1e-10, atol=1e-12)
    assert norm_sq == pytest.approx(float(np.sum(expected * (k_tt @ expected))), rel=1e-10)


def test_projection_meets_the_minimum_distance_and_keeps_feasible_points():
    rng = np.random.default_rng(4)
    protected = rng.normal(size=(12, 5))
    r = 0.6 * np.linalg.norm(protected, axis=1).min()
    x = np.concatenate([protected[:6] * 1.3 + 0.01 * rng.normal(size=(6, 5)), rng.normal(size=(6, 5))])
    projected = np.asarray(D.project_min_distance(jnp.asarray(x), jnp.asarray(protected), r, sweeps=30))
    distances = np.asarray(D.rescaled_distance(jnp.asarray(projected), jnp.asarray(protected)))
    assert distances.min() >= r * (1 - 1e-9)  # projection keeps a relative slack of 1e-9 beyond r
    before = np.asarray(D.rescaled_distance(jnp.asarray(x), jnp.asarray(protected))).min(axis=1)
    feasible = before >= r
    assert feasible.any() and (~feasible).any()
    np.testing.assert_array_equal(projected[feasible], x[feasible])
    # one cone: the projection is the closest feasible point on that 2-D plane (brute force over the angle)
    p, y = protected[:1], x[:1]
    single = np.asarray(D.project_min_distance(jnp.asarray(y), jnp.asarray(p), r))[0]
    u = p[0] / np.linalg.norm(p[0])
    w = y[0] - (y[0] @ u) * u
    w /= np.linalg.norm(w)
    theta = np.arcsin(r / np.linalg.norm(p[0]))
    angles = np.linspace(theta, np.pi, 20001)
    rays = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * w
    best = np.min(np.linalg.norm(np.maximum(rays @ y[0], 0)[:, None] * rays - y[0], axis=1))
    assert np.linalg.norm(single - y[0]) <= best + 1e-6  # grid step 1e-4 rad on a vector of norm ~3


@pytest.mark.parametrize("change,message", [
    (dict(per_class=9), "class 2 has only 7 points"),
    (dict(method="kipp"), "unknown method 'kipp'"),
    (dict(x_target="nan"), "contains NaN"),
    (dict(min_distance=100.0), "cannot be met"),
    (dict(min_distance=0.1, protected=None), "give both"),
    (dict(steps=0), "steps must be an integer >= 1"),
])
def test_bad_inputs_are_value_errors(change, message):
    x_t, y_t, labels, _, _ = _problem()
    kwargs = dict(per_class=1, method="kip", steps=2, progress=False, protected=x_t[:3], min_distance=None)
    kwargs.update(change)
    if kwargs.get("x_target") == "nan":
        x_t = x_t.copy()
        x_t[5, 2] = np.nan
        kwargs.pop("x_target")
    if kwargs["min_distance"] is None and "protected" not in change:
        kwargs["protected"] = None
    with pytest.raises(ValueError, match=message):
        D.distill(ARCH, x_t, y_t, labels, **kwargs)


@pytest.mark.parametrize("method", D.METHODS)
def test_distillation_lowers_the_loss_keeps_the_distance_and_resumes_exactly(method, tmp_path):
    x_t, y_t, labels, _, _ = _problem(5, n=30, d=8)
    protected = x_t[:10]
    r = 0.3 * np.linalg.norm(protected, axis=1).min()
    common = dict(per_class=2, method=method, lr=0.02, progress=False, protected=protected, min_distance=r, chunk=10,
                  block_size=8)
    whole = D.distill(ARCH, x_t, y_t, labels, steps=20, **common)
    # random Gaussian points with one-hot targets: 20 steps lower KIP by ~30% and the relative RKIP loss by ~2%
    assert whole.loss_curve[-1] < 0.99 * whole.loss_curve[0]
    assert whole.info["min_distance_reached"] >= r * (1 - 1e-9)
    path = tmp_path / "ckpt.npz"
    D.distill(ARCH, x_t, y_t, labels, steps=10, checkpoint=path, **common)
    resumed = D.distill(ARCH, x_t, y_t, labels, steps=20, checkpoint=path, resume=True, **common)
    assert resumed.info["resumed_from"] == 10
    np.testing.assert_array_equal(resumed.x, whole.x)  # same jitted chunks, same order: bitwise
    np.testing.assert_array_equal(resumed.loss_curve, whole.loss_curve)


def test_validation_split_is_stratified_disjoint_and_fixed():
    labels = np.repeat(np.arange(4), [10, 11, 12, 30])
    kept, held = D.validation_split(labels, 0.2)
    assert np.intersect1d(kept, held).size == 0 and kept.size + held.size == labels.size
    assert np.bincount(labels[held]).tolist() == [2, 2, 2, 6]
    np.testing.assert_array_equal(held, D.validation_split(labels, 0.2)[1])  # fixed seed
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        D.validation_split(labels, 1.0)


def test_early_stopping_scores_only_the_validation_set_keeps_its_best_and_resumes(monkeypatch, tmp_path):
    x_t, y_t, labels, _, _ = _problem(7, n=40, d=8)
    kept, held = D.validation_split(labels, 0.25)
    x_val, labels_val = x_t[held], labels[held]
    test_x = np.random.default_rng(9).normal(size=(15, 8))  # a "test set": must never be scored
    seen = []
    real_predict = D.predict

    def spy(arch, x_s, y_s, x_query, **kwargs):
        seen.append(np.array(x_query))
        return real_predict(arch, x_s, y_s, x_query, **kwargs)

    monkeypatch.setattr(D, "predict", spy)
    common = dict(per_class=2, method="kip", lr=0.05, progress=False, chunk=10, block_size=16,
                  validation=(x_val, labels_val), eval_every=5)
    whole = D.distill(ARCH, x_t[kept], y_t[kept], labels[kept], steps=20, **common)
    assert seen and all(q.shape == x_val.shape and np.array_equal(q, x_val) for q in seen)
    assert not any(q.shape == test_x.shape for q in seen)
    steps_seen, accs = whole.info["validation_curve"]
    assert steps_seen.tolist() == [0, 5, 10, 15, 20]
    best = int(np.argmax(accs))  # earliest maximum
    assert whole.info["selected_step"] == steps_seen[best] and whole.info["validation_accuracy"] == accs[best]
    # the returned support set is the iterate at the selected step (same chunks: bitwise)
    plain = dict(common, validation=None)
    at_step = D.distill(ARCH, x_t[kept], y_t[kept], labels[kept], steps=max(int(steps_seen[best]), 1),
                        **dict(plain, chunk=5)) if steps_seen[best] else None
    if at_step is not None:
        np.testing.assert_allclose(whole.x, at_step.x, rtol=0, atol=1e-12)
    assert D.accuracy(real_predict(ARCH, whole.x, whole.y, x_val), labels_val) == whole.info["validation_accuracy"]
    # resume: 10 steps, then on to 20, selects over the whole run exactly as the uninterrupted one
    path = tmp_path / "ckpt.npz"
    D.distill(ARCH, x_t[kept], y_t[kept], labels[kept], steps=10, checkpoint=path, **common)
    resumed = D.distill(ARCH, x_t[kept], y_t[kept], labels[kept], steps=20, checkpoint=path, resume=True, **common)
    assert resumed.info["resumed_from"] == 10
    np.testing.assert_array_equal(resumed.info["validation_curve"][1], accs)
    assert resumed.info["selected_step"] == whole.info["selected_step"]
    np.testing.assert_array_equal(resumed.x, whole.x)
    np.testing.assert_array_equal(resumed.info["final_x"], whole.info["final_x"])


def test_kernel_blocks_shrink_with_the_pixel_pair_state_and_give_the_same_matrix(monkeypatch):
    conv = parse_spec("conv3x3:c=2 > relu > gap > dense")
    rng = np.random.default_rng(7)
    x1, x2 = rng.normal(size=(5, 16)), rng.normal(size=(3, 16))  # 4x4 images: 256 state entries per pair
    assert D.kernel_block_rows(ARCH, 16, 3, block_size=512) == 512
    monkeypatch.setattr(D, "KERNEL_BLOCK_ENTRIES", 2 * 3 * 256)
    assert D.kernel_block_rows(conv, 16, 3, block_size=512) == 2
    # tolerance: the same float64 kernel evaluated on 2-row blocks instead of all rows at once (~1e-16 measured)
    np.testing.assert_allclose(D.kernel_matrix(conv, x1, x2), np.asarray(analytic_ntk(conv, x1, x2)), rtol=1e-13)



def test_quadrature_duals_count_as_work_for_blocks_and_step_timing():
    """A formula activation's dual is a 129 x 129 rule per entry: numerics.kernels.pair_work counts it (a trial run
    of distill --arch expr:2:phi=tanh(x) kept 100-step chunks of ~43 s steps, so Ctrl-C waited over an hour, and
    its full-data kernel ran as one block of minutes). Closed-form chains keep their blocks and chunks."""
    from numerics.kernels import HERMITE_ORDER, pair_work
    from theory.expressions import QUADRATURE_NODES

    tanh = parse_spec("expr:2:phi=tanh(x)")
    assert pair_work(ARCH, 64) == 1 and pair_work(parse_spec("conv3x3:c=2 > relu > gap > dense"), 16) == 256
    assert pair_work(tanh, 64) == 1 + 2 * 2 * QUADRATURE_NODES**2
    assert pair_work(tanh, 64, by_series=True) == 1 + 2 * 2 * (HERMITE_ORDER + 1)
    assert D.kernel_matrix_rows(ARCH, 64, 1258) == D.kernel_block_rows(ARCH, 64, 1258)
    assert D.kernel_matrix_rows(tanh, 64, 1258) == 1 and D.kernel_matrix_rows(tanh, 64, 1258, by_series=True) == 12
    assert 1258 * 10 * pair_work(tanh, 64) > D.SLOW_STEP_WORK > 1258 * 10 * pair_work(ARCH, 64)

@pytest.mark.parametrize("slow", [False, True])
def test_kernel_blocks_are_sized_for_the_series_until_one_runs_the_rule(slow, monkeypatch):
    """kernel_matrix sizes a series dual's blocks for its Mehler series (the rule's sizes made the 1258 digits' tanh
    kernel 1258 one-row calls, 110 s; now 105 calls, 11 s) and for the 2-D rule once a block is slow (a block that
    ran the rule: here every block, by a zero limit); each size is compiled once, the last block padded to it, and the
    matrix is the one-call kernel (rows are independent: measured equal to 1e-16)."""
    from numerics import kernels

    tanh = parse_spec("expr:2:phi=tanh(x)")
    x = np.random.default_rng(4).normal(size=(23, 6)) / 3
    sizes, real = [], kernels.analytic_ntk_fn(tanh)

    class Spy:
        def lower(self, block, columns):
            sizes.append(block.shape[0])
            return real.lower(block, columns)

    monkeypatch.setattr(D, "analytic_ntk_fn", lambda arch: Spy())
    monkeypatch.setattr(D, "KERNEL_BLOCK_SLOW_SECONDS", 0.0 if slow else 1e9)
    series_rows = D.kernel_matrix_rows(tanh, 6, 23, block_size=20, by_series=True)
    rule_rows = D.kernel_matrix_rows(tanh, 6, 23, block_size=20)
    assert (series_rows, rule_rows) == (20, 10)  # 2^24 / (23 x 66565) = 10 rows by the rule
    kernel = D.kernel_matrix(tanh, x, block_size=20)
    assert sizes == ([20, 10] if slow else [20])  # the last 3 rows: padded to the size then in use
    np.testing.assert_allclose(kernel, np.asarray(analytic_ntk(tanh, x)), rtol=1e-13, atol=0)


def test_heavy_steps_are_timed_one_by_one_and_the_long_run_gets_a_note(monkeypatch, capsys):
    x_t, y_t, labels, _, _ = _problem(6, n=30, d=8)
    common = dict(per_class=2, lr=0.02, chunk=10, block_size=8, steps=14)
    plain = D.distill(ARCH, x_t, y_t, labels, progress=False, **common)
    monkeypatch.setattr(D, "SLOW_STEP_WORK", 0)
    monkeypatch.setattr(progress, "LONG_RUN_SECONDS", 0.0)
    timed = D.distill(ARCH, x_t, y_t, labels, progress=True, **common)
    assert "note: one step takes" in capsys.readouterr().out
    # tolerance: the same steps in scans of other lengths (1, 1, then up to 10); XLA may fuse them differently
    np.testing.assert_allclose(timed.loss_curve, plain.loss_curve, rtol=1e-12)
    np.testing.assert_allclose(timed.x, plain.x, rtol=1e-12)
