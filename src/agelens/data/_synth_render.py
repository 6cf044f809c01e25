"""Drawing one synthetic face (private helper of :mod:`agelens.data.synthetic`).

Everything is drawn in a *canonical face frame* (face centre at the origin, face
half-height 1, v pointing down) and mapped to pixels by one similarity transform,
so position, scale and tilt are pure nuisance: they move every primitive and every
mask together. cv2 primitives with sub-pixel ``shift`` and LINE_AA keep the
strokes smooth at 32 px and cheap at 256 px.

Age enters only through :class:`Cues` (wrinkles, grey hair, eye bags, jowls, which
are also drawn into the cue mask) and a mildly rounder face for children. All other
draws come from :class:`Person`, which is sampled without looking at the age.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

REGION_NAMES: tuple[str, ...] = ("background", "hair", "forehead", "eyes", "nose", "cheeks", "mouth_chin")
BG, HAIR, FOREHEAD, EYES, NOSE, CHEEKS, MOUTH = range(len(REGION_NAMES))

_SHIFT = 4  # cv2 fixed-point fractional bits: 1/16 px precision
_ONE = float(1 << _SHIFT)
_AA = cv2.LINE_AA
_VISIBLE = 0.05  # cue strength below which nothing is drawn (keeps faint cues out of the mask)

_HAIR_BASES = np.array(
    [(22, 18, 16), (55, 38, 25), (95, 64, 38), (140, 100, 62), (196, 165, 108), (125, 55, 30)], np.float32
)
_LINE9, _LINE13 = np.linspace(-1, 1, 9), np.linspace(-1, 1, 13)
_TOP_COS, _TOP_SIN = np.cos(np.linspace(np.pi, 2 * np.pi, 16)), np.sin(np.linspace(np.pi, 2 * np.pi, 16))
_BROW_U, _BROW_V = np.linspace(0.17, 0.47, 6), -0.3 - 0.05 * np.sin(np.linspace(0.3, 2.6, 6))
_GREY = np.array((228, 228, 230), np.float32)
_IRIS = ((85, 52, 28), (42, 28, 20), (70, 110, 150), (78, 108, 68), (118, 88, 50))
_SKIN_DARK = np.array((72, 46, 32), np.float32)
_SKIN_LIGHT = np.array((250, 214, 190), np.float32)

# (onset years, years from onset to full strength); +-4 years of per-person jitter is added to the
# onset, and every onset minus 4 is >= 29, so integer ages <= 29 never get a cue.
CUE_SCHEDULE: dict[str, tuple[float, float]] = {
    "forehead": (33.0, 35.0),
    "crows": (33.0, 30.0),
    "nasolabial": (36.0, 35.0),
    "bags": (44.0, 35.0),
    "grey": (37.0, 40.0),
    "jowls": (52.0, 30.0),
}
CUE_JITTER = 4.0


@dataclass(frozen=True)
class Person:
    """Age-independent appearance of one face (the nuisance variables)."""

    skin: np.ndarray  # RGB float32
    hair: np.ndarray
    hair_style: int
    hairline: float
    hair_curve: float
    hair_asym: float
    hair_freq: float
    hair_phase: float
    iris: tuple[int, int, int]
    openness: float
    mouth_curve: float
    mouth_width: float
    face_width: float
    dx: float
    dy: float
    scale: float
    tilt: float  # degrees
    light_angle: float
    light_amp: float
    brightness: float
    bg_kind: int
    bg_a: np.ndarray
    bg_b: np.ndarray
    bg_tex: np.ndarray  # (4, 4, 3) in [0, 1]
    bg_freq: float
    clothes: np.ndarray
    noise: float
    noise_seed: int
    gender: int

    @property
    def race(self) -> int:
        """A UTKFace-style race code for file names only; derived from skin tone, meaningless here."""
        lum = float(self.skin @ np.array((0.3, 0.59, 0.11), np.float32))
        return 1 if lum < 110 else 3 if lum < 150 else 2 if lum < 185 else 0


def sample_person(rng: np.random.Generator) -> Person:
    """Draw every nuisance variable from ``rng`` (never from the age), in a fixed order."""
    u = rng.random(24)
    skin = _SKIN_DARK + (_SKIN_LIGHT - _SKIN_DARK) * u[0] + rng.uniform(-10, 10, 3).astype(np.float32)
    return Person(
        skin=np.clip(skin, 0, 255).astype(np.float32),
        hair=_HAIR_BASES[int(u[1] * len(_HAIR_BASES))],
        hair_style=int(u[2] * 3),
        hairline=-0.72 + 0.16 * u[3],
        hair_curve=0.12 + 0.25 * u[4],
        hair_asym=0.12 * (u[5] - 0.5),
        hair_freq=40 + 30 * u[6],
        hair_phase=6.283 * u[7],
        iris=_IRIS[int(u[8] * len(_IRIS))],
        openness=0.6 + 0.6 * u[9],
        mouth_curve=-0.05 + 0.13 * u[10],
        mouth_width=0.17 + 0.07 * u[11],
        face_width=0.72 + 0.06 * u[12],
        dx=0.10 * (u[13] - 0.5),
        dy=0.08 * (u[14] - 0.5),
        scale=0.29 + 0.06 * u[15],
        tilt=24.0 * (u[16] - 0.5),
        light_angle=6.283 * u[17],
        light_amp=0.35 * u[18],
        brightness=0.82 + 0.3 * u[19],
        bg_kind=int(u[20] * 4),
        bg_a=rng.uniform(25, 235, 3).astype(np.float32),
        bg_b=rng.uniform(25, 235, 3).astype(np.float32),
        bg_tex=rng.random((4, 4, 3)).astype(np.float32),
        bg_freq=3 + 9 * u[21],
        clothes=rng.uniform(15, 230, 3).astype(np.float32),
        noise=1.0 + 5.0 * u[22],
        noise_seed=int(rng.integers(2**31)),
        gender=int(u[23] < 0.5),
    )


@dataclass(frozen=True)
class Cues:
    """Strength in [0, 1] of each age cue; zero means "not drawn"."""

    forehead: float
    crows: float
    nasolabial: float
    bags: float
    grey: float
    jowls: float

    @classmethod
    def from_age(cls, age: float, offsets: np.ndarray) -> Cues:
        """Cue strengths for ``age``; ``offsets`` (6 values in [-1, 1]) make people age differently."""
        vals = []
        for off, (onset, span) in zip(offsets, CUE_SCHEDULE.values(), strict=True):
            s = float(np.clip((age - onset - CUE_JITTER * off) / span, 0.0, 1.0))
            vals.append(s if s >= _VISIBLE else 0.0)
        return cls(*vals)


@lru_cache(maxsize=16)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x, y); cv2 puts pixel i's centre at i, so no half-pixel offset."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    x.flags.writeable = y.flags.writeable = False  # cached and shared: never modify in place
    return x, y


@lru_cache(maxsize=4)
def _unit_circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.cos(t), np.sin(t)


class _Frame:
    """Similarity transform canonical (u, v) -> pixels, emitting cv2 fixed-point coordinates."""

    def __init__(self, cx: float, cy: float, s: float, tilt_deg: float) -> None:
        self.cx, self.cy, self.s, self.deg = cx, cy, s, tilt_deg
        self.c, self.sn = math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))
        self._m = np.array([[s * self.c, s * self.sn], [-s * self.sn, s * self.c], [cx, cy]]) * _ONE

    def pts(self, u: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
        """(k, 2) int32 fixed-point pixel coordinates of canonical points (u and v broadcast)."""
        uv1 = np.ones((3, np.broadcast(u, v).size))
        uv1[0], uv1[1] = u, v
        return np.rint(uv1.T @ self._m).astype(np.int32)

    def pt(self, u: float, v: float) -> tuple[int, int]:
        x = self.cx + self.s * (self.c * u - self.sn * v)
        y = self.cy + self.s * (self.sn * u + self.c * v)
        return round(x * _ONE), round(y * _ONE)

    def axes(self, a: float, b: float) -> tuple[int, int]:
        return max(1, round(a * self.s * _ONE)), max(1, round(b * self.s * _ONE))

    def canonical(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = x - np.float32(self.cx), y - np.float32(self.cy)
        inv = np.float32(1.0 / self.s)
        c, s = np.float32(self.c), np.float32(self.sn)
        return (c * dx + s * dy) * inv, (c * dy - s * dx) * inv

    def width(self, k: float) -> int:
        """Stroke thickness: ``k`` px at 96 px (face scale ~30 px), growing sub-linearly so that
        wrinkles stay fine lines rather than bars at 256 px."""
        return max(1, round(k * (self.s / 30.0) ** 0.6))


class _Layers:
    """The four canvases drawn in lockstep: RGB image, region ids, hair alpha and cue mask.

    Each draw call names the value to put on each canvas it touches (``None`` leaves a
    canvas alone). Region ids are drawn without anti-aliasing, since blending two ids
    would invent a third region along every edge.
    """

    def __init__(self, img: np.ndarray, fr: _Frame) -> None:
        size = img.shape[0]
        self.img, self.fr = img, fr
        self.region = np.zeros((size, size), np.uint8)
        self.hair = np.zeros((size, size), np.uint8)
        self.cue = np.zeros((size, size), np.uint8)

    def _targets(self, img, region, hair, cue):
        for canvas, val, line in (
            (self.img, img, _AA),
            (self.region, region, cv2.LINE_8),
            (self.hair, hair, _AA),
            (self.cue, cue, _AA),
        ):
            if val is not None:
                yield canvas, val, line

    def ellipse(
        self,
        u: float,
        v: float,
        a: float,
        b: float,
        *,
        img=None,
        region=None,
        hair=None,
        cue=None,
        angle: float = 0.0,
        arc: tuple[int, int] = (0, 360),
        thick: int = -1,
    ) -> None:
        c, ax, deg = self.fr.pt(u, v), self.fr.axes(a, b), self.fr.deg + angle
        for canvas, val, line in self._targets(img, region, hair, cue):
            cv2.ellipse(canvas, c, ax, deg, arc[0], arc[1], val, thick, line, _SHIFT)

    def poly(
        self, pts: list[np.ndarray], *, fill: bool, thick: int = 1, img=None, region=None, hair=None, cue=None
    ) -> None:
        for canvas, val, line in self._targets(img, region, hair, cue):
            if fill:
                cv2.fillPoly(canvas, pts, val, line, _SHIFT)
            else:
                cv2.polylines(canvas, pts, False, val, thick, line, _SHIFT)


def _tone(c: np.ndarray, k: float) -> tuple[float, ...]:
    return tuple(min(255.0, max(0.0, x * k)) for x in c.tolist())


def _lift(c: np.ndarray, k: float) -> tuple[float, ...]:
    """Move colour ``c`` a fraction ``k`` towards white: wrinkle highlights that still show on dark skin."""
    return tuple(x + (255.0 - x) * k for x in c.tolist())


def _background(p: Person, size: int) -> np.ndarray:
    x, y = _grid(size)
    ca, sa = math.cos(p.light_angle + 1.0) / size, math.sin(p.light_angle + 1.0) / size
    if p.bg_kind == 0:  # two-colour gradient
        w = np.clip(0.5 + 0.5 * (x * ca + y * sa), 0, 1)[..., None]
    elif p.bg_kind == 1:  # smooth blotches
        w = cv2.resize(p.bg_tex, (size, size), interpolation=cv2.INTER_CUBIC)
    elif p.bg_kind == 2:  # soft stripes
        w = (0.5 + 0.35 * np.sin((x * ca + y * sa) * (p.bg_freq * 6.283)))[..., None]
    else:  # flat
        return np.broadcast_to(np.rint(p.bg_a * 0.9 + p.bg_b * 0.1).astype(np.uint8), (size, size, 3)).copy()
    bg = p.bg_a + (p.bg_b - p.bg_a) * (0.35 * w)
    return bg.astype(np.uint8)  # colours lie in [25, 235]: no clipping needed


def _face_outline(fr: _Frame, rx: float, taper: float) -> np.ndarray:
    c, s = _unit_circle(40)
    low = np.clip(s, 0, None)
    return fr.pts(rx * c * (1 - taper * low**2), s)


def _hair_back(fr: _Frame, p: Person, rx: float) -> list[np.ndarray]:
    c, s = _unit_circle(40)
    if p.hair_style == 2:  # voluminous
        return [fr.pts((rx + 0.24) * c, 0.02 + 1.08 * s)]
    shapes = [fr.pts((rx + 0.12) * c, -0.16 + 1.0 * s)]
    if p.hair_style == 1:  # long, down to the shoulders
        w = rx + 0.14
        u = np.array([-w, w, w + 0.04, w - 0.1, -w + 0.1, -w - 0.04])
        v = np.array([-0.2, -0.2, 1.1, 1.3, 1.3, 1.1])
        shapes.append(fr.pts(u, v))
    return shapes


def _hair_cap(fr: _Frame, p: Person, rx: float) -> np.ndarray:
    top_u, top_v = (rx + 0.08) * _TOP_COS, -0.16 + 0.96 * _TOP_SIN
    hu = (rx - 0.06) * _LINE13[::-1]
    hv = p.hairline + p.hair_curve * (hu / rx) ** 2 + p.hair_asym * hu
    u = np.concatenate([top_u, [rx + 0.04, rx - 0.04], hu, [-(rx - 0.04), -(rx + 0.04)]])
    v = np.concatenate([top_v, [-0.02, -0.06], hv, [-0.06, -0.02]])
    return fr.pts(u, v)


def render(p: Person, age: float, cues: Cues, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one face; returns (RGB uint8 image, cue mask float32 [0,1], region ids uint8)."""
    fr = _Frame(size * (0.5 + p.dx), size * (0.5 + p.dy), size * p.scale, p.tilt)
    lay = _Layers(_background(p, size), fr)
    child = float(np.clip((20.0 - age) / 16.0, 0, 1))  # children: rounder face, softer chin
    rx = p.face_width + 0.06 * child
    _draw_head(lay, p, rx, child)
    _draw_cues(lay, p, cues, rx)
    lay.poly([_hair_cap(fr, p, rx)], fill=True, img=_tone(p.hair, 1.0), region=HAIR, hair=255, cue=0)
    _draw_features(lay, p)
    return _finish(lay, p, cues, rx)


def _draw_head(lay: _Layers, p: Person, rx: float, child: float) -> None:
    """Body, hair behind the head, neck, ears and the face disc."""
    fr, skin = lay.fr, p.skin
    lay.ellipse(0, 1.85, 1.5, 0.6, img=_tone(p.clothes, 1.0))
    lay.poly(_hair_back(fr, p, rx), fill=True, img=_tone(p.hair, 1.0), region=HAIR, hair=255)
    neck = [fr.pts(np.array([-0.3, 0.3, 0.36, -0.36]), np.array([0.5, 0.5, 1.7, 1.7]))]
    lay.poly(neck, fill=True, img=_tone(skin, 0.8), region=BG, hair=0)
    for side in (-1, 1):
        lay.ellipse(side * (rx + 0.02), -0.04, 0.09, 0.17, img=_tone(skin, 0.92), region=CHEEKS, hair=0)
    lay.poly(
        [_face_outline(fr, rx, 0.2 - 0.14 * child)], fill=True, img=_tone(skin, 1.0), region=CHEEKS, hair=0
    )


def _draw_cues(lay: _Layers, p: Person, cues: Cues, rx: float) -> None:
    """Age cues, each also drawn into the cue mask; drawn before the fringe so hair can hide them."""
    fr, skin, mw = lay.fr, p.skin, p.mouth_width
    th = fr.width(1.0)
    if cues.jowls:
        j = cues.jowls
        for side in (-1, 1):
            lay.ellipse(
                side * rx * 0.52,
                0.7 + 0.05 * j,
                0.1 + 0.04 * j,
                0.08 + 0.04 * j,
                angle=side * -25,
                img=_tone(skin, 1 - 0.06 * j),
                region=CHEEKS,
                hair=0,
                cue=255,
            )
            crease = [fr.pts(side * np.array([mw + 0.01, mw + 0.04, mw + 0.06]), np.array([0.56, 0.68, 0.8]))]
            lay.poly(crease, fill=False, thick=th, img=_tone(skin, 1 - 0.3 * j), cue=255)
    if cues.forehead:
        f = cues.forehead
        uu = (0.16 + 0.18 * f) * _LINE9
        wave = [-0.41 - 0.065 * k + 0.012 * np.sin(9 * uu + k) for k in range(1 + min(3, int(3.5 * f)))]
        lay.poly(
            [fr.pts(uu, w + 0.022) for w in wave], fill=False, thick=th, img=_lift(skin, 0.3 * f), cue=255
        )
        lay.poly([fr.pts(uu, w) for w in wave], fill=False, thick=th, img=_tone(skin, 1 - 0.5 * f), cue=255)
    if cues.crows:
        c = cues.crows
        length = 0.07 + 0.08 * c
        rays = np.radians([-35, -8, 20, 45][: 1 + min(3, int(3.5 * c))])
        ray_u, ray_v = np.outer(np.cos(rays), [0.0, length]), np.outer(np.sin(rays), [0.0, length])
        lines = [
            fr.pts(side * (0.49 + ray_u[k]), -0.12 + ray_v[k]) for side in (-1, 1) for k in range(len(rays))
        ]
        lay.poly(lines, fill=False, thick=th, img=_tone(skin, 1 - 0.5 * c), cue=255)
    if cues.nasolabial:
        n = cues.nasolabial
        fold_u, fold_v = np.array([0.12, 0.2, 0.25, mw + 0.05]), np.array([0.17, 0.3, 0.43, 0.57])
        lay.poly(
            [fr.pts(side * (fold_u + 0.025), fold_v) for side in (-1, 1)],
            fill=False,
            thick=th,
            img=_lift(skin, 0.25 * n),
            cue=255,
        )
        lay.poly(
            [fr.pts(side * fold_u, fold_v) for side in (-1, 1)],
            fill=False,
            thick=th,
            img=_tone(skin, 1 - 0.35 * n),
            cue=255,
        )
    if cues.bags:
        b = cues.bags
        for side in (-1, 1):
            lay.ellipse(
                side * 0.32,
                -0.1,
                0.13,
                0.08 + 0.04 * b,
                arc=(15, 165),
                thick=fr.width(2.0),
                img=_tone(skin, 1 - 0.2 * b),
                cue=255,
            )
            lay.ellipse(
                side * 0.32,
                -0.1,
                0.14,
                0.1 + 0.05 * b,
                arc=(25, 155),
                thick=th,
                img=_tone(skin, 1 - 0.45 * b),
                cue=255,
            )


def _draw_features(lay: _Layers, p: Person) -> None:
    """Brows, eyes, nose and mouth: expression (eye openness, mouth curve) is nuisance, not age."""
    fr, skin, mw = lay.fr, p.skin, p.mouth_width
    th = fr.width(1.0)
    eh = 0.065 * p.openness
    for side in (-1, 1):
        lay.poly([fr.pts(side * _BROW_U, _BROW_V)], fill=False, thick=fr.width(2.0), img=_tone(p.hair, 0.75))
        lay.ellipse(side * 0.32, -0.12, 0.15, eh, img=(238, 236, 230), cue=0)
        lay.ellipse(side * 0.32, -0.12, 0.065, min(0.065, eh), img=p.iris)
        lay.ellipse(side * 0.32, -0.12, 0.03, min(0.03, eh), img=(12, 10, 10))
        lay.ellipse(side * 0.32, -0.12, 0.15, eh, arc=(180, 360), thick=th, img=_tone(skin, 0.35))
        lay.ellipse(side * 0.065, 0.25, 0.035, 0.02, img=_tone(skin, 0.55))
    nose = [fr.pts(np.array([0.03, 0.06, 0.05]), np.array([-0.05, 0.12, 0.24]))]
    lay.poly(nose, fill=False, thick=th, img=_tone(skin, 0.8))
    lay.ellipse(0, 0.57, 0.6 * mw, 0.04, img=_tone(skin * np.array([0.85, 0.58, 0.58]) + 25, 1.0))
    uu = mw * _LINE9
    lay.poly(
        [fr.pts(uu, 0.53 + p.mouth_curve * (0.5 - (uu / mw) ** 2))],
        fill=False,
        thick=th,
        img=_tone(skin, 0.45),
    )


def _finish(lay: _Layers, p: Person, cues: Cues, rx: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey the hair, split the face into regions, light, shade and add noise.

    Works on planar (3, S, S) float32 channels: broadcasting an (S, S) map over a last axis
    of length 3 is ~10x slower in NumPy, and this step dominates the generator's run time.
    """
    img, region, hair_a, cue = lay.img, lay.region, lay.hair, lay.cue
    size = img.shape[0]
    x, y = _grid(size)
    u, v = lay.fr.canonical(x, y)
    out = img.transpose(2, 0, 1).astype(np.float32)
    a = hair_a.astype(np.float32) * np.float32(1 / 255)
    strands = 0.5 + 0.5 * np.sin(np.arctan2(u, 0.35 - v) * np.float32(p.hair_freq) + np.float32(p.hair_phase))
    g = cues.grey
    cue_f = cue.astype(np.float32) * np.float32(1 / 255)
    base = p.hair[:, None, None]
    if g:
        temple = np.clip((np.abs(u) - 0.45) * (1 / 0.3), 0, 1) * np.clip((v + 0.75) * (1 / 0.4), 0, 1)
        gm = np.clip((g + (min(1.0, 1.7 * g) - g) * temple) * (0.75 + 0.5 * strands), 0, 1)
        hair = base + (_GREY[:, None, None] - base) * gm
        cue_f = np.maximum(cue_f, gm * a)
    else:
        hair = base
    hair = hair * (0.9 + 0.2 * strands)
    out += (hair - out) * a

    face = region == CHEEKS
    eyes = np.square((np.abs(u) - 0.33) * (1 / 0.3)) + np.square((v + 0.14) * 5) < 1
    nose = np.square(u * (1 / 0.13)) + np.square((v - 0.1) * (1 / 0.28)) < 1
    np.copyto(region, FOREHEAD, where=face & (v < -0.36))
    np.copyto(region, EYES, where=face & eyes)
    np.copyto(region, NOSE, where=face & nose & ~eyes)
    np.copyto(region, MOUTH, where=face & (v > 0.4) & ~nose)

    r2 = np.square(u * (1 / rx)) + np.square(v)
    # Darken towards the face edge and just beyond it (hair, neck), smoothly: a mask-gated shade
    # would leave a bright rim on the anti-aliased edge pixels.
    shade = 1.0 - 0.28 * np.clip((r2 - 0.3) * (1 / 0.7), 0, 1) * np.clip((1.7 - r2) * (1 / 0.7), 0, 1)
    ca, sa = math.cos(p.light_angle) * 2 / size, math.sin(p.light_angle) * 2 / size
    light = (x - size / 2) * (p.light_amp * ca) + (y - size / 2) * (p.light_amp * sa) + 1.0
    noise = np.random.default_rng(p.noise_seed).random((size, size), dtype=np.float32)
    out *= shade * light * p.brightness
    out += (noise - 0.5) * np.float32(p.noise * 3.46)  # uniform noise with std p.noise
    rgb = cv2.merge(list(np.clip(out, 0, 255, out=out).astype(np.uint8)))
    return rgb, cue_f, region
