"""numerics.attack's cheaper formulations: the kernel form of the loss (quadratic in lambda, empirical NTK layer by
layer), the low-rank Delta theta, the profiled-lambda mode, the automatic choice and float32 runs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attack_reference import D
from attack_reference import explicit_loss as _explicit_loss
from attack_reference import network_pair as _pair
from numerics import attack
from numerics.networks import activation_fn, make_network
from theory import parse_spec

M = 3
CASES = [("relu:2", 1, "theta0"), ("erf:2:sb=0.1", 2, "both"), ("relu:1:sb=0.3:param=standard", 2, "thetaf")]


@functools.cache
def _compiled(spec, out_dim, at):
    arch, params_0, params_f = _pair(spec, out_dim, jax.random.PRNGKey(11))
    delta = jax.tree_util.tree_map(lambda a, b: a - b, params_f, params_0)
    thetas = attack._select_thetas(at, params_0, params_f)

    @jax.jit
    def both(x, lam, beta):
        phi = activation_fn(arch, smooth_beta=beta)
        kernel = attack.loss_and_grad(arch, thetas, delta, x, lam, activation=phi, method="kernel")
        fused = attack.loss_and_grad(arch, thetas, delta, x, lam, activation=phi, method="fused")
        reference = jax.value_and_grad(lambda x_, l_: _explicit_loss(arch, thetas, delta, x_, l_, phi),
                                       argnums=(0, 1))(x, lam)
        profiled = attack.profiled_loss_and_grad(arch, thetas, delta, x, activation=phi)
        fused_profiled = attack.fused_profiled_loss_and_grad(arch, thetas, delta, x, activation=phi)

        def profiled_reference(x_):
            # lambda*(X) by an independent dense solve of the normal equations of the explicit loss
            flat = lambda l: _explicit_loss(arch, thetas, delta, x_, l.reshape(lam.shape), phi)  # noqa: E731
            zero = jnp.zeros(lam.size)
            lam_star = jnp.linalg.solve(jax.hessian(flat)(zero), -jax.grad(flat)(zero))
            return flat(lam_star)

        sq = len(thetas) * sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(delta))
        flat = lambda l: _explicit_loss(arch, thetas, delta, x, l.reshape(lam.shape), phi)  # noqa: E731
        condition = jnp.linalg.cond(jax.hessian(flat)(jnp.zeros(lam.size)))  # of K, the Hessian's half
        return (kernel, fused, reference, profiled, fused_profiled, jax.value_and_grad(profiled_reference)(x), sq,
                condition)

    return both


def _relative(a, b):
    """||a - b|| / ||b||; for an exactly zero reference (lambda = 0 gives grad_X = 0) ||a|| / 1e-4, so that only
    round-off (< 1e-14) passes a 1e-10 bar."""
    reference = float(jnp.linalg.norm(b))
    return float(jnp.linalg.norm(a - b)) / (reference if reference > 0 else 1e-4)


values = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("spec,out_dim,at", CASES)
@settings(max_examples=5)
@given(x=arrays(np.float64, (M, D), elements=values), lam=arrays(np.float64, (M, 2), elements=values),
       beta=st.floats(1.0, 300.0))
@example(x=np.zeros((M, D)), lam=np.ones((M, 2)), beta=200.0)
def test_kernel_form_and_profiled_gradients_match_autodiff(spec, out_dim, at, x, lam, beta):
    """Kernel form (autodiff of ||dtheta||^2 - 2 lambda.J dtheta + lambda^T K lambda), the fused kernel form (its
    hand-derived reverse sweep) and the profiled loss (envelope gradient at lambda*, autodiff and fused) against
    autodiff of the loss as written with the explicit Jacobian."""
    kernel, fused, (ref_loss, ref_grads), *profiled_forms, (ref_star, ref_star_grad), sq, condition = _compiled(
        spec, out_dim, at)(jnp.asarray(x), jnp.asarray(lam[:, :out_dim]), beta)
    for loss, grads in (kernel, fused):
        # the bar; both sides sum the same O(P) float64 products in another order (measured <= 2e-15)
        assert abs(float(loss - ref_loss)) <= 1e-10 * float(ref_loss)
        for mine, theirs in zip(grads, ref_grads):
            assert _relative(mine, theirs) <= 1e-10
    for star, star_grad, _, ridge in profiled_forms:
        if not float(condition) <= 1e4:
            # (nearly) coincident reconstructions: lambda* and the dense reference solve are both ill-posed (the
            # reference turns NaN); the ridge path is tested in test_profiled_lambda_uses_the_stated_ridge_...
            assert np.isfinite(float(star))
            continue
        # cond(K) <= 1e4: both solves are accurate to ~cond eps ~ 1e-12, far inside the bar
        assert float(ridge) == 0.0
        # L* = ||dtheta||^2 - b^T K^-1 b cancels, so it is compared on the scale ||dtheta||^2 (measured ~1e-15); the
        # envelope gradient equals the total derivative up to the solve's round-off (measured <= 1e-14 relative)
        assert abs(float(star - ref_star)) <= 1e-10 * float(sq)
        assert _relative(star_grad, ref_star_grad) <= 1e-10


def _lazy_problem(key, spec="relu:2", out_dim=1, width=64, n_train=3):
    """theta_f = theta_0 + J_0(X_T)^T alpha: every Delta W^l has rank <= N C."""
    arch = parse_spec(spec)
    network = make_network(arch, width, out_dim)
    k0, k1, k2 = jax.random.split(key, 3)
    params_0 = network.init(k0, D)
    x_t = jax.random.normal(k1, (n_train, D))
    alpha = jax.random.uniform(k2, (n_train, out_dim), minval=0.5, maxval=1.5)
    delta = attack.jacobian_transpose_lambda(arch, params_0, x_t, alpha)
    return arch, params_0, jax.tree_util.tree_map(lambda a, b: a + b, params_0, delta), delta, x_t, alpha


def test_low_rank_delta_is_found_and_exact(key):
    arch, params_0, _, delta, _, _ = _lazy_problem(key, "relu:2:sb=0.2", out_dim=2, width=128)
    factored = attack.factor_delta(delta)
    ranks = [None if v is None else v.shape[0] for _, v, _ in factored.layers]
    assert ranks[1] is not None and ranks[1] <= 3 * 2  # the hidden 128 x 128 layer: rank <= N C = 6
    x = jax.random.normal(key, (5, D))
    plain, _ = attack.kernel_terms(arch, params_0, delta, x)
    low, _ = attack.kernel_terms(arch, params_0, factored, x)
    # the factorization is verified to 1e-12 of ||Delta W||_F (LOW_RANK_RTOL); J Delta theta inherits it
    assert _relative(low, plain) <= 1e-11
    full_rank = jax.tree_util.tree_map(lambda a: a + 0.01 * jax.random.normal(key, a.shape), delta)
    assert all(v is None for _, v, _ in attack.factor_delta(full_rank).layers)


def test_kernel_form_equals_parameter_loss_at_its_own_solution(key):
    """At (X_T, alpha) the loss is zero; the kernel form's value there is round-off of ||Delta theta||^2."""
    arch, params_0, _, delta, x_t, alpha = _lazy_problem(key)
    factored = attack.factor_delta(delta)
    sq = float(factored.sqnorm)
    assert abs(float(attack.kernel_form_loss(arch, (params_0,), factored, x_t, alpha))) <= 1e-12 * sq
    lam, loss, ridge = attack.profiled_lambda(arch, (params_0,), factored, x_t)
    assert float(ridge) == 0.0
    # K(X_T, X_T) is well conditioned for 3 generic points: lambda* = alpha to ~cond(K) eps
    assert _relative(lam, alpha) <= 1e-8
    assert abs(float(loss)) <= 1e-12 * sq


def test_profiled_lambda_uses_the_stated_ridge_only_when_singular(key):
    arch, params_0, _, delta, x_t, _ = _lazy_problem(key)
    coincident = jnp.concatenate([x_t[:2], x_t[:1]])  # two equal reconstructions: K is singular
    lam, loss, ridge = attack.profiled_lambda(arch, (params_0,), delta, coincident)
    kernel = attack._full_kernel(attack.kernel_terms(arch, params_0, delta, coincident)[1])
    assert float(ridge) == pytest.approx(attack.PROFILE_RIDGE * float(jnp.trace(kernel)) / 3, rel=1e-12)
    assert bool(jnp.all(jnp.isfinite(lam))) and np.isfinite(float(loss))


def test_choose_method():
    # C = 1, wide layers, M = 40: the fused kernel form's (3 + C) M n n' beats the JVP form's 8 M n n'
    assert attack.choose_method((64, 1024, 1024, 1), 40, 1) == "fused"
    # near the crossover, as measured by benchmarks/attack_steps.py (fused 0.90x the JVP step at 128, 1.11x at 192)
    assert attack.choose_method((64, 128, 128, 1), 40, 1) == "jvp"
    assert attack.choose_method((64, 192, 192, 1), 40, 1) == "fused"
    # C = 10: the backpropagated vectors cost 10 M n n' in the forward sweep, the JVP form wins
    assert attack.choose_method((3072, 1024, 1024, 10), 40, 10) == "jvp"
    # M far above the width: the M^2 Gram terms dominate
    assert attack.choose_method((64, 32, 32, 1), 4000, 1) == "jvp"
    # float32: the fused step measured 0.95x the float32 JVP step at 192 and 1.4x at 256
    assert attack.choose_method((64, 192, 192, 1), 40, 1, dtype=jnp.float32) == "jvp"
    assert attack.choose_method((64, 256, 256, 1), 40, 1, dtype=jnp.float32) == "fused"
    assert attack.choose_method((64, 192, 192, 1), 40, 1, dtype=jnp.float64) == "fused"
    # the switch points docs/speed.md states (float64: JVP to 168, fused from 176; float32 from 232)
    assert [attack.choose_method((64, w, w, 1), 40, 1) for w in (168, 176)] == ["jvp", "fused"]
    assert [attack.choose_method((64, w, w, 1), 40, 1, dtype=jnp.float32) for w in (224, 232)] == ["jvp", "fused"]


@pytest.mark.parametrize("mode,precision", [("profiled", "float64"), ("joint", "float32"), ("profiled", "float32")])
def test_attack_modes_and_precisions_decrease_the_loss(key, mode, precision):
    arch, params_0, params_f, _, _, _ = _lazy_problem(key, "erf:2:sb=0.1", out_dim=2)
    result = attack.parameter_space_attack(arch, params_0, params_f, 4, in_dim=D, key=key, steps=120,
                                           progress=False, chunk=60, mode=mode, precision=precision,
                                           box=(-3.0, 3.0))
    assert result.info["mode"] == mode and result.info["precision"] == precision
    assert result.x_recon.dtype == np.float64 and result.coefficients.shape == (4, 2)
    # measured: joint 0.08-0.1, profiled 0.21 (its first loss is already minimal over lambda)
    assert result.loss_curve[-1] < 0.5 * result.loss_curve[0]
    assert np.isfinite(result.final_loss)


def test_methods_agree_step_by_step(key):
    """The same attack with the kernel and the JVP gradient: one trajectory up to round-off (Adam is not
    contractive, so the comparison stops after 20 steps, where the measured gap is ~1e-13)."""
    arch, params_0, params_f, _, _, _ = _lazy_problem(key)
    runs = [attack.parameter_space_attack(arch, params_0, params_f, 3, in_dim=D, key=key, steps=20, progress=False,
                                          chunk=20, method=method) for method in ("kernel", "jvp", "fused")]
    assert [run.info["method"] for run in runs] == ["kernel", "jvp", "fused"]
    for run in runs[1:]:
        np.testing.assert_allclose(run.x_recon, runs[0].x_recon, rtol=0, atol=1e-9)


@pytest.mark.parametrize("options,match", [(dict(mode="newton"), "mode must be"),
                                           (dict(precision="float16"), "precision must be")])
def test_bad_mode_and_precision(key, options, match):
    arch, params_0, params_f, _, _, _ = _lazy_problem(key)
    with pytest.raises(ValueError, match=match):
        attack.parameter_space_attack(arch, params_0, params_f, 3, in_dim=D, key=key, steps=2, progress=False,
                                      **options)


def test_learning_rate_decay(key):
    """lr_final: Adam's step decays exponentially from lr to lr_final over the budget and stays there after."""
    optimizer = attack._attack_optimizer((0.1, 0.001), 100)
    grad = jnp.ones(3)
    state = optimizer.init(grad)
    def step(state, _):
        with jax.numpy_dtype_promotion("standard"):  # as in the attack: optax mixes floats with its int32 count
            update, state = optimizer.update(grad, state)
        return state, jnp.abs(update[0])

    steps = np.asarray(jax.lax.scan(step, state, None, length=150)[1])
    # a constant gradient makes Adam's normalized step 1, so the update is the step size itself
    assert steps[0] == pytest.approx(0.1, rel=1e-6)
    assert steps[50] == pytest.approx(0.01, rel=1e-6) and steps[120] == pytest.approx(0.001, rel=1e-6)
    arch, params_0, params_f, _, _, _ = _lazy_problem(key)
    with pytest.raises(ValueError, match="lr_final"):
        attack.parameter_space_attack(arch, params_0, params_f, 3, in_dim=D, key=key, steps=2, progress=False,
                                      lr_final=0.0)
