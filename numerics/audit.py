"""Auditing a model's leakage end to end: the data, training, and scoring behind ``proofs-check attack``.

1. data: a named dataset (:data:`DATASETS`, :func:`load_dataset`), e.g. scikit-learn's 8x8 digits, odd vs
   even; :func:`check_n` says before any work whether a size can be drawn from it (and how many exist);
2. model: full-batch heavy-ball training of a fresh network on it (:func:`train_on`), linearized (the exact
   NTK regime) or standard, with a checkpoint; or theta_0 / theta_f loaded from a saved ``.npz``;
3. attack: Loo et al.'s parameter-space attack (arXiv:2302.01428) with M reconstructions
   (:func:`numerics.attack.parameter_space_attack`);
4. score: the project's success measure, :func:`numerics.privacy.revealed` (a private point is revealed
   when some reconstruction is ``factor`` times closer to it than to every held-out public point), for the
   attack and beside it for every trivial reconstruction (:func:`leakage`; :func:`numerics.privacy.leakage_table`),
   plus the one-to-one matching used to show reconstructions next to their originals (:func:`score`).

Public and pool sets (:func:`reference_sets`): for digits the public set is the test split and the pool
(where the held-out baseline points come from) the training split minus the private points; for the
sphere both are fresh uniform points.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np

from numerics import privacy
from numerics.data import Dataset, check_seed, digits, duplicate_groups, sphere
from numerics.metrics import MatchResult, match
from numerics.networks import make_network
from numerics.training import TRAINING_DATA_KEYS, TrainResult, ntk_matrix, train
from theory.architecture import Architecture

DATASETS: Mapping[str, str] = {
    "digits-odd-even": "scikit-learn's 8x8 digits, odd (+1) vs even (-1), equal numbers of each; public set: "
                       "the test split",
    "digits-ten-class": "scikit-learn's 8x8 digits, ten one-hot classes, equal numbers of each; public set: the "
                        "test split",
    "sphere": "points uniform on the unit sphere in R^10 with random +-1 targets; public set: fresh points",
}
"""The datasets ``proofs-check attack`` can train on and score against, with a one-line description."""
SPHERE_DIMENSION = 10
SPHERE_MAX_POINTS = 20_000
"""Largest N drawn from the sphere (the largest target set the project distills; an attack on N points keeps 2N
reconstructions and N x N kernels, and N = 100,000 aborted inside XLA)."""
SPHERE_REFERENCE_POINTS = 500
"""Size of the sphere's public set and of its pool of held-out points."""
_DIGITS_TASKS = {"digits-odd-even": "odd_even", "digits-ten-class": "ten_class"}


def _check_name(name: Any, *, label: str | None = None) -> None:
    """One-line ValueError unless ``name`` is a dataset of DATASETS (named ``label`` in the message when given)."""
    if not isinstance(name, str) or name not in DATASETS:
        if label is None:
            raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
        raise ValueError(f"{label} {name!r} is not one of {', '.join(DATASETS)}")


def check_n(name: str, n: int, *, label: str = "--n", rule_subject: str | None = None) -> None:
    """Raise ValueError (one line) unless ``n`` distinct, class-balanced points can be drawn from ``name``;
    the message names ``n`` as ``label`` (and as ``rule_subject`` where it states the rule: "so every --ns value
    must be even") and says how many exist."""
    _check_name(name)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{label} must be a positive integer, got {n!r}")
    if name not in _DIGITS_TASKS:
        if n > SPHERE_MAX_POINTS:
            raise ValueError(f"{label} {n}: {name} draws at most {SPHERE_MAX_POINTS} points (audit.SPHERE_MAX_POINTS)")
        return
    full = digits(task=_DIGITS_TASKS[name], split="train")
    keep = np.ones(full.n, dtype=bool)
    for group in duplicate_groups(full.x):
        keep[group[1:]] = False
    counts = [int(np.sum(keep & (full.labels == k))) for k in range(len(full.class_names))]
    classes = len(counts)
    per_class = (", ".join(f"{c} {label}" for c, label in zip(counts, full.class_names)) if classes <= 3
                 else f"{min(counts)} to {max(counts)} per class")
    largest = classes * min(counts)
    if n % classes:
        noun = "even" if classes == 2 else f"a multiple of {classes}"
        raise ValueError(f"{label} {n}: {name} draws equal numbers of its {classes} classes, so "
                         f"{rule_subject or label} must be {noun}")
    if n > largest:
        raise ValueError(f"{label} {n}: {name} has {int(keep.sum())} distinct training points ({per_class}); a balanced "
                         f"set can have at most {largest}")


def check_fits(name: str, in_dim: int, out_dim: int, *, label: str = "--dataset") -> None:
    """One-line ValueError unless a network with ``in_dim`` inputs and ``out_dim`` outputs fits dataset ``name``."""
    dims = (input_dimension(name), output_dimension(name))
    if (int(in_dim), int(out_dim)) != dims:
        raise ValueError(f"{label} {name} has {dims[0]} inputs and {dims[1]} output(s); the network has {in_dim} and "
                         f"{out_dim}")


def check_training_data(name: Any, n: Any, seed: Any, *, in_dim: int, out_dim: int,
                        labels: tuple[str, str, str] = TRAINING_DATA_KEYS) -> tuple[str, int, int]:
    """(dataset name, N, seed) when :func:`load_dataset` can draw that training set and a network with ``in_dim``
    inputs and ``out_dim`` outputs fits it; else one-line ValueError naming the field by ``labels`` (default: the
    keys of a saved model's record). The one rule for that record (numerics.training save_model and load_model)."""
    _check_name(name, label=labels[0])
    check_n(name, n, label=labels[1])
    seed = check_seed(labels[2], seed)
    check_fits(name, in_dim, out_dim, label=labels[0])
    return name, int(n), seed


def load_dataset(name: str, n: int, *, seed: int = 0, d: int = SPHERE_DIMENSION) -> Dataset:
    """A named training set of ``n`` distinct points: digits-odd-even, digits-ten-class or sphere (in R^d)."""
    _check_name(name)
    seed = check_seed("seed", seed)
    if name in _DIGITS_TASKS:
        return digits(task=_DIGITS_TASKS[name], n=n, seed=seed)
    return sphere(n, d, seed=seed)


def output_dimension(name: str) -> int:
    """Number of network outputs the dataset's targets need."""
    _check_name(name)
    return 10 if name == "digits-ten-class" else 1


def input_dimension(name: str) -> int:
    _check_name(name)
    return 64 if name in _DIGITS_TASKS else SPHERE_DIMENSION


@dataclasses.dataclass(frozen=True, eq=False)
class ReferenceSets:
    """What the success measure compares against: ``public`` (held-out points of the same distribution) and
    ``pool`` (other non-private points, for the held-out baseline), with the pool's class labels."""

    public: np.ndarray
    pool: np.ndarray
    pool_labels: np.ndarray | None
    mean: np.ndarray
    """The mean image in the dataset's (centred) coordinates: the 'mean image' baseline."""


def reference_sets(name: str, dataset: Dataset, *, seed: int = 0) -> ReferenceSets:
    """Public set and pool for scoring ``dataset`` (drawn from ``name`` with ``seed``); see the module docstring."""
    _check_name(name)
    if name in _DIGITS_TASKS:
        task = _DIGITS_TASKS[name]
        full = digits(task=task, split="train")
        private = {row.tobytes() for row in dataset.x}
        rest = np.array([row.tobytes() not in private for row in full.x])
        return ReferenceSets(public=digits(task=task, split="test").x, pool=full.x[rest],
                             pool_labels=full.labels[rest], mean=np.zeros(full.d))
    # sphere: independent draws (seeds far from the private set's), uniform like it
    public = sphere(SPHERE_REFERENCE_POINTS, dataset.d, seed=seed + 1_000_003).x
    pool = sphere(SPHERE_REFERENCE_POINTS, dataset.d, seed=seed + 2_000_003).x
    return ReferenceSets(public=public, pool=pool, pool_labels=None, mean=np.zeros(dataset.d))


MAX_HALVINGS = 12
"""How often :func:`train_on` halves a step that makes the loss rise above its start (1 / 4096 of 1 / lambda_max)."""


TRAIN_LOSS_TARGET = 1e-10
"""The training loss (sum-reduced MSE / 2) at which :func:`train_on` stops by default: the network fits its data."""


def train_on(arch: Architecture, width: int, dataset: Dataset, *, linearized: bool, seed: int = 0,
             max_steps: int = 20_000, loss_threshold: float = TRAIN_LOSS_TARGET, momentum: float = 0.9,
             progress: bool = True, checkpoint: str | Path | None = None, resume: bool = False) -> TrainResult:
    """Heavy-ball full-batch training on the MSE loss, step size eta = 1 / lambda_max(K_0) halved until the loss
    never rises above its start L_0.

    With momentum 0.9 the linear iteration is stable for eta lambda_max < 2 (1 + momentum), so 1 / lambda_max
    leaves a wide margin, and a fully connected network's loss then falls from the first step. A network that must
    move far from theta_0 (a convolutional net whose outputs start near 0: ||f_0|| = 0.16 against ||y|| = 4.5 on 20
    digits) changes its kernel on the way; at 1 / lambda_max its loss shoots up (3e9 at step 10) and the ReLUs die
    (every output 0, the loss stuck at N / 2). A loss above L_0 is the sign: the run stops there (``loss_ceiling``
    of :func:`numerics.training.train`) and restarts from theta_0 with half the step, at most ``MAX_HALVINGS`` times.
    The returned run's ``learning_rate`` is the step used. Resuming starts from the checkpoint's step.
    """
    import warnings

    from numerics.checkpoint import Checkpoint, CheckpointError

    network = make_network(arch, width, dataset.y.shape[1])
    params_0 = network.init(jax.random.PRNGKey(seed), dataset.x.shape[1])
    lambda_max = float(np.linalg.eigvalsh(np.asarray(ntk_matrix(network, params_0, dataset.x)))[-1])
    start_loss = 0.5 * float(np.sum((np.asarray(dataset.y) - np.asarray(network.apply(params_0, dataset.x))) ** 2))
    learning_rate = 1.0 / lambda_max
    # (1 + 1e-9) on the ceiling: train() recomputes L_0 in another summation order (differences ~1e-15 relative)
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        try:  # the step the interrupted run had reached (train() itself reports an unreadable file)
            learning_rate = float(Checkpoint(checkpoint, kind="train").peek()[2].get("learning_rate", learning_rate))
        except CheckpointError:
            pass
    for halving in range(MAX_HALVINGS + 1):
        last = halving == MAX_HALVINGS
        with warnings.catch_warnings():
            if not last:
                warnings.simplefilter("ignore", RuntimeWarning)
            result = train(network, params_0, dataset.x, dataset.y, learning_rate=learning_rate, momentum=momentum,
                           linearized=linearized, max_steps=max_steps, loss_threshold=loss_threshold,
                           loss_ceiling=start_loss * (1 + 1e-9), progress=progress, checkpoint=checkpoint, resume=resume)
        if result.stop_reason != "diverged" or last:
            return result
        learning_rate, resume = learning_rate / 2, False
    raise AssertionError("unreachable")


def score(x_recon: np.ndarray, dataset: Dataset) -> MatchResult:
    """Hungarian one-to-one matching, to show each private point beside its reconstruction: SSIM on images
    (the mean added back), L2 distance otherwise."""
    if dataset.image_shape is not None:
        return match(x_recon + dataset.mean, dataset.x + dataset.mean, metric="ssim", image_shape=dataset.image_shape)
    return match(x_recon, dataset.x, metric="l2", threshold=None)


@dataclasses.dataclass(frozen=True, eq=False)
class Leakage:
    """The success measure for the attack and every trivial baseline.

    ``rows[name]`` is :func:`numerics.privacy.leakage_table`'s row (``revealed`` fraction, ``revealed_count``,
    ``factor``, for images ``ssim_ge_0.4`` / ``ssim_ge_0.9`` and ``ssim_curve``; ``trivial``); ``ratios[name]``
    holds each private point's closeness ratio (:class:`numerics.privacy.Revealed`), for the figure.
    """

    rows: dict[str, dict[str, Any]]
    ratios: dict[str, np.ndarray]
    factor: float

    def curves(self) -> dict[str, dict[str, np.ndarray]]:
        """Per row: ``ratio`` and, for images, ``ssim`` (what :func:`proofs_check.figures.leakage_figure` draws)."""
        out = {}
        for name, row in self.rows.items():
            out[name] = {"ratio": self.ratios[name]}
            if "ssim_curve" in row:
                out[name]["ssim"] = np.asarray(row["ssim_curve"], dtype=float)
        return out

    def revealed(self, name: str) -> np.ndarray:
        """(N,) True where row ``name``'s reconstructions reveal private point i (numerics.privacy.is_revealed)."""
        return privacy.is_revealed(self.ratios[name], self.factor)


ATTACK_ROW = "attack"


BASELINE_STREAM = 0x5EED_BA5E
"""Entropy word that separates the trivial baselines' random stream from the data's."""


def leakage(x_recon: np.ndarray, dataset: Dataset, references: ReferenceSets, *, seed: int = 0,
            factor: float = privacy.DEFAULT_FACTOR) -> Leakage:
    """Score the attack's reconstructions and the trivial reconstructions with :func:`numerics.privacy.revealed`.

    The rows are :func:`numerics.privacy.leakage_table`'s; the baselines are drawn from their own stream,
    ``default_rng([BASELINE_STREAM, seed])``, never from the data's ``default_rng(seed)`` (with the same stream the
    "noise" baseline on sphere data replayed the private points' own draws and revealed all of them). The
    per-point closeness ratios are taken out of the rows into ``Leakage.ratios``.
    """
    options = dict(pool=references.pool, mean=references.mean, pool_labels=references.pool_labels)
    image = dict(image_shape=dataset.image_shape, offset=dataset.mean if dataset.image_shape is not None else None)
    rows = privacy.leakage_table({ATTACK_ROW: x_recon}, dataset.x, references.public, rng=np.random.default_rng([BASELINE_STREAM, seed]),
                                 factor=factor, **options, **image)
    ratios = {name: np.asarray(row.pop("ratio")) for name, row in rows.items()}
    return Leakage(rows=rows, ratios=ratios, factor=factor)


FIT_FRACTION = 1e-3
"""A model fits the training set it records when ||f(X) - Y||^2 <= FIT_FRACTION ||Y||^2 there, by the network or its
linearization at theta_0 (a file does not say how it was trained): numerics.sweep's rule for a fitted network
(every fitted sweep cell ended near 1e-10 of it). A trial's network trained on uncentred digits and recorded as the
centred set scored 0% revealed against 10% for its centred twin, with no word that its file described other points."""


def fit_on(arch: Architecture, width: int, params_0, params_f, dataset: Dataset) -> dict[str, float]:
    """||f(X) - Y||^2 / ||Y||^2 on ``dataset`` of the network at theta_f ("network") and of its linearization at
    theta_0 ("linearized"), and whether either is at most :data:`FIT_FRACTION` ("fits")."""
    from numerics.training import linearized_apply

    network = make_network(arch, width, dataset.y.shape[1])
    x, y = np.asarray(dataset.x), np.asarray(dataset.y)
    scale = float(np.sum(y**2)) or 1.0
    out = {}
    for name, apply in (("network", network.apply), ("linearized", linearized_apply(network.apply, params_0))):
        residual = np.asarray(apply(params_f, jax.numpy.asarray(x))) - y
        out[name] = float(np.sum(residual**2)) / scale
    out["fits"] = bool(min(out["network"], out["linearized"]) <= FIT_FRACTION)
    return out


def coefficient_scale(arch: Architecture, width: int, out_dim: int, params_0, params_f, public) -> float:
    """s = ||Delta theta|| / sqrt(M mean_x Theta_0(x, x)) over M public points x: J(X_R)^T lambda has norm about
    |lambda| sqrt(M mean Theta_0(x, x)), so Delta theta / s is matched by coefficients of order one, the scale at
    which the attack starts them (the ``delta_scale`` of :func:`numerics.attack.parameter_space_attack`, which
    says why the scaled problem has the same minimizers in X_R)."""
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    network = make_network(arch, width, out_dim)
    diagonal = np.diag(np.asarray(ntk_matrix(network, params_0, jnp.asarray(public))))
    delta = ravel_pytree(params_f)[0] - ravel_pytree(params_0)[0]
    return float(jnp.linalg.norm(delta) / np.sqrt(len(public) * np.mean(diagonal)))


def plain_json(value: Any) -> Any:
    """``value`` with numpy arrays and scalars as Python lists and numbers, dict keys as text, and non-finite numbers
    as strings ("nan", "inf"): what json.dumps writes as standard JSON."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def write_metrics(path: Path, metrics: dict[str, Any]) -> Path:
    """metrics.json, written under a temporary name and renamed (non-finite numbers as strings), with the software
    that produced it (numerics.checkpoint.software)."""
    from numerics.checkpoint import software

    metrics = {**metrics, "software": software()}
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(plain_json(metrics), indent=2))
    temporary.replace(path)
    return path
