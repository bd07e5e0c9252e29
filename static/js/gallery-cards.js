/* Gallery cards, shared by the gallery and the compare page: one card per clip (cached
   spectrogram thumbnail, labels, confidence, play button), one audio player for all cards,
   and a dialog that shows a clip in the upload page's full result view (result.js). */
"use strict";
window.Hark = window.Hark || {};

Hark.Clips = (function () {
  const player = new Audio();
  player.preload = "none";
  let playingButton = null;

  /* GET JSON; reject with the server's own sentence. */
  async function getJSON(url, { signal } = {}) {
    return Hark.fetchJSON(url, { signal, headers: { Accept: "application/json" } });
  }

  function stop() {
    player.pause();
    if (playingButton) {
      playingButton.classList.remove("playing");
      playingButton.setAttribute("aria-label", "Play");
      playingButton = null;
    }
  }
  player.addEventListener("playing", () => { if (playingButton) playingButton.dataset.state = "playing"; });
  player.addEventListener("ended", () => {
    if (playingButton) playingButton.dataset.state = "played";
    stop();
  });
  player.addEventListener("error", () => {
    if (playingButton) playingButton.title = "This clip could not be played.";
    stop();
  });

  function play(button, url) {
    if (playingButton === button) { stop(); return; }
    stop();
    player.src = url;
    playingButton = button;
    button.classList.add("playing");
    button.setAttribute("aria-label", "Stop");
    player.play().catch(() => stop());
  }

  /* A card for `item` (from /api/gallery/.../clips); `lines` are [key, value, className]. */
  function card(item, lines, onOpen) {
    const template = document.getElementById("clip-card-template");
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.id = item.id;
    el.dataset.correct = String(item.correct);
    el.dataset.audio = String(item.audio);
    const img = el.querySelector(".clip-thumb");
    if (item.thumbnail_url) {
      img.src = item.thumbnail_url;
      img.alt = `Spectrogram of ${item.path}`;
      img.addEventListener("error", () => {
        el.dataset.thumb = "failed";
        el.querySelector(".clip-noaudio").textContent = "no picture of this clip";
      });
    } else {
      img.remove();
    }
    const box = el.querySelector(".clip-lines");
    for (const [key, value, className] of lines) {
      const line = document.createElement("span");
      line.className = `clip-line ${className || ""}`;
      const k = document.createElement("span");
      k.className = "clip-key";
      k.textContent = key;
      const v = document.createElement("b");
      v.textContent = value;
      line.append(k, v);
      box.append(line);
    }
    el.querySelector(".clip-confidence").textContent = Hark.percent(item.confidence);
    el.querySelector(".clip-badge").textContent = item.correct ? "" : "wrong";
    const open = el.querySelector(".clip-open");
    open.title = item.path;
    open.setAttribute("aria-label", `${item.path}: ${lines.map(([k, v]) => `${k} ${v}`).join(", ")}` +
      `, ${Hark.percent(item.confidence)}. Open the full view.`);
    if (item.audio) {
      open.addEventListener("click", () => onOpen(item));
    } else {           // the detailed view needs the audio: never offer a view that fails
      open.disabled = true;
      open.title = "The audio of this clip is not on this machine yet.";
      open.setAttribute("aria-label", `${item.path}: ${lines.map(([k, v]) => `${k} ${v}`).join(", ")}` +
        `, ${Hark.percent(item.confidence)}. Its audio is not on this machine yet.`);
    }
    const button = el.querySelector(".clip-play");
    if (item.audio_url) {
      button.addEventListener("click", () => play(button, item.audio_url));
    } else {
      button.disabled = true;
      button.title = "The audio of this clip is not on this machine.";
    }
    return el;
  }

  /* The dialog with one result view per entry of `analyses` ({heading, url}). */
  const dialog = document.getElementById("clip-dialog");
  const results = document.getElementById("clip-dialog-results");

  function clearDialog() {
    results.querySelectorAll("audio").forEach((a) => a.pause());
    if (window.Plotly) results.querySelectorAll(".js-plotly-plot").forEach((c) => window.Plotly.purge(c));
    results.replaceChildren();
  }

  async function openDetail(title, truth, analyses) {
    stop();
    clearDialog();
    document.getElementById("clip-dialog-title").textContent = title;
    document.getElementById("clip-dialog-truth").textContent = truth;
    results.dataset.count = String(analyses.length);
    if (!dialog.open) dialog.showModal();
    Hark.loadPlotly().catch(() => {});
    await Promise.all(analyses.map(async ({ heading, url }) => {
      const column = document.createElement("div");
      column.className = "clip-dialog-column";
      if (heading) {
        const h = document.createElement("h3");
        h.textContent = heading;
        column.append(h);
      }
      results.append(column);
      const result = new Hark.ResultCard(column, title, { append: true });
      try {
        const body = await getJSON(url);
        result.playable(body.clip.audio_url);
        await result.show(body);
      } catch (err) {
        result.fail(err.message);
      }
    }));
  }

  if (dialog) {
    document.getElementById("clip-dialog-close").addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
    dialog.addEventListener("close", clearDialog);
  }

  /* Fill a pager (<nav> with [data-page=prev|next] buttons and a .pager-where). */
  function pager(nav, page, pages) {
    nav.hidden = pages <= 1;
    nav.querySelector("[data-page='prev']").disabled = page <= 1;
    nav.querySelector("[data-page='next']").disabled = page >= pages;
    nav.querySelector(".pager-where").textContent = `Page ${page} of ${pages}`;
  }

  /* "Clips 1–48 of 230" for a page of a list. */
  function range(body) {
    if (!body.matched) return "";
    const first = (body.page - 1) * body.per_page + 1;
    const last = first + body.items.length - 1;
    return `${first.toLocaleString()}–${last.toLocaleString()} of ${body.matched.toLocaleString()}`;
  }

  return { getJSON, card, openDetail, pager, range, stop };
})();
