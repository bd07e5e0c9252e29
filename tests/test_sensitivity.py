"""The detector's sensitivity presets (ml/detect.py): chosen per run, picked by `python -m ml
detect --sensitivity`, `POST /api/detect`'s `sensitivity` field and the pages' choice, with
an expert's `--threshold` over them."""
from __future__ import annotations

import json

import pytest
import soundfile as sf

from ml.audio import SAMPLE_RATE
from ml.cli import main as cli
from ml.detect import DetectorConfig, DetectorError, presets
from tests.helpers import with_detector
from tests.test_detect import WORDS, post, tone_recording, wav_bytes

MEASURED = {"noise on": {"hits": 0.91, "wrong": 0.01, "commands": 256},
            "noise off": {"hits": 0.95, "wrong": 0.01, "commands": 256},
            "false_alarms_per_hour": {"speech": 3.2, "music": 1.0, "noise": 0.0}, "on": "test part"}
# low hears nothing (no tone lasts 50 windows), high and medium every word
SECTION = {"threshold": 0.6, "smooth": 3,
           "sensitivity": {"low": {"threshold": 0.999, "min_windows": 50, "measured": MEASURED},
                           "medium": {"measured": MEASURED}, "high": {"threshold": 0.4}}}


def test_a_preset_applies_its_settings_over_the_run_s_and_an_expert_threshold_over_both():
    run = {"detector": SECTION}
    assert DetectorConfig.for_run(run).threshold == 0.6                       # medium by default
    assert DetectorConfig.for_run(run, sensitivity="low").threshold == 0.999
    assert DetectorConfig.for_run(run, sensitivity="high").threshold == 0.4
    assert DetectorConfig.for_run(run, {"threshold": 0.5}, sensitivity="low").threshold == 0.5
    assert DetectorConfig.for_run(run, sensitivity="low").smooth == 3         # the rest is the run's


def test_a_run_without_presets_moves_its_threshold_and_bad_presets_are_refused():
    assert presets({"threshold": 0.6}) == {"low": {"threshold": 0.8}, "medium": {},
                                           "high": {"threshold": 0.45}}
    assert DetectorConfig.for_run({}, sensitivity="low").threshold > DetectorConfig().threshold
    with pytest.raises(DetectorError, match="sensitivity must be one of low, medium, high"):
        DetectorConfig.for_run({}, sensitivity="loud")
    with pytest.raises(DetectorError, match="'sensitivity' must hold"):
        DetectorConfig.for_run({"detector": {"sensitivity": {"low": {}, "medium": {}}}})
    with pytest.raises(DetectorError, match="threshold"):
        DetectorConfig.for_run({"detector": {"sensitivity": {
            "low": {"threshold": 2}, "medium": {}, "high": {}}}}, sensitivity="low")


@pytest.fixture(scope="module")
def preset_run(tiny_run, tmp_path_factory):
    return with_detector(tiny_run, tmp_path_factory.mktemp("presets") / "run", **SECTION)


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "long.wav"
    sf.write(path, tone_recording()[0], SAMPLE_RATE, subtype="PCM_16")
    return path


def heard(capsys) -> tuple[list[str], str]:
    out = capsys.readouterr()
    return [d["label"] for d in json.loads(out.out)[0]["detections"]], out.err.strip().splitlines()[-1]


def test_cli_detect_takes_a_sensitivity_and_an_expert_threshold(preset_run, long_wav, capsys):
    args = ["detect", "--model", str(preset_run), str(long_wav), "--json"]
    assert cli(args) == 0 and heard(capsys) == (WORDS, "sensitivity medium, threshold 0.6")
    assert cli(args + ["--sensitivity", "low"]) == 0
    assert heard(capsys) == ([], "sensitivity low, threshold 0.999")
    assert cli(args + ["--sensitivity", "high"]) == 0
    assert heard(capsys) == (WORDS, "sensitivity high, threshold 0.4")
    assert cli(args + ["--sensitivity", "high", "--threshold", "0.55"]) == 0
    assert heard(capsys) == (WORDS, "sensitivity high, threshold 0.55")
    assert cli(args + ["--threshold", "1.5"]) == 2
    assert "detector setting threshold: must be in (0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(args + ["--sensitivity", "loud"])
    assert "invalid choice: 'loud'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def client(app_factory, preset_run):
    return app_factory(HARK_MODEL=str(preset_run)).test_client()


def test_api_detect_takes_the_sensitivity_as_a_form_field(client):
    data = wav_bytes(tone_recording()[0])
    body = post(client, data).get_json()
    assert body["sensitivity"] == "medium" and body["threshold"] == 0.6
    assert [d["label"] for d in body["detections"]] == WORDS
    low = post(client, data, sensitivity="low").get_json()
    assert low["sensitivity"] == "low" and low["threshold"] == 0.999 and low["detections"] == []
    assert post(client, data, sensitivity="High").get_json()["threshold"] == 0.4
    streamed = post(client, data, sensitivity="low", stream="new").get_json()
    assert streamed["sensitivity"] == "low" and streamed["detections"] == []
    r = post(client, data, sensitivity="loud")
    assert r.status_code == 400 and r.get_json()["error"] == "sensitivity must be one of low, medium, high"


def test_the_pages_offer_the_presets_and_say_what_they_measured(client):
    for page in ("/", "/upload"):
        html = client.get(page).get_data(as_text=True)
        assert "<select data-sensitivity>" in html
        assert html.count('<option value="') >= 3 and 'value="medium" data-about=' in html
        assert ("hears 91% of commands said over noise; false alarms an hour: about 3 in talk, "
                "1 in music, 0 in noise") in html
