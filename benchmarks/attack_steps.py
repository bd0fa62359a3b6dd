"""Attack steps per second: the JVP gradient of numerics.attack against plain reverse-over-reverse autodiff.

One attack step (Loo et al. 2023, arXiv:2302.01428) evaluates L = ||Delta theta - J(X_R)^T lambda||^2 and its
gradient in (X_R, lambda), then applies Adam. ``method="jvp"`` computes grad_X L = -2 grad_X[lambda . J(X) v]
with v = Delta theta - J^T lambda held fixed (one VJP, one JVP and its reverse pass); ``method="autodiff"``
differentiates the loss as written (reverse over the VJP). Both run the same jitted lax.scan chunk of the
attack (softplus-smoothed ReLU, Adam), so the ratio is the cost of the gradient alone plus shared overhead.

Setting: N = 20 training digits (scikit-learn 8x8, d = 64; random sphere points if that is unavailable),
M = 40 reconstructions, relu:2 in NTK parametrization at each width, Delta theta = J_0(X_T)^T alpha. Each
timing is the median of ``--runs`` (>= 5) timed chunks of ``--steps`` steps after one warm-up chunk.

    .venv/bin/python benchmarks/attack_steps.py [--widths 256 1024 4096] [--runs 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import numerics  # noqa: F401  (float64)
from numerics import attack
from numerics.networks import make_network
from theory import parse_spec

N_TRAIN, N_RECON = 20, 40


def training_points() -> tuple[np.ndarray, str]:
    try:
        from numerics.data import digits

        data = digits(task="odd_even", n=N_TRAIN)
        return np.asarray(data.x, dtype=np.float64), "digits (8x8, d = 64)"
    except Exception as error:  # noqa: BLE001 - the benchmark still runs on synthetic data, and says so
        rng = np.random.default_rng(0)
        z = rng.normal(size=(N_TRAIN, 64))
        return z / np.linalg.norm(z, axis=1, keepdims=True), f"random sphere points, d = 64 ({type(error).__name__})"


def time_method(arch, params_0, delta, x_t, method: str, steps: int, runs: int) -> float:
    """Median seconds per attack step over ``runs`` chunks of ``steps`` steps (after one warm-up chunk)."""
    total = 10**6
    optimizer, run = attack._chunk_runner(arch, "theta0", total, (10.0, 200.0), "geometric", 0.02, False, 1.0,
                                          method, steps)
    key_x, key_lam = jax.random.split(jax.random.PRNGKey(1))
    x = 0.2 * jax.random.normal(key_x, (N_RECON, x_t.shape[1]))
    lam = jax.random.uniform(key_lam, (N_RECON, 1), jnp.float64, -0.5, 0.5)
    carry = (x, lam, optimizer.init((x, lam)))
    lo = hi = jnp.zeros((1, x_t.shape[1]))
    thetas = (params_0,)
    carry, losses = run(carry, jnp.asarray(0), thetas, delta, lo, hi)
    jax.block_until_ready(losses)
    times = []
    for r in range(runs):
        start = time.perf_counter()
        carry, losses = run(carry, jnp.asarray((r + 1) * steps), thetas, delta, lo, hi)
        jax.block_until_ready((carry, losses))
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=0, help="steps per timed chunk (default: by width)")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be >= 5 (the median of at least five timed runs)")

    x_np, source = training_points()
    x_t = jnp.asarray(x_np)
    arch = parse_spec("relu:2")
    print(f"device: {jax.devices()[0].device_kind}; data: {source}; N = {N_TRAIN}, M = {N_RECON}, {arch.spec}")
    print(f"{'width':>6} {'params':>11} {'jvp steps/s':>12} {'autodiff steps/s':>17} {'speed-up':>9}")
    for width in args.widths:
        steps = args.steps or max(2, min(50, 16_384 // width))
        network = make_network(arch, width)
        params_0 = network.init(jax.random.PRNGKey(0), x_t.shape[1])
        alpha = jax.random.normal(jax.random.PRNGKey(2), (N_TRAIN, 1))
        delta = attack.jacobian_transpose_lambda(arch, params_0, x_t, alpha)
        n_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params_0))
        ours = time_method(arch, params_0, delta, x_t, "jvp", steps, args.runs)
        reference = time_method(arch, params_0, delta, x_t, "autodiff", steps, args.runs)
        print(f"{width:>6} {n_params:>11,} {1 / ours:>12.1f} {1 / reference:>17.1f} {reference / ours:>8.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
