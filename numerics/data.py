"""Datasets as flat float64 point sets: scikit-learn's 8x8 digits, points on the sphere, local MNIST and CIFAR-10.

Every loader returns a :class:`Dataset`: points ``x`` (N x d, float64, one flattened image per row),
targets ``y`` (N x C), integer task classes ``labels``, the per-pixel ``mean`` that was subtracted (zeros
when nothing was), and the per-pixel ``box`` (lo, hi) the points can take (the attack's box prior).
Pixels are scaled to [0, 1] (digits: / 16; MNIST and CIFAR-10: / 255). Tasks:
``"odd_even"`` (digits, MNIST): y = +1 for odd digits, -1 for even ones (N x 1), labels 1 = odd, 0 = even;
``"animal_vehicle"`` (CIFAR-10): y = +1 for animals, -1 for vehicles; ``"ten_class"``: y one-hot
(N x 10), labels the class. The reconstruction theory (docs/claims.md#t1) needs distinct training points, so
:func:`subsample` draws only distinct rows, and :func:`assert_distinct` names any duplicates.

Example::

    train = digits(task="odd_even", n=20, seed=0)   # 10 odd, 10 even, centred
    test = digits(task="odd_even", split="test")
    images = train.images()                        # (20, 8, 8), mean added back
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")

DIGITS_TEST_FRACTION = 0.3
"""Fraction of each digit class of scikit-learn's digits held out as the test split."""
DIGITS_SPLIT_SEED = 0
"""Seed of the fixed digits train/test split (independent of the subsampling seed)."""

CIFAR10_CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                    "ship", "truck")
CIFAR10_VEHICLES: tuple[int, ...] = (0, 1, 8, 9)
TEN_CLASS_NAMES: tuple[str, ...] = tuple(str(k) for k in range(10))

# ---------------------------------------------------------------------------------------------------------
# Checks shared by the project
# ---------------------------------------------------------------------------------------------------------


def validate_points(x: ArrayLike, *, name: str = "x") -> np.ndarray:
    """``np.asarray(x)`` after checking it is a 2-D (points x features) real array, non-empty, all finite.

    Raises ValueError naming the problem (wrong rank, empty, non-numeric dtype, and the rows holding NaN
    or inf). For eager arrays only (it reads the values).
    """
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (points x features); got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} is empty (shape {arr.shape}); need at least one point and one feature")
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            rows = np.flatnonzero(~finite.all(axis=1))
            kinds = " and ".join(k for k, present in (("NaN", np.isnan(arr).any()), ("inf", np.isinf(arr).any()))
                                 if present)
            more = f" (and {rows.size - 10} more)" if rows.size > 10 else ""
            raise ValueError(f"{name} contains {kinds} in rows {rows[:10].tolist()}{more}")
    return arr


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int when it is an integer >= 1 (not a bool); else one-line ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


SEED_LIMIT = 2**32
SEED_RULE = "an integer from 0 to 2**32 - 1"
"""Seeds are integers from 0 to SEED_LIMIT - 1 (numpy's legacy and JAX's PRNG keys take 32-bit seeds)."""


def is_seed(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and 0 <= value < SEED_LIMIT


def check_seed(name: str, value: Any) -> int:
    """``value`` as an int when :func:`is_seed`; else one-line ValueError naming ``name``."""
    if not is_seed(value):
        raise ValueError(f"{name} must be {SEED_RULE}, got {value!r}")
    return int(value)


def positive_number(name: str, value: Any) -> float:
    """``value`` as a float when it is a finite number > 0 (not a bool); else one-line ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def duplicate_groups(x: ArrayLike) -> list[np.ndarray]:
    """Groups of row indices of ``x`` whose rows are exactly equal (as numbers, so -0.0 == 0.0); each group
    has >= 2 indices, in increasing order; groups are ordered by their first index."""
    arr = validate_points(x)
    # Adding 0.0 turns -0.0 into +0.0, so the bytewise row comparison of np.unique equals numeric equality.
    _, inverse, counts = np.unique(arr + 0.0 if np.issubdtype(arr.dtype, np.floating) else arr,
                                   axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    groups = [np.flatnonzero(inverse == u) for u in np.flatnonzero(counts > 1)]
    return sorted(groups, key=lambda group: int(group[0]))


def assert_distinct(x: ArrayLike, *, name: str = "x") -> None:
    """Raise ValueError if two rows of ``x`` are equal, naming their indices.

    Distinct training points are an assumption of Theorem 1 (docs/claims.md#t1): with a duplicate the kernel
    matrix K_TT is singular and alpha = K^{-1} r is not defined.
    """
    groups = duplicate_groups(validate_points(x, name=name))
    if groups:
        shown = "; ".join("rows " + ", ".join(str(i) for i in group) for group in groups[:5])
        more = f" (and {len(groups) - 5} more groups)" if len(groups) > 5 else ""
        raise ValueError(f"{name} has duplicate points: {shown} are equal{more}")


# ---------------------------------------------------------------------------------------------------------
# The dataset type
# ---------------------------------------------------------------------------------------------------------


def _frozen(array: ArrayLike, dtype: type) -> np.ndarray:
    copy = np.array(array, dtype=dtype)
    copy.setflags(write=False)
    return copy


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled point set (arrays are read-only float64 copies; ``labels`` int64).

    Attributes:
      x: (N, d) points, one flattened image per row (row-major over ``image_shape``).
      y: (N, C) regression targets (+-1 column for binary tasks, one-hot for ten_class).
      labels: (N,) integer task class (index into ``class_names``), or None for regression targets.
      source_labels: (N,) the class in the source dataset (e.g. the digit), or None.
      class_names: names of the task classes.
      image_shape: shape of one image ((8, 8), (28, 28), (32, 32, 3) HWC), or None for non-images.
      mean: (d,) what was subtracted from every point (zeros if nothing); raw = x + mean.
      box: (lo, hi), each (d,): the range each coordinate can take; lo <= x <= hi holds for every row.
      name: e.g. "digits/odd_even/train".
    """

    x: np.ndarray
    y: np.ndarray
    labels: np.ndarray | None
    source_labels: np.ndarray | None
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...] | None
    mean: np.ndarray
    box: tuple[np.ndarray, np.ndarray]
    name: str

    def __post_init__(self) -> None:
        x = _frozen(validate_points(self.x, name=f"{self.name}: x"), np.float64)
        n, d = x.shape
        y = _frozen(validate_points(self.y, name=f"{self.name}: y"), np.float64)
        if y.shape[0] != n:
            raise ValueError(f"{self.name}: y has {y.shape[0]} rows but x has {n}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        for field in ("labels", "source_labels"):
            value = getattr(self, field)
            if value is None:
                continue
            value = np.asarray(value)
            if value.shape != (n,) or not np.issubdtype(value.dtype, np.integer):
                raise ValueError(f"{self.name}: {field} must be {n} integers; got shape {value.shape}, "
                                 f"dtype {value.dtype}")
            object.__setattr__(self, field, _frozen(value, np.int64))
        if self.labels is not None and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(f"{self.name}: labels must index class_names ({len(self.class_names)} classes); "
                             f"got range [{self.labels.min()}, {self.labels.max()}]")
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if int(np.prod(shape)) != d:
                raise ValueError(f"{self.name}: image_shape {shape} has {int(np.prod(shape))} pixels, x has {d}")
            object.__setattr__(self, "image_shape", shape)
        mean = _frozen(self.mean, np.float64)
        lo, hi = (_frozen(bound, np.float64) for bound in self.box)
        for label, array in (("mean", mean), ("box lo", lo), ("box hi", hi)):
            if array.shape != (d,):
                raise ValueError(f"{self.name}: {label} must have shape ({d},); got {array.shape}")
        outside = np.flatnonzero(((x < lo) | (x > hi)).any(axis=1))
        if outside.size:
            raise ValueError(f"{self.name}: rows {outside[:10].tolist()} lie outside the box (lo, hi)")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "box", (lo, hi))
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.y.shape[1])

    def images(self, points: ArrayLike | None = None) -> np.ndarray:
        """``points`` (default: ``x``) with the mean added back, reshaped to (n, *image_shape)."""
        if self.image_shape is None:
            raise ValueError(f"{self.name} is not an image dataset (image_shape is None)")
        arr = validate_points(self.x if points is None else points, name="points")
        if arr.shape[1] != self.d:
            raise ValueError(f"points have {arr.shape[1]} features, {self.name} has {self.d}")
        return (arr + self.mean).reshape((-1, *self.image_shape))

    def replace(self, **changes) -> Dataset:
        return dataclasses.replace(self, **changes)


def _task_targets(source_labels: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(y, labels, class_names) of ``task`` for source classes 0..9."""
    if task == "ten_class":
        return np.eye(10)[source_labels], source_labels.copy(), TEN_CLASS_NAMES
    if task == "odd_even":
        odd = source_labels % 2
        return (2.0 * odd - 1.0)[:, None], odd, ("even", "odd")
    if task == "animal_vehicle":
        animal = (~np.isin(source_labels, CIFAR10_VEHICLES)).astype(np.int64)
        return (2.0 * animal - 1.0)[:, None], animal, ("vehicle", "animal")
    raise ValueError(f"unknown task {task!r}")


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {choices}")


def _image_dataset(pixels01: np.ndarray, source_labels: np.ndarray, *, task: str, mean: np.ndarray | None,
                   image_shape: tuple[int, ...], name: str) -> Dataset:
    """A Dataset from pixels in [0, 1]; ``mean`` (or zeros) is subtracted and the box is [0 - mean, 1 - mean]."""
    if pixels01.min() < 0 or pixels01.max() > 1:
        raise ValueError(f"{name}: pixels must lie in [0, 1] after scaling; got [{pixels01.min()}, {pixels01.max()}]")
    if source_labels.min() < 0 or source_labels.max() > 9:
        raise ValueError(f"{name}: labels must lie in 0..9; got [{source_labels.min()}, {source_labels.max()}]")
    y, labels, class_names = _task_targets(source_labels, task)
    shift = np.zeros(pixels01.shape[1]) if mean is None else mean
    return Dataset(x=pixels01 - shift, y=y, labels=labels, source_labels=source_labels, class_names=class_names,
                   image_shape=image_shape, mean=shift, box=(0.0 - shift, 1.0 - shift), name=name)


# ---------------------------------------------------------------------------------------------------------
# Subsampling
# ---------------------------------------------------------------------------------------------------------


def subsample(dataset: Dataset, *, n: int | None = None, per_class: int | None = None, seed: int = 0) -> Dataset:
    """A seeded subsample of distinct points: ``per_class`` points of every task class, or ``n`` in total.

    With labels, ``n`` must split evenly over the classes (balanced: n / C per class); without labels
    (regression targets) ``n`` points are drawn uniformly. Among exactly equal rows only the first can be
    drawn, so the result has no duplicates. Each class's points are drawn without replacement by a
    ``numpy.random.default_rng(seed)`` permutation; the result is then shuffled with the same generator.
    """
    if (n is None) == (per_class is None):
        raise ValueError("give exactly one of n and per_class")
    for label, value in (("n", n), ("per_class", per_class)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{label} must be a positive integer; got {value!r}")
    rng = np.random.default_rng(seed)
    keep = np.ones(dataset.n, dtype=bool)
    for group in duplicate_groups(dataset.x):
        keep[group[1:]] = False
    if dataset.labels is None:
        if per_class is not None:
            raise ValueError(f"{dataset.name} has no class labels, so per_class is undefined; pass n")
        pool = np.flatnonzero(keep)
        if n > pool.size:
            raise ValueError(f"{dataset.name}: asked for n={n} points but only {pool.size} distinct ones exist")
        chosen = rng.permutation(pool)[:n]
    else:
        n_classes = len(dataset.class_names)
        if per_class is None:
            if n % n_classes:
                raise ValueError(f"n={n} does not split evenly over the {n_classes} classes of {dataset.name}; "
                                 f"pass a multiple of {n_classes} or per_class")
            per_class = n // n_classes
        parts = []
        for k, class_name in enumerate(dataset.class_names):
            pool = np.flatnonzero(keep & (dataset.labels == k))
            if per_class > pool.size:
                raise ValueError(f"{dataset.name}: asked for {per_class} points of class {class_name!r} but only "
                                 f"{pool.size} distinct ones exist")
            parts.append(rng.permutation(pool)[:per_class])
        chosen = rng.permutation(np.concatenate(parts))
    return _take(dataset, chosen, name=f"{dataset.name}/{chosen.size}@seed{seed}")


def _take(dataset: Dataset, index: np.ndarray, *, name: str) -> Dataset:
    pick = (lambda a: None if a is None else a[index])
    return dataset.replace(x=dataset.x[index], y=dataset.y[index], labels=pick(dataset.labels),
                           source_labels=pick(dataset.source_labels), name=name)


# ---------------------------------------------------------------------------------------------------------
# scikit-learn's 8x8 digits
# ---------------------------------------------------------------------------------------------------------


@functools.cache
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _frozen(bunch.data / 16.0, np.float64), _frozen(bunch.target, np.int64)


def digits_split_index(split: Split) -> np.ndarray:
    """Indices into scikit-learn's 1797 digits of the fixed split: per digit class, a seeded
    (``DIGITS_SPLIT_SEED``) ``DIGITS_TEST_FRACTION`` share (rounded) is the test split, the rest train."""
    _check_choice(split, SPLITS, "split")
    _, targets = _digits_raw()
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test = []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(targets == digit))
        test.append(members[: int(round(DIGITS_TEST_FRACTION * members.size))])
    is_test = np.zeros(targets.size, dtype=bool)
    is_test[np.concatenate(test)] = True
    return np.flatnonzero(is_test if split == "test" else ~is_test)


def digits(*, task: Literal["odd_even", "ten_class"] = "odd_even", split: Split = "train", n: int | None = None,
           per_class: int | None = None, seed: int = 0, center: bool = True) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, shipped with scikit-learn, no download).

    Pixels are scaled to [0, 1] (divided by 16). With ``center`` the per-pixel mean of the whole training
    split (all of it, whatever is subsampled; the same mean for both splits) is subtracted and returned as
    ``mean``; the box is then [-mean, 1 - mean]. The train/test split is fixed (see
    :func:`digits_split_index`: 30% of every digit held out). With ``n`` or ``per_class`` a balanced,
    seeded subsample of distinct points is returned (:func:`subsample`); otherwise the whole split.
    """
    _check_choice(task, ("odd_even", "ten_class"), "digits task")
    _check_choice(split, SPLITS, "split")
    pixels, targets = _digits_raw()
    mean = pixels[digits_split_index("train")].mean(axis=0) if center else None
    index = digits_split_index(split)
    dataset = _image_dataset(pixels[index], targets[index], task=task, mean=mean, image_shape=(8, 8),
                             name=f"digits/{task}/{split}")
    if n is None and per_class is None:
        return dataset
    return subsample(dataset, n=n, per_class=per_class, seed=seed)


# ---------------------------------------------------------------------------------------------------------
# The unit sphere
# ---------------------------------------------------------------------------------------------------------


def sphere(n: int, d: int, *, seed: int, targets: Literal["sign", "gaussian"] = "sign",
           n_outputs: int = 1) -> Dataset:
    """``n`` points uniform on the unit sphere S^{d-1} in R^d, with random targets.

    Points: z / ||z|| with z ~ N(0, I_d) (rotation invariance makes this uniform), from
    ``numpy.random.default_rng(seed)``. Targets: "sign" = independent fair +-1 (n x n_outputs; with one
    output, labels 1 for +1 and 0 for -1), "gaussian" = independent N(0, 1) (labels None). Box: [-1, 1]^d.
    """
    for label, value, least in (("n", n, 1), ("d", d, 2), ("n_outputs", n_outputs, 1)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{label} must be an integer >= {least}; got {value!r}")
    _check_choice(targets, ("sign", "gaussian"), "sphere targets")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d))
    x = z / np.linalg.norm(z, axis=1, keepdims=True)
    assert_distinct(x, name="sphere points")
    labels, class_names = None, ()
    if targets == "sign":
        y = rng.choice(np.array([-1.0, 1.0]), size=(n, n_outputs))
        if n_outputs == 1:
            labels, class_names = (y[:, 0] > 0).astype(np.int64), ("-1", "+1")
    else:
        y = rng.standard_normal((n, n_outputs))
    return Dataset(x=x, y=y, labels=labels, source_labels=None, class_names=class_names, image_shape=None,
                   mean=np.zeros(d), box=(-np.ones(d), np.ones(d)), name=f"sphere/n{n}/d{d}/seed{seed}")


# ---------------------------------------------------------------------------------------------------------
# MNIST (IDX files)
# ---------------------------------------------------------------------------------------------------------

IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
"""IDX type codes (third byte of the magic number) and the big-endian dtypes they denote."""

MNIST_FILES: dict[str, tuple[str, str]] = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                                           "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format; gzip-compressed if the name ends in .gz).

    Layout: magic = two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions; then one big-endian uint32 per dimension; then
    the data, big-endian, row-major. Returns the array in native byte order.
    """
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    zero0, zero1, type_code, ndim = raw[:4]
    if zero0 != 0 or zero1 != 0 or type_code not in IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic number {raw[:4].hex()} (expected 0000, a type code in "
                         f"{[hex(c) for c in IDX_DTYPES]}, and the number of dimensions)")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"{path}: truncated IDX header (needs {header_size} bytes, file has {len(raw)})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} of {dtype.name} ({expected} bytes in all) "
                         f"but the file has {len(raw)} bytes")
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_file(directory: Path, name: str) -> Path:
    """``name`` in ``directory``, also as ``name.gz`` or with the '-idx' written '.idx'."""
    candidates = [name, name.replace("-idx", ".idx")]
    for candidate in candidates + [c + ".gz" for c in candidates]:
        if (directory / candidate).is_file():
            return directory / candidate
    raise FileNotFoundError(f"{name} (or {name}.gz) not found in {directory}")


def load_mnist(directory: str | Path, *, split: Split = "train",
               task: Literal["ten_class", "odd_even"] = "ten_class", center: bool = False) -> Dataset:
    """MNIST (or any IDX image/label pair in the same layout, e.g. Fashion-MNIST) from local IDX files.

    Files: ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (split "train") and ``t10k-...``
    (split "test"), optionally ``.gz``. Pixels (uint8) are divided by 255; labels must be 0..9. With
    ``center`` the per-pixel mean of the training split is subtracted (loaded from the train files).
    """
    _check_choice(split, SPLITS, "split")
    _check_choice(task, ("ten_class", "odd_even"), "MNIST task")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")

    def read(which: str) -> tuple[np.ndarray, np.ndarray]:
        image_file, label_file = (_find_file(directory, name) for name in MNIST_FILES[which])
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{image_file}: expected uint8 images of shape (N, rows, cols); got {images.dtype} "
                             f"{images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{label_file}: expected {images.shape[0]} labels (one per image); got shape "
                             f"{labels.shape}")
        return images, labels.astype(np.int64)

    images, labels = read(split)
    pixels = images.reshape(images.shape[0], -1) / 255.0
    mean = None
    if center:
        train_images = images if split == "train" else read("train")[0]
        mean = (train_images.reshape(train_images.shape[0], -1) / 255.0).mean(axis=0)
    return _image_dataset(pixels, labels, task=task, mean=mean, image_shape=images.shape[1:],
                          name=f"mnist/{task}/{split}")


# ---------------------------------------------------------------------------------------------------------
# CIFAR-10 (python batches)
# ---------------------------------------------------------------------------------------------------------

CIFAR10_BATCHES: dict[str, tuple[str, ...]] = {"train": tuple(f"data_batch_{k}" for k in range(1, 6)),
                                               "test": ("test_batch",)}


PICKLE_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    *((module, name) for prefix in ("numpy.core", "numpy._core")
      for module, name in ((f"{prefix}.multiarray", "_reconstruct"), (f"{prefix}.multiarray", "scalar"),
                           (f"{prefix}.numeric", "_frombuffer"))),
})
"""The only globals a CIFAR-10 batch may name: what numpy arrays (and Python 2 byte strings) pickle into."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, numbers, strings and numpy arrays, and refuses any other global,
    so a crafted batch cannot call ``os.system`` or anything else while it is read."""

    def find_class(self, module: str, name: str):
        if (module, name) not in PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR-10 batch holds only arrays, "
                                         "lists, numbers and strings")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 (n, 3072) channel-major, labels (n,)) of one CIFAR-10 python batch (a pickled dict), read
    with an unpickler that refuses every global except numpy's array constructors."""
    with path.open("rb") as handle:
        try:
            batch = _ArraysOnlyUnpickler(handle, encoding="bytes").load()
        except pickle.UnpicklingError as error:
            raise ValueError(f"{path}: {error}") from None
        except (EOFError, ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: not a CIFAR-10 batch ({type(error).__name__}: {error})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    found = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    missing = [key for key in ("data", "labels") if key not in found]
    if missing:
        raise ValueError(f"{path}: batch dict lacks {missing}; has {sorted(found)}")
    data, labels = np.asarray(found["data"]), np.asarray(found["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: expected uint8 data of shape (n, 3072); got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: expected {data.shape[0]} integer labels; got {labels.dtype} {labels.shape}")
    return data, labels.astype(np.int64)


def load_cifar10(directory: str | Path, *, split: Split = "train",
                 task: Literal["ten_class", "animal_vehicle"] = "ten_class", center: bool = False) -> Dataset:
    """CIFAR-10 from its python batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``).

    ``directory`` is the ``cifar-10-batches-py`` folder or its parent. CIFAR stores each image channel-major
    (3 x 32 x 32: all red, then green, then blue); here each row is the image in HWC order (32, 32, 3),
    flattened, pixels divided by 255. With ``center`` the per-pixel mean of the training batches is
    subtracted. The batches are pickles; they are read with an unpickler that builds only arrays, lists,
    numbers and strings (any other global is refused), so a crafted file cannot run code.
    """
    _check_choice(split, SPLITS, "split")
    _check_choice(task, ("ten_class", "animal_vehicle"), "CIFAR-10 task")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"CIFAR-10 directory {directory} does not exist")
    if not (directory / "test_batch").exists() and (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"

    def read(which: str) -> tuple[np.ndarray, np.ndarray]:
        paths = [directory / name for name in CIFAR10_BATCHES[which]]
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"CIFAR-10 batches {missing} not found in {directory}")
        batches = [_read_cifar_batch(path) for path in paths]
        data = np.concatenate([b[0] for b in batches])
        hwc = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(data.shape[0], -1)
        return hwc / 255.0, np.concatenate([b[1] for b in batches])

    pixels, labels = read(split)
    mean = None
    if center:
        mean = (pixels if split == "train" else read("train")[0]).mean(axis=0)
    dataset = _image_dataset(pixels, labels, task=task, mean=mean, image_shape=(32, 32, 3),
                             name=f"cifar10/{task}/{split}")
    if task == "ten_class":
        dataset = dataset.replace(class_names=CIFAR10_CLASSES)
    return dataset
