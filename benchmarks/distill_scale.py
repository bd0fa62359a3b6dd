"""KIP / RKIP distillation at scale: 10 points per class against N = 20,000 target points, d = 64, relu:2 NTK.

Target set: the 1258 training digits (numerics.data.digits, ten classes, pixels in [0, 1], centered by the
training mean, targets as numerics.data gives them) plus N - 1258 synthetic digits, each a training digit (drawn
uniformly with replacement, seed 0) shifted by one pixel in one of the 8 directions (uniform; the pixels shifted in
are 0), plus Gaussian noise of standard deviation 0.05 on every pixel, clipped to [0, 1], then centered by the
same training mean; it keeps its digit's label and target. Runs ``steps`` steps of numerics.distill.distill
(default KIP, 10 per class, block size numerics.distill.BLOCK_SIZE) and prints the wall time (compilation
included), steps/s over that wall time and the process's peak resident memory (resource.getrusage ru_maxrss: the
peak of the whole process, data and JAX included, not of the distillation alone).

    .venv/bin/python benchmarks/distill_scale.py [--n 20000] [--steps 1000] [--method kip] [--block-size 512]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np

import numerics  # noqa: F401 (float64)
from numerics import distill
from numerics.data import digits
from theory import parse_spec

SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
NOISE = 0.05


def shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """An (8, 8) image moved by (dy, dx) pixels, zeros shifted in."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0),
                                                                     max(-dx, 0):w - max(dx, 0)]
    return out


def target_set(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, labels) of the documented extension (module docstring), n >= 1258 rows."""
    train = digits(task="ten_class", split="train")
    raw = train.x + train.mean  # back to [0, 1]
    rng = np.random.default_rng(seed)
    extra = n - raw.shape[0]
    source = rng.integers(0, raw.shape[0], extra)
    direction = rng.integers(0, len(SHIFTS), extra)
    images = np.stack([shift(raw[i].reshape(8, 8), *SHIFTS[k]).ravel() for i, k in zip(source, direction)])
    images = np.clip(images + NOISE * rng.normal(size=images.shape), 0.0, 1.0)
    x = np.concatenate([train.x, images - train.mean])
    return x, np.concatenate([train.y, train.y[source]]), np.concatenate([train.labels, train.labels[source]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--method", choices=distill.METHODS, default="kip")
    parser.add_argument("--block-size", type=int, default=distill.BLOCK_SIZE)
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    x, y, labels = target_set(args.n)
    start = time.perf_counter()
    result = distill.distill(parse_spec("relu:2"), x, y, labels, per_class=args.per_class, method=args.method,
                             steps=args.steps, block_size=args.block_size, chunk=args.chunk, progress=False)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: kilobytes
    row = {"benchmark": "distill_scale", "method": args.method, "n": int(x.shape[0]), "d": int(x.shape[1]),
           "support": int(result.x.shape[0]), "steps": args.steps, "block_size": args.block_size,
           "seconds": round(seconds, 1), "steps_per_s": round(args.steps / seconds, 2),
           "process_peak_rss_gb": round(peak_gb, 2), "loss_first": float(result.loss_curve[0]),
           "loss_last": float(result.loss_curve[-1]), "load_average_start": round(load, 1),
           "load_average_end": round(os.getloadavg()[0], 1)}
    print(json.dumps(row), flush=True)
    print(f"{args.method.upper()} {row['support']} points from N = {row['n']}, d = {row['d']}, relu:2: {args.steps} "
          f"steps in {row['seconds']} s (compilation included), {row['steps_per_s']} steps/s, process peak memory "
          f"{row['process_peak_rss_gb']} GB (ru_maxrss)")


if __name__ == "__main__":
    main()
