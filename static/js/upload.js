/* Upload: files dropped or picked are classified two at a time, one card each. A file
   longer than LONG_S is listened to from end to end (POST /api/detect): its card shows
   the waveform with a marker at every command found, and the list of those words. */
"use strict";
(function () {
  const dropzone = document.getElementById("dropzone");
  if (!dropzone) return;   // no model yet
  const LONG_S = 2.0;
  const section = dropzone.closest("[data-detect-url]");
  const detectUrl = section.dataset.detectUrl;
  const maxDetectUpload = Number(section.dataset.maxDetectUpload || 0);
  const input = document.getElementById("file-input");
  const results = document.getElementById("results");
  const status = document.getElementById("upload-status");
  const clear = document.getElementById("clear-results");
  const initialStatus = status.textContent;
  const queue = [];
  let running = 0, done = 0, total = 0;
  const PARALLEL = 2;

  Hark.whenIdle(() => Hark.loadPlotly().catch(() => {}));

  function report() {
    if (running || queue.length) {
      status.textContent = `Classifying ${Math.min(done + 1, total)} of ${total}…`;
      return;
    }
    const failed = results.querySelectorAll('.result[data-state="error"]').length;
    const files = (n) => `${n} file${n === 1 ? "" : "s"}`;
    status.textContent = !failed ? `${files(total)} classified.`
      : failed === total ? `${total === 1 ? "The file" : total === 2 ? "Neither file" : `None of the ${total} files`} could be classified: see why on ${total === 1 ? "its card" : "their cards"}.`
      : `${total - failed} of ${files(total)} classified; ${failed} could not be (see ${failed === 1 ? "its card" : "their cards"}).`;
  }

  function add(files) {
    for (const file of files) {
      total += 1;
      if (maxDetectUpload && file.size > maxDetectUpload) {
        const card = new Hark.ResultCard(results, file.name, { append: true });
        card.fail(`${file.name} could not be classified: it is larger than the ${Math.round(maxDetectUpload / 1048576)} MB limit.`);
        done += 1;
        continue;
      }
      queue.push(file);
    }
    clear.hidden = false;
    pump();
    report();
  }

  /* The words of a long recording, in the card: a headline, the timeline, the list. */
  async function showWords(card, found) {
    const words = found.detections;
    card.element.dataset.state = "done";
    card.element.dataset.kind = words.length ? "word" : "silence";
    card.element.dataset.words = words.map((d) => d.label).join(" ");
    card.set(".result-word", words.length ? `${words.length} command${words.length === 1 ? "" : "s"}` : "No command heard");
    card.set(".result-confidence", "");
    card.set(".result-verdict", words.length ? words.map((d) => Hark.displayName(d.label)).join(" · ") : "Nothing in this recording sounded like a command word.");
    card.set(".result-meta", `${card.title} · ${found.duration_s.toFixed(2)} s · model ${found.model} · sensitivity ${found.sensitivity} · `);
    card.element.querySelector(".result-meta").append(Hark.timing(found.timing_ms));
    const charts = card.element.querySelector(".charts");
    const chart = document.createElement("div");
    chart.className = "chart chart-timeline";
    const list = document.createElement("ol");
    list.className = "word-list";
    for (const d of words) {
      const item = document.createElement("li");
      item.dataset.label = d.label;
      const word = document.createElement("strong");
      word.textContent = Hark.displayName(d.label);
      const when = document.createElement("span");
      when.className = "muted";
      when.textContent = `at ${d.time_s.toFixed(2)} s · ${Hark.percent(d.confidence)}`;
      item.append(word, " ", when);
      list.append(item);
    }
    charts.classList.add("charts-words");
    charts.replaceChildren(chart, list);
    try {
      const Plotly = await Hark.loadPlotly();
      await Plotly.newPlot(chart, found.figure.data, found.figure.layout, found.figure.config);
      card.element.dataset.charts = "drawn";
    } catch (err) {
      card.element.dataset.charts = "failed";
      chart.textContent = `Chart unavailable: ${err.message}`;
    }
  }

  /* One file: its loudest second (/api/analyze), or all its words when it is long. */
  async function classify(file) {
    const card = new Hark.ResultCard(results, file.name, { append: true });
    card.playable(URL.createObjectURL(file));
    try {
      // Past the single-clip upload limit, or refused as too long, it is a recording.
      let result = null;
      if (!Hark.settings.maxUpload || file.size <= Hark.settings.maxUpload) {
        try {
          result = await Hark.postAudio(Hark.settings.analyzeUrl, file, file.name);
        } catch (err) {
          if (err.code !== "too_long") throw err;
        }
      }
      if (result && result.duration_s <= LONG_S) return await card.show(result);
      card.set(".result-verdict", "Listening to the whole recording…");
      await showWords(card, await Hark.postAudio(detectUrl, file, file.name, { fields: { sensitivity: Hark.sensitivity() } }));
    } catch (err) {
      card.fail(`${file.name} could not be classified: ${err.message}`);
    }
  }

  function pump() {
    while (running < PARALLEL && queue.length) {
      const file = queue.shift();
      running += 1;
      classify(file).finally(() => {
        running -= 1;
        done += 1;
        report();
        pump();
      });
    }
  }

  input.addEventListener("change", () => { add(Array.from(input.files)); input.value = ""; });
  ["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => dropzone.addEventListener(type, () => dropzone.classList.remove("over")));
  // A file dropped beside the zone must not make the browser navigate away to it.
  ["dragover", "drop"].forEach((type) => document.addEventListener(type, (event) => event.preventDefault()));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    add(Array.from(event.dataTransfer.files));
  });
  clear.addEventListener("click", () => {
    results.querySelectorAll("audio").forEach((a) => a.src && URL.revokeObjectURL(a.src));
    results.replaceChildren();
    total = done = 0;
    clear.hidden = true;
    status.textContent = initialStatus;
  });
})();
