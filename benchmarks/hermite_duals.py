"""Benchmark: the NTK Gram matrix of a formula activation without a closed-form dual (expr:2:phi=tanh(x)) on the
digits, its dual kernels by the Mehler (Hermite) series (numerics.kernels._hermite_series, the default) against the
129 x 129 trapezoid rule per entry (forced by HERMITE_TOLERANCE < 0).

For each N the two run back to back, each timed cold (compilation included, what a first call costs) and then warm
(median of the repeats); the rule is timed only up to --rule-max-n points (at N = 1258 it takes minutes: its time is
then scaled from the largest N timed by N^2, the entries, and marked as such). The largest relative difference
between the two Gram matrices is printed too. Run:
    .venv/bin/python benchmarks/hermite_duals.py [--n 200 1258] [--repeats 3] [--rule-max-n 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import numerics  # noqa: F401  (float64)
from numerics import kernels
from numerics.data import digits
from theory.architecture import parse_spec

SPEC = "expr:2:phi=tanh(x)"


def gram(spec: str, x: jax.Array, *, series: bool):
    """(analytic_ntk(spec, x), cold seconds, the compiled function) with the duals' series enabled or the 2-D rule
    forced (caches rebuilt either way)."""
    saved = kernels.HERMITE_TOLERANCE
    kernels.HERMITE_TOLERANCE = saved if series else -1.0
    kernels._clear_caches()
    try:
        fn = kernels.analytic_ntk_fn(parse_spec(spec))
        start = time.perf_counter()
        out = jax.block_until_ready(fn(x, x))
        cold = time.perf_counter() - start
        return out, cold, fn
    finally:
        kernels.HERMITE_TOLERANCE = saved


def measure(sizes, repeats: int, rule_max_n: int, spec: str = SPEC, emit=print) -> list[dict]:
    """One row per (N, method): cold and warm seconds, and per N the series' largest relative difference from the
    rule (where the rule ran)."""
    data = np.asarray(digits(task="ten_class", split="train").x)
    rows = []
    for n in sizes:
        x = jnp.asarray(data[:n])
        reference = None
        for method in ("series", "rule"):
            if method == "rule" and n > rule_max_n:
                continue
            out, cold, fn = gram(spec, x, series=method == "series")
            warm = []
            for _ in range(repeats):  # the compiled function keeps the method it was built with
                start = time.perf_counter()
                jax.block_until_ready(fn(x, x))
                warm.append(time.perf_counter() - start)
            row = {"benchmark": "hermite_duals", "spec": spec, "n": int(n), "method": method,
                   "cold_seconds": round(cold, 4), "warm_seconds": round(statistics.median(warm), 4)}
            if method == "series":
                reference = np.asarray(out)
            else:
                row["max_relative_difference"] = float(np.max(np.abs(np.asarray(out) - reference))
                                                       / np.max(np.abs(reference)))
            rows.append(row)
            emit(json.dumps(row))
    kernels._clear_caches()
    return rows


def table(rows: list[dict]) -> str:
    """Warm seconds per N for both methods and their ratio; the rule scaled by N^2 from the largest N it ran at
    where it did not run (marked ~)."""
    timed = {(r["n"], r["method"]): r for r in rows}
    ruled = [r for r in rows if r["method"] == "rule"]
    lines = [f"{'N':>6} {'series cold':>12} {'series warm':>12} {'2-D rule warm':>14} {'speedup':>9}"]
    for n in sorted({r["n"] for r in rows}):
        series = timed[(n, "series")]
        if (n, "rule") in timed:
            rule, mark = timed[(n, "rule")]["warm_seconds"], ""
        elif ruled:
            largest = max(ruled, key=lambda r: r["n"])
            rule, mark = largest["warm_seconds"] * (n / largest["n"]) ** 2, "~"
        else:
            rule, mark = float("nan"), ""
        speedup = mark + format(rule / series["warm_seconds"], ".0f") + "x"
        lines.append(f"{n:>6} {series['cold_seconds']:>11.3f}s {series['warm_seconds']:>11.3f}s "
                     f"{mark + format(rule, '.3f') + 's':>14} {speedup:>9}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[200, 1258])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rule-max-n", type=int, default=200, help="largest N timed with the 2-D rule")
    parser.add_argument("--spec", default=SPEC)
    args = parser.parse_args()
    rows = measure(args.n, args.repeats, args.rule_max_n, args.spec)
    print(table(rows))


if __name__ == "__main__":
    main()
