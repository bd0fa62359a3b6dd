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

from numerics import attack
from numerics.attack import AttackResult
from numerics.networks import Network, Params, activation_fn, dense_layers
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


@functools.partial(jax.jit, static_argnames=("network", "steps"))
def _logistic_run(params, x, y, learning_rate, *, network, steps):
    loss_and_grad = jax.value_and_grad(lambda p: logistic_loss(network, p, x, y))

    def step(p, _):
        loss, grad = loss_and_grad(p)
        # normalized GD: eta / L(theta); on separable data it reaches the max-margin direction much faster
        # than plain GD, whose margin grows like log t (Nacson et al. 2019)
        scale = learning_rate / jnp.maximum(loss, 1e-300)
        return jax.tree.map(lambda a, g: a - scale * g, p, grad), loss

    return jax.lax.scan(step, params, None, length=steps)


def train_logistic(network: Network, params_0: Params, x: Any, y: Any, *, learning_rate: float,
                   steps: int) -> tuple[Params, np.ndarray]:
    """``steps`` of normalized full-batch GD on :func:`logistic_loss`; returns (theta_f, loss curve)."""
    if steps < 1 or not np.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"need steps >= 1 and a finite learning_rate > 0, got {steps}, {learning_rate}")
    x = jnp.asarray(x, dtype=jnp.float64)
    y = jnp.asarray(y, dtype=jnp.float64)
    params_f, losses = _logistic_run(params_0, x, y, jnp.float64(learning_rate), network=network, steps=int(steps))
    return params_f, np.asarray(losses)


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
    optimizer = optax.adam(lr)
    smooth = schedule is not None and arch.activation in attack.SMOOTHED

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
               lr: float = 0.01, mu_min: float = MU_MIN, mu_weight: float = 1.0, box: tuple[Any, Any] | None = None,
               box_weight: float = 1.0, init_scale: float = 0.2,
               beta_schedule: tuple[float, float] | None = (10.0, 200.0)) -> AttackResult:
    """Haim et al.'s KKT attack on theta_f alone (module docstring), with Adam over (X, mu).

    ``n_recon`` candidates, the first half labelled +1 and the rest -1; X ~ init_scale N(0, 1), mu ~ U(0, 1)
    (above ``mu_min`` after the first steps through the penalty). ``box=(lo, hi)`` is the prior (the pixel
    range); without it the box term is off. Single-output networks only (binary classification).
    """
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
    optimizer, run = _kkt_runner(arch, steps, beta_schedule, lr, mu_min, float(mu_weight), float(box_weight))
    (x, mu, _), curve = run((x, mu, optimizer.init((x, mu))), theta, labels, lo, hi)
    lam = np.asarray(mu * labels)[:, None]
    final = float(attack.reconstruction_loss(arch, (theta,), theta, x, jnp.asarray(lam)))
    scale = float(attack._tree_sqnorm(theta))
    return AttackResult(x_recon=np.asarray(x), coefficients=lam, loss_curve=np.asarray(curve), final_loss=final,
                        kind="kkt", steps=steps,
                        info={"relative_loss": final / scale, "labels": np.asarray(labels), "mu": np.asarray(mu),
                              "mu_min": mu_min})
