"""``agelens score``: prove the maps — faithfulness (and sanity) scores per method, with CIs and a ranking."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agelens.cli.common import (
    AgeOutputOpt,
    ClassNamesOpt,
    ClassOutputOpt,
    DataArg,
    DetectCropOpt,
    InputRangeOpt,
    InputSizeOpt,
    ModelBinsOpt,
    ModelOpt,
    OneUnitOpt,
    check_layer_early,
    check_model_path,
    check_parent_folder,
    check_paths_exist,
    data_bins,
    drop_stale_report,
    fail,
    fresh_out,
    in_holdout,
    in_model_order,
    load_cli_model,
    load_options,
    not_face_crops_warning,
    read_holdout,
    report_problems,
    say_fresh_out,
)

if TYPE_CHECKING:
    import numpy as np
    from rich.table import Table

    from agelens.data.sources import Dataset
    from agelens.metrics.report import ScoreTable
    from agelens.model.age_model import AgeModel

DEFAULT_OUT = Path("outputs/score")
_DEFAULT_METRICS = "deletion,insertion,average_drop,increase_in_confidence,road_morf,road_lerf"
_MASK_METRICS = ("pointing_game", "energy_in_mask")  # added to the default when there are masks


def score_command(
    data: DataArg,
    model: ModelOpt = None,
    input_size: InputSizeOpt = None,
    class_names: ClassNamesOpt = None,
    input_range: InputRangeOpt = None,
    class_output: ClassOutputOpt = None,
    age_output: AgeOutputOpt = None,
    one_unit: OneUnitOpt = None,
    bins: ModelBinsOpt = None,
    methods: Annotated[
        str,
        typer.Option(
            "--methods", "--method", help="Comma-separated explain methods (smooth-<method> too), or 'all'."
        ),
    ] = "gradcam",
    metrics: Annotated[
        str,
        typer.Option(
            help="Comma-separated metrics, or 'all'; default: "
            + _DEFAULT_METRICS.replace(",", ", ")
            + ", and "
            + " and ".join(_MASK_METRICS)
            + " when there are masks (--masks, or DATA/masks.npz).",
            show_default=False,
        ),
    ] = _DEFAULT_METRICS,
    n: Annotated[int, typer.Option("--n", min=1, help="Images to score (stratified, seeded sample).")] = 500,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help=f"Output folder (default: {DEFAULT_OUT}, or {DEFAULT_OUT}-2, -3... when it holds scores).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the sample, tie-breaks, noise and bootstrap.")] = 0,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an earlier run in --out (its files; others are left alone)."),
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per model call.")] = 64,
    holdout: Annotated[
        Path | None,
        typer.Option(help="JSON with a 'test' list (train's _split.json): sample only those photos."),
    ] = None,
    masks: Annotated[
        Path | None,
        typer.Option(
            help="Ground-truth masks for the localisation metrics: a masks.npz as 'agelens data synth' "
            "writes (default: DATA/masks.npz when there is one)."
        ),
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            help="The CAM methods' layer: last-conv, early, mid, late, or a name (see 'agelens layers'); "
            "default: the model's declared layer, else last-conv.",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="What the maps explain and the metrics read: 'predicted' (each photo's predicted class), "
            "'true' (its labelled class), a class name, a contrast such as old-young (p(old) - p(young)), "
            "or 'age' (the expected age in years; models with an age output).",
        ),
    ] = "predicted",
    shuffled_model: Annotated[
        Path | None,
        typer.Option(
            "--shuffled-model",
            help="The same network trained on shuffled labels (agelens train --shuffle-labels): adds the "
            "data-randomisation check (data_randomisation), how alike each method's maps of the two "
            "models are; lower is better. Read with the same --input-size/--class-names options as --model.",
        ),
    ] = None,
    detect: DetectCropOpt = False,
) -> None:
    """Score attribution methods on a labelled dataset: each metric per method beside random maps.

    Writes scores.json, scores.md, curve plots, region-share plots (fixed face layout) and
    per-class mean maps to --out, and prints the table. Every method is compared, image by image, with random
    maps of the same smoothness; a ✓ marks a 95% CI that excludes chance, a ⚠ one worse than chance.

    Photos are scored as given, as face crops (the form labelled data sets come in and models
    are trained on; the face regions are fixed boxes of a face crop). predict and explain crop the
    largest face first; --detect does the same here, for labelled photos that are not face crops
    (scores.json records, per photo, whether a face was found).

    Examples:
      agelens score ../shared/data/utkface-200 --methods gradcam,gradcam++ --n 200
      agelens score ../shared/data/utkface-200 --methods all --layer last-conv --out outputs/score-last
      agelens score ../shared/data/utkface-200 --methods gradcam,hirescam --target age --n 100
      agelens score DATA --model real.keras --shuffled-model shuffled.keras --metrics randomisation
      agelens score photos/ --detect --methods gradcam,saliency,occlusion --n 12
    """
    from rich.console import Console

    from agelens.data.sources import DatasetError, load_dataset
    from agelens.metrics.data_randomisation import shuffled_fit
    from agelens.metrics.registry import METRICS

    given, out, replacing = _check_before_loading(
        data, model, holdout, masks, detect, layer, shuffled_model, out, force
    )
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # the cheap checks passed: now TensorFlow, without its start-up lines
    method_names, metric_names = _chosen_names(methods, metrics, shuffled_model)
    masks, metric_names = _masks_for(data, masks, detect, metrics, metric_names)
    options = load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins)
    am = load_cli_model(model, options)
    twin = _load_shuffled(am, shuffled_model, options, layer, target)
    try:  # labelled with the bins the model file records, as evaluate does
        ds = load_dataset(data, bins=data_bins(model, bins, class_names), check_images=False)
    except DatasetError as e:
        fail(str(e))
    ds = in_model_order(ds, am.class_names)  # labels index the model's outputs: by name, not position
    cam_layer = _check_layer(am, layer)
    chosen = _check_target(am, target)
    if am.groups_from_age and chosen != "age":
        typer.echo(
            f"{am.path or model}: warning: its groups are its age cut by the bins, and a class target reads "
            "a softmax of how many years the age lies inside each group: 0 or 1 for most photos, so deletion "
            "and insertion hardly move for any map; --target age scores the age itself",
            err=True,
        )
    sample = _sample(ds, data, holdout, n, seed, am.input_size, detect)
    cue = _cue_masks(masks, sample.ok, am.input_size) if masks is not None else None
    say_fresh_out(given, out, DEFAULT_OUT)
    err = Console(stderr=True)
    with err.status("scoring...") as status:
        table = _score(
            am,
            sample.images,
            sample.labels,
            method_names,
            metric_names,
            seed,
            batch_size,
            status.update,
            cue,
            layer,
            chosen,
            twin,
        )
    for name, why in table.skipped.items():
        hint = " (pass --masks masks.npz)" if "masks" in METRICS[name].requires else ""
        typer.echo(f"skipped metric {name}: {why}{hint}", err=True)
    if not table.metrics:
        fail("no metric could be computed (see the lines above)")
    table.meta.update(
        data=str(data),
        model=str(am.path) if am.path else None,
        cam_layer=cam_layer,
        target=target,
        class_names=am.class_names,
        input_range=am.input_range,
        holdout=str(holdout) if holdout else None,
        masks=str(masks) if masks is not None else None,
        shuffled_model=str(shuffled_model) if shuffled_model is not None else None,
        shuffled_model_fit=shuffled_fit(twin) if twin is not None else None,
        **sample.meta(detect),
    )
    try:
        paths = table.write(out)
    except OSError as e:  # the disk filled, or the folder was locked mid-run: nothing half-written stays
        fail(f"{out}: could not write the scores: {e.strerror or e}")
    if replacing:  # only now: a run that failed above leaves the earlier run and its page as they were
        drop_stale_report(out)
    _print_table(table)
    for p in paths.values():
        typer.echo(f"wrote {p}", err=True)
    sys.stdout.flush()


def _check_before_loading(
    data: Path,
    model: Path | None,
    holdout: Path | None,
    masks: Path | None,
    detect: bool,
    layer: str | None,
    shuffled_model: Path | None,
    out: Path | None,
    force: bool,
) -> tuple[Path | None, Path, bool]:
    """The checks that need neither TensorFlow nor the model (~20 s), so a typo fails at once.

    Returns the ``--out`` the user gave, the folder the run writes, and whether it replaces
    an earlier run's scores there.
    """
    check_paths_exist(data=data, holdout=holdout, masks=masks)
    if detect and masks is not None:  # before any work: the masks fit the photos, not their face crops
        raise typer.BadParameter(
            "the masks fit the photos as given, not the face crops --detect makes; drop one of them",
            param_hint="--masks",
        )
    check_model_path(model)
    check_layer_early(model, layer)
    if shuffled_model is not None:
        check_model_path(shuffled_model, "shuffled-model")
    given, out = out, fresh_out(out, DEFAULT_OUT, force, marker="scores.json")
    if out.exists() and not out.is_dir():
        fail(f"{out}: exists and is not a directory")
    check_parent_folder(out, "--out")  # a read-only place fails now, not after the scoring
    replacing = (out / "scores.json").exists()
    if replacing and not force:
        fail(f"{out / 'scores.json'} exists; use --force to overwrite")
    return given, out, replacing


def _chosen_names(methods: str, metrics: str, shuffled_model: Path | None) -> tuple[list[str], list[str]]:
    """``--methods`` and ``--metrics`` as registry names; a bad name is a usage error (exit 2),
    as explain's ``--method`` says it."""
    from agelens.metrics.adapters import RANDOM, available_methods
    from agelens.metrics.registry import METRICS, parse_names

    try:
        canonical_methods = _canonical(methods)
        method_names = parse_names(
            canonical_methods, [*available_methods(), *_smooth_forms(canonical_methods), RANDOM], "method"
        )
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--methods") from None
    try:
        metric_names = parse_names(metrics, list(METRICS), "metric")
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--metrics") from None
    if methods.strip().lower() == "all":
        method_names = [m for m in method_names if m != RANDOM]
    return method_names, _with_data_randomisation(metric_names, shuffled_model, metrics)


def _masks_for(
    data: Path, masks: Path | None, detect: bool, metrics: str, metric_names: list[str]
) -> tuple[Path | None, list[str]]:
    """The masks file to read (given, or DATA/masks.npz) and the metrics with the localisation
    ones added when masks are at hand and ``--metrics`` was left at its default."""
    from agelens.metrics.registry import METRICS

    if masks is None and (data / "masks.npz").is_file():
        if detect:
            typer.echo(
                f"{data / 'masks.npz'}: not used: its masks fit the photos as given, "
                "not --detect's face crops",
                err=True,
            )
        else:
            masks = data / "masks.npz"
    if masks is not None and metrics == _DEFAULT_METRICS:  # masks at hand: localisation comes for free
        metric_names = [*metric_names, *(m for m in _MASK_METRICS if m not in metric_names)]
    if masks is None and all("masks" in METRICS[m].requires for m in metric_names):
        fail(f"--metrics {metrics}: every metric needs ground-truth masks; pass --masks masks.npz")
    return masks, metric_names


@dataclass
class _Sample:
    """The photos scored, and what the run's scores.json records of them."""

    images: np.ndarray
    ok: list[Path]
    labels: list[int]
    skipped: list  # unlabelled or unreadable: "file: reason", as printed
    found: list[bool | None]
    uncropped: list[tuple[Path, tuple[int, int]]]

    def meta(self, detect: bool) -> dict:
        meta = {
            "images": [p.name for p in self.ok],
            "skipped_photos": [str(p) for p in self.skipped],
            "detect": detect,
        }
        if detect:  # per photo, in the order of ``images``; the counts as evaluate --detect's JSON has them
            meta.update(
                face_found=[bool(f) for f in self.found],
                n_faces_found=sum(bool(f) for f in self.found),
                no_face=[p.name for p, f in zip(self.ok, self.found, strict=True) if not f],
            )
        else:  # the photos the warning named (all of them, not only the first three)
            meta.update(not_face_crops=[p.name for p, _ in self.uncropped])
        return meta


def _sample(
    ds: Dataset, data: Path, holdout: Path | None, n: int, seed: int, size: int, detect: bool
) -> _Sample:
    """The stratified, seeded sample (of ``--holdout``'s test photos when given), loaded; every
    file left out is named, as evaluate names them, and photos that are not face crops are said."""
    import numpy as np

    from agelens.metrics.sampling import stratified_sample
    from agelens.model.faces import not_face_crops

    pool = list(range(len(ds)))
    unlabelled = list(ds.problems)  # no age or class to read from the name: never in the sample
    if holdout is not None:
        names = read_holdout(holdout)
        pool = [i for i, r in enumerate(ds.records) if in_holdout(r.path, ds.root, names)]
        unlabelled = [p for p in unlabelled if in_holdout(Path(p.path), ds.root, names)]
    if not pool:
        report_problems(unlabelled)
        fail(f"{data}: no labelled images" + (f" named in {holdout}" if holdout else ""))
    labels_pool = np.asarray(ds.labels)[pool]
    idx = [pool[i] for i in stratified_sample(labels_pool, n, seed)]
    sizes: dict[Path, tuple[int, int]] = {}  # each photo's size as decoded, for not_face_crops
    images, ok, labels, problems, found = _load_sample(ds, idx, pool, size, seed, detect, sizes)
    report_problems([*unlabelled, *problems])  # as evaluate does: every file left out is named
    if len(images) == 0:
        fail(f"{data}: none of the sampled images could be read")
    uncropped = [] if detect else not_face_crops(ok, size, sizes)
    if detect:
        from agelens.cli.forward import faces_found_phrase  # evaluate --detect's words

        typer.echo(f"{len(ok)} photos: {faces_found_phrase(found)}", err=True)
    elif uncropped:
        also = ", and the face regions are boxes of a face crop"
        typer.echo(not_face_crops_warning(uncropped, len(ok), size, also), err=True)
    return _Sample(images, ok, labels, [*unlabelled, *problems], found, uncropped)


def _print_table(table: ScoreTable) -> None:
    """The score tables on stdout; a log or a pipe gets no 80-column limit to cut them to."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 200))
    for i, shown in enumerate(_rich_tables(table, console.width)):
        console.print(*([""] if i else []), shown)


def _check_layer(am: AgeModel, layer: str | None) -> str:
    """The CAM layer's name, resolved before any work: a typo must not cost a long scoring run."""
    from agelens.explain.layers import resolve_layer

    try:
        return ",".join(resolve_layer(am, layer))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--layer") from None


TRUE = "true"


def _check_target(am: AgeModel, target: str) -> str | None:
    """``--target`` checked against the model before any work: None for predicted classes, else the spec.

    The spec goes to :func:`~agelens.metrics.report.score_methods` as it is (``"true"`` is
    replaced by the sample's labels there); a typo or ``age`` on a model without an age
    output fails here in one line, not after the sample has loaded.
    """
    from agelens.metrics.readouts import class_of, readout_of

    text = target.strip()
    if text.lower() in ("predicted", "pred", ""):
        return None
    if text.lower() == TRUE:
        return TRUE
    readout = readout_of(text, am.class_names)
    if readout is not None:
        if readout.kind == "age" and not am.has_age:
            from agelens.explain.targets import age_hint

            raise typer.BadParameter(
                f"this model has no age output; use a class or a contrast{age_hint(am)}",
                param_hint="--target",
            )
        return readout.spec
    if (index := class_of(text, am.class_names)) is not None:  # any case, or its index: as explain takes it
        return am.class_names[index]
    raise typer.BadParameter(
        f"{text!r} is not predicted, true, age, a class ({', '.join(am.class_names)}) or a contrast "
        f"of two classes such as {am.class_names[-1]}-{am.class_names[0]}",
        param_hint="--target",
    )


def _load_sample(
    ds: Dataset,
    idx: list[int],
    pool: list[int],
    size: int,
    seed: int,
    detect: bool = False,
    sizes: dict[Path, tuple[int, int]] | None = None,
) -> tuple[np.ndarray, list[Path], list[int], list, list[bool | None]]:
    """Load the sampled images; each unreadable one is replaced by an unused photo of its class.

    ``--n 300`` should score 300 photos even if a few files in the folder are broken.
    ``detect``: each photo's largest face is cropped first, as ``evaluate --detect`` crops it
    (the last list says, per loaded photo, whether one was found; None without ``detect``).
    ``sizes``: filled with each photo's decoded size where it is loaded whole (no ``detect``).
    """
    import numpy as np

    from agelens.data.images import load_batch
    from agelens.model.predict import prepare

    rng = np.random.default_rng(seed + 1)
    chosen = set(idx)
    unused = [i for i in pool if i not in chosen]
    batches, ok, labels, problems, found = [], [], [], [], []
    while idx:
        records = [ds.records[i] for i in idx]
        if detect:  # the crop predict makes, without keeping the decoded photos
            prepared = prepare([r.path for r in records], size, detect=True, keep_photos=False)
            x, good, bad = prepared.batch, prepared.paths, prepared.problems
            found += prepared.face_found
        else:
            x, good, bad = load_batch([r.path for r in records], size, sizes=sizes)
            found += [None] * len(good)
        keep = set(good)
        batches.append(x)
        ok += good
        labels += [r.label for r in records if r.path in keep]
        problems += bad
        idx = []
        for r in (r for r in records if r.path not in keep):
            same = [i for i in unused if ds.records[i].label == r.label] or unused
            if same:
                pick = same[int(rng.integers(len(same)))]
                unused.remove(pick)
                idx.append(pick)
    return (
        np.concatenate(batches) if batches else np.zeros((0, size, size, 3), np.uint8),
        ok,
        labels,
        problems,
        found,
    )


def _cue_masks(path: Path, files: list[Path], size: int) -> np.ndarray:
    """Each scored photo's ground-truth mask, cropped and resized as the photo was for the model."""
    import numpy as np

    from agelens.data.images import fit_square
    from agelens.data.synthetic import load_masks

    if path.name != "masks.npz" or not path.is_file():
        fail(f"{path}: --masks takes the masks.npz file 'agelens data synth' writes")
    try:
        by_name = load_masks(path.parent)
    except (OSError, KeyError, ValueError) as e:
        fail(f"{path}: not a readable masks.npz ({e})")
    missing = [f.name for f in files if f.name not in by_name]
    if missing:
        fail(f"{path}: no mask for {len(missing)} of the {len(files)} scored photos (first: {missing[0]})")
    return np.stack([fit_square(np.asarray(by_name[f.name].cue, np.float32), size) for f in files])


def _smooth_forms(spec: str) -> list[str]:
    """The ``smooth-<method>`` names in ``spec`` that explain accepts: SmoothGrad around any method is a
    method of its own (``smooth-gradcam``), scored like the rest; ``smooth-gradcm`` stays unknown."""
    try:
        from agelens.explain.api import canonical
    except ImportError:
        return []
    found = []
    for name in (n.strip() for n in spec.split(",")):
        try:
            if name.startswith("smooth-") and canonical(name) == name:
                found.append(name)
        except ValueError:
            pass
    return found


def _canonical(spec: str) -> str:
    """Resolve the explain engine's aliases (``integrated_gradients``, ``grad-cam``); unknown names pass."""
    try:
        from agelens.explain.api import canonical
    except ImportError:
        return spec

    def one(name: str) -> str:
        try:
            return canonical(name)
        except ValueError:
            return name.strip()

    return ",".join(
        one(n) if n.strip().lower() not in ("all", "random") else n.strip() for n in spec.split(",")
    )


def _score(
    am: AgeModel,
    images: np.ndarray,
    labels: list[int],
    methods: list[str],
    metrics: list[str],
    seed: int,
    batch_size: int,
    update: Callable[[str], None],
    masks: np.ndarray | None = None,
    layer: str | None = None,
    target: str | None = None,
    shuffled_model: AgeModel | None = None,
) -> ScoreTable:
    import numpy as np

    from agelens.metrics.regions import LAYOUT_NAMES, face_layout
    from agelens.metrics.report import score_methods

    return score_methods(
        am,
        images,
        np.asarray(labels),
        methods,
        metrics,
        masks=masks,
        region_masks=face_layout(am.input_size),
        region_names=LAYOUT_NAMES,
        group_names=am.class_names,
        targets=np.asarray(labels) if target == TRUE else target,
        layer=layer,
        shuffled_model=shuffled_model,
        seed=seed,
        batch_size=batch_size,
        on_progress=lambda msg: update(f"scoring: {msg}"),
    )


def _with_data_randomisation(names: list[str], shuffled_model: Path | None, spec: str) -> list[str]:
    """The metrics to run: ``--shuffled-model`` adds the data-randomisation check; naming the check
    without one is refused now, not after the sample has loaded (``all`` just leaves it out)."""
    from agelens.metrics.data_randomisation import DataRandomisation

    DATA_RANDOMISATION = DataRandomisation.name  # noqa: N806 - the metric's own name, not a copy
    if shuffled_model is not None:
        return names if DATA_RANDOMISATION in names else [*names, DATA_RANDOMISATION]
    if DATA_RANDOMISATION in names and spec.strip().lower() != "all":
        fail(
            f"--metrics {spec}: {DATA_RANDOMISATION} compares with a model trained on shuffled labels; pass "
            "--shuffled-model M (make one with agelens train DATA --shuffle-labels --out M)"
        )
    return [n for n in names if n != DATA_RANDOMISATION]


def _load_shuffled(
    am: AgeModel,
    path: Path | None,
    options: dict,
    layer: str | None = None,
    target: str = "predicted",
) -> AgeModel | None:
    """The shuffled-label model, read like ``--model`` (the same ``options``) and checked against it
    before any work: the same input and classes, the explained layer (``--layer``, else the one
    ``--model`` declares) and, for ``--target age``, an age output; a scoring run must not fail
    half-way."""
    if path is None:
        return None
    from agelens.explain.layers import resolve_layer
    from agelens.metrics.data_randomisation import check_comparable, explained_like

    twin = load_cli_model(path, options)
    try:
        check_comparable(am, twin)
        resolve_layer(explained_like(twin, am), layer)
    except ValueError as e:
        fail(f"{path}: {str(e).removeprefix('shuffled_model: ')}")
    if target.strip().lower() == "age" and twin.age_output is None:
        fail(f"{path}: has no age output, so it cannot explain --target age (train it on data with ages)")
    recipe, own = (_train_config(m) for m in (twin, am))
    if recipe is not None and not recipe.get("shuffle_labels"):
        _warn(path, "its metadata says it was trained on the real labels, not shuffled ones")
    start = [_start_seed(r) for r in (recipe, own)]
    if None not in start and start[0] == start[1]:
        _warn(
            path,
            f"started from the model's own random weights (seed {start[0]}), which keeps maps alike whatever "
            "the labels; train it with the model's --seed and another --init-seed",
        )
    return twin


def _start_seed(recipe: dict | None) -> int | None:
    """What seeded a training run's initial weights (``--init-seed``, else ``--seed``), if recorded."""
    if recipe is None:
        return None
    seed = recipe.get("init_seed")
    seed = recipe.get("seed") if seed is None else seed
    return seed if isinstance(seed, int) else None


def _train_config(model: AgeModel) -> dict | None:
    meta = model.metadata if isinstance(model.metadata, dict) else {}
    recipe = meta.get("train_config")
    return recipe if isinstance(recipe, dict) else None


def _warn(path: Path, why: str) -> None:
    typer.echo(f"{path}: warning: {why}", err=True)


NOISE_NOTE = (
    " Scattered noise scores well on deletion/insertion without explaining anything:"
    " judge a method by the second table."
)
"""Why the noise row may top the first table: a newcomer must not read it as "random is best"."""
NOISE_NOTE_SPLIT = NOISE_NOTE.replace("the second table", "the table of differences below")
""":data:`NOISE_NOTE` when the scores fill more than one table (the differences are not the second)."""


def _rich_tables(table: ScoreTable, width: int | None = None) -> list[Table]:
    """The scores, then each method minus its matched random maps: the marks sit on the numbers they judge.

    ``width`` (a terminal's columns): a table that cannot be drawn that narrow is split into parts of
    whole metric columns (see :func:`_fitted`). Why: rich draws it wider and the terminal cuts each
    line, losing the last columns (the mean rank) and words of the caption without a sign.
    """
    import re

    from rich.table import Table

    from agelens.metrics.adapters import RANDOM
    from agelens.metrics.report import arrow, chance_legend, delta_cell, rank_cell

    names = [m["name"] for m in table.metrics]
    rank = {r["method"]: r["mean_rank"] for r in table.ranking()}
    read = (table.meta.get("readout") or {}).get("label")
    rows = [r["method"] for r in table.ranking()] + ([RANDOM] if RANDOM in table.methods else [])
    compared = table.compared()
    caption = "The random (baseline) row is pixel noise, shown for reference.{} " + table.ranking_note()
    scores = Table(
        title=f"Attribution scores ({table.meta.get('n_images')} images, mean [95% CI])"
        + (f"; the metrics read the {read}" if read else ""),
        caption=caption.format(NOISE_NOTE if compared else "").rstrip(),
    )
    labels = {m: f"{m} (baseline)" if m == RANDOM else m for m in rows}
    # Names wrap at spaces or hyphens instead of being cut to "random (basel…" on a narrow terminal.
    name_width = max(len(w) for v in labels.values() for w in re.split(r"[ -]", v))
    headers = [f"{name.replace('_', ' ')} {arrow(table.direction(name))}" for name in names]
    scores.add_column("method", min_width=name_width)
    for header in headers:  # wrapped at spaces rather than cut to "deleti…" on an 80-column terminal
        scores.add_column(header, justify="right", min_width=max(len(w) for w in header.split()))
    scores.add_column("mean rank", justify="right")
    for m in rows:
        cells = [str(table.scores[m][name]) for name in names]
        if m == RANDOM:  # the reference every method should beat, not a contender
            scores.add_row(labels[m], *cells, "–", style="dim")
        else:
            scores.add_row(labels[m], *cells, rank_cell(rank[m]))
    parts = [scores] if width is None else _fitted(scores, width, 1)
    if len(parts) > 1 and compared:
        parts[-1].caption = caption.format(NOISE_NOTE_SPLIT).rstrip()
    if not compared:
        return parts
    shown = table.compared_metrics()  # a sanity metric has no difference: no column of n/a
    diff = Table(
        title="Method minus random maps as smooth as its own (paired, same images)",
        caption=chance_legend([n for n in shown if not table.ranked(n)]),
    )
    diff.add_column("method", min_width=name_width)
    for name in shown:
        header = headers[names.index(name)]
        diff.add_column(f"Δ {header}", justify="right", min_width=max(len(w) for w in header.split()))
    for m in compared:
        row = table.vs_random[m]
        diff.add_row(m, *(delta_cell(row.get(n), bool(table.direction(n)), table.ranked(n)) for n in shown))
    return [*parts, *([diff] if width is None else _fitted(diff, width, 0))]


def _fitted(full: Table, width: int, trailing: int) -> list[Table]:
    """``full`` when rich can draw it ``width`` columns wide, else the fewest parts that fit.

    Each part repeats the method column and holds a run of the metric columns, in order; the last
    part also holds the ``trailing`` columns (the mean rank) and the caption, the others say it
    continues. Why parts, not fewer columns: every score and difference stays on screen, and a
    terminal wide enough for the whole table gets it unchanged. Below one metric column a part, no
    split fits: that narrowest split is drawn and the terminal cuts it.
    """
    from itertools import pairwise

    metric = full.columns[1 : len(full.columns) - trailing]
    if _fits(full, width) or len(metric) < 2:
        return [full]
    for n in range(2, len(metric) + 1):
        size, extra = divmod(len(metric), n)  # the first ``extra`` parts hold one column more
        cuts = [i * size + min(i, extra) for i in range(n + 1)]
        parts = [_part(full, metric[a:b], a == 0, b == len(metric), trailing) for a, b in pairwise(cuts)]
        if all(_fits(p, width) for p in parts):
            break
    return parts


def _part(full: Table, metric: list, first: bool, last: bool, trailing: int) -> Table:
    """A table of ``full``'s method column, ``metric`` columns and, when ``last``, its trailing ones."""
    from rich.table import Table

    title = full.title if first else f"{str(full.title).split(' (')[0]}, continued"
    part = Table(title=title, caption=full.caption if last else None)
    columns = [full.columns[0], *metric, *(full.columns[len(full.columns) - trailing :] if last else [])]
    for c in columns:
        part.add_column(c.header, justify=c.justify, min_width=c.min_width)
    cells = [list(c.cells) for c in columns]
    for i, row in enumerate(full.rows):
        part.add_row(*(col[i] for col in cells), style=row.style)
    return part


def _fits(table: Table, width: int) -> bool:
    """Whether rich draws ``table`` within ``width`` columns, its title and caption included, and
    cuts no word to "…".

    Why drawn rather than measured: rich's minimum width can fit while the drawing does not (it
    shrinks a column below its ``min_width`` to make room, then widens it back past the edge).
    """
    import io

    from rich.cells import cell_len
    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(table, crop=False)
    drawn = console.file.getvalue()
    return max(map(cell_len, drawn.splitlines()), default=0) <= width and "…" not in drawn
