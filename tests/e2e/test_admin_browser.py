"""The admin page and the live training page in headless Chromium, under the strict CSP.

The server runs with a real SQLite queue and no consumer; the test writes a
job's progress rows the way the consumer does, and the page must draw them
without a reload.
"""
from __future__ import annotations

import pytest

from tests.e2e.conftest import serve
from tests.helpers import PASSWORD, make_app
from webapp.database import db
from webapp.tables import TrainingJob
from webapp.training import jobs

pytestmark = pytest.mark.e2e


@pytest.fixture
def site(tmp_path, tiny_run):
    config = {"HARK_INSTANCE": str(tmp_path / "instance"), "HARK_RUNS": str(tmp_path / "runs"),
              "HARK_DATA": str(tmp_path / "data"), "HARK_QUEUE_IMMEDIATE": False,
              "HARK_DEFAULT_MODEL": str(tiny_run), "HARK_ADMIN_PASSWORD": PASSWORD}
    app = make_app(tmp_path, **config)           # the consumer's side, on the same database
    url, stop = serve(config)
    yield url, app
    stop()


def epoch(app, job_id, n, of):
    """Epoch n's log line, then its record: a poll that sees the epoch sees its line too."""
    with app.app_context():
        jobs.LogTail(job_id)(f"epoch {n}/{of}: loss {1.5 / n:.4f}")
        jobs.record_epoch(job_id, {"epoch": n, "epochs": of, "loss": 1.5 / n, "accuracy": 0.2 * n,
                                   "val_loss": 1.7 / n, "val_accuracy": 0.18 * n,
                                   "elapsed_s": 3.0 * n, "eta_s": 3.0 * (of - n)})


def trace_points(page, div: str) -> int:
    return page.evaluate(f"() => {{ const d = document.querySelector('{div}'); "
                         f"return d && d.data ? d.data[0].x.length : 0; }}")


def test_training_page_draws_a_running_job_live(page, site, tone_data, artifacts):
    url, app = site
    page.goto(url + "/training")
    assert page.is_visible("text=No training job is running")
    with app.app_context():
        job_id = jobs.submit(jobs.make_params(dataset="folder", data=str(tone_data), epochs=5), "t").id
        jobs.claim(job_id)
    epoch(app, job_id, 1, 5)
    page.wait_for_selector("#live-job:not([hidden])", timeout=10_000)
    page.wait_for_function("() => document.querySelector('#live-epoch').textContent === '1 of 5 epochs of all members'")
    page.wait_for_function("() => { const d = document.querySelector('#curve-loss');"
                           " return d && d.data && d.data.length === 2; }", timeout=20_000)
    assert trace_points(page, "#curve-accuracy") == 1
    epoch(app, job_id, 2, 5)
    page.wait_for_function("() => document.querySelector('#curve-loss').data[0].x.length === 2",
                           timeout=10_000)
    page.wait_for_function("() => document.querySelector('#live-log').innerText.includes('epoch 2/5')",
                           timeout=10_000)     # the log may land one poll after the curve
    assert page.inner_text("#live-eta") in ("about 9 s", "about 8 s", "about 7 s")   # counts down
    page.screenshot(path=artifacts / "training-live.png", full_page=True)
    with app.app_context():
        jobs.finish(job_id, "succeeded", metrics={"accuracy": 0.875})
    page.wait_for_selector("#history-rows tr", timeout=10_000)
    assert "87.5%" in page.inner_text("#history-rows")
    assert page.is_visible("text=No training job is running")
    assert page.js_errors == []


def test_admin_logs_in_starts_and_cancels_a_job(page, site, tone_data, artifacts):
    url, app = site
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(url + "/admin")
    assert page.url.startswith(url + "/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/admin")
    assert page.is_visible("text=Start a training job")

    page.check("input[name=dataset][value=folder]")
    page.fill("input[name=epochs]", "0")
    page.click("text=Queue the job")
    assert page.is_visible("text=The job was not started")
    assert page.is_visible("text=Give the folder's path on the server.")
    assert page.is_visible("text=Epochs must be between 1 and 500.")
    refused = ("Failed to load resource: the server responded with a status of 400 (BAD REQUEST)")
    assert page.js_errors == [refused]        # the refused form's page itself: 400 is right
    page.js_errors.clear()

    page.check("input[name=dataset][value=folder]")
    page.fill("input[name=folder]", str(tone_data))
    page.fill("input[name=epochs]", "3")
    page.click("text=Queue the job")
    page.wait_for_selector("text=is queued")
    row = page.locator("tr[data-job]").first
    assert row.get_attribute("data-state") == "queued"
    page.screenshot(path=artifacts / "admin.png", full_page=True)
    row.locator("text=Cancel").click()
    page.wait_for_selector("tr[data-job][data-state=cancelled]")
    with app.app_context():
        assert db.session.scalars(db.select(TrainingJob)).one().state == "cancelled"

    # A job finishing elsewhere shows up without a reload (admin.js refreshes the tables).
    with app.app_context():
        other = jobs.submit(jobs.make_params(dataset="folder", data=str(tone_data), epochs=3), "t").id
    page.reload()
    with app.app_context():
        jobs.claim(other)
        jobs.finish(other, "failed", error="the data folder went away")
    page.wait_for_selector("text=the data folder went away", timeout=10_000)

    page.click("text=Log out")
    page.wait_for_url(url + "/login")
    assert page.is_visible("text=You are logged out.")
    page.goto(url + "/admin")
    assert page.url.startswith(url + "/login")
    assert page.js_errors == []
