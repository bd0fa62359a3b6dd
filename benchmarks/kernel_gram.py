"""Benchmark: NTK Gram matrix of 2000 x 2000 points (d = 64, relu, depth 2), this project vs neural-tangents.

Both functions are jitted and compiled before timing; each is timed over at least 5 runs and the median
is reported, with the ratio (ours / neural-tangents; <= 1 means ours is as fast or faster); the two run
alternately so that a shared machine's load hits both alike. Run:
    .venv/bin/python benchmarks/kernel_gram.py [--n 2000] [--repeats 7]
"""

import argparse
import statistics
import time

import jax
import numpy as np

import numerics  # noqa: F401  (float64)
from numerics.kernels import analytic_ntk_fn
from numerics.networks import make_network
from theory.architecture import parse_spec


def median_seconds(fns, repeats: int) -> list[float]:
    """Median wall time of each function; the functions run alternately, so that load changes on a shared
    machine hit both alike."""
    for fn in fns:
        jax.block_until_ready(fn())
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--spec", default="relu:2")
    args = parser.parse_args()
    arch = parse_spec(args.spec)
    x = jax.numpy.asarray(np.random.default_rng(0).normal(size=(args.n, args.d)))
    ours = analytic_ntk_fn(arch, width=512)
    theirs = jax.jit(make_network(arch, 512).kernel_fn, static_argnames="get")
    ours_s, theirs_s = median_seconds([lambda: ours(x, x), lambda: theirs(x, x, get="ntk")], args.repeats)
    difference = np.abs(np.asarray(ours(x, x)) - np.asarray(theirs(x, x, get="ntk")))
    off_diagonal = difference - np.diag(np.diag(difference))
    error, error_off = float(difference.max()), float(off_diagonal.max())
    print(f"NTK Gram {args.n} x {args.n}, d = {args.d}, {arch.spec}, float64, median of {args.repeats} runs")
    print(f"  recon-ntk analytic_ntk_fn    : {ours_s * 1e3:9.1f} ms")
    print(f"  neural-tangents kernel_fn    : {theirs_s * 1e3:9.1f} ms")
    print(f"  ratio (ours / nt)            : {ours_s / theirs_s:9.2f}")
    print(f"  max |difference| {error:.2e} (off the diagonal {error_off:.2e}; on it, coincident inputs, this "
          "project is exact and neural-tangents' arccos is not)")


if __name__ == "__main__":
    main()
