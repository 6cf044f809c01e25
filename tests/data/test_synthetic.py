"""Tests for the synthetic face generator: determinism, masks, nuisance independence, learnability."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agelens.data.bins import AgeBins
from agelens.data.synthetic import (
    REGION_NAMES,
    SynthFaces,
    age_series,
    generate,
    load_masks,
    write_dataset,
)

ARRAYS = ("images", "ages", "labels", "cue_masks", "region_masks", "stamp_masks")


@pytest.fixture(scope="module")
def batch() -> SynthFaces:
    """600 faces at 64 px: enough for group statistics, quick to make (~1 s)."""
    return generate(600, 64, seed=11)


def _same(a: SynthFaces, b: SynthFaces, sl: slice = slice(None)) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name)[sl], getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), name


def test_same_seed_same_bytes_and_other_seed_differs():
    a, b = generate(6, 64, seed=5), generate(6, 64, seed=5)
    _same(a, b)
    c = generate(6, 64, seed=6)
    assert not np.array_equal(a.images, c.images)


def test_prefix_and_start_give_the_same_images():
    big = generate(9, 48, seed=3)
    _same(big, generate(4, 48, seed=3), slice(0, 4))
    _same(big, generate(3, 48, seed=3, start=5), slice(5, 8))


def test_shapes_dtypes_and_ranges(batch):
    n, s = len(batch), 64
    assert batch.images.shape == (n, s, s, 3) and batch.images.dtype == np.uint8
    assert batch.ages.shape == (n,) and batch.ages.dtype == np.float32
    assert batch.labels.shape == (n,) and np.issubdtype(batch.labels.dtype, np.integer)
    for name in ("cue_masks", "stamp_masks"):
        m = getattr(batch, name)
        assert m.shape == (n, s, s) and m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1
    assert batch.region_masks.shape == (n, s, s) and batch.region_masks.dtype == np.uint8
    assert batch.region_masks.max() < len(REGION_NAMES)
    assert batch.ages.min() >= 1 and batch.ages.max() <= 90
    np.testing.assert_array_equal(batch.labels, AgeBins().index(batch.ages))
    assert batch.class_names == AgeBins().names
    assert not batch.stamp_masks.any()  # no shortcut asked for


def test_class_balance(batch):
    counts = np.bincount(batch.labels, minlength=3)
    assert counts.min() >= 0.8 * len(batch) / 3, counts
    bins = AgeBins((18.0,), ("minor", "adult"))
    balanced = generate(200, 32, seed=1, bins=bins).labels.mean()
    natural = generate(200, 32, seed=1, bins=bins, class_balance=False).labels.mean()
    assert 0.4 < balanced < 0.6 and natural > 0.7  # 1..90 uniform: ~80 % adults


def test_every_face_has_all_regions(batch):
    for r in batch.region_masks[:40]:
        assert set(np.unique(r)) == set(range(len(REGION_NAMES)))


def test_cue_masks_empty_for_young_and_growing_with_age(batch):
    area = batch.cue_masks.sum(axis=(1, 2))
    assert np.all(area[batch.ages <= 29] == 0)
    old, middle = area[batch.labels == 2], area[batch.labels == 1]
    assert np.all(old > 0)
    assert old.mean() > 1.5 * middle.mean()
    # Cues sit on the head: only anti-aliased edge pixels (within 1 px of it) may fall on the background.
    head = np.array(
        [cv2.dilate((r > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) for r in batch.region_masks]
    )
    assert (batch.cue_masks * (head == 0)).sum() < 1e-3 * batch.cue_masks.sum()


def test_age_changes_only_pixels_inside_the_cue_mask():
    """Same person at 25 and at 85: every pixel the age changed is (up to 1 px) in the cue mask."""
    kernel = np.ones((3, 3), np.uint8)
    for index in range(6):
        f = age_series([25, 85], index=index, size=80, seed=2)
        changed = np.abs(f.images[1].astype(int) - f.images[0]).max(-1) > 0
        mask = cv2.dilate((f.cue_masks[1] > 0).astype(np.uint8), kernel) > 0
        assert changed.sum() > 200
        assert (changed & ~mask).sum() <= 0.01 * changed.sum()
    young = age_series([20, 24, 29], index=1, size=64)
    assert np.array_equal(young.images[0], young.images[2]) and not young.cue_masks.any()


def test_nuisance_does_not_predict_the_group(batch):
    """Skin brightness, face position, scale, tilt: group means within 0.35 std.

    With ~200 faces per group a group mean has a standard error of 0.07 std, so the range of
    three means exceeds 0.35 std (5 SE) by chance with probability well under 0.1 %.
    """
    grey = batch.images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    nose = batch.region_masks == REGION_NAMES.index("nose")
    eyes = batch.region_masks == REGION_NAMES.index("eyes")
    ys, xs = np.mgrid[0:64, 0:64]
    measures = {
        "nose_brightness": np.array([np.median(g[m]) for g, m in zip(grey, nose, strict=True)]),
        "eyes_x": (eyes * xs).sum((1, 2)) / eyes.sum((1, 2)),
        "eyes_y": (eyes * ys).sum((1, 2)) / eyes.sum((1, 2)),
        "skin": batch.params["skin_luminance"],
        "scale": batch.params["face_scale"],
        "tilt": batch.params["tilt_deg"],
    }
    for name, x in measures.items():
        means = [x[batch.labels == c].mean() for c in range(3)]
        assert max(means) - min(means) < 0.35 * x.std(), (name, means)


def _grey24(faces: SynthFaces) -> np.ndarray:
    small = [
        cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), (24, 24), interpolation=cv2.INTER_AREA)
        for im in faces.images
    ]
    return np.asarray(small, np.float32).reshape(len(small), -1) / 255


def test_linear_model_on_tiny_greyscale_beats_chance():
    """Closed-form ridge (not an iterative solver): stays ~0.1 s even on a busy, shared CPU."""
    from sklearn.linear_model import RidgeClassifier

    train, test = generate(400, 48, seed=1), generate(200, 48, seed=2)
    model = RidgeClassifier(alpha=1.0).fit(_grey24(train), train.labels)
    assert model.score(_grey24(test), test.labels) > 0.5  # chance is 1/3; this gets ~0.7


def test_shortcut_stamp_only_on_its_class():
    plain = generate(60, 64, seed=4)
    hans = generate(60, 64, seed=4, shortcut=1.0, shortcut_class=2)
    stamped = hans.stamp_masks.reshape(60, -1).any(1)
    np.testing.assert_array_equal(stamped, hans.labels == 2)
    side = round(0.08 * 64)
    for k in np.flatnonzero(stamped):
        ys, xs = np.nonzero(hans.stamp_masks[k])
        assert xs.max() - xs.min() + 1 == side and ys.max() - ys.min() + 1 == side
        assert xs.max() < 16 and ys.max() < 16  # top-left corner
        inside = hans.stamp_masks[k] > 0
        assert np.array_equal(hans.images[k][~inside], plain.images[k][~inside])  # face unchanged
        assert not np.array_equal(hans.images[k][inside], plain.images[k][inside])
        assert hans.cue_masks[k][inside].max() == 0
    np.testing.assert_array_equal(hans.images[~stamped], plain.images[~stamped])


def test_shortcut_probability_and_per_class_stamps():
    half = generate(120, 48, seed=9, shortcut=0.5, shortcut_class=0)
    frac = half.stamp_masks.reshape(120, -1).any(1)[half.labels == 0].mean()
    assert 0.25 < frac < 0.75
    every = generate(30, 48, seed=9, shortcut=1.0)
    assert every.stamp_masks.reshape(30, -1).any(1).all()
    corners = {c: every.stamp_masks[every.labels == c].sum(0) > 0 for c in range(3)}
    assert not (corners[0] & corners[1]).any() and not (corners[1] & corners[2]).any()


@pytest.mark.parametrize(
    "kwargs",
    [dict(size=31), dict(size=257), dict(n=-1), dict(seed=-1), dict(shortcut=1.5), dict(shortcut_class=3)],
)
def test_bad_arguments_raise(kwargs):
    args = dict(n=2, size=48) | kwargs
    with pytest.raises(ValueError):
        generate(**args)


def test_write_dataset_round_trip(tmp_path):
    out = tmp_path / "synth"
    summary = write_dataset(out, 12, 48, seed=7, shortcut=1.0, shortcut_class=1)
    ref = generate(12, 48, seed=7, shortcut=1.0, shortcut_class=1)
    assert summary["n"] == 12 and sum(summary["counts"].values()) == 12
    assert summary["counts"]["middle-aged"] == int((ref.labels == 1).sum())
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 12
    masks = load_masks(out)
    assert sorted(masks) == pngs
    with np.load(out / "masks.npz") as z:
        files = [str(f) for f in z["files"]]
    for i, name in enumerate(files):
        assert name.endswith(f"_7{i:07d}.png")
        assert int(name.split("_")[0]) == ref.ages[i]
        rgb = cv2.imread(str(out / name), cv2.IMREAD_COLOR)[..., ::-1]
        np.testing.assert_array_equal(rgb, ref.images[i])  # PNG: lossless
        cue, region, stamp = masks[name]
        assert np.abs(cue - ref.cue_masks[i]).max() <= 0.5 / 255 + 1e-6
        np.testing.assert_array_equal(region, ref.region_masks[i])
        np.testing.assert_array_equal(stamp, ref.stamp_masks[i])
    meta = json.loads((out / "synth.json").read_text())
    assert meta["region_names"] == list(REGION_NAMES) and meta["seed"] == 7 and meta["shortcut_class"] == 1


def test_write_dataset_refuses_non_empty_and_leaves_no_temp(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="non-empty"):
        write_dataset(out, 2, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    empty = tmp_path / "empty"
    empty.mkdir()
    write_dataset(empty, 2, 32)
    assert len(list(empty.glob("*.png"))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 3),
    size=st.integers(32, 160),
    seed=st.integers(0, 2**32 - 1),
    shortcut=st.sampled_from([0.0, 1.0]),
)
def test_any_small_request_gives_valid_arrays(n, size, seed, shortcut):
    f = generate(n, size, seed, shortcut=shortcut)
    assert f.images.shape == (n, size, size, 3) and f.images.dtype == np.uint8
    assert f.cue_masks.shape == f.region_masks.shape == f.stamp_masks.shape == (n, size, size)
    assert np.all((f.cue_masks >= 0) & (f.cue_masks <= 1)) and np.all(f.region_masks < len(REGION_NAMES))
    assert np.all((f.ages >= 1) & (f.ages <= 90)) and np.all(f.labels == AgeBins().index(f.ages))
    assert len(f.params["face_x"]) == n
