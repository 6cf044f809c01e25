"""Every command refuses a bad path or option before TensorFlow starts.

TensorFlow takes 8-10 s to import; a typo in a path must fail in about a second (explain once
took 18 s to say a file was missing). Each case runs the console script in a fresh process and
checks that ``tensorflow`` was never imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_folders import write_utk_folder

_PROBE = """
import sys
from agelens.cli.main import run
sys.argv = ["agelens", *sys.argv[1:]]
try:
    run()
except SystemExit as e:
    print("exit", e.code, "tensorflow loaded:", "tensorflow" in sys.modules)
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A small labelled folder, a text file posing as a model, a taken model path and a foreign split."""
    tmp = tmp_path_factory.mktemp("fast")
    write_utk_folder(tmp / "utk", 6, seed=1, size=32)
    (tmp / "fake.keras").write_text("not a model\n")
    (tmp / "taken.keras").write_bytes(b"PK")  # only its existence matters
    (tmp / "afile").write_text("x")
    (tmp / "other_split.json").write_text(json.dumps({"test": ["elsewhere.jpg"]}))
    (tmp / "empty").mkdir()
    return tmp


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["evaluate", "{tmp}/missing"], "missing: no such file or folder"),
        (["evaluate", "{tmp}/utk", "--model", "{tmp}/nope.keras"], "nope.keras: file not found (--model)"),
        (["evaluate", "{tmp}/utk", "--model", "{tmp}/fake.keras"], "fake.keras: not a Keras model file"),
        (["evaluate", "{tmp}/utk", "--out", "{tmp}/afile"], "afile: exists and is not a directory"),
        (["evaluate", "{tmp}/utk", "--holdout", "{tmp}/other_split.json"], "none of its 6 labelled photos"),
        (["train", "{tmp}/missing", "--out", "{tmp}/m.keras"], "missing: no such file or folder"),
        (["train", "{tmp}/utk", "--out", "{tmp}/taken.keras"], "taken.keras exists; use --force"),
        (["train", "{tmp}/utk", "--out", "{tmp}/m.h5"], "m.h5: the model file must end in .keras"),
        (["train", "{tmp}/utk", "--out", "{tmp}/m.keras", "--resume", "{tmp}/nope.keras"],
         "nope.keras: file not found (--resume)"),
        (["layers", "--model", "{tmp}/nope.keras"], "nope.keras: file not found (--model)"),
        (["layers", "--model", "{tmp}/fake.keras"], "fake.keras: not a Keras model file"),
        (["explain", "{tmp}/empty"], "no images found in"),  # as predict says it
        (["explain", "{tmp}/missing.jpg"], "nothing to explain: {tmp}/missing.jpg: no such file or folder"),
        (["explain", "{tmp}/utk", "--model", "{tmp}/fake.keras"], "fake.keras: not a Keras model file"),
        (["predict", "{tmp}/missing.jpg"], "nothing to predict: {tmp}/missing.jpg: no such file or folder"),
        (["predict", "{tmp}/empty"], "no images found in"),
        (["predict", "{tmp}/utk", "--model", "{tmp}/nope.keras"], "nope.keras: file not found (--model)"),
        (["score", "{tmp}/missing"], "missing: no such file or folder"),
        (["score", "{tmp}/empty", "--model", "{tmp}/nope.keras"], "nope.keras: file not found (--model)"),
        (["score", "{tmp}/empty", "--holdout", "{tmp}/split.json"], "split.json: file not found (--holdout)"),
    ],
)  # fmt: skip
def test_a_bad_path_or_option_is_refused_before_tensorflow_loads(files, args, words) -> None:
    argv = [a.format(tmp=files) for a in args]
    words = words.format(tmp=files)
    res = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert words in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr  # one line, no TensorFlow noise
    assert res.stdout.strip() == "exit 1 tensorflow loaded: False", res.stdout + res.stderr


@pytest.mark.parametrize(
    ("bins", "words"),
    [
        (
            ["--bins", "20,40,60", "--names", "a,b,c"],
            "--names: 3 names for 4 classes (--bins 20,40,60 makes 4)",
        ),
        (["--bins", "2x"], "--bins 2x: give ages in years"),
        (["--bins", "60,30"], "--bins 60,30: the ages must increase (e.g. 30,60)"),
    ],
)
@pytest.mark.parametrize(
    "command", [["train", "{tmp}/utk", "--out", "{tmp}/m.keras"], ["data", "inspect", "{tmp}/utk"]]
)
def test_bad_bins_are_the_same_usage_error_in_every_command(files, command, bins, words) -> None:
    argv = [a.format(tmp=files) for a in command] + bins
    res = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert res.stderr.startswith(f"error: Invalid value: {words}"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stdout.strip() == "exit 2 tensorflow loaded: False", res.stdout + res.stderr


@pytest.mark.parametrize(
    "command", [["predict", "{tmp}/utk"], ["explain", "{tmp}/utk"], ["evaluate", "{tmp}/utk"]]
)
def test_a_mistyped_input_range_is_a_usage_error(files, command) -> None:
    """It was exit 1 after the model loaded, where explain's help promises 2 for a bad option."""
    argv = [a.format(tmp=files) for a in command] + ["--input-range", "0-2"]
    res = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert "'0-2': use one of 0-255, 0-1" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert res.stdout.strip() == "exit 2 tensorflow loaded: False", res.stdout + res.stderr
