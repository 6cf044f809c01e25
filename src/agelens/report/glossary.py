"""The Glossary: plain words for each metric and face-region name the page prints, with its direction."""

from __future__ import annotations

from typing import Any

from agelens.report.page import Section, Term
from agelens.report.tables import stated_directions

_PLAIN = {
    "deletion": "Removes the pixels the map calls most important first, step by step, and follows the "
    "model's confidence in the explained class. If the map found what the model really uses, confidence "
    "falls fast; the number is the area under that falling curve.",
    "insertion": "The reverse of deletion: starts from a blurred photo and puts the most important pixels "
    "back first. A good map brings the model's confidence back quickly; the number is the area under "
    "that rising curve.",
    "average_drop": "How much the model's confidence in the class falls when it sees only what the map "
    "highlights (the photo dimmed by the map), as a share of its confidence on the whole photo.",
    "increase_in_confidence": "Share of photos on which seeing only what the map highlights makes the "
    "model more confident in the class than the whole photo does.",
    "road_morf": "ROAD, most relevant first: like deletion, but removed pixels are filled in from their "
    "neighbours, so the model reacts to missing evidence rather than to odd-looking holes.",
    "road_lerf": "ROAD, least relevant first: removes the pixels the map calls unimportant first (filled "
    "in from their neighbours); a faithful map leaves the model's confidence where it was.",
    "pointing_game": "Share of photos on which the map's brightest point falls inside the region known to "
    "carry the age cue (needs ground-truth masks, e.g. synthetic faces).",
    "energy_in_mask": "Share of the map's total brightness that falls inside the region known to carry "
    "the age cue (needs ground-truth masks).",
    "randomisation": "Sanity check: the model's weights are replaced by random numbers, layer by layer "
    "from the top, and the map is drawn again; the number is how similar the new map is to the "
    "original (rank correlation). A map that explains the model must change when the model is destroyed.",
    "data_randomisation": "Sanity check: the same network is trained again on shuffled labels, so it can "
    "only memorise, and the map is drawn with it; the number is how similar the two maps are (rank "
    "correlation). A map that explains what the model learned about age must differ.",
    "max_sensitivity": "How much the map changes when the photo gets noise too small to see (the largest "
    "change over several noisy copies). A trustworthy map barely moves.",
    "sparseness": "How concentrated the map is (Gini index): high means a few small spots, low means "
    "spread out. It describes a map; one bright pixel is very sparse and explains nothing.",
    "stamp_energy": "Share of the map's brightness on the label-leaking corner stamp.",
    "stamp_area": "The stamp's share of the photo: what a uniform map would put on it.",
    "stamp_pointing": "How often the map's brightest point lands on the stamp.",
    "cue_energy": "Share of the map's brightness on the drawn age cues (the real signal).",
    "cue_area": "The age cues' share of the photo: what a uniform map would put on them.",
}
"""Plain words for the metric names the page prints; directions come from the metrics themselves."""

_REGIONS = {
    "hair_background": "Everything outside the face boxes below: hair, ears, neck and background.",
    "hair_bg": "Everything outside the face boxes: hair, ears, neck and background.",
    "background": "The backdrop behind the head (synthetic faces).",
    "hair": "The hair (synthetic faces).",
    "forehead": "The band between the hairline and the eyebrows.",
    "eyes": "A band across the eyebrows and eyes, including the outer corners (crow's feet).",
    "nose": "A central column from just below the eyes to just above the mouth.",
    "cheeks": "Either side of the nose, from under the eyes down to the mouth.",
    "mouth_chin": "Mouth, lips and chin, including the lines beside the mouth.",
}
_REGION_INTRO = (
    "Face regions of “Where the maps look”. On real photos (aligned face crops) they are fixed boxes "
    "at the usual positions in a centred face, not traced on each face, so a tilted or off-centre face "
    "fits them only roughly; synthetic faces come with exact region masks. Compare a region's share of "
    "the map with its area share: a big region (the background) gets much of a map by size alone."
)
_GENERAL = {
    "95% CI": "95% confidence interval, by bootstrap: how far the mean over photos like these could "
    "plausibly move, from resampling the scored photos. It is about one method's mean; to compare two "
    "methods use the paired differences the report gives (each method against matched random maps on "
    "the same photos), not whether their intervals overlap. “(all photos equal)” in place of an "
    "interval: every photo scored the same, so there was nothing to resample.",
    "matched random map": "Random noise made as smooth as a method's own maps and scored on the same "
    "photos: the chance level a method must beat.",
}


def glossary_section(sections: list[Section], scores: Any) -> Section | None:
    """A folded list defining each metric and region name printed on the page, with its direction.

    Directions are the ones the tables use (stated in scores.json), else the metric's declared
    ``higher_is_better`` in ``agelens.metrics``; unknown names get the metric's own docstring.
    Names the page does not print are left out: a glossary of absent terms is noise.
    """
    shown = _names_on(sections)
    registry = _registry()
    stated = stated_directions(scores) if scores is not None else {}
    terms = []
    for name in shown:
        key = name.removesuffix("_auc")
        if key in _PLAIN or key in registry:
            meaning = _PLAIN.get(key) or _doc_sentence(registry[key])
            terms.append(Term(name, meaning, _reading(name, key, stated, registry)))
    terms += [Term(r, _REGIONS[r], "", "Face regions") for r in shown if r in _REGIONS]
    if not terms:
        return None
    if any(s.id == "scores" for s in sections):
        terms += [Term(k, v, "", "General") for k, v in _GENERAL.items()]
    regions = any(t.group == "Face regions" for t in terms)
    sec = Section("glossary", "Glossary", _REGION_INTRO if regions else "", terms=terms)
    sec.summary = (
        f"Plain-language meanings of the {len(terms)} metric{' and region' if regions else ''} names "
        "printed in this report's tables, each with the way it is read (higher or lower is better)."
    )
    sec.fold = "Show the glossary"
    return sec


def _names_on(sections: list[Section]) -> list[str]:
    """Every column and row name of every table, in page order ("rank on X" read as X)."""
    out: dict[str, None] = {}

    def walk(sec: Section) -> None:
        for t in sec.tables:
            for name in [*t.columns, *(row[0].text for row in t.rows if row)]:
                out.setdefault(str(name).removeprefix("rank on "), None)
        for sub in sec.subsections:
            walk(sub)

    for s in sections:
        walk(s)
    return list(out)


def _registry() -> dict[str, Any]:
    """``agelens.metrics``' metric classes by name; {} if that package cannot load here."""
    try:
        from agelens.metrics.registry import METRICS
    except ImportError:
        return {}
    return dict(METRICS)


def _reading(name: str, key: str, stated: dict[str, str], registry: dict[str, Any]) -> str:
    cls = registry.get(key)
    if cls is not None and not getattr(cls, "ranked", True):
        return "describes the map; not used to rank methods"
    d = stated.get(name) or stated.get(key)
    if d is None and cls is not None:
        d = "higher" if cls.higher_is_better else "lower"
    return f"{d} is better" if d else ""  # no guess from the name: stamp_energy is not "better" high


def _doc_sentence(cls: Any) -> str:
    """The first sentence of a metric's docstring, without reST markup."""
    doc = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.replace("``", "").split())
