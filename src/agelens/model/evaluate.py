"""Classification metrics, tables and plots for the age-group model.

scikit-learn computes the numbers; this module only shapes them into the JSON,
Markdown table and confusion-matrix plot a user expects.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from agelens.atomic import atomic_savefig, atomic_write_text, staged_folder
from agelens.wording import counted


def classification_metrics(y_true, y_pred, class_names: list[str]) -> dict:
    """Accuracy, balanced accuracy, macro-F1, per-class P/R/F1/support and confusion matrices.

    Macro averages run over the classes that occur (as truth or as prediction), as
    scikit-learn does when it is not given the labels: a test set of young faces
    alone, all classified right, has macro-F1 1.0, not 0.33 from two empty classes.
    The per-class table still lists every class, with its support.
    """
    from sklearn.metrics import (  # here, not above: the report reads metrics without computing any
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k = len(class_names)
    labels = list(range(k))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    rows = cm.sum(1, keepdims=True)
    cmn = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    occurs = (cm.sum(0) + cm.sum(1)) > 0
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": expected on small sets
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else 0.0
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "balanced_accuracy": balanced,
        "macro_f1": float(np.mean(f[occurs])) if occurs.any() else 0.0,
        "macro_precision": float(np.mean(p[occurs])) if occurs.any() else 0.0,
        "macro_recall": float(np.mean(r[occurs])) if occurs.any() else 0.0,
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(class_names)
        },
        **_averaged_classes(class_names, occurs),
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": np.round(cmn, 4).tolist(),
        "class_names": list(class_names),
        "n_images": int(len(y_true)),
    }


def _averaged_classes(class_names: list[str], occurs: np.ndarray) -> dict:
    """``classes_in_macro_average`` when some class had no photo and no prediction (its 0.0 row means
    "nothing to score", not "all wrong"); nothing when every class counts, the usual case."""
    kept = [class_names[i] for i in np.flatnonzero(occurs)]
    return {} if occurs.all() else {"classes_in_macro_average": kept}


def markdown_table(m: dict) -> str:
    """Per-class table plus the confusion matrix, shaped like the seed project's report."""
    lines = [
        "| class | precision | recall | f1-score | support |",
        "|---|---:|---:|---:|---:|",
    ]
    absent = []
    averaged = m.get("classes_in_macro_average", list(m["per_class"]))  # older files: every class
    for name, v in m["per_class"].items():
        if name in averaged:
            lines.append(
                f"| {name} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
            )
        else:  # 0.000 would read as a class the model gets wrong; there was nothing to get
            absent.append(name)
            lines.append(f"| {name} | – | – | – | {v['support']} |")
    total = sum(v["support"] for v in m["per_class"].values())

    def macro(key: str) -> float:  # metrics saved before macro_precision existed average every class
        return m.get(f"macro_{key}", np.mean([v[key] for v in m["per_class"].values()]))

    lines += [
        f"| **accuracy** | | | {m['accuracy']:.3f} | {total} |",
        f"| **macro avg** | {macro('precision'):.3f} | {macro('recall'):.3f} "
        f"| {m['macro_f1']:.3f} | {total} |",
        *(
            ["", f"–: no photo of {', '.join(absent)} and none predicted as such; not in the macro averages."]
            if absent
            else []
        ),  # fmt: skip
        "",
        f"Balanced accuracy: {m['balanced_accuracy']:.3f}"
        + (f" ({note})" if (note := balanced_accuracy_note(m)) else ""),
        *(
            [f"Age MAE: {m['age_mae']:.2f} years ({counted(m['n_aged'], 'photo')} with an age)"]
            if "age_mae" in m
            else []
        ),
        "",
        "Confusion matrix (rows: true, columns: predicted):",
        "",
        "| true \\ predicted | " + " | ".join(m["class_names"]) + " |",
        "|---|" + "---:|" * len(m["class_names"]),
    ]
    for name, row in zip(m["class_names"], m["confusion_matrix"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def balanced_accuracy_note(m: dict) -> str:
    """Why balanced accuracy and the macro-average recall differ, or "" when they do not.

    Balanced accuracy (scikit-learn's) is the mean recall over the classes that occur in the
    truth; the macro average also counts a class that was only predicted, at recall 0. Two
    standard numbers that disagree on the same page need the reason beside them.
    """
    per_class = m.get("per_class")
    if not isinstance(per_class, dict):  # a hand-made or older metrics.json the report is shown
        return ""
    averaged = m.get("classes_in_macro_average", list(per_class))
    supports = {name: v.get("support") if isinstance(v, dict) else None for name, v in per_class.items()}
    if not isinstance(averaged, list) or not all(isinstance(n, int) for n in supports.values()):
        return ""
    only_predicted = [name for name in averaged if supports.get(name) == 0]
    if not only_predicted:
        return ""
    return (
        "mean recall over the classes in the truth; the macro-average recall also counts "
        f"{', '.join(only_predicted)}, predicted but never true, at recall 0"
    )


def plot_confusion(m: dict, path: str | Path) -> Path:
    """Counts annotated over the row-normalised colours, so small classes stay readable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm, cmn, names = (
        np.array(m["confusion_matrix"]),
        np.array(m["confusion_matrix_normalized"]),
        m["class_names"],
    )
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 1.2 * len(names) + 1.6), dpi=120)
    ax.imshow(cmn, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{cmn[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if cmn[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {m['accuracy']:.1%}, macro-F1 {m['macro_f1']:.3f}")
    fig.tight_layout()
    return atomic_savefig(fig, path)


def write_evaluation(
    m: dict, out: str | Path, settings: dict | None = None, command: str = "evaluate"
) -> dict[str, Path]:
    """Write metrics.json, metrics.md, confusion_matrix.png and, last, manifest.json into ``out``.

    The manifest says what made the numbers (versions, when, the command line, the model file's
    fingerprint, the command's settings with the data folder's absolute path) and lists the files
    written and every photo skipped with its reason: a score is only reproducible with those, and
    ``metrics.json`` keeps the shape ``evaluate --json`` promises (:mod:`agelens.provenance`).
    They are written in a hidden folder and moved in together (:func:`agelens.atomic.staged_folder`): a
    full disk or a Ctrl-C leaves no metrics.json without its manifest, nor a mix of two runs.
    """
    out = Path(out)
    with staged_folder(out, last="manifest.json") as tmp:  # all four files, or none of them
        files = _write_evaluation_files(m, tmp, settings, command)
    return {k: out / p.name for k, p in files.items()}


def _write_evaluation_files(m: dict, out: Path, settings: dict | None, command: str) -> dict[str, Path]:
    """:func:`write_evaluation`'s files, written into ``out`` (its staging folder), manifest last."""
    from agelens.provenance import provenance, resolved_paths

    files = {
        "json": atomic_write_text(out / "metrics.json", json.dumps(m, indent=1)),
        "markdown": atomic_write_text(out / "metrics.md", markdown_table(m)),
        "plot": plot_confusion(m, out / "confusion_matrix.png"),
    }
    settings = resolved_paths(settings or {})  # "data": absolute, as typed in "data_as_typed"
    model = settings.get("model") or m.get("model")
    made = provenance(model)
    manifest = {
        "command": command,  # "train (test split)" for the scores a training run ends with
        **{k: made[k] for k in ("created", "command_line") if k in made},
        "versions": made["versions"],
        **({"model": str(model)} if model else {}),
        **({"model_file": made["model_file"]} if "model_file" in made else {}),
        "settings": settings,
        "files": sorted(p.name for p in files.values()),
        "n_images": m.get("n_images"),
        "skipped": list(m.get("skipped", [])),
    }
    files["manifest"] = atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return files


def age_error(predicted: np.ndarray, true: np.ndarray) -> dict:
    """Mean absolute error in years of a model's ages over the photos whose true age is known
    (NaN elsewhere): ``age_mae`` and ``n_aged``, or nothing where none is known.

    Why beside the group metrics: for a model that reads its groups off its age, the age is
    what it learnt; a group accuracy hides how far off inside (and across) the groups it is.
    """
    have = np.isfinite(true)
    if not have.any():
        return {}
    return {"age_mae": float(np.mean(np.abs(predicted[have] - true[have]))), "n_aged": int(have.sum())}


PLAUSIBLE_AGES = (-0.5, 120.0)
"""Years outside which a predicted age says the model is read wrongly, not that someone is that old."""


def implausible_ages(ages: np.ndarray) -> str:
    """What is wrong with a model's ages, in one phrase, or "" when they look like years.

    Ages of -4000 or 0.3 years for every photo are no prediction: the output is scaled (a
    model trained on age / 100) or the pixel range guessed wrong. Said once, beside the numbers.
    """
    ages = np.asarray(ages, dtype=float).reshape(-1)
    if not len(ages):
        return ""
    lo, hi = PLAUSIBLE_AGES
    out = (ages < lo) | (ages > hi)
    if out.any():
        worst = ages[out][np.argmax(np.abs(ages[out]))]
        return f"{int(out.sum())} of {len(ages)} ages are outside 0-120 years (e.g. {worst:.0f})"
    if len(ages) >= 5 and float(np.ptp(ages)) < 1.0:
        return f"all {len(ages)} ages lie within one year of each other ({ages.min():.2f}-{ages.max():.2f})"
    return ""


MIN_PHOTOS_ONE_CLASS = 10
"""Photos below which "every photo was predicted X" says little: a few can share a class by chance."""


def training_steps(metadata: dict | None) -> int | None:
    """Optimizer steps the run that made an agelens model took (epochs done x batches per epoch),
    from its metadata; None where it does not say (a plain Keras model, the shipped model's
    recipe, a file without the counts)."""
    meta = metadata if isinstance(metadata, dict) else {}
    training, data, recipe = (meta.get(k) for k in ("training", "data", "train_config"))
    try:
        epochs, n, batch = int(training["epochs_done"]), int(data["n_train"]), int(recipe["batch_size"])
    except (KeyError, TypeError, ValueError):
        return None
    return epochs * -(-n // batch) if batch > 0 else None


def one_class_predicted(y_pred, class_names: list[str]) -> str | None:
    """The class every photo was predicted, where there were enough photos for that to mean
    something (:data:`MIN_PHOTOS_ONE_CLASS`); else None."""
    y_pred = np.asarray(y_pred).reshape(-1)
    if len(y_pred) < MIN_PHOTOS_ONE_CLASS or len(np.unique(y_pred)) != 1:
        return None
    return class_names[int(y_pred[0])]


def one_class_warning(y_true, y_pred, class_names: list[str], steps: int | None = None) -> str:
    """One line when every photo was predicted the same class, or "" when not.

    Why: a run of a few dozen steps often ends predicting one class for everything, and its
    accuracy (the share of that class) reads like a result. Where the photos are of that one
    class too, the numbers cannot show anything; where they are not, the model has not learned.
    """
    name = one_class_predicted(y_pred, class_names)
    if name is None:
        return ""
    n = len(np.asarray(y_pred).reshape(-1))
    truth = {class_names[int(i)] for i in np.unique(np.asarray(y_true))}
    if truth == {name}:
        return (
            f"warning: every photo ({n}) was predicted {name}, and every one is {name}: these scores "
            "cannot show whether the model tells the groups apart"
        )
    if steps is None:
        return (
            f"warning: every photo ({n}) was predicted {name}: the model does not tell the groups apart here"
        )
    return (
        f"warning: every photo ({n}) was predicted {name}: the model has not learned to tell the groups "
        f"apart ({steps} training steps; train longer or on more photos)"
    )
