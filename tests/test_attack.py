"""numerics.attack: the parameter-space attack (gradient, steps, checkpoints, errors) and the kernel-space attack."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attack_reference import D
from attack_reference import explicit_jacobian_transpose as _explicit_jacobian_transpose
from attack_reference import explicit_loss as _explicit_loss
from attack_reference import network_pair as _pair
from numerics import attack
from numerics.kernels import analytic_ntk
from numerics.networks import activation_fn, forward, make_network
from theory import parse_spec

M = 3
GRADIENT_CASES = [("relu:2", 1, "theta0"), ("erf:2:sb=0.1", 2, "both"), ("relu:1:sb=0.3:param=standard", 2, "thetaf")]


@functools.cache
def _gradients(spec, out_dim, at):
    arch, params_0, params_f = _pair(spec, out_dim, jax.random.PRNGKey(7))
    delta = jax.tree_util.tree_map(lambda a, b: a - b, params_f, params_0)
    thetas = attack._select_thetas(at, params_0, params_f)

    @jax.jit
    def both(x, lam, beta):
        phi = activation_fn(arch, smooth_beta=beta)
        ours = attack.loss_and_grad(arch, thetas, delta, x, lam, activation=phi, method="jvp")
        reference = jax.value_and_grad(lambda x_, l_: _explicit_loss(arch, thetas, delta, x_, l_, phi),
                                       argnums=(0, 1))(x, lam)
        return ours, reference

    return both


def _relative(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.maximum(jnp.linalg.norm(b), 1e-300))


values = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("spec,out_dim,at", GRADIENT_CASES)
@settings(max_examples=6)
@given(x=arrays(np.float64, (M, D), elements=values), lam=arrays(np.float64, (M, 2), elements=values),
       beta=st.floats(1.0, 300.0))
@example(x=np.zeros((M, D)), lam=np.ones((M, 2)), beta=200.0)
def test_jvp_gradient_matches_autodiff(spec, out_dim, at, x, lam, beta):
    """The attack's loss (one VJP) and its gradient (grad_X = -2 grad_X[lambda . J(X) v], grad_lambda = -2 J(X) v)
    equal the loss built from the explicit forward-mode Jacobian and jax autodiff of it."""
    ours, reference = _gradients(spec, out_dim, at)(jnp.asarray(x), jnp.asarray(lam[:, :out_dim]), beta)
    # one number from two code paths (VJP vs explicit Jacobian): float64 round-off of O(P) products, ~1e-15
    assert abs(float(ours[0] - reference[0])) <= 1e-12 * max(float(reference[0]), 1e-300)
    for mine, theirs in zip(ours[1], reference[1]):
        # the same products summed in a different order: float64 round-off (~1e-16), far below 1e-10
        if float(jnp.linalg.norm(theirs)) > 0:
            assert _relative(mine, theirs) <= 1e-10
        else:
            assert float(jnp.linalg.norm(mine)) <= 1e-14  # an exactly zero reference: round-off only


def test_loss_of_a_span_is_zero_at_its_points(key):
    """Delta theta = J(X)^T lambda built from the explicit Jacobian; the attack's loss (VJP) vanishes at (X, lambda)
    and elsewhere equals the explicit loss."""
    arch, params_0, _ = _pair("erf:2:sb=0.1", 2, key)
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (M, D))
    lam = jax.random.normal(k2, (M, 2))
    delta = _explicit_jacobian_transpose(arch, params_0, x, lam)
    norm = sum(float(jnp.sum(leaf**2)) for leaf in jax.tree_util.tree_leaves(delta))
    loss = attack.reconstruction_loss(arch, (params_0,), delta, x, lam)
    # two code paths for J^T lambda agree to float64 round-off (~1e-16 relative), so the loss is ~1e-32 ||delta||^2
    assert float(loss) <= 1e-26 * norm
    other = lam + 0.1 * jax.random.normal(k3, lam.shape)
    expected = float(_explicit_loss(arch, (params_0,), delta, x, other))
    assert expected > 1e-6 * norm  # a real, nonzero comparison
    # one number from two code paths: round-off of O(P) products
    assert abs(float(attack.reconstruction_loss(arch, (params_0,), delta, x, other)) - expected) <= 1e-12 * norm


def test_unknown_gradient_method(key):
    arch, params_0, params_f = _pair("relu:2", 1, key)
    with pytest.raises(ValueError, match="gradient method"):
        attack.loss_and_grad(arch, (params_0,), params_f, jnp.zeros((M, D)), jnp.zeros((M, 1)), method="fd")


def test_beta_schedules():
    # closed-form schedule values: a couple of float64 operations, so a few ulps
    assert float(attack.beta_at(0, 11, (10.0, 1000.0), "geometric")) == pytest.approx(10.0, rel=1e-14)
    assert float(attack.beta_at(5, 11, (10.0, 1000.0), "geometric")) == pytest.approx(100.0, rel=1e-12)
    assert float(attack.beta_at(10, 11, (10.0, 200.0), "linear")) == pytest.approx(200.0, rel=1e-14)
    assert float(attack.beta_at(5, 11, (10.0, 200.0), "linear")) == pytest.approx(105.0, rel=1e-14)
    assert np.isinf(float(attack.beta_at(3, 11, None, "geometric")))


def test_box_penalty():
    lo, hi = jnp.zeros((1, 2)), jnp.ones((1, 2))
    assert float(attack.box_penalty(jnp.array([[0.5, 0.2]]), lo, hi)) == 0.0
    assert float(attack.box_penalty(jnp.array([[-0.5, 1.5]]), lo, hi)) == pytest.approx(0.5, rel=1e-15)  # exact sum


# ---------------------------------------------------------------------------------------------------------
# The parameter-space attack
# ---------------------------------------------------------------------------------------------------------

def _span_problem(key, spec="relu:2", out_dim=1, width=32):
    """theta_f = theta_0 + J_0(X_T)^T alpha: Delta theta lies exactly in the span of the training gradients."""
    arch = parse_spec(spec)
    network = make_network(arch, width, out_dim)
    k0, k1, k2 = jax.random.split(key, 3)
    params_0 = network.init(k0, D)
    x_t = jax.random.normal(k1, (3, D))
    alpha = jax.random.uniform(k2, (3, out_dim), minval=0.5, maxval=1.5)
    delta = attack.jacobian_transpose_lambda(arch, params_0, x_t, alpha)
    params_f = jax.tree_util.tree_map(lambda a, b: a + b, params_0, delta)
    return arch, params_0, params_f


def test_attack_decreases_the_loss(key):
    arch, params_0, params_f = _span_problem(key, "erf:2:sb=0.1", out_dim=2)
    result = attack.parameter_space_attack(arch, params_0, params_f, 4, in_dim=D, key=key, steps=150, lr=0.02,
                                           box=(-3.0, 3.0), progress=False, chunk=150)
    assert result.x_recon.shape == (4, D) and result.coefficients.shape == (4, 2)
    assert result.loss_curve.shape == (150,)
    assert result.kind == "parameter" and result.steps == 150
    assert result.loss_curve[-1] < 0.2 * result.loss_curve[0]
    assert np.isfinite(result.final_loss)



def test_delta_scale_attacks_the_scaled_change_at_the_true_parameters(key):
    """delta_scale s: the run minimizes ||Delta theta / s - J^T mu||^2 with J taken at the true theta_f (not at
    theta_0 + Delta theta / s, which is another network); at theta_0 it is the run on theta_0 + Delta theta / s."""
    arch, params_0, params_f = _span_problem(key, "erf:2:sb=0.1", out_dim=2)
    s = 7.0
    common = dict(in_dim=D, key=key, steps=40, lr=0.02, box=(-3.0, 3.0), progress=False, chunk=40)
    scaled = attack.parameter_space_attack(arch, params_0, params_f, 4, at="thetaf", delta_scale=s, **common)
    delta = jax.tree_util.tree_map(lambda a, b: (a - b) / s, params_f, params_0)
    x, mu = jnp.asarray(scaled.x_recon), jnp.asarray(scaled.coefficients)
    at_true = float(attack.reconstruction_loss(arch, [params_f], delta, x, mu))
    shifted_f = jax.tree_util.tree_map(lambda a, b: a + b, params_0, delta)
    at_shifted = float(attack.reconstruction_loss(arch, [shifted_f], delta, x, mu))
    # one loss from two evaluations of the same expression (measured equal); 1e-12 leaves room for round-off
    assert abs(scaled.info["loss_unsmoothed"] - at_true) <= 1e-12 * at_true
    assert abs(at_shifted - at_true) > 1e-3 * at_true  # the shifted network is another one: the rule can tell them apart
    assert scaled.info["delta_scale"] == s
    assert scaled.info["delta_theta_sqnorm"] == pytest.approx(float(attack._tree_sqnorm(delta)), rel=1e-12)
    # at theta_0 the scaled run is the run on the shifted model (attack-curve --rescale before delta_scale existed):
    # the same steps on Delta theta / s computed in another order: after 40 Adam steps measured 4e-16 (X_R) and
    # 8e-16 (loss) relative; 1e-12 leaves room for round-off to grow over the steps
    by_scale = attack.parameter_space_attack(arch, params_0, params_f, 4, delta_scale=s, **common)
    by_shift = attack.parameter_space_attack(arch, params_0, shifted_f, 4, **common)
    assert _relative(jnp.asarray(by_scale.x_recon), jnp.asarray(by_shift.x_recon)) <= 1e-12
    assert abs(by_scale.final_loss - by_shift.final_loss) <= 1e-12 * by_shift.final_loss

def test_attack_recovers_a_small_training_set():
    """End to end: a width-512 relu:2 network trained in its linearization on 4 points of S^4 (heavy-ball, as
    proofs-check attack trains), attacked with the library defaults (M = 12, 1000 steps): every training point
    has a reconstruction whose direction is within 0.05 (bias-free ReLU is homogeneous, so only directions are
    identifiable), the exact-activation loss is below 2e-3 of ||Delta theta||^2, and trivial reconstructions
    (held-out sphere points) are far from every training point."""
    from numerics.audit import train_on
    from numerics.data import sphere
    from numerics.metrics import match

    arch = parse_spec("relu:2")
    data = sphere(4, 5, seed=21)
    trained = train_on(arch, 512, data, linearized=True, seed=21, loss_threshold=1e-20, max_steps=5000,
                       progress=False)
    assert trained.stop_reason == "threshold"
    result = attack.parameter_space_attack(arch, trained.params_0, trained.params_f, 12, in_dim=5,
                                           key=jax.random.PRNGKey(22), steps=1000, progress=False, chunk=1000)
    directions = result.x_recon / np.linalg.norm(result.x_recon, axis=1, keepdims=True)
    scored = match(directions, data.x)
    # the softplus bias at beta = 200 leaves ~1e-2 (measured 0.0044 ... 0.025 at 37 of R1's --seed 0-39); held-out
    # points are ~0.5+ away
    assert scored.max_distance <= 0.05, scored.original_scores
    baseline = match(sphere(8, 5, seed=23).x, data.x)
    assert baseline.max_distance > 0.2
    delta_norm = sum(float(jnp.sum(leaf**2)) for leaf in jax.tree_util.tree_leaves(trained.delta))
    # measured 3.7e-5 ... 1.3e-3 at 37 of R1's --seed 0-39 with beta annealed 10 -> 200 (R1, finite-width attack)
    assert result.info["loss_unsmoothed"] <= 2e-3 * delta_norm


def test_attack_with_a_progress_bar(key, capsys):
    arch, params_0, params_f = _span_problem(key)
    result = attack.parameter_space_attack(arch, params_0, params_f, 2, in_dim=D, key=key, steps=4, progress=True,
                                           chunk=2, anneal="linear")
    assert result.info["final_beta"] == pytest.approx(200.0, rel=1e-14)  # linear schedule's end point
    assert result.info["loss_unsmoothed"] >= 0


def test_heavy_attack_steps_are_timed_and_chunks_sized(key, monkeypatch, capsys):
    """An attack over SLOW_ATTACK_WORK runs two single steps (the second timed), then chunks capped so that one
    takes about PROGRESS_SECONDS (here 0: single steps), and a long remainder gets a one-line note; the steps are
    the same as in one long chunk."""
    from numerics import progress

    arch, params_0, params_f = _span_problem(key)
    common = dict(in_dim=D, key=key, steps=6, chunk=6)
    plain_chunks, timed_chunks = [], []
    plain = attack.parameter_space_attack(arch, params_0, params_f, 2, progress=False,
                                          on_chunk=lambda step, x: plain_chunks.append(step), **common)
    monkeypatch.setattr(attack, "SLOW_ATTACK_WORK", 0)
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(progress, "LONG_RUN_SECONDS", 0.0)
    timed = attack.parameter_space_attack(arch, params_0, params_f, 2, progress=True,
                                          on_chunk=lambda step, x: timed_chunks.append(step), **common)
    assert plain_chunks == [6] and timed_chunks == [1, 2, 3, 4, 5, 6]
    assert "note: one attack step takes" in " ".join(capsys.readouterr().out.split())
    # tolerance: the same float64 steps in scans of other lengths; XLA may fuse them differently
    np.testing.assert_allclose(timed.loss_curve, plain.loss_curve, rtol=1e-12)
    np.testing.assert_allclose(timed.x_recon, plain.x_recon, rtol=1e-12)


def test_a_long_run_of_fast_steps_gets_its_estimate_from_the_second_chunk(key, monkeypatch, capsys):
    """A light attack (fast steps) with a huge --steps got no estimate (a new user's trial): its second chunk (the
    first compiles) times the step, and the steps left beyond LONG_RUN_SECONDS get the one-line note, once."""
    from numerics import progress

    sizer = progress.ChunkSizer(100, heavy=False)
    assert sizer.ran(5.0, 10**8 - 100, 100) is None  # the first chunk compiles: not a step time
    assert sizer.ran(0.01, 10**8 - 200, 100) == pytest.approx(1e-4 * (10**8 - 200))  # 1e-4 s per step: ~2.8 h left
    assert sizer.ran(0.01, 10**8 - 300, 100) is None and sizer.chunk == 100  # said once; chunks unchanged
    short = progress.ChunkSizer(100, heavy=False)
    short.ran(5.0, 1000, 100)
    assert short.ran(0.01, 900, 100) is None  # 0.09 s left: no note
    assert progress.step_time(1e-4) == "0.1 ms" and progress.step_time(2.5) == "2.5 s"

    arch, params_0, params_f = _span_problem(key)
    monkeypatch.setattr(progress, "LONG_RUN_SECONDS", 0.0)
    attack.parameter_space_attack(arch, params_0, params_f, 2, in_dim=D, key=key, steps=8, chunk=2, progress=True)
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("note: one attack step takes") == 1 and "so the 4 steps left take about" in out, out


def test_resume_with_other_settings_is_refused(key, tmp_path):
    arch, params_0, params_f = _span_problem(key)
    path = tmp_path / "attack.npz"
    attack.parameter_space_attack(arch, params_0, params_f, 3, in_dim=D, key=key, steps=4, progress=False,
                                  checkpoint=path)
    with pytest.raises(ValueError, match="n_recon"):
        attack.parameter_space_attack(arch, params_0, params_f, 2, in_dim=D, key=key, steps=4, progress=False,
                                      checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="at="):
        attack.parameter_space_attack(arch, params_0, params_f, 3, in_dim=D, key=key, steps=4, progress=False,
                                      checkpoint=path, resume=True, at="both")


def test_checkpoint_needs_npz(key, tmp_path):
    arch, params_0, params_f = _span_problem(key)
    with pytest.raises(ValueError, match=".npz"):
        attack.parameter_space_attack(arch, params_0, params_f, 3, in_dim=D, key=key, steps=4, progress=False,
                                      checkpoint=tmp_path / "attack.bin")


def _drop_last_layer(params):
    return params[:-1]


def _reshape_first(params):
    (w, b), *rest = params
    return [(w[:, :-1], b[..., :-1] if b is not None else None), *rest]


def _nan_first(params):
    (w, b), *rest = params
    return [(w.at[0, 0].set(jnp.nan), b), *rest]


@pytest.mark.parametrize("change,match", [
    (_drop_last_layer, "different tree structures"),
    (_reshape_first, "differ in shape"),
    (_nan_first, "NaN or inf"),
    (lambda p: p, "nothing to reconstruct"),
])
def test_bad_parameters(key, change, match):
    arch, params_0, _ = _span_problem(key, "relu:2:sb=0.1")
    with pytest.raises(ValueError, match=match):
        attack.parameter_space_attack(arch, params_0, change(params_0), 3, in_dim=D, key=key, steps=2,
                                      progress=False)


@pytest.mark.parametrize("options,match", [
    (dict(n_recon=0), "n_recon must be an integer >= 1"),
    (dict(n_recon=2.5), "n_recon must be an integer >= 1"),
    (dict(n_recon=True), "n_recon must be an integer >= 1"),
    (dict(steps=0), "steps must be"),
    (dict(in_dim=D + 1), "in_dim"),
    (dict(at="theta_1"), "at must be one of"),
    (dict(lr=-1.0), "lr must be"),
    (dict(lr=float("nan")), "lr must be"),
    (dict(box=(1.0, 0.0)), "lo < hi"),
    (dict(box=(np.zeros(D + 1), 1.0)), "broadcast"),
    (dict(box=(np.nan, 1.0)), "finite"),
    (dict(beta_schedule=(10.0, -1.0)), "beta_schedule"),
    (dict(beta_schedule=5.0), "beta_schedule"),
    (dict(method="fd"), "method must be"),
    (dict(anneal="cosine"), "anneal must be"),
    (dict(delta_scale=0.0), "delta_scale must be"),
])
def test_bad_attack_options(key, options, match):
    arch, params_0, params_f = _span_problem(key)
    kwargs = dict(n_recon=3, in_dim=D, key=key, steps=2, progress=False)
    kwargs.update(options)
    n_recon = kwargs.pop("n_recon")
    with pytest.raises(ValueError, match=match):
        attack.parameter_space_attack(arch, params_0, params_f, n_recon, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# The kernel-space attack
# ---------------------------------------------------------------------------------------------------------

def _sphere(rng, n, d):
    z = rng.normal(size=(n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_profiled_loss_is_the_minimum_over_lambda():
    """L*(X_R) equals the kernel form at lambda*, and the kernel form is larger at any other lambda."""
    arch = parse_spec("relu:2")
    rng = np.random.default_rng(3)
    x_t, x_r = _sphere(rng, 4, 5), _sphere(rng, 3, 5)
    alpha = rng.normal(size=(4, 2))
    loss, lam = attack.profiled_loss(arch, jnp.asarray(x_t), jnp.asarray(alpha), jnp.asarray(x_r))
    k_tt, k_tr, k_rr = (np.asarray(analytic_ntk(arch, a, b)) for a, b in ((x_t, x_t), (x_t, x_r), (x_r, x_r)))

    def form(l_):
        return float(np.sum(alpha * (k_tt @ alpha)) - 2 * np.sum(alpha * (k_tr @ l_)) + np.sum(l_ * (k_rr @ l_)))

    scale = float(np.sum(alpha * (k_tt @ alpha)))
    assert abs(float(loss) - form(np.asarray(lam))) <= 1e-12 * scale  # two float64 evaluations of one number
    for _ in range(5):
        # completing the square: the excess is (dl)^T Theta_RR dl ~ 1e-6, far above round-off
        assert form(np.asarray(lam) + 1e-3 * rng.normal(size=lam.shape)) > float(loss)
    covering, _ = attack.profiled_loss(arch, jnp.asarray(x_t), jnp.asarray(alpha), jnp.asarray(np.vstack([x_r, x_t])))
    assert abs(float(covering)) <= 1e-10 * scale  # X_T among the reconstructions: zero up to Cholesky round-off


def test_kernel_attack_recovers_a_small_set(key):
    arch = parse_spec("relu:2")
    rng = np.random.default_rng(11)
    x = _sphere(rng, 3, 4)
    alpha = np.array([1.0, -0.8, 0.6])
    result = attack.kernel_space_attack(arch, x, alpha, 6, key=key, steps=600, restarts=2, polish_iterations=20)
    scored = attack.recovery(result.x_recon, result.coefficients, x, alpha)
    assert result.coefficients.shape == (6,)
    assert len(result.restart_losses) == 2 and result.loss_curve.shape == (600,)
    assert scored.max_distance <= 1e-3  # Theorem 1: the global minimizer contains X_T; 1e-3 as in T1
    assert scored.spurious == 0
    np.testing.assert_allclose(np.linalg.norm(result.x_recon, axis=1), 1.0, rtol=1e-12)  # z / |z|: a few ulps


def test_kernel_attack_euclidean_multi_output(key):
    arch = parse_spec("erf:2:sb=0.2")
    rng = np.random.default_rng(5)
    x = 1.5 * rng.normal(size=(2, 3))
    alpha = rng.normal(size=(2, 2))
    result = attack.kernel_space_attack(arch, x, alpha, 3, key=key, steps=50, restarts=2, domain="euclidean",
                                        polish_iterations=0, ridge=1e-12)
    assert result.coefficients.shape == (3, 2)
    assert result.info["ridge"] == 1e-12 and result.info["domain"] == "euclidean"
    assert result.loss_curve[-1] < result.loss_curve[0]


@pytest.mark.parametrize("change,match", [
    (lambda x, a: (np.vstack([x, x[:1]]), np.append(a, 1.0)), "duplicate points.*singular"),
    (lambda x, a: (np.where(np.arange(x.size).reshape(x.shape) == 0, np.nan, x), a), "NaN"),
    (lambda x, a: (2 * x, a), "unit sphere"),
    (lambda x, a: (x, a[:-1]), "alpha must have shape"),
    (lambda x, a: (x, np.where(np.arange(a.size) == 1, np.inf, a)), "alpha contains NaN or inf"),
    (lambda x, a: (x, 0 * a), "alpha is zero"),
])
def test_kernel_attack_bad_input(key, change, match):
    rng = np.random.default_rng(0)
    x, alpha = change(_sphere(rng, 3, 4), np.array([1.0, -1.0, 0.5]))
    with pytest.raises(ValueError, match=match):
        attack.kernel_space_attack(parse_spec("relu:2"), x, alpha, 3, key=key, steps=2, restarts=1)


@pytest.mark.parametrize("options,match", [
    (dict(n_recon=0), "n_recon"), (dict(restarts=0), "restarts"), (dict(domain="torus"), "domain"),
    (dict(ridge=-1.0), "ridge"), (dict(polish_iterations=-1), "polish_iterations"),
    (dict(polish_top=0), "polish_top"), (dict(lr_final=0.0), "lr_final"),
])
def test_kernel_attack_bad_options(key, options, match):
    rng = np.random.default_rng(0)
    kwargs = dict(n_recon=3, key=key, steps=2, restarts=1)
    kwargs.update(options)
    with pytest.raises(ValueError, match=match):
        attack.kernel_space_attack(parse_spec("relu:2"), _sphere(rng, 3, 4), np.ones(3), kwargs.pop("n_recon"),
                                   **kwargs)


def test_kernel_attack_warns_about_silent_points(key):
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match="cannot be recovered"):
        attack.kernel_space_attack(parse_spec("relu:2"), _sphere(rng, 3, 4), np.array([1.0, 0.0, 1.0]), 3,
                                   key=key, steps=2, restarts=1, polish_iterations=0)


# ---------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------

def test_recovery_merges_and_drops():
    x_t = np.eye(3)
    alpha = np.array([1.0, -2.0, 0.5])
    x_r = np.array([[1, 0, 0], [1, 1e-4, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5]])
    lam = np.array([0.4, 0.6, -2.0, 0.5, 1e-9])
    scored = attack.recovery(x_r, lam, x_t, alpha)
    assert scored.locations.shape == (3, 3)  # two merged, one weightless dropped
    # merged location is within the 1e-4 pair; merged weight 0.4 + 0.6 = 1 up to one rounding
    assert scored.max_distance <= 1e-4 and scored.max_weight_error <= 1e-12 and scored.spurious == 0


def test_recovery_counts_missing_and_spurious():
    x_t = np.eye(2)
    scored = attack.recovery(np.array([[1.0, 0.0]]), np.array([1.0]), x_t, np.ones(2))
    assert np.isinf(scored.max_distance)
    scored = attack.recovery(np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]), np.ones(3), x_t, np.ones(2))
    assert scored.spurious == 1 and scored.max_distance == 0.0


@settings(max_examples=10)
@given(points=arrays(np.float64, (5, 2), elements=st.sampled_from([0.0, 1.0, 1.005, 3.0])),
       weights=arrays(np.float64, (5,), elements=st.floats(-2, 2, allow_nan=False)))
def test_merging_preserves_the_total_coefficient(points, weights):
    locations, merged = attack.merge_reconstructions(points, weights, merge_radius=1e-2)
    assert merged.shape[0] == locations.shape[0] <= 5
    assert abs(float(merged.sum()) - float(weights.sum())) <= 1e-12 * (1 + np.abs(weights).sum())  # re-summation


def test_coefficient_scale_is_the_norm_ratio_by_an_explicit_jacobian(key):
    """numerics.audit.coefficient_scale s = ||Delta theta|| / sqrt(M mean_x Theta_0(x, x)), checked against the NTK
    diagonal from the explicit Jacobian (jax.jacobian of the flat parameters, not the layer-by-layer ntk_matrix it
    uses): a wrong diagonal or a missing square root changes s by O(1)."""
    from jax.flatten_util import ravel_pytree

    from numerics import audit

    arch, params_0, params_f = _span_problem(key, "erf:2:sb=0.1", out_dim=1)
    network = make_network(arch, 32, 1)
    public = jax.random.normal(jax.random.PRNGKey(3), (5, D))
    flat, unravel = ravel_pytree(params_0)
    jacobian = jax.jacobian(lambda p: network.apply_fn(unravel(p), public).reshape(-1))(flat)  # (M, P)
    diagonal = jnp.sum(jacobian**2, axis=1)
    delta = ravel_pytree(params_f)[0] - flat
    expected = float(jnp.linalg.norm(delta) / jnp.sqrt(5 * jnp.mean(diagonal)))
    ours = audit.coefficient_scale(arch, 32, 1, params_0, params_f, public)
    # two float64 evaluations of one ratio (layer-by-layer NTK vs explicit Jacobian): round-off, ~1e-15
    assert abs(ours - expected) <= 1e-12 * expected

