"""Long work leaves the request: folder evaluations are queue jobs, and
decoded audio is charged to the client's rate limit.

The attack of the review: a folder of 4,999 hard links to one 40 KB FLAC that holds
30 s at 384 kHz. Posted for evaluation it is now a 202 with a queued job (the request
lists the folder and nothing more); a real consumer process runs it, bounded per clip
(such a clip is refused at its header), with progress in clips. And six threads
posting such files to /api/predict from one address get 429s, charged by the audio
they decoded, while another address is still served.
"""
from __future__ import annotations

import io
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from ml import evaluate as ml_evaluate
from ml.audio import AudioError
from ml.cancel import Cancelled
from tests.helpers import audio_bytes, login
from tests.test_consumer import Site
from webapp.database import db
from webapp.tables import TrainingJob
from webapp.training import jobs
from webapp.versions import evaluations

HEAVY_RATE, HEAVY_SECONDS = 384_000, 30


@pytest.fixture(scope="module")
def heavy_flac(tmp_path_factory) -> Path:
    """The review's file: 30 s at 384 kHz, 40 KB of FLAC (silence compresses to nothing)."""
    path = tmp_path_factory.mktemp("heavy") / "heavy.flac"
    sf.write(path, np.zeros(HEAVY_SECONDS * HEAVY_RATE, np.float32), HEAVY_RATE,
             format="FLAC", subtype="PCM_16")
    assert path.stat().st_size < 64 * 1024
    return path


def linked_folder(root: Path, tone_data: Path, heavy: Path, links: int) -> Path:
    """The tone set's clips plus `links` hard links to the heavy file under yes/."""
    folder = root / "linked"
    shutil.copytree(tone_data, folder)
    for n in range(links):
        os.link(heavy, folder / "yes" / f"heavy-{n:05d}.flac")
    return folder


def admin_client(app):
    client = app.test_client()
    client.headers = {"X-CSRFToken": login(client)}
    return client


# ---- evaluate_and_store: progress, stop, bounded clips ------------------------------------

def test_progress_is_reported_per_chunk_and_stop_stores_nothing(tiny_run, tone_data, tmp_path,
                                                                monkeypatch):
    monkeypatch.setattr(ml_evaluate, "CHUNK", 16)
    seen = []
    summary = evaluations.evaluate_and_store(tiny_run, tone_data, tmp_path / "store",
                                             progress=lambda done, total: seen.append((done, total)))
    assert seen == [(16, 80), (32, 80), (48, 80), (64, 80), (80, 80)]
    assert summary["n"] == 80
    asked = []

    def stop_after_two_chunks():
        asked.append(1)
        return len(seen) >= 7
    with pytest.raises(Cancelled):
        evaluations.evaluate_and_store(tiny_run, tone_data, tmp_path / "other",
                                       progress=lambda done, total: seen.append((done, total)),
                                       should_stop=stop_after_two_chunks)
    assert len(asked) == 33 and not (tmp_path / "other").exists()


def test_a_clip_past_the_cap_is_refused_at_its_header(tiny_run, tone_data, heavy_flac, tmp_path):
    with pytest.raises(AudioError, match="longer than 10 s"):
        ml_evaluate.read_clip(heavy_flac)
    folder = linked_folder(tmp_path, tone_data, heavy_flac, 30)
    lines = []
    summary = evaluations.evaluate_and_store(tiny_run, folder, tmp_path / "store", log=lines.append)
    assert summary["n"] == 80                                  # the tone clips; the heavy ones skipped
    assert sum("skipped heavy-" in line for line in lines) == ml_evaluate.SKIPS_LOGGED
    assert lines[-1].startswith("skipped 30 of 110 clips in all")


# ---- the endpoint: a job, shown like other jobs --------------------------------------------

def test_the_endpoint_queues_a_job_that_the_pages_show(app_factory, tone_data):
    app = app_factory()                       # the queue runs each task inline here
    client = admin_client(app)
    r = client.post("/admin/api/evaluations", json={"folder": str(tone_data)}, headers=client.headers)
    assert r.status_code == 202, r.get_json()
    queued = r.get_json()
    assert queued["kind"] == "evaluate" and queued["steps"] == {"done": 80, "total": 80, "unit": "clips"}
    job = client.get(queued["job_url"]).get_json()
    assert job["state"] == "succeeded" and job["evaluation"]["n"] == 80
    assert client.get(job["gallery_url"]).status_code == 200
    public = client.get(f"/api/training/jobs/{job['id']}").get_json()
    assert public["kind"] == "evaluate" and public["evaluation"]["id"] == job["evaluation"]["id"]
    assert public["what"].startswith("evaluate ") and str(tone_data) not in str(public)
    history = client.get("/api/training").get_json()["history"]
    assert [h["id"] for h in history if h["kind"] == "evaluate"] == [job["id"]]
    page = client.get("/gallery/evaluate").get_data(as_text=True)
    assert f"#{job['id']}" in page and f"eval:{job['evaluation']['id']}" in page.replace("%3A", ":")
    training = client.get("/training").get_data(as_text=True)
    assert "80/80 clips" in training and public["what"] in training
    assert "80/80 clips" in client.get("/admin").get_data(as_text=True)


def test_a_queued_evaluation_can_be_cancelled_and_bad_labels_are_refused_at_once(
        app_factory, tone_data, tmp_path):
    app = app_factory(HARK_QUEUE_IMMEDIATE=False)
    client = admin_client(app)
    r = client.post("/admin/api/evaluations", json={"folder": str(tone_data)}, headers=client.headers)
    assert r.status_code == 202 and r.get_json()["state"] == "queued"
    job_id = r.get_json()["id"]
    r = client.post(f"/admin/api/jobs/{job_id}/cancel", headers=client.headers)
    assert r.status_code == 200 and r.get_json()["state"] == "cancelled"
    strange = tmp_path / "strange"
    shutil.copytree(tone_data / "yes", strange / "banana")
    r = client.post("/admin/api/evaluations", json={"folder": str(strange)}, headers=client.headers)
    assert r.status_code == 400 and "unknown to the model" in r.get_json()["error"]


def test_a_running_evaluation_stops_when_cancelled(app_factory, tone_data):
    from webapp.training import runner

    app = app_factory(HARK_QUEUE_IMMEDIATE=False)
    client = admin_client(app)
    job_id = client.post("/admin/api/evaluations", json={"folder": str(tone_data)},
                         headers=client.headers).get_json()["id"]
    with app.app_context():                   # asked to stop as the consumer takes it
        db.session.execute(db.update(TrainingJob).where(TrainingJob.id == job_id)
                           .values(cancel_requested=True))
        db.session.commit()
        runner.run_job(job_id)
    job = client.get(f"/admin/api/jobs/{job_id}").get_json()
    assert job["state"] == "cancelled" and job["evaluation"] is None and job["started_at"]
    assert not (Path(app.instance_path) / "evaluations").exists()


@pytest.mark.slow
def test_a_4999_link_folder_is_a_queued_job_run_by_the_consumer(tiny_run, tone_data, heavy_flac,
                                                                 tmp_path):
    folder = linked_folder(tmp_path, tone_data, heavy_flac, 4999 - 80)
    site = Site(tmp_path / "site", tiny_run, folder)
    client = admin_client(site.app)
    r = client.post("/admin/api/evaluations", json={"folder": str(folder)}, headers=client.headers)
    assert r.status_code == 202, r.get_json()
    queued = r.get_json()
    assert queued["state"] == "queued" and queued["steps"] == {"done": 0, "total": 4999, "unit": "clips"}
    assert not (Path(site.app.instance_path) / "evaluations").exists()   # nothing ran in the request
    site.start_consumer()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            job = client.get(queued["job_url"]).get_json()
            if job["state"] not in ("queued", "running"):
                break
            assert site.processes[-1].poll() is None, site.log.read_text()[-2000:]
            time.sleep(0.5)
    finally:
        site.stop()
    assert job["state"] == "succeeded", (job, site.log.read_text()[-2000:])
    assert job["steps"] == {"done": 4999, "total": 4999, "unit": "clips"}
    assert job["evaluation"]["n"] == 80 and "skipped 4,919 of 4,999 clips in all" in job["log_tail"]
    assert client.get(job["gallery_url"]).status_code == 200
    with site.app.app_context():
        row = db.session.scalar(select(TrainingJob).where(TrainingJob.id == queued["id"]))
        assert row.worker and row.worker != jobs.worker_id()        # the consumer's, not ours


# ---- decoded audio is charged ------------------------------------------------------------

def test_heavy_files_from_one_address_get_429_while_another_address_is_served(
        app_factory, heavy_flac, tone_data):
    app = app_factory(HARK_RATE_AUDIO_SECONDS="3000/minute", HARK_RATE_PREDICT="100000/minute")
    heavy = heavy_flac.read_bytes()
    light = audio_bytes()
    statuses: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(7)

    def attacker():
        client = app.test_client()
        start.wait()
        for _ in range(3):
            r = client.post("/api/predict", data={"file": (io.BytesIO(heavy), "heavy.flac")},
                            environ_base={"REMOTE_ADDR": "127.0.0.5"})
            with lock:
                statuses.append(r.status_code)
                if r.status_code == 429:
                    errors.append(r.get_json()["error"])

    threads = [threading.Thread(target=attacker) for _ in range(6)]
    for t in threads:
        t.start()
    other = app.test_client()
    served = []
    start.wait()
    for _ in range(15):                      # the other client, while the attack goes on
        served.append(other.post("/api/predict", data=light, environ_base={"REMOTE_ADDR": "127.0.0.9"}
                                 ).status_code)
    for t in threads:
        t.join()
    served += [other.post("/api/analyze", data=light, environ_base={"REMOTE_ADDR": "127.0.0.9"}
                          ).status_code for _ in range(5)]
    # 30 s at 384 kHz costs 720 s at 16 kHz: five fit in 3,000, plus those already in flight.
    assert set(statuses) <= {200, 429} and len(statuses) == 18
    assert 1 <= statuses.count(200) <= 10 and statuses.count(429) >= 8, statuses
    assert errors and all("too much audio" in e for e in errors), errors[:2]
    assert served == [200] * 20
    # The budget is shared: the exhausted address gets no /api/analyze either, nor the gallery's.
    attacker_client = app.test_client()
    r = attacker_client.post("/api/analyze", data=light, environ_base={"REMOTE_ADDR": "127.0.0.5"})
    assert r.status_code == 429 and "too much audio" in r.get_json()["error"]
    source = attacker_client.get("/api/gallery/sources").get_json()["sources"][0]["key"]
    r = attacker_client.get(f"/api/gallery/{source}/clips/0/analyze",
                            environ_base={"REMOTE_ADDR": "127.0.0.5"})
    assert r.status_code == 429


def test_one_second_clips_cost_one_second_each(app_factory):
    app = app_factory(HARK_RATE_AUDIO_SECONDS="30/minute")
    client = app.test_client()
    codes = [client.post("/api/predict", data=audio_bytes()).status_code for _ in range(32)]
    assert codes[:30] == [200] * 30 and codes[30:] == [429, 429]
    # 48 kHz costs three times as much: the work is in the samples.
    client = app.test_client()
    high = audio_bytes(rate=48_000)
    codes = [client.post("/api/predict", data=high, environ_base={"REMOTE_ADDR": "127.0.0.3"}
                         ).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]
