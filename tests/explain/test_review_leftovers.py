"""``explained_in``: the one rule telling a saved record's image from a photo changed since.

``Explanation.load`` and the report's gallery both ask it, so a photo the report shows is one
``load`` gives back, and the reverse.
"""

from __future__ import annotations

import numpy as np

from agelens.explain.explanation import explained_in, image_fingerprint


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _record(image: np.ndarray, **more) -> dict:
    return {"size": [image.shape[1], image.shape[0]], "image_sha256": image_fingerprint(image), **more}


def test_a_copy_is_the_image_explained_only_with_its_size_and_pixels() -> None:
    image = _photo(30, 40, 0)
    record = _record(image)
    same, why = explained_in(image.copy(), record)
    assert why == "" and np.array_equal(same, image)
    assert explained_in(_photo(30, 40, 1), record) == (None, "other pixels")
    assert explained_in(image[:20], record) == (None, "40x20, was 40x30")


def test_an_older_record_without_a_fingerprint_checks_the_size_alone() -> None:
    image = _photo(30, 40, 2)
    record = {"size": [40, 30]}
    assert explained_in(_photo(30, 40, 3), record)[1] == ""
    assert explained_in(image[:, :10], record) == (None, "10x30, was 40x30")


def test_a_photo_file_is_checked_by_its_size_then_cut_by_the_recorded_box() -> None:
    from agelens.model.faces import crop_box

    photo = _photo(70, 60, 4)
    crop = crop_box(photo, 10, 12, 30)
    face = {"photo_size": [60, 70], "face_found": True, "crop_box_xywh": [10, 12, 30, 30]}
    record = _record(crop, **face)
    image, why = explained_in(photo, record, photo=True)
    assert why == "" and np.array_equal(image, crop)
    assert explained_in(photo[:69], record, photo=True) == (None, "60x69, was 60x70")
    changed = photo.copy()
    changed[12:42, 10:40] = 255 - changed[12:42, 10:40]  # the face only: same size
    assert explained_in(changed, record, photo=True) == (None, "other pixels")
    whole = _record(photo, photo_size=[60, 70], crop_box_xywh=[0, 0, 60, 70])  # no face: the photo
    assert explained_in(photo, whole, photo=True)[1] == ""


def test_without_the_detector_a_crop_with_no_box_is_checked_by_the_photo_size_alone() -> None:
    photo = _photo(50, 50, 5)
    record = {"size": [20, 20], "image_sha256": "0" * 64, "photo_size": [50, 50], "face_found": True}
    assert explained_in(photo, record, photo=True, detect=False) == (None, "")
    assert explained_in(photo[:40], record, photo=True, detect=False) == (None, "50x40, was 50x50")
