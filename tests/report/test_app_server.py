"""The web app as a user meets it: ``agelens app`` in its own process, then driven in headless Chromium.

Tests run in file order and share one server; the last one stops it and checks the clean-up.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_factory import SCREENSHOTS


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (Linux /proc), e.g. {"127.0.0.1"}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                found.add(
                    ".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0)) if len(addr) == 8 else addr
                )
    return found


def test_serves_root_on_loopback_only(app_server) -> None:
    with urllib.request.urlopen(app_server.url, timeout=10) as r:
        assert r.status == 200
        assert b"<html" in r.read(2000).lower()
    addresses = _listening_addresses(app_server.port)
    if addresses:  # /proc is Linux-only; elsewhere the GET above is the check
        assert addresses == {"127.0.0.1"}


@pytest.mark.browser
def test_upload_explain_in_browser(app_server, page, tmp_path: Path) -> None:
    from agelens.data.synthetic import generate

    face = tmp_path / "face.png"
    Image.fromarray(generate(1, size=128, seed=3).images[0]).save(face)
    junk = tmp_path / "holiday.png"
    junk.write_bytes(b"definitely not a PNG")

    page.goto(app_server.url)
    upload = "#al-upload input[type=file]"
    page.wait_for_selector(upload, state="attached", timeout=60_000)
    page.set_input_files(upload, str(junk))
    page.wait_for_function(
        "document.querySelector('#al-status').innerText.includes('not an image')", timeout=60_000
    )
    assert "holiday.png" in page.inner_text("#al-status")

    page.set_input_files(upload, str(face))
    page.wait_for_function(
        "document.querySelector('#al-status').innerText.includes('Photo loaded')", timeout=60_000
    )
    assert "as uploaded" in page.inner_text("#al-face")  # the uncropped upload is not called "Model input"
    page.click("#al-explain")
    page.wait_for_selector("#al-map img[src]", timeout=120_000)
    page.wait_for_function(
        "document.querySelector('#al-status').innerText.includes('gradcam')", timeout=60_000
    )
    src = page.get_attribute("#al-map img", "src")
    assert src and ("/file=" in src or src.startswith(("data:", "http://127.0.0.1")))
    assert page.locator("#al-face img[src]").count() == 1
    probs = page.inner_text("#al-probs")
    assert all(name in probs for name in ("young", "middle-aged", "old"))
    assert page.locator("#al-download a, #al-download [download]").count() >= 1
    assert "agelens-face-gradcam.zip" in page.inner_text("#al-download").replace("\n", "")  # the photo's name
    assert "Model input" in page.inner_text("#al-face")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "app.png"), full_page=True)

    page.locator("#al-samples img").nth(4).click()  # a synthetic "old" face from the gallery
    page.wait_for_function("document.querySelector('#al-status').innerText.includes('Synthetic sample 5')")
    # the first photo's results go with it: no stale map, probabilities or download beside the new one
    page.wait_for_function("document.querySelectorAll('#al-map img[src]').length === 0", timeout=10_000)
    assert page.locator("#al-download a, #al-download [download]").count() == 0
    assert "middle-aged" not in page.inner_text("#al-probs")
    page.click("#al-explain")
    page.wait_for_function(
        "document.querySelector('#al-status').innerText.includes('gradcam')", timeout=60_000
    )
    assert page.get_attribute("#al-map img", "src") != src
    assert page.external_requests == [], page.external_requests


def test_sigterm_removes_the_temp_folder(app_server) -> None:
    work = list(app_server.tmpdir.glob("agelens-app-*"))
    assert len(work) == 1 and (work[0] / "gradio").is_dir()  # Gradio's cache lives inside our folder
    assert app_server.stop() == 0
    assert not work[0].exists()
    assert [p.name for p in app_server.tmpdir.iterdir()] == []  # nothing else was written to TMPDIR either


@pytest.mark.browser
def test_report_method_switch_in_browser(run_dir: Path, page) -> None:
    from agelens.report.html import write_report

    out = write_report(run_dir)
    page.goto(out.as_uri())
    overlay = ".gcard img.overlay"
    before = page.get_attribute(overlay, "src")
    assert before and before.startswith(("data:image/jpeg;base64,", "data:image/png;base64,"))
    assert "3 of 3 images" in page.inner_text("#gallery-status")
    page.select_option("#sel-method", label="scorecam")
    after = page.get_attribute(overlay, "src")
    assert after and after != before
    page.select_option("#sel-filter", label="out_relu")
    assert page.locator(".gcard .filters img.filter-grid[src^='data:']").count() == 3
    page.select_option("#sel-filter", value="")
    page.evaluate("document.getElementById('explanations').scrollIntoView()")
    page.wait_for_timeout(300)  # let the side nav highlight the section in view
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "report.png"))
    page.emulate_media(media="print")
    assert page.locator("nav.toc").is_hidden() and page.locator("#print-selection").is_visible()
    assert "scorecam" in page.inner_text("#print-selection")
    assert page.external_requests == []
    assert np.frombuffer(page.pdf(), np.uint8)[:4].tobytes() == b"%PDF"


@pytest.mark.browser
def test_report_snaps_to_a_combination_with_maps(run_dir: Path, page) -> None:
    """Picking a method recorded only under another layer moves the layer select instead of showing blanks."""
    import json

    from agelens.report.html import write_report

    manifest_path = run_dir / "explain/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for im in manifest["images"]:  # scorecam maps exist for the second layer only
        im["maps"] = [
            m for m in im["maps"] if m["method"] != "scorecam" or m["layer"] == "block_13_expand_relu"
        ]
    manifest_path.write_text(json.dumps(manifest))
    page.goto(write_report(run_dir).as_uri())
    assert page.input_value("#sel-layer") == "0"
    page.select_option("#sel-method", label="scorecam")
    assert page.input_value("#sel-layer") == "1" and page.input_value("#sel-method") == "2"
    assert page.locator(".gcard img.overlay:visible").count() == 3
    page.select_option("#sel-layer", value="0")  # the viewer insists: the method moves instead
    assert page.input_value("#sel-method") != "2" and page.input_value("#sel-layer") == "0"
