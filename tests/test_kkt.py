"""numerics.kkt: Haim et al.'s modified ReLU, the KKT loss, its value at the data, and the attack's bookkeeping."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics  # noqa: F401  (float64)
from numerics import kkt
from numerics.networks import make_network
from theory.architecture import parse_spec


def test_modified_relu_is_relu_forward_and_sigmoid_backward():
    z = jnp.linspace(-0.3, 0.3, 7)
    phi = kkt.modified_relu(50.0)
    np.testing.assert_allclose(phi(z), jax.nn.relu(z))
    np.testing.assert_allclose(jax.vmap(jax.grad(phi))(z), jax.nn.sigmoid(50.0 * z), rtol=1e-14)


def _one_unit_kkt_point(d: int = 5):
    """relu:1 with one hidden unit, W = x_1, v = 1, |x_1| = 1: theta = 1 * grad_theta f(x_1; theta) exactly
    (grad_W f = v relu'(W.x_1) x_1 = x_1, grad_v f = relu(W.x_1) = 1)."""
    network = make_network(parse_spec("relu:1:param=standard"), 1)
    params = network.init(jax.random.PRNGKey(0), d)
    x1 = np.zeros((1, d))
    x1[0, 0] = 1.0
    params = [(jnp.asarray(x1.T), None) if i == 0 else (jnp.ones((1, 1)), None) if i == 2 else layer
              for i, layer in enumerate(params)]
    return network, params, x1


def test_kkt_loss_vanishes_at_an_exact_kkt_point_and_not_elsewhere():
    network, params, x1 = _one_unit_kkt_point()
    phi = kkt.modified_relu(1e3)
    assert float(kkt.kkt_loss(network.arch, params, jnp.asarray(x1), jnp.ones(1), activation=phi)) < 1e-20
    assert float(kkt.kkt_loss(network.arch, params, jnp.asarray(x1), jnp.full(1, 0.5), activation=phi)) > 0.1
    assert kkt.truth_kkt_loss(network.arch, params, x1, np.ones(1), alpha=1e3) < 1e-20
    assert kkt.truth_kkt_loss(network.arch, params, x1, -np.ones(1), alpha=1e3) == pytest.approx(1.0)  # mu >= 0


def test_attack_keeps_the_restart_with_the_lowest_kkt_loss_and_records_snapshots():
    network = make_network(parse_spec("relu:1:sw=0.1:param=standard"), 8)
    params = network.init(jax.random.PRNGKey(3), 4)
    result = kkt.kkt_attack(network.arch, params, 4, in_dim=4, key=jax.random.PRNGKey(1), steps=40, restarts=3,
                            snapshots=4)
    assert len(result.restart_losses) == 3 and result.final_loss == min(result.restart_losses)
    assert result.info["snapshot_steps"] == [10, 20, 30, 40]
    np.testing.assert_array_equal(result.info["snapshots"][-1], result.x_recon)
    lam = jnp.asarray(result.coefficients[:, 0])
    again = kkt.kkt_loss(network.arch, params, jnp.asarray(result.x_recon), lam, activation=kkt.modified_relu(kkt.HAIM_ALPHA))
    assert float(again) == pytest.approx(result.final_loss, rel=1e-12)


def test_pooled_attack_returns_every_restart_best_first():
    network = make_network(parse_spec("relu:2:sw=0.1:param=standard"), 8)
    params = network.init(jax.random.PRNGKey(3), 4)
    options = dict(in_dim=4, key=jax.random.PRNGKey(1), steps=40, restarts=3, snapshots=2)
    best = kkt.kkt_attack(network.arch, params, 4, **options)
    pooled = kkt.kkt_attack(network.arch, params, 4, pool=True, **options)
    assert pooled.x_recon.shape == (12, 4) and pooled.coefficients.shape == (12, 1)
    assert pooled.info["pooled"] == 3 and best.info["pooled"] == 1
    # restarts that diverge are not pooled, and the count says so (SGD at lr 1e3 diverges every restart here)
    diverged = kkt.kkt_attack(network.arch, params, 4, pool=True, optimizer="sgd", lr=1e3, mu_lr=1e3, **options)
    assert not np.any(np.isfinite(diverged.restart_losses))
    assert diverged.info["pooled"] == 1 and diverged.x_recon.shape == (4, 4)
    np.testing.assert_array_equal(pooled.x_recon[:4], best.x_recon)          # the best restart first
    np.testing.assert_array_equal(pooled.info["snapshots"][-1], pooled.x_recon)
    order = np.argsort(pooled.restart_losses, kind="stable")
    phi = kkt.modified_relu(kkt.HAIM_ALPHA)
    for rank, restart in enumerate(order):                                   # each block fits its own restart's loss
        block = slice(4 * rank, 4 * rank + 4)
        value = kkt.kkt_loss(network.arch, params, jnp.asarray(pooled.x_recon[block]),
                             jnp.asarray(pooled.coefficients[block, 0]), activation=phi)
        assert float(value) == pytest.approx(pooled.restart_losses[restart], rel=1e-12)


@pytest.mark.parametrize("bad, message", [(dict(optimizer="lbfgs"), "optimizer"), (dict(steps=10, snapshots=3), "multiple"),
                                          (dict(restarts=0), "restarts")])
def test_attack_rejects_bad_settings_before_work(bad, message):
    network = make_network(parse_spec("relu:1:param=standard"), 4)
    params = network.init(jax.random.PRNGKey(0), 3)
    options = {"steps": 10, **bad}
    with pytest.raises(ValueError, match=message):
        kkt.kkt_attack(network.arch, params, 2, in_dim=3, key=jax.random.PRNGKey(0), **options)


def test_residual_curve_reports_each_chunk_of_both_phases():
    network = make_network(parse_spec("relu:1:sw=0.1:param=standard"), 8)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 4)), np.repeat([1.0, -1.0], 3)
    rows = kkt.residual_curve(network, network.init(jax.random.PRNGKey(0), 4), x, y, learning_rate=0.5,
                              gd_chunks=(20, 20), direction_chunks=(30,))
    assert [(r["phase"], r["steps"]) for r in rows] == [("GD", 20), ("GD", 40), ("direction", 30)]
    assert all(0.0 <= r["kkt_residual"] <= 1.0 + 1e-12 for r in rows)
    assert rows[1]["logistic_loss"] < rows[0]["logistic_loss"]


def test_kink_pairs_counts_points_on_a_units_hyperplane():
    network, params, x1 = _one_unit_kkt_point()
    orthogonal = np.zeros_like(x1)
    orthogonal[0, 1] = 1.0                       # w . x = 0: on the kink
    assert kkt.kink_pairs(params, np.concatenate([x1, orthogonal])) == (1, 1)


def _kink_stationary_point():
    """relu:1 with two units on x_1 = e_1, x_2 = (-1, 1, -2), x_3 = e_3 (labels +1): w_1 = (5, 1, -2) is active on
    x_1 only, w_2 = (-1, 1, 1) on x_3 only, and both put x_2 exactly on their kink (w_k . x_2 = 0 in floating
    point too). With v = (6 / sqrt(1.2), sqrt(3)), theta = sum_i mu_i g_i holds exactly for mu = (sqrt(1.2),
    mu_2, sqrt(3)) once x_2's slopes are s_1 = 1 / (sqrt(30) mu_2) and s_2 = 1 / (sqrt(3) mu_2) at the two units
    (derived from w_k = v_k (mu_k x_k + mu_2 s_k x_2), v_k = mu_k relu(w_k . x_k)): their ratio is 1 : sqrt(10), so
    no single value of relu'(0) (stax's jnp.maximum gives 1/2) makes theta stationary, a Clarke slope per pair does."""
    network = make_network(parse_spec("relu:1:param=standard"), 2)
    params = network.init(jax.random.PRNGKey(0), 3)
    w = np.array([[5.0, -1.0], [1.0, 1.0], [-2.0, 1.0]])
    v = np.array([[6.0 / np.sqrt(1.2)], [np.sqrt(3.0)]])
    params = [(jnp.asarray(w), None) if i == 0 else (jnp.asarray(v), None) if i == 2 else layer
              for i, layer in enumerate(params)]
    return network, params, np.array([[1.0, 0.0, 0.0], [-1.0, 1.0, -2.0], [0.0, 0.0, 1.0]]), np.ones(3)


def test_clarke_residual_vanishes_at_a_kink_stationary_point_that_relu_prime_zero_misses():
    network, params, x, y = _kink_stationary_point()
    found = kkt.clarke_kkt_residual(network, params, x, y)
    assert found["kink_pairs"] == 2 and found["pairs"] == 6
    # exactly stationary: measured 0.0; the residual is the square root of the expanded 1 - 2 t.c + c.G.c, whose
    # round-off floor is ~1e-8, so 1e-6 still fails any slope choice that misses (one slope gives 0.14)
    assert found["residual"] < 1e-6
    assert found["residual_fixed_slopes"] > 0.1              # one slope for both pairs cannot fit (measured 0.14)
    shifted = x + np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0]])   # x_2 off both kinks: plain NNLS
    off = kkt.clarke_kkt_residual(network, params, shifted, y)
    assert off["kink_pairs"] == 0
    assert off["residual"] == pytest.approx(kkt.kkt_residual(network, params, shifted, y), rel=1e-9)


def test_clarke_residual_rejects_networks_it_cannot_read():
    network = make_network(parse_spec("relu:2:param=standard"), 3)
    params = network.init(jax.random.PRNGKey(0), 2)
    with pytest.raises(ValueError, match="one-hidden-layer"):
        kkt.clarke_kkt_residual(network, params, np.ones((2, 2)), np.ones(2))
    ntk = make_network(parse_spec("relu:1"), 3)
    with pytest.raises(ValueError, match="standard parametrization"):
        kkt.clarke_kkt_residual(ntk, ntk.init(jax.random.PRNGKey(0), 2), np.ones((2, 2)), np.ones(2))


def test_slope_projection_matches_a_direct_solve():
    """The closed-form projection onto {mu >= 0, 0 <= t_p <= mu_owner(p)} against scipy's SLSQP on random points."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    owner = np.array([0, 0, 0, 2, 2, 3])
    for _ in range(20):
        mu, t = rng.normal(size=4), rng.normal(size=owner.size) + 0.5
        got = np.concatenate(kkt._project_slopes(mu, t, owner))
        target = np.concatenate([mu, t])
        coupling = np.zeros((owner.size, 4 + owner.size))
        coupling[np.arange(owner.size), owner] = 1.0
        coupling[np.arange(owner.size), 4 + np.arange(owner.size)] = -1.0
        direct = minimize(lambda c: np.sum((c - target) ** 2), np.zeros_like(target), jac=lambda c: 2 * (c - target),
                          method="SLSQP", bounds=[(0, None)] * target.size,
                          constraints=[dict(type="ineq", fun=lambda c: coupling @ c, jac=lambda c: coupling)],
                          options=dict(ftol=1e-14, maxiter=500)).x
        np.testing.assert_allclose(got, direct, atol=1e-6)   # SLSQP's own accuracy at ftol 1e-14


def test_anneal_direction_returns_unit_norm_parameters_with_a_larger_margin():
    network = make_network(parse_spec("relu:1:sw=0.1:param=standard"), 8)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 4)), np.repeat([1.0, -1.0], 3)
    trained = network.init(jax.random.PRNGKey(0), 4)
    annealed = kkt.anneal_direction(network, trained, x, y, steps_per_stage=200)
    norm = np.sqrt(sum(float(jnp.sum(a**2)) for a in jax.tree.leaves(annealed)))
    assert norm == pytest.approx(1.0, rel=1e-12)
    assert kkt.normalized_margin(network, annealed, x, y) > kkt.normalized_margin(network, trained, x, y)


def test_direction_steps_without_their_margins_move_the_parameters_identically():
    """anneal_direction and residual_curve skip the per-step margin (margins=False); the parameters they get must be
    those of the run that records it, bit for bit, and the recorded margins those of the returned steps."""
    network = make_network(parse_spec("relu:2:sw=2:param=standard"), 8)
    rng = np.random.default_rng(1)
    x, y = jnp.asarray(rng.standard_normal((6, 4))), jnp.asarray(np.repeat([1.0, -1.0], 3))
    start = network.init(jax.random.PRNGKey(1), 4)
    run = dict(network=network, steps=50)
    recorded, margins = kkt._direction_run(start, x, y, jnp.float64(1e-2), jnp.full(50, 1e-3), **run)
    skipped, nothing = kkt._direction_run(start, x, y, jnp.float64(1e-2), jnp.full(50, 1e-3), margins=False, **run)
    assert nothing is None and margins.shape == (50,)
    for a, b in zip(jax.tree.leaves(recorded), jax.tree.leaves(skipped)):
        np.testing.assert_array_equal(a, b)
    # the same formula traced and in numpy: round-off
    assert float(margins[-1]) == pytest.approx(kkt.normalized_margin(network, skipped, x, y), rel=1e-12)


@pytest.mark.parametrize("bad, message", [(dict(regime="rch"), "regime must be one of"),
                                          (dict(attacks="kkt"), "attacks must be a non-empty tuple"),
                                          (dict(attacks=("kk",)), "attacks must be a non-empty tuple"),
                                          (dict(attacks=()), "attacks must be a non-empty tuple"),
                                          (dict(attack_steps=-5), "attack_steps")])
def test_regime_experiment_rejects_bad_settings_before_training(bad, message, monkeypatch):
    monkeypatch.setattr(kkt, "train_logistic", lambda *a, **k: pytest.fail("trained before validating"))
    options = {"regime": "rich", "n": 6, "attack_steps": 10, **bad}
    with pytest.raises(ValueError, match=message):
        kkt.regime_experiment(options.pop("regime"), **options)



def test_mu_summary_reads_every_pooled_restart():
    """kkt_mu_summary (H1's sign outcome) on a pooled attack: the negative mu of a later restart counts, not only the
    best restart's."""
    from numerics.attack import AttackResult

    mu = np.array([1.5, 0.06, 1.0, -3.0])                      # two restarts of two candidates, the best first
    found = AttackResult(x_recon=np.zeros((4, 2)), coefficients=mu[:, None], loss_curve=np.zeros(1), final_loss=0.0,
                         kind="kkt", steps=1, info={"mu": mu, "mu_min": 0.05, "pooled": 2})
    assert kkt.kkt_mu_summary(found) == {"min": -3.0, "negative": 1, "count": 4, "mu_min": 0.05}
