"""The gallery, its evaluation panel, compare and evaluations, through Flask's test client.

Runs are copies of the real `tiny_run` (a model trained on the tone set) whose
predictions are rewritten to a known pattern, so filters, pages, the confusion
matrix and disagreements can be checked exactly; audio comes from `tone_data`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml.dataset import DataError
from ml.metrics import classification_report
from tests.helpers import PASSWORD, ROOT
from webapp.gallery import thumbnails
from webapp.versions import evaluations

A_ID, B_ID = "20990101-000001-kws", "20990101-000002-kws"
OTHER_ID, NODATA_ID = "20990101-000003-kws", "20990101-000004-kws"


def write_predictions(run_dir: Path, wrong: dict[int, str], seed: int = 0) -> list[dict]:
    """Rewrite a run's predictions (and metrics) so rows in `wrong` are mistaken as given."""
    rows = json.loads((run_dir / "predictions.json").read_text())
    labels = json.loads((run_dir / "labels.json").read_text())
    rng = np.random.default_rng(seed)
    for i, row in enumerate(rows):
        pred = wrong.get(i, row["true"])
        confidence = round(float(rng.uniform(0.35, 0.99)), 4)
        rest = (1 - confidence) / (len(labels) - 1)
        row.update(pred=pred, confidence=confidence,
                   probabilities={label: confidence if label == pred else round(rest, 4) for label in labels})
    (run_dir / "predictions.json").write_text(json.dumps(rows))
    index = {label: i for i, label in enumerate(labels)}
    report = classification_report(np.array([index[r["true"]] for r in rows]),
                                   np.array([index[r["pred"]] for r in rows]), labels)
    (run_dir / "metrics.json").write_text(json.dumps(report))
    return rows


def copy_run(tiny_run: Path, runs: Path, run_id: str, wrong: dict[int, str], seed: int = 0,
             **config) -> Path:
    run_dir = runs / run_id
    shutil.copytree(tiny_run, run_dir)
    write_predictions(run_dir, wrong, seed)
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg.update(run_id=run_id, **config)
    (run_dir / "config.json").write_text(json.dumps(cfg))
    return run_dir


def make_runs(tiny_run: Path, root: Path) -> Path:
    """A runs folder: A (2 errors), B (other errors), one on other data, one whose data is gone."""
    runs = root / "runs"
    runs.mkdir()
    first = json.loads((tiny_run / "predictions.json").read_text())
    labels = json.loads((tiny_run / "labels.json").read_text())

    def other(i):   # a wrong label for row i
        return next(label for label in labels if label != first[i]["true"])

    copy_run(tiny_run, runs, A_ID, {0: other(0), 3: other(3)}, seed=1)
    copy_run(tiny_run, runs, B_ID, {0: other(0), 5: other(5), 6: other(6)}, seed=2)
    copy_run(tiny_run, runs, OTHER_ID, {}, seed=3, data=str(root / "elsewhere"), data_hash="0" * 64)
    copy_run(tiny_run, runs, NODATA_ID, {1: other(1)}, seed=4, data="no/such/place/default",
             data_hash="1" * 64)
    return runs


def app_config(runs: Path, instance: Path, model: Path | None = None, **extra) -> dict:
    return {"HARK_MODEL": str(model or runs / A_ID), "HARK_RUNS": str(runs),
            "HARK_INSTANCE": str(instance), "HARK_DEFAULT_MODEL": str(instance / "no-default-model"),
            "HARK_AUTO_TRAIN": False, **extra}


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory) -> Path:
    return make_runs(tiny_run, tmp_path_factory.mktemp("gallery"))


@pytest.fixture(scope="module")
def app(app_factory, runs, tone_data, tmp_path_factory):
    # The runs' data folders are declared public: these tests are about browsing, not privacy.
    public = [tone_data, runs.parent / "elsewhere", ROOT / "no"]
    return app_factory(**app_config(runs, tmp_path_factory.mktemp("instance"),
                                    HARK_PUBLIC_DATA=os.pathsep.join(map(str, public))))


def rows_of(runs: Path, run_id: str) -> list[dict]:
    return json.loads((runs / run_id / "predictions.json").read_text())


def clips(client, source=f"run:{A_ID}", **args):
    r = client.get(f"/api/gallery/{source}/clips", query_string=args)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def login(client):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    r = client.post("/login", data={"username": "admin", "password": PASSWORD,
                                    "csrf_token": token})
    assert r.status_code == 302, r.get_data(as_text=True)
    return token


# ---- pages ---------------------------------------------------------------------------

def test_gallery_page_shows_the_active_model_and_its_evaluation(client, runs):
    r = client.get("/gallery")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert '<a href="/gallery" aria-current="page">Gallery</a>' in html
    assert f'data-source="run:{A_ID}"' in html
    assert f"{A_ID} (active)" in html
    for other in (B_ID, OTHER_ID, NODATA_ID):             # the version picker
        assert f'value="run:{other}"' in html
    assert "75.0%" in html                                  # 2 of 8 wrong
    assert "Per class" in html and "Precision" in html
    assert "234,216" in html or "Parameters" in html
    assert 'data-figure="confusion"' in html
    assert "<script>" not in html and "onclick" not in html   # CSP: no inline code


def test_gallery_page_of_another_version_and_unknown_ones(client):
    html = client.get(f"/gallery?source=run:{B_ID}").get_data(as_text=True)
    assert f'data-source="run:{B_ID}"' in html and "62.5%" in html
    r = client.get("/gallery?source=run:nope")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert "no such model version" in r.get_data(as_text=True).lower()
    r = client.get("/gallery?source=run:../../etc")
    assert r.status_code == 404


def test_gallery_page_keeps_filters_and_refuses_bad_ones(client):
    html = client.get(f"/gallery?source=run:{A_ID}&errors=1&min=0.5&sort=-confidence").get_data(as_text=True)
    assert 'id="only-errors" checked' in html
    assert 'name="min" min="0" max="100" step="1" inputmode="numeric" value="50"' in html
    assert '<option value="-confidence" selected>' in html
    r = client.get("/gallery?min=2")
    assert r.status_code == 400 and "min must be a number" in r.get_data(as_text=True).lower()


def test_sources_api_lists_runs_active_first(client):
    keys = [s["key"] for s in client.get("/api/gallery/sources").get_json()["sources"]]
    assert keys[0] == f"run:{A_ID}"
    assert set(keys) >= {f"run:{i}" for i in (A_ID, B_ID, OTHER_ID, NODATA_ID)}


def test_gallery_with_nothing_to_show(app_factory, tmp_path):
    empty = tmp_path / "empty-runs"
    empty.mkdir()
    app = app_factory(**app_config(empty, tmp_path / "instance", model=tmp_path / "no-model"))
    client = app.test_client()
    r = client.get("/gallery")
    assert r.status_code == 200 and "No model version with test results" in r.get_data(as_text=True)
    assert client.get("/gallery/compare").status_code == 200
    r = client.get("/api/gallery/sources")
    assert r.get_json() == {"sources": []}


# ---- filters and pages ----------------------------------------------------------------

def test_clips_unfiltered_in_test_set_order(client, runs):
    body = clips(client)
    rows = rows_of(runs, A_ID)
    assert body["total"] == body["matched"] == len(rows) == 8
    assert [item["id"] for item in body["items"]] == list(range(8))
    first = body["items"][0]
    assert first["path"] == rows[0]["path"] and first["correct"] is False
    assert first["audio"] is True
    assert first["audio_url"] == f"/api/gallery/run:{A_ID}/clips/0/audio"
    assert first["thumbnail_url"] == f"/api/gallery/run:{A_ID}/clips/0/thumbnail"
    assert {"true_name", "pred_name", "confidence", "analyze_url"} <= set(first)


def test_display_names_for_silence(client, runs):
    rows = rows_of(runs, A_ID)
    silence = next(i for i, r in enumerate(rows) if r["true"] == "_silence_")
    item = clips(client, true="_silence_")["items"][0]
    assert item["id"] == silence and item["true_name"] == "silence"


@pytest.mark.parametrize("args, keep", [
    ({"errors": "1"}, lambda r: r["true"] != r["pred"]),
    ({"true": "down"}, lambda r: r["true"] == "down"),
    ({"pred": "yes"}, lambda r: r["pred"] == "yes"),
    ({"min": "0.6"}, lambda r: r["confidence"] >= 0.6),
    ({"max": "0.6"}, lambda r: r["confidence"] <= 0.6),
    ({"min": "0.5", "max": "0.8", "true": "go"}, lambda r: 0.5 <= r["confidence"] <= 0.8 and r["true"] == "go"),
    ({"errors": "1", "true": "yes", "pred": "yes"}, lambda r: False),
])
def test_filters_pick_exactly_the_matching_clips(client, runs, args, keep):
    rows = rows_of(runs, A_ID)
    body = clips(client, **args)
    expected = [i for i, r in enumerate(rows) if keep(r)]
    assert [item["id"] for item in body["items"]] == expected
    assert body["matched"] == len(expected) and body["total"] == 8


def test_only_errors_are_the_two_mistakes(client):
    body = clips(client, errors="1")
    assert [i["id"] for i in body["items"]] == [0, 3]
    assert all(not i["correct"] for i in body["items"])


@pytest.mark.parametrize("sort, reverse", [("confidence", False), ("-confidence", True)])
def test_sort_by_confidence(client, sort, reverse):
    confidences = [i["confidence"] for i in clips(client, sort=sort)["items"]]
    assert confidences == sorted(confidences, reverse=reverse)


def test_pagination_covers_every_clip_once(client):
    seen = []
    body = clips(client, per_page=3)
    assert (body["pages"], body["page"], len(body["items"])) == (3, 1, 3)
    for page in (1, 2, 3):
        body = clips(client, per_page=3, page=page)
        assert body["page"] == page
        seen += [i["id"] for i in body["items"]]
    assert seen == list(range(8))
    last = clips(client, per_page=3, page=99)      # past the end: the last page
    assert last["page"] == 3 and [i["id"] for i in last["items"]] == [6, 7]
    assert clips(client, sort="confidence", per_page=5, page=2)["items"]


@pytest.mark.parametrize("args, message", [
    ({"true": "banana"}, "unknown label 'banana'"),
    ({"pred": "../etc"}, "unknown label"),
    ({"min": "x"}, "min must be a number"),
    ({"max": "1.5"}, "max must be a number"),
    ({"min": "nan"}, "min must be a number"),
    ({"min": "0.8", "max": "0.2"}, "min must not be above max"),
    ({"sort": "path"}, "sort must be one of"),
    ({"page": "0"}, "page must be a number"),
    ({"per_page": "100000"}, "per_page must be a number"),
])
def test_bad_filters_are_a_clear_400(client, args, message):
    r = client.get(f"/api/gallery/run:{A_ID}/clips", query_string=args)
    assert r.status_code == 400 and r.mimetype == "application/json"
    assert message in r.get_json()["error"]


def test_unknown_source_is_404_json(client):
    for url in ("/api/gallery/run:nope/clips", "/api/gallery/eval:nope/clips",
                "/api/gallery/nope/clips", f"/api/gallery/run:{A_ID}x/evaluation"):
        r = client.get(url)
        assert r.status_code == 404 and "no such model version" in r.get_json()["error"], url


# ---- evaluation panel and the confusion-matrix filter ----------------------------------

def test_evaluation_panel_figures_and_latency(client, app):
    body = client.get(f"/api/gallery/run:{A_ID}/evaluation").get_json()
    assert body["labels"] == ["_silence_", "down", "go", "yes"]
    assert body["display_names"]["_silence_"] == "silence"
    assert set(body["figures"]) == {"confusion", "loss", "accuracy"}
    latency = body["latency"]
    assert latency["median_ms"] > 0 and latency["clips"] == 20
    cached = list((Path(app.config["HARK_INSTANCE"]) / "cache" / "latency").glob("*.json"))
    assert len(cached) >= 1
    again = client.get(f"/api/gallery/run:{A_ID}/evaluation").get_json()
    assert again["latency"] == latency                   # measured once, then read back
    loss = body["figures"]["loss"]
    epochs = json.loads((Path(app.config["HARK_RUNS"]) / A_ID / "history.json").read_text())
    assert loss["data"][0]["x"] == [row["epoch"] for row in epochs] and len(loss["data"][0]["y"]) == len(epochs)


def test_every_confusion_cell_filters_to_its_clips(client, runs):
    body = client.get(f"/api/gallery/run:{A_ID}/evaluation").get_json()
    heatmap = body["figures"]["confusion"]["data"][0]
    labels = body["labels"]
    report = json.loads((runs / A_ID / "metrics.json").read_text())
    assert heatmap["y"] == heatmap["x"] == [body["display_names"][label] for label in labels]
    for t, true_label in enumerate(labels):
        for p, pred_label in enumerate(labels):
            assert heatmap["customdata"][t][p] == [true_label, pred_label]
            picked = clips(client, true=true_label, pred=pred_label)
            assert picked["matched"] == report["confusion"][t][p]
            assert all(i["true"] == true_label and i["pred"] == pred_label for i in picked["items"])
            assert heatmap["text"][t][p] == (str(report["confusion"][t][p]) if report["confusion"][t][p] else "")


# ---- audio, thumbnails and the full view, by id ------------------------------------------

def test_audio_is_served_by_id(client, runs, tone_data):
    rows = rows_of(runs, A_ID)
    r = client.get(f"/api/gallery/run:{A_ID}/clips/2/audio")
    assert r.status_code == 200 and r.mimetype == "audio/wav"
    assert r.data == (tone_data / rows[2]["path"]).read_bytes()
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_thumbnail_is_a_cached_png(client, app):
    r = client.get(f"/api/gallery/run:{A_ID}/clips/1/thumbnail")
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert r.data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", r.data[16:24])
    assert (width, height) == (98, thumbnails.BANDS)
    cache = Path(app.config["HARK_INSTANCE"]) / "cache" / "thumbnails"
    files = list(cache.rglob("*.png"))
    assert files
    stamp = {f: f.stat().st_mtime_ns for f in files}
    assert client.get(f"/api/gallery/run:{A_ID}/clips/1/thumbnail").data == r.data
    assert {f: f.stat().st_mtime_ns for f in cache.rglob("*.png")} == stamp     # not drawn again


def test_png_writer_makes_a_decodable_image():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    png = thumbnails.png_bytes(rgb)
    idat = png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8]
    raw = zlib.decompress(idat)
    assert raw == b"\x00" + rgb[0].tobytes() + b"\x00" + rgb[1].tobytes()


def test_analyze_a_stored_clip_like_the_upload_page(client, runs):
    r = client.get(f"/api/gallery/run:{A_ID}/clips/4/analyze")
    assert r.status_code == 200
    body = r.get_json()
    for key in ("label", "confidence", "probabilities", "model", "duration_s", "timing_ms",
                "display_label", "verdict", "window_start_s", "figures"):
        assert key in body
    assert set(body["figures"]) == {"waveform", "spectrogram", "probabilities"}
    assert body["model"] == A_ID
    row = rows_of(runs, A_ID)[4]
    assert body["clip"]["true"] == row["true"] and body["clip"]["path"] == row["path"]
    assert body["clip"]["audio_url"].endswith("/clips/4/audio")
    other = client.get(f"/api/gallery/run:{B_ID}/clips/4/analyze").get_json()
    assert other["model"] == B_ID                      # another version's own model


@pytest.mark.parametrize("url", [
    f"/api/gallery/run:{A_ID}/clips/8/audio",                        # past the end
    f"/api/gallery/run:{A_ID}/clips/-1/audio",
    f"/api/gallery/run:{A_ID}/clips/1e3/audio",
    f"/api/gallery/run:{A_ID}/clips/..%2F..%2F..%2Fetc%2Fpasswd/audio",
    f"/api/gallery/run:{A_ID}/clips/0/../../../../etc/passwd",
    "/api/gallery/run:..%2F..%2Fetc/clips/0/audio",
    "/api/gallery/..%2F..%2Fetc%2Fpasswd/clips/0/audio",
    f"/api/gallery/run:{A_ID}%2F..%2F{B_ID}/clips/0/audio",
    f"/api/gallery/run:{A_ID}/clips/0/audio/../../../etc/passwd",
    "/api/gallery/eval:..%2F..%2Fconfig/clips/0/audio",
])
def test_audio_paths_from_the_request_go_nowhere(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert r.mimetype == "application/json" and "error" in r.get_json()


def test_a_tampered_predictions_file_cannot_reach_outside_the_data_folder(app_factory, tiny_run, tone_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tone_data, data)
    secret = tmp_path / "secret.wav"            # a real audio file just outside the data folder
    sf.write(secret, np.zeros(1600, np.float32), 16000)
    (data / "yes" / "link.wav").symlink_to(secret)
    runs = tmp_path / "runs"
    runs.mkdir()
    run = copy_run(tiny_run, runs, A_ID, {}, data=str(data))
    rows = json.loads((run / "predictions.json").read_text())
    rows[0]["path"] = "../secret.wav"
    rows[1]["path"] = str(secret)                                   # absolute
    rows[2]["path"] = "yes/link.wav"                                # a symlink leading out
    rows[3]["path"] = "../" * 20 + "etc/passwd"
    rows[4]["path"] = "."
    (run / "predictions.json").write_text(json.dumps(rows))
    client = app_factory(**app_config(runs, tmp_path / "instance", HARK_PUBLIC_DATA=str(data))).test_client()
    for index in range(5):
        for what in ("audio", "thumbnail", "analyze"):
            r = client.get(f"/api/gallery/run:{A_ID}/clips/{index}/{what}")
            assert r.status_code == 404, (index, what, r.status_code)
            assert r.get_json()["error"]
    items = clips(client)["items"]
    assert [i["audio"] for i in items[:2]] == [False, False]
    assert "audio_url" not in items[0]
    assert client.get(f"/api/gallery/run:{A_ID}/clips/5/audio").status_code == 200


# ---- missing data ---------------------------------------------------------------------------

def test_missing_data_still_shows_labels_and_says_so(client):
    body = clips(client, source=f"run:{NODATA_ID}")
    assert body["audio"]["available"] is False
    assert "not on this machine" in body["audio"]["message"]
    assert body["audio"]["command"] == "python -m ml data default"
    assert len(body["items"]) == 8
    item = body["items"][1]
    assert item["audio"] is False and "audio_url" not in item and "thumbnail_url" not in item
    assert item["true_name"] and item["pred_name"] and item["confidence"]
    for what in ("audio", "thumbnail", "analyze"):
        r = client.get(f"/api/gallery/run:{NODATA_ID}/clips/1/{what}")
        assert r.status_code == 404 and r.mimetype == "application/json"
        assert "not on this machine" in r.get_json()["error"]
        assert "python -m ml data default" in r.get_json()["error"]
    html = client.get(f"/gallery?source=run:{NODATA_ID}").get_data(as_text=True)
    assert 'id="audio-missing"' in html and "<code>python -m ml data default</code>" in html


def test_a_single_missing_clip(app_factory, tiny_run, tone_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tone_data, data)
    runs = tmp_path / "runs"
    runs.mkdir()
    copy_run(tiny_run, runs, A_ID, {}, data=str(data))
    rows = rows_of(runs, A_ID)
    (data / rows[5]["path"]).unlink()
    client = app_factory(**app_config(runs, tmp_path / "instance", HARK_PUBLIC_DATA=str(data))).test_client()
    items = clips(client)["items"]
    assert [i["audio"] for i in items] == [i != 5 for i in range(8)]
    r = client.get(f"/api/gallery/run:{A_ID}/clips/5/audio")
    assert r.status_code == 404 and "not on this machine" in r.get_json()["error"]


# ---- compare ------------------------------------------------------------------------------

def test_compare_page(client):
    r = client.get(f"/gallery/compare?a=run:{A_ID}&b=run:{B_ID}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "Both were tested on the same 8 clips." in html
    assert "75.0%" in html and "62.5%" in html
    assert "F1 B−A" in html and 'id="compare-chart"' in html
    assert "/api/gallery/compare?a=run:" in html or "/api/gallery/compare?a=run%3A" in html


def test_compare_lists_the_clips_they_disagree_on(client, runs):
    body = client.get("/api/gallery/compare", query_string={"a": f"run:{A_ID}", "b": f"run:{B_ID}"}).get_json()
    a, b = rows_of(runs, A_ID), rows_of(runs, B_ID)
    expected = [i for i in range(8) if a[i]["pred"] != b[i]["pred"]]
    assert expected == [3, 5, 6]          # both wrong on 0 in the same way: no disagreement
    assert [i["id"] for i in body["items"]] == expected
    assert body["test_sets"]["kind"] == "same" and body["matched"] == 3
    first = body["items"][0]
    assert first["pred"] == a[3]["pred"] and first["pred_b"] == b[3]["pred"]
    assert first["correct"] is False and first["correct_b"] is True
    assert first["analyze_url_b"] == f"/api/gallery/run:{B_ID}/clips/3/analyze"
    only = lambda which: [i["id"] for i in client.get("/api/gallery/compare", query_string={  # noqa: E731
        "a": f"run:{A_ID}", "b": f"run:{B_ID}", "which": which}).get_json()["items"]]
    assert only("a_right") == [5, 6] and only("b_right") == [3] and only("both_wrong") == []
    paged = client.get("/api/gallery/compare", query_string={
        "a": f"run:{A_ID}", "b": f"run:{B_ID}", "per_page": 2, "page": 2}).get_json()
    assert [i["id"] for i in paged["items"]] == [6] and paged["pages"] == 2


def test_compare_says_when_there_is_no_shared_test_set(client):
    body = client.get("/api/gallery/compare", query_string={"a": f"run:{A_ID}", "b": f"run:{OTHER_ID}"}).get_json()
    assert body["test_sets"]["kind"] == "none" and body["items"] == []
    assert "do not share a test set" in body["test_sets"]["message"]
    html = client.get(f"/gallery/compare?a=run:{A_ID}&b=run:{OTHER_ID}").get_data(as_text=True)
    assert "do not share a test set" in html and 'id="compare-grid"' not in html


def test_compare_bad_arguments(client):
    assert client.get("/api/gallery/compare?a=run:nope&b=run:x").status_code == 404
    r = client.get(f"/api/gallery/compare?a=run:{A_ID}&b=run:{B_ID}&which=sideways")
    assert r.status_code == 400 and "which must be one of" in r.get_json()["error"]


# ---- evaluations on another folder -----------------------------------------------------------

def test_evaluate_and_store_then_browse(app, client, runs, tone_data):
    store = Path(app.config["HARK_INSTANCE"]) / "evaluations"
    summary = evaluations.evaluate_and_store(runs / A_ID, tone_data, store)
    assert summary["n"] == 80 and 0 <= summary["accuracy"] <= 1
    record = json.loads(Path(summary["file"]).read_text())
    assert record["folder"] == str(tone_data.resolve()) and record["model"] == A_ID
    assert len(record["rows"]) == 80 and record["report"]["n"] == 80 and record["created"]
    assert not list(store.glob(".*"))                      # no temporary file left behind
    key = f"eval:{summary['id']}"
    assert key in [s["key"] for s in client.get("/api/gallery/sources").get_json()["sources"]]
    body = clips(client, source=key, per_page=10)
    assert body["total"] == 80 and body["pages"] == 8
    r = client.get(body["items"][0]["audio_url"])
    assert r.status_code == 200 and r.data == (tone_data / body["items"][0]["path"]).read_bytes()
    assert client.get(f"/api/gallery/{key}/clips/0/analyze").get_json()["model"] == A_ID
    html = client.get(f"/gallery?source={key}").get_data(as_text=True)
    assert "Evaluations on other folders" in html and "/".join(tone_data.resolve().parts[-2:]) in html
    assert str(tone_data.resolve()) not in html          # named, never the server's path
    panel = client.get(f"/api/gallery/{key}/evaluation").get_json()
    assert "confusion" in panel["figures"] and "loss" not in panel["figures"]


def test_evaluation_folder_errors_are_clear(runs, tmp_path, tone_data):
    store = tmp_path / "store"
    with pytest.raises(DataError, match="no such folder"):
        evaluations.evaluate_and_store(runs / A_ID, tmp_path / "missing", store)
    flat = tmp_path / "flat"
    flat.mkdir()
    sf.write(flat / "a.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(DataError, match="no audio files in label folders"):
        evaluations.evaluate_and_store(runs / A_ID, flat, store)
    strange = tmp_path / "strange"
    shutil.copytree(tone_data / "yes", strange / "banana")
    with pytest.raises(DataError, match="unknown to the model"):
        evaluations.evaluate_and_store(runs / A_ID, strange, store)
    with pytest.raises(DataError, match="name a folder"):
        evaluations.evaluate_and_store(runs / A_ID, "  ", store)
    assert not store.exists() or not list(store.iterdir())


def test_admin_endpoint_evaluates_a_folder(app, runs, tone_data):
    client = app.test_client()
    r = client.post("/admin/api/evaluations", json={"folder": str(tone_data)})
    assert r.status_code in (400, 401)       # no login (and no CSRF token)
    assert client.get("/gallery/evaluate").status_code == 302      # to the login page
    token = login(client)
    headers = {"X-CSRFToken": token}
    assert client.post("/admin/api/evaluations", json={"folder": str(tone_data)}).status_code == 400
    page = client.get("/gallery/evaluate")
    assert page.status_code == 200 and 'id="evaluate-form"' in page.get_data(as_text=True)
    for body, message in [({"folder": ""}, "name a folder"),
                          ({"folder": "/no/such/folder"}, "no such folder"),
                          ({"folder": str(tone_data), "model": "eval:x"}, "no such model version"),
                          ({"folder": str(tone_data), "model": "run:nope"}, "no such model version")]:
        r = client.post("/admin/api/evaluations", json=body, headers=headers)
        assert r.status_code in (400, 404) and message in r.get_json()["error"], body
    r = client.post("/admin/api/evaluations", json={"folder": str(tone_data), "model": f"run:{B_ID}"},
                    headers=headers)
    assert r.status_code == 202, r.get_json()      # a queued job (run inline in these tests)
    job = client.get(r.get_json()["job_url"]).get_json()
    body = job["evaluation"]
    assert job["state"] == "succeeded" and job["model"] == B_ID and body["n"] == 80
    assert job["gallery_url"] in (f"/gallery?source=eval:{body['id']}", f"/gallery?source=eval%3A{body['id']}")
    assert client.get(job["gallery_url"]).status_code == 200
    html = client.get("/gallery").get_data(as_text=True)
    assert "Evaluate on a folder" in html


# ---- private recordings ---------------------------------------------------------------------

def test_clips_of_a_private_data_set_are_for_the_admin_until_made_public(app_factory, tiny_run, tone_data, tmp_path):
    """A version trained on a user data set, and an evaluation on it: anyone sees the version's
    figures, only the admin its clips (lists, audio, thumbnails, analyses, compare), until the
    admin makes the set public; the evaluation on it is not even listed for anyone else."""
    data = tmp_path / "data"
    voice = data / "user" / "voice"
    shutil.copytree(tone_data, voice)
    runs = tmp_path / "runs"
    runs.mkdir()
    copy_run(tiny_run, runs, A_ID, {}, data=str(voice))
    copy_run(tiny_run, runs, B_ID, {0: "_silence_"}, data=str(voice))
    app = app_factory(**app_config(runs, tmp_path / "instance", HARK_DATA=str(data)))
    stored = evaluations.evaluate_and_store(runs / A_ID, voice, tmp_path / "instance" / "evaluations")
    ev = f"eval:{stored['id']}"
    private = [f"/api/gallery/run:{A_ID}/clips", f"/api/gallery/run:{A_ID}/clips/0/audio",
               f"/api/gallery/run:{A_ID}/clips/0/thumbnail", f"/api/gallery/run:{A_ID}/clips/0/analyze",
               f"/api/gallery/compare?a=run:{A_ID}&b=run:{B_ID}"]
    hidden = [f"/api/gallery/{ev}/clips", f"/api/gallery/{ev}/clips/0/audio",
              f"/api/gallery/{ev}/clips/0/thumbnail", f"/api/gallery/{ev}/evaluation",
              f"/gallery?source={ev}"]
    anyone = app.test_client()
    for url in private:
        r = anyone.get(url)
        assert r.status_code == 401 and "not public" in r.get_json()["error"], url
    for url in hidden:
        assert anyone.get(url).status_code == 404, url
    assert ev not in [s["key"] for s in anyone.get("/api/gallery/sources").get_json()["sources"]]
    page = anyone.get(f"/gallery?source=run:{A_ID}").get_data(as_text=True)
    assert 'id="clips-private"' in page and 'id="gallery"' not in page and "100.0%" in page
    assert ev not in page and str(voice) not in page and str(tmp_path) not in page
    compare = anyone.get(f"/gallery/compare?a=run:{A_ID}&b=run:{B_ID}").get_data(as_text=True)
    assert "not public" in compare and 'id="compare-grid"' not in compare

    admin = app.test_client()
    headers = {"X-CSRFToken": login(admin)}
    for url in private + hidden:
        assert admin.get(url).status_code == 200, url
    assert ev in admin.get(f"/gallery?source=run:{A_ID}").get_data(as_text=True)

    r = admin.patch("/admin/api/datasets/user:voice", json={"public": True}, headers=headers)
    assert r.status_code == 200 and r.get_json()["public"] is True
    for url in private + hidden:
        assert anyone.get(url).status_code == 200, url
    first_clip = voice / stored_rows(tmp_path, stored)[0]["path"]
    assert anyone.get(f"/api/gallery/{ev}/clips/0/audio").data == first_clip.read_bytes()
    admin.patch("/admin/api/datasets/user:voice", json={"public": False}, headers=headers)
    assert anyone.get(f"/api/gallery/{ev}/clips/0/audio").status_code == 404
    assert anyone.get(f"/api/gallery/run:{A_ID}/clips/0/audio").status_code == 401


def stored_rows(tmp_path: Path, stored: dict) -> list[dict]:
    return json.loads(Path(stored["file"]).read_text())["rows"]


def test_a_folder_outside_hark_s_data_is_private(app_factory, tiny_run, tone_data, tmp_path):
    """Any other folder of the server an admin evaluated on is the admin's: neither listed nor
    played for anyone else; Hark's own sets in the data folder are public."""
    runs = tmp_path / "runs"
    runs.mkdir()
    copy_run(tiny_run, runs, A_ID, {})
    elsewhere = tmp_path / "home" / "someone" / "recordings"
    shutil.copytree(tone_data, elsewhere)
    own = tmp_path / "data" / "default"
    shutil.copytree(tone_data, own)
    app = app_factory(**app_config(runs, tmp_path / "instance", HARK_DATA=str(tmp_path / "data")))
    store = tmp_path / "instance" / "evaluations"
    mine = evaluations.evaluate_and_store(runs / A_ID, elsewhere, store)["id"]
    shipped = evaluations.evaluate_and_store(runs / A_ID, own, store)["id"]
    anyone = app.test_client()
    assert anyone.get(f"/api/gallery/eval:{mine}/clips/0/audio").status_code == 404
    assert anyone.get(f"/api/gallery/eval:{shipped}/clips/0/audio").status_code == 200
    keys = [s["key"] for s in anyone.get("/api/gallery/sources").get_json()["sources"]]
    assert f"eval:{shipped}" in keys and f"eval:{mine}" not in keys
    training = anyone.get("/training").get_data(as_text=True)
    assert "someone/recordings" not in training and str(tmp_path) not in training
