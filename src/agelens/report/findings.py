"""Plain-language verdicts built from a run's numbers: what the tables say, in a sentence.

Every builder takes the parsed JSON (or a small part of it) and returns ``Said``: the
sentences shown in the section and one short line for the page's "Key findings" box.
Nothing here is hard-coded about the model or the methods: a claim is made only where the
file holds the value *and* its 95% CI (and, for comparisons, the metric's stated direction);
a missing field makes the builder say less, never guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agelens.report.tables import is_baseline, number, pct, rank_text
from agelens.wording import counted

BEATS, UNCLEAR, WORSE = "beats", "unclear", "worse"


@dataclass
class Said:
    """What a section concludes: ``sentences`` under its heading, ``short`` for Key findings."""

    sentences: list[str] = field(default_factory=list)
    short: str = ""

    def __bool__(self) -> bool:
        return bool(self.sentences or self.short)


def ci(v: Any) -> tuple[float, float, float] | None:
    """(mean, ci_low, ci_high) of a summary dict, or None unless all three are finite numbers."""
    if not isinstance(v, dict):
        return None
    vals = [number(v.get(k)) for k in ("mean", "ci_low", "ci_high")]
    if any(x is None or not math.isfinite(x) for x in vals):
        return None
    return vals[0], vals[1], vals[2]  # type: ignore[return-value]


def ci_side(v: Any, higher_is_better: bool, zero: float = 0.0) -> str | None:
    """Where a 95% CI lies against ``zero``: BEATS (all of it on the good side), WORSE, UNCLEAR.

    None without a CI: no claim is made from a mean alone.
    """
    c = ci(v)
    return None if c is None else bounds_side(c[1], c[2], higher_is_better, zero)


def bounds_side(lo: float, hi: float, higher_is_better: bool, zero: float = 0.0) -> str:
    """The rule behind :func:`ci_side`, for an interval ``[lo, hi]`` already at hand."""
    if (lo > zero) if higher_is_better else (hi < zero):
        return BEATS
    if (hi < zero) if higher_is_better else (lo > zero):
        return WORSE
    return UNCLEAR


def directed_side(v: Any, direction: str | None, zero: float = 0.0) -> str | None:
    """:func:`ci_side` for a metric whose stated direction is ``"higher"`` or ``"lower"``.

    None when the direction is missing (or anything else): which side is good is then
    unknown, so neither the sentences nor the tables claim better or worse than ``zero``.
    """
    return ci_side(v, direction == "higher", zero) if direction in ("higher", "lower") else None


def join(items: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


# --- sample size ----------------------------------------------------------------------------------

SMALL_SAMPLE = 50
"""Below this many photos a finding says outright that it cannot rank methods: with 10 photos one
photo moves an accuracy by 10 points, and the 95% CIs of methods overlap almost always."""


def photos(n: int) -> str:
    return counted(n, "photo")


def sample_sentence(n: Any, purpose: str = "rank methods", of: Any = None) -> str:
    """ "Based on N photos." and, under :data:`SMALL_SAMPLE`, that this is too few to ``purpose``.

    Every key finding rests on a sample; a reader must see its size beside the verdict,
    or "100%" on 10 photos reads like "100%" on 2,000. Nothing without a count. ``of``, the
    photos the run scored, is named when the finding rests on fewer (a localisation metric
    skips a photo whose mask is empty), so the count is this finding's, not the run's.
    """
    k = whole_count(n)
    if k is None:
        return ""
    total = whole_count(of)
    counted_k = f"{k} of the {photos(total)} scored" if total and total > k else photos(k)
    if k < SMALL_SAMPLE:
        return f"Based on only {counted_k}: too few to {purpose}; treat this as provisional."
    return f"Based on {counted_k}."


def with_sample(short: str, n: Any, purpose: str = "rank methods", of: Any = None) -> str:
    """``short`` (a key-finding line) with :func:`sample_sentence` appended; unchanged without a count."""
    extra = sample_sentence(n, purpose, of)
    return f"{short} {extra}" if short and extra else short


# --- evaluation -------------------------------------------------------------------------------


def evaluation_findings(m: Any) -> Said:
    """Accuracy and macro-F1, what they were measured on (``evaluated_on``) and on how many photos."""
    if not isinstance(m, dict):
        return Said()
    parts = [
        f"{label} {pct(v)}"
        for key, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"))
        if (v := number(m.get(key))) is not None
    ]
    if not parts:
        return Said()
    on = m.get("evaluated_on")  # its paths cut by the caller, who knows the run's own (html._evaluation)
    n = whole_count(m.get("n_images"))
    said = isinstance(on, str) and n is not None and re.search(rf"(?<![\d,.]){n}(?![\d,.])", on)
    where = (
        f" on {on.strip()}" + (f" ({photos(n)})" if n and not said else "")
        if isinstance(on, str) and on.strip()
        else f" on {n} images (which ones is not recorded)"
        if n
        else " (what it was evaluated on is not recorded)"
    )
    short = f"Evaluation: {join(parts)}{where}."
    if warning := chance_warning(m):
        short += f" {warning}"
    if n and n < SMALL_SAMPLE:  # the count is in the line already; say what it means
        short += (
            f" Only {photos(n)}: too few for precise percentages "
            f"(one photo moves accuracy by {100 / n:.1f} points); treat them as provisional."
        )
    return Said(short=short)


def chance_warning(m: dict) -> str:
    """A model that guesses, said outright: its predictions collapse to one class, or its balanced
    accuracy is at or below chance (1 / the number of classes in the truth); else "".

    Accuracy alone hides it: a model that calls every face young scores 60% when 60% are young.
    Chance needs the classes in the truth, so nothing is said without the confusion matrix.
    """
    rows = _confusion_rows(m)
    if rows is None:
        return ""
    true = [i for i, r in enumerate(rows) if sum(r) > 0]
    predicted = [j for j in range(len(rows)) if any(r[j] > 0 for r in rows)]
    k = len(true)
    if k < 2:  # one class in the truth: naming it every time is right, not a collapse
        return ""
    balanced = number(m.get("balanced_accuracy"))
    if balanced is None:
        balanced = sum(rows[i][i] / sum(rows[i]) for i in true) / k
    chance = 1 / k
    level = "chance level" if balanced >= chance - 1e-9 else f"below the {pct(chance)} chance level"
    level += f" for {k} classes"
    why = f"balanced accuracy {pct(balanced)}, {level}"
    if len(predicted) == 1:
        names = m.get("class_names")
        j = predicted[0]
        name = str(names[j]) if isinstance(names, list) and len(names) == len(rows) else f"class {j}"
        return f"The model predicts only {name}: every photo gets the same class ({why})."
    if balanced <= chance + 1e-9:
        return f"The model does no better than chance ({why})."
    return ""


def _confusion_rows(m: dict) -> list[list[float]] | None:
    """The confusion matrix as square rows of counts (rows true, columns predicted), or None."""
    cm = m.get("confusion_matrix")
    if not (isinstance(cm, list) and cm and all(isinstance(r, list) and len(r) == len(cm) for r in cm)):
        return None
    rows = [[number(v) for v in r] for r in cm]
    if any(v is None or v < 0 for r in rows for v in r):
        return None
    return rows  # type: ignore[return-value]


def whole_count(v: Any) -> int | None:
    """A positive whole count (``n_images``), else None."""
    x = number(v)
    return int(x) if x is not None and x >= 1 and x == int(x) else None


# --- faithfulness and localisation vs matched random maps -----------------------------------------


def vs_random_sides(diff: Any, metrics: list[str], stated: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Per method: the metrics it beats matched random maps on, is not distinguishable on, is worse on.

    ``diff`` is scores.json's ``difference_vs_matched_random`` (method -> metric -> stat). A metric
    counts only with a stated direction and a CI; the ``random`` baseline is never a method.
    """
    out: dict[str, dict[str, list[str]]] = {}
    if not isinstance(diff, dict):
        return out
    for meth, row in diff.items():
        if is_baseline(str(meth)) or not isinstance(row, dict):
            continue
        sides: dict[str, list[str]] = {BEATS: [], UNCLEAR: [], WORSE: []}
        for metric in metrics:
            side = directed_side(row.get(metric), stated.get(metric))
            if side is not None:
                sides[side].append(metric)
        if any(sides.values()):
            out[str(meth)] = sides
    return out


def vs_random_sentence(method: str, sides: dict[str, list[str]], plural: bool = False) -> str:
    """One clause per verdict: "X beats matched random maps on a (95% CI); not distinguishable ... on b"."""
    clauses = []
    if sides.get(BEATS):
        clauses.append(
            f"{'beat' if plural else 'beats'} matched random maps on {join(sides[BEATS])} (95% CI)"
        )
    be = "are" if plural else "is"
    if sides.get(UNCLEAR):
        clauses.append(f"{be} not distinguishable from random maps on {join(sides[UNCLEAR])}")
    if sides.get(WORSE):
        clauses.append(f"{be} worse than random maps on {join(sides[WORSE])} (95% CI)")
    if not clauses:
        return ""
    rest = [c.removeprefix(f"{be} ") for c in clauses[1:]]
    return f"{method} " + "; ".join([clauses[0], *rest]) + "."


def vs_random_findings(
    diff: Any, metrics: list[str], stated: dict[str, str], topic: str, order: list[str] | None = None
) -> Said:
    """Sentences per method and one short line ("topic: A beats matched random maps on 5 of 6 metrics...")."""
    sides = vs_random_sides(diff, metrics, stated)
    if not sides:
        return Said()
    first = [m for m in order or [] if m in sides]
    names = first + [m for m in sides if m not in first]
    groups: dict[tuple, list[str]] = {}  # methods with the same verdicts share one sentence
    for m in names:
        groups.setdefault(tuple(tuple(sides[m][k]) for k in (BEATS, UNCLEAR, WORSE)), []).append(m)
    everyone = len(names) >= 3

    def subject(ms: list[str]) -> str:
        return f"all {len(ms)} methods" if everyone and len(ms) == len(names) else join(ms)

    sentences = [vs_random_sentence(subject(ms), sides[ms[0]], plural=len(ms) > 1) for ms in groups.values()]
    sentences = [x[:1].upper() + x[1:] if x.startswith("all ") else x for x in sentences]
    if len(groups) == 1:
        return Said(
            sentences, f"{topic}: {vs_random_sentence(subject(names), sides[names[0]], len(names) > 1)}"
        )
    by_count: dict[tuple[int, int], list[str]] = {}
    for m in sorted(names, key=lambda m: -len(sides[m][BEATS]) / sum(map(len, sides[m].values()))):
        by_count.setdefault((len(sides[m][BEATS]), sum(map(len, sides[m].values()))), []).append(m)
    some = [(ms, k, n) for (k, n), ms in by_count.items() if k]
    none = [m for (k, _), ms in by_count.items() if not k for m in ms]
    if some:
        (ms, k, n), *more = some
        verb = "beats" if len(ms) == 1 else "beat"
        short = f"{topic}: {join(ms)} {verb} matched random maps on {k} of {n} metrics (95% CI)"
        short += "".join(f", {join(ms)} on {k} of {n}" for ms, k, n in more)
        short += f"; {join(none)} on none" if none else ""
    else:
        short = f"{topic}: no method beats matched random maps on any metric (95% CI)"
    worse = [f"{m} on {join(sides[m][WORSE])}" for m in names if sides[m][WORSE]]
    if worse:
        short += f"; worse than random: {'; '.join(worse)}"
    return Said(sentences, short + ".")


# --- overall ranking ------------------------------------------------------------------------------

DIFFERENCE, SCORE = "difference_vs_matched_random", "scores"
"""What a metric's ranks compare (scores.json's ``ranked_on``): each method's paired difference from
random maps as smooth as its own, or, for a metric with no such difference (randomisation), the score."""


def ranked_on_phrase(ranked_on: Any, where: str = "") -> str:
    """What the ranks compare, as a phrase ("on each metric's difference from ..."); "" when unknown.

    ``ranked_on`` maps each ranked metric to :data:`DIFFERENCE` or :data:`SCORE`; the metrics that
    fall back to the score are named, so a reader knows which ranks the ✓/⚠ marks do not back.
    ``where`` names the table of differences, in brackets after them.
    """
    if not isinstance(ranked_on, dict) or not ranked_on:
        return ""
    diff = [str(m) for m, on in ranked_on.items() if on == DIFFERENCE]
    raw = [str(m) for m, on in ranked_on.items() if on != DIFFERENCE]
    see = f" ({where})" if where else ""
    random_maps = "random maps as smooth as its own"
    if not raw:
        return f"on each metric's difference from {random_maps}{see}"
    if not diff:
        return "on the scores themselves (no difference from random maps was computed)"
    fallback = f"on the score for {join(raw)} (no random-map difference)"
    return f"on the difference from {random_maps} for {join(diff)}{see}, {fallback}"


def ranking_basis_sentence(ranked_on: Any, where: str = "") -> str:
    """One sentence saying what a mean rank is computed from ("" when ``ranked_on`` is unknown or empty).

    ``where`` names the table of differences ("the table below"), so a reader can check the ranks.
    """
    phrase = ranked_on_phrase(ranked_on, where)
    return f"Mean rank: each method's ranks averaged, {phrase}; 1 = best." if phrase else ""


def ranking_findings(
    ranking: Any, scores: Any = None, diff: Any = None, ranked_on: Any = None, sanity: Any = None
) -> Said:
    """The top of the overall ranking (never the random baseline), with its mean rank.

    A mean rank orders means; it is not a test. With ``scores`` (method -> metric -> mean and CI),
    a lone leader is checked against the runner-up: when their 95% CIs overlap on every ranked
    metric, the finding says the order is not established rather than naming a winner. With
    ``ranked_on`` (metric -> :data:`DIFFERENCE` or :data:`SCORE`) the finding says what the ranks
    compare, and a metric ranked on the difference is checked on ``diff``'s CIs (scores.json's
    ``difference_vs_matched_random``), the numbers its ranks come from. With ``sanity`` (method ->
    "pass" / "inconclusive" / "fail"), methods ranked above the first one that passes the sanity
    check and do not pass it are named, with the first that does: a leader whose map survives the
    randomisation of the model is no recommendation.
    """
    rows = [
        r
        for r in (ranking if isinstance(ranking, list) else [])
        if isinstance(r, dict)
        and not is_baseline(str(r.get("method", "")))
        and number(r.get("mean_rank")) is not None
    ]
    if len(rows) < 2:
        return Said()
    rows.sort(key=lambda r: number(r["mean_rank"]))
    best = number(rows[0]["mean_rank"])
    top = [str(r.get("method")) for r in rows if number(r["mean_rank"]) == best]
    n_metrics = len(rows[0]["ranks"]) if isinstance(rows[0].get("ranks"), dict) else None
    over = f"over {n_metrics} metrics" if n_metrics else "over all metrics"
    if len(top) > 1:
        said, detail = f"{join(top)} share first place", f"(mean rank {rank_text(best)} {over})"
    else:
        nxt = rows[1]
        said = f"{top[0]} comes first"
        detail = (
            f"(mean rank {rank_text(best)} {over}; next: {nxt.get('method')}, {rank_text(nxt['mean_rank'])})"
        )
        on = _ranked_stats(scores, diff, ranked_on)
        apart = _separated(on, top[0], str(nxt.get("method")), rows[0].get("ranks"))
        if apart is not None and not apart:
            said = f"no method clearly leads: {top[0]} has the best mean rank"
            detail += f", but its 95% CIs overlap {nxt.get('method')}'s on every metric"
    phrase = ranked_on_phrase(ranked_on)
    how = f"ranked {phrase}; " if phrase else ""
    caveat = _sanity_caveat([str(r.get("method")) for r in rows], rows, sanity)
    sentence = f"{said} in the overall ranking {detail}{caveat}; {how}1 = best on a metric"
    sentence += ", random maps are not ranked."
    return Said([sentence], f"Overall ranking{_ranked_on_short(ranked_on)}: {said} {detail}{caveat}.")


def _sanity_caveat(order: list[str], rows: list[dict], sanity: Any) -> str:
    """The clause added after the leader when methods ranked above the first that passes the sanity
    check fail it (or are inconclusive): ", but scorecam fails the sanity check ...; the first method
    that passes it is occlusion (mean rank 3.18)". "" when the leader passes or no verdict is known."""
    if not isinstance(sanity, dict) or not any(sanity.get(m) for m in order):
        return ""
    first = next((i for i, m in enumerate(order) if sanity.get(m) == "pass"), None)
    above = order if first is None else order[:first]
    failed = [m for m in above if sanity.get(m) == "fail"]
    unsure = [m for m in above if sanity.get(m) == "inconclusive"]
    if not failed and not unsure:
        return ""
    parts = []
    if failed:
        verb = "fails" if len(failed) == 1 else "fail"
        parts.append(f"{join(failed)} {verb} the sanity check (the map survives randomising the model)")
    if unsure:
        be = "is" if len(unsure) == 1 else "are"
        parts.append(f"{join(unsure)} {be} inconclusive on it")
    tail = "no method passes it"
    if first is not None:
        rank = rank_text(rows[first]["mean_rank"])
        tail = f"the first method that passes it is {order[first]} (mean rank {rank})"
    return f", but {' and '.join(parts)}; {tail}"


def _ranked_on_short(ranked_on: Any) -> str:
    """What the ranks compare, in brackets for the Key findings line; "" when unknown."""
    if not isinstance(ranked_on, dict) or not ranked_on:
        return ""
    raw = [str(m) for m, on in ranked_on.items() if on != DIFFERENCE]
    if len(raw) == len(ranked_on):
        return " (on the scores: no random-map differences)"
    return " (on the difference from matched random maps" + (
        f"; on the score for {join(raw)})" if raw else ")"
    )


def _ranked_stats(scores: Any, diff: Any, ranked_on: Any) -> dict[str, dict[str, Any]] | None:
    """Per method, per metric, the stat its rank came from: the difference where ``ranked_on`` says
    so (and ``diff`` has it), else the score. None without ``scores``."""
    if not isinstance(scores, dict):
        return None
    if not isinstance(ranked_on, dict) or not isinstance(diff, dict):
        return scores
    out: dict[str, dict[str, Any]] = {}
    for meth, row in scores.items():
        d = diff.get(meth) if isinstance(diff.get(meth), dict) else {}
        own = dict(row) if isinstance(row, dict) else {}
        out[meth] = own | {m: d.get(m) for m, on in ranked_on.items() if on == DIFFERENCE}
    return out


def _separated(scores: Any, a: str, b: str, ranks: Any) -> list[str] | None:
    """The ranked metrics on which ``a``'s and ``b``'s 95% CIs do not overlap; None if unknown."""
    if not isinstance(scores, dict) or not isinstance(ranks, dict):
        return None
    sa, sb = scores.get(a), scores.get(b)
    if not isinstance(sa, dict) or not isinstance(sb, dict):
        return None
    out = []
    for metric in ranks:
        x, y = sa.get(metric), sb.get(metric)
        bounds = [
            number(v.get(k)) if isinstance(v, dict) else None for v in (x, y) for k in ("ci_low", "ci_high")
        ]
        if any(v is None for v in bounds):
            return None
        lo_a, hi_a, lo_b, hi_b = bounds
        if hi_a < lo_b or hi_b < lo_a:
            out.append(metric)
    return out


# --- sanity ---------------------------------------------------------------------------------------


WEIGHTS, LABELS = "weight randomisation", "label randomisation"
_AFTER = {WEIGHTS: "randomising the weights", LABELS: "retraining on shuffled labels"}
_WHY_FLAGGED = {
    WEIGHTS: "while the weights are randomised from the top layer down its similarity stays above {t} on "
    "average, so the map shows more of what the lower layers respond to than of what decides the class",
    LABELS: "its maps of a model trained on shuffled labels stay alike above {t}, so the map shows the photo "
    "more than what the model learned",
}


def sanity_findings(
    verdicts: dict[str, str | None],
    threshold: float,
    checks: tuple[str, ...] = (WEIGHTS,),
    failed: dict[str, tuple[str, ...]] | None = None,
) -> Said:
    """Group methods by the section's verdict (pass / inconclusive / fail) on the sanity checks.

    ``checks`` names the checks that have a verdict ("weight randomisation", "label
    randomisation"); a method's verdict is its worst over them. ``failed`` says, per flagged
    method, which checks flagged it, so each is told why (default: every check).
    """
    groups: dict[str, list[str]] = {"pass": [], "inconclusive": [], "fail": []}
    for meth, v in verdicts.items():
        if v in groups and not is_baseline(meth):
            groups[v].append(meth)
    if not any(groups.values()):
        return Said()
    t = f"{threshold:g}"
    both = len(checks) > 1
    name = " and ".join(checks) if both else (checks[0] if checks else "randomisation")
    how = " or ".join(_AFTER.get(c, c) for c in checks) or "randomisation"
    sentences = []
    if groups["pass"]:
        sentences.append(
            f"{join(groups['pass'])} pass{'es' if len(groups['pass']) == 1 else ''} the {name} "
            f"check{'s' if both else ''}: the 95% CI of the map's similarity after {how} is below {t}."
        )
    if groups["inconclusive"]:
        sentences.append(
            f"{join(groups['inconclusive'])}: inconclusive, the CI contains {t} "
            "(score more images to decide)."
        )
    by_reason: dict[tuple[str, ...], list[str]] = {}
    for meth in groups["fail"]:
        reasons = tuple(c for c in checks if c in (failed or {}).get(meth, checks)) or checks
        by_reason.setdefault(reasons, []).append(meth)
    for reasons, methods in by_reason.items():
        why = "; and ".join(
            _WHY_FLAGGED.get(c, f"{c} leaves the map alike above {{t}}").format(t=t) for c in reasons
        )
        on = f" by {' and '.join(reasons)}" if both else ""
        sentences.append(f"{join(methods)}: flagged{on}: {why}.")
    passes = "passes" if len(groups["pass"]) == 1 else "pass"  # "gradcam passes", "a and b pass"
    parts = [
        f"{join(groups[k])} {w}"
        for k, w in (("pass", passes), ("inconclusive", "inconclusive"), ("fail", "flagged"))
        if groups[k]
    ]
    return Said(sentences, f"Sanity ({name}): {'; '.join(parts)}.")


# --- shortcut -------------------------------------------------------------------------------------


def shortcut_drop(data: Any) -> tuple[str, str | None]:
    """(sentence, side) on the accuracy drop without the stamps; side is BEATS for a drop off zero."""
    acc = data.get("accuracy") if isinstance(data, dict) else None
    if not isinstance(acc, dict):
        return "", None
    drop = acc.get("drop")
    stamped, clean = number(acc.get("stamped")), number(acc.get("clean"))
    mean = number(drop)
    if mean is None and stamped is not None and clean is not None:
        mean = stamped - clean
    if mean is None:
        return "", None
    falls = f" from {stamped:.1%} to {clean:.1%}" if stamped is not None and clean is not None else ""
    c = ci(drop)
    side = ci_side(drop, True)
    change = f"{abs(mean) * 100:.1f} percentage points"
    ci_text = f" (95% CI {c[1] * 100:.1f} to {c[2] * 100:.1f})" if c else " (no CI recorded)"
    if side == BEATS:
        return (
            f"Without the stamps, accuracy on the same faces falls{falls}: a drop of {change}{ci_text}, "
            "so the model relies on the stamp.",
            side,
        )
    if side == WORSE:
        return (
            f"Without the stamps, accuracy rises{falls} by {change}{ci_text}: no sign of the shortcut.",
            side,
        )
    if side == UNCLEAR:
        return (
            f"Without the stamps, accuracy changes{falls} by {mean * 100:+.1f} percentage points{ci_text}: "
            "not distinguishable from no change.",
            side,
        )
    return (
        f"Without the stamps, accuracy changes{falls} by {mean * 100:+.1f} percentage points{ci_text}.",
        None,
    )


def stamp_ratio(row: Any) -> tuple[float, float | None, float | None, str | None] | None:
    """(ratio, ratio CI low, high, side) of a method's stamp energy to the stamp's area share."""
    if not isinstance(row, dict):
        return None
    area, energy = number(row.get("stamp_area")), number(row.get("stamp_energy"))
    if area is None or energy is None or area <= 0:
        return None
    c = ci(row.get("stamp_energy"))
    if c is None:
        return energy / area, None, None, None
    return energy / area, c[1] / area, c[2] / area, ci_side(row.get("stamp_energy"), True, zero=area)


CLEAR_SHORTCUT_RATIO = 1.5
"""A map "sees the shortcut" at this multiple of the stamp's area share or more; a ratio beyond
chance but below it (1.05x on many photos) is said to be only slightly above a uniform map."""


def _ratio_decimals(*values: float | None) -> int:
    """Decimals (1 to 3) that print ``values`` apart: a CI of 1.26x to 1.34x must not read "1.3x to 1.3x"."""
    known = [v for v in values if v is not None]
    for d in (1, 2, 3):
        if len({f"{v:.{d}f}" for v in known}) == len(set(known)):
            return d
    return 3


def shortcut_findings(data: Any) -> Said:
    """The accuracy drop without the stamps, and per method whether its map puts more than the
    stamp's area share of its energy on the stamp (what a uniform or random map puts there)."""
    drop_text, drop_side = shortcut_drop(data)
    sentences = [drop_text] if drop_text else []
    methods = data.get("methods") if isinstance(data, dict) else None
    sees, not_seen, unclear = [], [], []
    for meth, row in methods.items() if isinstance(methods, dict) else []:
        if is_baseline(str(meth)) or (r := stamp_ratio(row)) is None:
            continue
        ratio, lo, hi, side = r
        d = _ratio_decimals(lo, hi, 1.0) if side in (BEATS, WORSE) else _ratio_decimals(lo, hi)
        at = f"{ratio:.{d}f}x"
        share = f"{at} the stamp's area share of its energy on the stamp"
        span = f" (95% CI {lo:.{d}f}x to {hi:.{d}f}x)" if lo is not None else " (no CI recorded)"
        if side == BEATS:
            if ratio < CLEAR_SHORTCUT_RATIO:  # beyond chance, but barely above what a uniform map puts
                what = "only slightly more than a uniform map puts there"
            else:
                what = "it sees the shortcut" if drop_side == BEATS else "its map points at the stamp"
            sentences.append(f"{meth} puts {share}{span}: {what}.")
            sees.append(f"{meth} at {at}")
        elif side == WORSE:
            sentences.append(
                f"{meth} puts {share}{span}, less than a uniform map: it does not show the stamp."
            )
            not_seen.append(f"{meth} at {at}")
        elif side == UNCLEAR:
            sentences.append(f"{meth} puts {share}{span}: not distinguishable from a uniform map.")
            unclear.append(f"{meth} at {at}")
        else:
            sentences.append(f"{meth} puts {share}{span}.")
    parts = []
    if drop_text:
        c = ci(data["accuracy"].get("drop")) if isinstance(data["accuracy"], dict) else None
        mean = number(data["accuracy"].get("drop"))
        if mean is not None and drop_side == BEATS:
            parts.append(
                f"accuracy drops {mean * 100:.1f} percentage points without the stamps"
                + (f" (95% CI {c[1] * 100:.1f} to {c[2] * 100:.1f})" if c else "")
            )
        elif drop_side is not None:
            parts.append("no clear accuracy drop without the stamps")
    if sees:
        s = "s" if len(sees) == 1 else ""
        parts.append(f"{join(sees)} put{s} more than the stamp's area share of energy on the stamp")
    if not_seen:
        s = "es" if len(not_seen) == 1 else ""
        parts.append(
            f"{join(not_seen)} do{s} not"
            if sees
            else f"{join(not_seen)} put less than the stamp's area share on it"
        )
    if unclear:
        s = "is" if len(unclear) == 1 else "are"
        parts.append(f"{join(unclear)} {s} not distinguishable from the stamp's area share")
    short = f"Shortcut check: {'; '.join(parts)}." if parts else ""
    return Said(sentences, short)


SHORTCUT_COLUMNS = (
    "stamp_energy: share of the map's energy on the stamp; stamp_area: the stamp's share of the image "
    "(what a uniform map puts on it, so energy above area means the map favours the stamp); "
    "stamp_pointing: how often the map's peak lands on the stamp; cue_energy / cue_area: the same for "
    "the drawn age cues (the real signal)."
)
"""One line on the shortcut table's columns (``agelens.metrics.shortcut``)."""
