"""Benchmark: NTK Gram matrix of 2000 x 2000 points (d = 64, relu, depth 2), this project vs neural-tangents.

Both functions are jitted and compiled before timing; each is timed over at least 5 runs and the median
is reported, with the ratio (neural-tangents time / ours; > 1 means ours is faster). Run:
    .venv/bin/python benchmarks/kernel_gram.py [--n 2000] [--repeats 7]
"""

import argparse
import statistics
import time

import jax
import numpy as np

import numerics  # noqa: F401  (float64)
from numerics.kernels import analytic_kernel_fn
from numerics.networks import make_network
from theory.architecture import parse_spec


def median_seconds(fn, repeats: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--spec", default="relu:2")
    args = parser.parse_args()
    arch = parse_spec(args.spec)
    x = jax.numpy.asarray(np.random.default_rng(0).normal(size=(args.n, args.d)))
    ours = analytic_kernel_fn(arch, width=512)
    theirs = jax.jit(make_network(arch, 512).kernel_fn, static_argnames="get")
    ours_s = median_seconds(lambda: ours(x, x)[1], args.repeats)
    theirs_s = median_seconds(lambda: theirs(x, x, get="ntk"), args.repeats)
    error = float(np.max(np.abs(ours(x, x)[1] - theirs(x, x, get="ntk"))))
    print(f"NTK Gram {args.n} x {args.n}, d = {args.d}, {arch.spec}, float64, median of {args.repeats} runs")
    print(f"  recon-ntk analytic_kernel_fn : {ours_s * 1e3:9.1f} ms")
    print(f"  neural-tangents kernel_fn    : {theirs_s * 1e3:9.1f} ms")
    print(f"  ratio (nt / ours)            : {theirs_s / ours_s:9.2f}x   max |difference| {error:.2e}")


if __name__ == "__main__":
    main()
