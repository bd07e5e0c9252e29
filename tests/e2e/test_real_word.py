"""The shipped default model in real Chromium: a spoken "yes" on the microphone is heard as yes."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ml.audio import to_model_rate
from tests.e2e.conftest import launch, open_page, serve
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e


def spoken_yes(path):
    """'yes' said by the Piper voice that ships as a pip package, in a quiet room, at 48 kHz."""
    from ml.synth import engines

    piper = engines.get("piper")
    voice = piper.voices()[0]
    wave, rate = piper.synth(voice, "yes", piper.params(voice, np.random.default_rng(0)))
    word = to_model_rate(np.asarray(wave, np.float32), rate)
    word = 0.5 * word / np.abs(word).max()
    room = np.random.default_rng(1).normal(0, 0.002, 16000 * 3).astype(np.float32)
    room[16000:16000 + len(word)] += word[:32000]
    sf.write(path, np.repeat(room, 3), 48_000, subtype="PCM_16")  # 48 kHz as a laptop mic gives
    return path


def test_default_model_hears_a_spoken_yes(playwright, tmp_path, artifacts):
    chromium = launch(playwright, spoken_yes(tmp_path / "yes.wav"))
    url, stop = serve({"HARK_MODEL": str(ROOT / "models" / "default")})
    try:
        page = open_page(chromium)
        page.goto(url + "/")
        page.click("#record-button")
        page.wait_for_selector(".result[data-charts='drawn']", timeout=30_000)
        card = page.locator(".result").first
        assert card.locator(".result-word").inner_text() == "yes"
        assert card.locator(".js-plotly-plot").count() == 3
        page.screenshot(path=artifacts / "listen-default-model-yes.png", full_page=True)
        assert page.js_errors == []
    finally:
        chromium.close()
        stop()
