"""Continuous listening in real Chromium: live mode and a long upload, through ml/detect.py.

Chromium's fake microphone plays a recording of several different words with pauses, in a
loop; live mode must list each word, in order, and nothing else. With the tone model the
words are tone bursts (always available); with the shipped model they are real speakers'
clips from ../shared/speech (skipped where that folder is absent).
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ml.audio import SAMPLE_RATE
from ml.synth.tones import TONES
from tests.e2e.conftest import launch, open_page, serve
from tests.helpers import ROOT, require_shared_speech, with_detector

pytestmark = pytest.mark.e2e

TONE_WORDS = ["yes", "go", "down"]
DEFAULT_MODEL = ROOT / "models" / "default"


@pytest.fixture(scope="module")
def tone_run(tiny_run, tmp_path_factory):
    """The three-epoch tone model is less sure than a real one: its run says so."""
    return with_detector(tiny_run, tmp_path_factory.mktemp("tone") / "tone-detect", threshold=0.6)


def place(words: list[np.ndarray], gap_s: float = 1.5, tail_s: float = 3.0, noise: float = 0.01,
          seed: int = 0) -> np.ndarray:
    """16 kHz room noise with each word (16 kHz samples) after a pause, and a pause at the end."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(gap_s * SAMPLE_RATE), np.float32)]
    for word in words:
        parts += [word.astype(np.float32), np.zeros(int(gap_s * SAMPLE_RATE), np.float32)]
    parts.append(np.zeros(int(tail_s * SAMPLE_RATE), np.float32))
    wave = np.concatenate(parts)
    return (wave + rng.normal(0, noise, len(wave))).astype(np.float32)


def tone(word: str, seconds: float = 0.4) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return 0.5 * np.sin(2 * np.pi * TONES[word] * t)


def write_48k(path, wave):
    """As a laptop microphone delivers it: 48 kHz (simple repetition is enough for a test)."""
    sf.write(path, np.repeat(wave, 3), 48_000, subtype="PCM_16")
    return path


def heard_in_order(page, words: list[str], timeout_ms: int = 60_000) -> list[str]:
    """Listen until one more word than a whole loop is listed; the list, oldest first."""
    page.click("#mode-live")
    page.click("#live-button")
    page.wait_for_function(f"() => document.querySelectorAll('#live-words li').length > {len(words)}",
                           timeout=timeout_ms)
    page.click("#live-button")
    return page.eval_on_selector_all("#live-words li", "items => items.map(li => li.dataset.label)")[::-1]


def assert_loop_of(heard: list[str], words: list[str]):
    """`heard` is a run of the looped recording's words: each in order, nothing else."""
    cycle = words * (len(heard) // len(words) + 2)
    starts = [i for i in range(len(words)) if cycle[i:i + len(heard)] == heard]
    assert starts, f"heard {heard}, expected a run of {words} repeated"
    assert set(words) <= set(heard)


def test_live_mode_lists_each_word_in_order_and_nothing_else(playwright, tone_run, tmp_path, artifacts):
    mic = write_48k(tmp_path / "words.wav", place([tone(w) for w in TONE_WORDS]))
    chromium = launch(playwright, mic)
    url, stop = serve({"HARK_MODEL": str(tone_run)})
    try:
        page = open_page(chromium)
        page.goto(url + "/")
        heard = heard_in_order(page, TONE_WORDS)
        assert_loop_of(heard, TONE_WORDS)
        assert page.inner_text("#live-word") == heard[-1]        # the detector's last word
        assert int(page.get_attribute("#listen", "data-updates")) > 10
        assert "sure" in page.inner_text("#live-word-when")
        page.screenshot(path=artifacts / "live-words.png", full_page=True)
        assert page.js_errors == []
    finally:
        chromium.close()
        stop()


def test_upload_of_a_long_recording_shows_its_words_on_a_timeline(page, tone_run, tmp_path, artifacts):
    words = TONE_WORDS + ["yes"]
    path = tmp_path / "commands.wav"
    sf.write(path, place([tone(w) for w in words], tail_s=1.0), SAMPLE_RATE, subtype="PCM_16")
    url, stop = serve({"HARK_MODEL": str(tone_run)})
    try:
        page.goto(url + "/upload")
        page.set_input_files("#file-input", [str(path)])
        page.wait_for_selector(".result[data-charts='drawn'] .chart-timeline .main-svg", timeout=30_000)
        card = page.locator(".result").first
        assert card.locator(".word-list li").evaluate_all("li => li.map(x => x.dataset.label)") == words
        assert card.locator(".result-word").inner_text() == "4 commands"
        assert card.locator(".chart-timeline .annotation").count() == len(words)
        assert card.locator("audio").get_attribute("src").startswith("blob:")
        page.screenshot(path=artifacts / "upload-words.png", full_page=True)
        assert page.js_errors == []
    finally:
        stop()


def test_the_sensitivity_chosen_is_remembered_and_used_by_upload_and_live(playwright, tiny_run, tmp_path):
    """A run whose low preset hears nothing: chosen on the Upload page, it stays chosen on the
    next visit and on the Listen page, and goes with every request of both."""
    run = with_detector(tiny_run, tmp_path / "presets", threshold=0.6, sensitivity={
        "low": {"min_windows": 50, "measured": {"noise on": {"hits": 0.9}, "false_alarms_per_hour": {
            "speech": 1.0, "music": 0.0, "noise": 0.0}}}, "medium": {}, "high": {"threshold": 0.5}})
    path = tmp_path / "commands.wav"
    sf.write(path, place([tone(w) for w in TONE_WORDS], tail_s=1.0), SAMPLE_RATE, subtype="PCM_16")
    chromium = launch(playwright, write_48k(tmp_path / "mic.wav", place([tone(w) for w in TONE_WORDS])))
    url, stop = serve({"HARK_MODEL": str(run)})
    try:
        page = open_page(chromium)
        sent = []
        page.on("response", lambda r: sent.append(r) if r.url.endswith("/api/detect") else None)
        page.goto(url + "/upload")
        assert page.input_value("select[data-sensitivity]") == "medium"
        page.select_option("select[data-sensitivity]", "low")
        assert "false alarms an hour: about 1 in talk" in page.inner_text("[data-sensitivity-about]")
        page.reload()
        assert page.input_value("select[data-sensitivity]") == "low"
        page.set_input_files("#file-input", [str(path)])
        page.wait_for_selector(".result[data-state='done']", timeout=30_000)
        assert page.locator(".result-word").first.inner_text() == "No command heard"
        assert "sensitivity low" in page.inner_text(".result-meta")
        page.goto(url + "/")
        assert page.input_value("select[data-sensitivity]") == "low"
        sent.clear()
        page.click("#mode-live")
        page.click("#live-button")
        page.wait_for_function("() => Number(document.getElementById('listen').dataset.updates) > 3",
                               timeout=30_000)
        page.click("#live-button")
        assert len(sent) > 3 and {r.json()["sensitivity"] for r in sent} == {"low"}   # each answer says
        assert page.eval_on_selector_all("#live-words li", "items => items.length") == 0
        assert page.js_errors == []
    finally:
        chromium.close()
        stop()


def real_words(words: list[str]) -> list[np.ndarray]:
    """For each word, the first clip of ../shared/speech that the shipped model's detector
    finds on its own (the test is of the browser's path, not of the model)."""
    from ml.audio import decode, to_model_rate
    from ml.classifier import Classifier
    from ml.detect import Detector

    speech = require_shared_speech()
    detector = Detector(Classifier(DEFAULT_MODEL))
    chosen = []
    for word in words:
        for path in sorted((speech / "words" / word).glob("*.wav"))[:40]:
            clip = to_model_rate(*decode(path))
            found = detector.detect(place([clip], gap_s=1.0, tail_s=0.0, noise=0.002))
            if [d.label for d in found] == [word] and found[0].confidence > 0.95:
                chosen.append(clip)
                break
        else:
            pytest.skip(f"no clip of {word!r} among the first 40 is heard alone by the shipped model")
    return chosen


def test_live_mode_with_the_shipped_model_and_real_speakers(playwright, tmp_path, artifacts):
    from ml.classifier import Classifier
    from ml.detect import Detector

    words = ["yes", "stop", "left", "down"]
    wave = place(real_words(words), noise=0.002)
    offline = [d.label for d in Detector(Classifier(DEFAULT_MODEL)).detect(wave)]
    assert offline == words
    chromium = launch(playwright, write_48k(tmp_path / "spoken.wav", wave))
    url, stop = serve({"HARK_MODEL": str(DEFAULT_MODEL)})
    try:
        page = open_page(chromium)
        page.goto(url + "/")
        assert_loop_of(heard_in_order(page, words, timeout_ms=90_000), words)
        page.screenshot(path=artifacts / "live-words-real-speech.png", full_page=True)
        assert page.js_errors == []
    finally:
        chromium.close()
        stop()
