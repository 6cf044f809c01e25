"""The web app's event handlers after the layout was split into builders: what a user sees."""

from __future__ import annotations

import numpy as np
import test_app_logic
from test_app_logic import _by_output, _handler

app_demo = test_app_logic.app_demo  # the one built app of the handler tests, reused as a fixture


def _explain_outputs(app_demo: tuple, *args: object) -> dict:
    """``on_explain``'s returned values keyed by output elem_id."""
    demo, _ = app_demo
    return _by_output(demo, "on_explain", _handler(demo, "on_explain").fn(*args))


def test_a_failed_explain_keeps_the_photo_on_screen(app_demo: tuple) -> None:
    """A typo in the layer box emptied the left image: the photo looked lost, though still loaded."""
    from agelens.data.synthetic import generate

    photo = generate(1, size=96, seed=1).images[0]
    common = (photo, None, False, "gradcam")
    failed = _explain_outputs(app_demo, *common, "no_such_layer", "predicted class", "out_relu", 0.45)
    assert failed["al-status"].startswith("⚠️ Could not explain: no layer named 'no_such_layer'")
    assert failed["al-face"] == {"__type__": "update"}  # gr.skip(): the image stays as it was
    assert failed["al-map"] is None and failed["al-download"] is None  # no stale map or zip

    explained = _explain_outputs(app_demo, *common, "last-conv", "predicted class", "out_relu", 0.45)
    assert explained["al-face"]["value"].shape[:2] == explained["al-map"].shape[:2]

    nothing = _explain_outputs(app_demo, None, None, False, "gradcam", "last-conv", "old", "out_relu", 0.45)
    assert nothing["al-face"]["value"] is None  # no photo at all: the image is cleared, as before
    assert isinstance(explained["al-map"], np.ndarray)
