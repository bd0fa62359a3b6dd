"""Tests of numerics.metrics: one-to-one matching, its optimality, SSIM scoring, the curve, and bad input."""

import itertools

import numpy as np
import pytest
from hypothesis import example, given, strategies as st
from hypothesis.extra.numpy import arrays
from skimage.metrics import structural_similarity

from numerics.metrics import (DEFAULT_SSIM_THRESHOLD, fraction_passing, match, originals_data_range, pairwise_l2,
                              pairwise_ssim)

METHODS = ("hungarian", "greedy")
finite_values = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


def brute_force_total(score_matrix: np.ndarray, *, maximize: bool) -> float:
    """Best total score over every one-to-one assignment of min(M, N) pairs (plain enumeration)."""
    m, n = score_matrix.shape
    if m >= n:
        totals = [sum(score_matrix[rows[j], j] for j in range(n)) for rows in itertools.permutations(range(m), n)]
    else:
        totals = [sum(score_matrix[i, cols[i]] for i in range(m)) for cols in itertools.permutations(range(n), m)]
    return max(totals) if maximize else min(totals)


def random_images(rng: np.random.Generator, count: int, shape=(8, 8)) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=(count, int(np.prod(shape))))


# ------------------------------------------------------------------------------------------------------------
# pairwise scores
# ------------------------------------------------------------------------------------------------------------


def test_pairwise_l2_matches_direct_norms():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((3, 5))
    expected = np.array([[np.linalg.norm(ai - bj) for bj in b] for ai in a])
    # Both compute sqrt(sum of squared differences); only the summation order may differ.
    np.testing.assert_allclose(pairwise_l2(a, b), expected, rtol=1e-14)


def test_pairwise_l2_is_exactly_zero_on_identical_points():
    x = np.random.default_rng(1).standard_normal((5, 7)) * 1e3
    assert np.all(np.diag(pairwise_l2(x, x)) == 0.0)


def test_pairwise_ssim_uses_skimage_with_originals_data_range():
    rng = np.random.default_rng(2)
    a, b = random_images(rng, 2), random_images(rng, 3) * 2.0 - 0.5
    data_range = b.max() - b.min()
    assert originals_data_range(b) == data_range
    expected = np.array([[structural_similarity(ai.reshape(8, 8), bj.reshape(8, 8), data_range=data_range)
                          for bj in b] for ai in a])
    # All pairs at once vs one skimage call per pair: scipy's filter and skimage's formula in their operation order,
    # so the results are bitwise identical
    np.testing.assert_array_equal(pairwise_ssim(a, b, image_shape=(8, 8)), expected)


# ------------------------------------------------------------------------------------------------------------
# exact recovery and optimality
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("metric", ["l2", "ssim"])
def test_a_permutation_of_the_originals_is_recovered_exactly(metric, method):
    rng = np.random.default_rng(3)
    originals = random_images(rng, 6)
    permutation = rng.permutation(6)
    result = match(originals[permutation], originals, metric=metric, method=method, image_shape=(8, 8))
    np.testing.assert_array_equal(result.original_index, np.arange(6))
    np.testing.assert_array_equal(permutation[result.recon_index], np.arange(6))
    perfect = 0.0 if metric == "l2" else 1.0
    assert np.all(result.scores == perfect)
    assert result.fraction_good == (None if metric == "l2" else 1.0)


def test_ssim_of_an_image_with_itself_is_one_in_color_too():
    images = random_images(np.random.default_rng(4), 2, shape=(9, 9, 3))
    result = match(images, images, metric="ssim", image_shape=(9, 9, 3))
    assert np.all(result.scores == 1.0)


@pytest.mark.parametrize("shape_m, shape_n", [(3, 3), (4, 2), (2, 4), (1, 3)])
@given(data=st.data())
@example(data=None)
def test_hungarian_l2_is_optimal_against_brute_force(shape_m, shape_n, data):
    if data is None:  # pinned edge case: all reconstructions equal, every assignment ties
        recon, originals = np.zeros((shape_m, 2)), np.arange(2.0 * shape_n).reshape(shape_n, 2)
    else:
        recon = data.draw(arrays(np.float64, (shape_m, 2), elements=finite_values))
        originals = data.draw(arrays(np.float64, (shape_n, 2), elements=finite_values))
    result = match(recon, originals, metric="l2", method="hungarian")
    assert result.n_pairs == min(shape_m, shape_n)
    assert len(set(result.recon_index)) == len(set(result.original_index)) == result.n_pairs
    best = brute_force_total(pairwise_l2(recon, originals), maximize=False)
    # Two sums of the same <= 12 distances (each <= ~30) in different orders: round-off ~1e-14 absolute.
    assert result.total_score == pytest.approx(best, rel=1e-12, abs=1e-12)
    greedy = match(recon, originals, metric="l2", method="greedy")
    # The greedy total can only be worse; same round-off allowance as above.
    assert greedy.total_score >= best - 1e-12


def test_hungarian_ssim_maximizes_total_similarity_against_brute_force():
    rng = np.random.default_rng(5)
    originals = random_images(rng, 3)
    recon = 0.5 * originals[[2, 0, 1]] + 0.5 * random_images(rng, 3)
    result = match(recon, originals, metric="ssim", method="hungarian", image_shape=(8, 8))
    best = brute_force_total(pairwise_ssim(recon, originals, image_shape=(8, 8)), maximize=True)
    # Sums of the same three SSIM values (each in [-1, 1]) in different orders.
    assert result.total_score == pytest.approx(best, rel=1e-13)
    np.testing.assert_array_equal(result.recon_index, [1, 2, 0])


def test_greedy_equals_hungarian_when_points_are_well_separated():
    rng = np.random.default_rng(6)
    originals = 10.0 * np.eye(6)  # pairwise distances 10 * sqrt(2)
    permutation = rng.permutation(6)
    recon = originals[permutation] + rng.uniform(-0.1, 0.1, size=(6, 6))  # each within 0.25 of its original
    greedy = match(recon, originals, method="greedy")
    hungarian = match(recon, originals, method="hungarian")
    np.testing.assert_array_equal(greedy.recon_index, hungarian.recon_index)
    np.testing.assert_array_equal(permutation[greedy.recon_index], np.arange(6))


def test_greedy_can_be_worse_than_hungarian():
    # Originals at 0 and 2; r0 = 0.9 is closest to original 0 (0.9) and nearly as close to original 2 (1.1);
    # r1 = -1 is 1 from original 0 but 3 from original 2. Greedy takes (r0, o0) first: 0.9 + 3 = 3.9;
    # the optimum crosses over: 1.1 + 1 = 2.1.
    recon, originals = np.array([[0.9], [-1.0]]), np.array([[0.0], [2.0]])
    greedy = match(recon, originals, method="greedy")
    hungarian = match(recon, originals, method="hungarian")
    np.testing.assert_array_equal(greedy.recon_index, [0, 1])
    np.testing.assert_array_equal(hungarian.recon_index, [1, 0])
    # Each total is a sum of two float64 differences of short decimals: exact up to round-off.
    assert greedy.total_score == pytest.approx(3.9, rel=1e-15)
    assert hungarian.total_score == pytest.approx(2.1, rel=1e-15)
    assert greedy.max_distance == pytest.approx(3.0, rel=1e-15)
    assert hungarian.max_distance == pytest.approx(1.1, rel=1e-15)


def test_greedy_breaks_ties_by_smallest_index():
    result = match(np.zeros((3, 2)), np.zeros((2, 2)), method="greedy")
    np.testing.assert_array_equal(result.recon_index, [0, 1])
    np.testing.assert_array_equal(result.original_index, [0, 1])


# ------------------------------------------------------------------------------------------------------------
# curve, unmatched originals, thresholds
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@given(recon=arrays(np.float64, (5, 3), elements=finite_values),
       originals=arrays(np.float64, (4, 3), elements=finite_values))
def test_curve_is_the_sorted_per_original_scores(method, recon, originals):
    result = match(recon, originals, method=method, threshold=5.0)
    assert np.all(np.diff(result.curve) >= 0)
    np.testing.assert_array_equal(result.curve, np.sort(result.original_scores))
    np.testing.assert_array_equal(result.original_scores[result.original_index], result.scores)
    assert result.fraction_good == np.mean(result.original_scores <= 5.0)
    assert result.max_distance == result.scores.max()


def test_ssim_curve_is_sorted_best_first():
    rng = np.random.default_rng(7)
    originals = random_images(rng, 4)
    recon = originals + rng.normal(0.0, [[0.01], [0.1], [0.3], [1.0]], size=(4, 64))
    result = match(recon, originals, metric="ssim", image_shape=(8, 8))
    assert np.all(np.diff(result.curve) <= 0)
    assert result.curve[0] == result.scores.max()


@pytest.mark.parametrize("metric, worst", [("l2", np.inf), ("ssim", -1.0)])
@pytest.mark.parametrize("method", METHODS)
def test_originals_left_unmatched_get_the_worst_score(metric, worst, method):
    rng = np.random.default_rng(8)
    originals = random_images(rng, 5)
    recon = originals[[3, 1]]
    result = match(recon, originals, metric=metric, method=method, image_shape=(8, 8), threshold=0.5)
    assert result.n_pairs == 2
    np.testing.assert_array_equal(result.original_index, [1, 3])
    np.testing.assert_array_equal(result.recon_index, [1, 0])
    unmatched = [0, 2, 4]
    assert np.all(result.original_scores[unmatched] == worst)
    np.testing.assert_array_equal(result.curve[2:], [worst] * 3)
    assert result.fraction_good == 2 / 5  # counted over the five originals, not the two pairs


def test_more_reconstructions_than_originals_matches_every_original():
    rng = np.random.default_rng(9)
    originals = rng.standard_normal((3, 4))
    recon = np.concatenate([rng.standard_normal((5, 4)) + 50.0, originals[::-1]])
    result = match(recon, originals)
    np.testing.assert_array_equal(result.recon_index, [7, 6, 5])
    assert result.max_distance == 0.0


def test_default_thresholds():
    images = random_images(np.random.default_rng(10), 3)
    assert match(images, images, metric="ssim", image_shape=(8, 8)).threshold == DEFAULT_SSIM_THRESHOLD
    l2 = match(images, images)
    assert l2.threshold is None and l2.fraction_good is None


def test_fraction_passing_direction_depends_on_metric():
    scores = np.array([0.1, 0.4, 0.7])
    assert fraction_passing(scores, metric="ssim", threshold=0.4) == 2 / 3  # SSIM >= 0.4 passes
    assert fraction_passing(scores, metric="l2", threshold=0.4) == 2 / 3  # distance <= 0.4 passes
    assert fraction_passing(np.array([np.inf, 0.0]), metric="l2", threshold=1.0) == 0.5


# ------------------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recon, originals, kwargs, message", [
    (np.zeros(4), np.zeros((2, 4)), {}, "recon must be 2-D"),
    (np.zeros((2, 4)), np.zeros((2, 2, 2)), {}, "originals must be 2-D"),
    (np.zeros((0, 4)), np.zeros((2, 4)), {}, "recon is empty"),
    (np.zeros((2, 4)), np.zeros((0, 4)), {}, "originals is empty"),
    (np.zeros((2, 4)), np.zeros((2, 5)), {}, "same feature dimension"),
    (np.array([[0.0, np.nan]]), np.zeros((2, 2)), {}, r"recon contains NaN in rows \[0\]"),
    (np.zeros((2, 2)), np.array([[0.0, 0.0], [np.inf, 0.0]]), {}, r"originals contains inf in rows \[1\]"),
    (np.array([["a", "b"]]), np.zeros((1, 2)), {}, "real numeric"),
    (np.zeros((2, 4)), np.zeros((2, 4)), {"metric": "cosine"}, "unknown metric 'cosine'"),
    (np.zeros((2, 4)), np.zeros((2, 4)), {"method": "auction"}, "unknown method 'auction'"),
    (np.zeros((2, 64)), np.ones((2, 64)), {"metric": "ssim"}, "needs image_shape"),
    (np.zeros((2, 64)), np.ones((2, 64)), {"metric": "ssim", "image_shape": (8, 7)}, "has 56 pixels"),
    (np.zeros((2, 36)), np.ones((2, 36)), {"metric": "ssim", "image_shape": (6, 6)}, "sides must be >= 7"),
    (np.zeros((2, 64)), np.ones((2, 64)), {"metric": "ssim", "image_shape": (8, 8)}, "originals are constant"),
    (np.zeros((2, 64)), np.eye(2, 64), {"metric": "ssim", "image_shape": (8, 8), "threshold": 1.5}, r"\[-1, 1\]"),
    (np.zeros((2, 4)), np.zeros((2, 4)), {"threshold": -1.0}, "must be >= 0"),
    (np.zeros((2, 4)), np.zeros((2, 4)), {"threshold": np.nan}, "must be finite"),
    (np.full((1, 1), 1e200), np.full((1, 1), -1e200), {}, "overflowed"),
])
def test_bad_input_is_named(recon, originals, kwargs, message):
    with pytest.raises(ValueError, match=message):
        match(recon, originals, **kwargs)
