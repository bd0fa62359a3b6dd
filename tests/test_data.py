"""Tests of numerics.data: checks, digits, the sphere, and the MNIST / CIFAR-10 readers on files written here."""

import gzip
import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st
from sklearn.datasets import load_digits

from numerics.data import (CIFAR10_CLASSES, IDX_DTYPES, Dataset, assert_distinct, digits, digits_split_index,
                           duplicate_groups, load_cifar10, load_mnist, read_idx, sphere, subsample, validate_points)

# ------------------------------------------------------------------------------------------------------------
# writers of the real file formats
# ------------------------------------------------------------------------------------------------------------

IDX_CODES = {np.dtype(dtype).newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}


def write_idx(path, array: np.ndarray, *, compress: bool = False) -> None:
    """IDX: 0x00 0x00, type code, ndim; big-endian uint32 dims; big-endian data."""
    code = IDX_CODES[array.dtype]
    payload = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_mnist(directory, *, n_train=6, n_test=4, size=28, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, count in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(count, size, size), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress=compress)
        arrays[prefix] = (images, labels)
    return arrays


def write_cifar(directory, *, per_batch=3, seed=0):
    """CIFAR-10 python batches: dicts with b"data" (n x 3072 uint8, channel-major) and b"labels" (list)."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        hwc = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        chw_rows = hwc.transpose(0, 3, 1, 2).reshape(per_batch, 3072)
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": chw_rows,
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}
        (directory / name).write_bytes(pickle.dumps(batch))
        written[name] = (hwc, np.array(labels))
    return written


# ------------------------------------------------------------------------------------------------------------
# validate_points, assert_distinct
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, message", [
    (np.zeros(3), r"pts must be 2-D .* shape \(3,\)"),
    (np.zeros((2, 2, 2)), "pts must be 2-D"),
    (np.zeros((0, 3)), "pts is empty"),
    (np.zeros((3, 0)), "pts is empty"),
    (np.array([[1 + 1j, 0]]), "real numeric"),
    (np.array([["a"]]), "real numeric"),
    (np.array([[0.0, 1.0], [np.nan, np.inf]]), r"pts contains NaN and inf in rows \[1\]"),
])
def test_validate_points_names_the_problem(value, message):
    with pytest.raises(ValueError, match=message):
        validate_points(value, name="pts")


@given(row=st.integers(0, 11), col=st.integers(0, 3), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_validate_points_finds_the_row_of_a_non_finite_value(row, col, bad):
    x = np.ones((12, 4))
    x[row, col] = bad
    with pytest.raises(ValueError, match=rf"rows \[{row}\]"):
        validate_points(x)


def test_validate_points_passes_good_points_through():
    x = np.arange(6, dtype=np.int32).reshape(3, 2)
    assert validate_points(x) is x


def test_assert_distinct_names_the_duplicate_rows():
    x = np.array([[0.0, 1.0], [2.0, 3.0], [0.0, 1.0], [4.0, 5.0], [2.0, 3.0], [0.0, 1.0]])
    groups = duplicate_groups(x)
    assert [g.tolist() for g in groups] == [[0, 2, 5], [1, 4]]
    with pytest.raises(ValueError, match=r"train has duplicate points: rows 0, 2, 5; rows 1, 4 are equal"):
        assert_distinct(x, name="train")


def test_negative_zero_equals_zero():
    with pytest.raises(ValueError, match="rows 0, 1"):
        assert_distinct(np.array([[0.0, 1.0], [-0.0, 1.0]]))


def test_assert_distinct_accepts_distinct_points():
    assert_distinct(np.array([[0.0, 1.0], [0.0, np.nextafter(1.0, 2.0)]]))  # one ulp apart is distinct


# ------------------------------------------------------------------------------------------------------------
# Dataset, subsample
# ------------------------------------------------------------------------------------------------------------


def small_dataset(points, labels=None, **changes):
    n, d = np.shape(points)
    fields = dict(x=points, y=np.zeros((n, 1)), labels=labels, source_labels=None,
                  class_names=("a", "b") if labels is not None else (), image_shape=None, mean=np.zeros(d),
                  box=(np.full(d, -10.0), np.full(d, 10.0)), name="small")
    fields.update(changes)
    return Dataset(**fields)


def test_dataset_arrays_are_read_only_copies():
    x = np.zeros((2, 3))
    dataset = small_dataset(x)
    x[0, 0] = 5.0
    assert dataset.x[0, 0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        dataset.x[0, 0] = 1.0


@pytest.mark.parametrize("changes, message", [
    ({"y": np.zeros((3, 1))}, "y has 3 rows but x has 2"),
    ({"x": np.full((2, 3), 11.0)}, r"rows \[0, 1\] lie outside the box"),
    ({"mean": np.zeros(2)}, r"mean must have shape \(3,\)"),
    ({"image_shape": (2, 2)}, "image_shape"),
    ({"labels": np.array([0, 2]), "class_names": ("a", "b")}, "labels must index class_names"),
    ({"labels": np.array([0.0, 1.0]), "class_names": ("a", "b")}, "labels must be 2 integers"),
])
def test_dataset_rejects_inconsistent_fields(changes, message):
    with pytest.raises(ValueError, match=message):
        fields = dict(changes)
        small_dataset(fields.pop("x", np.zeros((2, 3))), **fields)


def test_subsample_draws_only_distinct_points():
    x = np.repeat(np.arange(4.0)[:, None], 3, axis=0) * np.ones((1, 2))  # 12 rows, 4 distinct
    labels = np.repeat([0, 0, 1, 1], 3)
    dataset = small_dataset(x, labels)
    drawn = subsample(dataset, per_class=2, seed=1)
    assert_distinct(drawn.x)
    assert sorted(drawn.x[:, 0].tolist()) == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="asked for 3 points of class 'a' but only 2 distinct"):
        subsample(dataset, per_class=3)
    with pytest.raises(ValueError, match="only 4 distinct"):
        subsample(small_dataset(x), n=5)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of n and per_class"),
    ({"n": 4, "per_class": 2}, "exactly one of n and per_class"),
    ({"n": 0}, "n must be a positive integer"),
    ({"per_class": 1.5}, "per_class must be a positive integer"),
    ({"n": 3}, "does not split evenly over the 2 classes"),
])
def test_subsample_rejects_bad_sizes(kwargs, message):
    dataset = small_dataset(np.arange(8.0).reshape(4, 2), np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match=message):
        subsample(dataset, **kwargs)


# ------------------------------------------------------------------------------------------------------------
# digits
# ------------------------------------------------------------------------------------------------------------


def test_digits_split_is_fixed_disjoint_and_complete():
    train, test = digits_split_index("train"), digits_split_index("test")
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    assert test.size == pytest.approx(0.3 * 1797, abs=10)  # rounding per digit class moves it by < 10
    np.testing.assert_array_equal(digits_split_index("test"), test)


def test_digits_pixels_targets_and_centering():
    reference = load_digits()
    index = digits_split_index("train")
    raw = digits(task="ten_class", center=False)
    np.testing.assert_array_equal(raw.x, reference.data[index] / 16.0)
    np.testing.assert_array_equal(raw.labels, reference.target[index])
    np.testing.assert_array_equal(raw.y, np.eye(10)[reference.target[index]])
    assert raw.image_shape == (8, 8) and raw.class_names == tuple("0123456789")

    centred = digits(task="ten_class")
    np.testing.assert_array_equal(centred.mean, raw.x.mean(axis=0))
    # Column means of the centred training split are 0 up to the round-off of a 1258-term mean (<= 1).
    np.testing.assert_allclose(centred.x.mean(axis=0), 0.0, atol=1e-15)
    # x + mean undoes the subtraction up to one rounding of numbers <= 1.
    np.testing.assert_allclose(centred.images(), raw.x.reshape(-1, 8, 8), rtol=0, atol=2e-16)
    lo, hi = centred.box
    np.testing.assert_array_equal(lo, -centred.mean)
    np.testing.assert_array_equal(hi, 1.0 - centred.mean)

    test = digits(task="ten_class", split="test")
    np.testing.assert_array_equal(test.mean, centred.mean)  # both splits share the training mean


def test_digits_odd_even_targets():
    dataset = digits(task="odd_even", split="test")
    odd = dataset.source_labels % 2 == 1
    np.testing.assert_array_equal(dataset.y[:, 0], np.where(odd, 1.0, -1.0))
    np.testing.assert_array_equal(dataset.labels, odd.astype(int))
    assert dataset.class_names == ("even", "odd") and dataset.y.shape == (dataset.n, 1)


@pytest.mark.parametrize("task, n, per_class, n_classes", [("odd_even", 20, None, 2), ("ten_class", None, 3, 10)])
def test_digits_subsample_is_balanced_distinct_and_seeded(task, n, per_class, n_classes):
    dataset = digits(task=task, n=n, per_class=per_class, seed=7)
    size = n if n is not None else per_class * n_classes
    assert dataset.x.shape == (size, 64)
    np.testing.assert_array_equal(np.bincount(dataset.labels, minlength=n_classes), [size // n_classes] * n_classes)
    assert_distinct(dataset.x)
    same = digits(task=task, n=n, per_class=per_class, seed=7)
    np.testing.assert_array_equal(same.x, dataset.x)
    other = digits(task=task, n=n, per_class=per_class, seed=8)
    assert not np.array_equal(other.x, dataset.x)
    train_rows = {row.tobytes() for row in digits(task=task).x}
    assert all(row.tobytes() in train_rows for row in dataset.x)  # drawn from the training split only


def test_scikit_learn_digits_have_no_duplicates():
    assert duplicate_groups(load_digits().data) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"task": "parity"}, "unknown digits task 'parity'"),
    ({"split": "validation"}, "unknown split 'validation'"),
    ({"n": 21}, "does not split evenly"),
    ({"per_class": 1000}, "only .* distinct ones exist"),
])
def test_digits_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        digits(**kwargs)


# ------------------------------------------------------------------------------------------------------------
# sphere
# ------------------------------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**32 - 1))
def test_sphere_points_have_unit_norm_and_sign_targets(seed):
    dataset = sphere(16, 5, seed=seed)
    assert dataset.x.shape == (16, 5) and dataset.y.shape == (16, 1)
    # Normalizing z / ||z|| leaves a relative error of a few ulps in the norm.
    np.testing.assert_allclose(np.linalg.norm(dataset.x, axis=1), 1.0, rtol=4e-16)
    assert set(np.unique(dataset.y)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(dataset.labels, (dataset.y[:, 0] > 0).astype(int))
    np.testing.assert_array_equal(sphere(16, 5, seed=seed).x, dataset.x)


def test_sphere_is_roughly_uniform():
    x = sphere(4000, 3, seed=0).x
    # Each coordinate of a uniform point on S^2 has mean 0 and variance 1/3: a 5-sigma band for the mean.
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=5 * np.sqrt(1 / 3 / 4000))
    # The sample variance of 4000 points has a standard error of about 0.004; allow 5 of them.
    np.testing.assert_allclose(x.var(axis=0), 1 / 3, atol=0.02)


def test_sphere_gaussian_targets_and_several_outputs():
    dataset = sphere(8, 3, seed=1, targets="gaussian", n_outputs=2)
    assert dataset.y.shape == (8, 2) and dataset.labels is None
    assert sphere(8, 3, seed=1, n_outputs=2).labels is None


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0, "d": 3}, "n must be an integer >= 1"),
    ({"n": 4, "d": 1}, "d must be an integer >= 2"),
    ({"n": 4, "d": 3, "n_outputs": 0}, "n_outputs must be an integer >= 1"),
    ({"n": 4, "d": 3, "targets": "uniform"}, "unknown sphere targets 'uniform'"),
])
def test_sphere_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sphere(seed=0, **kwargs)


# ------------------------------------------------------------------------------------------------------------
# IDX / MNIST
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips_every_type(tmp_path, dtype, compress):
    array = (np.arange(24) - 7).reshape(2, 3, 4).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array, compress=compress)
    loaded = read_idx(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.shape == (2, 3, 4)
    np.testing.assert_array_equal(loaded, array)


def test_read_idx_is_big_endian(tmp_path):
    (tmp_path / "a").write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), [0x0102, -2])


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00", "too short"),
    (b"\x08\x03\x00\x01" + bytes(8), "bad IDX magic number 08030001"),
    (b"\x00\x00\x07\x01" + bytes(8), "bad IDX magic number"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02", r"shape \(3,\) of uint8 .* but the file has 10 bytes"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "but the file has 10 bytes"),
])
def test_read_idx_rejects_malformed_files(tmp_path, content, message):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_reads_both_splits(tmp_path, compress):
    written = write_mnist(tmp_path, compress=compress)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = written[prefix]
        dataset = load_mnist(tmp_path, split=split)
        assert dataset.image_shape == (28, 28) and dataset.name == f"mnist/ten_class/{split}"
        np.testing.assert_array_equal(dataset.x, images.reshape(len(images), -1) / 255.0)
        np.testing.assert_array_equal(dataset.labels, labels)
        np.testing.assert_array_equal(dataset.y, np.eye(10)[labels])
        np.testing.assert_array_equal(dataset.mean, 0.0)


def test_load_mnist_odd_even_and_centering_on_the_training_mean(tmp_path):
    written = write_mnist(tmp_path, size=8)
    train_mean = written["train"][0].reshape(6, -1).mean(axis=0) / 255.0
    test = load_mnist(tmp_path, split="test", task="odd_even", center=True)
    assert test.image_shape == (8, 8)
    # Mean of 6 values / 255 computed in two orders (divide first or last): a few ulps of numbers <= 1.
    np.testing.assert_allclose(test.mean, train_mean, rtol=0, atol=1e-15)
    np.testing.assert_allclose(test.images(), written["t10k"][0] / 255.0, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(test.y[:, 0], np.where(written["t10k"][1] % 2 == 1, 1.0, -1.0))


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte .*not found"):
        load_mnist(tmp_path)
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected 6 labels .* got shape \(5,\)"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(6, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="expected uint8 images"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(ValueError, match="unknown split"):
        load_mnist(tmp_path, split="val")


# ------------------------------------------------------------------------------------------------------------
# CIFAR-10
# ------------------------------------------------------------------------------------------------------------


def test_load_cifar10_converts_channel_major_rows_to_hwc(tmp_path):
    written = write_cifar(tmp_path)
    train = load_cifar10(tmp_path)
    expected = np.concatenate([written[f"data_batch_{k}"][0] for k in range(1, 6)])
    assert train.x.shape == (15, 3072) and train.image_shape == (32, 32, 3)
    np.testing.assert_array_equal(train.images(), expected / 255.0)
    np.testing.assert_array_equal(train.labels, np.concatenate([written[f"data_batch_{k}"][1] for k in range(1, 6)]))
    assert train.class_names == CIFAR10_CLASSES
    test = load_cifar10(tmp_path, split="test")
    np.testing.assert_array_equal(test.images(), written["test_batch"][0] / 255.0)


def test_load_cifar10_finds_the_batches_folder_and_labels_animals(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = write_cifar(folder)
    test = load_cifar10(tmp_path, split="test", task="animal_vehicle", center=True)
    vehicle = np.isin(written["test_batch"][1], [0, 1, 8, 9])
    np.testing.assert_array_equal(test.y[:, 0], np.where(vehicle, -1.0, 1.0))
    assert test.class_names == ("vehicle", "animal")
    train = load_cifar10(tmp_path, center=True)
    np.testing.assert_array_equal(test.mean, train.mean)
    # Column means of the centred training batches vanish up to round-off of 15 numbers <= 1.
    np.testing.assert_allclose(train.x.mean(axis=0), 0.0, atol=1e-15)


def test_load_cifar10_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar10(tmp_path / "nowhere")
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"\['data_batch_3'\] not found"):
        load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), dtype=np.uint8)}))
    with pytest.raises(ValueError, match=r"lacks \['labels'\]"):
        load_cifar10(tmp_path, split="test")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 1024), dtype=np.uint8),
                                                        b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"expected uint8 data of shape \(n, 3072\)"):
        load_cifar10(tmp_path, split="test")
    (tmp_path / "test_batch").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="expected a pickled dict"):
        load_cifar10(tmp_path, split="test")
    with pytest.raises(ValueError, match="unknown CIFAR-10 task 'odd_even'"):
        load_cifar10(tmp_path, task="odd_even")
