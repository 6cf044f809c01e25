"""Builders for hand-made run folders (tiny PNGs and fake JSON) used by the report tests."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

# Where the browser tests leave their screenshots (a plain module, not conftest: another
# test folder's conftest may be the one imported under that name).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "outputs" / "screenshots"

CLASSES = ["young", "middle-aged", "old"]
METHODS = ["gradcam", "gradcam++", "scorecam"]
LAYERS = ["out_relu", "block_13_expand_relu"]
TARGETS = [None, "old"]


def png(path: Path, seed: int, size: int = 24) -> str:
    """Write a small distinctive PNG (each seed gives different bytes) and return its name."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path.name


def write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def make_run(root: Path, n_images: int = 3, schema: str = "metrics") -> Path:
    """A run folder with every optional part present.

    ``schema="metrics"`` writes scores the way ``agelens.metrics`` does (regions inside
    scores.json); ``"legacy"`` a flat, name-keyed variant plus regions.json, for the fallback path.
    """
    run = root / "run-demo"
    write_json(
        run / "manifest.json",
        {
            "name": "demo run",
            "seed": 0,
            "input_size": 64,
            "versions": {"agelens": "0.1.0", "tensorflow": "2.21.0"},
            "timings": {"train_s": 12.5, "evaluate_s": 1.25},
        },
    )
    (run / "model_card.md").write_text(
        "# Model card\n\nTrained on **UTKFace**. See [the dataset](https://example.org/utk).\n\n"
        "![remote](https://example.org/x.png)\n\n![local](evaluation/confusion_matrix.png)\n"
    )
    write_json(
        run / "evaluation/metrics.json",
        {
            "accuracy": 0.8,
            "balanced_accuracy": 0.75,
            "macro_f1": 0.74,
            "per_class": {c: {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 10} for c in CLASSES},
            "confusion_matrix": [[8, 2, 0], [1, 7, 2], [0, 1, 9]],
            "confusion_matrix_normalized": [[0.8, 0.2, 0.0], [0.1, 0.7, 0.2], [0.0, 0.1, 0.9]],
            "class_names": CLASSES,
            "n_images": 30,
            "n_skipped": 1,
        },
    )
    png(run / "evaluation/confusion_matrix.png", 1)
    _explain(run / "explain", n_images)
    if schema == "metrics":
        write_json(run / "scores/scores.json", scores_json())
    else:
        write_json(run / "scores/scores.json", legacy_scores_json())
        write_json(run / "scores/regions.json", {"young": {"eyes": 0.3, "mouth": 0.2}, "old": {"eyes": 0.5}})
    png(run / "scores/curves_deletion.png", 2)
    png(run / "scores/region_shares.png", 3)
    png(run / "scores/class_means.png", 4)
    write_json(
        run / "scores/shortcut.json",
        {
            "config": {"n_train": 600, "n_test": 200, "size": 64, "seed": 0, "methods": ["gradcam"]},
            "accuracy": {"stamped": score(0.99), "clean": score(0.41), "drop": score(0.58)},
            "methods": {
                "gradcam": {"stamp_energy": score(0.62), "stamp_area": 0.02, "cue_energy": score(0.1)},
                "random": {"stamp_energy": score(0.02), "stamp_area": 0.02, "cue_energy": score(0.08)},
            },
        },
    )
    png(run / "scores/shortcut.png", 5)
    return run


def _faces(n: int) -> np.ndarray:
    from agelens.data.synthetic import generate

    return generate(n, size=96, seed=7).images


def _blend(face: np.ndarray, k: int) -> np.ndarray:
    """A warm blob over the face whose position depends on ``k``: each variant looks different."""
    h, w = face.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / h
    cy, cx = 0.3 + 0.12 * (k % 4), 0.25 + 0.15 * (k % 5)
    m = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)[..., None]
    colour = np.concatenate([np.ones_like(m), m, np.zeros_like(m)], axis=2) * 255
    return (face * (1 - 0.5 * m) + colour * 0.5 * m).astype(np.uint8)


def _explain(ex: Path, n_images: int) -> None:
    """explain/manifest.json as the explain CLI writes it, with face photos and distinct overlays."""
    faces = _faces(n_images)
    images = []
    k = 0
    for i in range(n_images):
        maps = []
        for m in METHODS:
            for layer in LAYERS:
                for t in TARGETS:
                    k += 1
                    rel = f"maps/img{i}_{m}_{layer}_{t}.png"
                    save(ex / rel, _blend(faces[i], k))
                    maps.append(
                        {"method": m, "layer": layer, "target": t, "overlay": rel, "npy": rel[:-4] + ".npy"}
                    )
        filters = [{"layer": "out_relu", "grid": f"filters/img{i}_out_relu.png"}]
        png(ex / filters[0]["grid"], 900 + i, size=48)
        images.append(
            {
                "file": f"images/img{i}.png",
                "source": f"/data/img{i}.jpg",
                "predicted": CLASSES[i % 3],
                "probabilities": {c: (0.6 if j == i % 3 else 0.2) for j, c in enumerate(CLASSES)},
                "age": 20.0 + 25 * i,
                "maps": maps,
                "filters": filters,
            }
        )
        save(ex / f"images/img{i}.png", faces[i])
    write_json(
        ex / "manifest.json", {"images": images, "methods": METHODS, "layers": LAYERS, "targets": TARGETS}
    )


def save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def score(mean: float) -> dict:
    return {"mean": mean, "ci_low": mean - 0.05, "ci_high": mean + 0.05, "n": 20}


def scores_json() -> dict:
    """Shaped like ``agelens.metrics.report.ScoreTable.to_dict()``."""
    metrics = [
        {"name": "deletion", "higher_is_better": False, "applies_to": "any", "category": "faithfulness"},
        {"name": "insertion", "higher_is_better": True, "applies_to": "any", "category": "faithfulness"},
        {"name": "pointing_game", "higher_is_better": True, "applies_to": "any", "category": "localisation"},
        {
            "name": "randomisation",
            "higher_is_better": False,
            "applies_to": "model",
            "category": "randomisation",
        },
    ]
    values = {
        "gradcam": (0.20, 0.70, 0.8, 0.1),
        "scorecam": (0.30, 0.60, 0.6, 0.9),
        "random": (0.45, 0.40, 0.1, 0.0),
    }
    table = {m: {k["name"]: score(v) for k, v in zip(metrics, vs, strict=True)} for m, vs in values.items()}
    return {
        "meta": {"n_images": 20, "size": 64, "seed": 0, "explained": "predicted class"},
        "metrics": metrics,
        "methods": list(values),
        "scores": table,
        "matched_random": {m: table["random"] for m in ("gradcam", "scorecam")},
        "difference_vs_matched_random": {
            "gradcam": {"deletion": score(-0.2), "insertion": score(0.3)},
            "scorecam": {"deletion": score(0.01), "insertion": score(-0.2)},
        },
        "ranking": [
            {"method": "gradcam", "mean_rank": 1.25, "ranks": {"deletion": 1.0, "insertion": 1.0}},
            {"method": "scorecam", "mean_rank": 2.0, "ranks": {"deletion": 2.0, "insertion": 2.0}},
        ],
        "curves": {"gradcam": {"deletion": {"x": [0, 0.5, 1], "mean": [0.9, 0.3, 0.1]}}},
        "regions": {
            "gradcam": {
                "regions": ["background", "eyes", "mouth"],
                "groups": CLASSES,
                "shares": [[0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]],
                "area": [0.6, 0.2, 0.2],
                "counts": [7, 7, 6],
            }
        },
        "gallery": {"right": [{"index": 0, "label": 0}]},
        "skipped": {"energy_in_mask": "no ground-truth masks given"},
    }


def legacy_scores_json() -> dict:
    return {
        "faithfulness": {
            "gradcam": {"deletion_auc": 0.20, "insertion_auc": 0.70},
            "gradcam++": {"deletion_auc": 0.25, "insertion_auc": 0.72},
            "scorecam": {"deletion_auc": 0.30, "insertion_auc": 0.60},
        },
        "sanity": [
            {"method": "gradcam", "rank_correlation": 0.1, "passed": True},
            {"method": "scorecam", "rank_correlation": 0.9, "passed": False},
        ],
        "localisation": {"gradcam": {"pointing_game": 0.8, "energy_in_mask": 0.6}},
        "directions": {"deletion_auc": "lower", "insertion_auc": "higher"},
    }


def card_pixels(uri: str) -> np.ndarray:
    """The RGB pixels of a card's ``data:`` image (PNG or JPEG)."""
    head, data = uri.split(",", 1)
    assert head in ("data:image/png;base64", "data:image/jpeg;base64")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def as_shown(image: np.ndarray) -> np.ndarray:
    """``image`` at the size a card shows it: longest side at most PHOTO_SIDE."""
    from agelens.report.gallery import PHOTO_SIDE

    im = Image.fromarray(image)
    im.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(im)


def smooth_picture(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth picture (JPEG keeps it close), unlike any other seed's."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = rng.uniform(0.5, 3.0, 3)
    planes = [np.sin(a * x / w * np.pi), np.cos(b * y / h * np.pi), np.sin(c * (x + y) / (w + h) * np.pi)]
    return np.clip(127.5 + 120 * np.stack(planes, axis=-1), 0, 255).astype(np.uint8)


def explained_by_relative_path(tiny_model_path: Path, tmp_path: Path, monkeypatch) -> Path:
    """What ``agelens explain photos/face.png --out ex`` writes when run in ``tmp_path`` (the photo
    named relative to it, as a user types it)."""
    import typer
    from typer.testing import CliRunner

    from agelens.cli.explain_cmd import explain_command
    from agelens.data.synthetic import generate

    (tmp_path / "photos").mkdir()
    Image.fromarray(generate(1, size=64, seed=3).images[0]).save(tmp_path / "photos" / "face.png")
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    app.command()(explain_command)
    args = ["photos/face.png", "--model", str(tiny_model_path), "--no-detect", "--method", "gradcam"]
    result = CliRunner().invoke(app, [*args, "--out", "ex"])
    assert result.exit_code == 0, result.output
    return tmp_path / "ex"
