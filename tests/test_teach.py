"""Teaching a new word to the shipped model (ml/teach.py) and the activation guard (ml/guard.py).

The takes are eSpeak NG renders (the espeakng-loader wheel) of words the shipped model
never learned as commands, in a few voices; the words are then said by other voices and
at other speeds, which the teaching never heard.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml import guard, rehearsal, runs, teach
from ml.audio import to_model_rate
from ml.config import TrainConfig
from tests.helpers import ROOT

DEFAULT = ROOT / "models" / "default"
TAUGHT_VOICES = [("en", 150, 40), ("en-us", 170, 60), ("en-gb-x-rp", 140, 50), ("en", 190, 70)]
OTHER_VOICES = [("en-us", 130, 30), ("en-gb-x-rp", 180, 65), ("en", 165, 45), ("en-us", 200, 55)]


def render(word: str, voice: str, rate: int, pitch: int, start: int = 2000) -> np.ndarray:
    from ml.synth import _espeak

    wave = to_model_rate(np.asarray(_espeak.synth(word, voice, rate, pitch, 50), np.float32),
                         _espeak.sample_rate())
    clip = np.random.default_rng(rate + pitch).normal(0, 0.002, 16000).astype(np.float32)
    said = 0.5 * wave[:16000 - start] / np.abs(wave).max()
    clip[start:start + len(said)] += said
    return clip


@pytest.fixture(scope="module")
def espeak():
    try:
        from ml.synth import _espeak

        _espeak.paths()
    except Exception as exc:   # noqa: BLE001
        pytest.skip(f"eSpeak NG (espeakng-loader) is not usable here: {exc}")
    if not rehearsal.has_pack(DEFAULT):
        pytest.fail("models/default has no rehearsal pack")


def takes_folder(root: Path, words: dict[str, list[tuple]]) -> Path:
    """A data folder of takes: word -> the (voice, rate, pitch) of each take."""
    for word, voices in words.items():
        (root / word).mkdir(parents=True, exist_ok=True)
        for i, (voice, rate, pitch) in enumerate(voices):
            for shift in (1200, 3500):
                sf.write(root / word / f"{i:08x}_nohash_{shift}.wav",
                         render(word, voice, rate, pitch, shift), 16000, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def taught(espeak, tmp_path_factory):
    """The shipped model taught "lamp" (a word its data never had) from 8 takes."""
    tmp = tmp_path_factory.mktemp("teach")
    data = takes_folder(tmp / "lamp-takes", {"lamp": TAUGHT_VOICES})
    cfg = TrainConfig(data=str(data), init=str(DEFAULT), runs=str(tmp / "runs"), split="random")
    from ml.train import train

    rows = []
    run = train(cfg, on_epoch=rows.append, verbose=0, log=lambda m: None)
    return run, rows


def test_a_taught_word_is_heard_from_other_voices_and_the_old_words_are_kept(taught):
    from ml.classifier import Classifier

    run, _ = taught
    config = runs.read_json(run / "config.json")
    assert config["mode"] == "teach" and config["gate_labels"] == ["lamp"]
    assert config["unknown_weight"] == runs.read_json(DEFAULT / "config.json")["unknown_weight"]
    assert config["detector"] == runs.read_json(DEFAULT / "config.json")["detector"]
    clf, base = Classifier(run), Classifier(DEFAULT)
    assert clf.labels == sorted(base.labels + ["lamp"])
    heard = [clf.classify(render("lamp", *v)).label for v in OTHER_VOICES]
    assert heard.count("lamp") >= 3, heard
    # The words it knew: the same answers as before, nearly the same probabilities.
    words = [render(w, *v) for w in ("yes", "stop", "left") for v in OTHER_VOICES[:2]]
    old, new = base.predict_batch(np.stack(words)), clf.predict_batch(np.stack(words))
    mapped = new[:, [clf.labels.index(label) for label in base.labels]]
    assert list(old.argmax(1)) == list(mapped.argmax(1))
    assert np.allclose(new.sum(1), 1.0, atol=1e-4)


def test_teaching_reports_its_stages_and_the_epochs_asked_for(taught):
    run, rows = taught
    stages = [r["stage"] for r in rows]
    assert stages[0] == "reading the rehearsal pack"
    takes = len(runs.read_json(run / "split.json")["train"])
    assert f"embedding {takes * 15} clips ({takes} takes, 10 noisy copies and 4 off-centre copies of each)" in stages
    epochs = [r for r in rows if "epoch" in r]
    assert epochs and all(r["epochs"] == teach.EPOCHS for r in epochs)
    assert epochs[0]["stage"] == f"training the gate: epoch 1 of {teach.EPOCHS}"
    assert stages[-1] == "testing"


def test_teach_mode_says_why_it_cannot_teach(espeak, tmp_path):
    from ml.dataset import DataError

    data = takes_folder(tmp_path / "yes-takes", {"yes": TAUGHT_VOICES[:1]})
    cfg = TrainConfig(data=str(data), init=str(DEFAULT), mode="teach", runs=str(tmp_path))
    with pytest.raises(DataError, match="nothing to teach"):
        teach.can_teach(cfg)
    assert not teach.can_teach(TrainConfig(data=str(data), init=str(DEFAULT), runs=str(tmp_path)))


def test_the_guard_passes_an_equal_version_and_refuses_a_worse_one(tmp_path):
    from ml.classifier import Classifier

    worse = tmp_path / "worse"
    shutil.copytree(DEFAULT, worse)
    config = runs.read_json(worse / "config.json")
    runs.write_json(worse / "config.json", {**config, "unknown_weight": 0.002})
    from ml.graph import write_serving_graphs

    write_serving_graphs(worse)                     # the weight is part of the served graph
    stick = guard.yardstick(tmp_path / "check")
    same = guard.compare(Classifier(DEFAULT), Classifier(DEFAULT), stick)
    assert same["ok"] and same["reasons"] == []
    assert same["candidate"]["check set"]["accuracy"] >= 0.9
    assert same["candidate"]["recording"]["hits"] >= 20
    verdict = guard.compare(Classifier(worse), Classifier(DEFAULT), stick)
    assert not verdict["ok"]
    assert any(r.startswith(("accuracy on the check set", "it finds")) for r in verdict["reasons"]), verdict


def test_the_check_recording_scores_hits_wrong_labels_and_false_alarms():
    truth = [{"centre": 1.0, "label": "yes"}, {"centre": 3.0, "label": "no"}]
    found = [{"time_s": 1.2, "label": "yes"}, {"time_s": 2.9, "label": "go"},
             {"time_s": 6.0, "label": "up"}]
    assert guard.score(found, truth) == {"commands": 2, "hits": 1, "wrong": 1, "false_alarms": 1}


def _upload_takes(app, name: str, words: dict[str, list[tuple]]) -> str:
    from webapp.datasets import store

    with app.app_context():
        data = Path(app.config["HARK_DATA"])
        ds = store.create(data, name, list(words))
        clips = []
        for word, voices in words.items():
            for i, (voice, rate, pitch) in enumerate(voices):
                for shift in (1200, 3500):
                    buf = io.BytesIO()
                    sf.write(buf, render(word, voice, rate, pitch, shift), 16000, format="WAV")
                    clips.append(store.prepare(buf.getvalue(), word, f"{word}{i}.wav",
                                               f"speaker{i % 2}", "upload"))
        store.add(ds, clips)
        return ds.key


def _shipped_app(tmp_path):
    """An app serving the shipped model, registered as a version as the server's start does."""
    from tests.helpers import make_app
    from webapp.training import startup

    app = make_app(tmp_path, HARK_DEFAULT_MODEL=str(DEFAULT))
    startup.check(app, auto_train=False)
    return app


def _active_id(admin) -> int:
    return next(v["id"] for v in admin.get("/admin/api/versions").get_json()["versions"] if v["active"])


def test_a_job_teaches_through_the_api_without_building_the_default_set(espeak, tmp_path):
    """The issue's contract: dataset default + the takes, init the active version, activate."""
    from tests.helpers import login

    app = _shipped_app(tmp_path)
    key = _upload_takes(app, "lamps", {"lamp": TAUGHT_VOICES})
    admin = app.test_client()
    headers = {"X-CSRFToken": login(admin)}
    active = _active_id(admin)
    answer = admin.post("/admin/api/jobs", headers=headers,
                        json={"dataset": ["default", key], "init": active, "activate": True})
    assert answer.status_code == 202, answer.get_json()
    job = admin.get(f"/admin/api/jobs/{answer.get_json()['id']}").get_json()
    assert job["state"] == "succeeded", job["log_tail"]
    assert job["activation"]["activated"] is True, job["activation"]
    assert job["activation"]["guard"]["ok"]
    assert not (tmp_path / "data" / "default").exists()       # the pack stood for it
    log = job["log_tail"]
    for stage in ("reading the rehearsal pack", "embedding", "training the gate: epoch 1 of 30",
                  "testing", "check set: accuracy"):
        assert stage in log, (stage, log)
    assert _active_id(admin) != active
    assert "lamp" in next(v for v in admin.get("/admin/api/versions").get_json()["versions"]
                          if v["active"])["labels"]


def test_a_worse_version_is_not_activated_and_the_job_says_why(tmp_path):
    """A model of tones fails on speech: its job succeeds, the shipped model keeps serving."""
    from tests.helpers import login

    app = _shipped_app(tmp_path)
    admin = app.test_client()
    headers = {"X-CSRFToken": login(admin)}
    active = _active_id(admin)
    from ml.synth.tones import make_tone_set

    tones = make_tone_set(tmp_path / "tones")
    answer = admin.post("/admin/api/jobs", headers=headers, json={
        "dataset": "folder", "folder": str(tones), "arch": "kws", "epochs": 1, "activate": True})
    assert answer.status_code == 202, answer.get_json()
    job = admin.get(f"/admin/api/jobs/{answer.get_json()['id']}").get_json()
    assert job["state"] == "succeeded", job["log_tail"]
    assert job["activation"]["activated"] is False
    assert "accuracy on the check set" in job["activation"]["why"]
    assert "succeeded, not activated: accuracy on the check set" in job["log_tail"]
    assert _active_id(admin) == active
    change = admin.get(f"/admin/api/versions/{job['version_id']}/activation").get_json()
    assert change["risky"] and not change["guard"]["ok"]
    assert any(w.startswith("The check before activation found it worse") for w in change["warnings"])


def test_the_data_set_page_teaches_a_word_the_base_called_unknown(espeak, tmp_path):
    """"on" is one of the default set's `_unknown_` words: the page says so, teaches it, and the
    new version hears it while "off" stays `_unknown_`."""
    from ml.classifier import Classifier
    from tests.helpers import login

    app = _shipped_app(tmp_path)
    key = _upload_takes(app, "switches", {"on": TAUGHT_VOICES[:3]})
    admin = app.test_client()
    token = login(admin)
    page = admin.get(f"/admin/datasets/{key}").get_data(as_text=True)
    assert "Teach these words" in page and 'id="teach-unknown"' in page
    assert "<strong>on</strong>" in page
    r = admin.post(f"/admin/datasets/{key}/teach", data={"csrf_token": token})
    assert r.status_code == 302 and "/training/jobs/" in r.headers["Location"]
    job_page = admin.get(r.headers["Location"]).get_data(as_text=True)
    assert 'id="job-activation" data-activated="true"' in job_page, job_page
    assert 'id="job-thin"' in job_page and "Fewer than 20 test clips of" in job_page
    job = admin.get("/admin/api/jobs").get_json()["jobs"][0]
    assert job["params"]["mode"] == "teach" and job["params"]["dataset"] == ["default", key]
    run = Path(job["run_dir"])
    config = runs.read_json(run / "config.json")
    assert config["taught"]["taken_from_unknown"] == ["on"]
    clf = Classifier(run)
    heard = [clf.classify(render("on", *v)).label for v in OTHER_VOICES]
    assert heard.count("on") >= 2, heard
    assert [clf.classify(render("off", *v)).label for v in OTHER_VOICES].count("on") <= 1
    # Its pack carries the takes (alone, once noisy, once off centre), so it can be taught again.
    takes = len(runs.read_json(run / "split.json")["train"])
    assert len(rehearsal.read(run)) == len(rehearsal.read(DEFAULT)) + 3 * takes
    # Now nothing is new: the page says so and the API refuses with the reason.
    page = admin.get(f"/admin/datasets/{key}").get_data(as_text=True)
    assert 'id="teach-why"' in page and "all words the active version knows" in page
    again = admin.post(f"/admin/api/datasets/{key}/teach", headers={"X-CSRFToken": token})
    assert again.status_code == 409 and "nothing to teach" in again.get_json()["error"]


def test_takes_that_look_like_fragments_are_flagged():
    from ml.audio import take_problems

    whole = np.zeros(16000, np.float32)
    whole[5000:9000] = 0.4 * np.sin(np.arange(4000) * 0.2)
    assert take_problems(whole) == []
    assert take_problems(0.02 * whole) == ["too quiet"]
    short = np.zeros(16000, np.float32)
    short[7000:8000] = 0.4 * np.sin(np.arange(1000) * 0.2)
    assert take_problems(short) == ["too short"]
    cut = np.zeros(16000, np.float32)
    cut[:3000] = 0.4 * np.sin(np.arange(3000) * 0.2)
    assert take_problems(cut) == ["cut at the start"]
    assert take_problems(cut[::-1].copy()) == ["cut at the end"]


def test_an_upload_says_which_takes_look_like_fragments(admin, app):
    from webapp.datasets import store

    with app.app_context():
        store.create(Path(app.config["HARK_DATA"]), "frag", ["hey"])
    short = np.zeros(16000, np.float32)
    short[7000:8000] = 0.4 * np.sin(np.arange(1000) * 0.2)
    files = []
    for name, wave in (("short.wav", short), ("quiet.wav", 0.05 * short)):   # quiet: not silent
        buf = io.BytesIO()
        sf.write(buf, wave, 16000, format="WAV")
        files.append((io.BytesIO(buf.getvalue()), name))
    r = admin.post("/admin/api/datasets/user:frag/clips", headers=admin.headers,
                   data={"label": "hey", "speaker": "me", "files": files})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert [a["problems"] for a in body["added"]] == [["too short"], ["too quiet"]]
    assert body["fragments"] == 2


def test_a_taught_version_exports_as_one_graph(taught, tmp_path):
    """The gate and the members are one graph: the bundle's model agrees with the served one
    (the export checks it) and knows the taught word."""
    import zipfile

    from ml.export.writers import export

    result = export(taught[0], "bundle", tmp_path / "taught.zip")
    assert result["bytes"] > 0
    with zipfile.ZipFile(tmp_path / "taught.zip") as zf:
        names = {Path(n).name for n in zf.namelist()}
        labels = json.loads(next(zf.read(n) for n in zf.namelist() if n.endswith("labels.json")))
    assert {"model.tflite", "predict.py"} <= names
    assert labels == runs.labels_of(taught[0])
