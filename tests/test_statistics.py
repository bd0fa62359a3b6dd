"""The bootstrap interval rules (numerics.statistics): Hesterberg's expanded tail and its stratified form."""

import numpy as np
import pytest
from scipy import stats

from numerics.statistics import expanded_tail, percentile_interval, stratified_expanded_tail


def test_expanded_tail_is_hesterbergs_formula_and_tends_to_the_plain_tail():
    for n in (2, 4, 16, 200):
        expected = stats.norm.cdf(-np.sqrt(n / (n - 1)) * stats.t.ppf(0.975, n - 1))
        assert expanded_tail(0.95, n) == pytest.approx(expected, rel=1e-14)
    assert expanded_tail(0.95, 4) < expanded_tail(0.95, 16) < expanded_tail(0.95, 200) < 0.025
    assert expanded_tail(0.95, 10**6) == pytest.approx(0.025, rel=1e-3)
    with pytest.raises(ValueError, match="more than one sample"):
        expanded_tail(0.95, 1)


def test_a_single_stratum_is_the_plain_expanded_tail_and_more_strata_pool_their_degrees_of_freedom():
    assert stratified_expanded_tail(0.95, [5]) == pytest.approx(expanded_tail(0.95, 5), rel=1e-14)
    many = stratified_expanded_tail(0.95, [5] * 24)  # harmonic mean 5, df 96
    assert many == pytest.approx(expanded_tail(0.95, 5, degrees_of_freedom=96), rel=1e-14)
    assert expanded_tail(0.95, 5) < many < 0.025  # wider than plain, far narrower than 5 samples alone
    # unequal strata: the harmonic mean size; strata of one sample are not resampled and do not count
    assert stratified_expanded_tail(0.95, [2, 6, 1]) == pytest.approx(expanded_tail(0.95, 3, degrees_of_freedom=6))
    assert stratified_expanded_tail(0.95, [1, 1]) == pytest.approx(0.025, abs=1e-15)


def test_percentile_interval_reads_both_tails():
    values = np.arange(1001.0)
    assert percentile_interval(values, 0.025) == (25.0, 975.0)
    assert percentile_interval([np.nan, *values], 0.025, ignore_nan=True) == (25.0, 975.0)
