"""Bootstrap interval rules shared by the claims (proofs_check.registry) and the sweep (numerics.sweep).

The percentile bootstrap interval is too narrow over few samples; every interval here is read at Hesterberg's
expanded percentile tail (Hesterberg 2015, "What teachers should know about the bootstrap", The American
Statistician 69(4), Sec. 4.3).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def expanded_tail(level: float, samples: float, degrees_of_freedom: float | None = None) -> float:
    """The tail probability at which to read a ``level`` percentile bootstrap interval over ``samples`` samples:
    Phi(-sqrt(n / (n - 1)) t_df((1 + level) / 2)), df = n - 1 unless given (Hesterberg 2015, Sec. 4.3). The plain
    tail (1 - level) / 2 undercovers: a nominal 95% covered a slope 53% of the time with 2 seeds, 81% with 4, 90% with
    8 and 94% with 20 (simulation, statistics review); expanded, the tail is 0.012% at n = 4, 1.4% at 16 and 1.6% at
    20, against 2.5%. For a stratified design (each stratum's samples resampled alone), n is the strata's harmonic
    mean size (each stratum's resampling variance is (n_h - 1) / n_h of its own) and df their pooled sum of n_h - 1."""
    from scipy import stats

    if samples <= 1:
        raise ValueError(f"an expanded tail needs more than one sample, got {samples}")
    df = samples - 1 if degrees_of_freedom is None else degrees_of_freedom
    return float(stats.norm.cdf(-math.sqrt(samples / (samples - 1)) * stats.t.ppf((1 + level) / 2, df)))


def stratified_expanded_tail(level: float, sizes: list[int]) -> float:
    """:func:`expanded_tail` for strata of the given sizes, each resampled alone (strata of one sample are not
    resampled and do not count); the plain tail when no stratum has two samples. Harmonic mean size and pooled df:
    for the mean of 24 strata x 5 exponential samples (1500 trials of 1000 replicates, a review's simulation, rerun
    here) the plain tail covered 89.5%, the tail expanded at n = 5 alone 99.2% (1.5x too wide), this one 93.5%."""
    sizes = [n for n in sizes if n >= 2]
    if not sizes:
        return (1 - level) / 2
    harmonic = len(sizes) / sum(1.0 / n for n in sizes)
    return expanded_tail(level, harmonic, degrees_of_freedom=sum(n - 1 for n in sizes))


def percentile_interval(replicates: Any, tail: float, *, ignore_nan: bool = False) -> tuple[float, float]:
    """The (tail, 1 - tail) percentiles of bootstrap replicates (tail a probability, e.g. 0.025)."""
    reader = np.nanpercentile if ignore_nan else np.percentile
    low, high = reader(np.asarray(replicates, dtype=float), [100 * tail, 100 * (1 - tail)])
    return float(low), float(high)


def exact_rate_interval(count: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson 1934) two-sided ``level`` interval of a rate seen ``count`` times in ``trials``:
    the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of Beta(count, trials - count + 1) and
    Beta(count + 1, trials - count), with 0 and 1 at the ends (0 of 8: [0, 0.37]; 2 of 4: [0.068, 0.932])."""
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = 0.0 if count <= 0 else float(beta.ppf(tail, count, trials - count + 1))
    high = 1.0 if count >= trials else float(beta.ppf(1 - tail, count + 1, trials - count))
    return low, high
