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


@functools.partial(jax.jit, static_argnames=("network", "steps", "margins"))
def _direction_run(params, x, y, learning_rate, temperatures, *, network, steps, margins=True):
    """``steps`` sphere-ascent steps of :func:`soft_margin`; with ``margins`` also the normalized margin after each
    one (a forward pass per step: margins=False took the annealing's 50,000 steps from 21 s to 16 s at width 128,
    N = 20, to bitwise the same parameters, measured)."""
    ascent = jax.grad(lambda p, t: soft_margin(network, p, x, y, t))

    def step(p, temperature):
        g = ascent(p, temperature)
        radial = sum(jnp.sum(a * b) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(g)))
        tangent = jax.tree.map(lambda a, b: b - radial * a, p, g)     # the gradient on the unit sphere
        moved = _unit(jax.tree.map(lambda a, b: a + learning_rate * b, p, tangent))
        return moved, (normalized_margin_traced(network, moved, x, y) if margins else None)

    return jax.lax.scan(step, _unit(params), temperatures)


def normalized_margin_traced(network: Network, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    depth = len(dense_layers(params))
    norm = jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params)))
    return jnp.min(y.reshape(-1) * network.apply(params, x).reshape(-1)) / norm**depth


def train_logistic(network: Network, params_0: Params, x: Any, y: Any, *, learning_rate: float,
                   steps: int) -> tuple[Params, np.ndarray]:
    """Full-batch GD on :func:`logistic_loss` for ``steps`` steps; returns (theta_f, the logistic loss before
    every step). GD converges in direction to a KKT point of the max-margin problem (Lyu & Li 2020), but only
    like 1 / log t: :func:`direction_phase` goes there directly."""
    if steps < 1 or not np.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"need steps >= 1 and a finite learning_rate > 0, got {steps}, {learning_rate}")
    x = jnp.asarray(x, dtype=jnp.float64)
    y = jnp.asarray(y, dtype=jnp.float64)
    params_f, losses = _logistic_run(params_0, x, y, jnp.float64(learning_rate), network=network, steps=int(steps))
    return params_f, np.asarray(losses)


def direction_phase(network: Network, params: Params, x: Any, y: Any, *, steps: int, rate: float,
                    temperatures: tuple[float, float] = (1e-2, 1e-4)) -> tuple[Params, np.ndarray]:
    """``steps`` steps toward the limit direction of logistic GD (:func:`train_logistic`): Riemannian gradient
    ascent of the soft minimum of the margins (:func:`soft_margin`, temperature annealed geometrically between
    ``temperatures``) over unit-norm theta (scale is irrelevant for a homogeneous network). Its stationary points
    satisfy theta ~ sum_i w_i y_i grad f(x_i; theta) with w = softmax(-margins / tau) >= 0, the KKT stationarity
    condition. Returns (unit-norm theta, the normalized margin after every step)."""
    schedule = jnp.geomspace(temperatures[0], temperatures[1], int(steps))
    params, margins = _direction_run(params, jnp.asarray(x, dtype=jnp.float64), jnp.asarray(y, dtype=jnp.float64),
                                     jnp.float64(rate), schedule, network=network, steps=int(steps))
    return params, np.asarray(margins)


def normalized_margin(network: Network, params: Params, x: Any, y: Any) -> float:
    """min_i y_i f(x_i; theta) / ||theta||^L: the quantity that directional convergence maximizes."""
    depth = len(dense_layers(params))
    norm = float(jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params))))
    margins = np.asarray(y).reshape(-1) * np.asarray(network.apply(params, jnp.asarray(x))).reshape(-1)
    return float(margins.min() / norm**depth)


# ---------------------------------------------------------------------------------------------------------
# The attack
# ---------------------------------------------------------------------------------------------------------

HAIM_ALPHA = 100.0
"""Sharpness of the modified ReLU's derivative sigmoid(alpha z) (Haim et al.'s ``extraction_model_relu_alpha``;
their MNIST sweep draws it from U(10, 500), their published run uses 150)."""
HAIM_INIT_SCALE = 0.03
"""Candidates start at init_scale N(0, 1) (their ``extraction_init_scale``, sweep 1e-6 ... 0.1; published run 0.035)."""


@functools.cache
def modified_relu(alpha: float, slope=None):
    """Haim et al.'s ModifiedRelu (their CreateModel.py): relu in the forward pass, derivative sigmoid(alpha z)
    in the backward pass (so grad_theta f(x) is differentiable in x). A jax.custom_jvp; its rule is itself
    differentiable, as their double backward is. ``slope(z)`` replaces sigmoid(alpha z) when given."""
    slope = slope or (lambda z: jax.nn.sigmoid(alpha * z))

    @jax.custom_jvp
    def relu(z):
        return jax.nn.relu(z)

    @relu.defjvp
    def _jvp(primals, tangents):
        (z,), (dz,) = primals, tangents
        return jax.nn.relu(z), slope(z) * dz

    return relu


def kkt_loss(arch: Architecture, theta: Params, x: jax.Array, lam: jax.Array, *, activation=None) -> jax.Array:
    """||theta - sum_j lam_j grad_theta f(x_j; theta)||^2 / ||theta||^2 (one VJP of the batched output with
    cotangent lam; Haim et al.'s get_kkt_loss, divided by ||theta||^2 so that the number is a relative residual)."""
    from numerics.networks import forward

    _, pullback = jax.vjp(lambda p: forward(arch, p, x, activation=activation)[:, 0], theta)
    (combination,) = pullback(lam)
    leaves = zip(jax.tree.leaves(theta), jax.tree.leaves(combination))
    return sum(jnp.sum((a - g) ** 2) for a, g in leaves) / sum(jnp.sum(a**2) for a in jax.tree.leaves(theta))


@functools.cache
def _kkt_runner(arch: Architecture, chunk: int, alpha: float, optimizer_name: str, lr: float, mu_lr: float,
                mu_min: float, mu_weight: float, box_weight: float):
    phi = modified_relu(alpha)
    if optimizer_name == "sgd":      # Haim et al.: SGD with momentum 0.9, one optimizer for X, one for lambda
        optimizer = optax.multi_transform({"x": optax.sgd(lr, momentum=0.9), "mu": optax.sgd(mu_lr, momentum=0.9)},
                                          ("x", "mu"))
    else:
        optimizer = optax.multi_transform({"x": optax.adam(lr), "mu": optax.adam(mu_lr)}, ("x", "mu"))

    def objective(variables, theta, labels, lo, hi):
        x, mu = variables
        fit = kkt_loss(arch, theta, x, mu * labels, activation=phi)
        box = jnp.sum(jax.nn.relu(lo - x) ** 2) + jnp.sum(jax.nn.relu(x - hi) ** 2)
        floor = jnp.sum(jax.nn.relu(mu_min - mu) ** 2)
        return fit + box_weight * box + mu_weight * floor, fit

    gradient = jax.value_and_grad(objective, has_aux=True)

    @jax.jit
    def run(variables, state, theta, labels, lo, hi):
        def step(carry, _):
            variables, state = carry
            (_, fit), grads = gradient(variables, theta, labels, lo, hi)
            with jax.numpy_dtype_promotion("standard"):   # optax mixes its int32 step count with floats
                updates, state = optimizer.update(grads, state, variables)
            return (optax.apply_updates(variables, updates), state), fit

        return jax.lax.scan(step, (variables, state), None, length=chunk)

    return optimizer, run


def kkt_attack(arch: Architecture, params_f: Params, n_recon: int, *, in_dim: int, key: jax.Array, steps: int,
               restarts: int = 1, snapshots: int = 1, lr: float = 0.01, mu_lr: float = 0.01,
               optimizer: str = "adam", alpha: float = HAIM_ALPHA, mu_min: float = MU_MIN, mu_weight: float = 5.0,
               box: tuple[Any, Any] | None = None, box_weight: float = 1.0,
               init_scale: float = HAIM_INIT_SCALE, x_init: Any = None, pool: bool = False) -> "attack.AttackResult":
    """Haim et al.'s KKT attack on theta_f alone (module docstring), as in their code (extraction.py, Main.py,
    CreateModel.py of github.com/nivha/dataset_reconstruction):

    - ``n_recon`` candidates (they use M = 2N: ``extraction_data_amount_per_class`` = 2 ``data_per_class_train``),
      half labelled +1, half -1; X ~ init_scale N(0, 1), lambda ~ U(0, 1);
    - loss ||theta - sum_j mu_j y_j grad f(x_j)||^2 (their get_kkt_loss, here relative to ||theta||^2) with the
      ReLU's derivative replaced by sigmoid(alpha z) (:func:`modified_relu`);
    - their get_verify_loss: the box prior sum relu(lo - x)^2 + relu(x - hi)^2 (theirs [-1, 1] on mean-subtracted
      pixels; here the dataset's pixel box, tighter) and the lambda_min hinge 5 sum relu(mu_min - mu)^2;
    - their optimizer is SGD with momentum 0.9 (``optimizer="sgd"``); the default here is Adam, which needs no
      retuning for the scale of theta (their learning rates were tuned by a random sweep on their networks);
    - ``restarts`` random initializations; the one with the lowest final KKT loss is returned. (Their sweep
      ranks runs by the distance to the training set, which an attacker does not have; we never use the data.)
      ``pool=True`` returns the candidates of every restart instead (restarts x M of them, best restart first),
      as Haim et al. pool the candidates of their runs before matching; the revealed criterion
      (:mod:`numerics.privacy`) counts a point once any candidate reveals it, so score pooled candidates against
      baselines drawn to the same count (:func:`numerics.audit.leakage` does). Restarts whose loss is not finite
      are left out of the pool.

    Data mean: Haim et al. subtract the training-set mean before training and add it back to score; the
    project's digits are centred the same way (by the training split's mean; numerics.data.digits).
    ``x_init`` (M, d) replaces the random start of X (a diagnostic: the attack started at the training set).
    ``snapshots`` > 1 records the returned candidates (the best restart's, or the pool) at that many evenly spaced
    steps (the attack curve).
    Single-output networks only (binary classification).
    """
    from numerics import attack

    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be a theory.Architecture, got {type(arch).__name__}")
    n_recon = attack._check_positive_int("n_recon", n_recon)
    in_dim = attack._check_positive_int("in_dim", in_dim)
    steps = attack._check_positive_int("steps", steps)
    restarts = attack._check_positive_int("restarts", restarts)
    snapshots = attack._check_positive_int("snapshots", snapshots)
    lr, mu_lr, alpha = (attack._check_positive(name, value) for name, value in (("lr", lr), ("mu_lr", mu_lr),
                                                                                 ("alpha", alpha)))
    mu_min = attack._check_positive("mu_min", mu_min)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if steps % snapshots:
        raise ValueError(f"steps ({steps}) must be a multiple of snapshots ({snapshots})")
    layers = dense_layers(params_f)
    if len(layers) != arch.depth + 1:
        raise ValueError(f"params have {len(layers)} dense layers, architecture {arch.spec} needs {arch.depth + 1}")
    if layers[-1][0].shape[1] != 1:
        raise ValueError("the KKT attack needs a binary classifier with one output")
    theta = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params_f)
    bounds = attack._check_box(box, in_dim)
    lo, hi = bounds if bounds is not None else (jnp.full((1, in_dim), -jnp.inf), jnp.full((1, in_dim), jnp.inf))
    labels = jnp.where(jnp.arange(n_recon) < (n_recon + 1) // 2, 1.0, -1.0)
    chunk = steps // snapshots
    opt, run = _kkt_runner(arch, chunk, float(alpha), optimizer, float(lr), float(mu_lr), float(mu_min),
                           float(mu_weight), float(box_weight))
    runs = []
    for key_restart in jax.random.split(key, restarts):
        key_x, key_mu = jax.random.split(key_restart)
        start = (init_scale * jax.random.normal(key_x, (n_recon, in_dim), jnp.float64) if x_init is None
                 else jnp.asarray(x_init, jnp.float64).reshape(n_recon, in_dim))
        variables = (start,
                     jax.random.uniform(key_mu, (n_recon,), jnp.float64))
        state = opt.init(variables)
        curve, frames = [], []
        for _ in range(snapshots):
            (variables, state), fits = run(variables, state, theta, labels, lo, hi)
            curve.append(np.asarray(fits))
            frames.append(np.asarray(variables[0]))
        x, mu = variables
        final = float(kkt_loss(arch, theta, x, mu * labels, activation=modified_relu(float(alpha))))
        runs.append((final, x, mu, np.concatenate(curve), frames))
    order = sorted(range(restarts), key=lambda i: runs[i][0] if np.isfinite(runs[i][0]) else np.inf)
    best = order[0]
    final, x, mu, curve, frames = runs[best]
    kept = [i for i in order if i == best or np.isfinite(runs[i][0])] if pool else [best]   # never pool a diverged run
    x = np.concatenate([np.asarray(runs[i][1]) for i in kept])
    mu = np.concatenate([np.asarray(runs[i][2]) for i in kept])
    labels = np.tile(np.asarray(labels), len(kept))
    lam = (mu * labels)[:, None]
    frames = [np.concatenate([runs[i][4][k] for i in kept]) for k in range(snapshots)]
    return attack.AttackResult(
        x_recon=np.asarray(x), coefficients=lam, loss_curve=curve, final_loss=final, kind="kkt", steps=steps,
        restart_losses=tuple(r[0] for r in runs),
        info={"relative_loss": final, "labels": np.asarray(labels), "mu": np.asarray(mu), "mu_min": mu_min,
              "alpha": alpha, "best_restart": best, "snapshot_steps": [chunk * (k + 1) for k in range(snapshots)],
              "snapshots": frames, "pooled": len(kept)})  # diverged restarts are not pooled


def kkt_mu_summary(found: "attack.AttackResult") -> dict[str, Any]:
    """What the KKT attack returned for its coefficients mu (the condition needs mu_i >= 0), over every returned
    candidate (all pooled restarts): the smallest mu, how many are negative, how many there are, and the attack's
    mu_min (its hinge's floor)."""
    mu = np.asarray(found.info["mu"])
    return {"min": float(mu.min()), "negative": int(np.sum(mu < 0)), "count": int(mu.size),
            "mu_min": float(found.info["mu_min"])}


def truth_kkt_loss(arch: Architecture, params: Params, x: Any, y: Any, *, alpha: float = HAIM_ALPHA) -> float:
    """The attack's KKT loss at the training set itself, min_{mu >= 0} kkt_loss(theta, X_train, mu y) with the
    attack's modified ReLU (scipy NNLS on the N smoothed gradients): what the attack would reach at the truth.
    An attack optimum far below it means other point sets explain theta_f better than the data do."""
    from jax.flatten_util import ravel_pytree
    from scipy.optimize import nnls

    from numerics.networks import forward

    phi = modified_relu(float(alpha))
    x = jnp.asarray(x, dtype=jnp.float64)
    flat, _ = ravel_pytree(params)
    jac = jax.jacrev(lambda p: forward(arch, p, x, activation=phi)[:, 0])(params)
    rows = np.concatenate([np.asarray(a).reshape(x.shape[0], -1) for a in jax.tree.leaves(jac)], axis=1)
    columns = rows.T * np.asarray(y).reshape(1, -1)
    _, residual = nnls(columns, np.asarray(flat), maxiter=50 * columns.shape[1])
    return float(residual**2 / float(np.sum(np.asarray(flat) ** 2)))


# ---------------------------------------------------------------------------------------------------------
# Both attacks on the same networks, lazy and rich
# ---------------------------------------------------------------------------------------------------------

REGIMES = {
    "lazy": dict(spec="relu:1", width=1024, learning_rate=1.0, steps=2000, direction_steps=0, direction_rate=0.0,
                 anneal_steps=0),
    "rich": dict(spec="relu:2:sw=2:param=standard", width=256, learning_rate=0.5, steps=4000,
                 direction_steps=10000, direction_rate=0.005, anneal_steps=10000),
    "rich-one-layer": dict(spec="relu:1:sw=0.01:param=standard", width=256, learning_rate=0.5, steps=2000,
                           direction_steps=10000, direction_rate=0.005, anneal_steps=10000),
}
"""Lazy: NTK parametrization at large width, logistic GD (theta_f stays near theta_0, Delta theta ~ J_0^T alpha).
Rich: Haim et al.'s architecture, two hidden layers, standard parametrization with initialization scale 2, logistic
GD, the direction phase of :func:`train_logistic`, then :func:`anneal_direction` (``anneal_steps`` per stage).
Rich, one hidden layer: initialization scale 0.01, 2000 GD steps, then the same direction phase and annealing. For Loo et al.'s attack and the movement
measures theta_f is rescaled to the norm that GD reached (the direction is what converges).

Why these settings, measured on N = 20 digits (seed 0, 4 restarts of 4000 steps, best kept, alpha 1000): with two
hidden layers the attack reveals 15% at initialization scale 1, 25% at scale 2, 0% at scale 0.01, 5% at width 512
(scale 0.1); without the annealing 0% (KKT residual 0.65); GD alone for 20000 steps leaves theta_f near its
initialization (residual 0.99). With one hidden layer the first layer collapses to rank ~5 and no setting tried
reveals more than 10%."""

KKT_ALPHA = 1000.0
"""Sharpness of the attack's modified ReLU on theta_f scaled to unit norm (the KKT condition is scale-free for a
homogeneous network, the sigmoid's width is not). Measured on two-hidden-layer networks (seed 0, initialization
scales 0.1-2, 4 restarts, best kept): alpha 100 reveals 0-5%, 1000 15-25%, 3000 and 10000 5-15%."""
KKT_RESTARTS = 8
"""Random restarts of the KKT attack, all pooled (never chosen by the data): one restart reveals 0-25% of 20 digits,
8 pooled (4000 steps each) 35% / 20% / 45% / 10% / 35% / 55% (seeds 0-5, width 256; 2026-12-07: 35% / 10% / 35% at
seeds 0-2, the machine's rounding: H1's observations), while held-out digits drawn to the same count (320) reveal
0-5%."""


def kkt_residual(network: Network, params: Params, x: Any, y: Any) -> float:
    """min_{mu >= 0} ||theta - sum_i mu_i y_i grad f(x_i; theta)|| / ||theta|| (scipy NNLS on the N gradients).

    With ReLU a unit whose pre-activation sits at its kink on a training point has a set-valued derivative
    (Clarke), and the network's relu (stax: max(z, 0)) takes relu'(0) = 1/2, so on a true KKT point this can stay
    above 0; :func:`clarke_kkt_residual` frees those slopes."""
    from jax.flatten_util import ravel_pytree
    from scipy.optimize import nnls

    x = jnp.asarray(x, dtype=jnp.float64)
    theta, unravel = ravel_pytree(params)
    gradients = jax.vmap(lambda xi: ravel_pytree(jax.grad(lambda p: network.apply(p, xi[None])[0, 0])(params))[0])(x)
    columns = np.asarray(gradients).T * np.asarray(y).reshape(1, -1)
    _, residual = nnls(columns, np.asarray(theta), maxiter=50 * columns.shape[1])
    return float(residual / np.linalg.norm(np.asarray(theta)))


CURVE_POINTS = 8
"""Snapshots along the attack at which the revealed fraction and SSIM are scored (the attack curve)."""


def residual_curve(network: Network, params_0: Params, x: Any, y: Any, *, learning_rate: float,
                   gd_chunks: tuple[int, ...] = (250, 750, 1000, 2000), direction_chunks: tuple[int, ...] = (
                       2500, 7500, 30000), direction_rate: float = 0.005, temperature: float = 3e-3) -> list[dict]:
    """KKT stationarity residual (:func:`kkt_residual`) and normalized margin along :func:`train_logistic`: after
    each chunk of full-batch GD, then of the direction phase at a fixed temperature; with the elapsed seconds."""
    import time

    x = jnp.asarray(x, dtype=jnp.float64)
    y = jnp.asarray(y, dtype=jnp.float64)
    rows, params, start, done = [], params_0, time.perf_counter(), 0
    for chunk in gd_chunks:
        params, losses = _logistic_run(params, x, y, jnp.float64(learning_rate), network=network, steps=int(chunk))
        done += chunk
        rows.append({"phase": "GD", "steps": done, "seconds": time.perf_counter() - start,
                     "logistic_loss": float(losses[-1]), "kkt_residual": kkt_residual(network, params, x, y),
                     "normalized_margin": normalized_margin(network, params, x, y)})
    done = 0
    for chunk in direction_chunks:
        params, _ = _direction_run(params, x, y, jnp.float64(direction_rate), jnp.full(int(chunk), temperature),
                                   network=network, steps=int(chunk), margins=False)
        done += chunk
        rows.append({"phase": "direction", "steps": done, "seconds": time.perf_counter() - start,
                     "kkt_residual": kkt_residual(network, params, x, y),
                     "normalized_margin": normalized_margin(network, params, x, y)})
    return rows


ANNEALED_DIRECTION = ((2e-3, 1e-4), (1e-3, 3e-5), (3e-4, 1e-5), (1e-4, 3e-6), (3e-5, 1e-6))
"""(step, temperature) stages of :func:`anneal_direction`, each for the same number of steps: a subgradient-like
ascent of the (nearly) minimum margin only settles onto its corner when its step shrinks; with a fixed step the
margins of the support points stay 2-3% apart (measured: 0.025 -> 1.5e-4 spread over the 16 smallest margins,
seed 0)."""


def anneal_direction(network: Network, params: Params, x: Any, y: Any, *, steps_per_stage: int = 10000,
                     stages: tuple[tuple[float, float], ...] = ANNEALED_DIRECTION) -> Params:
    """Continue :func:`train_logistic`'s direction phase (unit-sphere ascent of :func:`soft_margin`) through
    ``stages`` of decreasing step and temperature; returns unit-norm parameters."""
    x = jnp.asarray(x, dtype=jnp.float64)
    y = jnp.asarray(y, dtype=jnp.float64)
    for rate, temperature in stages:
        params, _ = _direction_run(params, x, y, jnp.float64(rate), jnp.full(int(steps_per_stage), temperature),
                                   network=network, steps=int(steps_per_stage), margins=False)
    return params


def regime_experiment(regime: str, *, n: int = 20, seed: int = 0, attack_steps: int = 4000,
                      rich_width: int | None = None, attacks: tuple[str, ...] = ("kkt", "loo"),
                      kkt_options: dict | None = None) -> dict[str, Any]:
    """Train a bias-free ReLU network on ``n`` digits (odd/even) in ``regime`` (:data:`REGIMES`), run the KKT
    attack (theta_f / ||theta_f|| alone, :data:`KKT_ALPHA`; :data:`KKT_RESTARTS` restarts pooled, never chosen by
    the data; scored at :data:`CURVE_POINTS` points along the run) and/or Loo et al.'s parameter-space attack (theta_0 and theta_f), M = 2N each, and score both
    with :func:`numerics.audit.leakage` (revealed fraction, SSIM, beside the trivial baselines). Also the KKT
    loss the attack would reach at the training set itself (:func:`truth_kkt_loss`) and, for the rich one-hidden-layer
    network, the stationarity residual with free slopes at the kinks (:func:`clarke_kkt_residual`, key ``clarke``)."""
    from numerics import audit, movement, privacy
    from numerics.attack import parameter_space_attack
    from numerics.data import positive_int
    from numerics.networks import make_network
    from theory.architecture import parse_spec

    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {tuple(REGIMES)}, got {regime!r}")
    if isinstance(attacks, str) or not attacks or any(name not in ("kkt", "loo") for name in attacks):
        raise ValueError(f"attacks must be a non-empty tuple of 'kkt' and/or 'loo', got {attacks!r}")
    attack_steps = positive_int("attack_steps", attack_steps)
    setting = dict(REGIMES[regime])
    if rich_width is not None and regime != "lazy":
        setting["width"] = int(rich_width)
    dataset = audit.load_dataset("digits-odd-even", n, seed=seed)
    network = make_network(parse_spec(setting["spec"]), setting["width"])
    params_0 = network.init(jax.random.PRNGKey(seed), dataset.d)
    params_f, losses = train_logistic(network, params_0, dataset.x, dataset.y,
                                         learning_rate=setting["learning_rate"], steps=setting["steps"])
    scale = float(jnp.sqrt(sum(jnp.sum(a**2) for a in jax.tree.leaves(params_f))))      # the norm GD reached
    if setting["direction_steps"]:
        params_f, _ = direction_phase(network, params_f, dataset.x, dataset.y, steps=setting["direction_steps"],
                                      rate=setting["direction_rate"])
    if setting["anneal_steps"]:
        params_f = anneal_direction(network, params_f, dataset.x, dataset.y, steps_per_stage=setting["anneal_steps"])
    attacked = _unit(params_f)         # what the KKT attack sees: theta_f / ||theta_f||
    if setting["direction_steps"]:
        params_f = jax.tree.map(lambda a: a * scale, attacked)
    references = audit.reference_sets("digits-odd-even", dataset, seed=seed)
    options = {"restarts": KKT_RESTARTS, "snapshots": CURVE_POINTS, "alpha": KKT_ALPHA, "pool": True,
               **(kkt_options or {})}
    results: dict[str, Any] = {"regime": regime, "n": n, "seed": seed, "spec": setting["spec"], "width": setting["width"],
                               "final_logistic_loss": float(losses[-1]),
                               "normalized_margin": normalized_margin(network, params_f, dataset.x, dataset.y),
                               "kkt_residual": kkt_residual(network, params_f, dataset.x, dataset.y),
                               "clarke": (clarke_kkt_residual(network, params_f, dataset.x, dataset.y)
                                          if regime != "lazy" and network.arch.depth == 1 else None),
                               "truth_kkt_loss": truth_kkt_loss(network.arch, attacked, dataset.x, dataset.y,
                                                                alpha=options["alpha"]),
                               "movement": movement.measure(network, params_0, params_f, dataset.x).as_dict(),
                               "attack_steps": attack_steps, "kkt_options": dict(options),
                               "scores": {}, "baselines": {}}
    score_seed = 7_000_001 + seed  # not the data's stream
    for index, name in enumerate(attacks):
        key = jax.random.PRNGKey(seed + 7 + index)
        if name == "kkt":
            found = kkt_attack(network.arch, attacked, 2 * n, in_dim=dataset.d, key=key, steps=attack_steps,
                               box=dataset.box, **options)
            recon = found.x_recon
            curve = []
            image = dict(image_shape=dataset.image_shape,
                         offset=dataset.mean if dataset.image_shape is not None else None)
            for step, frame in zip(found.info["snapshot_steps"], found.info["snapshots"]):
                row = privacy.leakage_scores(frame, dataset.x, references.public, **image)  # the attack row only
                curve.append({"step": step, "revealed": row["revealed"], "ssim_ge_0.9": row.get("ssim_ge_0.9")})
            results["kkt_curve"] = curve
            results["kkt_attack_loss"] = found.final_loss
            results["kkt_restart_losses"] = list(found.restart_losses)
            results["kkt_mu"] = kkt_mu_summary(found)
        else:  # "loo" (attacks were validated above)
            recon = parameter_space_attack(network.arch, params_0, params_f, 2 * n, in_dim=dataset.d, key=key,
                                           steps=attack_steps, box=dataset.box, progress=False).x_recon
        leak = audit.leakage(recon, dataset, references, seed=score_seed)
        row = dict(leak.rows[audit.ATTACK_ROW])
        row["ratio_curve"] = np.sort(leak.ratios[audit.ATTACK_ROW])[::-1].tolist()
        results["scores"][name] = row
        results["recon_" + name] = recon
        if len(recon) > results.get("baseline_count", 0):      # baselines drawn to the largest count: the strictest
            results["baselines"] = {k: v for k, v in leak.rows.items() if v["trivial"]}
            results["baseline_ratios"] = {k: leak.ratios[k] for k in leak.rows if leak.rows[k]["trivial"]}
            results["baseline_count"] = len(recon)
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
                                     f"N={result['n']} digits, seed {result['seed']}")
    return figures.save_figure(ctx, fig, f"h1_{result['regime']}_n{result['n']}.png", outcomes)


def kkt_curve_figure(ctx, results: list[dict[str, Any]], outcomes=()) -> str:
    """The KKT attack curve: fraction of training digits revealed (solid) and at SSIM >= 0.9 (dashed) against
    attack steps, one colour per seed, with the best trivial baseline's values as reference lines."""
    from proofs_check import figures

    first = results[0]
    fig, ax = figures.new_figure(title=f"KKT attack curve: {first['spec']}, m={first['width']}, N={first['n']} digits, "
                                       f"{first['kkt_options']['restarts']} restarts pooled",
                                 xlabel="attack steps (count)", ylabel="training digits revealed or matched (fraction)",
                                 size=(9.0, 4.4))
    for index, result in enumerate(results):
        curve = result["kkt_curve"]
        steps = [point["step"] for point in curve]
        colour = f"C{index}"
        ax.plot(steps, [point["revealed"] for point in curve], marker="o", color=colour,
                label=f"seed {result['seed']}: revealed")
        ax.plot(steps, [point["ssim_ge_0.9"] for point in curve], marker=".", linestyle="--", color=colour,
                label=f"seed {result['seed']}: SSIM >= 0.9")
    trivial_revealed = max(b["revealed"] for r in results for b in r["baselines"].values())
    trivial_ssim = max(b.get("ssim_ge_0.9", 0.0) for r in results for b in r["baselines"].values())
    figures.reference_line(ax, y=trivial_revealed, label=f"best trivial baseline: revealed ({trivial_revealed:.2f})")
    figures.reference_line(ax, y=trivial_ssim, label=f"best trivial baseline: SSIM >= 0.9 ({trivial_ssim:.2f})",
                           linestyle=":")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: 3 seeds x 2 curves + 2
    return figures.save_figure(ctx, fig, f"h1_kkt_curve_n{first['n']}.png", outcomes)


def regime_table_figure(ctx, runs: dict[str, list[dict[str, Any]]], outcomes=()) -> str:
    """Revealed fraction of each attack in each regime: bars at the mean over seeds, a dot per seed, and the
    best trivial baseline as a reference line."""
    from proofs_check import figures

    n = runs[list(runs)[0]][0]["n"]
    fig, ax = figures.new_figure(title=f"Loo et al. (theta_0, theta_f) and KKT (theta_f) attacks, N={n} digits",
                                 xlabel="network (regime, then architecture and width)",
                                 ylabel="digits revealed (fraction)", size=(7.0, 4.4))
    regimes = list(runs)
    for offset, (attack, colour) in zip((-0.18, 0.18), (("loo", "C0"), ("kkt", "C1"))):
        means = [np.mean([r["scores"][attack]["revealed"] for r in runs[regime]]) for regime in regimes]
        ax.bar(np.arange(len(regimes)) + offset, means, width=0.34, color=colour, alpha=0.6,
               label=f"{attack} attack: mean over seeds")
        for index, regime in enumerate(regimes):
            values = [r["scores"][attack]["revealed"] for r in runs[regime]]
            ax.plot(np.full(len(values), index + offset), values, "o", color=colour, markersize=4,
                    label=f"{attack} attack: one seed" if index == 0 else None)
    trivial = max(b["revealed"] for results in runs.values() for r in results for b in r["baselines"].values())
    figures.reference_line(ax, y=trivial, label=f"best trivial baseline ({trivial:.2f})")
    ax.set_xticks(np.arange(len(regimes)), [f"{regime}\n{runs[regime][0]['spec']}\nm={runs[regime][0]['width']}"
                                            for regime in regimes], fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    return figures.save_figure(ctx, fig, f"h1_regimes_n{n}.png", outcomes)


def kink_pairs(params: Params, x: Any, *, tolerance: float = 1e-3, active: float = 0.01) -> tuple[int, int]:
    """(unit, point) pairs of a bias-free relu:1 network whose first-layer pre-activation sits at the ReLU's kink,
    |w_k . x_i| < tolerance |w_k| |x_i|, counted over the active units (|v_k| |w_k| >= ``active`` times the
    largest); returns (pairs at the kink, active units). At such a pair the KKT condition holds only with
    relu'(0) in [0, 1] (Clarke), one value per pair: the residual of :func:`kkt_residual` (relu'(0) = 1/2 for
    every pair) cannot express it, :func:`clarke_kkt_residual` can. Random directions in d dimensions put a fraction about
    2 tolerance sqrt(d / (2 pi)) of the pairs there."""
    (W, _), (v, _) = dense_layers(params)[:2]
    W, v, x = np.asarray(W), np.asarray(v).reshape(-1), np.asarray(x)
    norms = np.linalg.norm(W, axis=0)
    strength = np.abs(v) * norms
    units = strength >= active * strength.max()
    relative = np.abs(x @ W[:, units]) / (np.linalg.norm(x, axis=1)[:, None] * norms[units][None, :])
    return int(np.sum(relative < tolerance)), int(units.sum())


CLARKE_KINK_TOLERANCE = 1e-4
"""Pairs with |w_k . x_i| <= 1e-4 |w_k| |x_i| count as at the kink (their slope is free in [0, 1]). After the
direction phase is annealed the relative pre-activations of a trained one-hidden-layer network split into a cluster below
2e-5 and the rest above 4e-2 (seed 0), so any tolerance between them frees the same pairs."""


def _project_slopes(mu: np.ndarray, t: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean projection of (mu, t) onto {mu_i >= 0, 0 <= t_p <= mu_owner(p)}, all points at once: for a given
    m the best t_p is clip(t_p, 0, m), and the m minimizing (m - mu_i)^2 + sum_(t_p > m) (m - t_p)^2 is the mean
    of mu_i and the largest t_p of point i, taken in decreasing order while each exceeds the mean of those before
    it (a prefix; segment sums over the pairs sorted by point, then by t descending)."""
    order = np.lexsort((-t, owner))
    values, groups = t[order], owner[order]
    first = np.searchsorted(groups, groups)                 # index of the first pair of the same point
    rank = np.arange(values.size) - first
    sums = np.cumsum(values)
    before = sums - values - np.where(first > 0, sums[first - 1], 0.0)       # sum of the larger ones in the group
    previous_mean = np.maximum((mu[groups] + before) / (1.0 + rank), 0.0)
    failed = np.cumsum(~(values > previous_mean))
    failed = failed - np.where(first > 0, failed[first - 1], 0)
    taken = failed == 0
    total = mu + np.bincount(groups, weights=values * taken, minlength=mu.size)
    count = 1.0 + np.bincount(groups, weights=taken.astype(float), minlength=mu.size)
    mu_out = np.maximum(total / count, 0.0)
    return mu_out, np.clip(t, 0.0, mu_out[owner])


CLARKE_STEPS = 3000
"""FISTA iterations of :func:`clarke_kkt_residual`: on H1's one-hidden-layer rich networks (seeds 0-2, 645-740 kink
pairs) 3000 iterations end 0.46%, 0.85% and 0.30% above the value at 30,000 (0.011198, 0.005225, 0.008503),
in 4-10 s each; 1000 end 7-9% above. Any iterate is feasible, so the residual only ever overstates."""


def clarke_kkt_residual(network: Network, params: Params, x: Any, y: Any, *,
                        kink_tolerance: float = CLARKE_KINK_TOLERANCE, steps: int = CLARKE_STEPS) -> dict[str, float]:
    """The KKT stationarity residual of a bias-free one-hidden-layer ReLU network (standard parametrization,
    f(x) = relu(x W) v) with the Clarke subdifferential at the kinks:

        min ||theta - sum_i mu_i y_i g_i(s)|| / ||theta||  over mu >= 0 and s_ik in [0, 1] at the kink pairs,

    where g_i(s) is grad_theta f(x_i) with relu'(w_k . x_i) = s_ik at the pairs |w_k . x_i| <= kink_tolerance
    |w_k| |x_i| and 0 / 1 elsewhere (Clarke: the convex hull of the one-sided derivatives; Lyu & Li 2020 state
    the limit's KKT condition with it). Bilinear in (mu, s), it is a convex QP in (mu, t = mu s) with
    0 <= t_ik <= mu_i; solved by FISTA with restarts on the Gram matrix of the N + P gradient pieces (``steps``
    iterations; any feasible point bounds the minimum from above, and with no kink pairs it equals
    :func:`kkt_residual`). Returns {"residual", "residual_fixed_slopes" (one relu'(0) = 1/2: :func:`kkt_residual`),
    "kink_pairs", "pairs" (all unit-point pairs)}."""
    from scipy.optimize import nnls

    layers = dense_layers(params)
    if len(layers) != 2 or any(b is not None for _, b in layers) or layers[1][0].shape[1] != 1:
        raise ValueError("clarke_kkt_residual needs a bias-free one-hidden-layer network with one output")
    if not (np.isfinite(kink_tolerance) and kink_tolerance >= 0):
        raise ValueError(f"kink_tolerance must be finite and >= 0, got {kink_tolerance!r}")
    W, v = np.asarray(layers[0][0], np.float64), np.asarray(layers[1][0], np.float64).reshape(-1)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64).reshape(-1)
    z = x @ W
    if not np.allclose(np.maximum(z, 0) @ v, np.asarray(network.apply(params, jnp.asarray(x))).reshape(-1),
                       rtol=1e-9, atol=1e-12 * (1 + np.abs(z).max() * np.abs(v).max())):
        raise ValueError("clarke_kkt_residual needs f(x) = relu(x W) v (bias-free relu:1, standard parametrization)")
    n = x.shape[0]
    scale = np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(W, axis=0)[None, :]
    kink = np.abs(z) <= kink_tolerance * scale
    on = (z > 0) & ~kink
    point, unit = np.nonzero(kink)
    # theta's pieces: W-block of point i is y_i x_i (v * on_i)^T, of pair (i, k) y_i v_k x_i e_k^T; v-block y_i relu(z_i)
    gram_x = x @ x.T
    coef = v[None, :] * on * y[:, None]
    readout = np.maximum(z, 0) * y[:, None]
    pair_coef = v[unit] * y[point]
    cross = gram_x[:, point] * coef[:, unit] * pair_coef[None, :]
    gram = np.block([[gram_x * (coef @ coef.T) + readout @ readout.T, cross],
                     [cross.T, gram_x[np.ix_(point, point)] * (unit[:, None] == unit[None, :]) * np.outer(pair_coef, pair_coef)]])
    target = np.concatenate([np.einsum("ik,dk,id->i", coef, W, x) + readout @ v,
                             pair_coef * np.einsum("pd,dp->p", x[point], W[:, unit])])
    norm2 = float(np.sum(W**2) + np.sum(v**2))
    gram, target = gram / norm2, target / norm2
    objective = (lambda c: 1.0 - 2.0 * target @ c + c @ gram @ c)
    # the start: fixed slopes' best mu >= 0 (NNLS on the Cholesky factor). The ridge, 1e-14 of the trace, only keeps
    # the factorization alive when two points' gradient pieces coincide to round-off; the start need not be exact,
    # FISTA moves on from it. maxiter 50 n: a loose cap above scipy's default 3 n, not a tuned value
    chol = np.linalg.cholesky(gram[:n, :n] + 1e-14 * np.trace(gram[:n, :n]) * np.eye(n))
    mu0, _ = nnls(chol.T, np.linalg.solve(chol, target[:n]), maxiter=50 * n)
    current = np.concatenate([mu0, np.zeros(point.size)])
    if point.size:
        lipschitz = 2.0 * float(np.linalg.eigvalsh(gram)[-1])
        momentum, ahead = 1.0, current.copy()
        for _ in range(int(steps)):
            moved = ahead - (2.0 * gram @ ahead - 2.0 * target) / lipschitz
            mu, t = _project_slopes(moved[:n], moved[n:], point)
            new = np.concatenate([mu, t])
            following = (1.0 + np.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
            ahead = new + (momentum - 1.0) / following * (new - current)
            if objective(new) > objective(current):      # adaptive restart (O'Donoghue & Candes 2015)
                ahead, following = new.copy(), 1.0
            current, momentum = new, following
    return {"residual": float(np.sqrt(max(objective(current), 0.0))),
            "residual_fixed_slopes": kkt_residual(network, params, x, y),
            "kink_pairs": int(point.size), "pairs": int(kink.size)}
