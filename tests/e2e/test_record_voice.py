"""Your own voice, end to end in real Chromium: record clips with the microphone,
fine-tune the shipped model on them, and see the new version hear that voice (activated by
hand: the guard refuses a version that hears other people worse, and says so).

The voice is eSpeak NG's Vietnamese voice saying English words (from the espeakng-loader
wheel): an accent the default set never had, which the shipped model mostly hears as
"no". Chromium's fake microphone plays one word at a time (it reads its file anew each
time the page opens the microphone), five renders at other speeds and pitches in a loop.
The page records five takes of each word with its keyboard shortcuts; a job fine-tunes
the default model on them; the gallery's evaluation, started from the data set page,
measures the words said again (softer, elsewhere in the second, in a noisier room: clips the
recording never heard), before and after. Screenshots: test-artifacts/record-voice-*.png.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from ml.audio import to_model_rate
from tests.e2e.conftest import launch, log_in, open_page, run_queued, wait_until_served
from webapp.database import db
from webapp.datasets import store
from webapp.tables import ModelVersion

pytestmark = pytest.mark.e2e

VOICE = "vi"
WORDS = ("down", "left", "go")        # what the shipped model gets wrong in this voice
RECORDED = [(120, 50), (135, 35), (150, 65), (165, 45), (180, 55)]   # (rate, pitch) per take
RATE = 48_000


def render(word: str, rate: int, pitch: int) -> np.ndarray:
    from ml.synth import _espeak

    wave = np.asarray(_espeak.synth(word, VOICE, rate, pitch, 50), np.float32)
    wave = to_model_rate(wave, _espeak.sample_rate())
    return 0.5 * wave / np.abs(wave).max()


def said_again(word: str, take: int) -> np.ndarray:
    """A take said again: softer, elsewhere in the second, in a noisier room (never recorded)."""
    rate, pitch = RECORDED[take]
    room = np.random.default_rng(100 + take).normal(0, 0.004, 16000).astype(np.float32)
    start = 1000 + 700 * take
    said = 0.6 * render(word, rate, pitch)[:16000 - start]
    room[start:start + len(said)] += said
    return room


def microphone_file(path: Path, word: str) -> Path:
    """Five renders of `word`, one every 2 s, in a quiet room, at 48 kHz as a laptop gives."""
    segments = []
    for i, (rate, pitch) in enumerate(RECORDED):
        room = np.random.default_rng(i).normal(0, 0.002, 32000).astype(np.float32)
        said = render(word, rate, pitch)[:16000]
        room[9600:9600 + len(said)] += said
        segments.append(room)
    sf.write(path, np.repeat(np.concatenate(segments), 3), RATE, subtype="PCM_16")
    return path


def evaluate(page, app) -> float:
    """Evaluate the selected (active) version on the open data set page; the accuracy shown."""
    page.click("#evaluate-go")
    page.wait_for_selector("text=Queued as job")
    run_queued(app)
    page.wait_for_selector("#evaluate-open", timeout=20_000)
    text = page.inner_text("#evaluate-result")
    return float(re.search(r"Done: ([0-9.]+)%", text).group(1)) / 100


def test_recorded_clips_teach_the_model_a_new_voice(playwright, site, artifacts):
    url, app, tmp = site
    mic = tmp / "mic.wav"
    microphone_file(mic, WORDS[0])
    chromium = launch(playwright, mic)
    try:
        page = open_page(chromium)
        log_in(page, url, "/admin/datasets")

        # A data set of one's own, made on the page.
        page.fill("#create-form input[name=name]", "my-voice")
        page.fill("#create-form input[name=labels]", " ".join(WORDS))
        page.click("#create-form button[type=submit]")
        page.wait_for_url(url + "/admin/datasets/user:my-voice")

        # Five takes of each word, kept with the K key.
        page.fill("#rec-speaker", "Vi")
        page.select_option("#rec-countdown", "0")
        page.fill("#rec-takes", "5")
        for word in WORDS:
            microphone_file(mic, word)                  # the next time the page opens the mic
            for box in page.locator("#rec-words input").all():
                box.set_checked(box.get_attribute("value") == word)
            page.evaluate("document.activeElement.blur()")
            page.keyboard.press("Space")
            for take in range(len(RECORDED)):
                page.wait_for_selector("#recorder[data-state=review]", timeout=15_000)
                assert page.inner_text("#rec-prompt") == f"Say “{word}”"
                if word == WORDS[0] and take == 0:
                    page.screenshot(path=artifacts / "record-voice-review.png", full_page=True)
                page.keyboard.press("k")
                page.wait_for_function("() => document.querySelector('#recorder').dataset.state !== 'saving'")
            page.wait_for_selector("text=Done: 5 clip(s) kept", timeout=15_000)
        counts = store.counts(store.get(tmp / "data", "user:my-voice"))
        assert counts == dict.fromkeys(sorted(WORDS), 5)
        rows = store.read_manifest(store.get(tmp / "data", "user:my-voice"))
        assert {r["speaker"] for r in rows} == {"Vi"} and {r["source"] for r in rows} == {"recording"}
        for row in rows:
            info = sf.info(tmp / "data" / "user" / "my-voice" / row["file"])
            assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)

        # The words said again (clips the recording never heard), a data set of their own,
        # evaluated before...
        check = store.create(tmp / "data", "vi-check", WORDS)
        store.add(check, [store.prepare(_wav(said_again(w, k)), w, f"{w}.wav", "Vi", "test")
                          for w in WORDS for k in range(len(RECORDED))])
        page.goto(url + "/admin/datasets/user:vi-check")
        before = evaluate(page, app)

        # ... fine-tuning the shipped model on the recordings, from the admin form ...
        page.goto(url + "/admin")
        for box in page.locator("input[name=dataset]").all():
            box.set_checked(box.get_attribute("value") == "user:my-voice")
        with app.app_context():
            shipped = db.session.scalars(select(ModelVersion).where(ModelVersion.source == "default")).one()
        page.select_option("select[name=init]", str(shipped.id))
        page.fill("input[name=epochs]", "40")   # 20 did for a default that heard half the real voices
        page.fill("input[name=learning_rate]", "0.001")
        page.fill("input[name=batch_size]", "16")
        page.check("input[name=activate]")
        page.click("text=Queue the job")
        page.wait_for_selector("text=is queued")
        job = run_queued(app)
        assert job.params["init"] == shipped.name and job.params["dataset"] == "user:my-voice"
        with app.app_context():
            new = db.session.scalars(select(ModelVersion).where(ModelVersion.job_id == job.id)).one()
        # Fine-tuned on one voice alone, it hears other people worse: the guard keeps the shipped
        # model serving and says why (measured: real speech 97.9% -> 86.2%); the admin, who wants
        # this voice heard, activates it anyway from the comparison page the job page links.
        page.goto(f"{url}/training/jobs/{job.id}")
        reason = page.inner_text("#job-activation")
        assert reason.startswith("Succeeded, not activated:") and "real speech" in reason, reason
        page.click("#job-activation a")
        assert "The check before activation found it worse" in page.inner_text("main")
        page.check("#activate-confirm")
        page.click("#activate-submit")                    # "Activate anyway"
        wait_until_served(url, new.name)     # the server loads it within a second or two

        # ... and after: the new, active version hears the voice.
        page.goto(url + "/admin/datasets/user:vi-check")
        after = evaluate(page, app)
        page.screenshot(path=artifacts / "record-voice-after.png", full_page=True)
        print(f"{VOICE} voice, words said again: {before:.0%} before, {after:.0%} after fine-tuning")
        assert after >= 0.85 and after >= before + 0.2, (before, after)
        page.reload()
        assert page.locator("#dataset-evaluations tbody tr").count() == 2
        assert page.js_errors == []
    finally:
        chromium.close()


def _wav(wave: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()
