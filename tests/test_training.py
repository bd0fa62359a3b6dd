"""numerics.training: GD / heavy-ball on the MSE loss, the dual accumulator alpha, saving and loading."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numerics.networks import make_network
from numerics.training import (TrainResult, check_same_structure, flatten_params, jacobian_transpose_times,
                               kernel_alpha, kernel_solution, linearized_apply, load_model, param_difference,
                               save_model, train, _run_chunk)
from theory import parse_spec

N, D, C, WIDTH = 6, 3, 2, 64
ROUND_OFF = 1e-10  # exact identities; float64 round-off over <= 1e3 steps with cond(K) <= 1e2 is ~1e-12
CONVERGED = 1e-8  # the runs stop at loss <= 1e-24 x loss_0, so ||K^-1 r_T|| <= 1e-12 cond(K) relative


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, D))
    x *= np.sqrt(D) / np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.normal(size=(N, C))
    network = make_network(parse_spec("relu:2:sb=0.1"), WIDTH, C)
    params_0 = network.init(jax.random.PRNGKey(3), D)
    solution = kernel_solution(network, params_0, x, y)
    return dict(x=x, y=y, network=network, params_0=params_0, solution=solution,
                eigenvalues=np.asarray(solution.eigenvalues))


def _relative(a, b) -> float:
    a, b = np.asarray(flatten_params(a)), np.asarray(flatten_params(b))
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _train(problem, **options) -> TrainResult:
    lam = problem["eigenvalues"]
    scale = N if options.get("reduction") == "mean" else 1.0
    loss_0 = 0.5 * float(np.sum(np.asarray(problem["solution"].residual) ** 2)) / scale
    defaults = dict(learning_rate=scale / lam[-1], linearized=True, max_steps=20_000, loss_threshold=1e-24 * loss_0,
                    progress=False)
    defaults.update(options)
    return train(problem["network"], problem["params_0"], problem["x"], problem["y"], **defaults)


def _check_endpoint(problem, result):
    net, p0, x = problem["network"], problem["params_0"], problem["x"]
    alpha = problem["solution"].alpha
    assert result.stop_reason == "threshold"
    assert _relative(result.delta, jacobian_transpose_times(net.apply_fn, p0, x, result.alpha)) <= ROUND_OFF
    assert _relative(result.delta, jacobian_transpose_times(net.apply_fn, p0, x, alpha)) <= CONVERGED
    assert float(jnp.linalg.norm(result.alpha - alpha) / jnp.linalg.norm(alpha)) <= CONVERGED


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_linearized_endpoint_is_j0_transpose_alpha(problem, momentum, nesterov):
    result = _train(problem, momentum=momentum, nesterov=nesterov)
    _check_endpoint(problem, result)
    assert result.alpha.shape == (N, C) and result.alpha.dtype == jnp.float64
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(result.params_f))


def test_mean_reduction_carries_one_over_n(problem):
    result = _train(problem, reduction="mean", momentum=0.5)
    _check_endpoint(problem, result)
    assert result.losses[0] == pytest.approx(0.5 * np.sum(np.asarray(problem["solution"].residual) ** 2) / N,
                                             rel=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_telescoping_before_convergence(problem, momentum):
    """K alpha_T = r_0 - r_T after any number of steps, not only in the limit."""
    net, p0, x, y = problem["network"], problem["params_0"], problem["x"], problem["y"]
    result = _train(problem, momentum=momentum, max_steps=13, chunk_size=7)
    assert result.steps == 13 and result.stop_reason == "budget"
    r_t = np.asarray(y - linearized_apply(net.apply_fn, p0)(result.params_f, x)).reshape(-1)
    r_0 = np.asarray(problem["solution"].residual).reshape(-1)
    k_alpha = np.asarray(problem["solution"].kernel) @ np.asarray(result.alpha).reshape(-1)
    assert np.linalg.norm(k_alpha - (r_0 - r_t)) / np.linalg.norm(r_0 - r_t) <= ROUND_OFF


def test_chunking_does_not_change_the_run(problem):
    a = _train(problem, momentum=0.9, max_steps=40, chunk_size=7)
    b = _train(problem, momentum=0.9, max_steps=40, chunk_size=1000)
    assert a.steps == b.steps == 40
    np.testing.assert_allclose(flatten_params(a.params_f), flatten_params(b.params_f), rtol=0, atol=1e-13)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-13)  # same operations in the same order


def test_slow_training_steps_are_timed_and_chunks_cut(problem, monkeypatch):
    """Training whose chunks could take long (numerics.training.SLOW_TRAINING_WORK; relu:2 width 2048 ran 150 s
    chunks with its bar at 0) first runs two single steps, then chunks of about PROGRESS_SECONDS (here cut to 5 steps
    by pretending a step takes 2 s); the run is the same run (the attack's slow-chunk test allows the same 1e-12)."""
    from numerics import progress, training

    whole = _train(problem, momentum=0.9, max_steps=40, chunk_size=1000)
    lengths, real_run_chunk, real_ran = [], training._run_chunk, progress.ChunkSizer.ran

    def recorded(*args, chunk_size, **kwargs):
        lengths.append(chunk_size)
        return real_run_chunk(*args, chunk_size=chunk_size, **kwargs)

    def two_seconds_a_step(self, seconds, steps_left, steps=1):
        return real_ran(self, 2.0 * steps, steps_left, steps)

    monkeypatch.setattr(training, "_run_chunk", recorded)
    monkeypatch.setattr(training, "SLOW_TRAINING_WORK", 0)
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 10.0)
    monkeypatch.setattr(progress.ChunkSizer, "ran", two_seconds_a_step)
    slow = _train(problem, momentum=0.9, max_steps=40, chunk_size=1000)
    assert lengths[:3] == [1, 1, 5] and set(lengths[2:]) == {5}
    assert slow.steps == whole.steps == 40
    # tolerance: the same float64 steps in scans of other lengths; XLA may fuse them differently
    np.testing.assert_allclose(flatten_params(slow.params_f), flatten_params(whole.params_f), rtol=1e-12, atol=0)


def test_loss_threshold_stops_at_the_first_step_below(problem):
    threshold = 1e-3
    result = _train(problem, loss_threshold=threshold, chunk_size=7)
    assert result.stop_reason == "threshold"
    assert len(result.losses) == result.steps + 1
    assert result.losses[-1] <= threshold < result.losses[-2]
    assert np.all(np.diff(result.losses) < 0)  # lr = 1 / lambda_max: monotone descent on a quadratic


def test_no_recompile_for_new_hyperparameters(problem):
    _train(problem, max_steps=3, chunk_size=7)
    size = _run_chunk._cache_size()
    _train(problem, max_steps=5, chunk_size=7, learning_rate=0.1, momentum=0.3, loss_threshold=1e-3)
    assert _run_chunk._cache_size() == size


def test_network_training_reduces_loss(problem):
    result = _train(problem, linearized=False, loss_threshold=1e-6, max_steps=5000)
    assert result.stop_reason == "threshold" and result.final_loss <= 1e-6
    assert not result.linearized and result.alpha.shape == (N, C)


def test_progress_disabled_prints_nothing(problem, capsys):
    _train(problem, max_steps=5, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_divergence_warns_and_stops(problem):
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = _train(problem, learning_rate=1e3, max_steps=5000, loss_threshold=0.0)
    assert result.stop_reason == "diverged" and result.steps < 5000


def test_jacobian_transpose_times_matches_the_explicit_jacobian(problem):
    net, p0, x = problem["network"], problem["params_0"], problem["x"]
    alpha = np.random.default_rng(0).normal(size=(N, C))
    flat, unravel = jax.flatten_util.ravel_pytree(p0)
    jacobian = jax.jit(jax.jacobian(lambda v: net.apply(unravel(v), x).reshape(-1)))(flat)
    expected = jacobian.T @ alpha.reshape(-1)
    got = flatten_params(jacobian_transpose_times(net.apply_fn, p0, x, alpha))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)  # same products, different order
    with pytest.raises(ValueError, match="shape"):
        jacobian_transpose_times(net.apply_fn, p0, x, alpha[:, :1])


def test_linearized_apply_is_affine(problem):
    net, p0, x = problem["network"], problem["params_0"], problem["x"]
    f_lin = linearized_apply(net.apply_fn, p0)
    direction = jax.tree.map(lambda leaf: 0.1 * jnp.ones_like(leaf), p0)
    step = lambda s: jax.tree.map(lambda a, b: a + s * b, p0, direction)  # noqa: E731
    f0 = f_lin(p0, x)
    np.testing.assert_allclose(f0, net.apply(p0, x), rtol=1e-14)
    np.testing.assert_allclose(f_lin(step(2.0), x) - f0, 2 * (f_lin(step(1.0), x) - f0), rtol=1e-12, atol=1e-14)


def test_save_load_round_trip(problem, tmp_path):
    result = _train(problem, max_steps=10)
    path = result.save(tmp_path / "model")
    assert path.suffix == ".npz"
    loaded = load_model(tmp_path / "model")
    params_0, params_f, arch, width, out_dim = loaded
    assert (arch, width, out_dim) == (result.arch, WIDTH, C)
    for mine, theirs in ((params_0, result.params_0), (params_f, result.params_f)):
        check_same_structure(mine, theirs)
        np.testing.assert_array_equal(flatten_params(mine), flatten_params(theirs))


def test_load_rejects_tampered_files(problem, tmp_path):
    net, p0 = problem["network"], problem["params_0"]
    path = save_model(tmp_path / "m.npz", p0, p0, net.arch, WIDTH, C)
    with np.load(path) as data:
        contents = dict(data)
    key = next(k for k in contents if k.startswith("params_f"))
    contents[key] = contents[key][:-1]
    np.savez(tmp_path / "bad.npz", **contents)
    with pytest.raises(ValueError, match="has shape"):
        load_model(tmp_path / "bad.npz")
    del contents[key]
    np.savez(tmp_path / "missing.npz", **contents)
    with pytest.raises(ValueError, match="lacks"):
        load_model(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nowhere.npz")


def test_save_rejects_mismatched_params(problem, tmp_path):
    net, p0 = problem["network"], problem["params_0"]
    other = make_network(net.arch, WIDTH + 1, C).init(jax.random.PRNGKey(0), D)
    with pytest.raises(ValueError, match="params_f"):
        save_model(tmp_path / "m.npz", p0, other, net.arch, WIDTH, C)
    with pytest.raises(ValueError, match="differ in shape"):
        param_difference(other, p0)


@pytest.mark.parametrize("record, message", [
    (("digits-odd-even", 5, 0), "data_n 5: digits-odd-even draws equal numbers"),
    (("digits-odd-even", 4, 2**32), "data_seed must be an integer from 0 to 2\\*\\*32 - 1"),
    (("cifar-100", 4, 0), "data_name 'cifar-100' is not one of"),
    (("sphere", 4, 0), f"data_name sphere has 10 inputs and 1 output\\(s\\); the network has {D} and {C}"),
    (("sphere", 4), "training_data must be \\(dataset name, N, seed\\)"),
])
def test_save_refuses_records_load_would_refuse(problem, tmp_path, record, message):
    """save_model and load_model share one rule for the training-data record (numerics.audit.check_training_data):
    nothing is written that reading would refuse."""
    net, p0 = problem["network"], problem["params_0"]
    with pytest.raises(ValueError, match=message):
        save_model(tmp_path / "m.npz", p0, p0, net.arch, WIDTH, C, training_data=record)
    assert not (tmp_path / "m.npz").exists()


def test_bad_inputs(problem):
    net, p0, x, y = problem["network"], problem["params_0"], problem["x"], problem["y"]
    ok = dict(learning_rate=0.1, progress=False, max_steps=1)
    x_nan = x.copy()
    x_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        train(net, p0, x_nan, y, **ok)
    y_nan = y.copy()
    y_nan[0, 0] = np.inf
    with pytest.raises(ValueError, match="y contains NaN"):
        train(net, p0, x, y_nan, **ok)
    with pytest.raises(ValueError, match=r"y must have shape \(N, C\)"):
        train(net, p0, x, y[:, 0], **ok)
    with pytest.raises(ValueError, match=r"y must have shape \(N, C\)"):
        train(net, p0, x, y[:-1], **ok)
    with pytest.raises(ValueError, match="x must have shape"):
        train(net, p0, x[0], y, **ok)
    with pytest.raises(ValueError, match="needs"):
        train(net, p0, np.zeros((N, D + 1)), y, **ok)
    with pytest.raises(ValueError, match="reduction"):
        train(net, p0, x, y, **ok, reduction="median")
    with pytest.raises(ValueError, match="momentum"):
        train(net, p0, x, y, **{**ok, "momentum": 1.0})
    with pytest.raises(ValueError, match="learning_rate"):
        train(net, p0, x, y, **{**ok, "learning_rate": -1.0})


def test_singular_kernel_is_reported(problem):
    net, p0, x, y = problem["network"], problem["params_0"], problem["x"], problem["y"]
    duplicated = x.copy()
    duplicated[1] = duplicated[0]
    with pytest.raises(ValueError, match="singular"):
        kernel_alpha(net, p0, duplicated, y)
    bias_free = make_network(parse_spec("relu:2"), WIDTH, C)
    scaled = x.copy()
    scaled[1] = 2.0 * scaled[0]  # positively homogeneous: J(2x) = 2 J(x), so K has rank N - 1
    with pytest.raises(ValueError, match="singular"):
        kernel_alpha(bias_free, bias_free.init(jax.random.PRNGKey(0), D), scaled, y)


def test_progress_bar_ends_on_the_loss_the_run_reports(monkeypatch):
    """The bar shows each step's loss before its update; once the run stops it shows the loss after the last
    update, the final_loss (and stop reason) the run reports, so a run stopped at its threshold never ends on a
    number above it."""
    import numerics.training as training

    shown, totals = [], []

    class Bar:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def add_task(self, *args, **kwargs):
            return 0

        def update(self, task, **fields):
            shown.append(fields["value"])
            totals.append(fields.get("total"))

    monkeypatch.setattr(training, "progress_bar", lambda **kwargs: Bar())
    net = make_network(parse_spec("relu:2"), 64)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    y = jax.random.normal(jax.random.PRNGKey(1), (4, 1))
    result = train(net, net.init(jax.random.PRNGKey(2), 3), x, y, learning_rate=0.5, max_steps=5000,
                   loss_threshold=1e-6, chunk_size=50, progress=True)
    assert result.stop_reason == "threshold", (result.stop_reason, result.final_loss)
    assert shown[-1] == result.final_loss <= 1e-6
    assert totals[-1] == result.steps < 5000 and set(totals[:-1]) == {None}  # the bar ends full where it stopped


def test_save_model_takes_a_spec_string_and_names_a_wrong_arch(tmp_path):
    """save_model accepts the spec string ("relu:2") as the bring-your-own-model example (docs/audit.md) passes it;
    anything else is named in one line (it raised AttributeError on a str before)."""
    from numerics.training import load_model

    net = make_network(parse_spec("relu:2"), WIDTH, C)
    p0 = net.init(jax.random.PRNGKey(0), 3)
    assert load_model(save_model(tmp_path / "m.npz", p0, p0, "relu:2", WIDTH, C)).arch == net.arch
    with pytest.raises(TypeError, match="Architecture or a spec string"):
        save_model(tmp_path / "m.npz", p0, p0, 2, WIDTH, C)


@pytest.mark.parametrize("mistake, words", [
    ("tuple", "they are a tuple, not a list with one entry per layer"),
    ("bias", "entry 0 is (W, b) where the spec needs (W, None) (the spec has no biases, sb=0"),
    ("torch", "(a (fan-out, fan-in) matrix, as PyTorch stores one? this layout is (fan-in, fan-out)"),
    ("missing", "they have 4 entries, the spec's layers are 5"),
])
def test_a_wrongly_laid_out_model_is_named_in_words(mistake, words, tmp_path):
    """A trial's own-model mistakes read as PyTreeDef dumps ("got PyTreeDef(((*, None), ...)), expected
    PyTreeDef([(*, None), ...])": a tuple for the list, one bracket apart), and a PyTorch-order first matrix as a
    network with invented inputs; each is now said in the words of docs/audit.md."""
    rng = np.random.default_rng(0)
    good = [(rng.normal(size=(8, 16)), None), (), (rng.normal(size=(16, 16)), None), (), (rng.normal(size=(16, 1)), None)]
    params = {"tuple": tuple(good), "bias": [(good[0][0], np.zeros((1, 16)))] + good[1:],
              "torch": [(good[0][0].T, None)] + good[1:], "missing": good[:-1]}[mistake]
    with pytest.raises(ValueError) as error:
        save_model(tmp_path / "m.npz", params, params, "relu:2", 16)
    assert words in str(error.value) and "PyTreeDef" not in str(error.value)
    save_model(tmp_path / "m.npz", good, good, "relu:2", 16)  # the layout docs/audit.md gives
