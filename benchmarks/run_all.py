"""Every benchmark in one process: one table and JSON lines of ratios measured side by side (``make bench``).

Rows (each ratio is measured in this process, the compared implementations interleaved or back to back):
- attack_steps: steps/s of every attack formulation at widths 256, 1024, 4096 vs the JVP step (benchmarks/attack_steps.py);
- time_to_quality: wall time of a cold attack (compilation included) until >= 90% of the N digits reach SSIM >= 0.9,
  joint and profiled modes, trivial baselines beside (benchmarks/time_to_quality.py);
- ssim: all-pairs SSIM, N = 500 originals x M = 1000 reconstructions, vectorized vs one scikit-image call per pair
  (the per-pair reference is timed on --ssim-reference-rows rows and scaled to 1000; its largest difference from
  the vectorized scores on those rows is reported);
- kernel_gram: benchmarks/kernel_gram.py (this project's analytic Gram vs neural-tangents), run as it is;
- hermite_duals: benchmarks/hermite_duals.py (expr:2:phi=tanh(x) on 200 and 1258 digits: the duals' Mehler series vs
  the 129 x 129 rule per entry, the rule timed at 200 and scaled by N^2), run as it is;
- distill_scale: benchmarks/distill_scale.py (KIP, 10 per class, N = 20,000 digits and shifted noisy copies, d = 64,
  relu:2, 1000 steps), run as its own process so that its ru_maxrss peak is its own: wall time, steps/s, peak memory;
- quick profile and test suite: wall time of ``proofs-check run --profile quick`` and of ``pytest -n auto`` (the test suite as ``make test`` runs it).
The machine's 1-minute load average (os.getloadavg) is printed before and after every section: on a shared machine
only the ratios are comparable.

    .venv/bin/python benchmarks/run_all.py [--widths 256 1024 4096] [--no-profile] [--no-tests] [--no-quality]
                                       [--no-distill]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attack_steps  # noqa: E402
import time_to_quality  # noqa: E402

import numerics  # noqa: E402,F401
from numerics.data import digits  # noqa: E402
from numerics.metrics import pairwise_ssim, pairwise_ssim_reference  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def ssim_benchmark(reference_rows: int, emit) -> dict:
    rng = np.random.default_rng(0)
    originals = digits(task="ten_class", split="train").x[:500]
    recon = originals[rng.integers(0, 500, 1000)] + 0.3 * rng.normal(size=(1000, originals.shape[1]))
    start = time.perf_counter()
    fast = pairwise_ssim(recon, originals, image_shape=(8, 8))
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    reference = pairwise_ssim_reference(recon[:reference_rows], originals, image_shape=(8, 8))
    reference_seconds = (time.perf_counter() - start) * 1000 / reference_rows
    row = {"benchmark": "ssim", "n": 500, "m": 1000, "seconds": round(seconds, 3),
           "skimage_seconds_scaled": round(reference_seconds, 1), "ratio": round(reference_seconds / seconds, 1),
           "max_abs_difference": float(np.max(np.abs(fast[:reference_rows] - reference)))}
    emit(json.dumps(row))
    return row


def timed_command(name: str, command: list[str], emit) -> dict:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    row = {"benchmark": name, "seconds": round(time.perf_counter() - start, 1), "exit_status": done.returncode,
           "command": " ".join(command)}
    emit(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ssim-reference-rows", type=int, default=40)
    parser.add_argument("--quality-n", type=int, nargs="+", default=[20])
    parser.add_argument("--no-quality", action="store_true", help="skip the time-to-quality runs")
    parser.add_argument("--no-distill", action="store_true", help="skip the distillation-at-scale run")
    parser.add_argument("--no-profile", action="store_true", help="skip timing the quick profile")
    parser.add_argument("--no-tests", action="store_true", help="skip timing the test suite")
    args = parser.parse_args()
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}; "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    loads = {}

    def section(name: str, work):
        """Run one benchmark section, noting the 1-minute load average before and after it."""
        before = os.getloadavg()[0]
        out = work()
        loads[name] = (round(before, 1), round(os.getloadavg()[0], 1))
        emit(json.dumps({"benchmark": "load_average", "section": name, "before": loads[name][0],
                         "after": loads[name][1]}))
        return out

    steps = section("attack_steps", lambda: attack_steps.measure(args.widths, args.runs, emit=emit))
    ssim = section("ssim", lambda: ssim_benchmark(args.ssim_reference_rows, emit))
    quality = []
    if not args.no_quality:
        for n in args.quality_n:
            quality += section(f"time_to_quality N={n}", lambda n=n: time_to_quality.run(
                n, ("profiled", "joint"), (250, 500, 1000, 2000, 4000), emit=emit))
    gram = section("kernel_gram", lambda: subprocess.run([sys.executable, "benchmarks/kernel_gram.py"], cwd=ROOT,
                                                         capture_output=True, text=True))
    print(gram.stdout.strip(), flush=True)
    hermite = section("hermite_duals", lambda: subprocess.run([sys.executable, "benchmarks/hermite_duals.py"],
                                                              cwd=ROOT, capture_output=True, text=True))
    print(hermite.stdout.strip() or f"hermite_duals failed: {hermite.stderr[-2000:]}", flush=True)
    scale = None
    if not args.no_distill:
        done = section("distill_scale", lambda: subprocess.run([sys.executable, "benchmarks/distill_scale.py"],
                                                               cwd=ROOT, capture_output=True, text=True))
        if done.returncode == 0:
            scale = json.loads(done.stdout.strip().splitlines()[0])
            emit(json.dumps(scale))
        else:
            print(f"distill_scale failed (exit status {done.returncode}): {done.stderr[-2000:]}", flush=True)
    timings = []
    if not args.no_profile:
        with tempfile.TemporaryDirectory() as out:
            timings.append(section("quick profile", lambda: timed_command(
                "quick profile", [str(Path(sys.executable).parent / "proofs-check"), "run", "--profile", "quick",
                                  "--out", out], emit)))
    if not args.no_tests:
        timings.append(section("test suite", lambda: timed_command(
            "test suite", [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider"], emit)))

    print("\n" + attack_steps.table(steps))
    print(f"\nSSIM N=500 x M=1000: {ssim['seconds']} s vectorized, {ssim['skimage_seconds_scaled']} s scikit-image "
          f"per pair (scaled), {ssim['ratio']}x, max |difference| {ssim['max_abs_difference']:.1e}")
    for row in quality:
        print(f"time to quality N={row['n']} {row['mode']:>8} {row['precision']}: {row['steps']:>5} steps "
              f"{row['seconds']:>7.1f} s, SSIM>=0.9 {row['ssim_ge_0.9']:.2f} (trivial best "
              f"{max(row['trivial_ssim_ge_0.9'].values()):.2f}){'  reached' if row['reached'] else ''}")
    if scale is not None:
        print(f"distillation at scale, {scale['method'].upper()} {scale['support']} points from N = {scale['n']}, "
              f"d = {scale['d']}: {scale['steps']} steps {scale['seconds']} s (compilation included), "
              f"{scale['steps_per_s']} steps/s, process peak memory {scale['process_peak_rss_gb']} GB")
    for row in timings:
        print(f"{row['benchmark']}: {row['seconds']} s (exit status {row['exit_status']})")
    for name, (before, after) in loads.items():
        print(f"load average {name}: {before} before, {after} after")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
