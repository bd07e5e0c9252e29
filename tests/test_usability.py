"""What the pages tell a newcomer, through Flask's test client and real files.

Accuracy said with what it was measured on (test split, real speech, a folder), the
gallery making the default set's audio on a machine without it, activation that
shows what changes and asks before a worse version, a page per training job and a
time left that counts down, the upload errors that say what a file is, Plotly sent
compressed. Runs are copies of the real `tiny_run`; the default set is really
generated (at 4 clips a word).
"""
from __future__ import annotations

import gzip
import json
import re
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import login
from tests.test_gallery import copy_run
from webapp.database import db
from webapp.tables import JobEpoch, ModelVersion
from webapp.training import jobs
from webapp.versions import registry

ROOT = Path(__file__).resolve().parent.parent
A_ID, B_ID, FEW_ID = "20990201-000001-kws", "20990201-000002-kws", "20990201-000003-kws"


def real_speech_card(run_dir: Path, words: float = 0.882, extra: float = 0.732) -> dict:
    """A real_speech.json as bench/real_speech_card.py writes it (reports trimmed)."""
    card = {"about": "test", "model": run_dir.name, "sets": [
        {"name": "words", "title": "the 8 command words", "folder": "../shared/speech/words",
         "speakers": 157, "report": {"accuracy": words, "n": 1945}},
        {"name": "extra", "title": "silence and words that are not commands",
         "folder": "../shared/speech/extra", "speakers": 130, "report": {"accuracy": extra, "n": 966}}]}
    (run_dir / "real_speech.json").write_text(json.dumps(card))
    return card


def make_runs(tiny_run: Path, root: Path) -> Path:
    """A: no mistakes, with a real-speech card; B: three mistakes on the same test split."""
    runs = root / "runs"
    runs.mkdir()
    rows = json.loads((tiny_run / "predictions.json").read_text())
    labels = json.loads((tiny_run / "labels.json").read_text())

    def other(i):
        return next(label for label in labels if label != rows[i]["true"])

    real_speech_card(copy_run(tiny_run, runs, A_ID, {}))
    copy_run(tiny_run, runs, B_ID, {0: other(0), 1: other(1), 2: other(2)})
    copy_run(tiny_run, runs, FEW_ID, {})
    return runs


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory) -> Path:
    return make_runs(tiny_run, tmp_path_factory.mktemp("new-user"))


@pytest.fixture
def app(app_factory, runs, tmp_path):
    app = app_factory(HARK_DEFAULT_MODEL=str(runs / A_ID), HARK_RUNS=str(runs),
                      HARK_AUTO_TRAIN=False, HARK_QUEUE_IMMEDIATE=False)
    with app.app_context():
        a = registry.register(runs / A_ID, source="default")
        registry.register(runs / B_ID)
        few = registry.register(runs / FEW_ID)
        few.labels = [label for label in few.labels if label != "_silence_"]   # "drops" silence
        db.session.commit()
        registry.reconcile(app)
        assert db.session.get(ModelVersion, a.id).active
    return app


def ids(app) -> dict[str, int]:
    with app.app_context():
        return {v.name: v.id for v in registry.all_versions()}


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ---- 1. accuracy in context -------------------------------------------------------------------

def test_every_accuracy_says_what_it_was_measured_on(app, runs):
    client = app.test_client()
    training = text_of(client.get("/training").get_data(as_text=True))
    folder = Path(json.loads((runs / A_ID / "config.json").read_text())["data"]).name
    assert f"100.0% on the test split of folder {folder}" in training
    assert "88.2% on real speech: the 8 command words (1,945 clips, 157 speakers)" in training
    assert "73.2% on real speech: silence and words that are not commands" in training

    gallery = text_of(client.get("/gallery").get_data(as_text=True))
    assert "Accuracy on test split of folder" in gallery
    assert "Accuracy on real speech: the 8 command words 88.2%" in gallery
    b_page = text_of(client.get(f"/gallery?source=run:{B_ID}").get_data(as_text=True))
    assert "It has not been measured on real speech" in b_page

    status = client.get("/api/training").get_json()
    kinds = [m["kind"] for m in status["active_model"]["measures"]]
    assert kinds == ["test", "real", "real"]

    login(client)
    tables = text_of(client.get("/admin/tables").get_data(as_text=True))
    assert "88.2% on real speech: the 8 command words" in tables
    assert f"on the test split of folder {folder}" in tables


def test_a_run_on_several_data_sets_names_them_all():
    from webapp.versions.accuracy import test_split_name

    config = {"data": "data", "datasets": [{"path": "data/default"}, {"path": "data/real-half0"}]}
    assert test_split_name(config) == "the test split of the synthetic set and folder real-half0"
    config["datasets"].append({"path": "data/real-half1"})
    assert test_split_name(config) == \
        "the test split of the synthetic set, folder real-half0 and folder real-half1"
    assert test_split_name({"data": "data/default", "datasets": [{"path": "data/default"}]}) == \
        "the synthetic test split"


def test_a_stored_gallery_evaluation_is_a_measure_of_its_version(app, runs, tone_data):
    store = Path(app.config["HARK_INSTANCE"]) / "evaluations"
    store.mkdir(parents=True, exist_ok=True)
    record = {"id": "20990202-000000-tones-abcdef", "model": B_ID, "model_dir": str(runs / B_ID),
              "folder": str(tone_data), "created": "2099-02-02T00:00:00",
              "report": {"accuracy": 0.5, "n": 80, "labels": ["yes"]}, "rows": []}
    (store / f"{record['id']}.json").write_text(json.dumps(record))
    client = app.test_client()
    page = text_of(client.get(f"/gallery?source=run:{B_ID}").get_data(as_text=True))
    where = "/".join(tone_data.parts[-2:])
    assert f"50.0% on folder {where} (80 clips)" in page
    login(client)
    assert f"on folder {where}" in text_of(client.get("/admin/tables").get_data(as_text=True))


def test_real_speech_card_script_writes_what_the_pages_read(app, runs, tone_data, tmp_path):
    from bench import real_speech_card as script

    run = shutil.copytree(runs / B_ID, tmp_path / "card-run")
    assert script.main(["--model", str(run), "--words", str(tone_data), "--extra", str(tone_data)]) == 0
    card = json.loads((run / "real_speech.json").read_text())
    assert [s["name"] for s in card["sets"]] == ["words", "extra"]
    words = card["sets"][0]
    assert words["speakers"] == 10 and words["report"]["n"] == 80
    assert words["command"].startswith("python -m ml evaluate --model ") and words["command"].endswith(" --json")
    assert "created" in card and card["written_by"] == "bench/real_speech_card.py"
    with app.test_request_context():
        from webapp.versions import accuracy

        found = accuracy.measures(run)
    assert [m["kind"] for m in found] == ["test", "real", "real"]
    assert found[1]["accuracy"] == words["report"]["accuracy"] and found[1]["n"] == 80

    # A run trained on half of the speakers is carded on the other half only.
    assert script.main(["--model", str(run), "--words", str(tone_data), "--extra", str(tone_data),
                        "--half", "1"]) == 0
    half = json.loads((run / "real_speech.json").read_text())["sets"][0]
    assert half["half"] == 1 and 0 < half["speakers"] < 10 and 0 < half["report"]["n"] < 80
    assert half["command"].startswith("python -m ml data speakers ") and " --half 1 " in half["command"]

    # A run that heard every speaker carries the figures of another run on the half that one never
    # heard, named as such; the count of speakers heard is the measured run's.
    other = shutil.copytree(runs / A_ID, tmp_path / "half-run")
    assert script.main(["--model", str(run), "--words", str(tone_data), "--extra", str(tone_data),
                        "--half", "1", "--measured-with", str(other)]) == 0
    borrowed = json.loads((run / "real_speech.json").read_text())
    from ml.classifier import Classifier
    from ml.speakers import heard_speakers, speaker_half, speakers_in

    assert borrowed["measured_with"].endswith("half-run") and borrowed["model"] == Classifier(other).version
    assert "same recipe trained on one half" in borrowed["about"]
    entry = borrowed["sets"][0]
    assert "half-run --data words-half1 --json" in entry["command"] and "never heard" in entry["title"]
    scored = {s for s in speakers_in(tone_data) if speaker_half(f"{s}_nohash_0.wav") == 1}
    assert entry["speakers_heard"] == len(scored & heard_speakers(other)) > 0   # A trained on them
    with pytest.raises(SystemExit):                             # which half would it score?
        script.main(["--model", str(run), "--measured-with", str(other),
                     "--words", str(tone_data), "--extra", str(tone_data)])


# ---- 3. activation says what changes -----------------------------------------------------------

def test_activating_a_worse_version_needs_a_clear_confirmation(app, runs):
    client = app.test_client()
    token = login(client)
    version = ids(app)[B_ID]
    page = text_of(client.get(f"/admin/versions/{version}/activation").get_data(as_text=True))
    assert "Read this first" in page and "It is worse on the test split of folder" in page
    after = json.loads((runs / B_ID / "metrics.json").read_text())["accuracy"]
    assert f"100.0% {after * 100:.1f}% {(after - 1) * 100:+.1f} points" in page
    assert "Activate anyway" in page

    r = client.post(f"/admin/versions/{version}/activate", data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/admin/versions/{version}/activation")
    with app.app_context():
        assert not db.session.get(ModelVersion, version).active       # nothing changed
    again = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "confirm to activate it" in again

    r = client.post(f"/admin/versions/{version}/activate", data={"csrf_token": token, "confirmed": "yes"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin")
    with app.app_context():
        assert db.session.get(ModelVersion, version).active


def test_a_version_that_drops_labels_is_flagged_and_an_equal_one_is_not(app):
    client = app.test_client()
    token = login(client)
    few = ids(app)[FEW_ID]
    change = client.get(f"/admin/api/versions/{few}/activation").get_json()
    assert change["labels_lost"] == ["silence"] and change["risky"]
    assert any("does not know silence" in w for w in change["warnings"])
    same = [c for c in change["comparisons"] if c["kind"] == "test"]
    assert len(same) == 1 and same[0]["delta"] == 0                   # same clips, same accuracy
    page = text_of(client.get(f"/admin/versions/{few}/activation").get_data(as_text=True))
    assert "Words lost silence" in page

    b = ids(app)[B_ID]
    with app.app_context():            # B's labels intact, but three mistakes: worse
        assert client.get(f"/admin/api/versions/{b}/activation").get_json()["comparisons"][0]["delta"] < 0
    # An equal version activates without a confirmation step, as before.
    with app.app_context():
        db.session.get(ModelVersion, few).labels = db.session.get(ModelVersion, ids(app)[A_ID]).labels
        db.session.commit()
    r = client.post(f"/admin/versions/{few}/activate", data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin")
    with app.app_context():
        assert db.session.get(ModelVersion, few).active
    assert client.get("/admin/versions/2147483647/activation").status_code == 404


def test_version_tables_link_to_the_confirmation_not_a_bare_confirm(app):
    client = app.test_client()
    login(client)
    html = client.get("/admin/tables").get_data(as_text=True)
    assert "from now on?" not in html
    assert f'href="/admin/versions/{ids(app)[B_ID]}/activation"' in html
    for label in ("Version", "Active", "Accuracy", "Size", "Latency", "Created"):
        assert f'data-label="{label}"' in html


# ---- 4. a page per job, a time left that counts down, curves kept --------------------------------

def epoch(app, job_id, n, of, seconds_ago=0.0):
    with app.app_context():
        jobs.record_epoch(job_id, {"epoch": n, "epochs": of, "loss": 1.0 / n, "accuracy": 0.2 * n,
                                   "val_loss": 1.1 / n, "val_accuracy": 0.2 * n, "elapsed_s": 3.0 * n,
                                   "eta_s": 30.0 * (of - n)})
        row = db.session.scalars(db.select(JobEpoch).where(JobEpoch.job_id == job_id)
                                 .order_by(JobEpoch.epoch.desc())).first()
        row.created_at -= timedelta(seconds=seconds_ago)
        db.session.commit()


def test_time_left_counts_down_and_the_finished_job_keeps_its_curves(app, tone_data):
    client = app.test_client()
    with app.app_context():
        job_id = jobs.submit(jobs.make_params(dataset="folder", data=str(tone_data), epochs=3), "t").id
        jobs.claim(job_id)
    epoch(app, job_id, 1, 3, seconds_ago=12)
    current = client.get("/api/training").get_json()["current"]
    assert current["eta_s"] == 60.0 and 47 <= current["eta_left_s"] <= 48.5
    epoch(app, job_id, 3, 3, seconds_ago=5)
    assert client.get("/api/training").get_json()["current"]["eta_left_s"] == 0.0

    page = client.get(f"/training/jobs/{job_id}").get_data(as_text=True)
    assert 'data-finished="false"' in page and "Not finished yet" in page
    with app.app_context():
        jobs.finish(job_id, "succeeded", run_dir=str(Path(app.config["HARK_RUNS"]) / B_ID),
                    metrics={"accuracy": 0.625})
        version = db.session.get(ModelVersion, ids(app)[B_ID])
        version.job_id = job_id
        db.session.commit()
    status = client.get("/api/training").get_json()
    assert status["current"] is None
    assert status["last"]["id"] == job_id and status["last"]["figures"]["loss"]["data"]

    html = client.get("/training").get_data(as_text=True)
    assert html.index('id="training-live"') < html.index('class="card model-info"')   # running job first
    assert f'href="/training/jobs/{job_id}"' in html and f"Last job #{job_id}: succeeded" in html
    page = text_of(client.get(f"/training/jobs/{job_id}").get_data(as_text=True))
    assert f"Job #{job_id} succeeded" in page
    assert "62.5% on the test split of folder" in page and "Browse its test clips in the gallery" in page
    assert "Epochs 3" in page and "Split by speaker" in page and "Data a folder" not in page
    assert str(tone_data) not in page                       # no server path on a public page
    raw = client.get(f"/training/jobs/{job_id}").get_data(as_text=True)
    assert f'href="/gallery?source=run:{B_ID}"' in raw
    assert client.get("/training/jobs/2147483647").status_code == 404
    assert client.get("/training/jobs/99999999999").status_code == 404


# ---- 2. the gallery makes the default set's audio ------------------------------------------------

def test_gallery_makes_the_missing_default_audio_and_then_plays_it(app_factory, tiny_run, tmp_path):
    from ml.synth.generate import generate

    reference = tmp_path / "reference"
    generate(reference, per_word=4, workers=1, progress=False)
    picked = sorted(p.relative_to(reference).as_posix() for p in reference.glob("*/*.wav"))[:6]
    data = tmp_path / "data"
    runs = tmp_path / "runs"
    run = copy_run(tiny_run, runs.mkdir() or runs, "20990203-000001-kws", {},
                   data=str(data / "default"))
    rows = json.loads((run / "predictions.json").read_text())[:len(picked)]
    for row, path in zip(rows, picked):
        row["path"] = path
    (run / "predictions.json").write_text(json.dumps(rows))
    app = app_factory(HARK_DATA=str(data), HARK_RUNS=str(runs), HARK_MODEL=str(run),
                      HARK_DEFAULT_PER_WORD=4, HARK_AUTO_TRAIN=False)
    client = app.test_client()

    html = client.get("/gallery").get_data(as_text=True)
    assert 'id="audio-building"' in html and "this page&#39;s clips first" in html
    first = client.get(f"/api/gallery/run:{run.name}/clips").get_json()
    assert first["audio"]["available"] is False and not any(c["audio"] for c in first["items"])
    assert client.get(f"/api/gallery/run:{run.name}/clips/0/audio").status_code == 404

    deadline = time.time() + 120
    body = first
    while body["audio"].get("building") and time.time() < deadline:
        time.sleep(0.5)
        body = client.get(f"/api/gallery/run:{run.name}/clips").get_json()
    assert body["audio"]["available"] is True, body["audio"]
    assert all(card["audio"] and card["audio_url"] for card in body["items"])
    for i, path in enumerate(picked):          # the same bytes as the set made elsewhere
        r = client.get(f"/api/gallery/run:{run.name}/clips/{i}/audio")
        assert r.status_code == 200 and r.data == (reference / path).read_bytes()
    assert client.get(f"/api/gallery/run:{run.name}/clips/0/analyze").status_code == 200
    assert 'id="audio-building"' not in client.get("/gallery").get_data(as_text=True)


def test_the_gallery_names_each_missing_folder_and_its_command(app_factory, tiny_run, tmp_path):
    """A run trained on several folders (as the shipped model: the default set and two halves
    of real speakers): each missing one is named with the command that makes it."""
    runs = tmp_path / "runs"
    runs.mkdir()
    data = tmp_path / "data"
    run = copy_run(tiny_run, runs, "20990203-000003-kws", {}, data=str(data))
    config = json.loads((run / "config.json").read_text())
    config["datasets"] = [{"path": str(data / "tones")}, {"path": str(data / "real-half1")}]
    (run / "config.json").write_text(json.dumps(config))
    (data / "tones").mkdir(parents=True)
    app = app_factory(HARK_DATA=str(data), HARK_RUNS=str(runs), HARK_MODEL=str(run), HARK_AUTO_TRAIN=False)
    audio = app.test_client().get(f"/api/gallery/run:{run.name}/clips").get_json()["audio"]
    assert audio["available"] is False and audio["partial"] is True
    assert audio["message"].endswith(f"clips in {data / 'real-half1'} is not on this machine.") is False
    assert "real-half1 is not on this machine" in audio["message"] and "tones" not in audio["message"]
    assert audio["command"].startswith("python -m ml data speakers ../shared/speech/words "
                                       "../shared/speech/extra --half 1 --repeat 3 --dest ")
    page = app.test_client().get("/gallery").get_data(as_text=True)
    assert 'id="audio-missing"' in page and "--half 1 --repeat 3" in page


def test_gallery_never_builds_a_folder_that_is_not_the_default_set(app_factory, tiny_run, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    run = copy_run(tiny_run, runs, "20990203-000002-kws", {}, data=str(tmp_path / "elsewhere" / "default"))
    app = app_factory(HARK_DATA=str(tmp_path / "data"), HARK_RUNS=str(runs), HARK_MODEL=str(run),
                      HARK_AUTO_TRAIN=False, HARK_PUBLIC_DATA=str(tmp_path / "elsewhere"))
    client = app.test_client()
    body = client.get(f"/api/gallery/run:{run.name}/clips").get_json()
    assert body["audio"]["available"] is False and body["audio"].get("building") is None
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "data").exists()
    assert "audio-missing" in client.get("/gallery").get_data(as_text=True)


# ---- 5, 7, 8. upload wording, phone tables, keyboard matrix, compressed Plotly ----------------

@pytest.mark.parametrize("data, what", [
    (b"these are my notes, not a recording\n", "this file is text, not audio"),
    (b"<!doctype html><html><body>hi</body></html>", "this file is a web page (HTML), not audio"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "this file is a PNG image"),
    (b"ID3\x03\x00\x00\x00" + bytes(64), "this file is MP3 audio, which Hark does not read"),
])
def test_a_file_that_is_not_audio_is_named_for_what_it_is(app, data, what):
    import io

    r = app.test_client().post("/api/analyze", data={"file": (io.BytesIO(data), "notes.wav")})
    assert r.status_code == 415
    assert r.get_json()["error"] == f"notes.wav: unsupported file type: {what}; send WAV, FLAC or OGG audio"


def test_confusion_matrix_has_a_keyboard_table_beside_the_chart(app, runs):
    html = app.test_client().get(f"/gallery?source=run:{B_ID}").get_data(as_text=True)
    metrics = json.loads((runs / B_ID / "metrics.json").read_text())
    n = len(metrics["labels"])
    assert html.count('class="confusion-cell') == n * n
    assert html.count('tabindex="0"\n') + html.count('tabindex="0" ') >= 1
    assert 'aria-label="true yes, heard yes:' in html


def test_plotly_is_sent_gzip_compressed(app):
    from webapp.frontend.assets import plotly_js

    client = app.test_client()
    path, version = plotly_js()
    r = client.get(f"/vendor/plotly-{version}.min.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["Vary"]
    assert len(r.data) < path.stat().st_size / 3
    assert gzip.decompress(r.data) == path.read_bytes()
    plain = client.get(f"/vendor/plotly-{version}.min.js", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.data == path.read_bytes()
