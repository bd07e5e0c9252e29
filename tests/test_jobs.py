"""Training jobs, model versions and the startup check, with the queue in immediate mode.

Real SQLite files, real training on the tiny tone set, real pointer files; the
queue runs each task inside the call that enqueues it (Huey's immediate mode).
tests/test_consumer.py runs the same jobs through a real consumer process.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from ml.synth.tones import make_tone_set
from tests.helpers import copy_run, login, make_app
from webapp.database import at_head, db, utcnow
from webapp.tables import JobEpoch, ModelVersion, TrainingJob
from webapp.training import jobs, runner, startup
from webapp.versions import registry
from webapp.versions.model_store import resolve


def folder_form(token: str, folder: Path, **extra) -> dict:
    form = {"csrf_token": token, "dataset": "folder", "folder": str(folder), "arch": "kws",
            "epochs": "1", "batch_size": "16", "learning_rate": "0.003", "augment": "arch",
            "split": "speaker", "patience": "6", "mode": "auto"}
    form.update({k: str(v) for k, v in extra.items()})
    return form


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    """The tone set with enough speakers for a validation split (curves with both lines)."""
    return make_tone_set(tmp_path_factory.mktemp("tones20"), speakers=20, per_speaker=1)


def wait_for(predicate, timeout=120.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


# ---- database -----------------------------------------------------------------------

def test_the_catalogue_and_the_builders_name_the_same_architectures():
    from ml.config import ARCHS, FEATURES
    from ml.models import BUILDERS

    assert list(BUILDERS) == [name for name, info in ARCHS.items() if not info.members]
    assert all(info.features in (*FEATURES, "embedding") for info in ARCHS.values() if not info.members)
    assert all(set(info.members) <= set(BUILDERS) for info in ARCHS.values())


def test_sqlite_database_uses_wal_and_foreign_keys_and_is_migrated(app):
    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert at_head(app)
        names = set(db.inspect(db.engine).get_table_names())
        assert {"users", "training_jobs", "training_job_epochs", "model_versions",
                "alembic_version"} <= names
        job = TrainingJob(params={"kind": "test"}, state="queued", log_tail="")
        db.session.add(job)
        db.session.commit()
        db.session.add(JobEpoch(job_id=job.id, epoch=1))
        db.session.commit()
        db.session.delete(job)            # progress rows go with their job
        db.session.commit()
        assert db.session.scalar(select(db.func.count()).select_from(JobEpoch)) == 0
        db.session.add(TrainingJob(params={}, state="exploded", log_tail=""))
        with pytest.raises(IntegrityError):    # the state column only takes the five states
            db.session.commit()
        db.session.rollback()


def test_migrations_go_down_and_up_again(tmp_path):
    from flask_migrate import downgrade, upgrade

    from webapp.database import MIGRATIONS

    app = make_app(tmp_path)
    with app.app_context():
        downgrade(directory=str(MIGRATIONS), revision="base")
        assert "training_jobs" not in db.inspect(db.engine).get_table_names()
        upgrade(directory=str(MIGRATIONS))
        assert at_head(app)


def test_database_url_setting_is_used(tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    app = make_app(tmp_path, HARK_DATABASE_URL=url)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == url
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (tmp_path / "instance" / "hark.db").exists()


# ---- a job from the admin form to a model version --------------------------------------

def test_a_job_from_the_form_trains_registers_and_activates(app, admin, tones, tiny_run):
    pointer = Path(app.config["HARK_MODEL"])
    assert resolve(pointer).resolve() == tiny_run.resolve()     # the default comes first
    with app.app_context():
        startup.check(app, auto_train=False)                     # registers the shipped default

    r = admin.post("/admin/jobs", data=folder_form(admin.token, tones, activate="y"))
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin")

    with app.app_context():
        job = db.session.scalars(select(TrainingJob)).one()
        assert job.state == "succeeded", (job.error, job.log_tail)
        assert job.created_by == "admin" and job.error is None
        assert [row.epoch for row in job.progress] == [1]
        assert job.progress[0].loss is not None and job.progress[0].val_accuracy is not None
        assert "training kws: epoch 1 of 1" in job.log_tail
        version = db.session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
        assert version.active and version.activated_by == "admin"
        assert version.size_bytes > 10_000 and version.latency_ms > 0
        assert 0 <= version.test_accuracy <= 1 and job.metrics["accuracy"] == version.test_accuracy
        run_dir = Path(version.run_dir)
        assert run_dir.parent == Path(app.config["HARK_RUNS"]).resolve()
        assert job.run_dir == str(run_dir)
        default = db.session.scalar(select(ModelVersion).where(ModelVersion.source == "default"))
        assert not default.active
    assert resolve(pointer).resolve() == run_dir                 # the pointer names the new run
    assert admin.get("/api/health").get_json()["model"] == run_dir.name
    page = admin.get("/admin").get_data(as_text=True)
    assert run_dir.name in page and "succeeded" in page


def test_the_form_refuses_bad_input_with_clear_messages(app, admin, tmp_path, tone_data):
    one_label = tmp_path / "one-label"
    shutil.copytree(tone_data / "yes", one_label / "yes")
    cases = [
        ({"folder": ""}, "give the folder"),
        ({"folder": str(tmp_path / "nope")}, "no such folder on the server"),
        ({"folder": "relative/path"}, "absolute path"),
        ({"folder": str(one_label)}, "at least 2 are needed"),
        ({"epochs": "0"}, "epochs must be between 1 and 500"),
        ({"epochs": "many"}, "Not a valid integer"),
        ({"batch_size": "100000"}, "the batch size must be between"),
        ({"learning_rate": "2"}, "learning rate must be between"),
        ({"arch": "gpt"}, "Not a valid choice"),
        ({"split": "alphabetical"}, "Not a valid choice"),
        ({"dataset": "mini"}, "Not a valid choice"),      # not downloaded in this instance
    ]
    for change, message in cases:
        form = folder_form(admin.token, tone_data)
        form.update(change)
        r = admin.post("/admin/jobs", data=form)
        html = r.get_data(as_text=True)
        assert r.status_code == 400, change
        assert message.lower() in html.lower(), (change, message)
        assert "The job was not started" in html
    api = admin.post("/admin/api/jobs", json={"dataset": "folder", "folder": "", "arch": "kws",
                                              "epochs": 0, "batch_size": 16, "learning_rate": 0.003,
                                              "augment": "arch", "split": "speaker"},
                     headers={"X-CSRFToken": admin.token})
    assert api.status_code == 400
    body = api.get_json()
    assert set(body["fields"]) == {"folder", "epochs"} and body["error"]
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(TrainingJob)) == 0


def test_a_failing_job_is_marked_failed_and_changes_nothing(app, admin, tone_data, tmp_path):
    gone = tmp_path / "vanishing"
    shutil.copytree(tone_data, gone)
    before = Path(app.config["HARK_MODEL"]).read_text()
    with app.test_request_context():
        params = jobs.make_params(dataset="folder", data=str(gone), epochs=1, batch_size=16,
                                  activate=True)
    shutil.rmtree(gone)                        # the data disappears before the job runs
    with app.app_context():
        job = jobs.submit(params, "admin")
        assert job.state == "failed"
        assert "no such data folder" in job.error and "failed:" in job.log_tail
        assert job.finished_at is not None and job.run_dir is None
        assert db.session.scalar(select(db.func.count()).select_from(ModelVersion)) == 0
    assert Path(app.config["HARK_MODEL"]).read_text() == before
    runs = Path(app.config["HARK_RUNS"])
    assert not runs.exists() or not any(runs.iterdir())
    history = admin.get("/api/training").get_json()["history"]
    assert history[0]["state"] == "failed"
    assert str(gone) not in history[0]["error"]          # the public page shows no server path


# ---- queue semantics without a consumer ----------------------------------------------------

@pytest.fixture
def queued_app(app_factory):
    """A real SQLite queue and no consumer: jobs stay queued until a test runs them."""
    return app_factory(HARK_QUEUE_IMMEDIATE=False)


def test_cancelling_a_queued_job_means_it_never_runs(queued_app, tone_data):
    from webapp.training.queue import queue

    with queued_app.app_context():
        job = jobs.submit(jobs.make_params(dataset="folder", data=str(tone_data), epochs=1), "admin")
        assert job.state == "queued" and job.id in queue(queued_app).pending_job_ids()
        assert jobs.cancel(job.id).state == "cancelled"
        runner.run_job(job.id)                    # the consumer takes the message later: a no-op
        job = db.session.get(TrainingJob, job.id, populate_existing=True)
        assert job.state == "cancelled" and job.started_at is None
        with pytest.raises(jobs.JobError) as refused:
            jobs.cancel(job.id)
        assert refused.value.status == 409
        with pytest.raises(jobs.JobError) as missing:
            jobs.cancel(9999)
        assert missing.value.status == 404


def test_cancelling_a_running_job_stops_it_and_leaves_nothing(queued_app, tone_data):
    runs = Path(queued_app.config["HARK_RUNS"])
    before = Path(queued_app.config["HARK_MODEL"]).read_text()
    with queued_app.app_context():
        job = jobs.submit(jobs.make_params(dataset="folder", data=str(tone_data), epochs=300,
                                           batch_size=8, patience=300, activate=True), "admin")
    job_id = job.id

    def consume():
        with queued_app.app_context():
            runner.run_job(job_id)

    worker = threading.Thread(target=consume)
    worker.start()
    with queued_app.app_context():
        def epochs_done():
            db.session.rollback()
            return db.session.scalar(select(db.func.count()).select_from(JobEpoch)
                                     .where(JobEpoch.job_id == job_id))
        wait_for(epochs_done)
        assert jobs.cancel(job_id).cancel_requested
    worker.join(timeout=120)
    assert not worker.is_alive()
    with queued_app.app_context():
        job = db.session.get(TrainingJob, job_id, populate_existing=True)
        assert job.state == "cancelled", (job.state, job.error)
        assert 1 <= job.epoch < 300 and "cancelled" in job.log_tail
        assert db.session.scalar(select(db.func.count()).select_from(ModelVersion)) == 0
    assert not runs.exists() or not list(runs.iterdir())       # not even a .tmp-* directory
    assert Path(queued_app.config["HARK_MODEL"]).read_text() == before


# ---- versions ------------------------------------------------------------------------

def test_activate_and_delete_versions(app, admin, tiny_run):
    runs = Path(app.config["HARK_RUNS"])
    copy = copy_run(tiny_run, runs / "20260101-000000-kws")
    with app.app_context():
        startup.check(app, auto_train=False)
        default = db.session.scalar(select(ModelVersion).where(ModelVersion.source == "default"))
        other = registry.find(copy)
        assert default.active and other is not None and other.source == "imported"
        default_id, other_id = default.id, other.id
    headers = {"X-CSRFToken": admin.token}

    r = admin.post(f"/admin/api/versions/{other_id}/activate", headers=headers)
    assert r.status_code == 200 and r.get_json()["active"] and r.get_json()["activated_by"] == "admin"
    assert resolve(Path(app.config["HARK_MODEL"])).resolve() == copy.resolve()
    assert admin.get("/api/health").get_json()["model"] == copy.name

    refused = admin.delete(f"/admin/api/versions/{other_id}", headers=headers)
    assert refused.status_code == 409 and "active model" in refused.get_json()["error"]
    r = admin.post(f"/admin/api/versions/{default_id}/activate", headers=headers)
    assert r.status_code == 200
    refused = admin.delete(f"/admin/api/versions/{default_id}", headers=headers)
    assert refused.status_code == 409
    r = admin.delete(f"/admin/api/versions/{other_id}", headers=headers)
    assert r.status_code == 200 and r.get_json() == {"deleted": copy.name}
    assert not copy.exists() and tiny_run.is_dir()
    assert admin.delete("/admin/api/versions/424242", headers=headers).status_code == 404
    with app.app_context():
        assert [v.source for v in registry.all_versions()] == ["default"]


def test_activation_refuses_a_broken_run(app, admin, tiny_run):
    runs = Path(app.config["HARK_RUNS"])
    broken = copy_run(tiny_run, runs / "20260102-000000-kws")
    with app.app_context():
        version = registry.register(broken, source="imported")
    (broken / "model.tflite").write_bytes(b"not a model")
    before = Path(app.config["HARK_MODEL"]).read_text()
    r = admin.post(f"/admin/api/versions/{version.id}/activate", headers={"X-CSRFToken": admin.token})
    assert r.status_code == 409 and "does not load" in r.get_json()["error"]
    assert Path(app.config["HARK_MODEL"]).read_text() == before


def test_a_fixed_run_directory_cannot_be_switched(tmp_path, tiny_run):
    app = make_app(tmp_path, HARK_MODEL=str(tiny_run))
    client = app.test_client()
    token = login(client)
    with app.app_context():
        version = registry.register(tiny_run, source="imported")
    r = client.post(f"/admin/api/versions/{version.id}/activate", headers={"X-CSRFToken": token})
    assert r.status_code == 409 and "HARK_MODEL" in r.get_json()["error"]


# ---- the startup check ------------------------------------------------------------------

def test_startup_check_repairs_what_a_crash_leaves(queued_app, tiny_run, tmp_path):
    from webapp.training.queue import queue

    runs = Path(queued_app.config["HARK_RUNS"])
    data = Path(queued_app.config["HARK_DATA"])
    (runs / ".tmp-20260101-000000-kws").mkdir(parents=True)
    (runs / ".tmp-20260101-000000-kws" / "model.keras").write_bytes(b"half")
    (data / ".tmp-default-7").mkdir(parents=True)
    (data / ".old-default-7").mkdir()                 # a torn swap: the old set is back in place
    pointer = Path(queued_app.config["HARK_MODEL"])
    registry.write_pointer(pointer, runs / "20250101-000000-gone")   # names a missing run
    with queued_app.app_context():
        dead = TrainingJob(params={"kind": "admin", "dataset": "default"}, state="running",
                           worker=f"{os.uname().nodename}:999999999", started_at=utcnow(),
                           heartbeat_at=utcnow(), log_tail="epoch 1/5")
        lost = TrainingJob(params={"kind": "admin"}, state="queued", log_tail="")
        db.session.add_all([dead, lost])
        db.session.commit()
        dead_id, lost_id = dead.id, lost.id

    report = startup.check(queued_app, auto_train=False)

    text_report = "\n".join(report)
    assert f"job {dead_id} was left running" in text_report
    assert f"job {lost_id} was queued but not on the queue" in text_report
    assert "fell back to" in text_report
    with queued_app.app_context():
        dead = db.session.get(TrainingJob, dead_id)
        assert dead.state == "failed" and "worker stopped" in dead.error
        assert "epoch 1/5" in dead.log_tail and dead.finished_at is not None
        assert lost_id in queue(queued_app).pending_job_ids()
        assert registry.reconcile(queued_app).source == "default"
    assert not list(runs.glob(".tmp-*"))
    assert (data / "default").is_dir() and not list(data.glob(".*-default-*"))
    assert resolve(pointer).resolve() == tiny_run.resolve()
    assert startup.check(queued_app, auto_train=False) == []     # idempotent: nothing left to do


def test_a_job_whose_worker_is_alive_is_left_alone(queued_app):
    with queued_app.app_context():
        job = TrainingJob(params={"kind": "admin"}, state="running", log_tail="",
                          worker=f"{os.uname().nodename}:{os.getppid()}", heartbeat_at=utcnow())
        db.session.add(job)
        db.session.commit()
        assert startup.fail_orphans(queued_app) == []
        job.heartbeat_at = utcnow().replace(year=2000)          # silent for too long: failed
        db.session.commit()
        assert startup.fail_orphans(queued_app)


def test_first_start_without_a_model_enqueues_the_default_job(tmp_path):
    app = make_app(tmp_path, HARK_QUEUE_IMMEDIATE=False, HARK_AUTO_TRAIN=True,
                   HARK_DEFAULT_MODEL=str(tmp_path / "no-default-model"), HARK_AUTO_TRAIN_EPOCHS=3)
    report = startup.check(app)
    assert any("enqueued the default training job" in line for line in report)
    with app.app_context():
        job = db.session.scalars(select(TrainingJob)).one()
        assert job.state == "queued" and job.params["kind"] == "auto"
        assert job.params["dataset"] == "default" and job.params["activate"]
        assert job.params["prepare_data"] == "missing" and job.params["epochs"] == 3
    assert not any("enqueued" in line for line in startup.check(app))   # only once


def test_regenerate_builds_a_fresh_default_set_then_trains(app, admin):
    """The one-click job: the default set is rebuilt (tiny here) and a model trained on it."""
    pytest.importorskip("espeakng_loader")
    app.config["HARK_DEFAULT_PER_WORD"] = 2
    data = Path(app.config["HARK_DATA"]) / "default"
    data.mkdir(parents=True)
    (data / "stale.txt").write_text("from the previous set")
    app.config["HARK_AUTO_TRAIN_EPOCHS"] = 1
    r = admin.post("/admin/regenerate", data={"csrf_token": admin.token})
    assert r.status_code == 302
    with app.app_context():
        job = db.session.scalars(select(TrainingJob)).one()
        assert job.params["prepare_data"] == "rebuild" and not job.params["activate"]
        assert job.state == "succeeded", (job.error, job.log_tail)
        assert "building the default data set" in job.log_tail
    assert (data / "dataset.json").is_file() and not (data / "stale.txt").exists()
    assert not list(data.parent.glob(".*-default-*"))


# ---- the public status ---------------------------------------------------------------------

def test_training_status_shows_the_running_job_with_curves(queued_app, tone_data):
    client = queued_app.test_client()
    with queued_app.app_context():
        job = jobs.submit(jobs.make_params(dataset="folder", data=str(tone_data), epochs=4), "admin")
        assert jobs.claim(job.id)
        for epoch in (1, 2):
            jobs.record_epoch(job.id, {"epoch": epoch, "epochs": 4, "loss": 1.0 / epoch,
                                       "accuracy": 0.4 * epoch, "val_loss": 1.2 / epoch,
                                       "val_accuracy": 0.3 * epoch, "elapsed_s": epoch,
                                       "eta_s": 2.0 * (4 - epoch)})
        jobs.LogTail(job.id)(f"loading {tone_data}")
        job_id = job.id
    status = client.get("/api/training").get_json()
    current = status["current"]
    assert current["state"] == "running" and current["epoch"] == 2 and current["eta_s"] == 4.0
    assert [r["epoch"] for r in current["progress"]] == [1, 2]
    loss = current["figures"]["loss"]["data"]
    assert [t["name"] for t in loss] == ["training", "validation"] and loss[0]["y"] == [1.0, 0.5]
    assert "accuracy" in current["figures"]
    assert str(tone_data) not in current["log_tail"] and "folder" in current["log_tail"]
    assert "params" not in current and "created_by" not in current and "worker" not in current
    page = client.get("/training").get_data(as_text=True)
    assert 'id="training-live"' in page and "Job #" in page and 'data-status-url="/api/training"' in page
    assert client.get(f"/api/training/jobs/{job_id}").get_json()["progress"][1]["loss"] == 0.5
    assert client.get("/api/training/jobs/9999").status_code == 404
    rev = status["rev"]
    assert client.get("/api/training").get_json()["rev"] == rev       # unchanged: same rev



# ---- a version in use by a job ----------------------------------------------------------

def test_a_version_a_queued_job_fine_tunes_from_cannot_be_deleted(queued_app, tiny_run, tone_data):
    """409 naming the job (JSON on the API, a message on the admin page) while a queued or
    running job starts from the version or evaluates it; deletable once the job is over."""
    runs = Path(queued_app.config["HARK_RUNS"])
    copy = copy_run(tiny_run, runs / "20260103-000000-kws")
    with queued_app.app_context():
        startup.check(queued_app, auto_train=False)
        version = registry.find(copy)
        version_id, name = version.id, version.name
        with queued_app.test_request_context():
            params = jobs.make_params(dataset="folder", data=str(tone_data), epochs=1,
                                      init=name, init_dir=str(copy))
        tune = jobs.submit(params, "admin").id
        evaluate = jobs.submit(jobs.make_eval_params(tone_data, copy, name, 80), "admin").id
    admin = queued_app.test_client()
    headers = {"X-CSRFToken": login(admin)}
    refused = admin.delete(f"/admin/api/versions/{version_id}", headers=headers)
    assert refused.status_code == 409 and refused.mimetype == "application/json"
    assert f"job #{tune} (queued" in refused.get_json()["error"]
    page = admin.post(f"/admin/versions/{version_id}/delete", data={"csrf_token": headers["X-CSRFToken"]},
                      follow_redirects=True).get_data(as_text=True)
    assert f"is in use by job #{tune}" in page and "Traceback" not in page
    assert copy.is_dir()
    with queued_app.app_context():
        assert registry.find(copy) is not None
        jobs.cancel(tune)
    refused = admin.delete(f"/admin/api/versions/{version_id}", headers=headers)
    assert refused.status_code == 409 and f"job #{evaluate} (queued" in refused.get_json()["error"]
    with queued_app.app_context():
        jobs.cancel(evaluate)
    r = admin.delete(f"/admin/api/versions/{version_id}", headers=headers)
    assert r.status_code == 200 and r.get_json() == {"deleted": name} and not copy.exists()
    with queued_app.app_context():        # a job submitted from a version deleted meanwhile
        with pytest.raises(jobs.JobError) as late:
            jobs.submit(params, "admin")
        assert late.value.status == 409 and "not on this machine any more" in str(late.value)


def test_a_job_whose_version_vanished_fails_without_server_paths_in_public(queued_app, tiny_run, tone_data):
    """A version removed behind the app's back: the job fails, and anyone reading its page or
    the status API sees the reason with no server path, absolute or relative."""
    runs = Path(queued_app.config["HARK_RUNS"])
    copy = copy_run(tiny_run, runs / "20260104-000000-kws")
    with queued_app.app_context():
        startup.check(queued_app, auto_train=False)
        with queued_app.test_request_context():
            params = jobs.make_params(dataset="folder", data=str(tone_data), epochs=1,
                                      init=copy.name, init_dir=str(copy))
        job_id = jobs.submit(params, "admin").id
        shutil.rmtree(copy)
        runner.run_job(job_id)
        job = db.session.get(TrainingJob, job_id, populate_existing=True)
        assert job.state == "failed" and job.error
    anyone = queued_app.test_client()
    shown = [anyone.get("/api/training").get_json()["history"][0]["error"],
             anyone.get(f"/api/training/jobs/{job_id}").get_json()["error"],
             anyone.get(f"/api/training/jobs/{job_id}").get_json()["log_tail"],
             anyone.get(f"/training/jobs/{job_id}").get_data(as_text=True)]
    for answer in shown:
        assert str(runs) not in answer and str(tone_data) not in answer
        assert f"runs/{copy.name}" not in answer and f"/{copy.name}/" not in answer
    assert copy.name in shown[0]                # the version is still named
