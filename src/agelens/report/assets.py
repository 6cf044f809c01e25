"""Turn files of a run folder into things a single offline HTML page can hold.

Why data URIs: the report must open from an e-mail attachment or a USB stick with
no network and no sibling files, so every image is embedded. Why the path guard:
manifests are plain JSON a user may have edited; a path like ``../../etc/x`` must
not pull arbitrary files into a page that is then shared.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agelens.provenance import PATH_KEYS, SHIPPED_MODEL_NAME, SHIPPED_MODEL_PATH

MAX_EMBED_BYTES = 1_500_000
"""Images bigger than this are re-encoded smaller, so a report stays e-mailable."""
THUMB_SIDE = 640
JPEG_QUALITY = 85
"""Photos and maps blended over photos are continuous tone: at this quality JPEG is several times
smaller than PNG with no visible loss at the size a card shows them. Plots and filter grids (text,
thin lines) stay PNG, where JPEG would smear the lettering."""

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass
class Notes:
    """Collects the short, user-facing reasons why parts of the report are missing.

    ``unreadable`` lists each file that is there but could not be read (``path: reason``): when
    nothing else makes a page, those files are the error, not an empty page.
    """

    items: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.items.append(" ".join(str(text).split()))


def inside(root: Path, rel: str | Path | None) -> Path | None:
    """``root / rel`` if it exists and stays inside ``root`` (symlinks resolved), else None."""
    if rel is None or str(rel).strip() == "":
        return None
    root = root.resolve()
    try:
        path = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def _mime(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_uri(path: Path | None, max_side: int | None = None) -> str | None:
    """A ``data:`` URI for an image file; None when it is missing or not an image.

    Small PNG/JPEG files are embedded byte for byte (exactly what the run wrote);
    big ones, unknown formats and any ``max_side`` request go through Pillow.
    """
    data = _read(path)
    if data is None:
        return None
    mime = _mime(data)
    if mime and max_side is None and len(data) <= MAX_EMBED_BYTES:
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return _reencode(data, max_side or THUMB_SIDE)


def _read(path: Path | None) -> bytes | None:
    """The file's bytes, or None for no path or an unreadable file: a page shows a gap, not a crash."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def photo_uri(path: Path | None, max_side: int | None = None) -> str | None:
    """A ``data:`` URI for a photo or a map blended over one, as JPEG (see :data:`JPEG_QUALITY`).

    The overlays make up nearly all of a report's bytes (48 photos x 6 methods as PNG were
    28 MB). The file as written is kept when it needs no shrinking and is already smaller than
    the JPEG (a JPEG photo, a tiny PNG), so re-encoding a file of the right size never grows it.
    """
    found = read_image(path)
    return None if found is None else encoded_photo_uri(*found, max_side=max_side)


def read_image(path: Path | None) -> tuple[bytes, Any] | None:
    """(the file's bytes, its ``H x W x 3`` uint8 RGB pixels), or None when missing or not an image."""
    data = _read(path)
    if data is None:
        return None
    arr = _decode(data)
    return None if arr is None else (data, arr)


def encoded_photo_uri(data: bytes, arr: Any, max_side: int | None = None) -> str:
    """:func:`photo_uri` of a file already read (``data``) and decoded (``arr``, as :func:`read_image`)."""
    side = max_side or THUMB_SIDE
    jpeg = array_uri(arr, side, jpeg=True)
    mime = _mime(data)
    fits = max(arr.shape[:2]) <= side and len(data) <= MAX_EMBED_BYTES
    if mime in ("image/png", "image/jpeg") and fits and _uri_size(data) <= len(jpeg):
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return jpeg


def _uri_size(data: bytes) -> int:
    """Length of ``data`` as a base64 data URI (header counted roughly), to compare encodings."""
    return 4 * ((len(data) + 2) // 3) + 23


def _decode(data: bytes) -> Any | None:
    from agelens.data.images import ImageError, load_image

    try:
        return load_image(data)
    except ImageError:
        return None


def _reencode(data: bytes, max_side: int) -> str | None:
    arr = _decode(data)
    return None if arr is None else array_uri(arr, max_side)


def array_uri(arr: Any, max_side: int | None = None, jpeg: bool = False) -> str:
    """PNG (JPEG with ``jpeg``) data URI of an ``HxWx3`` uint8 array, optionally shrunk to ``max_side``."""
    from PIL import Image

    im = Image.fromarray(arr)
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if jpeg:
        im.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        im.save(buf, format="PNG", optimize=True)
    mime = "image/jpeg" if jpeg else "image/png"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def read_json(path: Path, notes: Notes, label: str) -> Any | None:
    """Parsed JSON, or None with a note (missing files are silent: sections are optional)."""
    if not path.is_file():
        return None
    value, reason = _load_json(path)
    return _noted(path, value, reason, notes, label)


class JsonFiles:
    """The JSON files of one page build, each read and parsed once.

    Why: one page read an explain folder's manifest.json up to four times (finding the command
    folders, the Run section, the gallery, the model card's model), parsing a list of every map
    each time. :meth:`read` answers as :func:`read_json` does, the note for an unreadable file
    included, so every caller still says what it said; only the file is read once.
    """

    def __init__(self) -> None:
        self._loaded: dict[Path, tuple[Any, str | None]] = {}

    def read(self, path: Path, notes: Notes, label: str) -> Any | None:
        """:func:`read_json`'s answer and note, the file read on the first call only."""
        if not path.is_file():
            return None
        if path not in self._loaded:
            self._loaded[path] = _load_json(path)
        return _noted(path, *self._loaded[path], notes, label)


def _load_json(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON, None), or (None, why it could not be read)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = (
            f"{exc.msg}, line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else type(exc).__name__
        )
        return None, reason


def _noted(path: Path, value: Any, reason: str | None, notes: Notes, label: str) -> Any | None:
    """``value``; for a file that could not be read, None and its note in ``notes``."""
    if reason is None:
        return value
    notes.add(f"{label}: could not read {path.name} ({reason}); section skipped.")
    notes.unreadable.append(f"{path}: could not read ({reason})")
    return None


_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_IMG = re.compile(r'<img src="([^"]*)" alt="([^"]*)"[^>]*>')
_LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.DOTALL)


def render_markdown(text: str, base: Path, root: Path) -> str:
    """Markdown to HTML with raw HTML disabled and no remote references left.

    Local images (inside the run folder) are embedded; remote images become their
    alt text and remote links become "text (url)" so the page never reaches out.
    """
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)

    def img(m: re.Match[str]) -> str:
        src, alt = m.group(1), m.group(2)
        path = None if _REMOTE.match(src) or src.startswith("data:") else inside(base, src)
        if path is not None and path.resolve().is_relative_to(root.resolve()):
            uri = image_uri(path)
            if uri:
                return f'<img src="{uri}" alt="{alt}">'
        return f'<span class="muted">[image: {alt or "not embedded"}]</span>'

    def link(m: re.Match[str]) -> str:
        href, label = m.group(1), m.group(2)
        if _REMOTE.match(href) or href.lower().startswith(("mailto:", "javascript:", "data:")):
            shown = href.split("//", 1)[-1]
            return f'{label} <span class="url">({shown})</span>' if shown != label else label
        return f'<a href="{href}">{label}</a>' if href.startswith("#") else label

    return _wrap_tables(_demote(_LINK.sub(link, _IMG.sub(img, html))))


def _wrap_tables(html: str) -> str:
    """Card tables scroll inside the page's own wrapper, as every other table does, never the page.

    On a phone a wide model-card table otherwise widens the whole page.
    """
    return html.replace("<table>", '<div class="table-wrap" tabindex="0"><table>').replace(
        "</table>", "</table></div>"
    )


def _demote(html: str) -> str:
    """Card headings start at h3: the page owns h1 (run) and h2 (sections)."""
    return re.sub(r"<(/?)h([1-6])>", lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + 2)}>", html)


MODEL_KEYS = ("model", "shuffled_model")


def is_shipped_model(value: str) -> bool:
    """Whether ``value`` names the model that ships with agelens, on this install or another one
    (``.../agelens/assets/agelens-utkface.keras``: a page may be made on another machine)."""
    path = Path(value)
    if path.name != SHIPPED_MODEL_NAME:
        return False
    if path.parent.name == "assets" and path.parent.parent.name == "agelens":
        return True
    try:
        return path.resolve() == SHIPPED_MODEL_PATH
    except (OSError, RuntimeError, ValueError):
        return False


def model_label(value: str) -> str:
    """A model path as a shared page shows it: its file name, or "shipped model (agelens-utkface.keras)".

    The full path (``/home/me/...``) tells a colleague nothing and says where the user keeps
    their files; ``manifest.json`` keeps it. ``<in-memory ...>`` (no file) is shown as it is.
    """
    text = value.strip()
    if not text or text.startswith("<"):
        return value
    if is_shipped_model(text):
        return f"shipped model ({SHIPPED_MODEL_NAME})"
    return Path(text).name or value


def shared_path(key: str, value: Any) -> Any:
    """``value`` as a shared page shows it under ``key`` (the last part of "settings · data"): a model
    by :func:`model_label`, an absolute photo folder or file (``data``, ``holdout``, ``masks``) by
    its name; a relative path is as the user typed it, and anything else is returned unchanged."""
    if not isinstance(value, str):
        return value
    last = str(key).rsplit(" · ", 1)[-1].strip().lower()
    if last in MODEL_KEYS:
        return model_label(value)
    if last in PATH_KEYS and Path(value).is_absolute():
        return Path(value).name or value
    if last == "command_line":  # as typed, with each absolute path cut to its name
        import shlex

        def cut(word: str) -> str:  # a path, --flag=path or -opath
            flag = re.match(r"(--[\w-]+=|-\w(?=/))?", word).group(0)
            path = word[len(flag) :]
            return flag + (Path(path).name if Path(path).is_absolute() else path)

        return shlex.join(cut(w) for w in shlex.split(value))
    return value


_ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~/:+-])/(?:[^/\n()<>,;:'\"]*[^\s/()<>,;:'\"]/)+([^\s/()<>,;:'\"]+)/?"  # /x/y at least
)


def cut_paths(text: str, known: Iterable[str] = ()) -> str:
    """``text`` (a sentence a command recorded, such as ``evaluated_on``, or a skipped photo's
    ``path: reason``) with each absolute path cut to its last part: a shared page names the
    folder, not the user's home. Relative paths stay as typed.

    The paths in ``known`` (the run's own settings) are cut exactly, spaces and all; other
    absolute paths are found by their shape (``/a/b``: two parts at least, so ``+/-`` or
    ``1 /2`` are left alone; folders may hold spaces, the last part may not).
    """
    for path in sorted((p for p in known if isinstance(p, str) and Path(p).is_absolute()), key=len)[::-1]:
        text = text.replace(path, Path(path).name or path)
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1), text)


def path_and_reason(item: str) -> tuple[str, str]:
    """A skipped photo's ``path: reason`` as (the file as a shared page names it, the reason): an
    absolute path cut to its file name, spaces and all."""
    path, sep, reason = item.partition(": ")
    return (Path(path).name if sep and Path(path).is_absolute() else cut_paths(path)), cut_paths(reason)


def cut_path_reason(item: str) -> str:
    """A skipped photo's ``path: reason`` with the path cut to its file name (spaces and all)."""
    shown, reason = path_and_reason(item)
    return f"{shown}: {reason}" if ": " in item else shown
