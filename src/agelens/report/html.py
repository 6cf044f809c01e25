"""Write one self-contained ``report.html`` for a run folder.

Every part of a run folder is optional: a run may have been evaluated but not
explained, or scored with an older schema. Each section loader returns None and
leaves a short note instead of raising, so a half-finished run still gets a page.
The page embeds all images and its CSS/JS, so it works offline and as an attachment.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from agelens import __version__
from agelens.model.evaluate import balanced_accuracy_note
from agelens.report.assets import (
    JsonFiles,
    Notes,
    cut_path_reason,
    cut_paths,
    image_uri,
    inside,
    path_and_reason,
    read_json,
    render_markdown,
)
from agelens.report.filter_atlas import filters_section, is_filters_folder, is_filters_manifest
from agelens.report.findings import evaluation_findings
from agelens.report.gallery import age_bins, age_cut, build_gallery, groups_from_age
from agelens.report.glossary import glossary_section
from agelens.report.page import Figure, Section
from agelens.report.scores import scores_dir, scores_section
from agelens.report.shortcut import shortcut_section
from agelens.report.tables import (
    RANK_HERE,
    Cell,
    Table,
    cell,
    fmt,
    number,
    pct,
    prediction_text,
    rank_text,
    tables_from_json,
)

TEMPLATE = "report.html.j2"
_HEADLINE = (("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy"), ("macro_f1", "Macro F1"))
REPORT_NAME = "report.html"
PAGE_SUFFIXES = (".html", ".htm")
"""An ``--out`` ending in one of these is the page itself; anything else names a folder."""
# What a report can show, at the top of a folder: a run's parts, or one command's own --out
# folder (explain's manifest.json, evaluate's metrics.json, score's scores.json).
PARTS = (
    "manifest.json",
    "metrics.json",
    "confusion_matrix.png",
    "scores.json",
    "shortcut.json",
    "regions.json",
    "evaluation",
    "explain",
    "scores",
    "filters",
    "model_card.md",
    "model_card.json",
)


class NothingToReport(ValueError):
    """A folder with no part a page could show: a near-empty page would hide a wrong path or a broken file."""


def write_report(run_dir: Path, out: Path | str | None = None, force: bool = False) -> Path:
    """Render ``run_dir`` to ``out`` (default ``run_dir/report.html``), atomically; return the path.

    ``out`` ending in ``.html`` or ``.htm`` is the page; anything else is a folder that gets
    ``report.html`` inside it (made, one level, once the page is ready): see :func:`report_path`.
    An existing page is replaced only with ``force``, like every other command's output. A folder
    whose only parts could not be read (a corrupt manifest.json) is refused, naming each file:
    its page would show nothing. A refused call writes nothing.
    """
    run_dir = Path(run_dir)
    reads = JsonFiles()  # the check and the page read each file once between them
    check_reportable(run_dir, reads)
    path = report_path(run_dir, out, force)
    html, shown, notes = _render(run_dir, reads)
    if not shown and notes.unreadable:
        unread = "; ".join(notes.unreadable)
        raise NothingToReport(f"{unread}; nothing else to report, so no page was written")
    from agelens.atomic import atomic_write_text

    made = not path.parent.exists()
    if made:  # report_path allowed it: a new folder named by --out
        path.parent.mkdir()
    try:
        return atomic_write_text(path, html)
    except BaseException:  # a full disk or a Ctrl-C: no empty folder left to puzzle over
        if made and not any(path.parent.iterdir()):
            path.parent.rmdir()
        raise


def check_reportable(run_dir: Path, reads: JsonFiles | None = None) -> None:
    """Raise unless ``run_dir`` is a folder holding at least one part the page can show.

    ``reads``: the page build's JSON files (:class:`JsonFiles`), so the page reads none again."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a folder (expected a run folder)")
    if any((run_dir / part).exists() for part in PARTS):
        return
    if not any(_command_folders(run_dir, JsonFiles() if reads is None else reads).values()):
        raise NothingToReport(
            f"{run_dir}: nothing to report (no manifest.json, metrics.json or scores.json found; "
            "pass a run folder from demo, explain, evaluate, score or filters)"
        )


def report_path(run_dir: Path, out: Path | str | None, force: bool = False) -> Path:
    """Where the page goes, or a one-line error naming the path the user gave.

    ``out`` is the page when it ends in ``.html`` or ``.htm``; anything else names a folder (see
    :func:`names_folder`) and the page is ``report.html`` inside it. One rule, so ``--out new``
    never becomes a file named ``new``. A missing folder is made by :func:`write_report`, one
    level only: a typo in ``--out`` should not quietly create a tree of folders, so the folder
    above must exist, as the folder of a page named by ``--out`` must.
    """
    if out is None:
        path = run_dir / REPORT_NAME
    else:
        folder = names_folder(out)
        path = Path(out) / REPORT_NAME if folder else Path(out)
        parent = path.parent
        if folder and not parent.exists() and parent.parent.is_dir():
            pass  # a new folder the user asked for; made once the page is rendered
        elif not parent.is_dir():
            missing = parent.parent if folder and not parent.exists() else parent
            reason = "is not a folder" if missing.exists() else "does not exist (create it first)"
            raise FileNotFoundError(f"{out}: {missing} {reason}")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder (choose another --out)")
    if path.exists() and not force:
        raise FileExistsError(f"{path}: exists; use --force to overwrite it (or choose another --out)")
    return path


def names_folder(out: Path | str) -> bool:
    """Whether ``--out`` means a folder: anything but a page name (``.html``, ``.htm``).

    An existing folder and text ending in ``/`` are folders whatever their name
    (``--out x.html/``: ``Path`` drops that slash, so the CLI passes the text as typed).
    """
    seps = tuple(s for s in (os.sep, os.altsep, "/") if s)
    if (isinstance(out, str) and out.endswith(seps)) or Path(out).is_dir():
        return True
    return Path(out).suffix.lower() not in PAGE_SUFFIXES


def render_report(run_dir: Path) -> str:
    """The report as an HTML string (no files written)."""
    return _render(Path(run_dir))[0]


def _render(run_dir: Path, reads: JsonFiles | None = None) -> tuple[str, bool, Notes]:
    """The page, whether it shows any section, and its notes (``write_report`` refuses an empty page).

    Every section reads its JSON through one :class:`JsonFiles` (``reads``, write_report's, which
    its check used): a manifest several sections need is read and parsed once."""
    from jinja2 import Environment, PackageLoader
    from markupsafe import Markup

    notes = Notes()
    reads = JsonFiles() if reads is None else reads
    manifest = reads.read(run_dir / "manifest.json", notes, "Run")
    found = part_folders(run_dir, manifest, notes, reads)
    told = _notes_by_part(run_dir, manifest, notes, found)
    run = _overview(manifest) or _parts_overview(run_dir, found, reads)
    if run is None and not (run_dir / "manifest.json").exists():  # one that is there but broken is noted
        told["run"].add("Run: no manifest.json; run settings, versions and timings omitted.")
    # Results first; the model card (background, several screens long) folds in after the maps.
    sections = [
        s
        for s in (
            run,
            _evaluation(run_dir, told["evaluation"], found["evaluation"], reads=reads),
            _gallery_section(run_dir, manifest, told["explain"], found["explain"], reads=reads),
            filters_section(found["filters"], run_dir, told["filters"], reads),
            _model_card(run_dir, told["run"], _model_named_in(run_dir, manifest, found, reads=reads)),
            scores_section(found["scores"], told["scores"], reads),
            shortcut_section(found["scores"], told["scores"]),
        )
        if s is not None
    ]
    scores = reads.read(scores_dir(found["scores"]) / "scores.json", Notes(), "")  # Scores notes a bad one
    glossary = glossary_section(sections, scores)
    sections += [glossary] if glossary else []
    env = Environment(loader=PackageLoader("agelens.report", "templates"), autoescape=True)
    env.filters["fmt"] = fmt
    env.filters["rank"] = rank_text
    env.globals["rank_here"] = RANK_HERE
    html = env.get_template(TEMPLATE).render(
        title=_title(run_dir, manifest),
        css=Markup(_static("report.css")),
        js=Markup(_static("report.js").replace("</", "<\\/")),
        run_dir=_shown_dir(run_dir),
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=__version__,
        sections=sections,
        key_findings=key_findings(sections),
        notes=notes.items,
        unreadable=bool(notes.unreadable),
    )
    return html, bool(sections), notes


def _shown_dir(run_dir: Path) -> str:
    """The folder as the page names it: as the user typed it, or its name for an absolute path
    (``/home/me/...`` says where the user keeps their files to anyone the page is shared with)."""
    return (run_dir.name or str(run_dir)) if run_dir.is_absolute() else str(run_dir)


def key_findings(sections: list[Section]) -> list[tuple[str, str, str, str]]:
    """(topic, line, section id, section title) for each section and sub-section that concludes something.

    The lines come from the sections themselves, so each links to a section that is on the page.
    """
    out = []
    for s in sections:
        for part in (s, *s.subsections):
            if part.key:
                topic, sep, text = part.key.partition(": ")
                out.append((topic, text) if sep else ("", part.key))
                out[-1] += (part.id, part.title)
    return out


def _static(name: str) -> str:
    """CSS/JS shipped next to the template, inlined verbatim (never parsed as Jinja)."""
    return (resources.files("agelens.report") / "templates" / name).read_text(encoding="utf-8")


def _title(run_dir: Path, manifest: Any) -> str:
    """What the run is, not where it was written: a folder name such as "rv_out" tells a reader nothing."""
    if isinstance(manifest, dict):
        for key in ("name", "run_name", "title"):
            if isinstance(manifest.get(key), str) and manifest[key].strip():
                return manifest[key].strip()
        if manifest.get("mode") in ("quick", "full", "real") and isinstance(manifest.get("steps"), list):
            return "agelens demo report"  # what ``agelens demo`` records (see demo._is_demo_run)
        if isinstance(manifest.get("images"), list) and isinstance(manifest.get("runs"), list):
            n = len(manifest["images"])
            return f"Explanations: {n} photo{'' if n == 1 else 's'}"
        if _is_evaluate_manifest(manifest) and isinstance(manifest.get("n_images"), int):
            n = manifest["n_images"]
            return f"Evaluation: {n} photo{'' if n == 1 else 's'}"
        if is_filters_manifest(manifest) and isinstance(manifest.get("layer"), str):
            return f"Filter atlas: layer {manifest['layer']}"
    return f"agelens report: {run_dir.resolve().name or 'run'}"


_FILE_LISTS = ("files", "maps", "filters")
_PREDICTION_PARTS = ("predicted", "probabilities", "age")


def _overview(manifest: Any) -> Section | None:
    """The run's settings; a manifest that is there but unreadable was noted as such by read_json.

    A folder without its own manifest is left to :func:`_parts_overview` (its command folders'
    manifests); the note that nothing was recorded is added only where that finds nothing either.
    """
    if manifest is None:
        return None
    lead = "Settings, software versions and timings recorded by the run."
    return Section("run", "Run", lead, tables=_run_tables(manifest))


def _run_tables(manifest: Any) -> list[Table]:
    """A manifest's settings as tables: the photos it skipped first (with the reasons), then the
    settings, then the folded reference (field meanings, one row per photo)."""
    skipped = _skipped_table(manifest)
    if isinstance(manifest, dict):
        manifest = {k: v for k, v in manifest.items() if k not in _SKIP_KEYS or skipped is None}
    shown = _prune(_without_file_lists(manifest))
    tables = tables_from_json(shown, "") if shown not in (None, {}, []) else []
    folds = _folds(shown)
    for t in tables:
        t.fold = folds.get(t.title, "")
        t.title = t.title[:1].upper() + t.title[1:].replace("_", " ") if t.title else "Summary"
    tables.sort(key=lambda t: bool(t.fold))  # the settings stay together, visible; reference folds last
    return ([skipped] if skipped else []) + tables


_SKIP_KEYS = ("problems", "skipped")
"""Where explain (``problems``) and evaluate (``skipped``) list the photos they could not use, as
"file: reason" lines (or ``{"file", "reason"}`` records)."""


def _skipped_table(manifest: Any) -> Table | None:
    """One row per photo a command skipped, with the reason it printed; None when it skipped none."""
    if not isinstance(manifest, dict):
        return None
    items = [x for k in _SKIP_KEYS if isinstance(manifest.get(k), list) for x in manifest[k]]
    rows = []
    for item in items:
        if isinstance(item, dict):
            name = str(item.get("file", item.get("path", item.get("source", "?"))))
            shown, reason = path_and_reason(f"{name}: {item.get('reason', item.get('error', ''))}")
        else:
            shown, reason = path_and_reason(str(item))
        rows.append([Cell(shown, "rowhead"), Cell(reason or "—")])
    if not rows:
        return None
    title = f"Skipped photos ({len(rows)}): not in the results below"
    return Table(title, ["photo", "reason"], rows, kv=True)


_PART_TITLES = {
    "explain": "Explanations",
    "evaluation": "Evaluation",
    "scores": "Scores",
    "filters": "Filter atlas",
}


def _parts_overview(run_dir: Path, found: dict[str, Path], reads: JsonFiles) -> Section | None:
    """The Run section of a folder without its own manifest: one sub-section per command folder in
    it (explain/, evaluate/, score/), each with that command's settings, versions and skipped photos.

    Why: ``agelens report`` over a folder of command outputs said "no manifest.json; run settings,
    versions and timings omitted" while explain/manifest.json and evaluate/manifest.json held them,
    and a photo explain skipped ("cannot read image header") appeared nowhere on the page.
    """
    subs = []
    for part in ("explain", "evaluation", "scores", "filters"):
        folder = found.get(part)
        if folder is None or folder == run_dir or not folder.is_dir():
            continue
        sid, title = f"run-{part}", f"{_PART_TITLES[part]} ({folder.name}/)"
        if part == "scores":
            if (scores_dir(folder) / "scores.json").is_file():
                lead = "Its settings, versions and any photos it left out are under Scores → Scoring details."
                subs.append(Section(sid, title, lead))
            continue
        manifest = reads.read(folder / "manifest.json", Notes(), title)
        if (part == "evaluation" and not _is_evaluate_manifest(manifest)) or (
            part == "filters" and not is_filters_manifest(manifest)
        ):
            manifest = None
        if isinstance(manifest, dict):
            lead = f"Settings, software versions and skipped photos recorded in {folder.name}/manifest.json."
            subs.append(Section(sid, title, lead, tables=_run_tables(manifest)))
    if not subs:
        return None
    lead = "No manifest.json for the whole folder: each command recorded its own, shown here one by one."
    return Section("run", "Run", lead, subsections=subs)


def _folds(shown: Any) -> dict[str, str]:
    """The summary line of each run table folded by default, by its key in the manifest.

    An explain manifest documents its fields (``conventions``) and lists every photo (``images``):
    a reader needs both only to check a detail, yet open they filled the first screens of the
    page, above the explanations themselves.
    """
    if not isinstance(shown, dict):
        return {}
    out = {"conventions": "Conventions: what each field means"}
    images = shown.get("images")
    if isinstance(images, list) and images and all(isinstance(im, dict) for im in images):
        keys = {k for im in images for k in im}
        said = [w for k, w in (("source", "source"), ("prediction", "prediction"),
                               ("crop_box_xywh", "crop box")) if k in keys]  # fmt: skip
        what = " and ".join([", ".join(said[:-1]), said[-1]] if len(said) > 1 else said)
        n = len(images)
        each = f" ({what} of {'each' if n > 1 else 'it'})" if what else ""
        out["images"] = f"Images: {n} photo{'' if n == 1 else 's'}{each}"
    return out


def _without_file_lists(manifest: Any) -> Any:
    """An explain manifest without its output-file lists: the gallery shows those files, once.

    Each image keeps its source and its prediction (read as text), which say what was explained;
    the loose copies of the prediction's parts go where the prediction itself is recorded. A filter
    atlas's manifest loses its per-filter records too: the "What the filters look for" table shows them.
    """
    if is_filters_manifest(manifest):
        return {k: v for k, v in manifest.items() if k not in ("files", "per_filter")}
    if not (isinstance(manifest, dict) and isinstance(manifest.get("images"), list)):
        return manifest
    from_age, cut = groups_from_age(manifest), age_cut(manifest)
    images = [_image_row(im, from_age, cut) if isinstance(im, dict) else im for im in manifest["images"]]
    return {k: v for k, v in manifest.items() if k != "files"} | {"images": images}


_KEPT_COPY = ("image_file", "image_sha256", "source_path")
"""The saved copy of a photo given in memory and its fingerprint: the gallery shows the photo
itself; a 64-hex-digit column in the run table says nothing to a reader. ``source_path``, the
photo's absolute path (read to find it again), says where the user keeps their photos to anyone
the page is shared with; ``source`` names the photo as the user did. manifest.json keeps all three."""


def _image_row(im: dict, from_age: bool = False, cut: Any = None) -> dict:
    """One photo's row; ``from_age`` (an age regressor's groups, see :func:`groups_from_age`): its
    prediction as the group and the age, without percentages a reader would take for confidence,
    the age on its group's side of the edges ``cut``."""
    drop = set(_FILE_LISTS) | set(_KEPT_COPY)
    drop |= set(_PREDICTION_PARTS) if isinstance(im.get("prediction"), dict) else set()
    row = {k: v for k, v in im.items() if k not in drop}
    if from_age and (text := prediction_text(im.get("prediction"), from_age=True, bins=cut)) is not None:
        row["prediction"] = text
    return row


def _prune(value: Any) -> Any:
    """Drop empty lists, dicts and strings at any depth: a row reading "[]" or "{}" says nothing."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ([], {}, "")}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _notes_by_part(
    run_dir: Path, manifest: Any, notes: Notes, found: dict[str, Path] | None = None
) -> dict[str, Notes]:
    """Where each part's notes go: the page's list, or nowhere when the part is absent by design.

    One command's own --out folder (explain, evaluate, score or filters) holds that command's part alone,
    and no run manifest or model card: the absence of the rest is not news, and a score folder's
    versions are in its scores.json, not "omitted". A broken file in a part that is there always
    is news (read_json notes it wherever these notes go).
    """
    silent = Notes(unreadable=notes.unreadable)
    own = {
        "evaluation": evaluation_dir(run_dir) == run_dir,
        "explain": _is_explain_folder(run_dir, manifest),
        "scores": scores_dir(run_dir) == run_dir,
        "filters": is_filters_manifest(manifest),
    }
    found = found or {}
    here = {
        part: is_own
        or (run_dir / part).exists()
        or (found.get(part, run_dir) != run_dir and found[part].exists())
        for part, is_own in own.items()
    }
    # An unreadable manifest (None) says nothing about what the folder is; its own note says why.
    run_manifest = manifest is not None and not (
        own["explain"] or own["filters"] or _is_evaluate_manifest(manifest)
    )
    run_parts = run_manifest or any((run_dir / p).exists() for p in ("model_card.md", "model_card.json"))
    one_command = any(own.values()) and not run_parts
    return {
        "run": silent if one_command else notes,
        **{part: silent if one_command and not here[part] else notes for part in own},
    }


_MARKERS = {
    "evaluation": "metrics.json",
    "explain": "manifest.json",
    "scores": "scores.json",
    "filters": "manifest.json",
}
_WHAT = {"evaluation": "evaluation", "explain": "explanations", "scores": "scores", "filters": "filter atlas"}


def _command_folders(run_dir: Path, reads: JsonFiles) -> dict[str, list[Path]]:
    """The sub-folders of ``run_dir`` each command wrote on its own, newest first (by the time of
    its main file), known by what they hold, whatever ``--out`` named them: an evaluate folder
    (metrics.json), an explain folder (a manifest.json that lists images), a score folder
    (scores.json) and a filter atlas (a manifest.json of ``"kind": "filters"``). ``outputs/`` after
    running the commands without ``--out`` holds ``explain``, ``explain-N``, ``score``, ``score-N``,
    ``filters``; ``--out outputs/score-n500`` is found too. A run's own
    evaluation/, explain/ and scores/ are not among them: :func:`part_folders` prefers those."""
    out: dict[str, list[Path]] = {part: [] for part in _MARKERS}
    try:
        subs = sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return out
    for part, marker in _MARKERS.items():
        for sub in subs:
            if sub.name in ("evaluation", "scores") or not (sub / marker).is_file():
                continue
            if part == "explain" and not _is_explain_folder(sub, reads.read(sub / marker, Notes(), sub.name)):
                continue  # evaluate --out writes a manifest.json too, of its settings
            if part == "filters" and not is_filters_folder(sub, reads):
                continue
            out[part].append(sub)
        out[part].sort(key=lambda p, m=marker: (_mtime(p / m), _number(p.name)), reverse=True)
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _number(name: str) -> int:
    """``score-3`` -> 3, ``score`` -> 1: the order :func:`fresh_out` numbers them in, for equal times."""
    tail = name.rpartition("-")[2]
    return int(tail) if "-" in name and tail.isdigit() else 1


def part_folders(
    run_dir: Path, manifest: Any = None, notes: Notes | None = None, reads: JsonFiles | None = None
) -> dict[str, Path]:
    """The folder each section reads: ``evaluation``, ``explain``, ``scores`` and ``filters`` (an atlas).

    A run's own layout first (``RUN/evaluation``, ``RUN/explain``, ``RUN/scores``, or ``run_dir``
    itself when it is one command's ``--out`` folder); else the folders the commands write by
    default (``explain``/``explain-N``, ``score``/``score-N``) and an evaluate ``--out`` folder
    (one holding metrics.json): the newest where there are several, said in one line of ``notes``.
    ``reads``: the page build's JSON files (:class:`JsonFiles`), so the page reads none again.
    """
    reads = JsonFiles() if reads is None else reads
    found = {
        "evaluation": evaluation_dir(run_dir),
        "explain": run_dir if _is_explain_folder(run_dir, manifest) else run_dir / "explain",
        "scores": scores_dir(run_dir),
        "filters": run_dir if is_filters_manifest(manifest) else run_dir / "filters",
    }
    own = {
        "evaluation": any(
            (found["evaluation"] / f).is_file() for f in ("metrics.json", "confusion_matrix.png")
        ),
        "explain": found["explain"] == run_dir or (run_dir / "explain" / "manifest.json").exists(),
        "scores": found["scores"] == run_dir or (run_dir / "scores").is_dir(),
        "filters": found["filters"] == run_dir or is_filters_folder(run_dir / "filters", reads),
    }
    for part in ("explain", "filters"):  # outputs/ holding explain, explain-2...: the newest, said so
        if own[part] and found[part] != run_dir:
            own[part] = not any(re.fullmatch(rf"{part}-[0-9]+", p.name) for p in run_dir.glob(f"{part}-*"))
    said = []
    for part, folders in _command_folders(run_dir, reads).items():
        if own[part] or not folders:
            continue
        found[part] = folders[0]
        if len(folders) > 1:
            others = ", ".join(f"{p.name}/" for p in folders[1:])
            said.append(f"{_WHAT[part]} from {folders[0].name}/ (newest; not {others})")
        else:
            said.append(f"{_WHAT[part]} from {folders[0].name}/")
    if notes is not None and said:
        notes.add(f"Folders: {'; '.join(said)}.")
    return found


def evaluation_dir(run_dir: Path) -> Path:
    """The folder holding the evaluation: a run's evaluation/, or the folder itself.

    ``agelens evaluate --out X`` (and train's NAME_eval/) write metrics.json and the
    confusion-matrix plot straight into X, as ``agelens score --out`` does with scores.json.
    """
    ev = run_dir / "evaluation"
    own = any((run_dir / f).is_file() for f in ("metrics.json", "confusion_matrix.png"))
    return run_dir if own and not (ev / "metrics.json").is_file() else ev


def _is_evaluate_manifest(manifest: Any) -> bool:
    """What ``agelens evaluate --out X`` writes beside its metrics: versions, settings, skipped photos."""
    command = manifest.get("command") if isinstance(manifest, dict) else None
    return command in ("evaluate", "train (test split)")  # train's NAME_eval/ is written the same way


def _is_explain_folder(run_dir: Path, manifest: Any) -> bool:
    """What ``agelens explain --out X`` wrote: a manifest listing images, no explain/ inside."""
    lists_images = isinstance(manifest, dict) and isinstance(manifest.get("images"), list)
    return lists_images and not (run_dir / "explain" / "manifest.json").exists()


def _model_card(run_dir: Path, notes: Notes, manifest: Any = None) -> Section | None:
    """The card, folded after the results; its license and intended use stay visible above the fold.

    A card runs to several screens (recipe, commands, candidate tables): before the photos it
    buried them, yet its license and intended use are what every reader of the page must see.
    """
    md = run_dir / "model_card.md"
    if not md.is_file() and not (run_dir / "model_card.json").exists():
        md = _card_beside_model(manifest) or md
    if md.is_file():
        try:
            text = md.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            notes.add(f"Model card: could not read {md.name} ({type(exc).__name__}).")
            return None
        lead = "" if md.parent == run_dir else f"The card that ships with the model ({md.name} beside it)."
        sec = Section("model-card", "Model card", lead, html=render_markdown(text, md.parent, md.parent))
        return _folded(sec, card_summary(text))
    card = read_json(run_dir / "model_card.json", notes, "Model card")
    if card is None:
        notes.add("Model card: no model_card.md or model_card.json.")
        return None
    sec = Section("model-card", "Model card", tables=tables_from_json(card, ""))
    return _folded(sec, _json_card_summary(card))


def _folded(sec: Section, summary: str) -> Section:
    sec.summary, sec.fold = summary, "Show the full model card (data, training, results)"
    return sec


_USE_HEADING = re.compile(r"^#{1,6}\s+.*(licen[cs]e|intended use)", re.IGNORECASE)


def card_summary(markdown: str) -> str:
    """One line from a card: its license / intended-use paragraph, else its title and first sentence.

    A card that states no license or intended use says so, rather than the page staying silent.
    """
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if _USE_HEADING.match(line.strip()):
            para = _paragraph(lines[i + 1 :])
            if para:
                return f"License and intended use: {_sentences(para, 2)}"
    title = next((ln.lstrip("#").strip() for ln in lines if ln.startswith("# ")), "")
    first = _paragraph([ln for ln in lines if not ln.startswith("#")])
    what = ": ".join(filter(None, (_plain(title), _sentences(first, 1))))
    return f"{what} The card states no license or intended use.".strip()


def _paragraph(lines: list[str]) -> str:
    """The first paragraph of prose in ``lines``: leading blanks skipped; tables and code are not prose."""
    out: list[str] = []
    for ln in lines:
        if not ln.strip():
            if out:
                break
            continue
        if ln.lstrip().startswith(("#", "|", "    ", "```")):
            if out:
                break
            continue
        out.append(ln.strip())
    return _plain(" ".join(out))


def _plain(text: str) -> str:
    """Markdown emphasis and code marks removed: the summary is rendered as text, not markdown."""
    return re.sub(r"[*_`]{1,3}([^*_`]+)[*_`]{1,3}", r"\1", text).strip()


def _sentences(text: str, k: int) -> str:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text.strip())
    return " ".join(parts[:k])


def _json_card_summary(card: Any) -> str:
    """A JSON card's license / intended-use strings, where it has any."""
    if not isinstance(card, dict):
        return ""
    found = [
        f"{str(k).replace('_', ' ')}: {v.strip()}"
        for k, v in card.items()
        if isinstance(v, str) and v.strip() and re.search(r"licen[cs]e|intended", str(k), re.IGNORECASE)
    ]
    return "; ".join(found)


def _model_named_in(
    run_dir: Path, manifest: Any = None, found: dict[str, Path] | None = None, *, reads: JsonFiles
) -> dict[str, Any] | None:
    """``{"model": path}`` from the run manifest, or a score, evaluate or explain folder's own record.

    Those folders have no run manifest, but they name their model (``scores.json`` meta,
    ``metrics.json``, ``explain/manifest.json``), and its card belongs on their page. A relative
    path is read against the folder that recorded it. ``null`` or ``<in-memory ...>`` (a model
    built in memory) names no file, so no card: guessing the shipped one could show the wrong
    model's license.
    """
    found = found or {}
    sources = ((scores_dir(found.get("scores", run_dir)) / "scores.json", ("meta", "model")),
               (found.get("evaluation", evaluation_dir(run_dir)) / "metrics.json", ("model",)),
               (found.get("explain", run_dir / "explain") / "manifest.json", ("model",)))  # fmt: skip
    found = [(manifest, run_dir)] + [(reads.read(path, Notes(), ""), path.parent) for path, _ in sources]
    for (value, base), keys in zip(found, [("model",)] + [k for _, k in sources], strict=True):
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value.startswith("<"):
            return None
        if isinstance(value, str) and value:
            path = Path(value)
            if not path.is_absolute() and not path.exists() and (base / path).parent.is_dir():
                path = base / path
            return {"model": str(path)}
    return None


def _card_beside_model(manifest: Any) -> Path | None:
    """The card that ships beside the run's model file (the shipped model's MODEL_CARD.md), if any.

    An explain folder records which model drew its maps; its card says what that model
    is and how far to trust it, so the page shows it rather than "no model card".
    """
    model = manifest.get("model") if isinstance(manifest, dict) else None
    if not isinstance(model, str) or not model:
        return None
    folder = Path(model).parent
    for name in ("MODEL_CARD.md", "model_card.md"):
        if (folder / name).is_file():
            return folder / name
    return None


def _setting_paths(manifest: Path, reads: JsonFiles) -> list[str]:
    """The paths a command's manifest records in its settings (for :func:`cut_paths`); [] without one."""
    made = reads.read(manifest, Notes(), "")  # a bad manifest is reported where the Run section reads it
    settings = made.get("settings") if isinstance(made, dict) else None
    return [v for v in settings.values() if isinstance(v, str)] if isinstance(settings, dict) else []


def _evaluation(run_dir: Path, notes: Notes, ev: Path | None = None, *, reads: JsonFiles) -> Section | None:
    ev = evaluation_dir(run_dir) if ev is None else ev
    m = reads.read(ev / "metrics.json", notes, "Evaluation")
    png = image_uri(inside(run_dir, (ev / "confusion_matrix.png").relative_to(run_dir)))
    if m is None and png is None:
        notes.add("Evaluation: no evaluation/metrics.json.")
        return None
    m = m if isinstance(m, dict) else {}
    if isinstance(m.get("evaluated_on"), str):  # the data folder by name, even one with spaces in it
        m = {**m, "evaluated_on": cut_paths(m["evaluated_on"], _setting_paths(ev / "manifest.json", reads))}
    # Say what was evaluated, as recorded; only a held-out split may be called one.
    on = m["evaluated_on"] if isinstance(m.get("evaluated_on"), str) else "photos not recorded"
    sec = Section(
        "evaluation", "Evaluation", f"Evaluated on {on}; rows of the confusion matrix are true classes."
    )
    sec.key = evaluation_findings(m).short
    for key, label in _HEADLINE:
        if (v := number(m.get(key))) is not None:
            sec.stats.append((label, pct(v)))
    for key, label in (("n_images", "Images"), ("n_skipped", "Skipped")):
        if (v := number(m.get(key))) is not None:
            sec.stats.append((label, fmt(int(v))))
    if isinstance(m.get("per_class"), dict | list):
        absent = _absent_classes(m)
        sec.tables += tables_from_json(_absent_as_dashes(m["per_class"], absent), "Per class", heat=True)
        if absent:
            sec.lead += (
                f" {', '.join(absent)}: no photo and no prediction, so no precision, recall or F1 "
                "(a dash), and left out of the macro averages."
            )
    if note := balanced_accuracy_note(m):
        sec.lead += f" Balanced accuracy is the {note}."
    cm_table = _confusion(m)
    if cm_table:
        sec.tables.append(cm_table)
    shown = {
        "per_class",
        "confusion_matrix",
        "confusion_matrix_normalized",
        "class_names",
        "n_images",
        "n_skipped",
        "classes_in_macro_average",
    }
    rest = _other_metrics({k: v for k, v in m.items() if k not in shown and k not in dict(_HEADLINE)})
    if rest:
        sec.tables += tables_from_json(rest, "Other metrics")
    if png:
        sec.figures.append(Figure("Confusion matrix (plot)", png))
    return sec


_EVAL_LABELS = {
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "age_mae": "age error (mean absolute)",
    "n_aged": "photos with a known age",
    "skipped": "skipped photos",
    "evaluated_on": "evaluated on",
    "detect": "face detection and crop",
    "not_face_crops": "photos that look like whole photos, not face crops",
    "model": "model",
    "test_time_flip": "test-time flip averaging",
    "engine": "inference engine",
}
"""Readable names for metrics.json's fields (``agelens.model.evaluate``); others keep their own."""


def _other_metrics(rest: dict) -> dict[str, Any]:
    """metrics.json's remaining fields by readable names, the age error in years, empty lists left out.

    Why: raw keys (``n_aged``, ``age_mae`` 4.315 with no unit) and blank rows for an empty
    ``skipped`` list read as missing data rather than as "none".
    """
    out: dict[str, Any] = {}
    for key, value in rest.items():
        if value in ([], {}, "", None):
            continue
        if key == "age_mae" and (v := number(value)) is not None:
            value = f"{v:.2f} years"
        elif isinstance(value, str):
            value = cut_paths(value)  # evaluated_on names the data folder as typed
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = [cut_path_reason(v) for v in value]  # skipped photos, not-face-crop names
        out[_EVAL_LABELS.get(key, key.replace("_", " "))] = value
    return out


def _absent_classes(m: dict) -> list[str]:
    """Classes with no photo and no prediction: ``evaluate`` lists the classes it averaged over
    (``classes_in_macro_average``) only when some were absent."""
    per_class, averaged = m["per_class"], m.get("classes_in_macro_average")
    if not (isinstance(per_class, dict) and isinstance(averaged, list)):
        return []
    return [str(c) for c in per_class if c not in averaged]


def _absent_as_dashes(per_class: Any, absent: list[str]) -> Any:
    """The per-class rows, an absent class without scores (its support stays).

    scikit-learn gives such a class 0.0 everywhere (``zero_division=0``); printed, 0.000 reads as a
    class the model always gets wrong, which is not what happened.
    """
    if not absent:
        return per_class

    def unscored(row: dict) -> dict:
        return {k: (x if k == "support" else None) for k, x in row.items()}

    return {c: unscored(v) if c in absent and isinstance(v, dict) else v for c, v in per_class.items()}


def _confusion(m: dict) -> Table | None:
    """Counts with row-normalised shading, as an HTML table (prints crisply, unlike a PNG)."""
    cm, names = m.get("confusion_matrix"), m.get("class_names")
    if not (isinstance(cm, list) and cm and all(isinstance(r, list) for r in cm)):
        return None
    names = (
        [str(n) for n in names]
        if isinstance(names, list) and len(names) == len(cm)
        else [str(i) for i in range(len(cm))]
    )
    norm = m.get("confusion_matrix_normalized")
    rows = []
    for i, row in enumerate(cm):
        total = sum(v for v in row if isinstance(v, int | float)) or 1
        cells = [cell("true", names[i])]
        cells[0].cls = "rowhead"
        for j, v in enumerate(row):
            try:
                share = float(norm[i][j]) if isinstance(norm, list) else float(v) / total
            except (IndexError, TypeError, ValueError):
                share = float(v) / total if isinstance(v, int | float) else 0.0
            c = cell("count", v)
            c.heat, c.text, c.cls = max(0.0, min(1.0, share)), f"{fmt(v)} · {share:.0%}", c.cls + " cm"
            cells.append(c)
        rows.append(cells)
    return Table("Confusion matrix (rows: true, columns: predicted)", ["true \\ predicted", *names], rows)


def _gallery_section(
    run_dir: Path, run_manifest: Any, notes: Notes, ex: Path | None = None, *, reads: JsonFiles
) -> Section | None:
    ex = run_dir / "explain" if ex is None else ex
    if ex == run_dir or _is_explain_folder(run_dir, run_manifest):
        # ``agelens report X`` on what ``agelens explain --out X`` wrote: the run is the explanation.
        ex, manifest = run_dir, run_manifest
    else:
        manifest = reads.read(ex / "manifest.json", notes, "Explanations")
    if manifest is None:
        if not (ex / "manifest.json").exists():
            notes.add("Explanations: no explain/manifest.json; gallery omitted.")
        return None
    bins = age_bins((manifest, ex), (run_manifest, run_dir))
    gallery = build_gallery(ex, manifest, run_dir, notes, bins)
    if gallery is None:
        return None
    # "target class" only where every target is one: the expected age and a contrast are not.
    target = "target class" if gallery.class_targets else "target"
    lead = f"Pick a method, layer and {target}; every card switches together."
    return Section("explanations", "Explanations", lead, gallery=gallery)
