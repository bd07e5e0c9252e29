"""The model for a page that classifies on the device: GET /api/model.json, /api/model.tflite,
/api/model-window.tflite (ETag, 304) and POST /api/decide (ml.detect's decisions for window
probabilities); the one-window graph (window.tflite) gives the span graph's numbers."""
from __future__ import annotations

import numpy as np
import pytest

from ml.audio import CLIP_SAMPLES
from ml.classifier import Classifier
from ml.detect import Detector
from tests.helpers import ROOT, make_app

DEFAULT = ROOT / "models" / "default"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("on_device"), HARK_MODEL=str(DEFAULT))
    return app.test_client()


@pytest.fixture(scope="module")
def served():
    return Classifier(DEFAULT)


def test_model_file_has_etag_and_304(client):
    first = client.get("/api/model.tflite")
    assert first.status_code == 200
    assert first.data == (DEFAULT / "model.tflite").read_bytes()
    assert first.headers["Cache-Control"] == "no-cache" and first.headers["ETag"]
    again = client.get("/api/model.tflite", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and not again.data
    other = client.get("/api/model.tflite", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_model_json_says_what_the_page_needs(client, served):
    info = client.get("/api/model.json").get_json()
    assert info["model"] == served.version and info["labels"] == served.labels
    assert info["context"] == served.context and info["sample_rate"] == 16000
    assert info["span_samples"] == CLIP_SAMPLES + 2 * served.context
    window = client.get(info["files"]["window_model"])
    assert window.status_code == 200 and window.headers["ETag"].strip('"') == info["files"]["window_model_etag"]
    assert client.get(info["files"]["window_model"],
                      headers={"If-None-Match": window.headers["ETag"]}).status_code == 304


def test_one_window_graph_gives_the_served_numbers(served):
    from ai_edge_litert.interpreter import Interpreter

    graph = Interpreter(model_path=str(DEFAULT / "window.tflite"))
    graph.allocate_tensors()
    run = graph.get_signature_runner()
    span = CLIP_SAMPLES + 2 * served.context
    rng = np.random.default_rng(1)
    for offset in (0, 4800, 31840):
        audio = rng.normal(0, 0.1, span).astype(np.float32)
        out = run(audio=audio[None], starts=np.array([[served.context]], np.int32),
                  offset=np.array([[offset]], np.int32))
        expected = served.predict_windows(audio, [served.context], offset)
        # not 1e-5 as in float: the int8 weights meet activations quantised with their map's
        # largest value, a span graph's maps hold every frame, and its kws network is int8
        # where the one-window graph's is float (ml.graph.weights_int8; 0.0083 measured)
        np.testing.assert_allclose(out["probabilities"], expected, atol=0.02)


def test_decide_makes_the_detectors_decisions(client, served):
    """Window probabilities sent in pieces give the detections Detector makes of the audio."""
    rng = np.random.default_rng(3)
    wave = rng.normal(0, 0.003, 3 * CLIP_SAMPLES).astype(np.float32)
    expected = [d.to_dict() for d in Detector(served).detect(wave)]
    rows = []

    class Recorder:      # the Detector's own windows, kept as a page would send them
        def __init__(self, decider):
            self.decider = decider

        def rows(self, state, times, probs, cut=None):
            rows.extend([float(t), [float(p) for p in row], bool(c)] for t, row, c in zip(times, probs, cut))
            return self.decider.rows(state, times, probs, cut)

        def __getattr__(self, name):
            return getattr(self.decider, name)

    detector = Detector(served)
    detector.decider = Recorder(detector.decider)
    detector.detect(wave)
    state, found = "new", []
    for i in range(0, len(rows), 7):
        body = client.post("/api/decide", json={"model": served.version, "sensitivity": "medium", "state": state,
                                                "windows": rows[i:i + 7], "end": i + 7 >= len(rows)})
        assert body.status_code == 200, body.get_json()
        state = body.get_json()["state"]
        found += body.get_json()["detections"]
    assert found == expected


@pytest.mark.parametrize("body, status", [
    ("not json", 400),
    ({"model": "another", "windows": []}, 409),
    ({"windows": [[0.5, [0.1], False]]}, 400),
    ({"windows": [[0.5, [2.0] * 10, False]]}, 400),
    ({"windows": [[0.6, [0.1] * 10, False], [0.5, [0.1] * 10, False]]}, 400),
    ({"sensitivity": "loud", "windows": []}, 400),
    ({"state": {"v": 99}, "windows": []}, 400),
])
def test_decide_refuses_bad_input(client, served, body, status):
    if isinstance(body, dict):
        body = {"model": served.version, **body}
        response = client.post("/api/decide", json=body)
    else:
        response = client.post("/api/decide", data=body, content_type="application/json")
    assert response.status_code == status
    assert response.get_json()["error"]
