"""Attack steps per second of every gradient formulation of numerics.attack, measured side by side in one process.

One attack step (Loo et al. 2023, arXiv:2302.01428) evaluates L = ||Delta theta - J(X_R)^T lambda||^2 and its
gradient, then applies Adam, inside the attack's jitted lax.scan chunk (softplus-smoothed ReLU). Formulations:

- ``jvp``: the residual v = Delta theta - J^T lambda (a P-vector) and grad_X = -2 grad_X[lambda . J(X) v];
- ``autodiff``: reverse mode over the VJP of the loss as written (the reference);
- ``kernel``: autodiff of ||Delta theta||^2 - 2 lambda . J(X) Delta theta + lambda^T K(X, X) lambda, the empirical NTK
  and J Delta theta built layer by layer, Delta W^l as a verified low-rank product (numerics.attack.factor_delta);
- ``fused``: the kernel form with a hand-derived reverse sweep that reuses the forward sweep's activations and
  backpropagated vectors (numerics.attack.fused_loss_and_grad; what ``auto`` picks here), feature-major, with
  every W^l and W^l^T stored (numerics.attack.fused_weights), as parameter_space_attack runs it;
- ``profiled``: the kernel form at lambda* = K^-1 J Delta theta (Cholesky), Adam over X_R alone (``profiled-fused``:
  with the fused sweeps);
each in float64, and the JVP step and the two fused ones in float32 as well (each row gives its ratio to the
float64 JVP step and to the JVP step of its own precision).

Multiply-adds per step (M points, C outputs, a dense layer of fan-in n and fan-out n'; the n x n hidden layer
dominates, r = rank Delta W <= N C; "unit" = M n n', one product of the M activations with a weight matrix):

| part                                                                          | units            | lower order              |
|-------------------------------------------------------------------------------|------------------|--------------------------|
| forward f(X)                                                                  | 1                |                          |
| VJP J(X)^T lambda (backpropagated lambda 1, weight gradients a^T g 1)         | 2                | writes a P-vector        |
| JVP J(X) v in a parameter direction v (a v + a' W)                            | 2                | reads a P-vector         |
| JVP step: forward + VJP + JVP + reverse of the JVP in X (3)                   | 8 (XLA: 7.4)     | 3 P-vector passes        |
| layer-by-layer K_theta(X, X), M x M: forward + C backpropagated vectors       | 1 + C            | M^2 (n + C^2 n') Grams   |
| J(X) Delta theta with Delta W = Q B (rank r)                                  | 0                | 2 M r (n + n')           |
| its gradient by autodiff (``kernel``): the reverse of every product            | 1 + C            | 2 M^2 (n + C n')         |
| its gradient by hand (``fused``): one lambda-contracted vector each way       | 2                | 3 M^2 (n + n')           |
| ``fused`` / ``profiled-fused`` step                                           | 3 + C            | + M C x M C Cholesky     |

The JVP form's 8 units count the forward sweep once (XLA merges the VJP's and the JVP's). Any exact gradient
through the hidden layer needs the forward product (for phi(h), phi'(h)), the backpropagated vector (the Jacobian
rows) and the reverse of both: 4 units at C = 1, so the flop ratio to the JVP step is at most 8 / 4 = 2 for wide
layers (XLA's own count, printed per row: 1.57x at width 1024, where the Gram and first-layer terms still add
0.7 units). Time ratios differ from the flop ratio where the products of one form run at another speed: the
fused sweeps keep one column per point, (n, M), and multiply stored matrices into them, (n', n) @ (n, M), while
the JVP form works on (M, n) rows and multiplies some of them by a transposed matrix, which XLA's CPU matmul runs
slowest in float32 (``--layouts`` times the three layouts at M = 40). At width 256 fixed per-operation costs and
elementwise work weigh as much as the products. The timed rounds interleave the formulations
(round r times every formulation once), so a change of the machine's load hits all of them alike; each figure is
the median over ``--runs`` rounds of ``--steps`` steps after one warm-up chunk.

Setting: N = 20 training digits (scikit-learn 8x8, d = 64), M = 40 reconstructions, relu:2 in NTK parametrization
at each width, Delta theta = J_0(X_T)^T alpha (lazy training: rank Delta W^l <= N).

    .venv/bin/python benchmarks/attack_steps.py [--widths 256 1024 4096] [--runs 5] [--steps 0] [--layouts]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import numerics  # noqa: F401  (float64)
from numerics import attack
from numerics.data import digits
from numerics.networks import make_network
from theory import parse_spec

N_TRAIN, N_RECON = 20, 40
FORMULATIONS = (("jvp", "joint", "float64"), ("autodiff", "joint", "float64"), ("kernel", "joint", "float64"),
                ("fused", "joint", "float64"), ("profiled", "profiled", "float64"),
                ("profiled-fused", "profiled", "float64"), ("jvp", "joint", "float32"), ("fused", "joint", "float32"),
                ("profiled-fused", "profiled", "float32"))
BASELINE = "jvp float64"


def _runner(arch, params_0, delta, x_t, method, mode, precision, steps):
    dtype = jnp.dtype(precision)
    step_method = {"profiled": "kernel", "profiled-fused": "fused"}.get(method, method)
    optimizer, run = attack._chunk_runner(arch, "theta0", 10**6, (10.0, 200.0), "geometric", 0.02, False, 1.0,
                                          step_method, steps, mode)
    key_x, key_lam = jax.random.split(jax.random.PRNGKey(1))
    x = (0.2 * jax.random.normal(key_x, (N_RECON, x_t.shape[1]))).astype(dtype)
    lam = jax.random.uniform(key_lam, (N_RECON, 1), jnp.float64, -0.5, 0.5).astype(dtype)
    carry = (x, lam, optimizer.init(x if mode == "profiled" else (x, lam)))
    lo = hi = jnp.zeros((1, x_t.shape[1]), dtype)
    thetas = (jax.tree_util.tree_map(lambda a: a.astype(dtype), params_0),)
    arg = attack.factor_delta(delta, dtype=dtype) if step_method in ("kernel", "fused") else \
        jax.tree_util.tree_map(lambda a: a.astype(dtype), delta)
    if step_method == "fused":  # as parameter_space_attack prepares them
        thetas, arg = tuple(attack.fused_weights(p) for p in thetas), attack.fused_delta(arg)
    state = {"carry": carry, "step": 0}
    args = (carry, jnp.asarray(0), thetas, arg, lo, hi)
    compiled = run.lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", float("nan")))  # XLA counts the body of the scan once: one step

    def chunk() -> float:
        start = time.perf_counter()
        state["carry"], (losses, _) = compiled(state["carry"], jnp.asarray(state["step"]), thetas, arg, lo, hi)
        jax.block_until_ready((state["carry"], losses))
        state["step"] += steps
        return time.perf_counter() - start

    chunk.flops = flops
    return chunk


def measure(widths=(256, 1024, 4096), runs: int = 5, steps: int = 0, emit=print) -> list[dict]:
    """Steps per second of every formulation at every width; one row per (width, formulation) with its ratio to
    the JVP step measured in the same rounds."""
    x_t = jnp.asarray(digits(task="odd_even", n=N_TRAIN).x, dtype=jnp.float64)
    arch = parse_spec("relu:2")
    rows = []
    for width in widths:
        length = steps or max(2, min(50, 16_384 // width))
        params_0 = make_network(arch, width).init(jax.random.PRNGKey(0), x_t.shape[1])
        alpha = jax.random.normal(jax.random.PRNGKey(2), (N_TRAIN, 1))
        delta = attack.jacobian_transpose_lambda(arch, params_0, x_t, alpha)
        chunks = {f"{method} {precision}": _runner(arch, params_0, delta, x_t, method, mode, precision, length)
                  for method, mode, precision in FORMULATIONS}
        for chunk in chunks.values():
            chunk()  # compile and warm up
        times = {name: [] for name in chunks}
        for _ in range(runs):
            for name, chunk in chunks.items():
                times[name].append(chunk() / length)
        base = statistics.median(times[BASELINE])
        for name, values in times.items():
            per_step = statistics.median(values)
            same = statistics.median(times[f"jvp {name.split()[-1]}"])  # the JVP step in this row's precision
            row = {"benchmark": "attack_steps", "width": width, "formulation": name,
                   "steps_per_s": round(1.0 / per_step, 2), "ratio_to_jvp": round(base / per_step, 2),
                   "ratio_to_jvp_same_precision": round(same / per_step, 2),
                   "xla_gflop_per_step": round(chunks[name].flops / 1e9, 4),
                   "flop_ratio_to_jvp": round(chunks[BASELINE].flops / chunks[name].flops, 2),
                   "load_average": round(os.getloadavg()[0], 1),
                   "chosen_by_auto": attack.choose_method((x_t.shape[1], width, width, 1), N_RECON, 1,
                                                          dtype=name.split()[-1])}
            rows.append(row)
            emit(json.dumps(row))
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'width':>6} {'formulation':>23} {'steps/s':>9} {'vs jvp float64':>15} {'vs jvp same prec.':>18} "
             f"{'GFLOP/step':>11} {'jvp flops/row':>14}"]
    lines += [f"{r['width']:>6} {r['formulation']:>23} {r['steps_per_s']:>9.2f} {r['ratio_to_jvp']:>14.2f}x "
              f"{r['ratio_to_jvp_same_precision']:>17.2f}x {r['xla_gflop_per_step']:>11.4f} "
              f"{r['flop_ratio_to_jvp']:>13.2f}x" for r in rows]
    return "\n".join(lines)


LAYOUTS = {"(n', n) @ (n, M), stored matrix (fused sweeps)": lambda W, W_t, a, a_t: W_t @ a_t,
           "(M, n) @ (n, n')": lambda W, W_t, a, a_t: a @ W,
           "(M, n) @ W^T, transposed inside jit": lambda W, W_t, a, a_t: a @ W.T}
HOST_BLAS = "(n', n) @ (n, M), numpy's BLAS outside jit (reference: not used by the attack)"
"""The same product through numpy (OpenBLAS here): what a CPU GEMM reaches on these shapes, beside XLA's dot."""


def matmul_layouts(widths=(1024, 4096), m: int = N_RECON, runs: int = 5, emit=print) -> list[dict]:
    """GFLOP/s of one product of M points with an n x n weight matrix in each layout of LAYOUTS and through numpy
    (HOST_BLAS), median of ``runs`` rounds of 10 products after a warm-up, float64 and float32."""
    rows = []
    for precision in ("float64", "float32"):
        for width in widths:
            W = jax.random.normal(jax.random.PRNGKey(0), (width, width)).astype(precision)
            a = jax.random.normal(jax.random.PRNGKey(1), (m, width)).astype(precision)
            operands = (W, jnp.transpose(W), a, jnp.transpose(a))
            compiled = {name: jax.jit(f) for name, f in LAYOUTS.items()}
            host = (np.asarray(operands[1]), np.asarray(operands[3]))
            compiled[HOST_BLAS] = lambda *_: np.matmul(*host)
            times = {name: [] for name in compiled}
            for f in compiled.values():
                jax.block_until_ready(f(*operands))
            for _ in range(runs):
                for name, f in compiled.items():
                    start = time.perf_counter()
                    for _ in range(10):
                        out = f(*operands)
                    jax.block_until_ready(out)
                    times[name].append((time.perf_counter() - start) / 10)
            for name, values in times.items():
                row = {"benchmark": "matmul_layouts", "precision": precision, "width": width, "m": m,
                       # three significant figures: one decimal read 0.0 for a tiny matmul on a busy machine
                       "layout": name, "gflop_per_s": float(f"{2 * m * width * width / statistics.median(values) / 1e9:.3g}")}
                rows.append(row)
                emit(json.dumps(row))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=0, help="steps per timed chunk (default: by width)")
    parser.add_argument("--layouts", action="store_true", help="also time one product in each matmul layout "
                        "(the reason the fused sweeps are feature-major)")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be >= 5 (the median of at least five timed runs)")
    print(f"device: {jax.devices()[0].device_kind}; N = {N_TRAIN}, M = {N_RECON}, relu:2, digits (d = 64)")
    rows = measure(args.widths, args.runs, args.steps, emit=lambda line: None)
    print(table(rows))
    for row in rows:
        print(json.dumps(row))
    if args.layouts:
        print(f"\none product of M = {N_RECON} points with an n x n weight matrix, per layout (GFLOP/s):")
        for row in matmul_layouts(widths=args.widths, runs=args.runs, emit=lambda line: None):
            print(f"{row['precision']} n = {row['width']:>5}, M = {row['m']}: {row['gflop_per_s']:>7.1f} GFLOP/s  "
                  f"{row['layout']}")


if __name__ == "__main__":
    main()
