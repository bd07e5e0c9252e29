"""Hark in real headless Chromium: fake microphone, uploads, live mode, screenshots."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from ml.synth.tones import tone_clip
from tests.e2e.conftest import serve

pytestmark = pytest.mark.e2e

CHARTS = ".result[data-charts='drawn'] .js-plotly-plot"


def test_record_a_word_shows_it_with_three_charts(page, live_server, artifacts):
    page.goto(live_server + "/")
    page.screenshot(path=artifacts / "listen.png", full_page=True)
    page.click("#record-button")
    page.wait_for_selector(".result[data-state='done']", timeout=20_000)
    card = page.locator(".result").first
    assert card.locator(".result-word").inner_text() == "yes"
    assert "%" in card.locator(".result-confidence").inner_text()
    page.wait_for_selector(".result[data-charts='drawn']", timeout=20_000)
    assert card.locator(".js-plotly-plot").count() == 3
    assert card.locator(".js-plotly-plot .main-svg").count() >= 3     # Plotly drew them
    assert card.locator(".chart-spectrogram .hm, .chart-spectrogram image").count() >= 1
    assert card.locator("audio").get_attribute("src").startswith("blob:")
    assert "Heard: yes" in page.inner_text("#record-status")
    page.screenshot(path=artifacts / "listen-result.png", full_page=True)
    assert page.js_errors == []


def test_recording_uses_a_raw_native_rate_microphone(page, live_server):
    """No echo cancellation, noise suppression or auto gain; the WAV header has the true rate."""
    page.goto(live_server + "/")
    seen = page.evaluate("""async () => {
        const stream = await navigator.mediaDevices.getUserMedia({audio: {
            channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
        const s = stream.getAudioTracks()[0].getSettings();
        stream.getTracks().forEach(t => t.stop());
        const ctx = new AudioContext();
        const rate = ctx.sampleRate; ctx.close();
        const wav = new DataView(await Hark.encodeWav(new Float32Array(10), rate).arrayBuffer());
        return {ec: s.echoCancellation, ns: s.noiseSuppression, agc: s.autoGainControl,
                rate, header: wav.getUint32(24, true)};
    }""")
    assert seen["ec"] is False and seen["ns"] is False and seen["agc"] is False
    assert seen["header"] == seen["rate"]
    source = page.evaluate("fetch(document.getElementById('listen').dataset.workletUrl).then(r => r.text())")
    assert "AudioWorkletProcessor" in source
    mic_js = page.evaluate("() => Hark.Mic.toString()")
    assert "echoCancellation: false" in mic_js and "ScriptProcessor" not in mic_js


def test_upload_of_several_files_shows_one_card_each(page, live_server, artifacts, tmp_path):
    rng = np.random.default_rng(5)
    files = []
    for name, freq, rate, fmt in [("yes.wav", 1500, 16000, "WAV"), ("go.flac", 700, 22050, "FLAC"),
                                  ("down.ogg", 300, 44100, "OGG"), ("quiet.wav", None, 16000, "WAV")]:
        path = tmp_path / name
        sf.write(path, tone_clip(freq, rng, rate=rate), rate, format=fmt)
        files.append(path)
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    files.append(bad)

    page.goto(live_server + "/upload")
    page.screenshot(path=artifacts / "upload.png", full_page=True)
    page.set_input_files("#file-input", [str(f) for f in files])
    page.wait_for_function("() => document.querySelectorAll('.result').length === 5 && "
                           "!document.querySelector('.result[data-state=\"pending\"]')", timeout=30_000)
    page.wait_for_function(f"() => document.querySelectorAll(\"{CHARTS}\").length === 12", timeout=30_000)
    cards = page.locator(".result")
    assert cards.count() == len(files)
    titles = {cards.nth(i).locator(".result-meta").inner_text().split(" · ")[0]: cards.nth(i)
              for i in range(cards.count())}
    assert set(titles) == {f.name for f in files}
    assert titles["yes.wav"].locator(".result-word").inner_text() == "yes"
    assert titles["notes.wav"].get_attribute("data-state") == "error"
    assert "unsupported file type" in titles["notes.wav"].inner_text()
    assert "5 files classified" in page.inner_text("#upload-status")
    page.screenshot(path=artifacts / "upload-results.png", full_page=True)


def test_live_mode_reports_a_word(page, live_server, artifacts):
    page.goto(live_server + "/")
    page.click("#mode-live")
    page.click("#live-button")
    page.wait_for_function("() => document.getElementById('live-word').textContent === 'yes'", timeout=20_000)
    assert page.locator("#live-bars li").count() == 4
    assert page.get_attribute("#live-button", "aria-pressed") == "true"
    page.wait_for_timeout(400)   # let the bars finish their transition
    page.screenshot(path=artifacts / "live.png", full_page=True)
    page.click("#live-button")
    assert page.get_attribute("#live-button", "aria-pressed") == "false"
    assert page.js_errors == []


def test_training_page_and_phone_layout(phone, live_server, artifacts):
    phone.goto(live_server + "/training")
    assert "Training status" in phone.inner_text("main")
    phone.screenshot(path=artifacts / "training-phone.png", full_page=True)
    phone.goto(live_server + "/")
    box = phone.locator("#record-button").bounding_box()
    assert box["width"] >= 120 and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390   # no sideways scrolling
    phone.tap("#record-button")
    phone.wait_for_selector(".result[data-charts='drawn']", timeout=20_000)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=artifacts / "listen-phone.png", full_page=True)
    phone.goto(live_server + "/upload")
    phone.screenshot(path=artifacts / "upload-phone.png", full_page=True)
    assert phone.js_errors == []


def test_no_model_page_switches_on_when_a_model_appears(page, tiny_run, tmp_path, artifacts):
    """No model: a plain notice instead of the recorder, until the active pointer names one."""
    pointer = tmp_path / "active"
    url, stop = serve({"HARK_MODEL": str(pointer), "HARK_MODEL_CHECK_S": 0.2})
    try:
        page.goto(url + "/")
        assert "No model yet" in page.inner_text("main")
        assert page.locator("#record-button").count() == 0
        page.screenshot(path=artifacts / "no-model.png", full_page=True)
        pointer.write_text(str(tiny_run))
        page.wait_for_selector("#record-button", timeout=15_000)   # the page polls /api/health
        assert tiny_run.name in page.inner_text("footer")
    finally:
        stop()


def test_drag_and_drop_upload(page, live_server):
    page.goto(live_server + "/upload")
    clip = io.BytesIO()
    sf.write(clip, tone_clip(1500, np.random.default_rng(1)), 16000, format="WAV")
    data = list(clip.getvalue())
    transfer = page.evaluate_handle("""(bytes) => {
        const dt = new DataTransfer();
        for (const name of ['first.wav', 'second.wav'])
            dt.items.add(new File([new Uint8Array(bytes)], name, {type: 'audio/wav'}));
        return dt;
    }""", data)
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    page.wait_for_function(f"() => document.querySelectorAll(\"{CHARTS}\").length === 6", timeout=30_000)
    names = page.locator(".result .result-meta").all_inner_texts()
    assert [n.split(" · ")[0] for n in names] == ["first.wav", "second.wav"]   # in the order given
    assert page.locator(".result .result-word").all_inner_texts() == ["yes", "yes"]
    assert page.js_errors == []
