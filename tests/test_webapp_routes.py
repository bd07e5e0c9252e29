"""The web app through Flask's test client: every route, every error status."""
from __future__ import annotations

import io
import re
import shutil

import numpy as np
import pytest

from tests.helpers import audio_bytes
from webapp import figures
from webapp.classify.audio_input import sniff
from webapp.labels import verdict
from webapp.versions.model_store import ModelStore, NoModel


@pytest.fixture(scope="module")
def app(app_factory, tiny_run):
    return app_factory(HARK_MODEL=str(tiny_run))


@pytest.fixture(scope="module")
def no_model_client(app_factory, tmp_path_factory):
    return app_factory(HARK_MODEL=str(tmp_path_factory.mktemp("no-model"))).test_client()


def upload(client, data, name="clip.wav", url="/api/predict"):
    return client.post(url, data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


# ---- pages -----------------------------------------------------------------

@pytest.mark.parametrize("path, marker", [
    ("/", 'id="record-button"'), ("/upload", 'id="file-input"'), ("/training", "Training status")])
def test_pages_render_with_a_model(client, path, marker):
    r = client.get(path)
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert marker in html
    assert 'aria-current="page"' in html


@pytest.mark.parametrize("path", ["/", "/upload", "/training"])
def test_pages_have_no_inline_scripts_or_handlers(client, path):
    """A strict Content-Security-Policy (script-src 'self') must not break any page."""
    html = client.get(path).get_data(as_text=True)
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "inline script body"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert "javascript:" not in html


def test_listen_page_passes_settings_as_data_attributes(client, tiny_run):
    html = client.get("/").get_data(as_text=True)
    assert 'data-analyze-url="/api/analyze"' in html
    assert 'data-predict-url="/api/predict"' in html
    assert "&#34;_silence_&#34;: &#34;silence&#34;" in html   # display names, JSON in an attribute
    assert 'data-worklet-url="/static/js/recorder-worklet.js?v=' in html
    assert tiny_run.name in html


@pytest.mark.parametrize("path", ["/", "/upload", "/training"])
def test_pages_without_a_model_say_so_instead_of_recording(no_model_client, path):
    html = no_model_client.get(path).get_data(as_text=True)
    assert "No model yet" in html
    assert 'id="record-button"' not in html and 'id="file-input"' not in html
    assert "no-model.js" in html


def test_unknown_page_is_an_html_404(client):
    r = client.get("/no/such/page")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert "404" in r.get_data(as_text=True)


# ---- static files and Plotly ------------------------------------------------

def test_plotly_is_served_from_the_package_with_long_caching(client):
    html = client.get("/").get_data(as_text=True)
    url = re.search(r'data-plotly-url="([^"]+)"', html).group(1)
    r = client.get(url)
    assert r.status_code == 200 and r.mimetype == "text/javascript"
    assert "immutable" in r.headers["Cache-Control"] and "max-age=31536000" in r.headers["Cache-Control"]
    assert b"plotly.js v" in r.get_data()[:200]
    assert client.get("/vendor/plotly-0.0.0.min.js").status_code == 404


def test_static_assets_are_versioned_and_cacheable(client):
    html = client.get("/").get_data(as_text=True)
    css = re.search(r'href="(/static/css/hark\.css\?v=[0-9a-f]+)"', html).group(1)
    r = client.get(css)
    assert r.status_code == 200 and "max-age=31536000" in r.headers["Cache-Control"]


# ---- /api/health ------------------------------------------------------------

def test_health_reports_model_version_and_labels(client, tiny_run):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "ok" and body["model"] == tiny_run.name
    assert body["labels"] == ["_silence_", "down", "go", "yes"]
    assert body["display_names"]["_silence_"] == "silence"


def test_health_without_a_model_is_503(no_model_client):
    r = no_model_client.get("/api/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "no_model" and body["model"] is None and body["error"]


# ---- /api/predict -----------------------------------------------------------

def check_prediction(body, tiny_run):
    assert set(body) == {"label", "confidence", "probabilities", "model", "duration_s", "timing_ms"}
    assert body["model"] == tiny_run.name
    assert set(body["probabilities"]) == {"_silence_", "down", "go", "yes"}
    assert body["probabilities"][body["label"]] == pytest.approx(body["confidence"])
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(body["timing_ms"]) == {"decode", "features", "model", "total"}
    assert body["timing_ms"]["total"] >= body["timing_ms"]["model"] > 0


def test_predict_multipart(client, tiny_run):
    r = upload(client, audio_bytes(1500))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    check_prediction(body, tiny_run)
    assert body["label"] == "yes"
    assert body["duration_s"] == pytest.approx(1.0)


def test_predict_raw_body(client, tiny_run):
    r = client.post("/api/predict", data=audio_bytes(1500), content_type="audio/wav")
    assert r.status_code == 200
    check_prediction(r.get_json(), tiny_run)
    assert r.get_json()["label"] == "yes"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/octet-stream", None])
def test_predict_trusts_content_not_types(client, content_type):
    """`curl --data-binary @clip.wav` sends a form content type; the bytes still decide."""
    r = client.post("/api/predict", data=audio_bytes(1500), content_type=content_type)
    assert r.status_code == 200 and r.get_json()["label"] == "yes"


def test_predict_trusts_content_not_file_names(client):
    assert upload(client, audio_bytes(1500), name="clip.txt").status_code == 200


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_predict_flac_and_ogg(client, fmt, subtype):
    r = upload(client, audio_bytes(1500, fmt=fmt, subtype=subtype), name=f"clip.{fmt.lower()}")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["label"] == "yes"


def test_predict_resamples_other_rates_and_downmixes(client):
    r = upload(client, audio_bytes(1500, rate=44100, seconds=2.5, channels=2))
    assert r.status_code == 200
    body = r.get_json()
    assert body["duration_s"] == pytest.approx(2.5)
    assert body["label"] == "yes"


def test_predict_unreadable_audio_is_400(client):
    r = upload(client, b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(40), name="broken.wav")
    assert r.status_code == 400
    message = r.get_json()["error"]
    assert message.startswith("broken.wav: not a readable audio file") and "BytesIO" not in message


def test_predict_empty_body_is_400(client):
    r = client.post("/api/predict", data=b"", content_type="audio/wav")
    assert r.status_code == 400 and "empty" in r.get_json()["error"]


def test_predict_multipart_without_file_field_is_400(client):
    r = client.post("/api/predict", data={"audio": (io.BytesIO(audio_bytes()), "a.wav")},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and "'file'" in r.get_json()["error"]


def test_predict_too_long_audio_is_400(app_factory, app):
    small = app_factory(HARK_MODEL=app.config["HARK_MODEL"], HARK_MAX_SECONDS=2.0)
    r = upload(small.test_client(), audio_bytes(1500, seconds=3.0))
    assert r.status_code == 400 and "longer than 2 s" in r.get_json()["error"]


@pytest.mark.parametrize("data", [b"hello, this is text", b"ID3\x03\x00\x00\x00" + bytes(100),
                                  b"\x89PNG\r\n\x1a\n" + bytes(100)])
def test_predict_unsupported_type_is_415(client, data):
    r = upload(client, data, name="clip.wav")
    assert r.status_code == 415
    assert "WAV, FLAC or OGG" in r.get_json()["error"]


def test_predict_too_large_is_413(app_factory, app):
    small = app_factory(HARK_MODEL=app.config["HARK_MODEL"], MAX_CONTENT_LENGTH=64 * 1024)
    big = audio_bytes(1500, seconds=3.0)
    assert len(big) > 64 * 1024
    for r in (upload(small.test_client(), big),
              small.test_client().post("/api/predict", data=big, content_type="audio/wav")):
        assert r.status_code == 413 and r.mimetype == "application/json"
        assert "too large" in r.get_json()["error"]


def test_default_upload_limit_is_10_mb(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 10 * 1024 * 1024


def test_predict_without_a_model_is_503(no_model_client):
    r = upload(no_model_client, audio_bytes())
    assert r.status_code == 503 and "no model" in r.get_json()["error"]


def test_predict_wrong_method_is_405_json(client):
    r = client.get("/api/predict")
    assert r.status_code == 405 and r.get_json() == {"error": "method not allowed here"}
    assert "POST" in r.headers["Allow"]
    assert client.post("/api/health").status_code == 405


def test_unknown_api_path_is_404_json(client):
    r = client.get("/api/nothing")
    assert r.status_code == 404 and r.get_json() == {"error": "no such endpoint"}


def test_unexpected_failure_is_500_json(app_factory, tiny_run):
    app = app_factory(HARK_MODEL=str(tiny_run), TESTING=False)   # TESTING would re-raise

    class Broken:
        version = "broken"

        def classify(self, wave, rate):
            raise RuntimeError("boom")

    app.extensions["hark.models"].get = lambda: Broken()
    r = upload(app.test_client(), audio_bytes())
    assert r.status_code == 500 and r.get_json() == {"error": "internal server error"}


# ---- /api/analyze -----------------------------------------------------------

def test_analyze_adds_wording_and_three_compact_charts(client, tiny_run):
    r = upload(client, audio_bytes(1500, rate=16000, seconds=1.6), url="/api/analyze")
    assert r.status_code == 200
    body = r.get_json()
    assert body["label"] == "yes" and body["display_label"] == "yes"
    assert body["verdict"]["kind"] in {"word", "unsure"}
    assert 0 <= body["window_start_s"] <= 0.6
    figs = body["figures"]
    assert set(figs) == {"waveform", "spectrogram", "probabilities"}
    for fig in figs.values():
        assert set(fig) == {"data", "layout", "config"}
    assert len(figs["waveform"]["data"][0]["y"]) <= 2 * figures.WAVE_POINTS
    heat = figs["spectrogram"]["data"][0]
    assert len(heat["z"]) == len(heat["y"]) == 40 and len(heat["z"][0]) == len(heat["x"]) == 98
    assert max(heat["y"]) < 8000 and heat["x"][0] >= body["window_start_s"]   # Hz, s
    bars = figs["probabilities"]["data"][0]
    assert bars["y"][-1] == "yes" and "silence" in bars["y"]
    assert len(r.get_data()) < 80_000


def test_analyze_errors_match_predict(client, no_model_client):
    assert upload(client, b"not audio at all", url="/api/analyze").status_code == 415
    assert upload(no_model_client, audio_bytes(), url="/api/analyze").status_code == 503


# ---- pieces -----------------------------------------------------------------

def test_sniff_recognises_signatures_only():
    assert sniff(audio_bytes()) == "wav"
    assert sniff(audio_bytes(fmt="FLAC")) == "flac"
    assert sniff(audio_bytes(fmt="OGG", subtype="VORBIS")) == "ogg"
    assert sniff(b"RIFF\x00\x00\x00\x00AVI LIST") is None
    assert sniff(b"") is None


def test_verdict_says_plainly_what_a_result_is():
    assert verdict("_silence_", 0.9, 0.6)["kind"] == "silence"
    assert verdict("_unknown_", 0.9, 0.6)["text"].startswith("Not a command")
    unsure = verdict("yes", 0.4, 0.6)
    assert unsure["kind"] == "unsure" and "Not sure" in unsure["text"]
    assert verdict("yes", 0.9, 0.6) == {"kind": "word", "text": "Heard \u201cyes\u201d with 90% confidence."}


def test_waveform_is_decimated_but_keeps_its_peaks():
    wave = np.zeros(48_000 * 3, np.float32)
    wave[70_000] = 0.9
    fig = figures.waveform(wave, 48_000, window_start_s=1.0)
    trace = fig["data"][0]
    assert len(trace["y"]) == 2 * figures.WAVE_POINTS and max(trace["y"]) == pytest.approx(0.9)
    assert trace["dx"] * len(trace["y"]) == pytest.approx(3.0)
    assert fig["layout"]["shapes"][0]["x0"] == 1.0


def test_stft_spectrogram_is_log_scaled_for_display():
    times, freqs = np.linspace(0, 1, 124), np.arange(129) * 62.5
    fig = figures.spectrogram(times, freqs, np.full((124, 129), 10.0), "stft")
    assert fig["data"][0]["z"][0][0] == pytest.approx(20.0)   # 20 log10(10) dB


# ---- the model store --------------------------------------------------------

def test_store_loads_lazily_once_and_swaps_when_the_pointer_changes(tiny_run, tmp_path):
    other = tmp_path / "other-run"
    shutil.copytree(tiny_run, other)
    pointer = tmp_path / "active"
    pointer.write_text(str(tiny_run))
    loads = []
    store = ModelStore(pointer, check_s=0.0, loader=lambda run, threads: loads.append(run) or run.name)
    assert loads == []
    assert store.get() == tiny_run.name and store.get() == tiny_run.name
    assert len(loads) == 1
    pointer.write_text("other-run")                         # relative to the pointer's folder
    assert store.get() == "other-run" and len(loads) == 2


def test_store_checks_at_most_every_interval(tiny_run, tmp_path):
    pointer = tmp_path / "active"
    pointer.write_text(str(tiny_run))
    store = ModelStore(pointer, check_s=3600, loader=lambda run, threads: run.name)
    assert store.get() == tiny_run.name
    pointer.unlink()
    assert store.get() == tiny_run.name                    # not looked at again yet


def test_store_keeps_serving_when_a_new_model_fails_to_load(tiny_run, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_text("not a model")
    pointer = tmp_path / "active"
    pointer.write_text(str(tiny_run))

    def loader(run, threads):
        if run.name == "broken":
            raise ValueError("corrupt")
        return run.name

    store = ModelStore(pointer, check_s=0.0, loader=loader)
    assert store.get() == tiny_run.name
    pointer.write_text(str(broken))
    assert store.get() == tiny_run.name


def test_store_without_a_model_raises_no_model(tmp_path):
    store = ModelStore(tmp_path / "missing")
    with pytest.raises(NoModel, match="no model has been trained yet"):
        store.get()
    assert store.peek() is None


def test_store_reports_a_broken_model(tmp_path):
    (tmp_path / "model.keras").write_text("x")
    store = ModelStore(tmp_path, loader=lambda run, threads: (_ for _ in ()).throw(ValueError("bad file")))
    with pytest.raises(NoModel, match="could not be loaded"):
        store.get()


def test_wsgi_module_exposes_the_app():
    import wsgi

    assert wsgi.app.name == "webapp" and "api" in wsgi.app.blueprints


def test_unversioned_static_urls_are_revalidated(client):
    r = client.get("/static/css/hark.css")
    assert r.status_code == 200 and "immutable" not in r.headers.get("Cache-Control", "")
