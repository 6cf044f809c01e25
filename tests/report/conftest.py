"""Fixtures for the report and app tests: run folders, a tiny model, a free port, headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_factory import make_run

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained MobileNetV2 (alpha 0.35, 64 px) saved as .keras: fast to load and explain."""
    from agelens.model.builder import ModelConfig, build_age_model
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    model = wrap_keras_model(build_age_model(ModelConfig(input_size=64, alpha=0.35), seed=0))
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.keras")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    """Poll ``GET url`` until it answers 200; fail early with the server's output if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"app exited with {proc.returncode} before serving:\n{out[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1.0)
    pytest.fail(f"{url} did not answer 200 within {timeout:.0f}s")


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, port: int, tmpdir: Path) -> None:
        self.proc, self.url, self.port, self.tmpdir = proc, url, port, tmpdir

    def stop(self) -> int:
        """SIGTERM (what ``kill`` sends) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode


@pytest.fixture(scope="module")
def app_server(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``agelens app`` in its own process on a free port, with TMPDIR pointed at a folder we can inspect."""
    port = free_port()
    tmpdir = tmp_path_factory.mktemp("app-tmp")
    env = dict(os.environ, TMPDIR=str(tmpdir), GRADIO_ANALYTICS_ENABLED="False", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("GRADIO_TEMP_DIR", None)
    cmd = [
        sys.executable,
        "-m",
        "agelens.cli.main",
        "app",
        "--model",
        str(tiny_model_path),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = Server(proc, f"http://127.0.0.1:{port}/", port, tmpdir)
    try:
        wait_for_http(server.url, proc)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Debian Chromium through Playwright; skips (one message) only where it cannot start."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Error as exc:
        pw.stop()
        pytest.skip(f"Chromium at {CHROMIUM} could not be launched: {str(exc).splitlines()[0]}")
    try:
        yield b
    finally:
        b.close()
        pw.stop()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A laptop-sized page that records every request leaving the machine."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})  # type: ignore[attr-defined]
    pg = context.new_page()
    pg.external_requests = []  # type: ignore[attr-defined]

    def record(request: object) -> None:
        url = request.url  # type: ignore[attr-defined]
        if url.startswith(("http://", "https://", "ws://", "wss://")) and "://127.0.0.1" not in url:
            pg.external_requests.append(url)  # type: ignore[attr-defined]

    pg.on("request", record)
    try:
        yield pg
    finally:
        context.close()
