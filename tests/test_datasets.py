"""Data sets of the admin's own: make one, add clips, train on it, evaluate on it.

Real files under a throwaway HARK_DATA, real decoding, real training on tone clips (the
queue runs jobs inline). Every bad input answers 4xx with a message and stores nothing.
"""
from __future__ import annotations

import builtins
import csv
import errno
import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from ml import config
from ml.synth.tones import tone_clip
from tests.helpers import login
from webapp.database import db
from webapp.datasets import store
from webapp.tables import ModelVersion, TrainingJob
from webapp.training import jobs, startup
from webapp.training import params as job_params

API = "/admin/api/datasets"
HI = 2500.0


def data_dir(app) -> Path:
    return Path(app.config["HARK_DATA"])


def wav(freq=1500.0, rate=16000, seconds=1.0, seed=3, channels=1, level=1.0) -> bytes:
    wave = tone_clip(freq, np.random.default_rng(seed), seconds=seconds, rate=rate) * level
    if channels > 1:
        wave = np.column_stack([wave] * channels)
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def upload(admin, files, label="yes", speaker="Ann", key="user:me", **extra):
    data = {"label": label, "speaker": speaker, **extra,
            "files": [(io.BytesIO(content), name) for name, content in files]}
    return admin.post(f"{API}/{key}/clips", data=data, headers=admin.headers,
                      content_type="multipart/form-data")


def make_set(admin, name="me", labels=("yes", "no")):
    r = admin.post(API, json={"name": name, "labels": list(labels)}, headers=admin.headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def stored(app, name="me") -> list[str]:
    """Files of the data set, its own bookkeeping (hidden files and folders) left out."""
    root = data_dir(app) / "user" / name
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def zipped(members: dict, **write) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in members.items():
            z.writestr(name, content, **write)
    return buf.getvalue()


# ---- making data sets and adding clips ----------------------------------------------------------

def test_an_upload_is_stored_as_one_second_of_16_khz_mono_under_safe_new_names(app, admin):
    made = make_set(admin)
    assert made["key"] == "user:me" and made["labels"] == {"no": 0, "yes": 0}
    r = upload(admin, [("take one.wav", wav(rate=48000, seconds=2.5, channels=2)),
                       ("../../etc/passwd.wav", wav(seed=4))])
    assert r.status_code == 201, r.get_json()
    added = r.get_json()["added"]
    speaker = store.speaker_id_of("Ann")
    assert [a["file"] for a in added] == [f"{speaker}_nohash_0.wav", f"{speaker}_nohash_1.wav"]
    assert r.get_json()["labels"] == {"no": 0, "yes": 2}
    for a in added:
        info = sf.info(data_dir(app) / "user" / "me" / "yes" / a["file"])
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")
    # The same speaker again: new numbers, never a file replaced.
    before = (data_dir(app) / "user/me/yes" / added[0]["file"]).read_bytes()
    r = upload(admin, [("again.wav", wav(seed=5))])
    assert r.get_json()["added"][0]["file"] == f"{speaker}_nohash_2.wav"
    assert (data_dir(app) / "user/me/yes" / added[0]["file"]).read_bytes() == before
    rows = list(store.read_manifest(store.get(data_dir(app), "user:me")))
    assert [(r["file"], r["speaker"], r["source"]) for r in rows] == [
        (f"yes/{speaker}_nohash_0.wav", "Ann", "upload:take one.wav"),
        (f"yes/{speaker}_nohash_1.wav", "Ann", "upload:passwd.wav"),
        (f"yes/{speaker}_nohash_2.wav", "Ann", "upload:again.wav")]
    audio = admin.get(added[0]["audio_url"])
    assert audio.status_code == 200 and audio.mimetype == "audio/wav" and audio.data[:4] == b"RIFF"
    listing = admin.get(f"{API}/user:me/clips?label=yes").get_json()
    assert listing["total"] == 3 and listing["clips"][0]["speaker"] == "Ann"


def test_a_recording_is_cut_to_the_loudest_second_around_the_word(app, admin):
    make_set(admin)
    rate = 48000
    wave = np.random.default_rng(1).normal(0, 0.002, 3 * rate).astype(np.float32)
    t = np.arange(int(0.4 * rate)) / rate
    wave[int(1.8 * rate):int(2.2 * rate)] += 0.5 * np.sin(2 * np.pi * 1500 * t)   # the word at 1.8 s
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
    r = upload(admin, [("yes.wav", buf.getvalue())], source="recording")
    assert r.status_code == 201
    clip, _ = sf.read(data_dir(app) / "user/me/yes" / r.get_json()["added"][0]["file"])
    loud = np.flatnonzero(np.abs(clip) > 0.1)
    assert len(clip) == 16000 and loud.size and loud[0] > 0 and loud[-1] < 16000 - 1
    assert store.read_manifest(store.get(data_dir(app), "user:me"))[0]["source"] == "recording"


@pytest.mark.parametrize("files, message", [
    ([("notes.wav", b"hello, this is not audio at all" * 10)], "not an audio file"),
    ([("long.wav", wav(seconds=12.0))], "longer than 10 s"),
    ([("short.wav", wav(seconds=0.1))], "too short"),
    ([("quiet.wav", wav(freq=1500.0, level=0.001))], "silent"),
    ([("good.wav", wav()), ("bad.wav", b"RIFF\xff\xff\xff\xffWAVEfmt ")], "nothing was stored"),
])
def test_bad_files_are_refused_with_a_message_and_store_nothing(app, admin, files, message):
    make_set(admin)
    before = stored(app)
    r = upload(admin, files)
    assert r.status_code == 400 and message in r.get_json()["error"], r.get_json()
    assert stored(app) == before == ["manifest.csv"]


def test_unknown_labels_speakers_and_names_are_refused(app, admin):
    make_set(admin)
    cases = [({"label": "maybe"}, "has no label maybe; add the label first"),
             ({"label": "../yes"}, "a label is a word"),
             ({"speaker": ""}, "name the speaker"),
             ({"speaker": "x" * 41}, "name the speaker")]
    for change, message in cases:
        r = upload(admin, [("a.wav", wav())], **change)
        assert r.status_code == 400 and message in r.get_json()["error"], (change, r.get_json())
    r = admin.post(f"{API}/user:me/clips", data={"label": "yes", "speaker": "Ann"}, headers=admin.headers)
    assert r.status_code == 400 and "no files" in r.get_json()["error"]
    for name in ("", "Me", "../x", "a" * 41, "-x", "x/y", 5, None):
        r = admin.post(API, json={"name": name}, headers=admin.headers)
        assert r.status_code == 400 and "name" in r.get_json()["error"], name
    assert admin.post(API, json={"name": "me"}, headers=admin.headers).status_code == 409
    for label, status in (("hey", 201), ("hey", 409), ("Hey!", 400), ("_silence_", 201), ("..", 400)):
        r = admin.post(f"{API}/user:me/labels", json={"label": label}, headers=admin.headers)
        assert r.status_code == status, (label, r.get_json())
    assert stored(app) == ["manifest.csv"]
    assert sorted(p.name for p in (data_dir(app) / "user/me").iterdir()
                  if p.is_dir() and not p.name.startswith(".")) == ["_silence_", "hey", "no", "yes"]


def test_a_zip_goes_into_one_label_and_keeps_speech_commands_speakers(app, admin):
    make_set(admin)
    archive = zipped({"yes/0a1b2c3d_nohash_0.wav": wav(seed=1), "yes/0a1b2c3d_nohash_1.wav": wav(seed=2),
                      "mine.flac": _flac(), "README.txt": "about these clips",
                      "__MACOSX/._mine.flac": "resource fork"})
    r = upload(admin, [("clips.zip", archive)], speaker="Bob")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    files = sorted(a["file"] for a in body["added"])
    assert files == ["0a1b2c3d_nohash_0.wav", "0a1b2c3d_nohash_1.wav",
                     f"{store.speaker_id_of('Bob')}_nohash_0.wav"]
    assert sorted(body["ignored"]) == ["clips.zip: README.txt", "clips.zip: __MACOSX/._mine.flac"]


def _flac() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone_clip(1500.0, np.random.default_rng(8), rate=22050), 22050, format="FLAC")
    return buf.getvalue()


def test_zips_with_path_tricks_links_or_bombs_are_refused_whole(app, admin, tmp_path):
    make_set(admin)
    good = wav()
    link = zipfile.ZipInfo("yes/link.wav")
    link.external_attr = (0o120777 << 16)          # a symbolic link
    link_zip = io.BytesIO()
    with zipfile.ZipFile(link_zip, "w") as z:
        z.writestr("ok.wav", good)
        z.writestr(link, "/etc/passwd")
    bomb = zipped({"ok.wav": good, "bomb.wav": b"RIFF" + bytes(20 * 1024 * 1024)})
    cases = [(zipped({"ok.wav": good, "../../evil.wav": good}), 400, "points outside the archive"),
             (zipped({"ok.wav": good, "/abs/evil.wav": good}), 400, "points outside the archive"),
             (link_zip.getvalue(), 400, "is a link"),
             (bomb, 413, "unpacks to"),
             (zipped({"README.txt": "no audio here"}), 400, "no audio files"),
             (b"PK\x03\x04" + b"\x00" * 100, 400, "not a readable ZIP")]
    for archive, status, message in cases:
        r = upload(admin, [("x.zip", archive)])
        assert r.status_code == status and message in r.get_json()["error"], (message, r.get_json())
    assert stored(app) == ["manifest.csv"]
    assert not (data_dir(app) / "user" / "evil.wav").exists()


def test_clips_are_deleted_by_name_only_inside_their_data_set(app, admin):
    make_set(admin)
    name = upload(admin, [("a.wav", wav())]).get_json()["added"][0]["file"]
    outside = data_dir(app) / "user" / "secret.wav"
    outside.write_bytes(wav())
    for label, file in (("..", "secret.wav"), ("yes", "..%2Fsecret.wav"), ("yes", ".lock"),
                        ("yes", "nope.wav"), ("maybe", name)):
        r = admin.delete(f"{API}/user:me/clips/{label}/{file}", headers=admin.headers)
        assert r.status_code == 404, (label, file, r.status_code)
        assert admin.get(f"{API}/user:me/clips/{label}/{file}").status_code == 404
    assert outside.is_file()
    r = admin.delete(f"{API}/user:me/clips/yes/{name}", headers=admin.headers)
    assert r.status_code == 200 and r.get_json()["labels"]["yes"] == 0
    assert stored(app) == ["manifest.csv"]
    assert store.read_manifest(store.get(data_dir(app), "user:me")) == []


def test_built_in_sets_are_listed_and_read_only(app, admin, tone_data):
    import shutil

    shutil.copytree(tone_data, data_dir(app) / "default")
    sets = admin.get(API).get_json()["datasets"]
    assert [s["key"] for s in sets] == ["default"] and sets[0]["labels"]["yes"] == 20
    r = upload(admin, [("a.wav", wav())], key="default")
    assert r.status_code == 403 and "read-only" in r.get_json()["error"]
    assert admin.delete(f"{API}/default", headers=admin.headers).status_code == 403
    assert admin.get(f"{API}/default/clips?label=yes&per_page=5").get_json()["total"] == 20
    assert admin.get(f"{API}/user:nobody").status_code == 404
    assert admin.get(f"{API}/elsewhere").status_code == 404
    page = admin.get("/admin/datasets/default").get_data(as_text=True)
    assert "read-only" in page and 'id="recorder"' not in page


def test_the_pages_make_a_set_and_upload_without_scripts(app, admin):
    r = admin.post("/admin/datasets", data={"csrf_token": admin.token, "name": "mine",
                                            "labels": "yes no hey"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/datasets/user:mine")
    page = admin.get("/admin/datasets/user:mine").get_data(as_text=True)
    assert "Record in the browser" in page and 'data-label="hey"' in page
    r = admin.post("/admin/datasets/user:mine/clips", data={
        "csrf_token": admin.token, "label": "hey", "speaker": "Cy",
        "files": [(io.BytesIO(wav()), "a.wav"), (io.BytesIO(b"not audio"), "b.wav")]},
        content_type="multipart/form-data", follow_redirects=True)
    assert "Nothing was stored" in r.get_data(as_text=True)
    r = admin.post("/admin/datasets/user:mine/clips", data={
        "csrf_token": admin.token, "label": "hey", "speaker": "Cy",
        "files": [(io.BytesIO(wav()), "a.wav")]}, content_type="multipart/form-data",
        follow_redirects=True)
    assert "1 clip(s) added to hey" in r.get_data(as_text=True)
    listing = admin.get("/admin/datasets").get_data(as_text=True)
    assert "mine" in listing and "hey <strong>1</strong>" in listing
    r = admin.post("/admin/datasets/user:mine/delete", data={"csrf_token": admin.token})
    assert r.status_code == 302 and not (data_dir(app) / "user" / "mine").exists()


def test_only_an_admin_reaches_data_sets(app):
    client = app.test_client()
    assert client.get(API).status_code == 401
    assert client.get("/admin/datasets").status_code == 302


# ---- training on data sets and fine-tuning -------------------------------------------------------

def hi_set(app, admin, name="me"):
    """A user set with a new word ("hi": a 2500 Hz tone) and "yes", said by one speaker."""
    make_set(admin, name, ("hi", "yes"))
    for label, freq in (("hi", HI), ("yes", 1500.0)):
        r = upload(admin, [(f"{label}{i}.wav", wav(freq, seed=20 + i)) for i in range(10)],
                   label=label, key=f"user:{name}")
        assert r.status_code == 201, r.get_json()


def test_the_job_form_offers_data_sets_and_versions_and_refuses_what_cannot_train(app, admin, tone_data):
    make_set(admin, "empty")
    make_set(admin, "one", ("yes",))
    upload(admin, [("a.wav", wav())], key="user:one")
    page = admin.get("/admin").get_data(as_text=True)
    assert 'value="user:empty"' in page and 'value="user:one"' in page and "Start from version" in page
    cases = [({"dataset": ["user:empty"]}, "dataset", "has no clips yet"),
             ({"dataset": ["user:one"]}, "dataset", "at least 2"),
             ({"dataset": ["user:nobody"]}, "dataset", "not a valid choice"),
             ({"dataset": []}, "dataset", "at least one data set"),
             ({"dataset": [5]}, "dataset", "list of keys"),
             ({"dataset": ["default"], "init": "no-such-version"}, "init", "no model version"),
             ({"dataset": ["default"], "init": 1.5}, "init", "id or name")]
    for body, field, message in cases:
        r = admin.post("/admin/api/jobs", json=body, headers=admin.headers)
        assert r.status_code == 400, body
        assert message in " ".join(r.get_json()["fields"][field]).lower(), (body, r.get_json())
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(TrainingJob)) == 0


def test_a_job_fine_tunes_a_version_on_several_data_sets_and_records_them(app_factory, tone_data):
    app = app_factory()
    admin = app.test_client()
    admin.token = login(admin)
    admin.headers = {"X-CSRFToken": admin.token}
    hi_set(app, admin)
    with app.app_context():
        startup.check(app, auto_train=False)                          # registers the default
        start = db.session.scalars(select(ModelVersion)).one()        # the tiny model
    r = admin.post("/admin/api/jobs", headers=admin.headers, json={
        "dataset": ["user:me", "folder"], "folder": str(tone_data), "init": start.id,
        "epochs": 2, "batch_size": 16, "activate": True,
        "learning_rate": 0.003})   # fine-tuning's default is a tenth: too gentle for a new label in 2 epochs
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["state"] == "succeeded", job
    assert job["init"] == start.name and job["arch"] == "kws"
    assert job["dataset"] == f"data set me + folder {tone_data.name}"
    assert job["params"]["dataset"] == ["user:me", "folder"]
    assert job["params"]["init_dir"] == start.run_dir
    public = admin.get("/api/training").get_json()["history"][0]
    assert public["init"] == start.name and "init_dir" not in public
    assert start.run_dir not in json.dumps(public)
    with app.app_context():
        version = db.session.get(ModelVersion, job["version_id"])
        assert version.labels == ["_silence_", "down", "go", "hi", "yes"]
        config = json.loads((Path(version.run_dir) / "config.json").read_text())
    assert config["init_from"]["run_id"] == start.name
    assert config["init_from"]["added_labels"] == ["hi"]
    assert [d["path"] for d in config["datasets"]] == [
        str(data_dir(app) / "user" / "me"), str(tone_data)]
    heard = admin.post("/api/predict", data=wav(HI, seed=77), content_type="audio/wav").get_json()
    assert heard["model"] == version.name                          # it was activated
    assert heard["label"] == "hi"


def test_a_version_is_evaluated_on_a_data_set_through_the_gallerys_job(app, admin):
    hi_set(app, admin, "tones")
    (data_dir(app) / "user/tones/hi").rename(data_dir(app) / "user/tones/go")   # labels it knows
    page = admin.get("/admin/datasets/user:tones").get_data(as_text=True)
    assert 'id="evaluate-form"' in page and 'action="/admin/api/evaluations"' in page
    folder = str((data_dir(app) / "user" / "tones").resolve())
    assert 'name="dataset" value="user:tones"' in page and folder not in page   # no server path
    r = admin.post("/admin/api/evaluations", json={"dataset": "user:tones"}, headers=admin.headers)
    assert r.status_code == 202 and r.get_json()["state"] == "succeeded", r.get_json()
    page = admin.get("/admin/datasets/user:tones").get_data(as_text=True)
    assert 'id="dataset-evaluations"' in page
    assert f"{r.get_json()['evaluation']['accuracy'] * 100:.1f}%" in page


def test_job_parameters_of_one_data_set_stay_as_they_were(app):
    with app.test_request_context():
        one = jobs.make_params(dataset="default", epochs=1)
        several = jobs.make_params(dataset=["default", "user:x"], epochs=1)
    params, stored = one.to_json(), several.to_json()
    assert isinstance(params["data"], str) and params["dataset"] == "default"
    assert params["prepare_data"] == "missing" and "init_dir" not in params
    assert stored["data"][1].endswith("/user/x") and stored["prepare_data"] == "missing"
    assert several.label() == "default synthetic set + data set x"
    cfg = job_params.of({**params, "init": "v1", "init_dir": "/runs/v1"}).train_config(params["data"], "runs")
    assert cfg.init == "/runs/v1" and cfg.folders() == [params["data"]]


def test_job_parameters_read_rows_stored_before_a_setting_existed():
    """A row is read back as it was written, and a row without a setting gets its default."""
    stored = {"kind": "admin", "dataset": "folder", "data": "/d/words", "arch": "kws", "epochs": 3,
              "activate": True, "prepare_data": "none"}
    params = job_params.of(stored)
    assert isinstance(params, job_params.TrainParams)
    assert params.train.patience == config.setting("patience").default and params.train.epochs == 3
    assert params.describe() == "kws on the folder words"
    written = params.to_json()
    assert {k: written[k] for k in stored} == stored
    assert set(written) == {"kind", "dataset", "data", "activate", "prepare_data", *config.JOB_SETTINGS}
    evaluation = {"kind": "evaluate", "dataset": "folder", "data": "/d/words", "model_dir": "/runs/v1",
                  "model": "v1", "clips": 80}
    assert job_params.of(evaluation).to_json() == evaluation
    assert job_params.of(evaluation).describe() == "evaluate v1 on the folder words"


# ---- names, label limits and archives at their edges -------------------------------------------

def test_names_and_labels_ending_in_a_newline_are_refused(app, admin):
    """`$` matches before a final newline: names are checked with full matches."""
    for body in ({"name": "abc\n"}, {"name": "abc\n", "labels": ["yes"]},
                 {"name": "fine", "labels": ["yes\n"]}):
        r = admin.post(API, json=body, headers=admin.headers)
        assert r.status_code == 400 and r.get_json()["error"], (body, r.get_json())
    assert not (data_dir(app) / "user").exists() or not any((data_dir(app) / "user").iterdir())
    make_set(admin)
    r = admin.post(f"{API}/user:me/labels", json={"label": "yes\n"}, headers=admin.headers)
    assert r.status_code == 400 and "a label is a word" in r.get_json()["error"]
    r = upload(admin, [("a.wav", wav())], label="no\n")
    assert r.status_code == 400 and "a label is a word" in r.get_json()["error"]
    for key in ("user:me\n", "user:me\r\n"):
        with pytest.raises(store.DataSetError):
            store.get(data_dir(app), key)
    assert sorted(admin.get(f"{API}/user:me").get_json()["labels"]) == ["no", "yes"]
    assert stored(app) == ["manifest.csv"]


def test_stored_evaluations_with_a_newline_in_their_name_are_not_listed(tmp_path):
    from webapp.versions.evaluations import list_evaluations

    good = "20260101-120000-v1-abcdef"
    for stem in (good, good + "\n"):
        (tmp_path / f"{stem}.json").write_text("{}")
    assert [p.stem for p in list_evaluations(tmp_path)] == [good]


def test_a_new_data_set_keeps_the_label_limit(app, admin):
    """The 100-label limit holds at creation too, before anything is made."""
    many = [f"w{i}" for i in range(store.MAX_LABELS + 1)]
    r = admin.post(API, json={"name": "many", "labels": many}, headers=admin.headers)
    assert r.status_code == 413 and f"at most {store.MAX_LABELS} labels" in r.get_json()["error"]
    assert not (data_dir(app) / "user" / "many").exists()
    r = admin.post("/admin/datasets", data={"csrf_token": admin.token, "name": "many",
                                            "labels": " ".join(many)}, follow_redirects=True)
    assert f"at most {store.MAX_LABELS} labels" in r.get_data(as_text=True)
    assert not (data_dir(app) / "user" / "many").exists()
    made = make_set(admin, "full", many[:store.MAX_LABELS] + many[:3])     # repeats count once
    assert len(made["labels"]) == store.MAX_LABELS
    r = admin.post(f"{API}/user:full/labels", json={"label": "one-more"}, headers=admin.headers)
    assert r.status_code == 413


def test_an_overlong_clip_name_is_a_404_with_a_message_not_a_500(app, admin):
    """Past the file system's 255 bytes a name raised OSError "File name too long"."""
    make_set(admin)
    upload(admin, [("a.wav", wav())])
    for name in ("a" * 300 + ".wav", "é" * 130 + ".wav"):      # 300 characters; 264 bytes
        for r in (admin.get(f"{API}/user:me/clips/yes/{name}"),
                  admin.delete(f"{API}/user:me/clips/yes/{name}", headers=admin.headers)):
            assert r.status_code == 404 and "at most 255 bytes" in r.get_json()["error"], r.status_code
        r = admin.post(f"/admin/datasets/user:me/clips/yes/{name}/delete",
                       data={"csrf_token": admin.token}, follow_redirects=True)
        assert r.status_code == 200 and "at most 255 bytes" in r.get_data(as_text=True)
    assert admin.get(f"{API}/user:me").get_json()["labels"]["yes"] == 1


def test_a_zip_of_many_small_bombs_is_refused_by_its_total_expansion(app, admin):
    """Members up to 1 MiB skipped the ratio check: 40 silent 1 MB WAVs deflate about 1,000
    to 1 and were all unpacked (255 of them: a 294 KB upload held 255 MB)."""
    make_set(admin)
    buf = io.BytesIO()
    sf.write(buf, np.zeros(500_000, np.int16), 16000, format="WAV", subtype="PCM_16")
    silent = buf.getvalue()
    assert len(silent) <= 1024 * 1024 < store.MAX_ZIP_ENTRY           # each under the old floor
    archive = zipped({f"s{i}.wav": silent for i in range(40)})
    assert len(archive) * store.MAX_ZIP_RATIO < 40 * len(silent)
    r = upload(admin, [("bomb.zip", archive)], label="yes")
    assert r.status_code == 413, r.get_json()
    assert "the archive is compressed" in r.get_json()["error"] and "zip bomb" in r.get_json()["error"]
    assert stored(app) == ["manifest.csv"]
    # A few such files stay under the 1 MiB anyone may unpack; a real clip compresses little.
    members, _ = store.zip_members(zipped({"s.wav": silent, "ok.wav": wav()}), "ok.zip")
    assert [m for m, _ in members] == ["s.wav", "ok.wav"]


# Adding a clip was once O(clips stored) (a listing of the label folder for each
# clip, the whole manifest read and written again), and a killed request left clips on disk
# that the manifest did not name.

class Work:
    """What this process reads while counting: directory entries listed, files opened for
    reading and their bytes. A cost that is counted, not timed, so a busy machine cannot
    change it."""

    def __init__(self, monkeypatch):
        self.entries = self.files = self.bytes = 0
        scandir, listdir, opener = os.scandir, os.listdir, io.open
        work = self

        class Listing:
            def __init__(self, it):
                self.it = it

            def __iter__(self):
                for entry in self.it:
                    work.entries += 1
                    yield entry

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.it.close()

        def listed(path="."):
            names = listdir(path)
            work.entries += len(names)
            return names

        def opened(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and not set(mode) & set("wax+") and os.path.isfile(file):
                work.files += 1
                work.bytes += os.path.getsize(file)
            return opener(file, mode, *args, **kwargs)

        monkeypatch.setattr(os, "scandir", lambda path=".": Listing(scandir(path)))
        monkeypatch.setattr(os, "listdir", listed)
        monkeypatch.setattr(builtins, "open", opened)
        monkeypatch.setattr(io, "open", opened)


def seed(app, name: str, label: str, n: int, speaker: str = "aaaaaaaa") -> None:
    """`n` clips in `label`, as earlier adds leave them (files and manifest rows), made
    without the store: one clip linked under n names, so 2,000 take no time."""
    ds = store.get(data_dir(app), f"user:{name}")
    one = ds.path / ".seed.wav"
    one.write_bytes(wav())
    files = [f"{label}/{speaker}_nohash_{i}.wav" for i in range(n)]
    for file in files:
        os.link(one, ds.path / file)
    one.unlink()
    with open(ds.path / store.MANIFEST, "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([file, label, speaker, "seed", ""] for file in files)


def leftovers(app, name="me") -> list[str]:
    """Staging folders and temporary files a batch left in the data set."""
    root = data_dir(app) / "user" / name
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.startswith((".adding-", ".new-")))


def test_adding_clips_costs_the_same_however_many_are_stored(app, admin, monkeypatch):
    batch = [store.prepare(wav(seed=s), "yes", f"t{s}.wav", "Ann", "test") for s in range(3)]
    costs, rewritten = {}, []
    for name, before in (("small", 10), ("big", 2_000)):
        make_set(admin, name)
        seed(app, name, "yes", before)
        seed(app, name, "no", before, speaker="bbbbbbbb")
        ds = store.get(data_dir(app), f"user:{name}")
        store.add(ds, batch[:1])                    # the first add after a change may count once
        manifest = ds.path / store.MANIFEST
        inode = manifest.stat().st_ino
        with monkeypatch.context() as m:
            work = Work(m)
            added = store.add(ds, batch)
            labels = store.counts(ds)               # what the upload answers with
        costs[name] = (work.entries, work.files, work.bytes)
        rewritten.append(manifest.stat().st_ino != inode)
        assert labels == {"no": before, "yes": before + 4}
        rows = store.read_manifest(ds)
        assert len(rows) == 2 * before + 4 and [r["file"] for r in rows[-3:]] == added
        ann = store.speaker_id_of("Ann")
        assert added == [f"yes/{ann}_nohash_{n}.wav" for n in (1, 2, 3)]
    (entries, files, read), (big_entries, big_files, big_read) = costs["small"], costs["big"]
    assert (big_entries, big_files) == (entries, files), costs
    assert big_read - read < 64, costs                 # a few more digits in the counts, no more
    assert read < 4096 and entries < 50, costs
    assert rewritten == [False, False], "the manifest was written again, not appended to"
    r = upload(admin, [("a.wav", wav())], key="user:big")
    assert r.status_code == 201 and r.get_json()["labels"] == {"no": 2_000, "yes": 2_005}


def test_a_batch_that_fails_part_way_stores_nothing(app, admin, monkeypatch):
    make_set(admin)
    assert upload(admin, [("first.wav", wav())]).status_code == 201
    ds = store.get(data_dir(app), "user:me")
    files, rows = stored(app), store.read_manifest(ds)
    link, links = os.link, []

    def disk_full_at_the_third(src, dst, *args, **kwargs):
        links.append(dst)
        if len(links) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return link(src, dst, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "link", disk_full_at_the_third)
        r = upload(admin, [(f"{i}.wav", wav(seed=i)) for i in range(5)])
    assert r.status_code == 507, r.status_code
    assert "nothing was stored" in r.get_json()["error"] and "No space left" in r.get_json()["error"]
    assert len(links) == 3
    assert stored(app) == files and store.read_manifest(ds) == rows and leftovers(app) == []
    assert admin.get(f"{API}/user:me").get_json()["labels"]["yes"] == 1
    r = upload(admin, [("next.wav", wav())])
    assert r.get_json()["added"][0]["file"] == f"{store.speaker_id_of('Ann')}_nohash_1.wav"


KILLED_ADD = """
import os, signal, sys
from pathlib import Path
import numpy as np
from webapp.datasets import store

data, stage = Path(sys.argv[1]), sys.argv[2]
link, fsync, links = os.link, os.fsync, []

def link_then_die(src, dst, *args, **kwargs):
    link(src, dst, *args, **kwargs)
    links.append(dst)
    if stage == "linking" and len(links) == 2:
        os.kill(os.getpid(), signal.SIGKILL)

def fsync_then_die(fd):
    fsync(fd)
    if stage == "manifest" and os.readlink(f"/proc/self/fd/{fd}").endswith("manifest.csv"):
        os.kill(os.getpid(), signal.SIGKILL)

os.link, os.fsync = link_then_die, fsync_then_die
t = np.arange(16000) / 16000
clips = [store.NewClip("yes", (8000 * np.sin(2 * np.pi * f * t)).astype(np.int16), "Kim",
                       store.speaker_id_of("Kim"), "killed") for f in (500, 700, 900, 1100)]
store.add(store.get(data, "user:me"), clips)
"""


@pytest.mark.parametrize("stage", ["linking", "manifest"])
def test_what_a_killed_add_left_is_rolled_back(app_factory, app, admin, stage):
    """A worker killed part-way (gunicorn's WORKER TIMEOUT) left clips on disk that the
    manifest did not name; now the next writer or the next worker's start undoes it."""
    make_set(admin)
    assert upload(admin, [("first.wav", wav())]).status_code == 201
    ds = store.get(data_dir(app), "user:me")
    files, rows = stored(app), store.read_manifest(ds)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", KILLED_ADD, str(data_dir(app)), stage],
                          env={**os.environ, "PYTHONPATH": str(root)}, cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert stored(app) != files                             # it got as far as linking clips
    if stage == "linking":       # the next add rolls it back first
        r = upload(admin, [("next.wav", wav())])
        assert r.status_code == 201 and r.get_json()["labels"] == {"no": 0, "yes": 2}
        files = sorted(files + [f"yes/{r.get_json()['added'][0]['file']}"])
        rows = rows + store.read_manifest(ds)[-1:]
    else:                        # a worker's start rolls it back
        app_factory(HARK_DATA=str(data_dir(app)))
        assert store.counts(ds) == {"no": 0, "yes": 1}
    assert stored(app) == files and store.read_manifest(ds) == rows and leftovers(app) == []
    assert len(store.read_manifest(ds)) == len(files) - 1    # every clip on disk is in the manifest


# ---- who may hear a data set ---------------------------------------------------------------------

def test_a_data_set_is_private_until_the_admin_makes_it_public(app, admin, tone_data):
    """The per-set switch: stored in the set's own dataset.json, set by the API and the page,
    checked (a clear 4xx for anything but true or false, for Hark's read-only sets and for
    no such set); summaries name the set's folder inside the data folder, never a server path."""
    import shutil

    make_set(admin, "voice")
    shutil.copytree(tone_data, data_dir(app) / "default")
    server = str(data_dir(app).resolve())
    listed = admin.get(API).get_json()["datasets"]
    assert {s["key"]: s["public"] for s in listed} == {"default": True, "user:voice": False}
    assert [s["folder"] for s in listed] == ["default", "user/voice"]
    assert all("path" not in s for s in listed) and server not in admin.get(API).get_data(as_text=True)
    url = f"{API}/user:voice"
    for body, status, message in [({"public": "maybe"}, 400, "true or false"),
                                  ({"public": None}, 400, "true or false"),
                                  ({"public": True, "name": "x"}, 400, '{"public": true}'),
                                  ([True], 400, "JSON object")]:
        r = admin.patch(url, json=body, headers=admin.headers)
        assert r.status_code == status and message in r.get_json()["error"], body
    assert admin.patch(f"{API}/default", json={"public": False}, headers=admin.headers).status_code == 403
    assert admin.patch(f"{API}/user:nobody", json={"public": True}, headers=admin.headers).status_code == 404
    assert not (data_dir(app) / "user" / "voice" / "dataset.json").exists()     # refusals stored nothing
    r = admin.patch(url, json={"public": True}, headers=admin.headers)
    assert r.status_code == 200 and r.get_json()["public"] is True
    assert json.loads((data_dir(app) / "user" / "voice" / "dataset.json").read_text()) == {"public": True}
    assert stored(app, "voice") == ["dataset.json", "manifest.csv"]
    assert upload(admin, [("a.wav", wav())], key="user:voice").status_code == 201   # still a data set
    page = admin.get("/admin/datasets/user:voice").get_data(as_text=True)
    assert 'id="public-form"' in page and "Make it private" in page and server not in page
    r = admin.post("/admin/datasets/user:voice/public", data={"csrf_token": admin.token, "public": "false"},
                   follow_redirects=True)
    assert "are private" in r.get_data(as_text=True)
    assert admin.get(url).get_json()["public"] is False
    r = admin.post("/admin/datasets/user:voice/public", data={"csrf_token": admin.token, "public": "sideways"},
                   follow_redirects=True)
    assert r.status_code == 200 and "Public must be true or false" in r.get_data(as_text=True)
    anyone = app.test_client()
    assert anyone.patch(url, json={"public": True}).status_code in (400, 401)
    assert admin.get(url).get_json()["public"] is False
