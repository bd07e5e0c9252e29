"""Continuous listening (ml/detect.py): the decisions on made-up probabilities, the detector
on real audio through the tone model, the `detect` command and POST /api/detect."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from ml.audio import SAMPLE_RATE
from ml.cli import main as cli
from ml.config import SILENCE, UNKNOWN
from ml.detect import (
    Decider,
    Detector,
    DetectorConfig,
    DetectorError,
    StreamState,
    cuts_word,
    frame_energy,
    window_energy,
)
from ml.synth.tones import TONES
from tests.helpers import with_detector

LABELS = [SILENCE, UNKNOWN, "go", "up", "yes"]
HOP = 0.1
SMOOTH = DetectorConfig().smooth


def probs(*segments):
    """Rows of probabilities from (label, p, windows) segments; the rest of each row is silence
    (or shared by `_unknown_` and silence when the label is a command)."""
    rows = []
    for label, p, n in segments:
        row = np.zeros(len(LABELS))
        row[LABELS.index(label)] = p
        row[LABELS.index(SILENCE if label != SILENCE else UNKNOWN)] += 1 - p
        rows += [row] * n
    return np.array(rows)


def decide(rows, config=None, cut=None, served=1.0, labels=LABELS):
    """Detections of a whole sequence of windows, one per hop from t = 0.5 s."""
    decider, state = Decider(labels, config or DetectorConfig(), served), StreamState()
    times = 0.5 + HOP * np.arange(len(rows))
    return decider.rows(state, times, rows, cut) + decider.end_segment(state)


def said(found):
    return [d.label for d in found]


# ---- decisions on made-up probabilities ----------------------------------------------------

def test_one_word_is_one_detection_at_the_centre_of_its_windows():
    found = decide(probs((SILENCE, 0.99, 10), ("go", 0.95, 7), (SILENCE, 0.99, 10)))
    assert said(found) == ["go"]
    assert found[0].time_s == pytest.approx(0.5 + HOP * 13, abs=0.02)   # windows 10..16
    assert found[0].confidence == pytest.approx(0.95)
    assert found[0].to_dict() == {"label": "go", "time_s": round(found[0].time_s, 3),
                                  "confidence": 0.95}


def test_silence_and_other_words_are_not_detected():
    assert decide(probs((SILENCE, 0.99, 40))) == []
    assert decide(probs((SILENCE, 0.99, 10), (UNKNOWN, 0.97, 8), (SILENCE, 0.99, 10))) == []


def test_the_end_of_a_word_heard_as_another_word_is_not_a_detection():
    """The issue's "go" then "up": the window sliding off the end of "go" hears "up"."""
    rows = probs((SILENCE, 0.99, 10), ("go", 0.97, 6), ("up", 0.98, 3), (SILENCE, 0.99, 10))
    assert said(decide(rows)) == ["go"]
    glimpse = probs((SILENCE, 0.99, 10), ("go", 0.97, 6), ("up", 0.98, 1), (SILENCE, 0.99, 10))
    assert said(decide(glimpse, DetectorConfig(smooth=1))) == ["go"]    # shorter than min_windows


def test_a_stronger_word_wins_over_a_weaker_one_before_it():
    rows = probs((SILENCE, 0.99, 10), ("up", 0.9, 3), ("go", 0.99, 7), (SILENCE, 0.99, 10))
    assert said(decide(rows)) == ["go"]


def test_a_repeated_word_is_detected_each_time_and_only_once_each():
    word = [("go", 0.97, 6), (SILENCE, 0.99, 12)]
    found = decide(probs((SILENCE, 0.99, 5), *word * 4))
    assert said(found) == ["go"] * 4
    assert np.all(np.diff([d.time_s for d in found]) > 1.5)
    # a dip inside one word does not make it two
    dip = probs((SILENCE, 0.99, 10), ("go", 0.97, 4), (UNKNOWN, 0.6, 1), ("go", 0.97, 4),
                (SILENCE, 0.99, 10))
    assert said(decide(dip, DetectorConfig(smooth=1))) == ["go"]


def test_two_different_words_in_a_row_are_both_heard():
    rows = probs((SILENCE, 0.99, 5), ("yes", 0.97, 6), (SILENCE, 0.99, 9), ("up", 0.96, 6),
                 (SILENCE, 0.99, 10))
    assert said(decide(rows)) == ["yes", "up"]


def test_smoothing_ignores_a_one_window_spike():
    rows = probs((SILENCE, 0.99, 10), ("yes", 0.99, 1), (SILENCE, 0.99, 10))
    assert decide(rows, DetectorConfig(smooth=3, min_windows=1)) == []
    assert said(decide(rows, DetectorConfig(smooth=1, min_windows=1))) == ["yes"]


def test_thresholds_per_label():
    rows = probs((SILENCE, 0.99, 5), ("yes", 0.9, 6), (SILENCE, 0.99, 12), ("up", 0.9, 6),
                 (SILENCE, 0.99, 10))
    assert said(decide(rows)) == ["yes", "up"]
    assert said(decide(rows, DetectorConfig(thresholds={"yes": 0.95}))) == ["up"]
    assert decide(rows, DetectorConfig(threshold=0.95)) == []


def test_unknown_weight_undoes_the_served_weight():
    """A run serving `_unknown_` at weight 0.05 makes "up" 0.9 of a word it hears as unknown;
    the detector's own weight 1 gives `_unknown_` its full say again."""
    row = np.array([0.0, 0.05 * 0.9, 0.0, 0.1, 0.0])
    row /= row.sum()                               # up 0.69, _unknown_ 0.31 as served
    rows = np.vstack([probs((SILENCE, 0.99, 5)), [row] * 8, probs((SILENCE, 0.99, 5))])
    assert said(decide(rows, DetectorConfig(threshold=0.6), served=0.05)) == ["up"]
    assert decide(rows, DetectorConfig(threshold=0.6, unknown_weight=1.0), served=0.05) == []


def test_windows_that_cut_a_word_start_no_detection():
    rows = probs((SILENCE, 0.99, 10), ("go", 0.97, 6), (SILENCE, 0.99, 10))
    cut = np.zeros(len(rows), bool)
    cut[10:16] = True
    assert decide(rows, cut=cut) == []
    cut[12:14] = False
    assert said(decide(rows, cut=cut)) == ["go"]


def test_cuts_word_reads_loudness_at_the_window_edges():
    quiet = np.full(100, 1e-4)
    centred, at_start, at_end = quiet.copy(), quiet.copy(), quiet.copy()
    centred[40:60] = 0.1
    at_start[0:20] = 0.1
    at_end[90:100] = 0.1
    flags = cuts_word(np.array([centred, at_start, at_end, quiet]), DetectorConfig())
    assert flags[:3].tolist() == [False, True, True]
    assert not cuts_word(np.array([at_start]), DetectorConfig(edge_ratio=0)).any()
    clips = np.zeros((2, SAMPLE_RATE), np.float32)
    clips[0, :1600] = 0.5                                  # a sound in the first 100 ms
    clips[1, 7000:9000] = 0.5                              # a sound in the middle
    assert cuts_word(frame_energy(clips), DetectorConfig()).tolist() == [True, False]


def test_window_energy_slices_the_frames_of_the_whole_span():
    """The detector's loudness of each window, from the span's frames computed once: each
    window's own frame_energy, to the bit."""
    span = np.random.default_rng(4).normal(0, 0.1, 3 * SAMPLE_RATE + 77).astype(np.float32)
    starts = np.arange(0, 2 * SAMPLE_RATE, 800) + 160
    windows = np.lib.stride_tricks.sliding_window_view(span, SAMPLE_RATE)[starts]
    assert np.array_equal(window_energy(span, starts), frame_energy(windows))


def test_a_stream_fed_in_pieces_with_its_state_through_json_decides_the_same():
    rows = probs((SILENCE, 0.99, 5), ("go", 0.97, 6), ("up", 0.98, 2), (SILENCE, 0.99, 9),
                 ("yes", 0.91, 7), (SILENCE, 0.99, 8), ("yes", 0.95, 7), (SILENCE, 0.99, 3))
    times = 0.5 + HOP * np.arange(len(rows))
    whole = decide(rows)
    decider, state, found = Decider(LABELS), StreamState(), []
    rng = np.random.default_rng(0)
    i = 0
    while i < len(rows):
        n = int(rng.integers(1, 4))
        found += decider.rows(state, times[i:i + n], rows[i:i + n])
        state = StreamState.from_dict(json.loads(json.dumps(state.to_dict())), len(LABELS), SMOOTH)
        i += n
    found += decider.end_segment(state)
    assert [d.to_dict() for d in found] == [d.to_dict() for d in whole]
    assert said(whole) == ["go", "yes", "yes"]


@pytest.mark.parametrize("bad", [
    "not a dict", {"v": 99}, {"v": 1, "next_sample": 0, "raw": [[0.5, [0.1] * 3, False]], "fresh": 1,
                              "run": None, "candidates": [], "last_time": None, "now": 0, "windows": 1},
    {"v": 1, "next_sample": 0, "raw": [[float("nan"), [0.2] * 5, False]], "fresh": 1, "run": None,
     "candidates": [], "last_time": None, "now": 0, "windows": 1},
    {"v": 1, "next_sample": -10 ** 6, "raw": [], "fresh": 0, "run": None, "candidates": [],
     "last_time": None, "now": 0, "windows": 0},
    {"v": 1, "next_sample": 0, "raw": [], "fresh": 0, "candidates": [], "now": 0, "windows": 0},
])
def test_a_bad_stream_state_is_refused_by_name(bad):
    with pytest.raises(DetectorError, match="bad stream state"):
        StreamState.from_dict(bad, len(LABELS), SMOOTH)


def forged_state(**change) -> dict:
    """A well-formed state of LABELS with some fields changed."""
    run = {"label": 2, "n": 3, "area": 2.4, "moment": 2.4 * 1.5, "peak": 0.9, "end": 1.6}
    state = {"v": 1, "next_sample": 32_000, "raw": [[1.5, [0.1, 0.1, 0.6, 0.1, 0.1], False]], "fresh": 1,
             "run": run, "candidates": [dict(run)], "last_time": 0.5, "now": 1.5, "windows": 20}
    for key, value in change.items():
        if key.startswith("run_"):
            state["run"] = {**state["run"], key[4:]: value}
        elif key.startswith("candidate_"):
            state["candidates"] = [{**state["candidates"][0], key[10:]: value}]
        else:
            state[key] = value
    return state


@pytest.mark.parametrize("change", [
    {"raw": [[1.5, [1e308] * 5, False]]}, {"raw": [[1.5, [-0.5, 0.5, 0.5, 0.25, 0.25], False]]},
    {"raw": [[1e308, [0.2] * 5, False]]}, {"now": 1e308}, {"now": -1e308}, {"last_time": 1e308},
    {"run_area": 1e-300, "run_moment": 1e300}, {"candidate_area": 1e-300, "candidate_moment": 1e300},
    {"run_peak": 1e308}, {"candidate_peak": 2.0}, {"run_end": -1e308}, {"run_area": 1e300},
    {"run_n": 10 ** 300}, {"windows": 10 ** 300}, {"next_sample": 2 ** 52},
    {"next_sample": int(StreamState.MAX_SECONDS * SAMPLE_RATE) + 1}])
def test_every_number_of_a_stream_state_is_bounded(change):
    assert StreamState.from_dict(forged_state(), len(LABELS), SMOOTH).run.time == 1.5
    with pytest.raises(DetectorError, match="bad stream state"):
        StreamState.from_dict(forged_state(**change), len(LABELS), SMOOTH)


def test_settings_are_checked_and_a_run_can_carry_its_own():
    assert DetectorConfig.for_run({"detector": {"threshold": 0.7}}).threshold == 0.7
    assert DetectorConfig.for_run({"detector": {"threshold": 0.7}}, {"threshold": 0.6}).threshold == 0.6
    assert DetectorConfig.for_run({}) == DetectorConfig()
    for bad, match in [({"hop_s": 0.2}, "hop_s"), ({"hop_s": 0.025}, "hop_s"), ({"smooth": 4}, "smooth"),
                       ({"threshold": 0}, "threshold"), ({"thresholds": {"go": 2}}, "thresholds"),
                       ({"min_windows": 0}, "min_windows"), ({"unknown_weight": -1}, "unknown_weight"),
                       ({"refractory_s": "1"}, "refractory_s"), ({"volume": 11}, "unknown detector setting")]:
        with pytest.raises(DetectorError, match=match):
            DetectorConfig.from_dict(bad)
    with pytest.raises(DetectorError, match="'detector' must be an object"):
        DetectorConfig.for_run({"detector": [1]})


# ---- real audio through the tone model -----------------------------------------------------

WORDS = ["yes", "go", "down", "yes"]


def tone_recording(words=WORDS, rate=SAMPLE_RATE, gap_s=1.4, seed=0):
    """Room noise with a 0.4 s tone burst per word, `gap_s` apart; (wave, burst centres)."""
    rng = np.random.default_rng(seed)
    n = int((1.0 + gap_s * len(words) + 1.0) * rate)
    t = np.arange(n) / rate
    wave = rng.normal(0, 0.01, n)
    centres = []
    for i, word in enumerate(words):
        centre = 1.0 + gap_s * i + 0.2
        burst = (t > centre - 0.2) & (t < centre + 0.2)
        wave += burst * 0.5 * np.sin(2 * np.pi * TONES[word] * rng.uniform(0.98, 1.02) * t)
        centres.append(centre)
    return wave.astype(np.float32), centres


@pytest.fixture(scope="module")
def tone_run(tiny_run, tmp_path_factory):
    """The tone model, three epochs old, is less sure than a real one and sure of a tone only
    near a window's centre (two or three windows at a 0.1 s hop): its run says so."""
    return with_detector(tiny_run, tmp_path_factory.mktemp("tone") / "tone-detect", threshold=0.6,
                         smooth=3)


@pytest.fixture(scope="module")
def detector(tone_run):
    from ml.classifier import Classifier

    return Detector(Classifier(tone_run))


def test_the_tone_model_hears_every_word_in_order_at_its_time(detector):
    wave, centres = tone_recording()
    found = detector.detect(wave)
    assert said(found) == WORDS
    assert np.abs(np.array([d.time_s for d in found]) - centres).max() < 0.3
    assert all(0.5 < d.confidence <= 1 for d in found)
    assert detector.detect(np.zeros(3 * SAMPLE_RATE, np.float32) + 0.001) == []


def test_other_rates_and_short_clips(detector):
    wave, _ = tone_recording()
    import soxr

    assert said(detector.detect(soxr.resample(wave, SAMPLE_RATE, 44_100), 44_100)) == WORDS
    one, _ = tone_recording(["go"], gap_s=0.0)
    assert said(detector.detect(one[int(0.7 * SAMPLE_RATE):int(1.6 * SAMPLE_RATE)])) == ["go"]


def test_a_stream_in_chunks_finds_what_the_whole_recording_does(detector):
    wave, _ = tone_recording()
    whole = [d.to_dict() for d in detector.detect(wave)]
    state, found, pos = StreamState(), [], 0
    rng = np.random.default_rng(1)
    while pos < len(wave):
        n = int(rng.integers(800, 9000))
        found += detector.feed(state, wave[pos:pos + n])
        pos += n
    found += detector.finish(state)
    assert [d.to_dict() for d in found] == whole
    # a caller that keeps the audio: resend from held_from, state through JSON
    state, found, end = StreamState(), [], 0
    while end < len(wave):
        end = min(end + 3200, len(wave))
        start = max(detector.held_from(state), 0)
        found += detector.feed(state, wave[start:end], start)
        state = StreamState.from_dict(json.loads(json.dumps(state.to_dict())), 4, SMOOTH)
    assert [d.to_dict() for d in found + detector.finish(state)] == whole


class _Recorder:
    """A real classifier that keeps every window's probabilities it was asked for."""

    def __init__(self, classifier):
        self.classifier, self.rows = classifier, []
        self.labels, self.config, self.context = classifier.labels, classifier.config, classifier.context

    def predict_windows(self, audio, starts, offset=0):
        probs = self.classifier.predict_windows(audio, starts, offset)
        self.rows += list(probs)
        return probs


def test_a_model_that_hears_context_streams_in_chunks_as_it_reads_a_whole_recording():
    """The shipped ensemble (its embedding heads hear half a second around each window): a
    caller resending from held_from in 0.2 s chunks, its state through JSON, gets every
    window the whole recording gets, heard the same."""
    from ml.classifier import Classifier
    from tests.helpers import ROOT

    shipped = Classifier(ROOT / "models" / "default")
    wave, _ = tone_recording(["yes", "down"], gap_s=1.0)
    whole = _Recorder(shipped)
    Detector(whole).detect(wave)
    chunked = _Recorder(shipped)
    detector, state, end = Detector(chunked), StreamState(), 0
    assert detector.context == 8000
    while end < len(wave):
        end = min(end + 3200, len(wave))
        start = max(detector.held_from(state), 0)
        detector.feed(state, wave[start:end], start)
        if end < len(wave):     # (the audio still held goes with the last state: finish needs it)
            state = StreamState.from_dict(json.loads(json.dumps(state.to_dict())), len(shipped.labels),
                                          detector.config.smooth)
    detector.finish(state)
    assert len(chunked.rows) == len(whole.rows) == round((len(wave) / SAMPLE_RATE + 0.6 - 1) / 0.05) + 1
    # heard the same up to the scale the int8 embedding weights quantise a span's activations
    # with (its largest value: a chunk's span is not the whole recording's): 0.03 measured
    assert np.allclose(chunked.rows, whole.rows, atol=0.05)


def test_a_gap_in_a_stream_is_skipped_over(detector):
    wave, centres = tone_recording(["yes", "down"], gap_s=4.0)
    state = StreamState()
    found = detector.feed(state, wave[:int(2.5 * SAMPLE_RATE)], 0)
    later = int(4.0 * SAMPLE_RATE)
    found += detector.feed(state, wave[later:], later) + detector.finish(state)
    assert said(found) == ["yes", "down"]
    assert abs(found[1].time_s - centres[1]) < 0.3
    with pytest.raises(DetectorError):
        detector.feed(StreamState(), wave, -1)


# ---- the command line ----------------------------------------------------------------------

def test_cli_detect_json_and_text(tone_run, tmp_path, capsys):
    wave, _ = tone_recording()
    sf.write(tmp_path / "long.wav", wave, SAMPLE_RATE, subtype="PCM_16")
    (tmp_path / "notes.wav").write_text("not audio")
    assert cli(["detect", "--model", str(tone_run), str(tmp_path / "long.wav"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [d["label"] for d in out[0]["detections"]] == WORDS
    assert set(out[0]["detections"][0]) == {"label", "time_s", "confidence"}
    assert out[0]["duration_s"] == pytest.approx(len(wave) / SAMPLE_RATE, abs=1e-3)
    assert cli(["detect", "--model", str(tone_run), str(tmp_path / "long.wav"),
                str(tmp_path / "notes.wav")]) == 1
    captured = capsys.readouterr()
    assert "long.wav (7.6 s): 4 commands" in captured.out
    assert "notes.wav: not a readable audio file" in captured.err
    assert cli(["detect", "--model", str(tmp_path), "x.wav"]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_cli_detect_refuses_a_bad_detector_section(tiny_run, tmp_path, capsys):
    run = with_detector(tiny_run, tmp_path / "run", hop_s=3)
    assert cli(["detect", "--model", str(run), "x.wav"]) == 2
    assert "detector setting hop_s" in capsys.readouterr().err


# ---- POST /api/detect ----------------------------------------------------------------------

def wav_bytes(wave, rate=SAMPLE_RATE):
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(app_factory, tone_run):
    return app_factory(HARK_MODEL=str(tone_run)).test_client()


def post(client, data, **fields):
    return client.post("/api/detect", data={"file": (io.BytesIO(data), "long.wav"), **fields},
                       content_type="multipart/form-data")


def test_api_detect_answers_detections_and_a_timeline(client, tone_run):
    wave, _ = tone_recording()
    r = post(client, wav_bytes(wave))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert [d["label"] for d in body["detections"]] == WORDS
    assert body["model"] == tone_run.name and body["duration_s"] == pytest.approx(7.6, abs=1e-3)
    figure = body["figure"]
    assert len(figure["layout"]["shapes"]) == len(WORDS)
    assert [a["text"].split("</b>")[0].removeprefix("<b>") for a in figure["layout"]["annotations"]] == WORDS
    assert figure["data"][1]["x"] == [d["time_s"] for d in body["detections"]]
    assert set(body["timing_ms"]) == {"decode", "detect", "total"}
    raw = client.post("/api/detect", data=wav_bytes(wave), content_type="audio/wav")
    assert raw.status_code == 200 and raw.get_json()["detections"] == body["detections"]


def test_api_detect_refuses_what_predict_refuses(app_factory, client, tone_run, limiter_clock):
    assert post(client, b"not audio at all").status_code == 415
    assert client.post("/api/detect", data=b"", content_type="audio/wav").status_code == 400
    short = app_factory(HARK_MODEL=str(tone_run), HARK_MAX_DETECT_SECONDS=5.0).test_client()
    wave, _ = tone_recording()
    r = post(short, wav_bytes(wave))
    assert r.status_code == 400 and "longer than 5 s" in r.get_json()["error"]
    assert r.get_json()["code"] == "too_long"
    limited = app_factory(HARK_MODEL=str(tone_run), HARK_RATE_PREDICT="1/minute").test_client()
    assert post(limited, wav_bytes(wave[:SAMPLE_RATE])).status_code == 200
    assert post(limited, wav_bytes(wave[:SAMPLE_RATE])).status_code == 429


def test_api_detect_stream_of_chunks_finds_what_the_file_does(client):
    """Live mode's protocol: state and next_s come back; the chunk from next_s goes out."""
    wave, _ = tone_recording()
    whole = post(client, wav_bytes(wave)).get_json()["detections"]
    audio = np.repeat(wave, 3)          # the page sends its microphone's own rate, 48 kHz
    rate = 3 * SAMPLE_RATE
    state, next_s, found, heard, end = "new", 0.0, [], 0, 0
    while end < len(audio):
        end = min(end + rate // 5, len(audio))       # five chunks a second
        start = round(next_s * rate)
        if end - start < rate:
            continue
        r = post(client, wav_bytes(audio[start:end], rate), stream=state, start_s=str(start / rate))
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert "figure" not in body
        state, next_s = json.dumps(body["state"]), body["next_s"]
        found += body["detections"]
        heard += body["probabilities"] is not None
    assert [d["label"] for d in found] == [d["label"] for d in whole][:len(found)]
    assert len(found) >= len(WORDS) - 1      # the last word is decided once the stream goes on
    assert heard > 10


def test_api_detect_stream_state_is_checked(client, tone_run):
    wave, _ = tone_recording(["yes"])
    data = wav_bytes(wave)
    assert post(client, data, stream="{not json").status_code == 400
    r = post(client, data, stream=json.dumps({"v": 1, "model": tone_run.name}))
    assert r.status_code == 400 and "bad stream state" in r.get_json()["error"]
    assert post(client, data, stream="x" * 70_000).status_code == 400
    assert post(client, data, stream="new", start_s="soon").status_code == 400
    assert post(client, data, stream="new", start_s="-1").status_code == 400
    # a state of another model (the active one changed) starts the stream again
    other = json.dumps({"v": 1, "model": "some-other-run"})
    assert post(client, data, stream=other).status_code == 200


def test_api_detect_answers_strict_json_and_refuses_forged_numbers(client, tone_run):
    """A forged state gave `Infinity` (not JSON) and accepted a next_sample whose next_s the
    next request's start_s then refused: every number is bounded, so a state is refused at once."""
    data = wav_bytes(tone_recording(["yes"])[0])
    labels = client.get("/api/health").get_json()["labels"]

    def strict(response):
        return json.loads(response.get_data(as_text=True), parse_constant=lambda c: pytest.fail(c))

    for change in ({"raw": [[t, [1e308] * len(labels), False] for t in (1.5, 1.6, 1.7)], "fresh": 3,
                    "run": None, "candidates": []},
                   {"next_sample": 2 ** 52}, {"run_area": 1e-300, "run_moment": 1e300}):
        state = {**forged_state(**change), "model": tone_run.name}
        r = post(client, data, stream=json.dumps(state))
        assert r.status_code == 400 and "bad stream state" in strict(r)["error"], (change, r.status_code)
    # the largest next_sample a state may carry gives a next_s the server takes as start_s
    top = {**forged_state(next_sample=int(StreamState.MAX_SECONDS * SAMPLE_RATE), raw=[], fresh=0, run=None,
                          candidates=[], last_time=None, windows=0), "model": tone_run.name}
    r = post(client, data, stream=json.dumps(top), start_s=str(StreamState.MAX_SECONDS))
    assert r.status_code == 200 and strict(r)["next_s"] > 0, r.get_json()


def test_pages_carry_the_detect_url_and_the_words_list(client):
    listen = client.get("/").get_data(as_text=True)
    assert 'data-detect-url="/api/detect"' in listen and 'id="live-words"' in listen
    assert 'data-detect-url="/api/detect"' in client.get("/upload").get_data(as_text=True)


def test_a_recording_of_minutes_goes_through_the_detector_not_the_single_clip_routes(
        app_factory, tone_run):
    """The Upload page sends a file /api/analyze refuses as too long to /api/detect, which takes
    recordings up to HARK_MAX_DETECT_SECONDS (10 minutes) and bodies up to its own limit."""
    client = app_factory(HARK_MODEL=str(tone_run), MAX_CONTENT_LENGTH=1024 * 1024).test_client()
    wave, _ = tone_recording()
    minutes = np.concatenate([wave] * 16)            # 2 min 2 s, 3.9 MB: past the 1 MB limit
    data = wav_bytes(minutes)
    forty = wav_bytes(minutes[:40 * SAMPLE_RATE:2], SAMPLE_RATE // 2)   # 40 s, 640 KB
    single = client.post("/api/analyze", data={"file": (io.BytesIO(forty), "long.wav")},
                         content_type="multipart/form-data")
    assert single.status_code == 400 and single.get_json()["code"] == "too_long"
    assert client.post("/api/predict", data=data, content_type="audio/wav").status_code == 413
    r = post(client, data)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["duration_s"] == pytest.approx(len(minutes) / SAMPLE_RATE, abs=1e-3)
    assert [d["label"] for d in body["detections"]] == WORDS * 16
    chunk = post(client, data, stream="new")          # a live chunk keeps the short limit
    assert chunk.status_code == 400 and chunk.get_json()["code"] == "too_long"
    page = client.get("/upload").get_data(as_text=True)
    assert "a recording up to 10 min (64 MB)" in page
