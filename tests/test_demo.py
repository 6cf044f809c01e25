"""``agelens demo --quick`` end to end: the README's main command must keep working."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app


def test_quick_demo_writes_a_complete_report(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = out / "report.html"
    assert report.exists() and str(report.resolve()) in result.output
    html = report.read_text()
    for section in ("Evaluation", "Explanations", "Faithfulness", "Localisation", "Shortcut"):
        assert section in html, section
    assert "http://" not in html.split("<body", 1)[1].replace("http://www.w3.org", "")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["step"].split()[0] for s in manifest["steps"]][:3] == ["generate", "train", "evaluate"]
    # the page was written before the run's total was known: it shows the time before it, named so
    assert 0 < manifest["seconds_before_report"] <= manifest["seconds"]
    assert "seconds before report" in html.lower().replace("_", " ")
    explained = json.loads((out / "explain" / "manifest.json").read_text())
    assert len(explained["runs"]) >= 3  # several methods
    # 48 px faces: the last conv map would be 2x2; the demo model declares its stride-8 layer
    from agelens.model.io import load_model

    demo_model = load_model(out / "model" / "demo.keras")
    assert demo_model.metadata["explain_layer"] == "mid"
    cams = ("gradcam", "gradcam++", "layercam")
    cam_layers = {r["layer"] for r in explained["runs"] if r["method"] in cams}
    km = demo_model.keras_model
    assert cam_layers and all(km.get_layer(ly).output.shape[1] >= 6 for ly in cam_layers), cam_layers
    scores = json.loads((out / "scores" / "scores.json").read_text())
    assert "gradcam" in json.dumps(scores)
    assert scores["meta"]["cam_layer"] in cam_layers  # the scores say which layer their CAMs were drawn at
    shortcut = json.loads((out / "scores" / "shortcut.json").read_text())
    assert "stamp_energy" in json.dumps(shortcut)
    # both sanity checks: the control was trained on permuted labels and its maps were compared
    control = manifest["shuffled_label_control"]
    assert control["model"] == "model/shuffled-labels.keras" and 0 < control["fit"] <= 1
    recipe = load_model(out / control["model"]).metadata["train_config"]
    assert recipe["shuffle_labels"] is True and recipe["init_seed"] != recipe["seed"]
    assert "data_randomisation" not in scores["skipped"]
    assert {m: r["data_randomisation"]["n"] > 0 for m, r in scores["scores"].items() if m != "random"} == {
        "gradcam": True,
        "saliency": True,
    }
    assert "fits its permuted training labels" in html
    # the filter atlas of the demo model at its explain layer, on the scored faces, shown on the page
    atlas = json.loads((out / "filters" / "manifest.json").read_text())
    assert atlas["kind"] == "filters" and atlas["layer"] in cam_layers
    assert len(atlas["per_filter"]) == 4 and atlas["settings"]["steps"] == 48 and atlas["n_photos"] == 12
    assert any(s["step"].startswith("filter atlas") for s in manifest["steps"])
    assert "What the filters look for" in html and 'id="filters"' in html


def test_demo_refuses_non_empty_out_without_force(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 1
    assert "not empty" in result.output and (out / "keep.txt").read_text() == "mine"


def _fake_run(folder, stem_runs, method_tag=True, filters=True):
    """An explain-CLI style manifest (per-file names) for two images."""
    folder.mkdir(parents=True, exist_ok=True)
    images, files = [], []
    for i in range(2):
        own = []
        for run in stem_runs:
            tag = f"_{run['method']}" if method_tag else ""
            own.append(f"{i:03d}_face{tag}_overlay.png")
        if filters:
            own.append(f"{i:03d}_face_filters.png")
        for f in own:
            Image.new("RGB", (4, 4), (200, 30, 30)).save(folder / f)
        images.append({"source": f"/photos/face{i}.png", "files": own, "prediction": {"class": "old"}})
        files += own
    (folder / "manifest.json").write_text(json.dumps({"runs": stem_runs, "images": images, "files": files}))


def test_merge_explain_runs_lets_the_gallery_switch_layers_and_targets(tmp_path):
    from agelens.demo import merge_explain_runs
    from agelens.report.assets import Notes
    from agelens.report.gallery import build_gallery

    main = tmp_path / "explain"
    _fake_run(
        main,
        [
            {"method": "gradcam", "layer": "out_relu", "target": "predicted class"},
            {"method": "saliency", "layer": "input", "target": "predicted class"},
        ],
    )
    _fake_run(
        main / "layer-late",
        [{"method": "gradcam", "layer": "block_13", "target": "predicted class"}],
        method_tag=False,
    )
    _fake_run(
        main / "target-old",
        [{"method": "gradcam", "layer": "out_relu", "target": "old"}],
        method_tag=False,
        filters=False,
    )
    merged = merge_explain_runs(main, [main / "layer-late", main / "target-old"])
    assert merged["layers"] == ["out_relu", "input", "block_13"]
    assert merged["targets"] == ["predicted class", "old"]
    im = merged["images"][0]
    assert {(m["layer"], m["target"]) for m in im["maps"]} == {
        ("out_relu", "predicted class"),
        ("input", "predicted class"),
        ("block_13", "predicted class"),
        ("out_relu", "old"),
    }
    assert [f["layer"] for f in im["filters"]] == [
        "out_relu: most active filters",
        "block_13: most active filters",
    ]
    assert "layer-late/000_face_overlay.png" in merged["files"]
    assert json.loads((main / "manifest.json").read_text()) == merged
    gallery = build_gallery(main, merged, tmp_path, Notes())
    assert gallery is not None and len(gallery.items[0].maps) == 4 and len(gallery.items[0].filters) == 2
    assert all(gallery.items[0].maps.values())  # every overlay path resolves inside the run folder


def test_shortcut_process_failure_is_one_clear_error(tmp_path):
    import dataclasses

    import pytest

    from agelens.demo import QUICK, SecondProcess

    proc = SecondProcess(dataclasses.replace(QUICK, size=-1), tmp_path, 0)
    with pytest.raises(RuntimeError, match="shortcut story failed: .+"):
        proc.result()
    proc.stop()
    assert not (tmp_path / ".second-process-error.txt").exists()


def test_force_clears_only_an_earlier_runs_own_entries(tmp_path):
    from agelens.demo import prepare_out

    run = tmp_path / "run"
    prepare_out(run, force=False)  # a run folder from the start, even if stopped later
    (run / "model").mkdir()
    (run / "model" / "demo.keras").write_bytes(b"old")
    (run / "filters").mkdir()  # the filter atlas: save_atlas refuses an earlier atlas without force
    (run / "thesis.txt").write_text("mine")
    prepare_out(run, force=True)
    assert (run / "thesis.txt").read_text() == "mine" and not (run / "model").exists()
    assert not (run / "filters").exists()

    other = tmp_path / "home"
    (other / "precious").mkdir(parents=True)
    (other / "precious" / "notes.md").write_text("mine")
    with pytest.raises(FileExistsError, match="not an earlier agelens demo run"):
        prepare_out(other, force=True)
    assert (other / "precious" / "notes.md").read_text() == "mine"


@pytest.mark.parametrize("extra", [["--quick"], ["--seed", "3"]])
def test_real_photos_refuse_the_synthetic_demos_options(tmp_path, extra):
    """Before: --quick and --seed were taken with --real and silently did nothing."""
    Image.new("RGB", (64, 64), (90, 60, 40)).save(tmp_path / "me.png")
    res = CliRunner().invoke(
        app, ["demo", "--real", str(tmp_path / "me.png"), *extra, "-o", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "--real" in res.output and not (tmp_path / "o").exists()
