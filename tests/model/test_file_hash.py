"""Model files are hashed in one place (:func:`agelens.provenance.update_with_file`), for a manifest's
fingerprint and for the light model's cache key, and that key still covers the code that reads a model."""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
from pathlib import Path

from agelens import __version__
from agelens.model import light
from agelens.model.age_model import AgeModel
from agelens.model.io import load_model
from agelens.model.wrap import wrap_keras_model
from agelens.provenance import model_fingerprint, update_with_file

BLOCK = 1 << 20


def _bytes(n: int) -> bytes:
    return bytes((i * 7919) % 251 for i in range(n))


def test_a_file_is_hashed_whole_across_blocks_into_the_callers_digest(tmp_path: Path) -> None:
    data = _bytes(2 * BLOCK + 123)  # three reads: two whole blocks and a short one
    path = tmp_path / "model.keras"
    path.write_bytes(data)
    h = hashlib.sha256(b"before")
    assert update_with_file(h, path) == len(data)
    assert h.hexdigest() == hashlib.sha256(b"before" + data).hexdigest()
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    assert update_with_file(hashlib.sha256(), empty) == 0


def test_the_fingerprint_and_the_light_key_hash_the_same_bytes(tmp_path: Path) -> None:
    data = _bytes(BLOCK + 5)
    path = tmp_path / "model.keras"
    path.write_bytes(data)
    found = model_fingerprint(path)
    assert found["sha256"] == hashlib.sha256(data).hexdigest() and found["bytes"] == len(data)
    options = {"input_size": 32, "class_names": None}
    h = hashlib.sha256(data)  # the key: the file's bytes, the options, then each reader's source
    h.update(json.dumps([light.RECORD_FORMAT, __version__, sorted(options.items())], default=str).encode())
    for name in light._READERS:
        h.update((Path(light.__file__).parent / name).read_bytes())
    assert light.light_key(path, options) == h.hexdigest()[:32]
    path.write_bytes(data[:-1] + b"\0")
    assert light.light_key(path, options) != h.hexdigest()[:32]


def _model_names(node: ast.AST) -> list[str]:
    """The ``agelens.model`` modules an import statement names (``from agelens.model import age_head``,
    ``from agelens.model.wrap import ...``, ``import agelens.model.age_head``); none for any other node."""
    if isinstance(node, ast.ImportFrom) and node.module == "agelens.model":
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("agelens.model."):
        return [node.module.split(".")[2]]
    if isinstance(node, ast.Import):
        return [a.name.split(".")[2] for a in node.names if a.name.startswith("agelens.model.")]
    return []


def _model_modules_imported_by(*names: str) -> set[str]:
    """The files of ``agelens.model`` that the named ones import, at module or function level, and
    what those import in turn: a reader's helpers decide what it reads as much as the reader does."""
    here = Path(light.__file__).parent
    found, todo = set(names), list(names)
    while todo:
        for node in ast.walk(ast.parse((here / todo.pop()).read_text())):
            for name in (f"{m}.py" for m in _model_names(node)):
                if name not in found and (here / name).is_file():
                    found.add(name)
                    todo.append(name)
    return found


def test_the_light_key_covers_every_module_that_reads_a_model() -> None:
    # A record holds what loading and wrapping worked out: a change to that code must not find it again.
    readers = {Path(inspect.getsourcefile(f)).name for f in (load_model, wrap_keras_model, AgeModel)}
    readers |= _model_modules_imported_by("io.py", "wrap.py")
    assert {"age_head.py", "pixel_range.py"} <= readers  # found by function- and module-level imports
    assert readers <= set(light._READERS), readers - set(light._READERS)
