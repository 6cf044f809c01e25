"""The report's cards show the photo an Explanation saved beside its maps (``image_file``).

``Explanation.save`` keeps photos given in memory (arrays, PIL images, bytes), and photo files
gone or changed by the time of saving, as lossless PNGs, with the fingerprint of the pixels
explained (``image_sha256``). The gallery only looked for the photo at its source path: a
report of in-memory photos showed "photo not found" on every card, and a file changed since
showed the new picture beside maps of the old one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_factory import as_shown, card_pixels, smooth_picture

from agelens.explain.explanation import Explanation
from agelens.report.assets import Notes, photo_uri
from agelens.report.gallery import CHANGED, NOT_FOUND, NOT_KEPT, PHOTO_SIDE, GalleryItem, build_gallery
from agelens.report.html import write_report

CLASSES = ["young", "middle-aged", "old"]


def _explanation(
    images: list[np.ndarray], sources: list[str], faces: list[dict] | None = None
) -> Explanation:
    """What ``agelens.explain`` returns, built by hand: the report needs no model."""
    maps = [
        np.linspace(0, 1, im.shape[0] * im.shape[1], dtype=np.float32).reshape(im.shape[:2]) for im in images
    ]
    probs = np.tile(np.asarray([[0.2, 0.5, 0.3]], np.float32), (len(images), 1))
    return Explanation(
        maps=maps,
        probabilities=probs,
        class_names=CLASSES,
        layer="conv",
        method="gradcam",
        target="predicted class",
        images=list(images),
        sources=sources,
        faces=faces,
    )


def _records(folder: Path) -> list[dict]:
    return json.loads((folder / "manifest.json").read_text())["images"]


def _gallery_items(folder: Path) -> tuple[list[GalleryItem], Notes]:
    """The cards ``agelens report FOLDER`` draws for a folder ``Explanation.save`` wrote."""
    notes = Notes()
    manifest = json.loads((folder / "manifest.json").read_text())
    gallery = build_gallery(folder, manifest, folder, notes)
    assert gallery is not None
    return gallery.items, notes


def _assert_shows(uri: str | None, image: np.ndarray, other: np.ndarray | None = None) -> None:
    """The card's photo is ``image`` (exactly where embedded as PNG, within JPEG's loss otherwise)."""
    assert uri is not None
    shown, want = card_pixels(uri), as_shown(image)
    assert shown.shape == want.shape
    diff = np.abs(shown.astype(int) - want.astype(int)).mean()
    if uri.startswith("data:image/png"):
        assert diff == 0
    else:
        assert diff < 4, diff
    if other is not None:  # and clearly not the other picture
        assert np.abs(shown.astype(int) - as_shown(other).astype(int)).mean() > 20


def test_in_memory_photos_show_their_saved_copy_in_the_report(tmp_path: Path) -> None:
    """The documented way: save in Python, then ``agelens report FOLDER`` (write_report)."""
    small, big = smooth_picture(40, 48, 0), smooth_picture(500, 420, 1)  # big: shrunk to PHOTO_SIDE
    folder = tmp_path / "ex"
    _explanation([small, big], ["<image 0>", "<image 1>"]).save(folder)
    records = _records(folder)
    assert all("image_file" in r for r in records)
    page = write_report(folder).read_text(encoding="utf-8")
    assert "photo not found" not in page and NOT_KEPT not in page
    shown = re.findall(r'<img class="photo" src="([^"]+)"', page)
    assert len(shown) == 2
    for uri, image, record in zip(shown, (small, big), records, strict=True):
        saved = np.asarray(Image.open(folder / record["image_file"]).convert("RGB"))
        np.testing.assert_array_equal(saved, image)
        _assert_shows(uri, saved)
        assert uri == photo_uri(folder / record["image_file"], max_side=PHOTO_SIDE)  # the page's size rules
    assert max(card_pixels(shown[1]).shape[:2]) == PHOTO_SIDE
    assert records[0]["image_sha256"] not in page  # shown as a photo, not as a 64-digit column


@pytest.mark.parametrize("then", ["kept", "deleted after saving"])
def test_a_photo_file_changed_before_saving_shows_the_copy(tmp_path: Path, then: str) -> None:
    path = tmp_path / "p.png"
    explained, later = smooth_picture(60, 50, 2), smooth_picture(60, 50, 3)  # same size: only the pixels tell
    Image.fromarray(explained).save(path)
    e = _explanation([explained], [str(path)])
    Image.fromarray(later).save(path)
    e.save(tmp_path / "ex")
    (record,) = _records(tmp_path / "ex")
    assert "image_file" in record
    if then == "deleted after saving":
        path.unlink()
    (item,), _ = _gallery_items(tmp_path / "ex")
    _assert_shows(item.photo, explained, other=later)
    assert item.title == "p.png"


def test_a_photo_file_gone_before_saving_shows_the_copy(tmp_path: Path) -> None:
    path = tmp_path / "gone.png"
    explained = smooth_picture(44, 44, 4)
    Image.fromarray(explained).save(path)
    e = _explanation([explained], [str(path)])
    path.unlink()
    e.save(tmp_path / "ex")
    (item,), _ = _gallery_items(tmp_path / "ex")
    _assert_shows(item.photo, explained)


def test_a_photo_file_changed_after_saving_is_not_shown_as_the_one_explained(tmp_path: Path) -> None:
    """A file that read back as explained is not copied; changed later, only its fingerprint tells."""
    path = tmp_path / "p.png"
    explained = smooth_picture(40, 40, 5)
    Image.fromarray(explained).save(path)
    _explanation([explained], [str(path)]).save(tmp_path / "ex")
    (record,) = _records(tmp_path / "ex")
    assert "image_file" not in record and "image_sha256" in record
    (item,), notes = _gallery_items(tmp_path / "ex")
    assert item.photo == photo_uri(path, max_side=PHOTO_SIDE)  # unchanged: the file, as always
    Image.fromarray(smooth_picture(40, 40, 6)).save(path)
    (item,), notes = _gallery_items(tmp_path / "ex")
    assert item.photo is None and item.photo_gap == CHANGED
    assert any("1 photo file has changed since explained" in n for n in notes.items)
    page = write_report(tmp_path / "ex").read_text(encoding="utf-8")
    assert CHANGED in page and '<img class="photo"' not in page


def test_a_face_crop_is_checked_by_its_recorded_box(tmp_path: Path) -> None:
    """With a face cropped the fingerprint is the crop's: cut again by ``crop_box_xywh`` to check
    the file; the card shows the crop explained, from the file as from a copy (the whole photo beside
    a map of its face crop showed the face at two scales)."""
    from agelens.model.faces import crop_box

    photo = smooth_picture(70, 60, 7)
    box = [10, 12, 30, 30]
    face = {
        "photo_size": [60, 70],
        "face_found": True,
        "face_box_xywh": [14, 14, 24, 24],
        "crop_box_xywh": box,
    }
    path = tmp_path / "p.png"
    Image.fromarray(photo).save(path)
    crop = crop_box(photo, 10, 12, 30)
    _explanation([crop, crop], [str(path), "<image 1>"], faces=[face, face]).save(tmp_path / "ex")
    records = _records(tmp_path / "ex")
    assert "image_file" not in records[0] and "image_file" in records[1]
    (from_file, from_copy), _ = _gallery_items(tmp_path / "ex")
    _assert_shows(from_file.photo, crop)
    _assert_shows(from_copy.photo, crop)
    changed = photo.copy()
    changed[12:42, 10:40] = 255 - changed[12:42, 10:40]  # the face only: same size
    Image.fromarray(changed).save(path)
    (from_file, _), _ = _gallery_items(tmp_path / "ex")
    assert from_file.photo is None and from_file.photo_gap == CHANGED


def test_a_copy_changed_since_saving_is_not_shown(tmp_path: Path) -> None:
    """The copy must hold the pixels explained too; where it does not, the photo file may serve."""
    path = tmp_path / "p.png"
    explained = smooth_picture(40, 40, 8)
    Image.fromarray(explained).save(path)
    e = _explanation([explained, smooth_picture(30, 30, 9)], [str(path), "<image 1>"])
    path.unlink()
    e.save(tmp_path / "ex")
    records = _records(tmp_path / "ex")
    for r in records:
        Image.fromarray(
            smooth_picture(*Image.open(tmp_path / "ex" / r["image_file"]).size[::-1], seed=10)
        ).save(tmp_path / "ex" / r["image_file"])
    Image.fromarray(explained).save(path)  # the photo file is back as explained
    (first, second), notes = _gallery_items(tmp_path / "ex")
    _assert_shows(first.photo, explained)
    assert second.photo is None and second.photo_gap == CHANGED


def _old_style(folder: Path) -> None:
    """As a folder saved before photos were kept: no image_file, no image_sha256, no copies."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for r in manifest["images"]:
        r.pop("image_sha256", None)
        if "image_file" in r:
            (folder / r.pop("image_file")).unlink()
            r["files"] = [f for f in r["files"] if not f.endswith("_image.png")]
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_old_style_records_show_what_they_showed_before(tmp_path: Path) -> None:
    """No fingerprint to check against: a photo file is shown as it is now (changed or not), and an
    in-memory photo, never written, has none (the card now says why)."""
    path = tmp_path / "p.png"
    explained = smooth_picture(40, 40, 11)
    Image.fromarray(explained).save(path)
    _explanation([explained, smooth_picture(30, 44, 12)], [str(path), "<image 1>"]).save(tmp_path / "ex")
    _old_style(tmp_path / "ex")
    (from_file, in_memory), notes = _gallery_items(tmp_path / "ex")
    assert from_file.photo == photo_uri(path, max_side=PHOTO_SIDE)
    assert in_memory.photo is None and in_memory.photo_gap == NOT_KEPT
    Image.fromarray(smooth_picture(40, 40, 13)).save(path)
    (from_file, _), _ = _gallery_items(tmp_path / "ex")
    assert from_file.photo == photo_uri(path, max_side=PHOTO_SIDE)  # as before: nothing tells it changed
    path.unlink()
    (from_file, _), notes = _gallery_items(tmp_path / "ex")
    assert from_file.photo is None and from_file.photo_gap == NOT_FOUND
    assert not any("changed" in n for n in notes.items)
