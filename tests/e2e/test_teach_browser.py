"""Teaching a new word end to end in real Chromium: record takes of a word the
shipped model never learned with the fake microphone, press "Teach these words" on the
data set page, and hear the word in Live mode once the new version serves.

The voice is eSpeak NG's (tests/e2e/test_record_voice.py renders it); Live mode hears the
word said at speeds and pitches the recording never had.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from sqlalchemy import select

from tests.e2e.conftest import launch, log_in, open_page, run_queued, wait_until_served
from tests.e2e.test_live_detect import assert_loop_of, heard_in_order, place, write_48k
from tests.e2e.test_record_voice import microphone_file, render
from webapp.database import db
from webapp.tables import ModelVersion

pytestmark = pytest.mark.e2e

WORD = "lamp"


def test_a_word_recorded_in_the_browser_is_taught_and_heard_in_live_mode(playwright, site, artifacts):
    url, app, tmp = site
    mic = microphone_file(tmp / "mic.wav", WORD)
    chromium = launch(playwright, mic)
    try:
        page = open_page(chromium)
        log_in(page, url, "/admin/datasets")
        page.fill("#create-form input[name=name]", "lamps")
        page.fill("#create-form input[name=labels]", WORD)
        page.click("#create-form button[type=submit]")
        page.wait_for_url(url + "/admin/datasets/user:lamps")
        assert "Nothing to teach yet" in page.inner_text("#teach")

        # Five takes, each shown with its waveform before it is kept.
        page.fill("#rec-speaker", "Vi")
        page.select_option("#rec-countdown", "0")
        page.fill("#rec-takes", "5")
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("Space")
        for take in range(5):
            page.wait_for_selector("#recorder[data-state=review]", timeout=15_000)
            drawn = page.evaluate("""() => { const c = document.querySelector('#rec-wave');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return d.some((v, i) => i % 4 === 3 && v > 0); }""")
            assert drawn, "the take's waveform is drawn"
            if take == 0:
                page.screenshot(path=artifacts / "teach-take.png", full_page=True)
            page.keyboard.press("k")
            page.wait_for_function("() => document.querySelector('#recorder').dataset.state !== 'saving'")
        page.wait_for_selector("text=Done: 5 clip(s) kept", timeout=15_000)

        # Teach it from the page: the job's page follows it; the consumer's side runs it here.
        page.reload()
        assert f"Teaches {WORD}" in page.inner_text("#teach-what")
        page.click("#teach-button")
        page.wait_for_url(re.compile(r".*/training/jobs/\d+$"))
        job = run_queued(app)
        assert job.params["mode"] == "teach" and job.params["dataset"] == ["default", "user:lamps"]
        with app.app_context():
            new = db.session.scalars(select(ModelVersion).where(ModelVersion.job_id == job.id)).one()
        wait_until_served(url, new.name)
        page.wait_for_selector("#job-activation[data-activated=true]", timeout=15_000)
        page.screenshot(path=artifacts / "teach-job.png", full_page=True)
        assert page.js_errors == []
    finally:
        chromium.close()

    # Live mode hears the word said anew (other speeds and pitches than the takes).
    said = [render(WORD, rate, pitch) for rate, pitch in ((142, 42), (172, 58))]
    live_mic = write_48k(tmp / "live.wav", place([np.asarray(w) for w in said], noise=0.002))
    chromium = launch(playwright, live_mic)
    try:
        page = open_page(chromium)
        page.goto(url + "/")
        heard = heard_in_order(page, [WORD, WORD], timeout_ms=90_000)
        assert_loop_of(heard, [WORD])
        page.screenshot(path=artifacts / "teach-live.png", full_page=True)
        assert page.js_errors == []
    finally:
        chromium.close()
