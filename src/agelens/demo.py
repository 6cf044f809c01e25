"""``agelens demo``: the whole product on an embedded default, in a few minutes on 2 cores.

Synthetic faces (whose age cues and their locations are known) → a small MobileNetV2
trained from scratch → evaluation → maps from several methods and per-filter grids →
faithfulness, sanity, localisation, robustness, complexity, region shares and the shortcut story →
the data-randomisation check against a copy trained on shuffled labels → one self-contained HTML
report. Every step writes into one run folder with a manifest.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agelens import __version__

if TYPE_CHECKING:  # the demo imports its heavy parts late, so a typo in its options fails fast
    from agelens.data.synthetic import SynthFaces
    from agelens.metrics.report import ScoreTable


@dataclass(frozen=True)
class DemoSettings:
    """Sizes for a full and a quick demo; the quick one exists for tests and first looks."""

    n_faces: int = 2400
    size: int = 64
    alpha: float = 0.35
    epochs: int = 8
    batch_size: int = 32
    n_explain: int = 8
    n_score: int = 48
    methods: tuple[str, ...] = (
        "gradcam",
        "gradcam++",
        "layercam",
        "scorecam",
        "integrated-gradients",
        "guided-gradcam",
        "occlusion",
    )
    score_methods: tuple[str, ...] = ("gradcam", "gradcam++", "layercam", "scorecam", "saliency", "occlusion")
    filters: int = 16
    shortcut_epochs: int = 4
    shortcut_faces: int = 1200
    augment: float = 0.3
    extra_layers: tuple[str, ...] = ("late", "last-conv")  # Grad-CAM at these layers too
    extra_targets: tuple[str, ...] = ("young", "middle-aged", "old")  # and for each class
    # The data-randomisation control: the same network on the same faces with permuted labels,
    # trained in the second process after the shortcut story. No augmentation: with the main
    # model's 0.3 it fitted 16 epochs of permuted labels to 0.41 training accuracy, without it
    # 0.73-0.85 in 16-24 epochs (chance 0.33). 0 skips it.
    control_epochs: int = 20
    # The filter atlas (what the most active filters at DEMO_LAYER look for, on the scored faces):
    # filters searched and steps per search. Its cost grows with both; 0 filters skips it.
    atlas_filters: int = 8
    atlas_steps: int = 128
    atlas_top: int = 6  # photo patches per filter


DEMO_LAYER = "mid"

QUICK = DemoSettings(
    n_faces=800,
    size=48,
    epochs=4,
    batch_size=16,
    augment=0.0,
    n_explain=4,
    n_score=12,
    methods=("gradcam", "gradcam++", "layercam", "saliency"),
    score_methods=("gradcam", "saliency"),
    filters=8,
    shortcut_epochs=3,  # runs in a second process, beside the main training
    shortcut_faces=480,
    extra_layers=(),  # each extra explain run costs a model load and a trace
    extra_targets=(),
    control_epochs=10,  # a short control: the report says how far it memorised
    atlas_filters=4,
    atlas_steps=48,
)


class Steps:
    """Prints each step with its time and records it for the manifest."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo, self.log = echo, []

    def run(self, name: str, fn: Callable[[], object]) -> object:
        self.echo(f"[{len(self.log) + 1}] {name} ...")
        t = time.perf_counter()
        value = fn()
        dt = time.perf_counter() - t
        self.log.append({"step": name, "seconds": round(dt, 2)})
        self.echo(f"    done in {dt:.1f} s")
        return value


# What a demo run writes at the top of its folder; --force replaces these and nothing else.
RUN_ENTRIES = (
    "manifest.json", "model", "samples", "evaluation", "explain", "scores", "filters", "model_card.md",
    "report.html",
)  # fmt: skip


def _is_demo_run(out: Path) -> bool:
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "steps" in manifest and "agelens_version" in manifest


def prepare_out(out: Path, force: bool) -> None:
    """An empty run folder; ``force`` clears an earlier demo run's own entries from it.

    Never the whole folder: ``--out .`` or ``--out ~`` with ``--force`` must not delete
    the user's files. A non-empty folder that holds no earlier run is refused even
    with ``force``; user files beside an earlier run's entries are left alone.
    """
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out}: output folder is not empty (use --force to replace it)")
        if not _is_demo_run(out):
            raise FileExistsError(
                f"{out}: not empty and not an earlier agelens demo run (no demo manifest.json); "
                "choose an empty or new --out"
            )
        remove_entries(out, RUN_ENTRIES)
    out.mkdir(parents=True, exist_ok=True)
    # Marks the folder as a run from the start, so --force can clear a run that was stopped.
    stub = {"agelens_version": __version__, "steps": [], "status": "incomplete"}
    (out / "manifest.json").write_text(json.dumps(stub, indent=1))


def _save_pngs(images: np.ndarray, names: list[str], folder: Path) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for img, name in zip(images, names, strict=True):
        p = folder / name
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def train_small(
    images,
    labels,
    ages,
    settings: DemoSettings,
    seed: int,
    epochs: int | None = None,
    verbose: int = 1,
    shuffle_labels: bool = False,
):
    """Train the demo's small model; also the ``train_fn`` of the shortcut story and, with
    ``shuffle_labels``, the data-randomisation control (another start: ``init_seed`` seed + 1)."""
    from agelens.data.split import stratified_split
    from agelens.model.builder import ModelConfig
    from agelens.model.train import TrainConfig, train

    split = stratified_split(labels, fractions=(0.85, 0.15, 0.0), seed=seed)
    tr, va = split == 0, split == 1
    return train(
        images[tr],
        labels[tr],
        images[va],
        labels[va],
        ages_train=None if ages is None else ages[tr],
        ages_val=None if ages is None else ages[va],
        model_config=ModelConfig(
            input_size=settings.size,
            alpha=settings.alpha,
            dropout=0.1,
            bn_momentum=0.9,
            age_head=ages is not None,
        ),
        config=TrainConfig(
            epochs=epochs or settings.epochs,
            batch_size=settings.batch_size,
            learning_rate=3e-3,
            augment=settings.augment,
            patience=0,
            seed=seed,
            shuffle_labels=shuffle_labels,
            init_seed=seed + 1 if shuffle_labels else None,
        ),
        verbose=verbose,
        data_summary={"source": "agelens synthetic faces", "n_train": int(tr.sum()), "n_val": int(va.sum())},
    ).model


def run_demo(
    out: Path, quick: bool = False, force: bool = False, seed: int = 0, echo: Callable[[str], None] = print
) -> Path:
    """Run every step into ``out`` and return the path of ``report.html``."""
    settings = QUICK if quick else DemoSettings()
    prepare_out(out, force)
    steps = Steps(echo)
    t0 = time.perf_counter()
    # The shortcut story and the shuffled-label control train more models; they run in a
    # second process from the start because tracing a MobileNetV2 train step is
    # single-threaded Python, so on two cores the trainings overlap almost for free.
    second = SecondProcess(settings, out, seed)
    try:
        report = _run_steps(out, quick, seed, echo, settings, steps, t0, second)
    finally:
        second.stop()
    return report


def training_faces(settings: DemoSettings, seed: int) -> tuple[SynthFaces, np.ndarray, np.ndarray]:
    """The demo's faces and its train / test masks: one place, so the second process's
    shuffled-label control trains on exactly the faces the demo model trained on."""
    from agelens.data.split import stratified_split
    from agelens.data.synthetic import generate

    faces = generate(settings.n_faces, size=settings.size, seed=seed)
    split = stratified_split(faces.labels, fractions=(0.75, 0.0, 0.25), seed=seed)
    return faces, split == 0, split == 2


def _run_steps(
    out: Path,
    quick: bool,
    seed: int,
    echo: Callable[[str], None],
    settings: DemoSettings,
    steps: Steps,
    t0: float,
    second: SecondProcess,
) -> Path:
    """Every step of the demo in order, each timed into ``steps``; returns the report's path.

    Why the manifest is written twice: the report shows the manifest as it stands before the page
    is written; the finished one adds the report's step and the run's total.
    """
    from agelens.data.synthetic import REGION_NAMES

    faces, tr, te = steps.run(
        f"generate {settings.n_faces} synthetic faces ({settings.size} px)",
        lambda: training_faces(settings, seed),
    )
    model = steps.run(
        f"train a MobileNetV2 (alpha {settings.alpha}) from scratch for {settings.epochs} epochs",
        lambda: train_small(faces.images[tr], faces.labels[tr], faces.ages[tr], settings, seed),
    )
    model_path = _save_demo_model(model, out)
    metrics, test_probs = steps.run(
        "evaluate on the held-out synthetic faces", lambda: _evaluate(model, model_path, faces, te, out)
    )
    echo(f"    accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    test_idx = np.flatnonzero(te)
    sample_paths = _save_samples(faces, test_idx, test_probs, settings.n_explain, out / "samples")
    steps.run(
        _explain_step_name(settings, len(sample_paths)),
        lambda: _explain(model, sample_paths, settings, out / "explain"),
    )
    score_idx = test_idx[: settings.n_score]
    table = steps.run(
        "score the maps: faithfulness, sanity, localisation, robustness, complexity, region shares",
        lambda: _score(model, faces, score_idx, settings, REGION_NAMES, seed),
    )
    if settings.atlas_filters:
        steps.run(
            f"filter atlas: what {settings.atlas_filters} filters of the {DEMO_LAYER} layer look for "
            f"({settings.atlas_steps} search steps each, top patches from {len(score_idx)} test faces)",
            lambda: _filter_atlas(model, model_path, faces, score_idx, settings, out / "filters", seed),
        )
    second_times = _wait_for_second(second, settings, steps, echo)
    control = _control_check(model, out, second, faces, score_idx, settings, table, seed, steps, echo)
    manifest = _manifest(
        out, quick, seed, settings, model_path, metrics, steps, t0, second_times=second_times, control=control
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    _write_model_card(model, metrics, out)
    report = steps.run("write the HTML report", lambda: _report(out))
    manifest["steps"] = steps.log
    manifest["seconds"] = round(time.perf_counter() - t0, 1)  # the whole run, report included
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return report


def _save_demo_model(model, out: Path) -> Path:
    """Save the trained model into the run folder, declaring the layer its maps are drawn at.

    Why ``mid``: the demo's faces are 48-64 px, so MobileNetV2's last conv map is 2x2, one blob per
    corner. Its maps are explained at the stride-8 ("mid") layer instead, declared in the model the
    way the shipped model declares its own layer.
    """
    from agelens.model.io import save_model

    model.metadata["explain_layer"] = DEMO_LAYER
    return save_model(model, out / "model" / MODEL_FILE)


def _evaluate(
    model, model_path: Path, faces: SynthFaces, te: np.ndarray, out: Path
) -> tuple[dict, np.ndarray]:
    """Evaluate on the held-out test faces and write ``evaluation/``, as ``agelens evaluate`` does;
    returns the metrics and the test faces' probabilities (the gallery is picked from them)."""
    from agelens.model.evaluate import classification_metrics, write_evaluation

    probs = model.predict(faces.images[te])["probabilities"]
    m = classification_metrics(faces.labels[te], probs.argmax(1), model.class_names)
    m["n_skipped"] = 0
    m["evaluated_on"] = f"held-out test split ({int(te.sum())} synthetic faces never used in training)"
    write_evaluation(m, out / "evaluation", {"model": str(model_path)})  # fingerprinted there
    return m, probs


def _save_samples(
    faces: SynthFaces, test_idx: np.ndarray, test_probs: np.ndarray, n: int, folder: Path
) -> list[Path]:
    """Save ``n`` test faces as PNGs named by their true class, every age group among them: the
    explain step reads them as a user's photos would be read."""
    pick = _pick_gallery(faces.labels[test_idx], test_probs, n)
    return _save_pngs(
        faces.images[test_idx[pick]],
        [f"face_{i:03d}_{faces.class_names[faces.labels[test_idx[j]]]}.png" for i, j in enumerate(pick)],
        folder,
    )


def _explain_step_name(settings: DemoSettings, n_photos: int) -> str:
    """The explain step's line, naming the extra runs (layers, classes, filters) these settings add."""
    extras = [
        f"Grad-CAM at {len(settings.extra_layers)} more layer(s)" if settings.extra_layers else "",
        f"Grad-CAM for each of {len(settings.extra_targets)} classes" if settings.extra_targets else "",
        f"the {settings.filters} most active filters" if settings.filters else "",
    ]
    return f"explain {n_photos} faces with {len(settings.methods)} methods" + "".join(
        f", {x}" for x in extras if x
    )


def _wait_for_second(
    second: SecondProcess, settings: DemoSettings, steps: Steps, echo: Callable[[str], None]
) -> dict[str, float]:
    """Wait for the second process as a step of its own; returns the seconds each of its jobs took.

    Why its row is rewritten: the wait is near 0 s when the process finished first, which read as a
    step that took no time (:func:`second_process_row`).
    """
    second_times = steps.run(
        "shortcut story: a corner stamp that gives the answer away in training"
        + (", and the shuffled-label control" if settings.control_epochs else "")
        + " (trained in a second process meanwhile; this is the wait for it)",
        second.result,
    )
    steps.log[-1] = second_process_row(steps.log[-1], second_times)
    if second_times:
        echo(f"    the second process trained them in {sum(second_times.values()):.1f} s, beside the steps")
    return second_times


def _control_check(
    model,
    out: Path,
    second: SecondProcess,
    faces: SynthFaces,
    score_idx: np.ndarray,
    settings: DemoSettings,
    table: ScoreTable,
    seed: int,
    steps: Steps,
    echo: Callable[[str], None],
) -> dict | None:
    """The data-randomisation check against the second process's control, as a step; None, with the
    metric listed as skipped in the rewritten scores, when these settings train no control."""
    from agelens.metrics.data_randomisation import DataRandomisation

    if not settings.control_epochs:
        table.skipped[DataRandomisation.name] = (
            "no shuffled-label control was trained (control_epochs is 0; "
            "agelens train --shuffle-labels makes one)"
        )
        table.write(out / "scores")
        return None
    control = steps.run(
        "data-randomisation check: the scored methods' maps of the shuffled-label control",
        lambda: _data_randomisation(model, second.control_path, faces, score_idx, settings, table, seed),
    )
    fit = control["fit"]
    echo(
        "    the control fits its shuffled training labels to "
        + (f"{fit:.3f} training accuracy" if fit is not None else "an unrecorded training accuracy")
    )
    return control


def _manifest(
    out: Path,
    quick: bool,
    seed: int,
    settings: DemoSettings,
    model_path: Path,
    metrics: dict,
    steps: Steps,
    t0: float,
    *,
    second_times: dict[str, float],
    control: dict | None,
) -> dict:
    """The run's manifest before the report is written: versions, settings, the model and its
    fingerprint, what the second process trained, the steps so far and the evaluation."""
    from agelens.provenance import provenance

    made = provenance(model_path)  # versions, when, the command line, the model's fingerprint
    return {
        "agelens_version": __version__,
        **{k: made[k] for k in ("created", "versions", "command_line") if k in made},
        "mode": "quick" if quick else "full",
        "seed": seed,
        "settings": _settings_dict(settings),
        "model": str(model_path.relative_to(out)),
        **({"model_file": made["model_file"]} if "model_file" in made else {}),
        **({"second_process": second_times} if second_times else {}),
        **({"shuffled_label_control": control} if control else {}),
        "steps": steps.log,
        "evaluation": {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "n_images")},
        # The page shows the manifest as it is before the page is written: it says so, rather than
        # show a total 0.2 s short of the one the finished manifest records.
        "seconds_before_report": round(time.perf_counter() - t0, 1),
    }


def _settings_dict(s: DemoSettings) -> dict:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()}


def _pick_gallery(labels: np.ndarray, probs: np.ndarray, n: int) -> np.ndarray:
    """Round-robin over classes so every age group is in the gallery."""
    order = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    picked: list[int] = []
    i = 0
    while len(picked) < min(n, len(labels)):
        for idx in order:
            if i < len(idx) and len(picked) < n:
                picked.append(int(idx[i]))
        i += 1
    return np.array(picked)


def _write_model_card(model, metrics: dict, out: Path) -> None:
    from agelens.model.evaluate import markdown_table

    card = (
        f"# Demo model\n\nMobileNetV2 trained from scratch on agelens synthetic faces "
        f"({model.input_size} px, classes {', '.join(model.class_names)}).\n\n"
        f"Held-out synthetic test set: accuracy {metrics['accuracy']:.3f}, macro-F1 "
        f"{metrics['macro_f1']:.3f}.\n\n{markdown_table(metrics)}"
    )
    (out / "model_card.md").write_text(card)


def _explain(model, paths, settings: DemoSettings, out: Path) -> None:
    """Same code path as ``agelens explain``, so the demo shows exactly what users get.

    One run with every method at the default layer and target, then Grad-CAM at other
    layers and for each chosen class, merged into one manifest so the report's gallery
    can switch method, layer, target and filter grid. The trained model is explained as it is
    in memory (:func:`~agelens.cli.explain_cmd.explain_model`), not read back from the file it
    was just saved to: the scoring then reuses the steps traced here.
    """
    from agelens.cli.explain_cmd import explain_model

    def run(folder: Path, method: str, layer: str | None, target: str | None, filters: int) -> None:
        explain_model(
            model,
            [str(p) for p in paths],
            method=method,
            layer=layer,
            target=target,
            filters=filters,
            out=folder,
            force=False,
            detect=False,
            cmap="jet",
            alpha=0.45,
        )

    run(out, ",".join(settings.methods), None, None, settings.filters)
    extra = []
    for layer in settings.extra_layers:
        run(out / f"layer-{layer}", "gradcam", layer, None, settings.filters)
        extra.append(out / f"layer-{layer}")
    for target in settings.extra_targets:
        run(out / f"target-{target}", "gradcam", None, target, 0)
        extra.append(out / f"target-{target}")
    merge_explain_runs(out, extra)


def merge_explain_runs(main: Path, extra: list[Path]) -> dict:
    """Fold the manifests of ``extra`` explain runs (sub-folders of ``main``) into ``main``'s.

    Each image gets a ``maps`` list (method, layer, target, overlay path relative to
    ``main``) and ``filters`` grids labelled by their layer; ``files`` keeps listing
    every file written. Images are matched by their source path.
    """
    from agelens.atomic import atomic_write_text
    from agelens.report.gallery import normalise

    base = normalise(json.loads((main / "manifest.json").read_text()))

    def filter_label(manifest: dict) -> str:
        layers = [r.get("layer") for r in manifest.get("runs", []) if r.get("layer") not in (None, "input")]
        return f"{layers[0] if layers else 'last conv'}: most active filters"

    for im in base["images"]:
        for f in im.get("filters", []):
            f["layer"] = filter_label(base)
    by_source = {im.get("source"): im for im in base["images"]}
    for sub in extra:
        manifest = normalise(json.loads((sub / "manifest.json").read_text()))
        rel = sub.relative_to(main).as_posix()
        base["runs"].extend(manifest.get("runs", []))
        for im in manifest["images"]:
            target = by_source.get(im.get("source"))
            if target is None:
                continue
            target.setdefault("maps", []).extend(
                dict(m, overlay=f"{rel}/{m['overlay']}") for m in im.get("maps", [])
            )
            target.setdefault("filters", []).extend(
                {"layer": filter_label(manifest), "grid": f"{rel}/{f['grid']}"} for f in im.get("filters", [])
            )
            target.setdefault("files", []).extend(f"{rel}/{f}" for f in im.get("files", []))
        base.setdefault("files", []).extend(f"{rel}/{f}" for f in manifest.get("files", []))
    for key, field_ in (("methods", "method"), ("layers", "layer"), ("targets", "target")):
        base[key] = list(dict.fromkeys(r.get(field_) for r in base["runs"]))
    atomic_write_text(main / "manifest.json", json.dumps(base, indent=1))
    return base


def _score(
    model, faces: SynthFaces, idx: np.ndarray, settings: DemoSettings, region_names, seed: int
) -> ScoreTable:
    """Every metric: faithfulness, sanity, localisation against the generator's cue masks, robustness
    and complexity, plus region shares.

    Not written here: :func:`_control_check` adds the data-randomisation row (or says it was
    skipped) and writes the table once, which drew every plot twice when this step wrote it too.
    """
    from agelens.explain.layers import resolve_layer
    from agelens.metrics.registry import METRICS
    from agelens.metrics.report import score_methods

    table = score_methods(
        model,
        faces.images[idx],
        faces.labels[idx],
        list(settings.score_methods),
        list(METRICS),
        masks=faces.cue_masks[idx],
        region_masks=faces.region_masks[idx],
        region_names=list(region_names),
        group_names=list(faces.class_names),
        seed=seed,
    )
    # as `agelens score` records them: faithfulness depends on the layer the CAMs were drawn at
    table.meta.update(
        cam_layer=", ".join(resolve_layer(model, DEMO_LAYER)),
        model=f"model/{MODEL_FILE}",
        data=f"{len(idx)} held-out synthetic faces of the demo (seed {seed})",
    )
    return table


def _filter_atlas(
    model,
    model_path: Path,
    faces: SynthFaces,
    idx: np.ndarray,
    settings: DemoSettings,
    out: Path,
    seed: int,
) -> list[Path]:
    """What the ``atlas_filters`` filters the scored test faces use most at ``DEMO_LAYER`` look for:
    a synthetic pattern each and the faces' patches that drive them most, saved as
    :func:`agelens.explain.feature_vis.save_atlas` writes it (the report's "What the filters look for").

    Why the scored faces, not the explained ones: a quick demo explains 4, fewer than the patches
    shown per filter, and ranking the filters by their use wants more faces. Each face is named by
    its index among the generated faces and its true class, so a reader sees which ages drive a filter.
    """
    from agelens.explain.feature_vis import filter_atlas, save_atlas

    atlas = filter_atlas(
        model,
        faces.images[idx],
        DEMO_LAYER,
        settings.atlas_filters,
        top=settings.atlas_top,
        steps=settings.atlas_steps,
        seed=seed,
    )
    names = [f"face {int(i)} {faces.class_names[faces.labels[i]]}" for i in idx]
    data = f"{len(idx)} held-out synthetic faces of the demo (seed {seed})"
    return save_atlas(atlas, out, names=names, model_path=str(model_path), extra={"data": data})


def _data_randomisation(
    model,
    control_path: Path,
    faces: SynthFaces,
    idx: np.ndarray,
    settings: DemoSettings,
    table: ScoreTable,
    seed: int,
) -> dict:
    """Adebayo et al.'s second check on the demo: each scored method's maps of the demo model
    against its maps of the control, merged into ``table`` (rewritten) as one more metric.

    Scored after the other metrics, not with them, because the control is trained in the
    second process while they run. Returns what the manifest records about the control.
    """
    from agelens.metrics.data_randomisation import DataRandomisation, shuffled_fit
    from agelens.metrics.report import score_methods
    from agelens.model.io import load_model

    control = load_model(control_path)
    extra = score_methods(
        model,
        faces.images[idx],
        faces.labels[idx],
        list(settings.score_methods),
        [DataRandomisation.name],
        shuffled_model=control,
        random_baseline=False,
        seed=seed,
    )
    table.add_metrics(extra)
    fit = shuffled_fit(control)
    relative = f"{control_path.parent.name}/{control_path.name}"  # as the manifest names the model
    table.meta.update(shuffled_model=relative, shuffled_model_fit=fit)
    table.write(control_path.parent.parent / "scores")
    return {"model": relative, "fit": fit, "epochs": settings.control_epochs}


def _shortcut(settings: DemoSettings, out: Path, seed: int) -> dict:
    """Train on faces whose corner stamp gives the class away, then test without the stamp.

    The stamp is a few pixels in a corner. MobileNetV2's last conv map is 2x2 at these
    sizes, too coarse to point at it, and the stamp saturates early ReLU6 units, which
    blinds plain gradients; so the story also shows Grad-CAM on the ``early`` layer and
    Score-CAM (perturbation, no gradients) on the ``mid`` layer, where a user should look
    for small marks. On the demo's settings those put several times the stamp's area
    share of their energy on it; the last-conv Grad-CAM does not.
    """
    from agelens.metrics.adapters import attribute_by_target
    from agelens.metrics.shortcut import run_shortcut_demo, write_shortcut

    # No augmentation here: flips and shifts move the corner stamp, so a model trained
    # with them cannot lean on it (measured: 63% stamped vs 61% clean, no shortcut).
    plain = replace(settings, augment=0.0)

    trained = []  # the stamped model, to say which layer each method's maps were drawn at

    def train_fn(images, labels):
        trained.append(train_small(images, labels, None, plain, seed, settings.shortcut_epochs, verbose=0))
        return trained[-1]

    def at(method: str, layer: str):
        return lambda model, x, targets: attribute_by_target(model, x, targets, method, layer=layer)

    layered = {"gradcam (early layer)": ("gradcam", "early"), "scorecam (mid layer)": ("scorecam", "mid")}
    explainers = {name: at(method, layer) for name, (method, layer) in layered.items()}
    methods = (settings.score_methods[0], *explainers)
    result = run_shortcut_demo(
        train_fn,
        n_train=settings.shortcut_faces,
        size=settings.size,
        seed=seed,
        methods=methods,
        explainers=explainers,
        n_test=max(60, settings.shortcut_faces // 4),
    )
    asked = {methods[0]: None, **{name: layer for name, (_, layer) in layered.items()}}
    result["config"]["layers"] = shortcut_layers(trained[-1], asked)
    write_shortcut(result, out)
    return result


def shortcut_layers(model, asked: dict[str, str | None]) -> dict[str, dict[str, str]]:
    """Per method of the shortcut story, the layer its maps were drawn at (``layer``) and how it was
    asked for (``asked``; None: the model's default, :func:`~agelens.explain.layers.default_layer_spec`).

    Why: a plain "gradcam" beside "gradcam (early layer)" names no layer; on the stamped model
    (which declares none) it is the last conv layer, 2x2 at the demo's sizes, which is why it
    cannot point at a corner stamp. A method that draws no CAM (saliency) has no layer.
    """
    from agelens.explain.layers import as_age_model, default_layer_spec, resolve_layer

    out = {}
    for method, spec in asked.items():
        if spec is None and "cam" not in method:  # gradients or perturbations of the input
            continue
        spec = spec or default_layer_spec(as_age_model(model))
        out[method] = {"layer": ", ".join(resolve_layer(model, spec)), "asked": spec}
    return out


def _control(settings: DemoSettings, path: Path, seed: int) -> Path:
    """Train the data-randomisation control: the demo's network on the demo's training faces
    with their labels (and ages) permuted, from another start, without augmentation (see
    ``DemoSettings.control_epochs``); it declares the demo model's layer."""
    from agelens.model.io import save_model

    faces, tr, _ = training_faces(settings, seed)
    plain = replace(settings, augment=0.0)
    model = train_small(
        faces.images[tr],
        faces.labels[tr],
        faces.ages[tr],
        plain,
        seed,
        epochs=settings.control_epochs,
        verbose=0,
        shuffle_labels=True,
    )
    model.metadata["explain_layer"] = DEMO_LAYER
    return save_model(model, path)


class SecondProcess:
    """The shortcut story (:func:`_shortcut`) and then, when ``settings.control_epochs``, the
    shuffled-label control (:func:`_control`), in a spawned process with errors carried back."""

    def __init__(self, settings: DemoSettings, out: Path, seed: int) -> None:
        (out / "scores").mkdir(parents=True, exist_ok=True)
        self.error_file = out / ".second-process-error.txt"
        self.times_file = out / ".second-process-times.json"
        self.control_path = out / "model" / CONTROL_FILE
        ctx = multiprocessing.get_context("spawn")
        self.proc = ctx.Process(
            target=_second_child,
            args=(settings, out, seed, self.error_file, self.times_file),
            name="agelens-demo-second",
            daemon=True,
        )
        self.proc.start()

    def result(self) -> dict[str, float]:
        """Wait for the process; the seconds each of its jobs took (:func:`_timed_jobs`)."""
        self.proc.join()
        if self.proc.exitcode != 0:
            reason = self.error_file.read_text().strip() if self.error_file.exists() else ""
            job, _, trace = reason.partition("\n")
            last = trace.splitlines()[-1] if trace else f"exit code {self.proc.exitcode}"
            raise RuntimeError(f"{job or 'the second process'} failed: {last}")
        try:
            times = json.loads(self.times_file.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): float(v) for k, v in times.items()} if isinstance(times, dict) else {}

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        self.error_file.unlink(missing_ok=True)
        self.times_file.unlink(missing_ok=True)


def second_process_row(row: dict, times: dict[str, float]) -> dict:
    """The Steps row of the wait for the second process, with what the process itself took.

    Why: the row's ``seconds`` is the wait, 0.0 when the process finished first, which read as a
    step that took no time; its jobs trained two models. ``seconds_in_second_process`` is their
    total (beside the main process, so not part of the run's total), ``second_process`` each job's.
    """
    if not times:
        return row
    total = round(sum(times.values()), 2)
    return row | {"seconds_in_second_process": total, "second_process": dict(times)}


MODEL_FILE = "demo.keras"
CONTROL_FILE = "shuffled-labels.keras"


def _second_child(
    settings: DemoSettings, out: Path, seed: int, error_file: Path, times_file: Path | None = None
) -> None:
    """Process entry point: one intra-op thread, so it takes one core and leaves the other.

    The error file's first line names the job that failed, the rest is its traceback; the times
    file, each job's seconds (:func:`_timed_jobs`).
    """
    job = "shortcut story"
    try:
        from agelens.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()  # a spawned child starts TensorFlow afresh: as quietly as the CLI
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        jobs = {job: lambda: _shortcut(settings, out / "scores", seed)}
        if settings.control_epochs:
            jobs["shuffled-label control"] = lambda: _control(settings, out / "model" / CONTROL_FILE, seed)
        _timed_jobs(jobs, times_file)
    except BaseException as e:
        job = getattr(e, "job", job)
        error_file.write_text(f"{job}\n{traceback.format_exc()}")
        raise SystemExit(1) from None


def _timed_jobs(jobs: dict[str, Callable[[], object]], times_file: Path | None) -> dict[str, float]:
    """Run ``jobs`` in order, writing each one's seconds to ``times_file`` (JSON) as it ends: the
    main process records them in the Steps table (:func:`second_process_row`). A failing job's
    exception carries its name (``e.job``) for the error file."""
    times: dict[str, float] = {}
    for name, fn in jobs.items():
        t = time.perf_counter()
        try:
            fn()
        except BaseException as e:
            e.job = name  # type: ignore[attr-defined]
            raise
        times[name] = round(time.perf_counter() - t, 2)
        if times_file is not None:
            times_file.write_text(json.dumps(times))
    return times


def _report(out: Path) -> Path:
    from agelens.report.html import write_report

    return write_report(out)


def run_real_demo(
    photos: list[str],
    out: Path,
    force: bool = False,
    model_path: Path | None = None,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """``agelens demo --real PHOTOS``: the shipped model on the user's photos, maps, scores, report.

    The photos are read before anything is written: the step line, the manifest and the page
    count the photos explained, and list the unreadable ones as ``skipped`` with their reasons.
    When no photo can be read, or any step fails, the run leaves no folder behind (an earlier
    run replaced with ``force`` leaves its stub manifest, so ``--force`` still recognises it).
    """
    from agelens.cli.explain_cmd import expand_photos

    warn = warn or (lambda line: print(line, file=sys.stderr))
    paths = expand_photos(photos)
    if not paths:
        raise ValueError("no images found in " + ", ".join(photos))
    readable, problems = _readable_photos(paths)
    if not readable:
        if len(problems) == 1:  # one photo: one line that names it and why, as explain says it
            raise ValueError(f"nothing to explain: {problems[0]}")
        for p in problems:
            warn(f"skipped {p}")
        raise ValueError(f"nothing to explain: all {len(paths)} photos were unreadable")
    made = None  # the outermost folder this run creates, if any
    for folder in (out, *out.parents):
        if folder.exists():
            break
        made = folder
    prepare_out(out, force)
    try:
        return _real_steps(paths, readable, problems, out, model_path, echo)
    except BaseException:
        _undo_real_run(out, made)
        raise


def _readable_photos(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The photos that decode, and ``"<path>: <reason>"`` for each one that does not, read and
    worded as ``agelens explain`` reads and words them."""
    from agelens.data.images import Problem, read_photo

    bad = [r if isinstance(r := read_photo(p), Problem) else None for p in paths]  # keeps no pixels
    return [p for p, b in zip(paths, bad, strict=True) if b is None], [str(b) for b in bad if b is not None]


def remove_entries(out: Path, names: tuple[str, ...]) -> None:
    """Delete ``out/<name>`` for each name, folder or file (a link itself, never its target)."""
    for name in names:
        entry = out / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()


REAL_RUN_ENTRIES = ("manifest.json", "explain", "model_card.md", "report.html")


def _undo_real_run(out: Path, made: Path | None) -> None:
    """Remove what a failed ``--real`` run wrote: the folders it made go. One that still holds
    other files (beside an earlier run that ``--force`` cleared) keeps the stub manifest, so
    ``--force`` can clear it again."""
    from agelens.atomic import atomic_write_text

    try:
        remove_entries(out, REAL_RUN_ENTRIES)
        if any(out.iterdir()):
            stub = {"agelens_version": __version__, "steps": [], "status": "incomplete"}
            atomic_write_text(out / "manifest.json", json.dumps(stub, indent=1))
            return
        if made is not None:
            for folder in (out, *out.parents):
                folder.rmdir()
                if folder == made:
                    break
    except OSError:
        pass  # the run's own error is the one to report


def _real_steps(
    paths: list[Path],
    readable: list[Path],
    problems: list[str],
    out: Path,
    model_path: Path | None,
    echo: Callable[[str], None],
) -> Path:
    from agelens.atomic import atomic_write_text
    from agelens.cli.explain_cmd import explain_command
    from agelens.model.io import load_model
    from agelens.wording import counted

    model = load_model(model_path)
    steps = Steps(echo)
    settings = DemoSettings()
    skipped = f"; {counted(len(problems), 'unreadable photo')} skipped" if problems else ""
    steps.run(
        f"explain {counted(len(readable), 'photo')} with {counted(len(settings.methods), 'method')}"
        f" (faces detected{skipped})",
        lambda: explain_command(  # every photo: explain says (and records) why it skips the others
            photos=[str(p) for p in paths],
            model=model.path,
            method=",".join(settings.methods),
            layer=None,
            target=None,
            filters=settings.filters,
            out=out / "explain",
            force=False,
            detect=True,
            cmap="jet",
            alpha=0.45,
        ),
    )
    from agelens.provenance import provenance

    made = provenance(model.path)  # versions, when, the command line, the model's fingerprint
    manifest = {
        "agelens_version": __version__,
        **{k: made[k] for k in ("created", "versions", "command_line") if k in made},
        "mode": "real",
        "model": str(model.path),
        **({"model_file": made["model_file"]} if "model_file" in made else {}),
        "photos": [str(p) for p in readable],
        **({"skipped": problems} if problems else {}),
        "steps": steps.log,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    card = Path(model.path).with_name("MODEL_CARD.md") if model.path else None
    if card and card.exists():
        atomic_write_text(out / "model_card.md", card.read_text(encoding="utf-8"))
    return steps.run("write the HTML report", lambda: _report(out))
