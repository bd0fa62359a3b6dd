"""What counts as a revealed training point, and the trivial reconstructions every score is shown beside.

One definition, used by every report that scores an attack (``proofs-check attack``, the claims, the sweep):

    a private point p_i is *revealed* by reconstructions R when some r_j in R is ``factor`` times closer
    to p_i than to every point of a held-out public set Q from the same distribution:

        factor * d(r_j, p_i) <= min_{q in Q} d(r_j, q),     d(r, x) = min_{c >= 0} ||c r - x||

in the coordinates the network sees (digits: centred). The distance allows the best nonnegative rescaling of
the reconstruction because a bias-free ReLU network cannot determine it: Theta(c x, x') = c Theta(x, x')
(claim T1, counterexample (i)), so an attack on such a network recovers each point only up to that scale, and
a reconstruction of the right image at the wrong brightness still reveals the image. ``rescale=False`` gives
the plain L2 criterion.

For 8x8 digits Q is the test split. The criterion asks that a reconstruction identify *that* point, not
just look like a digit: a plausible image (the mean, a class mean, another digit) sits about as close to
some public digit as to any private one. SSIM >= 0.4 (Haim et al. 2022) does not ask that: on digits with
the mean added back, the mean image alone scores SSIM >= 0.4 against every digit.

Why ``DEFAULT_FACTOR = 2``, measured on 100 private digits of the training split against the 540-image test
split: the trivial reconstructions below (the mean image, 0.2 N(0, 1) noise plus the mean, the class
means, and even all 1157 other training digits as guesses) reveal 0%, with or without the rescaling; the
private digits themselves plus N(0, 0.05^2) per-pixel noise (L2 error 0.4, against a median
nearest-public-neighbour distance of 1.15) reveal 96%, and 96-98% when also scaled by 0.5 or 2. With
factor 1 the 1157 other training digits would "reveal" 76% (plain L2).

A limit of the rescaled criterion: d(r, p) <= ||p|| (c = 0), so a private point with ||p|| <= min_q d(r, q) / factor
is revealed by any r. On digits (centred) no point comes near: the smallest norm in the training split is 1.52,
twice it 3.03, while min_q d(r, q) of 200 noise reconstructions is at most 1.6 (median 1.52). On a dataset with
points near its centre the trivial reconstructions shown beside every score would reveal such points too.

Every score is reported next to the same score of :func:`trivial_reconstructions` (:func:`leakage_table`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.distance import cdist

from numerics.data import validate_points

DEFAULT_FACTOR = 2.0
"""Closeness factor of :func:`revealed` (module docstring: the measurement behind it)."""
NOISE_SCALE = 0.2
"""The noise baseline is the mean plus NOISE_SCALE * N(0, 1) per coordinate, the attack's initialization."""
SSIM_THRESHOLDS = (0.4, 0.9)
"""SSIM pass marks shown beside the revealed fraction: 0.4 (Haim et al. 2022, which trivial images pass on
digits) and 0.9."""


@dataclasses.dataclass(frozen=True, eq=False)
class Revealed:
    """Which private points reconstructions reveal (see the module docstring).

    Attributes:
      mask: (N,) True where private point i is revealed.
      ratio: (N,) the best closeness ratio min_q d(r_j, q) / d(r_j, p_i) over reconstructions j (inf when
        some r_j is a nonnegative multiple of p_i); revealed iff ratio >= factor.
      best_recon: (N,) the index j attaining ``ratio``.
      distance: (N,) d(r_j, p_i) for that j.
      factor: the closeness factor used.
    """

    mask: np.ndarray
    ratio: np.ndarray
    best_recon: np.ndarray
    distance: np.ndarray
    factor: float

    @property
    def fraction(self) -> float:
        return float(np.mean(self.mask))

    @property
    def count(self) -> int:
        return int(np.sum(self.mask))


def is_revealed(ratio: ArrayLike, factor: float) -> np.ndarray:
    """Which private points count as revealed, from their closeness ratios (:class:`Revealed`): ratio >= factor (the
    one statement of the rule, for :func:`revealed` and for what marks revealed points, e.g. reconstructions.png)."""
    return np.asarray(ratio, dtype=float) >= factor


def rescaled_distances(recon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """D[j, i] = min_{c >= 0} ||c r_j - x_i|| = sqrt(||x_i||^2 - max(<r_j, x_i>, 0)^2 / ||r_j||^2) (||x_i|| if r_j = 0)."""
    inner = recon @ points.T
    norms = np.sum(recon**2, axis=1)[:, None]
    explained = np.where(norms > 0, np.maximum(inner, 0.0) ** 2 / np.where(norms > 0, norms, 1.0), 0.0)
    return np.sqrt(np.maximum(np.sum(points**2, axis=1)[None, :] - explained, 0.0))


def relative_distances(recon: ArrayLike, private: ArrayLike) -> np.ndarray:
    """For each private point x_i: min_j min_{c >= 0} ||c r_j - x_i|| / ||x_i||, the sine of the angle between x_i and
    the nearest reconstruction's ray (1 when no reconstruction has a positive inner product with x_i).

    Scale-free, as the attack on a bias-free ReLU network is (module docstring): how well *that point's
    direction* was recovered, without the ||x_i|| that :func:`revealed`'s ratio and plain distances carry (on
    digits the small-norm points are the atypical ones, so a norm-dependent score ranks points by geometry alone).
    """
    r = validate_points(recon, name="recon").astype(np.float64)
    p = validate_points(private, name="private").astype(np.float64)
    if r.shape[1] != p.shape[1]:
        raise ValueError(f"recon and private must have the same dimension; got {r.shape[1]} and {p.shape[1]}")
    norms = np.linalg.norm(p, axis=1)
    if np.any(norms == 0):
        raise ValueError("private points must be nonzero: the relative distance of the origin is undefined")
    return rescaled_distances(r, p).min(axis=0) / norms


def revealed(recon: ArrayLike, private: ArrayLike, public: ArrayLike, *, factor: float = DEFAULT_FACTOR,
             rescale: bool = True) -> Revealed:
    """Private point i is revealed when some reconstruction r_j has factor d(r_j, p_i) <= min_q d(r_j, q).

    d(r, x) = min_{c >= 0} ||c r - x|| (``rescale=True``, the module docstring says why) or ||r - x||.
    ``recon`` (M x d), ``private`` (N x d), ``public`` (K x d) must be in the coordinates the network sees
    (the rescaling is about the origin of those coordinates).
    """
    r = validate_points(recon, name="recon").astype(np.float64)
    p = validate_points(private, name="private").astype(np.float64)
    q = validate_points(public, name="public").astype(np.float64)
    if not (r.shape[1] == p.shape[1] == q.shape[1]):
        raise ValueError(f"recon, private and public must have the same dimension; got {r.shape[1]}, "
                         f"{p.shape[1]} and {q.shape[1]}")
    if not (np.isfinite(factor) and factor >= 1):
        raise ValueError(f"factor must be a finite number >= 1, got {factor!r}")
    distance = rescaled_distances if rescale else cdist
    to_private = distance(r, p)                   # (M, N)
    to_public = distance(r, q).min(axis=1)        # (M,)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(to_private > 0, to_public[:, None] / np.where(to_private > 0, to_private, 1.0), np.inf)
    best = np.argmax(ratios, axis=0)
    columns = np.arange(p.shape[0])
    ratio = ratios[best, columns]
    return Revealed(mask=is_revealed(ratio, factor), ratio=ratio, best_recon=best, distance=to_private[best, columns],
                    factor=float(factor))


def class_means(points: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """The mean of each class's points, one row per class in the order of ``np.unique(labels)``: the one definition
    of "class means" (a trivial reconstruction of the pool here, a baseline training set and a defense elsewhere)."""
    points, labels = np.asarray(points, np.float64), np.asarray(labels)
    if labels.shape != (points.shape[0],):
        raise ValueError(f"labels must have shape ({points.shape[0]},), got {labels.shape}")
    return np.stack([points[labels == k].mean(axis=0) for k in np.unique(labels)])


def trivial_reconstructions(n_recon: int, *, pool: ArrayLike, mean: ArrayLike | None = None,
                            pool_labels: ArrayLike | None = None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Reconstructions that know the data distribution but nothing about the private set, ``n_recon`` each.

    ``pool`` holds points of the same distribution that are neither private nor public (digits: the rest of
    the training split), in the same coordinates as the attack's reconstructions; ``mean`` is the point
    the coordinates are centred on (default: the pool's mean). Returns, each as (n_recon, d):

    - ``mean image``: the mean, repeated;
    - ``noise + mean``: the mean plus NOISE_SCALE * N(0, 1) per coordinate (the attack's starting point);
    - ``class means`` (when ``pool_labels`` is given): the pool's class means, cycled;
    - ``held-out points``: ``n_recon`` distinct pool points drawn at random (all of the pool if smaller).
    """
    pool_arr = validate_points(pool, name="pool").astype(np.float64)
    if isinstance(n_recon, bool) or not isinstance(n_recon, (int, np.integer)) or n_recon < 1:
        raise ValueError(f"n_recon must be a positive integer, got {n_recon!r}")
    d = pool_arr.shape[1]
    centre = pool_arr.mean(axis=0) if mean is None else np.broadcast_to(np.asarray(mean, np.float64), (d,))
    out = {
        "mean image": np.tile(centre, (n_recon, 1)),
        "noise + mean": centre + NOISE_SCALE * rng.standard_normal((n_recon, d)),
    }
    if pool_labels is not None:
        labels = np.asarray(pool_labels)
        if labels.shape != (pool_arr.shape[0],):
            raise ValueError(f"pool_labels must have shape ({pool_arr.shape[0]},), got {labels.shape}")
        means = class_means(pool_arr, labels)
        out["class means"] = means[np.arange(n_recon) % means.shape[0]]
    take = rng.choice(pool_arr.shape[0], size=min(n_recon, pool_arr.shape[0]), replace=False)
    out["held-out points"] = pool_arr[take]
    return out


def leakage_scores(recon: ArrayLike, private: ArrayLike, public: ArrayLike, *, factor: float = DEFAULT_FACTOR,
                   image_shape: tuple[int, ...] | None = None, offset: ArrayLike | None = None) -> dict[str, Any]:
    """The revealed fraction and, for images, one-to-one (Hungarian) SSIM scores of one set of reconstructions.

    ``offset`` is added to every point before SSIM (digits: the dataset mean, so SSIM sees raw images).
    Returns ``revealed`` (fraction), ``revealed_count``, ``ratio`` (per private point, see :class:`Revealed`),
    and for images ``ssim_curve`` (best first) and ``ssim_ge_<t>`` for each of :data:`SSIM_THRESHOLDS`.
    """
    from numerics.metrics import match

    found = revealed(recon, private, public, factor=factor)
    scores: dict[str, Any] = {"revealed": found.fraction, "revealed_count": found.count, "factor": factor,
                              "ratio": found.ratio}
    if image_shape is not None:
        shift = 0.0 if offset is None else np.asarray(offset, np.float64)
        result = match(np.asarray(recon) + shift, np.asarray(private) + shift, metric="ssim", image_shape=image_shape)
        curve = np.asarray(result.curve, dtype=float)
        scores["ssim_curve"] = curve.tolist()
        for threshold in SSIM_THRESHOLDS:
            scores[f"ssim_ge_{threshold:g}"] = float(np.mean(curve >= threshold))
    return scores


def leakage_table(attack: Mapping[str, ArrayLike], private: ArrayLike, public: ArrayLike, *, pool: ArrayLike,
                  rng: np.random.Generator, mean: ArrayLike | None = None, pool_labels: ArrayLike | None = None,
                  factor: float = DEFAULT_FACTOR, image_shape: tuple[int, ...] | None = None,
                  offset: ArrayLike | None = None) -> dict[str, dict[str, Any]]:
    """:func:`leakage_scores` of each named attack result and of every trivial reconstruction beside it.

    The trivial reconstructions get as many points as the largest attack result. Rows are keyed by name;
    trivial rows carry ``"trivial": True``.
    """
    rows = {name: {**leakage_scores(recon, private, public, factor=factor, image_shape=image_shape, offset=offset),
                   "trivial": False} for name, recon in attack.items()}
    n_recon = max(np.asarray(recon).shape[0] for recon in attack.values()) if attack else np.asarray(private).shape[0]
    baselines = trivial_reconstructions(int(n_recon), pool=pool, mean=mean, pool_labels=pool_labels, rng=rng)
    for name, recon in baselines.items():
        rows[name] = {**leakage_scores(recon, private, public, factor=factor, image_shape=image_shape,
                                       offset=offset), "trivial": True}
    return rows
