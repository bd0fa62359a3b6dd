"""Scoring a reconstruction: one-to-one matching of reconstructions to originals, and the curve.

An attack returns M candidate points X_R; the training set has N points X_T. Each original is paired with
at most one reconstruction and vice versa (min(M, N) pairs), either optimally (Hungarian algorithm,
``scipy.optimize.linear_sum_assignment``) or greedily (repeatedly take the best remaining pair, as the
code of Loo et al. 2023, arXiv 2302.01428, did). Pairs are scored by Euclidean distance (lower is better)
or by SSIM (Wang et al. 2004, as ``skimage.metrics.structural_similarity``, all pairs at once; higher is better). The
per-original scores sorted best-first form the "reconstruction curve"; Haim et al. 2022
(arXiv 2206.07758) count a reconstruction as good at SSIM >= 0.4.

Example::

    result = match(x_recon, x_train, metric="ssim", image_shape=(8, 8))
    result.curve          # per-original SSIM, best first
    result.fraction_good  # fraction of originals with SSIM >= 0.4
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from skimage.metrics import structural_similarity

from numerics.data import validate_points

Metric = Literal["l2", "ssim"]
Method = Literal["hungarian", "greedy"]

METRICS: tuple[str, ...] = ("l2", "ssim")
METHODS: tuple[str, ...] = ("hungarian", "greedy")
DEFAULT_SSIM_THRESHOLD = 0.4
"""Haim et al. 2022 (arXiv 2206.07758) call a reconstruction good at SSIM >= 0.4."""
WORST_SCORE: dict[str, float] = {"l2": float("inf"), "ssim": -1.0}
"""The score given to an original that no reconstruction was matched to (possible when M < N)."""
SSIM_MIN_SIDE = 7
"""skimage's default SSIM window is 7 x 7, so each image side must be at least 7 pixels."""


@dataclasses.dataclass(frozen=True, eq=False)
class MatchResult:
    """A one-to-one matching of M reconstructions to N originals, with its scores.

    Attributes:
      metric, method: how the pairs were scored and chosen.
      recon_index, original_index: the min(M, N) matched pairs, ``recon[recon_index[k]]`` is paired
        with ``originals[original_index[k]]``; sorted by ``original_index``.
      scores: the score of each matched pair (L2 distance, or SSIM).
      original_scores: (N,) the score of each original; originals left unmatched (M < N) get the worst
        possible score (``inf`` for l2, ``-1`` for ssim).
      curve: ``original_scores`` sorted best-first (ascending for l2, descending for ssim).
      threshold: the pass mark used for ``fraction_good`` (None for l2 when none was given).
      fraction_good: fraction of the N originals whose score passes ``threshold`` (l2: distance <=
        threshold; ssim: SSIM >= threshold); None when ``threshold`` is None.
      max_distance: for l2, the largest distance over the matched pairs; None for ssim.
    """

    metric: str
    method: str
    recon_index: np.ndarray
    original_index: np.ndarray
    scores: np.ndarray
    original_scores: np.ndarray
    curve: np.ndarray
    threshold: float | None
    fraction_good: float | None
    max_distance: float | None

    @property
    def n_pairs(self) -> int:
        return int(self.recon_index.shape[0])

    @property
    def total_score(self) -> float:
        """Sum of the matched pairs' scores: what the Hungarian method minimizes (l2) or maximizes (ssim)."""
        return float(np.sum(self.scores))


def _points(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` checked by :func:`numerics.data.validate_points`, as float64."""
    return validate_points(x, name=name).astype(np.float64)


def pairwise_l2(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Euclidean distances D[i, j] = ||a_i - b_j||_2 for a (M x d) and b (N x d); an (M x N) array.

    Computed from the differences (``scipy.spatial.distance.cdist``), not from ||a||^2 + ||b||^2 - 2 a.b,
    so identical points give exactly 0 and there is no cancellation to clip.
    """
    a_arr = _points(a, "a")
    b_arr = _points(b, "b")
    if a_arr.shape[1] != b_arr.shape[1]:
        raise ValueError(f"a and b must have the same feature dimension; got {a_arr.shape[1]} and {b_arr.shape[1]}")
    distances = cdist(a_arr, b_arr, metric="euclidean")
    if not np.all(np.isfinite(distances)):
        raise ValueError("pairwise distances overflowed to inf; the inputs are too large in magnitude")
    return distances


def _check_image_shape(image_shape: tuple[int, ...] | None, d: int) -> tuple[int, ...]:
    if image_shape is None:
        raise ValueError("metric 'ssim' needs image_shape, e.g. (8, 8) for digits or (32, 32, 3) for CIFAR-10")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"image_shape must be (H, W) or (H, W, channels); got {image_shape}")
    if int(np.prod(shape)) != d:
        raise ValueError(f"image_shape {shape} has {int(np.prod(shape))} pixels but the points have {d} features")
    if min(shape[:2]) < SSIM_MIN_SIDE:
        raise ValueError(f"SSIM uses a {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} window, so image sides must be >= "
                         f"{SSIM_MIN_SIDE}; got image_shape {shape}")
    return shape


def originals_data_range(originals: ArrayLike) -> float:
    """The SSIM data range: max minus min over all entries of all originals (one number for every pair)."""
    arr = np.asarray(originals, dtype=np.float64)
    data_range = float(arr.max() - arr.min())
    if not data_range > 0:
        raise ValueError("the originals are constant (max == min), so SSIM's data range would be 0")
    return data_range


SSIM_K1, SSIM_K2 = 0.01, 0.03
"""scikit-image's (and Wang et al. 2004's) stabilizing constants: C1 = (K1 R)^2, C2 = (K2 R)^2, R the data range."""
SSIM_CHUNK_ELEMENTS = 2**24
"""Floats per block of the pairwise cross terms (128 MiB in float64): bounds the memory of :func:`pairwise_ssim`."""


def _reflected_window_sums(x: np.ndarray, size: int, axis: int, keep: range) -> np.ndarray:
    """scipy.ndimage.uniform_filter1d(x, size, axis, mode="reflect") at the output positions ``keep`` (a range
    starting at >= 0), with scipy's operations in scipy's order: a running window sum over the half-sample
    reflected line (d c b a | a b c d | d c b a), divided by ``size`` at each output. The same order keeps the
    round-off the same as scikit-image's, which matters for nearly constant images, where SSIM subtracts nearly
    equal moments. ``axis`` is -1 or -2; the other axes are vectorized over."""
    length = x.shape[axis]
    left = size // 2
    line = [min(max(k - left, -k + left - 1), 2 * length - 1 - (k - left)) for k in range(length + size - 1)]
    take = (lambda k: x[..., k, :]) if axis == -2 else (lambda k: x[..., k])
    total = take(line[0])
    for k in range(1, size):
        total = total + take(line[k])
    outputs = {0: total / size} if 0 in keep else {}
    for k in range(1, keep[-1] + 1):
        total = total + (take(line[k + size - 1]) - take(line[k - 1]))
        if k in keep:
            outputs[k] = total / size
    return np.stack([outputs[k] for k in keep], axis=axis)


def _window_means(images: np.ndarray, win: int) -> np.ndarray:
    """scipy.ndimage.uniform_filter(images, win) over the last two axes (rows, then columns) at the positions
    scikit-image keeps ((win - 1) / 2 pixels cropped off each border), flattened: (..., positions)."""
    pad = (win - 1) // 2
    rows = _reflected_window_sums(images, win, -2, range(pad, images.shape[-2] - pad))
    both = _reflected_window_sums(rows, win, -1, range(pad, images.shape[-1] - pad))
    return both.reshape(*images.shape[:-2], -1)


def _ssim_gray(a: np.ndarray, b: np.ndarray, data_range: float, win: int) -> np.ndarray:
    """SSIM of every pair (a_i, b_j) of gray images (M, H, W), (N, H, W): (M, N), scikit-image's formula and
    operation order (Wang et al. 2004, sample covariance), the mean over the kept window positions."""
    cov_norm = win**2 / (win**2 - 1)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ux, uy = _window_means(a, win), _window_means(b, win)                      # (M, P), (N, P)
    vx = cov_norm * (_window_means(a * a, win) - ux * ux)
    vy = cov_norm * (_window_means(b * b, win) - uy * uy)
    m, n = a.shape[0], b.shape[0]
    out = np.empty((m, n))
    step = max(1, SSIM_CHUNK_ELEMENTS // max(1, n * a.shape[1] * a.shape[2]))
    for start in range(0, m, step):
        block = slice(start, start + step)
        uxy = _window_means(a[block, None] * b[None], win)                     # (m_b, N, P)
        ux_b, vx_b = ux[block, None, :], vx[block, None, :]
        vxy = cov_norm * (uxy - ux_b * uy[None])
        numerator = (2 * ux_b * uy[None] + c1) * (2 * vxy + c2)
        denominator = (ux_b**2 + uy[None] ** 2 + c1) * (vx_b + vy[None] + c2)
        out[block] = np.mean(numerator / denominator, axis=-1)
    return out


def pairwise_ssim(a: ArrayLike, b: ArrayLike, *, image_shape: tuple[int, ...],
                  data_range: float | None = None) -> np.ndarray:
    """S[i, j] = SSIM(a_i, b_j) for flattened images a (M x d), b (N x d); an (M x N) array.

    SSIM as scikit-image's ``structural_similarity`` with its defaults (Wang et al. 2004: 7 x 7 uniform window,
    sample covariance, K1 = 0.01, K2 = 0.03, the mean over the window positions that fit inside the image);
    a 3-D ``image_shape`` is (H, W, channels), channels last, and the channel SSIMs are averaged.
    ``data_range`` defaults to :func:`originals_data_range` of ``b``. All pairs at once: the window means of the
    pair products a_i * b_j for a block of rows of ``a`` at a time (SSIM_CHUNK_ELEMENTS floats), with
    scipy's uniform filter and scikit-image's formula in their operation order, so that even nearly constant
    images (where SSIM subtracts nearly equal moments) agree with scikit-image to round-off
    (tests/test_ssim_vectorized.py: <= 1e-10 on every pair).
    """
    a_arr = _points(a, "a")
    b_arr = _points(b, "b")
    if a_arr.shape[1] != b_arr.shape[1]:
        raise ValueError(f"a and b must have the same feature dimension; got {a_arr.shape[1]} and {b_arr.shape[1]}")
    shape = _check_image_shape(image_shape, a_arr.shape[1])
    if data_range is None:
        data_range = originals_data_range(b_arr)
    elif not (np.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number; got {data_range}")
    channels = shape[2] if len(shape) == 3 else 1
    images_a = a_arr.reshape(a_arr.shape[0], shape[0], shape[1], channels)
    images_b = b_arr.reshape(b_arr.shape[0], shape[0], shape[1], channels)
    total = sum(_ssim_gray(np.ascontiguousarray(images_a[..., c]), np.ascontiguousarray(images_b[..., c]),
                           float(data_range), SSIM_MIN_SIDE) for c in range(channels))
    return total / channels


def pairwise_ssim_reference(a: ArrayLike, b: ArrayLike, *, image_shape: tuple[int, ...],
                            data_range: float | None = None) -> np.ndarray:
    """:func:`pairwise_ssim` by one scikit-image ``structural_similarity`` call per pair: the reference that
    the vectorized version is tested and benchmarked against (about 0.2 ms per pair for 8 x 8 images)."""
    a_arr = _points(a, "a")
    b_arr = _points(b, "b")
    shape = _check_image_shape(image_shape, a_arr.shape[1])
    data_range = originals_data_range(b_arr) if data_range is None else data_range
    channel_axis = -1 if len(shape) == 3 else None
    images_a = a_arr.reshape((-1, *shape))
    images_b = b_arr.reshape((-1, *shape))
    similarity = np.empty((a_arr.shape[0], b_arr.shape[0]))
    for i, image_a in enumerate(images_a):
        for j, image_b in enumerate(images_b):
            similarity[i, j] = structural_similarity(image_a, image_b, data_range=data_range,
                                                     channel_axis=channel_axis)
    return similarity


def _greedy_assignment(scores: np.ndarray, *, maximize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Repeatedly take the globally best remaining (row, column) pair; ties go to the smaller flat index."""
    flat_order = np.argsort(-scores if maximize else scores, axis=None, kind="stable")
    n_pairs = min(scores.shape)
    row_taken = np.zeros(scores.shape[0], dtype=bool)
    col_taken = np.zeros(scores.shape[1], dtype=bool)
    rows, cols = [], []
    for flat in flat_order:
        row, col = divmod(int(flat), scores.shape[1])
        if row_taken[row] or col_taken[col]:
            continue
        row_taken[row] = col_taken[col] = True
        rows.append(row)
        cols.append(col)
        if len(rows) == n_pairs:
            break
    return np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)


def fraction_passing(scores: ArrayLike, *, metric: Metric, threshold: float) -> float:
    """Fraction of ``scores`` that pass ``threshold``: distance <= threshold (l2), SSIM >= threshold (ssim).

    Pass the per-original scores (or the curve) to get the fraction of originals reconstructed well.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array; got shape {values.shape}")
    passing = values <= threshold if metric == "l2" else values >= threshold
    return float(np.mean(passing))


def _check_threshold(metric: str, threshold: float | None) -> float | None:
    if threshold is None:
        return DEFAULT_SSIM_THRESHOLD if metric == "ssim" else None
    value = float(threshold)
    if not np.isfinite(value):
        raise ValueError(f"threshold must be finite; got {threshold}")
    if metric == "l2" and value < 0:
        raise ValueError(f"an l2 threshold is a distance and must be >= 0; got {threshold}")
    if metric == "ssim" and not -1.0 <= value <= 1.0:
        raise ValueError(f"an SSIM threshold must lie in [-1, 1]; got {threshold}")
    return value


def match(recon: ArrayLike, originals: ArrayLike, *, metric: Metric = "l2", method: Method = "hungarian",
          image_shape: tuple[int, ...] | None = None, threshold: float | None = None) -> MatchResult:
    """Match reconstructions (M x d) one-to-one to originals (N x d) and score the pairs.

    Score matrix: S[i, j] = ||recon_i - original_j||_2 (metric "l2", lower is better) or
    SSIM(recon_i, original_j) on images of ``image_shape`` (metric "ssim", higher is better; data range =
    max - min over all entries of ``originals``, see :func:`pairwise_ssim`). Method "hungarian" picks the
    min(M, N) pairs that minimize the summed distance / maximize the summed SSIM
    (``scipy.optimize.linear_sum_assignment``); "greedy" repeatedly takes the best remaining pair, as Loo
    et al.'s code did, and can be worse. ``threshold`` sets the pass mark of ``fraction_good``: default
    0.4 for SSIM (Haim et al. 2022); for l2 there is no default (``fraction_good`` is then None).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    recon_arr = _points(recon, "recon")
    originals_arr = _points(originals, "originals")
    if recon_arr.shape[1] != originals_arr.shape[1]:
        raise ValueError(f"recon and originals must have the same feature dimension; got "
                         f"{recon_arr.shape[1]} and {originals_arr.shape[1]}")
    threshold = _check_threshold(metric, threshold)
    maximize = metric == "ssim"
    if metric == "l2":
        if image_shape is not None and int(np.prod(image_shape)) != recon_arr.shape[1]:
            raise ValueError(f"image_shape {tuple(image_shape)} has {int(np.prod(image_shape))} pixels but the "
                             f"points have {recon_arr.shape[1]} features")
        score_matrix = pairwise_l2(recon_arr, originals_arr)
    else:
        score_matrix = pairwise_ssim(recon_arr, originals_arr, image_shape=image_shape)

    if method == "hungarian":
        rows, cols = linear_sum_assignment(score_matrix, maximize=maximize)
    else:
        rows, cols = _greedy_assignment(score_matrix, maximize=maximize)
    by_original = np.argsort(cols, kind="stable")
    recon_index = np.asarray(rows[by_original], dtype=np.intp)
    original_index = np.asarray(cols[by_original], dtype=np.intp)
    pair_scores = score_matrix[recon_index, original_index]

    original_scores = np.full(originals_arr.shape[0], WORST_SCORE[metric])
    original_scores[original_index] = pair_scores
    curve = np.sort(original_scores)
    if maximize:
        curve = curve[::-1].copy()
    fraction_good = None if threshold is None else fraction_passing(original_scores, metric=metric,
                                                                     threshold=threshold)
    max_distance = float(np.max(pair_scores)) if metric == "l2" else None
    for array in (recon_index, original_index, pair_scores, original_scores, curve):
        array.setflags(write=False)
    return MatchResult(metric=metric, method=method, recon_index=recon_index, original_index=original_index,
                       scores=pair_scores, original_scores=original_scores, curve=curve, threshold=threshold,
                       fraction_good=fraction_good, max_distance=max_distance)
