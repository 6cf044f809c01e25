"""Explanation.load: a saved explanation comes back to be re-drawn or scored without the model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agelens.explain import Explanation, explain
from agelens.explain import explanation as explanation_mod


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_a_saved_explanation_loads_back_as_it_was(age_model, tmp_path):
    paths = []
    for i, (h, w) in enumerate([(64, 64), (48, 80)]):
        paths.append(tmp_path / f"p{i}.png")
        Image.fromarray(_photo(h, w, i)).save(paths[-1])
    e = explain(age_model, [str(p) for p in paths], method="integrated-gradients", target="old", signed=True)
    e.save(tmp_path / "out")
    back = Explanation.load(tmp_path / "out")
    assert (back.method, back.layer, back.target, back.class_names) == (
        e.method,
        e.layer,
        e.target,
        e.class_names,
    )
    assert back.signed and back.settings == e.settings and back.sources == e.sources
    for a, b in zip(back.maps, e.maps, strict=True):
        np.testing.assert_array_equal(a, b)  # the signed maps keep their negative half
    assert any(m.min() < 0 for m in back.maps)
    np.testing.assert_allclose(back.probabilities, e.probabilities, atol=1e-6)
    np.testing.assert_allclose(back.ages, e.ages, atol=0.01)
    for a, b in zip(back.images, e.images, strict=True):
        np.testing.assert_array_equal(a, b)
    assert back.caption(1) == e.caption(1)
    back.save(tmp_path / "again")  # and it saves again


def test_a_shrunk_map_comes_back_at_the_photos_size_and_a_lost_photo_is_grey(
    age_model, tmp_path, monkeypatch
):
    monkeypatch.setattr(explanation_mod, "MAP_MAX_SIDE", 60)
    photo = tmp_path / "big.png"
    Image.fromarray(_photo(90, 150, 3)).save(photo)
    e = explain(age_model, [str(photo)], method="gradcam")
    e.save(tmp_path / "out")
    photo.unlink()
    with pytest.warns(UserWarning, match=r"big\.png: photo file is missing"):
        back = Explanation.load(tmp_path / "out")
    assert back.maps[0].shape == (90, 150) and back.images[0].shape == (90, 150, 3)
    np.testing.assert_allclose(back.maps[0].mean(), e.maps[0].mean(), atol=0.02)
    assert (back.images[0] == 128).all()


def test_a_cli_folder_of_several_methods_needs_the_method_named(age_model, tmp_path):
    from agelens.cli.main import app
    from agelens.model.io import save_model

    model_file = save_model(age_model, tmp_path / "m.keras")
    Image.fromarray(_photo(64, 64, 5)).save(tmp_path / "b.png")
    out = tmp_path / "cli"
    args = ["explain", str(tmp_path / "b.png"), "-m", str(model_file), "--method", "gradcam,saliency"]
    res = CliRunner().invoke(app, [*args, "--no-detect", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with pytest.raises(ValueError, match=r"2 methods \(gradcam, saliency\); pass method="):
        Explanation.load(out)
    with pytest.raises(ValueError, match="no 'occlusion' explanation"):
        Explanation.load(out, method="occlusion")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the photo is still there: no stand-in
        back = Explanation.load(out, method="saliency")
    assert back.method == "saliency" and len(back) == 1 and back.maps[0].shape == back.images[0].shape[:2]
    for method in ("gradcam", "saliency"):  # each method's own maps, not the first file's
        saved = np.load(next(out.glob(f"*_{method}_map.npy")))
        np.testing.assert_array_equal(Explanation.load(out, method=method).maps[0], saved)
    assert not np.array_equal(*(np.load(next(out.glob(f"*_{m}_map.npy"))) for m in ("gradcam", "saliency")))


def test_a_folder_without_a_manifest_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a saved explanation"):
        Explanation.load(tmp_path)
