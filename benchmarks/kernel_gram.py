"""Benchmark: NTK Gram matrix of 2000 x 2000 points (d = 64, relu, depth 2), this project vs neural-tangents;
and a convolutional row: the NTK Gram matrix of N = 200 8x8 digits under conv3x3 > relu > conv3x3 > relu > gap >
dense (per-pixel-pair states of 200 x 200 x 64 x 64 floats: both libraries get the same blocks of 25 rows).

Both functions are jitted and compiled before timing; each is timed over several runs and the median
is reported, with the ratio (ours / neural-tangents; <= 1 means ours is as fast or faster); the two run
alternately so that a shared machine's load hits both alike. Run:
    .venv/bin/python benchmarks/kernel_gram.py [--n 2000] [--repeats 7] [--conv-n 200] [--conv-repeats 3]
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

CONV_SPEC = "conv3x3 > relu > conv3x3 > relu > gap > dense"


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
    parser.add_argument("--conv-n", type=int, default=200, help="digits in the convolutional row (0: skip it)")
    parser.add_argument("--conv-repeats", type=int, default=3)
    parser.add_argument("--conv-block", type=int, default=25, help="rows of x1 per block (memory)")
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
    if args.conv_n:
        conv_row(args.conv_n, args.conv_repeats, args.conv_block)


def conv_row(n: int, repeats: int, block: int) -> None:
    """The convolutional NTK Gram matrix of ``n`` digits, blocks of ``block`` rows against all ``n`` columns."""
    from sklearn.datasets import load_digits

    arch = parse_spec(CONV_SPEC)
    x = jax.numpy.asarray(load_digits().data[:n] / 16.0)
    ours_fn = analytic_ntk_fn(arch)
    theirs_fn = jax.jit(make_network(arch, 8).kernel_fn, static_argnames="get")
    blocks = [x[i:i + block] for i in range(0, n, block)]

    def ours():
        return jax.numpy.concatenate([ours_fn(rows, x) for rows in blocks])

    def theirs():
        return jax.numpy.concatenate([theirs_fn(rows, x, get="ntk") for rows in blocks])

    ours_s, theirs_s = median_seconds([ours, theirs], repeats)
    mine, reference = np.asarray(ours()), np.asarray(theirs())
    difference = np.abs(mine - reference) / np.abs(reference).max()
    off_diagonal = difference - np.diag(np.diag(difference))
    print(f"NTK Gram {n} x {n} digits (8x8), {CONV_SPEC}, float64, blocks of {block} rows, median of {repeats} runs")
    print(f"  recon-ntk analytic_ntk_fn    : {ours_s * 1e3:9.1f} ms")
    print(f"  neural-tangents kernel_fn    : {theirs_s * 1e3:9.1f} ms")
    print(f"  ratio (ours / nt)            : {ours_s / theirs_s:9.2f}")
    print(f"  max relative difference {difference.max():.2e} (off the diagonal {off_diagonal.max():.2e})")


if __name__ == "__main__":
    main()
