"""Auditing a model's leakage end to end: train (or load) a network, attack it, score and draw the result.

The pipeline behind ``proofs-check attack``:

1. data: a named dataset (:func:`load_dataset`), e.g. scikit-learn's 8x8 digits, odd vs even;
2. model: full-batch heavy-ball training of a fresh network on it (:func:`train_on`), linearized (the
   exact NTK regime) or standard; or theta_0 / theta_f loaded from a saved ``.npz``;
3. attack: Loo et al.'s parameter-space attack (arXiv:2302.01428) with M reconstructions;
4. score: one-to-one matching to the training points (SSIM for images, L2 otherwise), the sorted
   reconstruction curve, a PNG grid of reconstructions beside their matches, the curve as a PNG and the
   metrics as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from numerics.data import Dataset, digits, sphere
from numerics.metrics import MatchResult, match
from numerics.networks import make_network
from numerics.training import TrainResult, ntk_matrix, train
from theory.architecture import Architecture

DATASETS = ("digits-odd-even", "digits-ten-class", "sphere")


def load_dataset(name: str, n: int, *, seed: int = 0, d: int = 10) -> Dataset:
    """A named training set of ``n`` distinct points: digits-odd-even, digits-ten-class or sphere (in R^d)."""
    if name == "digits-odd-even":
        return digits(task="odd_even", n=n, seed=seed)
    if name == "digits-ten-class":
        return digits(task="ten_class", n=n, seed=seed)
    if name == "sphere":
        return sphere(n, d, seed=seed)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def train_on(arch: Architecture, width: int, dataset: Dataset, *, linearized: bool, seed: int = 0,
             max_steps: int = 20_000, loss_threshold: float = 1e-10, momentum: float = 0.9,
             progress: bool = True) -> TrainResult:
    """Heavy-ball full-batch training on the MSE loss with step size 1 / lambda_max(K_0).

    With momentum 0.9 the iteration is stable for eta lambda_max < 2 (1 + momentum); 1 / lambda_max leaves
    a wide margin for the drift of the kernel in standard (non-linearized) training.
    """
    network = make_network(arch, width, dataset.y.shape[1])
    params_0 = network.init(jax.random.PRNGKey(seed), dataset.x.shape[1])
    lambda_max = float(np.linalg.eigvalsh(np.asarray(ntk_matrix(network, params_0, dataset.x)))[-1])
    return train(network, params_0, dataset.x, dataset.y, learning_rate=1.0 / lambda_max, momentum=momentum,
                 linearized=linearized, max_steps=max_steps, loss_threshold=loss_threshold, progress=progress)


def score(x_recon: np.ndarray, dataset: Dataset) -> MatchResult:
    """Hungarian matching: SSIM on images (good at >= 0.4, Haim et al.), L2 distance otherwise."""
    if dataset.image_shape is not None:
        recon_images = x_recon + dataset.mean
        original_images = dataset.x + dataset.mean
        return match(recon_images, original_images, metric="ssim", image_shape=dataset.image_shape)
    return match(x_recon, dataset.x, metric="l2", threshold=0.1)


def reconstruction_grid(path: Path, x_recon: np.ndarray, dataset: Dataset, result: MatchResult) -> Path:
    """PNG: for every training point (best-scored first) the original above its matched reconstruction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if dataset.image_shape is None:
        raise ValueError("a reconstruction grid needs image data")
    better_first = np.argsort(-result.original_scores if result.metric == "ssim" else result.original_scores,
                              kind="stable")
    recon_of = dict(zip(result.original_index.tolist(), result.recon_index.tolist()))
    n = len(better_first)
    columns = min(n, 10)
    rows = 2 * int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    lo, hi = float(np.min(dataset.x + dataset.mean)), float(np.max(dataset.x + dataset.mean))
    for k, original in enumerate(better_first):
        row, column = 2 * (k // columns), k % columns
        axes[row, column].imshow((dataset.x[original] + dataset.mean).reshape(dataset.image_shape),
                                 cmap="gray", vmin=lo, vmax=hi)
        axes[row, column].set_title(f"{result.original_scores[original]:.2f}", fontsize=7)
        if original in recon_of:
            image = (x_recon[recon_of[original]] + dataset.mean).reshape(dataset.image_shape)
            axes[row + 1, column].imshow(np.clip(image, lo, hi), cmap="gray", vmin=lo, vmax=hi)
    fig.suptitle(f"originals (rows 1, 3, ...) over matched reconstructions; {result.metric} above each", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curve_figure(path: Path, curves: dict[str, MatchResult]) -> Path:
    """PNG: the sorted reconstruction curve of each run, with the good-reconstruction threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, result in curves.items():
        ax.plot(np.arange(1, len(result.curve) + 1), result.curve, marker=".", label=label)
        metric, threshold = result.metric, result.threshold
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("training points, best reconstructed first")
    ax.set_ylabel(metric.upper() if metric == "ssim" else "L2 distance")
    ax.set_title("reconstruction curve")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def metrics_dict(result: MatchResult) -> dict[str, Any]:
    curve = np.asarray(result.curve, dtype=float)
    out = {
        "metric": result.metric,
        "method": result.method,
        "threshold": result.threshold,
        "fraction_good": result.fraction_good,
        "curve": [float(v) if np.isfinite(v) else str(v) for v in curve],
    }
    if result.metric == "ssim":
        out["fraction_ssim_ge_0.9"] = float(np.mean(curve >= 0.9))
        out["min_ssim"] = float(curve.min())
    else:
        out["max_distance"] = result.max_distance
    return out


@dataclasses.dataclass
class AuditRun:
    """What one audit produced: the metrics and the files it wrote."""

    metrics: dict[str, Any]
    files: list[Path]


def write_metrics(path: Path, metrics: dict[str, Any]) -> Path:
    path.write_text(json.dumps(metrics, indent=2))
    return path
