"""Explanation.save/load give the photos back exactly, however they were given, and ``==`` works.

API review: photos given in memory (arrays, PIL images, bytes) were never written, and load
put a flat grey square in their place with a warning that read like a moved file; the
metrics then scored the grey squares. And ``a == b`` raised "truth value of an array is
ambiguous" (the dataclass's generated ``__eq__`` compared numpy fields with ``==``).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import warnings

import numpy as np
import pytest
from explain_models import QUAD, quadrant_model
from PIL import Image

from agelens.explain import Explanation, explain
from agelens.metrics import explanation_inputs

METHOD = "saliency"  # never blank on the quadrant model, so no BlankMapsWarning to filter


@pytest.fixture(scope="module")
def model():
    return quadrant_model()


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _load_quietly(folder, **kw) -> Explanation:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a grey stand-in would fail here
        return Explanation.load(folder, **kw)


def _manifest(folder) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _same_images(a: Explanation, b: Explanation) -> None:
    assert len(a.images) == len(b.images)
    for i, (x, y) in enumerate(zip(a.images, b.images, strict=True)):
        assert x.dtype == y.dtype == np.uint8 and np.array_equal(x, y), f"image {i} differs"


def test_photos_given_in_memory_come_back_exactly(model, tmp_path):
    """The review's reproduction: an array and a slice of it, plus a PIL image and encoded bytes."""
    img = _photo(48, 40, 0)
    pil = Image.fromarray(_photo(36, 52, 1))
    e = explain(model, [img, img[:30], pil, _png_bytes(_photo(33, 33, 2))], method=METHOD)
    written = e.save(tmp_path / "out")
    back = _load_quietly(tmp_path / "out")
    _same_images(e, back)
    assert back.stand_ins == []
    records = _manifest(tmp_path / "out")["images"]
    for r in records:  # each photo saved beside its maps, listed with the files written
        assert (tmp_path / "out" / r["image_file"]).is_file() and r["image_file"] in r["files"]
        assert tmp_path / "out" / r["image_file"] in written
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "out" / records[1]["image_file"])), img[:30]
    )
    x, _ = explanation_inputs(back, QUAD)  # the metrics see the photos, not grey squares
    np.testing.assert_array_equal(x, explanation_inputs(e, QUAD)[0])
    back.save(tmp_path / "again")  # a loaded explanation saves its photos again
    _same_images(e, _load_quietly(tmp_path / "again"))


def test_a_photo_file_is_not_copied_but_read_back(model, tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(_photo(40, 56, 3)).save(path)
    e = explain(model, [str(path)], method=METHOD)
    e.save(tmp_path / "out")
    (record,) = _manifest(tmp_path / "out")["images"]
    assert "image_file" not in record and len(list((tmp_path / "out").glob("*.png"))) == 2  # overlay, panel
    _same_images(e, _load_quietly(tmp_path / "out"))


@pytest.mark.parametrize("change", ["deleted", "rewritten"])
def test_a_photo_file_gone_or_changed_before_saving_is_saved_with_the_explanation(model, tmp_path, change):
    path = tmp_path / "p.png"
    Image.fromarray(_photo(40, 40, 4)).save(path)
    e = explain(model, [str(path)], method=METHOD)
    if change == "deleted":
        path.unlink()
    else:  # same size, other pixels: re-reading it would give another photo under the same map
        Image.fromarray(_photo(40, 40, 5)).save(path)
    e.save(tmp_path / "out")
    back = _load_quietly(tmp_path / "out")
    _same_images(e, back)
    assert back.sources == e.sources


def test_a_photo_file_changed_after_saving_is_a_stand_in_not_a_silent_mismatch(model, tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(_photo(40, 40, 6)).save(path)
    e = explain(model, [str(path), _photo(40, 40, 7)], method=METHOD)
    e.save(tmp_path / "out")
    Image.fromarray(_photo(40, 40, 8)).save(path)  # same size: only its pixels tell
    with pytest.warns(UserWarning, match=r"p\.png: photo file has changed since it was explained"):
        back = Explanation.load(tmp_path / "out")
    assert back.stand_ins == [0] and (back.images[0] == 128).all()
    np.testing.assert_array_equal(back.images[1], e.images[1])
    with pytest.warns(UserWarning, match=r"image 0 \(.*p\.png\): a grey stand-in"):
        explanation_inputs(back, QUAD)


def test_a_face_crop_comes_back_as_explained(model, tmp_path, monkeypatch):
    """With detect=True the image explained is the crop: an in-memory photo's crop is saved, and a
    file's is cut again by its recorded box (no detector needed, which may find nothing in noise)."""
    from agelens.model import faces

    def fake_detector(img):
        box = (8, 6, 20, 20)
        return faces.crop_box(img, *faces.chip_box(box)), box

    photo = _photo(60, 70, 9)
    path = tmp_path / "p.png"
    Image.fromarray(photo).save(path)
    monkeypatch.setattr(faces, "crop_largest_face", fake_detector)
    e = explain(model, [photo, str(path)], method=METHOD, detect=True)
    monkeypatch.undo()  # load must not need the detector to find the same face again
    assert e.images[0].shape == (25, 25, 3) and all(f["face_found"] for f in e.faces)
    e.save(tmp_path / "out")
    records = _manifest(tmp_path / "out")["images"]
    assert "image_file" in records[0] and "image_file" not in records[1]
    back = _load_quietly(tmp_path / "out")
    _same_images(e, back)
    assert back.faces == e.faces


def test_a_missing_photo_file_is_said_missing_and_the_metrics_warn(model, tmp_path):
    path = tmp_path / "gone.png"
    Image.fromarray(_photo(40, 40, 10)).save(path)
    e = explain(model, [str(path)], method=METHOD)
    e.save(tmp_path / "out")
    path.unlink()
    with pytest.warns(UserWarning, match=r"gone\.png: photo file is missing.*grey stand-in"):
        back = Explanation.load(tmp_path / "out")
    assert back.stand_ins == [0] and (back.images[0] == 128).all()
    with pytest.warns(UserWarning, match="grey stand-in"):
        explanation_inputs(back, QUAD)


def test_a_folder_saved_before_photos_were_kept_still_loads(model, tmp_path):
    """An older manifest has no image_file (nor image_sha256): files are re-read as before, and an
    in-memory photo, never written, gets the stand-in with a warning saying why."""
    path = tmp_path / "p.png"
    Image.fromarray(_photo(40, 40, 11)).save(path)
    e = explain(model, [str(path), _photo(30, 44, 12)], method=METHOD)
    e.save(tmp_path / "out")
    manifest = _manifest(tmp_path / "out")
    for r in manifest["images"]:
        r.pop("image_sha256", None)
        if "image_file" in r:
            (tmp_path / "out" / r.pop("image_file")).unlink()
            r["files"] = [f for f in r["files"] if not f.endswith("_image.png")]
    manifest["files"] = [f for f in manifest["files"] if not f.endswith("_image.png")]
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match=r"<image 1>: .*in memory.*not saved.*grey stand-in"):
        back = Explanation.load(tmp_path / "out")
    np.testing.assert_array_equal(back.images[0], e.images[0])
    assert back.stand_ins == [1] and back.images[1].shape == (30, 44, 3)


def test_explanations_compare_by_value(model, tmp_path):
    e = explain(model, [_photo(40, 40, 13), _photo(30, 50, 14)], method=METHOD)
    assert e == e and e == copy.deepcopy(e)
    other = copy.deepcopy(e)
    other.maps[1][0, 0] += 0.5
    assert e != other
    assert e != dataclasses.replace(e, images=[e.images[0], e.images[1].copy() // 2])
    assert e != dataclasses.replace(e, probabilities=e.probabilities[::-1])
    assert e != dataclasses.replace(e, method="gradcam")
    assert e != "an explanation" and e is not None
    e.save(tmp_path / "out")
    assert _load_quietly(tmp_path / "out") == _load_quietly(tmp_path / "out")
    assert e in [copy.deepcopy(e)]
