"""make_tf_dataset: shapes, dtypes, value range, exact decoding, seeded determinism, augmentation geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from data_factory import encode, face_like

from agelens.data import pipeline
from agelens.data.images import load_image, resize_for_model
from agelens.data.pipeline import augment_batch, make_tf_dataset
from agelens.data.sources import Dataset, Record, load_dataset

SIZE = 24


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    folder = tmp_path_factory.mktemp("pipe")
    for i, age in enumerate((5, 12, 25, 31, 40, 52, 61, 70, 88, 99, 17)):
        h, w = (30 + 3 * i, 20 + 5 * i) if i % 2 else (18 + i, 40)
        (folder / f"{age}_0_0_{i:03d}.jpg").write_bytes(encode(face_like(h, w, seed=i), "JPEG"))
    return load_dataset(folder)


def _epoch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_shapes_dtypes_and_exact_pixels_without_augmentation(dataset: Dataset) -> None:
    batches = list(make_tf_dataset(dataset, SIZE, batch_size=4))
    assert [int(x.shape[0]) for x, _ in batches] == [4, 4, 3]
    for x, y in batches:
        assert x.dtype == tf.float32 and y.dtype == tf.int32
        assert tuple(x.shape[1:]) == (SIZE, SIZE, 3)
    images, labels = _epoch(make_tf_dataset(dataset, SIZE, batch_size=4))
    np.testing.assert_array_equal(labels, dataset.labels)
    expected = np.stack([resize_for_model(load_image(p), SIZE) for p in dataset.paths])
    np.testing.assert_array_equal(images, expected.astype(np.float32))  # 0..255, not normalised


def test_augmented_values_stay_in_range_and_change_pixels(dataset: Dataset) -> None:
    images, _ = _epoch(make_tf_dataset(dataset, SIZE, batch_size=4, augment=1.0, seed=1))
    plain, _ = _epoch(make_tf_dataset(dataset, SIZE, batch_size=4))
    assert images.dtype == np.float32 and images.min() >= 0.0 and images.max() <= 255.0
    assert not np.allclose(images, plain)


def test_seeded_determinism_across_builds_and_fresh_epochs(dataset: Dataset) -> None:
    def two_epochs(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        ds = make_tf_dataset(dataset, SIZE, batch_size=4, augment=1.0, shuffle=True, seed=seed)
        return [_epoch(ds), _epoch(ds)]

    a, b, c = two_epochs(7), two_epochs(7), two_epochs(8)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], a[1][0])  # every epoch is reshuffled and re-augmented
    assert not np.array_equal(a[0][0], c[0][0])
    assert sorted(a[0][1]) == sorted(dataset.labels)  # a shuffle, not a resample


def test_with_ages_targets(dataset: Dataset) -> None:
    x, targets = next(iter(make_tf_dataset(dataset, SIZE, batch_size=5, with_ages=True)))
    assert tuple(x.shape) == (5, SIZE, SIZE, 3)
    onehot = np.eye(3, dtype=np.float32)[dataset.labels[:5]]
    np.testing.assert_array_equal(targets["age_group"].numpy(), onehot)
    np.testing.assert_array_equal(targets["age"].numpy(), dataset.ages[:5, None].astype(np.float32))


def test_with_ages_needs_ages_and_class_count(dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        make_tf_dataset(dataset.records, SIZE, with_ages=True)
    no_age = [Record(r.path, r.label) for r in dataset.records]
    with pytest.raises(ValueError, match="age"):
        make_tf_dataset(no_age, SIZE, with_ages=True, num_classes=3)


@pytest.mark.parametrize("bad", [{"augment": 1.5}, {"size": 0}, {"batch_size": 0}])
def test_bad_arguments(dataset: Dataset, bad: dict) -> None:
    kwargs = {"size": SIZE, **bad}
    with pytest.raises(ValueError):
        make_tf_dataset(dataset, **kwargs)


def test_unreadable_file_stops_iteration_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "1_0_0_bad.jpg"
    bad.write_bytes(b"")
    with pytest.raises(tf.errors.OpError, match="empty file"):
        list(make_tf_dataset([Record(bad, 0)], SIZE))


def test_augment_strength_zero_is_identity() -> None:
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (3, 16, 12, 3)), tf.float32)
    out = augment_batch(x, 0.0, tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-3)


def test_augment_flip_geometry(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every range but the flip at zero, each image is either untouched or exactly mirrored."""
    for name in ("MAX_ROTATION", "MAX_SHIFT", "MAX_ZOOM", "MAX_BRIGHTNESS", "MAX_CONTRAST"):
        monkeypatch.setattr(pipeline, name, 0.0)
    x = np.random.default_rng(0).uniform(0, 255, (16, 9, 7, 3)).astype(np.float32)
    out = augment_batch(tf.constant(x), 1.0, tf.constant([3, 4], tf.int64)).numpy()
    flipped = [np.allclose(o, xi[:, ::-1], atol=1e-3) for o, xi in zip(out, x, strict=True)]
    same = [np.allclose(o, xi, atol=1e-3) for o, xi in zip(out, x, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert 0 < sum(flipped) < len(x)
