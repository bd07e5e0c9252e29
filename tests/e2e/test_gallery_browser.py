"""The gallery in real headless Chromium: filter to errors, open a card and see its charts,
click the confusion matrix, compare two versions, a phone-sized screen, and missing audio.
Screenshots go to test-artifacts/gallery-*.png."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import serve
from tests.test_gallery import A_ID, B_ID, NODATA_ID, app_config, make_runs

pytestmark = pytest.mark.e2e

CARD_CHARTS = ".clip-dialog .result[data-charts='drawn']"


@pytest.fixture(scope="module")
def gallery_server(tiny_run, tmp_path_factory, live_server):   # live_server: skips without Chromium
    root = tmp_path_factory.mktemp("gallery-e2e")
    runs = make_runs(tiny_run, root)
    url, stop = serve(app_config(runs, root / "instance"))
    yield url
    stop()


def wait_for_cards(page, count=None):
    page.wait_for_selector("#clip-grid[data-state='ready'], #clip-grid[data-state='empty']")
    if count is not None:
        page.wait_for_function(f"() => document.querySelectorAll('#clip-grid .clip').length === {count}"
                               " && document.querySelector('#clip-grid').dataset.state !== 'loading'")


def test_filter_to_errors_and_open_a_card(page, gallery_server, artifacts):
    page.goto(gallery_server + "/gallery")
    wait_for_cards(page, 8)
    page.wait_for_selector("[data-figure='confusion'][data-drawn]", timeout=20_000)
    page.wait_for_function("() => [...document.querySelectorAll('.clip-thumb')]"
                           ".every(i => i.complete && i.naturalWidth === 98)")
    assert page.locator(".clip[data-correct='false']").count() == 2
    assert "Clips 1–8 of 8" in page.inner_text("#gallery-count")
    assert page.inner_text("#latency").endswith("on this server)")
    page.screenshot(path=artifacts / "gallery.png", full_page=True)

    page.check("#only-errors")
    wait_for_cards(page, 2)
    cards = page.locator("#clip-grid .clip")
    assert all(cards.nth(i).get_attribute("data-correct") == "false" for i in range(2))
    assert "errors=1" in page.url                    # the address keeps the filter
    assert "errors only" in page.inner_text("#gallery-count")
    assert cards.first.locator(".clip-badge").inner_text().lower() == "wrong"
    page.screenshot(path=artifacts / "gallery-errors.png", full_page=True)

    truth = cards.first.locator(".clip-true b").inner_text()
    cards.first.locator(".clip-open").click()
    page.wait_for_selector(CARD_CHARTS, timeout=20_000)
    dialog = page.locator("#clip-dialog")
    assert dialog.is_visible()
    assert f"True label: {truth}" in dialog.locator("#clip-dialog-truth").inner_text()
    result = dialog.locator(".result")
    assert result.locator(".js-plotly-plot").count() == 3
    assert result.locator(".chart-spectrogram .hm, .chart-spectrogram image").count() >= 1
    assert "/clips/" in result.locator("audio").get_attribute("src")
    assert "%" in result.locator(".result-confidence").inner_text()
    page.screenshot(path=artifacts / "gallery-card.png")
    page.click("#clip-dialog-close")
    assert not dialog.is_visible()

    page.reload()                                   # filters come back from the address
    wait_for_cards(page, 2)
    assert page.is_checked("#only-errors")
    assert page.js_errors == []


def test_play_button_plays_the_clip(page, gallery_server):
    page.goto(gallery_server + "/gallery")
    wait_for_cards(page, 8)
    button = page.locator("#clip-grid .clip-play").nth(2)
    with page.expect_response(lambda r: r.url.endswith("/clips/2/audio")) as response:
        button.click()
    assert response.value.status in (200, 206)
    # The clip lasts a second: it is playing, or has played to its end.
    page.wait_for_function("() => ['playing', 'played'].includes("
                           "document.querySelectorAll('#clip-grid .clip-play')[2].dataset.state)")
    page.wait_for_function("() => document.querySelectorAll('#clip-grid .clip-play')[2].dataset.state === 'played'")
    assert button.get_attribute("aria-label") == "Play"
    assert page.js_errors == []


def test_clicking_the_confusion_matrix_filters_the_gallery(page, gallery_server, artifacts):
    page.goto(gallery_server + "/gallery")
    wait_for_cards(page, 8)
    page.wait_for_selector("[data-figure='confusion'][data-drawn]", timeout=20_000)
    labels = page.evaluate("() => [...document.querySelectorAll('#filters [name=true] option')]"
                           ".map(o => o.value).filter(Boolean)")
    box = page.locator("[data-figure='confusion'] .nsewdrag").bounding_box()
    n = len(labels)
    # The cell of true label 2 ("go"), predicted label 2: rows top to bottom, columns left to right.
    t, p = 2, 2
    page.mouse.click(box["x"] + (p + 0.5) * box["width"] / n, box["y"] + (t + 0.5) * box["height"] / n)
    page.wait_for_function(f"() => document.querySelector('#filters [name=true]').value === '{labels[t]}'")
    wait_for_cards(page)
    assert page.input_value("#filters [name=pred]") == labels[p]
    expected = page.evaluate("url => fetch(url).then(r => r.json())",
                             f"/api/gallery/run:{A_ID}/evaluation")["figures"]["confusion"]["data"][0]["text"][t][p]
    cards = page.locator("#clip-grid .clip")
    page.wait_for_function("() => document.querySelector('#clip-grid').dataset.state === 'ready'")
    assert str(cards.count()) == expected
    assert {cards.nth(i).locator(".clip-true b").inner_text() for i in range(cards.count())} == {labels[t]}
    page.screenshot(path=artifacts / "gallery-confusion-cell.png", full_page=True)
    assert page.js_errors == []


def test_compare_two_versions(page, gallery_server, artifacts):
    page.goto(f"{gallery_server}/gallery/compare?a=run:{A_ID}&b=run:{B_ID}")
    page.wait_for_selector("#compare-grid[data-state='ready']")
    page.wait_for_selector("#compare-chart[data-drawn]", timeout=20_000)
    assert page.locator("#compare-grid .clip").count() == 3
    assert "same 8 clips" in page.inner_text("#test-set-note")
    page.screenshot(path=artifacts / "gallery-compare.png", full_page=True)
    page.locator("#compare-grid .clip-open").first.click()
    page.wait_for_function("() => document.querySelectorAll(\"" + CARD_CHARTS + "\").length === 2",
                           timeout=30_000)
    headings = page.locator(".clip-dialog-column h3").all_inner_texts()
    assert headings == [f"A · {A_ID}", f"B · {B_ID}"]
    page.screenshot(path=artifacts / "gallery-compare-card.png")
    page.keyboard.press("Escape")                 # closes the dialog
    page.select_option("#which", "b_right")
    page.wait_for_function("() => document.querySelectorAll('#compare-grid .clip').length === 1")
    assert page.js_errors == []


def test_missing_audio_is_said_plainly(page, gallery_server, artifacts):
    page.goto(f"{gallery_server}/gallery?source=run:{NODATA_ID}")
    wait_for_cards(page, 8)
    assert "python -m ml data default" in page.inner_text("#audio-missing")
    card = page.locator("#clip-grid .clip").first
    assert card.get_attribute("data-audio") == "false"
    assert card.locator(".clip-noaudio").is_visible()
    assert card.locator(".clip-play").is_disabled()
    opener = card.locator(".clip-open")                # never a card that opens to an error
    assert opener.is_disabled() and "not on this machine" in opener.get_attribute("title")
    page.screenshot(path=artifacts / "gallery-missing-audio.png", full_page=True)
    assert page.js_errors == []


def test_gallery_on_a_phone(phone, gallery_server, artifacts):
    phone.goto(gallery_server + "/gallery")
    wait_for_cards(phone, 8)
    phone.wait_for_selector("[data-figure='confusion'][data-drawn]", timeout=20_000)
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390                                # nothing wider than the screen
    columns = phone.evaluate("() => getComputedStyle(document.getElementById('clip-grid'))"
                             ".gridTemplateColumns.split(' ').length")
    assert columns == 2
    phone.screenshot(path=artifacts / "gallery-phone.png", full_page=True)
    phone.locator("#clip-grid .clip-open").first.tap()
    phone.wait_for_selector(CARD_CHARTS, timeout=20_000)
    phone.screenshot(path=artifacts / "gallery-phone-card.png")
    assert phone.js_errors == []
