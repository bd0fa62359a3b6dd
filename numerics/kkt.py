"""The KKT reconstruction attack of Haim et al. 2022 (arXiv:2206.07758), and logistic-loss training for it.

A homogeneous network (bias-free ReLU, L weight layers) trained with the logistic loss by gradient flow
converges in direction to a KKT point of the max-margin problem min ||theta||^2 s.t. y_i f(x_i; theta) >= 1
(Lyu & Li 2020; Ji & Telgarsky 2020), so the trained parameters satisfy

    theta = sum_i mu_i y_i grad_theta f(x_i; theta),    mu_i >= 0     (stationarity)

with mu_i > 0 only on margin points. The attack knows theta_f alone (no theta_0) and minimizes over
candidates x_j (M of them, labels y_j fixed: half +1, half -1) and mu_j:

    L(X, mu) = ||theta_f - sum_j mu_j y_j grad_theta f(x_j; theta_f)||^2
               + w_mu sum_j max(mu_min - mu_j, 0)          (their lambda_min constraint, Haim et al. eq. 8)
               + w_box sum relu(lo - x)^2 + relu(x - hi)^2   (their prior: the pixel box)

This is Loo et al.'s parameter-space loss with Delta theta := theta_f, S = {theta_f} and lambda_j = mu_j y_j,
so the same gradient code (:func:`numerics.attack.loss_and_grad`, ReLU smoothed to softplus with beta
annealed; Haim et al. smooth the ReLU's derivative the same way) serves both. Euler's identity for such
networks, <theta, grad_theta f(x; theta)> = L f(x; theta) (claim H1), gives the margin form of the
condition: ||theta||^2 = L sum_i mu_i y_i f(x_i; theta).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numerics.networks import Network, Params, activation_fn, dense_layers, has_surrogate
from theory.architecture import Architecture

MU_MIN = 0.05
"""Haim et al.'s lambda_min: the smallest coefficient a candidate may carry (their default range 0.01-0.5;
without it the candidates with mu = 0 are free and drift to the box edges)."""


# ---------------------------------------------------------------------------------------------------------
# Logistic-loss training (full-batch gradient descent, normalized steps)
# ---------------------------------------------------------------------------------------------------------

def logistic_loss(network: Network, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """mean_i log(1 + exp(-y_i f(x_i; theta))) for labels y in {-1, +1}, shape (N,) or (N, 1)."""
    margins = y.reshape(-1) * network.apply(params, x).reshape(-1)
    return jnp.mean(jax.nn.softplus(-margins))


def soft_margin(network: Network, params: Params, x: jax.Array, y: jax.Array, temperature: jax.Array) -> jax.Array:
    """-tau log sum_i exp(-y_i f(x_i; theta) / tau): a smooth minimum of the margins (-> min_i as tau -> 0)."""
    margins = y.reshape(-1) * network.apply(params, x).reshape(-1)
    return -temperature * jax.scipy.special.logsumexp(-margins / temperature)


def _unit(params: Params) -> Params:
    norm = jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params)))
    return jax.tree.map(lambda a: a / norm, params)


@functools.partial(jax.jit, static_argnames=("network", "steps"))
def _logistic_run(params, x, y, learning_rate, *, network, steps):
    loss_and_grad = jax.value_and_grad(lambda p: logistic_loss(network, p, x, y))

    def step(p, _):
        loss, grad = loss_and_grad(p)
        return jax.tree.map(lambda a, g: a - learning_rate * g, p, grad), loss

    return jax.lax.scan(step, params, None, length=steps)


@functools.partial(jax.jit, static_argnames=("network", "steps"))
def _direction_run(params, x, y, learning_rate, temperatures, *, network, steps):
    ascent = jax.grad(lambda p, t: soft_margin(network, p, x, y, t))

    def step(p, temperature):
        g = ascent(p, temperature)
        radial = sum(jnp.sum(a * b) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(g)))
        tangent = jax.tree.map(lambda a, b: b - radial * a, p, g)     # the gradient on the unit sphere
        moved = _unit(jax.tree.map(lambda a, b: a + learning_rate * b, p, tangent))
        return moved, normalized_margin_traced(network, moved, x, y)

    return jax.lax.scan(step, _unit(params), temperatures)


def normalized_margin_traced(network: Network, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    depth = len(dense_layers(params))
    norm = jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params)))
    return jnp.min(y.reshape(-1) * network.apply(params, x).reshape(-1)) / norm**depth


def train_logistic(network: Network, params_0: Params, x: Any, y: Any, *, learning_rate: float, steps: int,
                   direction_steps: int = 0, direction_rate: float = 0.05,
                   temperatures: tuple[float, float] = (1e-2, 1e-4)) -> tuple[Params, np.ndarray, np.ndarray]:
    """Full-batch GD on :func:`logistic_loss` for ``steps`` steps, then ``direction_steps`` steps toward its
    limit direction; returns (theta_f, the logistic loss before every GD step, the normalized margin after
    every direction step).

    Gradient descent on the logistic loss converges in direction to a KKT point of the max-margin problem
    (Lyu & Li 2020), but only like 1 / log t. The second phase goes there directly: Riemannian gradient ascent
    of the soft minimum of the margins (:func:`soft_margin`, temperature annealed geometrically between
    ``temperatures``) over unit-norm theta (scale is irrelevant for a homogeneous network); its stationary
    points satisfy theta ~ sum_i w_i y_i grad f(x_i; theta) with w = softmax(-margins / tau) >= 0, the KKT
    stationarity condition. theta_f is returned with unit norm when the second phase ran.
    """
    if steps < 1 or not np.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"need steps >= 1 and a finite learning_rate > 0, got {steps}, {learning_rate}")
    x = jnp.asarray(x, dtype=jnp.float64)
    y = jnp.asarray(y, dtype=jnp.float64)
    params_f, losses = _logistic_run(params_0, x, y, jnp.float64(learning_rate), network=network, steps=int(steps))
    margins = np.zeros(0)
    if direction_steps:
        schedule = jnp.geomspace(temperatures[0], temperatures[1], int(direction_steps))
        params_f, margins = _direction_run(params_f, x, y, jnp.float64(direction_rate), schedule, network=network,
                                           steps=int(direction_steps))
    return params_f, np.asarray(losses), np.asarray(margins)


def normalized_margin(network: Network, params: Params, x: Any, y: Any) -> float:
    """min_i y_i f(x_i; theta) / ||theta||^L: the quantity that directional convergence maximizes."""
    depth = len(dense_layers(params))
    norm = float(jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params))))
    margins = np.asarray(y).reshape(-1) * np.asarray(network.apply(params, jnp.asarray(x))).reshape(-1)
    return float(margins.min() / norm**depth)


# ---------------------------------------------------------------------------------------------------------
# The attack
# ---------------------------------------------------------------------------------------------------------

@functools.cache
def _kkt_runner(arch: Architecture, steps: int, schedule, lr: float, mu_min: float, mu_weight: float,
                box_weight: float):
    from numerics import attack  # imported here: numerics.attack re-exports kkt_attack from this module

    optimizer = optax.adam(lr)
    smooth = schedule is not None and has_surrogate(arch)

    def step(carry, t, theta, labels, lo, hi):
        x, mu, state = carry
        phi = activation_fn(arch, smooth_beta=attack.beta_at(t, steps, schedule, "geometric")) if smooth else None
        lam = (mu * labels)[:, None]
        loss, (gx, glam) = attack.loss_and_grad(arch, (theta,), theta, x, lam, activation=phi)
        gmu = glam[:, 0] * labels
        penalty, gpen = jax.value_and_grad(attack.box_penalty)(x, lo, hi)
        floor, gfloor = jax.value_and_grad(lambda m: jnp.sum(jax.nn.relu(mu_min - m)))(mu)
        objective = loss + box_weight * penalty + mu_weight * floor
        with jax.numpy_dtype_promotion("standard"):
            updates, state = optimizer.update((gx + box_weight * gpen, gmu + mu_weight * gfloor), state, (x, mu))
        x, mu = optax.apply_updates((x, mu), updates)
        return (x, mu, state), objective

    @jax.jit
    def run(carry, theta, labels, lo, hi):
        return jax.lax.scan(lambda c, t: step(c, t, theta, labels, lo, hi), carry, jnp.arange(steps))

    return optimizer, run


def kkt_attack(arch: Architecture, params_f: Params, n_recon: int, *, in_dim: int, key: jax.Array, steps: int,
               lr: float = 0.001, mu_min: float = MU_MIN, mu_weight: float = 1.0, box: tuple[Any, Any] | None = None,
               box_weight: float = 1.0, init_scale: float = 0.001,
               beta_schedule: tuple[float, float] | None = (10.0, 200.0)) -> "attack.AttackResult":
    """Haim et al.'s KKT attack on theta_f alone (module docstring), with Adam over (X, mu).

    ``n_recon`` candidates, the first half labelled +1 and the rest -1; X ~ init_scale N(0, 1), mu ~ U(0, 1)
    (above ``mu_min`` after the first steps through the penalty). ``box=(lo, hi)`` is the prior (the pixel
    range); without it the box term is off. Single-output networks only (binary classification).
    """
    from numerics import attack

    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be a theory.Architecture, got {type(arch).__name__}")
    n_recon = attack._check_positive_int("n_recon", n_recon)
    in_dim = attack._check_positive_int("in_dim", in_dim)
    steps = attack._check_positive_int("steps", steps)
    lr = attack._check_positive("lr", lr)
    mu_min = attack._check_positive("mu_min", mu_min)
    layers = dense_layers(params_f)
    if len(layers) != arch.depth + 1:
        raise ValueError(f"params have {len(layers)} dense layers, architecture {arch.spec} needs {arch.depth + 1}")
    if layers[-1][0].shape[1] != 1:
        raise ValueError("the KKT attack needs a binary classifier with one output")
    theta = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params_f)
    bounds = attack._check_box(box, in_dim)
    lo, hi = bounds if bounds is not None else (jnp.full((1, in_dim), -jnp.inf), jnp.full((1, in_dim), jnp.inf))
    labels = jnp.where(jnp.arange(n_recon) < (n_recon + 1) // 2, 1.0, -1.0)
    key_x, key_mu = jax.random.split(key)
    x = init_scale * jax.random.normal(key_x, (n_recon, in_dim), jnp.float64)
    mu = jax.random.uniform(key_mu, (n_recon,), jnp.float64)
    beta_schedule = None if beta_schedule is None else tuple(float(b) for b in beta_schedule)
    optimizer, run = _kkt_runner(arch, steps, beta_schedule, lr, mu_min, float(mu_weight), float(box_weight))
    (x, mu, _), curve = run((x, mu, optimizer.init((x, mu))), theta, labels, lo, hi)
    lam = np.asarray(mu * labels)[:, None]
    final = float(attack.reconstruction_loss(arch, (theta,), theta, x, jnp.asarray(lam)))
    scale = float(attack._tree_sqnorm(theta))
    return attack.AttackResult(x_recon=np.asarray(x), coefficients=lam, loss_curve=np.asarray(curve), final_loss=final,
                        kind="kkt", steps=steps,
                        info={"relative_loss": final / scale, "labels": np.asarray(labels), "mu": np.asarray(mu),
                              "mu_min": mu_min})


# ---------------------------------------------------------------------------------------------------------
# Both attacks on the same networks, lazy and rich
# ---------------------------------------------------------------------------------------------------------

REGIMES = {
    "lazy": dict(spec="relu:1", width=1024, learning_rate=1.0, steps=2000, direction_steps=0, direction_rate=0.0),
    "rich": dict(spec="relu:1:sw=0.01:param=standard", width=256, learning_rate=0.5, steps=2000,
                 direction_steps=10000, direction_rate=0.005),
}
"""Lazy: NTK parametrization at large width, logistic GD (theta_f stays near theta_0, Delta theta ~ J_0^T alpha).
Rich: standard parametrization with initialization scale 0.01, logistic GD, then the direction phase of
:func:`train_logistic`; theta_f is rescaled to the norm that GD reached (the direction is what converges)."""


def kkt_residual(network: Network, params: Params, x: Any, y: Any) -> float:
    """min_{mu >= 0} ||theta - sum_i mu_i y_i grad f(x_i; theta)|| / ||theta|| (scipy NNLS on the N gradients).

    With ReLU a unit whose pre-activation sits at its kink on a training point has a set-valued derivative
    (Clarke), and JAX picks relu'(0) = 0, so on a true KKT point this can stay above 0."""
    from jax.flatten_util import ravel_pytree
    from scipy.optimize import nnls

    x = jnp.asarray(x, dtype=jnp.float64)
    theta, unravel = ravel_pytree(params)
    gradients = jax.vmap(lambda xi: ravel_pytree(jax.grad(lambda p: network.apply(p, xi[None])[0, 0])(params))[0])(x)
    columns = np.asarray(gradients).T * np.asarray(y).reshape(1, -1)
    _, residual = nnls(columns, np.asarray(theta), maxiter=50 * columns.shape[1])
    return float(residual / np.linalg.norm(np.asarray(theta)))


def regime_experiment(regime: str, *, n: int = 20, seed: int = 0, attack_steps: int = 4000,
                      rich_width: int | None = None, attacks: tuple[str, ...] = ("kkt", "loo"),
                      kkt_options: dict | None = None) -> dict[str, Any]:
    """Train a bias-free ReLU network on ``n`` digits (odd/even) in ``regime`` (:data:`REGIMES`), run the KKT
    attack (theta_f alone) and/or Loo et al.'s parameter-space attack (theta_0 and theta_f), M = 2N each, and
    score both with :func:`numerics.audit.leakage` (revealed fraction, SSIM, beside the trivial baselines)."""
    from numerics import audit, movement
    from numerics.attack import parameter_space_attack
    from numerics.networks import make_network
    from theory.architecture import parse_spec

    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {tuple(REGIMES)}, got {regime!r}")
    setting = dict(REGIMES[regime])
    if rich_width is not None and regime == "rich":
        setting["width"] = int(rich_width)
    dataset = audit.load_dataset("digits-odd-even", n, seed=seed)
    network = make_network(parse_spec(setting["spec"]), setting["width"])
    params_0 = network.init(jax.random.PRNGKey(seed), dataset.d)
    params_f, losses, margins = train_logistic(network, params_0, dataset.x, dataset.y,
                                               learning_rate=setting["learning_rate"], steps=setting["steps"],
                                               direction_steps=setting["direction_steps"],
                                               direction_rate=setting["direction_rate"] or 0.05)
    if setting["direction_steps"]:
        scale = float(np.sqrt(sum(float(jnp.sum(a**2)) for a in jax.tree.leaves(
            _logistic_run(params_0, jnp.asarray(dataset.x), jnp.asarray(dataset.y), jnp.float64(setting["learning_rate"]),
                          network=network, steps=setting["steps"])[0]))))
        params_f = jax.tree.map(lambda a: a * scale, params_f)
    references = audit.reference_sets("digits-odd-even", dataset, seed=seed)
    results: dict[str, Any] = {"regime": regime, "n": n, "seed": seed, "spec": setting["spec"], "width": setting["width"],
                               "final_logistic_loss": float(losses[-1]),
                               "normalized_margin": normalized_margin(network, params_f, dataset.x, dataset.y),
                               "kkt_residual": kkt_residual(network, params_f, dataset.x, dataset.y),
                               "movement": movement.measure(network, params_0, params_f, dataset.x).as_dict(),
                               "scores": {}, "baselines": {}}
    for index, name in enumerate(attacks):
        key = jax.random.PRNGKey(seed + 7 + index)
        if name == "kkt":
            recon = kkt_attack(network.arch, params_f, 2 * n, in_dim=dataset.d, key=key, steps=attack_steps,
                               box=dataset.box, **(kkt_options or {})).x_recon
        elif name == "loo":
            recon = parameter_space_attack(network.arch, params_0, params_f, 2 * n, in_dim=dataset.d, key=key,
                                           steps=attack_steps, box=dataset.box, progress=False).x_recon
        else:
            raise ValueError(f"unknown attack {name!r}; choose kkt or loo")
        leak = audit.leakage(recon, dataset, references, seed=7_000_001 + seed)  # not the data's stream
        row = dict(leak.rows[audit.ATTACK_ROW])
        row["ratio_curve"] = np.sort(leak.ratios[audit.ATTACK_ROW])[::-1].tolist()
        results["scores"][name] = row
        results["recon_" + name] = recon
        if not results["baselines"]:
            results["baselines"] = {k: v for k, v in leak.rows.items() if v["trivial"]}
            results["baseline_ratios"] = {k: leak.ratios[k] for k in leak.rows if leak.rows[k]["trivial"]}
    return results


def kkt_figure(ctx, result: dict[str, Any], outcomes=()) -> str:
    """The ratio and SSIM curves of each attack beside the trivial baselines (the project's leakage figure)."""
    from numerics import privacy
    from proofs_check import figures

    curves = {}
    for name, row in result["scores"].items():
        curves[f"{name} attack"] = {"ratio": np.asarray(row["ratio_curve"]), "ssim": np.asarray(row["ssim_curve"])}
    for name, row in result["baselines"].items():
        curves[name] = {"ratio": np.asarray(result["baseline_ratios"][name]), "ssim": np.asarray(row["ssim_curve"])}
    fig = figures.leakage_axes(curves, factor=privacy.DEFAULT_FACTOR, ssim_thresholds=privacy.SSIM_THRESHOLDS,
                               title=f"H1: attacks on a {result['regime']} {result['spec']} m={result['width']}, "
                                     f"N={result['n']} digits")
    return figures.save_figure(ctx, fig, f"h1_{result['regime']}_n{result['n']}.png", outcomes)
