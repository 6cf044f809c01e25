"""Fixes from the visual review: figures, cards, phones, scroll hints, titles, ranks, run rows, regions."""

from __future__ import annotations

import base64
import html as htmllib
import io
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from report_factory import CLASSES, make_run, png, scores_json, write_json

from agelens.report.gallery import true_label
from agelens.report.html import render_report
from agelens.report.page import Figure, png_size
from agelens.report.tables import rank_text

BINS = ([30.0, 60.0], CLASSES)


def _section(html: str, sid: str) -> str:
    m = re.search(rf'<section class="[^"]*" id="{sid}">(.*?)</section>', html, re.S)
    assert m, sid
    return m.group(1)


def _css(html: str) -> str:
    return re.search(r"<style>(.*?)</style>", html, re.S).group(1)


def _wide_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((40, 200, 3), np.uint8)).save(path)


def _keras_with_bins(path: Path) -> None:
    """A stand-in ``.keras`` zip holding only the ``agelens.json`` member the report reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"bins": {"edges": [30.0, 60.0], "names": CLASSES}, "class_names": CLASSES}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("agelens.json", json.dumps(meta))


# 1. figures


def test_wide_and_lone_figures_take_the_row_and_every_figure_opens_full_size(run_dir: Path) -> None:
    _wide_png(run_dir / "scores/region_shares.png")
    html = render_report(run_dir)
    wide = r'<figure class="figure wide">\s*<details class="zoom"><summary.*?><img src="data:[^"]*" alt="reg'
    assert re.search(wide, html)
    figures = re.findall(r'<figure class="figure[^"]*">(.*?)</figure>', html, re.S)
    assert figures and all(f.strip().startswith('<details class="zoom"><summary') for f in figures)
    assert html.count('class="zoom"') == len(figures)  # one copy of each image: the summary is the overlay
    css = _css(html)
    assert ".figures > .figure:only-child, .figure.wide { grid-column: 1 / -1; }" in css
    assert re.search(r"\.zoom\[open\] > summary \{ position: fixed; inset: 0;", css)
    assert "Escape" in html and "details.zoom[open]" in html  # Esc closes it too


def test_png_size_reads_only_the_header(tmp_path: Path) -> None:
    from agelens.report.assets import image_uri

    _wide_png(tmp_path / "w.png")
    uri = image_uri(tmp_path / "w.png")
    assert png_size(uri) == (200, 40) and Figure("w", uri).wide
    png(tmp_path / "s.png", 1)
    assert not Figure("s", image_uri(tmp_path / "s.png")).wide
    assert png_size("data:image/jpeg;base64,/9j/") is None and png_size("data:image/png;base64,!!") is None


# 2. explanation cards


def _named_photos(run: Path, names: list[str]) -> None:
    """Rename the gallery photos (a name may carry the true class or a UTKFace age)."""
    path = run / "explain/manifest.json"
    manifest = json.loads(path.read_text())
    for im, name in zip(manifest["images"], names, strict=True):
        new = f"images/{name}"
        (run / "explain" / im["file"]).rename(run / "explain" / new)
        im["file"] = new
    path.write_text(json.dumps(manifest))


def test_cards_say_age_output_and_truth_and_the_legend_gives_the_bins(tmp_path: Path) -> None:
    run = make_run(tmp_path, n_images=3)  # predicted young, middle-aged, old; age outputs 20, 45, 70
    _keras_with_bins(run / "model/m.keras")
    manifest = json.loads((run / "manifest.json").read_text())
    write_json(run / "manifest.json", manifest | {"model": "model/m.keras"})
    _named_photos(run, ["face_000_young.png", "face_001_old.png", "45_0_0_20170109150557335.jpg.chip.jpg"])
    gallery = _section(render_report(run), "explanations")
    assert "age output ≈ 20 y" in gallery and "≈ 20 years" not in gallery
    legend = re.search(r'<p class="legend" id="age-groups">(.*?)</p>', gallery).group(1)
    assert "young &lt; 30 ≤ middle-aged &lt; 60 ≤ old" in legend and "separate age estimate" in legend
    assert gallery.count('id="age-groups"') == 1  # said once, not on every card
    truths = re.findall(r'<div class="truth ([a-z]+)">true <b>([^<]+)</b>(.*?)</div>', gallery)
    # predicted young, middle-aged, old; a UTKFace age of 45 is middle-aged under the model's bins
    expected = [("right", "young"), ("wrong", "old"), ("wrong", "middle-aged")]
    assert [(cls, name) for cls, name, _ in truths] == expected
    assert "✓ right" in truths[0][2] and "✗ wrong" in truths[1][2]  # a word and a mark, not colour alone
    assert "(age 45)" in truths[2][2]


def test_without_bins_the_legend_names_the_classes_only(run_dir: Path) -> None:
    gallery = _section(render_report(run_dir), "explanations")
    assert "Classes: young, middle-aged, old (bin edges not recorded)." in gallery
    assert 'class="truth' not in gallery  # img0.png says nothing about the truth


def test_map_alt_text_names_method_layer_and_target(run_dir: Path) -> None:
    html = render_report(run_dir)
    assert 'alt="gradcam map, layer out_relu, target (predicted class): img0.png"' in html
    assert "img.alt = choice" in html  # and follows the selects


def test_true_label_from_file_names() -> None:
    assert true_label("face_001_middle-aged.png", CLASSES, None) == ("middle-aged", "")
    assert true_label("26_1_3_20170104222933607.jpg.chip.jpg", CLASSES, BINS) == ("young", "age 26")
    assert true_label("61_0_0_20170104222933607.jpg", CLASSES, BINS) == ("old", "age 61")
    assert true_label("26_1_3_20170104222933607.jpg.chip.jpg", CLASSES, None) == ("age 26", "")
    assert true_label("img0.png", CLASSES, BINS) is None
    assert true_label("young_or_old.png", CLASSES, BINS) is None  # ambiguous: no guess


# 3 + 4. phones and scrolling tables


def test_phone_layout_and_scroll_affordances_in_the_page(run_dir: Path) -> None:
    (run_dir / "model_card.md").write_text("# Card\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    html = render_report(run_dir)
    card = _section(html, "model-card")
    assert '<div class="table-wrap" tabindex="0"><table>' in card and "</table></div>" in card
    css = _css(html)
    phone = css[css.index("@media (max-width: 640px)") :]
    assert re.search(r"\.controls \{ position: static;", phone)
    assert "scroll-margin-top: 60px" in css and "section[id], .sub[id]" in css
    assert "no-repeat local" in css and "no-repeat scroll" in css  # edge shadows on scrollable tables
    assert "scroll → for more columns" in html


def test_in_a_browser_phone_controls_scroll_away_and_wide_tables_say_scroll(run_dir: Path, browser) -> None:
    out = run_dir / "report.html"
    out.write_text(render_report(run_dir), encoding="utf-8")
    for width, sticky in ((390, "static"), (1366, "sticky")):
        ctx = browser.new_context(viewport={"width": width, "height": 844})
        pg = ctx.new_page()
        pg.goto(out.as_uri())
        assert pg.eval_on_selector(".controls", "e => getComputedStyle(e).position") == sticky
        assert pg.evaluate("document.documentElement.scrollWidth") <= width  # nothing widens the page
        if width == 390:
            hints = pg.evaluate("document.querySelectorAll('.scroll-hint.on').length")
            assert hints >= 1  # the wide score tables overflow on a phone and say so
            pg.click("#scores .zoom summary")
            assert pg.evaluate("document.querySelectorAll('details.zoom[open]').length") == 1
            pg.keyboard.press("Escape")
            assert pg.evaluate("document.querySelectorAll('details.zoom[open]').length") == 0
        ctx.close()


# 5. titles


def test_titles_say_what_the_run_is(tmp_path: Path) -> None:
    run = make_run(tmp_path / "a")
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["name"]
    write_json(run / "manifest.json", manifest)
    assert "<h1>agelens report: run-demo</h1>" in render_report(run)
    write_json(run / "manifest.json", manifest | {"mode": "quick", "steps": [{"step": "x", "seconds": 1}]})
    html = render_report(run)
    assert "<h1>agelens demo report</h1>" in html and "<title>agelens demo report</title>" in html
    assert "<h1>Explanations: 3 photos</h1>" in render_report(_explain_folder(tmp_path))


def _explain_folder(tmp_path: Path) -> Path:
    """What ``agelens explain --out X`` writes: runs, per-image file lists and a list of every file."""
    ex = tmp_path / "explained"
    images, files = [], []
    for i in range(3):
        own = [f"00{i}_face_gradcam_overlay.png", f"00{i}_face_gradcam_map.npy"]
        png(ex / own[0], i)
        prediction = {"class": "old", "probabilities": {"young": 0.1, "old": 0.9}, "age": 61.2}
        images.append({"source": f"/p/face{i}.png", "size": [64, 64], "files": own, "prediction": prediction})
        files += own
    runs = [{"method": "gradcam", "layer": "out_relu", "target": None, "settings": {}}]
    doc = {"agelens_version": "0.1.0", "runs": runs, "images": images, "problems": [], "files": files}
    write_json(ex / "manifest.json", doc)
    return ex


# 6. two mean ranks


def test_two_mean_ranks_are_named_apart_and_the_overall_one_has_its_own_heading(run_dir: Path) -> None:
    html = render_report(run_dir)
    overall = re.search(r'id="scores-ranking"><h3>([^<]+)</h3>(.*?)</section>', html, re.S)
    assert overall and "all metrics" in overall.group(1)
    assert "mean rank, all metrics" in overall.group(2) and "1.25" in overall.group(2)
    assert "1.000" not in overall.group(2) and "1.250" not in overall.group(2)
    faith = _section(html.replace('<section class="sub"', '<section class="card"'), "scores-faithfulness")
    assert "Overall ranking" not in faith and "mean rank, all metrics" not in faith
    assert '<th class="num">mean rank, these metrics</th>' in faith
    assert html.index('id="scores-ranking"') < html.index('id="scores-faithfulness"')
    ranks = [rank_text(v) for v in (1.0, 1.5, 1.2222, 2.0 / 3, None, math.nan)]
    assert ranks == ["1", "1.5", "1.22", "0.67", "—", "—"]


# 7. run section


def test_run_section_has_no_empty_rows_no_doubled_headings_and_no_file_lists(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    write_json(run / "manifest.json", manifest | {"settings": {"epochs": 4, "extra_layers": []}, "tags": {}})
    section = _section(render_report(run), "run")
    assert "extra_layers" not in section and ">tags<" not in section and "[]" not in section
    assert "Settings · settings" not in section and "<h3>Settings</h3>" in section
    explained = _section(render_report(_explain_folder(tmp_path)), "run")
    assert "_overlay.png" not in explained and ".npy" not in explained  # the gallery shows those files
    assert "problems" not in explained and "settings" not in explained
    assert "old 90% (young 10%), age output ≈ 61 y" in explained and "/p/face0.png" in explained


# 8. empty classes and region shading


def test_empty_classes_are_said_and_region_cells_are_shaded_by_share_over_area(tmp_path: Path) -> None:
    doc = scores_json()
    doc["meta"]["class_names"] = CLASSES  # as the scorer records them
    reg = doc["regions"]["gradcam"]
    reg["counts"], reg["shares"][1] = [7, 0, 6], [None, None, None]
    cases = [{"index": i, "label": 0, "predicted": [0, 2][i % 2]} for i in range(20)]
    doc["gallery"] = {"confident_right": cases[:12], "confident_wrong": cases[12:]}  # all 20 images
    run = make_run(tmp_path)
    write_json(run / "scores/scores.json", doc)
    png(run / "scores/class_mean_maps.png", 6)
    html = render_report(run)
    regions = _section(html.replace('<section class="sub"', '<section class="card"'), "scores-regions")
    assert '<td class="muted empty" colspan="3">no images with true label middle-aged</td>' in regions
    # young: eyes 0.5 on 0.2 of the area (x2.5) is shaded; background 0.2 on 0.6 (x0.33) is not
    young = re.search(r"young <span.*?</tr>", regions, re.S).group(0)
    heats = [float(h) for h in re.findall(r"--heat: ([0-9.]+)", young)]
    assert heats == [0.0, round(math.log2(2.5) / 2, 3), round(math.log2(1.5) / 2, 3)]
    assert "×2.5" in young and "share ÷ area share" in regions
    means = _section(html.replace('<section class="sub"', '<section class="card"'), "scores-class-means")
    assert "No images predicted middle-aged" in means and "No images predicted young" not in means
    doc["gallery"] = {"confident_right": cases[:3]}  # a sample of the images: counts unknown, nothing claimed
    write_json(run / "scores/scores.json", doc)
    assert "No images predicted" not in render_report(run)


# 9. the usability review: glossary, how to read a map, the card after the maps, page size


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", html)))


def test_the_glossary_defines_each_metric_on_the_page_with_its_declared_direction(tmp_path: Path) -> None:
    from agelens.metrics.registry import METRICS

    doc = scores_json()
    for name in ("average_drop", "increase_in_confidence", "road_morf", "road_lerf", "sparseness"):
        doc["metrics"].append(dict(METRICS[name]().info()))
        for row in doc["scores"].values():
            row[name] = {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 20}
    doc["regions"]["gradcam"]["regions"] = ["hair_background", "eyes", "mouth_chin"]
    run = make_run(tmp_path)
    write_json(run / "scores/scores.json", doc)
    html = render_report(run)
    glossary = _section(html, "glossary")
    assert re.search(r'<details class="fold"><summary>Show the glossary</summary>', glossary)  # collapsed
    entries = dict(re.findall(r"<dt[^>]*><code>([^<]+)</code>(.*?)</dt>", glossary, re.S))
    for name in ("deletion", "insertion", "average_drop", "increase_in_confidence", "road_morf", "road_lerf"):
        cls = METRICS[name]
        assert f"{'higher' if cls.higher_is_better else 'lower'} is better" in entries[name], name
    assert "not used to rank methods" in entries["sparseness"]  # ranked = False
    assert "randomisation" in entries and "max_sensitivity" not in entries  # absent from the page: left out
    for region in ("hair_background", "eyes", "mouth_chin"):
        assert region in entries and "is better" not in entries[region]
    text = _text(glossary)
    assert "hair, ears, neck and background" in text and "fixed boxes" in text
    assert "Removes the pixels the map calls most important first" in text
    assert html.index('id="glossary"') > html.index('id="shortcut"')  # reference after the results


def test_a_metric_without_plain_words_is_defined_by_its_docstring() -> None:
    from agelens.metrics.base import Metric
    from agelens.report.glossary import glossary_section
    from agelens.report.page import Section
    from agelens.report.tables import Table, cell

    class Fresh(Metric):
        """Share of ``mass`` on the subject; higher is better."""

        name, higher_is_better = "fresh_metric", True

        def _evaluate(self, x, maps, targets, ctx):  # noqa: ANN001, ANN202
            raise NotImplementedError

    import agelens.metrics.registry as registry

    sec = Section("scores", "Scores", tables=[Table("t", ["method", "fresh_metric"], [[cell("m", "a")]])])
    registry.METRICS["fresh_metric"] = Fresh
    try:
        (term,) = [t for t in glossary_section([sec], None).terms if t.name == "fresh_metric"]
    finally:
        del registry.METRICS["fresh_metric"]
    assert (term.meaning, term.reading) == (
        "Share of mass on the subject; higher is better.",
        "higher is better",
    )
    assert glossary_section([Section("run", "Run")], None) is None  # nothing to define: no section


def test_how_to_read_a_map_sits_above_the_maps_with_the_overlays_colour_bar(run_dir: Path) -> None:
    import matplotlib

    from agelens.explain.overlay import DEFAULT_CMAP

    gallery = _section(render_report(run_dir), "explanations")
    box = re.search(r'<aside class="how-to-read".*?</aside>', gallery, re.S).group(0)
    assert gallery.index("how-to-read") < gallery.index('class="gallery"')
    text = _text(box)
    assert "mattered most for the chosen target class" in text and "in this photo" in text
    assert "not comparable across photos" in text
    assert "not proof" in text and "occlusion" in text and "HiResCAM" in text
    bar = re.search(r'class="colorbar"[^>]*style="background: (linear-gradient\([^"]+\))"', box).group(1)
    lo, hi = (tuple(round(255 * c) for c in matplotlib.colormaps[DEFAULT_CMAP](t)[:3]) for t in (0.0, 1.0))
    assert bar.startswith(f"linear-gradient(to right, rgb{lo} 0%") and bar.endswith(f"rgb{hi} 100%)")
    assert "Red marks" in text if DEFAULT_CMAP in ("jet", "turbo") else "right-hand end" in text
    assert ">low<" in box and ">high<" in box


def test_the_model_card_folds_in_after_the_maps_with_its_license_line_outside(run_dir: Path) -> None:
    (run_dir / "model_card.md").write_text(
        "# Card\n\nA **small** model.\n\n## Recipe\n\n    python train.py --gpu\n\n"
        "## License and intended use\n\nFor research only. Not for decisions about people. Check bias.\n"
    )
    html = render_report(run_dir)
    assert html.index('id="explanations"') < html.index('id="model-card"') < html.index('id="scores"')
    card = _section(html, "model-card")
    outside, folded = card.split('<details class="fold">', 1)
    assert "License and intended use: For research only. Not for decisions about people." in outside
    assert "Check bias" not in outside and "train.py" not in outside and "train.py" in folded
    (run_dir / "model_card.md").write_text(
        "# Demo model\n\nMobileNetV2 on *synthetic* faces. Held out: 0.8.\n"
    )
    outside = _section(render_report(run_dir), "model-card").split("<details", 1)[0]
    assert (
        "Demo model: MobileNetV2 on synthetic faces. The card states no license or intended use." in outside
    )


def test_photos_and_overlays_are_jpeg_plots_stay_png(run_dir: Path, tmp_path: Path) -> None:
    from agelens.report.assets import photo_uri
    from agelens.report.gallery import PHOTO_SIDE

    html = render_report(run_dir)
    data = json.loads(re.search(r'id="gallery-data">(.*?)</script>', html, re.S).group(1))
    maps = [u for it in data["items"] for u in it["maps"].values()]
    assert maps and all(u.startswith("data:image/jpeg;base64,") for u in maps)
    assert all(u.startswith("data:image/png;base64,") for it in data["items"] for u in it["filters"].values())
    photos = re.findall(r'<img class="photo" src="(data:[^;]+)', html)
    assert photos == ["data:image/jpeg"] * 3
    figures = re.findall(r'<figure class="figure[^"]*">.*?<img src="(data:[^;]+)', html, re.S)
    assert figures and set(figures) == {"data:image/png"}  # plots: lettering stays sharp
    # a big smooth overlay is shrunk to the card's size; a tiny noisy PNG stays as written
    from agelens.data.synthetic import generate

    face = Image.fromarray(generate(1, size=96, seed=3).images[0]).resize(
        (900, 900), Image.Resampling.BICUBIC
    )
    face.save(tmp_path / "big.png")
    big = photo_uri(tmp_path / "big.png", max_side=PHOTO_SIDE)
    assert big.startswith("data:image/jpeg") and len(big) < (tmp_path / "big.png").stat().st_size / 5
    assert Image.open(io.BytesIO(base64.b64decode(big.split(",", 1)[1]))).size == (PHOTO_SIDE, PHOTO_SIDE)
    png(tmp_path / "noise.png", 3, size=8)
    assert photo_uri(tmp_path / "noise.png", max_side=PHOTO_SIDE).startswith("data:image/png")
    assert photo_uri(None) is None and photo_uri(tmp_path / "missing.png") is None
