"""Browser fixtures: the app on a real HTTP server, and headless Debian Chromium whose
fake microphone plays a WAV file (a 1500 Hz tone burst: "yes" to the `tiny_run` model)."""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from tests.helpers import PASSWORD, ROOT, make_app
from webapp.database import db
from webapp.tables import TrainingJob
from webapp.training import runner, startup

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The strict policy the pages are held to: no inline or eval'd script anywhere (Plotly injects styles);
# WebAssembly may be compiled (LiteRT.js, the Listen page's "On this device").
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         "--autoplay-policy=no-user-gesture-required"]


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return sync_playwright


def word_wave(freq: float = 1500.0, rate: int = 48_000, seconds: float = 2.0) -> np.ndarray:
    """Quiet room noise with a 0.4 s tone burst in the middle: one 'word' per loop."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * rate)) / rate
    wave = rng.normal(0, 0.01, t.size)
    burst = (t > 0.7) & (t < 1.1)
    wave += burst * 0.5 * np.sin(2 * np.pi * freq * t)
    return wave.astype(np.float32)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def mic_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mic") / "yes-tone.wav"
    sf.write(path, word_wave(), 48_000, subtype="PCM_16")
    return path


def serve(config: dict):
    """Start the app on a free loopback port in a thread; returns (url, stop)."""
    from werkzeug.serving import make_server

    from webapp import create_app

    # The browser tests are about pages, not privacy (tests/test_gallery.py and test_datasets.py
    # are): every folder's clips are public to them, wherever pytest made it.
    app = create_app({"HARK_PUBLIC_DATA": "/", **config})

    @app.after_request
    def strict_csp(response):   # any inline script or handler would now fail, visibly
        response.headers["Content-Security-Policy"] = CSP
        return response

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        thread.join(timeout=5)

    return f"http://127.0.0.1:{server.server_port}", stop


@pytest.fixture(scope="session")
def live_server(tiny_run):
    """The app with the `tiny_run` model, served over HTTP under a strict CSP."""
    _playwright()
    url, stop = serve({"HARK_MODEL": str(tiny_run)})
    yield url
    stop()


@pytest.fixture(scope="session")
def playwright():
    """One Playwright driver per session (it allows only one per thread)."""
    with _playwright()() as p:
        yield p


def launch(playwright, mic_wav: Path):
    """Debian's Chromium, headless, its fake microphone playing `mic_wav` in a loop."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=FLAGS + [f"--use-file-for-fake-audio-capture={mic_wav}"])


@pytest.fixture(scope="session")
def browser(playwright, mic_wav):
    chromium = launch(playwright, mic_wav)
    yield chromium
    chromium.close()


def open_page(browser, **context_options):
    """A page in a fresh context (microphone allowed) that records its script errors."""
    options = {"viewport": {"width": 1280, "height": 900}, "permissions": ["microphone"]}
    context = browser.new_context(**{**options, **context_options})
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and page.js_errors.append(msg.text))
    page.on("console", lambda msg: "Content Security Policy" in msg.text and page.js_errors.append(msg.text))
    return page


def log_in(page, url: str, to: str = "/admin") -> None:
    """Log in as the admin through the login page, landing on `to`."""
    page.goto(f"{url}/login?next={to}")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + to)


@pytest.fixture
def page(browser):
    page = open_page(browser)
    yield page
    page.context.close()


@pytest.fixture
def phone(browser):
    page = open_page(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                     is_mobile=True, has_touch=True)
    yield page
    page.context.close()


# ---- the shipped model, its jobs run by the test ---------------------------------------------

@pytest.fixture
def site(tmp_path):
    """The shipped model served over HTTP, registered as a version, jobs run by the test
    (run_queued); (url, app, tmp_path). Skipped where eSpeak NG cannot speak the test's words."""
    try:
        from ml.synth import _espeak

        _espeak.paths()
    except Exception as exc:    # noqa: BLE001  the wheel is in requirements.txt; say why if not
        pytest.skip(f"eSpeak NG (espeakng-loader) is not usable here: {exc}")
    config = {"HARK_INSTANCE": str(tmp_path / "instance"), "HARK_RUNS": str(tmp_path / "runs"),
              "HARK_DATA": str(tmp_path / "data"), "HARK_QUEUE_IMMEDIATE": False,
              "HARK_DEFAULT_MODEL": str(ROOT / "models" / "default"), "HARK_ADMIN_PASSWORD": PASSWORD,
              "HARK_AUTO_TRAIN": False}
    app = make_app(tmp_path, **config)          # the consumer's side: the test runs the jobs
    with app.app_context():
        startup.check(app, auto_train=False)     # the shipped model is a version to start from
    url, stop = serve(config)
    yield url, app, tmp_path
    stop()


def run_queued(app) -> TrainingJob:
    """Run the one queued job as the consumer would; return it finished."""
    with app.app_context():
        job = db.session.scalars(select(TrainingJob).where(TrainingJob.state == "queued")).one()
        runner.run_job(job.id)
        db.session.expire_all()
        job = db.session.get(TrainingJob, job.id)
        assert job.state == "succeeded", (job.error, job.log_tail)
        return job


def wait_until_served(url: str, version: str, timeout: float = 60.0) -> None:
    """Until /api/health names `version` (the server swaps models on its own schedule)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/api/health") as response:
            if json.loads(response.read())["model"] == version:
                return
        time.sleep(0.2)
    raise AssertionError(f"{version} was not served within {timeout:.0f} s")
