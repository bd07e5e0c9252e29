"""A new user's walk through Hark in real headless Chromium, at 1280x800 and 390x844.

Each thing is checked as a person meets it: accuracy said with what it was
measured on, a gallery that makes its missing audio and then plays, an activation that
warns before a worse version, the running job first and a page per job, the upload
summary and its wording, Listen's timing, per-browser threshold, focus and arrow keys,
admin tables and the gallery's evaluation on a phone, the keyboard confusion matrix,
text contrast and compressed Plotly. Screenshots: test-artifacts/new-user-*.png.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml.synth.tones import tone_clip
from tests.e2e.conftest import open_page, serve
from tests.helpers import PASSWORD, make_app
from tests.test_gallery import copy_run
from tests.test_usability import A_ID, B_ID, FEW_ID, make_runs
from webapp.database import db
from webapp.training import jobs
from webapp.versions import registry

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True}

# Every visible text against the background it is drawn on (WCAG 2 contrast: 4.5:1, 3:1 when
# large); text on images or gradients, inside charts and on disabled controls is left out.
LOW_CONTRAST = """() => {
  const parse = (c) => { const m = c && c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
  const blend = (t, b) => ({ r: t.r * t.a + b.r * (1 - t.a), g: t.g * t.a + b.g * (1 - t.a),
                             b: t.b * t.a + b.b * (1 - t.a), a: 1 });
  const lum = ({ r, g, b }) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92
    : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  function background(el) {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.backgroundImage !== "none") return null;
      const c = parse(s.backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (const c of layers.reverse()) bg = blend(c, bg);
    return bg;
  }
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    if (el.closest("svg, .js-plotly-plot, [hidden], [aria-hidden='true'], option, template, .sr-only, :disabled")) continue;
    const rect = el.getBoundingClientRect();
    if (!rect.width || !rect.height) continue;
    const s = getComputedStyle(el);
    if (s.visibility === "hidden") continue;
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    const bg = background(el);
    if (!bg || opacity < 0.99) continue;
    const fg = blend(parse(s.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    if (ratio < (size >= 24 || (bold && size >= 18.66) ? 3 : 4.5)) {
      bad.push(`${ratio.toFixed(2)}: ${el.tagName.toLowerCase()}.${el.className} "${node.textContent.trim().slice(0, 40)}"`);
    }
  }
  return bad;
}"""


def check_contrast(page):
    assert page.evaluate(LOW_CONTRAST) == []


def no_sideways_scroll(page):
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory) -> Path:
    return make_runs(tiny_run, tmp_path_factory.mktemp("new-user-e2e"))


@pytest.fixture
def site(tmp_path, runs, live_server):            # live_server: skips without Chromium
    """The app over HTTP (queue not immediate: no job runs) and, on the same database, the
    consumer's side, which the test uses to write jobs as the consumer does."""
    config = {"HARK_INSTANCE": str(tmp_path / "instance"), "HARK_RUNS": str(runs),
              "HARK_DATA": str(tmp_path / "data"), "HARK_QUEUE_IMMEDIATE": False,
              "HARK_DEFAULT_MODEL": str(runs / A_ID), "HARK_ADMIN_PASSWORD": PASSWORD,
              "HARK_AUTO_TRAIN": False, "HARK_MODEL_CHECK_S": 0}
    app = make_app(tmp_path, **config)
    with app.app_context():
        registry.register(runs / A_ID, source="default")
        registry.register(runs / B_ID)
        few = registry.register(runs / FEW_ID)
        few.labels = [label for label in few.labels if label != "_silence_"]
        db.session.commit()
        registry.reconcile(app)
    url, stop = serve(config)
    yield url, app
    stop()


def log_in(page, url):
    page.goto(url + "/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/(admin)?$"))


def record_epoch(app, job_id, n, of):
    """Epoch n's log line, then its record: a poll that sees the epoch sees its line too."""
    with app.app_context():
        jobs.LogTail(job_id)(f"epoch {n}/{of}")
        jobs.record_epoch(job_id, {"epoch": n, "epochs": of, "loss": 1.2 / n, "accuracy": 0.3 * n,
                                   "val_loss": 1.3 / n, "val_accuracy": 0.3 * n,
                                   "elapsed_s": 30.0 * n, "eta_s": 30.0 * (of - n)})


# ---- 1, 4: accuracy in context; the Training page and a page per job ------------------------------

def test_training_page_running_job_first_time_left_and_a_page_per_job(browser, site, tone_data, runs,
                                                                     artifacts):
    url, app = site
    page = open_page(browser, viewport=DESKTOP)
    with app.app_context():
        job_id = jobs.submit(jobs.make_params(dataset="folder", data=str(tone_data), epochs=3), "t").id
        jobs.claim(job_id)
    record_epoch(app, job_id, 1, 3)
    page.goto(url + "/training")
    page.wait_for_function("() => document.querySelector('#curve-loss').data", timeout=20_000)
    live = page.locator("#training-live").bounding_box()
    model = page.locator(".model-info").bounding_box()
    assert live["y"] < model["y"] and live["y"] < 200          # the running job is first, above the fold
    assert re.fullmatch(r"about (5\d|60) s", page.inner_text("#live-eta"))
    model_text = page.inner_text(".model-info")
    assert "on the test split of folder" in model_text and "88.2%" in model_text
    assert "on real speech: the 8 command words" in model_text
    page.screenshot(path=artifacts / "new-user-training-running.png", full_page=True)
    check_contrast(page)

    record_epoch(app, job_id, 3, 3)                             # the last epoch: it tests and saves now
    page.wait_for_function("() => document.querySelector('#live-eta').textContent"
                           " === 'finishing: testing and saving the model'", timeout=10_000)
    with app.app_context():
        jobs.finish(job_id, "succeeded", run_dir=str(runs / B_ID), metrics={"accuracy": 0.625})
        version = registry.find(runs / B_ID)
        version.job_id = job_id
        db.session.commit()
    page.wait_for_selector(f"#history-rows a[href='/training/jobs/{job_id}']", timeout=10_000)
    assert page.is_visible("text=No training job is running")
    assert page.inner_text("#live-heading") == f"Last job #{job_id}: succeeded"
    assert page.evaluate("document.querySelector('#curve-loss').data[0].x.length") == 2   # curves kept
    assert "62.5% on its test split" in page.inner_text("#history-rows")
    page.screenshot(path=artifacts / "new-user-training-finished.png", full_page=True)

    page.click(f"#history-rows a[href='/training/jobs/{job_id}']")
    page.wait_for_selector("#job[data-curves='drawn']", timeout=20_000)
    assert page.evaluate("document.querySelector('#curve-accuracy').data.length") == 2
    assert "epoch 3/3" in page.inner_text("#job-log")
    params = page.inner_text("#job-params")
    assert "Epochs\n3" in params and "Split\nby speaker" in params
    assert "62.5% on the test split of folder" in page.inner_text("#job-result")
    page.screenshot(path=artifacts / "new-user-job.png", full_page=True)
    check_contrast(page)
    page.click("#job-gallery")
    page.wait_for_selector("#clip-grid[data-state='ready']")
    assert B_ID in page.url
    assert page.js_errors == []
    page.context.close()

    phone = open_page(browser, **PHONE)
    phone.goto(url + f"/training/jobs/{job_id}")
    phone.wait_for_selector("#job[data-curves='drawn']", timeout=20_000)
    no_sideways_scroll(phone)
    phone.screenshot(path=artifacts / "new-user-job-phone.png", full_page=True)
    phone.goto(url + "/training")
    phone.wait_for_function("() => document.querySelector('#curve-loss').data", timeout=20_000)
    no_sideways_scroll(phone)
    check_contrast(phone)
    phone.screenshot(path=artifacts / "new-user-training-phone.png", full_page=True)
    assert phone.js_errors == []
    phone.context.close()


# ---- 3, 7: activation warns; admin tables on a phone ------------------------------------------------

def test_activating_a_worse_version_warns_and_asks(browser, site, artifacts):
    url, _ = site
    page = open_page(browser, viewport=DESKTOP)
    log_in(page, url)
    page.goto(url + "/admin")
    row = page.locator(f"tr:has(code:text-is('{B_ID}'))")
    assert "on the test split of folder" in row.inner_text()
    row.locator("text=Activate…").click()
    page.wait_for_selector("#activate-warnings")
    assert "It is worse on the test split of folder" in page.inner_text("#activate-warnings")
    assert page.locator("#activate-comparisons tr[data-worse='true']").count() == 1
    page.screenshot(path=artifacts / "new-user-activate-warning.png", full_page=True)
    check_contrast(page)
    page.click("#activate-submit")                      # not confirmed: the browser holds the form
    assert page.evaluate("document.getElementById('activate-confirm').validity.valueMissing")
    assert page.url.endswith("/activation")
    page.check("#activate-confirm")
    page.click("#activate-submit")
    page.wait_for_url(url + "/admin")
    assert page.is_visible("text=The model is active")
    assert page.locator(f"tr.active-row:has(code:text-is('{B_ID}'))").count() == 1

    few = page.locator(f"tr:has(code:text-is('{FEW_ID}'))")
    few.locator("text=Activate…").click()
    assert "does not know silence" in page.inner_text("#activate-warnings")
    assert page.inner_text("#labels-lost") == "silence"
    assert page.js_errors == []
    page.context.close()


def test_admin_tables_on_a_phone_show_every_action(browser, site, tone_data, artifacts):
    url, app = site
    with app.app_context():
        jobs.submit(jobs.make_params(dataset="folder", data=str(tone_data), epochs=3), "admin")
    phone = open_page(browser, **PHONE)
    log_in(phone, url)
    phone.goto(url + "/admin")
    no_sideways_scroll(phone)
    for name in ("Cancel", "Activate…", "Delete"):
        link = phone.locator(f"text={name}").first
        link.scroll_into_view_if_needed()
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (name, box)
    active = phone.locator("tr.active-row td[data-label='Active']")
    assert active.is_visible() and "active" in active.inner_text()
    check_contrast(phone)
    phone.screenshot(path=artifacts / "new-user-admin-phone.png", full_page=True)
    phone.locator("section:has(#versions-title)").screenshot(path=artifacts / "new-user-admin-phone-registry.png")
    assert phone.js_errors == []
    phone.context.close()


# ---- 7, 8: the gallery on a phone, the matrix by keyboard, compressed Plotly -------------------------

def test_gallery_evaluation_first_on_a_phone_and_the_matrix_by_keyboard(browser, site, artifacts):
    url, _ = site
    phone = open_page(browser, **PHONE)
    with phone.expect_response(lambda r: "/vendor/plotly-" in r.url) as plotly:
        phone.goto(url + f"/gallery?source=run:{B_ID}")
        phone.wait_for_selector("#clip-grid[data-state='ready']")
        phone.wait_for_selector("[data-figure='confusion'][data-drawn]", timeout=20_000)
    assert plotly.value.headers.get("content-encoding") == "gzip"
    confusion = phone.locator(".confusion-card").bounding_box()
    first_card = phone.locator("#clip-grid .clip").first.bounding_box()
    facts = phone.locator("#panel-accuracy").bounding_box()
    assert facts["y"] < confusion["y"] < first_card["y"] and confusion["y"] < 1500
    assert phone.locator("#clip-grid .clip").count() <= 12
    no_sideways_scroll(phone)
    check_contrast(phone)
    phone.screenshot(path=artifacts / "new-user-gallery-phone.png", full_page=True)
    assert phone.js_errors == []
    phone.context.close()

    page = open_page(browser, viewport=DESKTOP)
    page.goto(url + f"/gallery?source=run:{B_ID}")
    page.wait_for_selector("#clip-grid[data-state='ready']")
    assert "ACCURACY on test split of folder" in page.inner_text(".headline")   # dt: upper case
    page.focus("#confusion-details summary")
    page.keyboard.press("Enter")                         # open the table view
    page.keyboard.press("Tab")                           # one tab stop into the grid
    assert page.evaluate("document.activeElement.dataset.row + ',' + document.activeElement.dataset.col") == "0,0"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    focused = page.evaluate("[document.activeElement.dataset.true, document.activeElement.dataset.pred]")
    assert page.evaluate("document.activeElement.tabIndex") == 0
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => location.search.includes('true={focused[0]}') && "
                           f"location.search.includes('pred={focused[1]}')")
    page.screenshot(path=artifacts / "new-user-gallery-keyboard.png")
    check_contrast(page)
    assert page.js_errors == []
    page.context.close()


# ---- 2: the gallery makes the default set's missing audio -------------------------------------------

def test_gallery_makes_missing_default_audio_then_cards_play_and_open(browser, tiny_run, tmp_path,
                                                                     live_server, artifacts):
    from ml.synth.generate import generate

    reference = tmp_path / "reference"
    generate(reference, per_word=4, workers=1, progress=False)
    picked = sorted(p.relative_to(reference).as_posix() for p in reference.glob("*/*.wav"))[:8]
    runs = tmp_path / "runs"
    runs.mkdir()
    run = copy_run(tiny_run, runs, "20990204-000001-kws", {}, data=str(tmp_path / "data" / "default"))
    rows = json.loads((run / "predictions.json").read_text())[:len(picked)]
    for row, path in zip(rows, picked):
        row["path"] = path
    (run / "predictions.json").write_text(json.dumps(rows))
    url, stop = serve({"HARK_INSTANCE": str(tmp_path / "instance"), "HARK_RUNS": str(runs),
                       "HARK_DATA": str(tmp_path / "data"), "HARK_MODEL": str(run),
                       "HARK_DEFAULT_PER_WORD": 4, "HARK_AUTO_TRAIN": False})
    page = open_page(browser, viewport=DESKTOP)
    try:
        page.goto(url + "/gallery")
        page.wait_for_selector("#audio-building")
        assert "this page's clips first" in page.inner_text("#audio-building")
        # the cards come from the clips API after the page: wait for them; then nothing opens to
        # an error (a card whose audio is not made yet cannot open; the build may end meanwhile)
        page.wait_for_function(f"() => document.querySelectorAll('#clip-grid .clip').length === {len(picked)}")
        assert page.evaluate("""() => [...document.querySelectorAll('#clip-grid .clip')].every(
            (c) => c.dataset.audio === 'true' || c.querySelector('.clip-open').disabled)""")
        page.screenshot(path=artifacts / "new-user-gallery-making-audio.png", full_page=True)
        page.wait_for_function("() => document.querySelectorAll('.clip[data-audio=\"true\"]').length === 8",
                               timeout=120_000)
        assert page.is_hidden("#audio-building")
        page.locator("#clip-grid .clip-open").first.click()
        page.wait_for_selector(".clip-dialog .result[data-charts='drawn']", timeout=20_000)
        assert "Could not classify" not in page.inner_text("#clip-dialog")
        page.click("#clip-dialog-close")
        page.screenshot(path=artifacts / "new-user-gallery-audio-ready.png", full_page=True)
        assert page.js_errors == []
    finally:
        page.context.close()
        stop()


# ---- 5: the upload summary and what a failed file is -----------------------------------------------

def test_upload_summary_table_and_failures_said_plainly(browser, live_server, tmp_path, artifacts):
    notes = [tmp_path / "notes.wav", tmp_path / "todo.wav"]
    for path in notes:
        path.write_text("this is a shopping list, not a recording\n")
    page = open_page(browser, viewport=DESKTOP)
    page.goto(live_server + "/upload")
    page.set_input_files("#file-input", [str(p) for p in notes])
    page.wait_for_function("() => document.querySelectorAll('.result[data-state=\"error\"]').length === 2")
    page.wait_for_function("() => !document.getElementById('upload-status').textContent.startsWith('Classifying')")
    assert page.inner_text("#upload-status") == "Neither file could be classified: see why on their cards."
    assert "this file is text, not audio" in page.inner_text(".result[data-state='error']")
    page.click("#clear-results")

    rng = np.random.default_rng(11)
    files = []
    for name, freq in [("yes.wav", 1500), ("go.wav", 700), ("down.wav", 300), ("quiet.wav", None)]:
        sf.write(tmp_path / name, tone_clip(freq, rng), 16000)
        files.append(tmp_path / name)
    page.set_input_files("#file-input", [str(p) for p in files + notes[:1]])
    page.wait_for_function("() => document.querySelectorAll('#results-summary tbody tr').length === 5 && "
                           "!document.querySelector('#results-summary tr[data-state=\"pending\"]')",
                           timeout=30_000)
    page.wait_for_function("() => !document.getElementById('upload-status').textContent.startsWith('Classifying')")
    assert page.inner_text("#upload-status") == "4 of 5 files classified; 1 could not be (see its card)."
    table = page.locator("#results-summary")
    summary = table.bounding_box()
    assert summary["y"] < page.locator("#results .result").first.bounding_box()["y"]
    yes_row = table.locator("tr:has(td:text-is('yes.wav'))")
    assert yes_row.locator("td").nth(1).inner_text() == "yes"
    assert re.fullmatch(r"\d+%", yes_row.locator("td").nth(2).inner_text())
    assert "text, not audio" in table.locator("tr:has(td:text-is('notes.wav'))").inner_text()
    page.screenshot(path=artifacts / "new-user-upload-summary.png")
    yes_row.locator("a").click()
    card = page.evaluate("location.hash")
    assert page.locator(card).get_attribute("data-title") == "yes.wav"
    assert page.locator(card).bounding_box()["y"] < 200          # scrolled to its card
    check_contrast(page)
    assert page.js_errors == ["Failed to load resource: the server responded with a status of 415 (UNSUPPORTED MEDIA TYPE)"] * 3
    page.context.close()

    phone = open_page(browser, **PHONE)
    phone.goto(live_server + "/upload")
    phone.set_input_files("#file-input", [str(p) for p in files])
    phone.wait_for_function("() => document.querySelectorAll('#results-summary tbody tr[data-state=\"done\"]').length === 4",
                            timeout=30_000)
    no_sideways_scroll(phone)
    phone.screenshot(path=artifacts / "new-user-upload-phone.png")
    phone.context.close()


# ---- 6: Listen — timing explained, a per-browser threshold, focus kept, arrow keys -------------------

def test_listen_timing_threshold_focus_and_arrow_keys(browser, live_server, artifacts):
    page = open_page(browser, viewport=DESKTOP)
    page.goto(live_server + "/")
    page.focus("#record-button")
    page.keyboard.press("Enter")
    page.wait_for_selector(".result[data-state='done']", timeout=20_000)
    page.wait_for_function("() => document.activeElement.id === 'record-button' && !document.activeElement.disabled")
    timing = page.locator(".result .result-timing").first
    assert re.fullmatch(r"answered in \d+ ms", timing.inner_text())
    assert timing.get_attribute("title").startswith("Time the server took for this clip")

    page.click("#browser-settings summary")
    page.fill("#low-confidence", "95")           # a range input: fill sets its value
    page.dispatch_event("#low-confidence", "input")
    assert page.inner_text("#browser-settings output") == "95%"
    page.reload()
    assert page.evaluate("Hark.settings.lowConfidence") == 0.95      # kept by this browser
    page.focus("#record-button")
    page.keyboard.press("Space")
    page.wait_for_selector(".result[data-state='done']", timeout=20_000)
    card = page.locator(".result").first
    confidence = int(card.locator(".result-confidence").inner_text().rstrip("%"))
    verdict = card.locator(".result-verdict").inner_text()
    assert verdict.startswith("Not sure") if confidence < 95 else verdict.startswith("Heard")
    assert page.evaluate("Hark.verdictFor({label: 'yes', confidence: 0.9, verdict: {kind: 'word'}}).kind") == "unsure"
    page.screenshot(path=artifacts / "new-user-listen-settings.png", full_page=True)
    check_contrast(page)

    page.focus("#mode-record")
    assert page.get_attribute("#mode-live", "tabindex") == "-1"      # one tab stop for the tabs
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "mode-live"
    assert page.get_attribute("#mode-live", "aria-selected") == "true" and page.is_visible("#live-panel")
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute("#mode-record", "aria-selected") == "true" and page.is_visible("#record-panel")
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.id") == "mode-live"
    check_contrast(page)
    page.screenshot(path=artifacts / "new-user-listen-live-tab.png")
    assert page.js_errors == []
    page.context.close()

    phone = open_page(browser, **PHONE)
    phone.goto(live_server + "/")
    check_contrast(phone)
    no_sideways_scroll(phone)
    phone.screenshot(path=artifacts / "new-user-listen-phone.png", full_page=True)
    phone.context.close()
