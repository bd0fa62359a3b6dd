"""numerics.metrics.pairwise_ssim (all pairs in one batched computation) equals scikit-image's
structural_similarity, called once per pair with the same window and data range, on every pair."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.metrics import structural_similarity

from numerics import metrics
from numerics.metrics import pairwise_ssim, pairwise_ssim_reference

TOLERANCE = 1e-10
"""The issue's bar. pairwise_ssim repeats scipy's filter and scikit-image's formula operation by operation (measured:
bitwise equal on 8 x 8 images); larger windows of positions may average in another order (~1e-16)."""


def _skimage(a, b, shape, data_range):
    channel_axis = -1 if len(shape) == 3 else None
    return np.array([[structural_similarity(ai.reshape(shape), bj.reshape(shape), data_range=data_range,
                                            channel_axis=channel_axis) for bj in b] for ai in a])


@settings(max_examples=10)
@given(a=arrays(np.float64, (3, 64), elements=st.floats(0, 16)), b=arrays(np.float64, (4, 64), elements=st.floats(0, 16)))
@example(a=np.zeros((3, 64)), b=np.tile(np.arange(64.0), (4, 1)))  # constant images against a ramp
def test_gray_images_equal_skimage(a, b):
    if np.ptp(b) == 0:
        b = b + np.eye(4, 64)
    data_range = float(np.ptp(b))
    np.testing.assert_allclose(pairwise_ssim(a, b, image_shape=(8, 8)), _skimage(a, b, (8, 8), data_range),
                               rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("shape", [(9, 11), (10, 9, 3), (7, 7)])
def test_other_shapes_and_color_equal_skimage(shape):
    rng = np.random.default_rng(sum(shape))
    d = int(np.prod(shape))
    a, b = rng.uniform(size=(4, d)), rng.uniform(-1, 2, size=(5, d))
    np.testing.assert_allclose(pairwise_ssim(a, b, image_shape=shape, data_range=2.5),
                               _skimage(a, b, shape, 2.5), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(pairwise_ssim_reference(a, b, image_shape=shape, data_range=2.5),
                               _skimage(a, b, shape, 2.5), rtol=0, atol=0)  # the same skimage calls


def test_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=(7, 64)), rng.uniform(size=(5, 64))
    whole = pairwise_ssim(a, b, image_shape=(8, 8))
    monkeypatch.setattr(metrics, "SSIM_CHUNK_ELEMENTS", 1)  # one row of a per block
    np.testing.assert_array_equal(pairwise_ssim(a, b, image_shape=(8, 8)), whole)


def test_identical_images_score_one():
    rng = np.random.default_rng(4)
    a = rng.uniform(size=(6, 64))
    # SSIM(x, x) = 1: numerator and denominator are the same float64 operations on equal numbers
    assert np.all(np.diag(pairwise_ssim(a, a, image_shape=(8, 8))) == 1.0)
