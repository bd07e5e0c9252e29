/* A result card: the word, its confidence, a plain verdict, the clip to play, and the
   three charts the server built (waveform, the model's own spectrogram, probabilities). */
"use strict";
window.Hark = window.Hark || {};

Hark.ResultCard = class {
  /* A new pending card in `list` (newest first unless `append`), titled by file name or "Recording". */
  constructor(list, title, { append = false } = {}) {
    const template = document.getElementById("result-template");
    this.element = template.content.firstElementChild.cloneNode(true);
    this.element.querySelector(".result-meta").textContent = title;
    this.element.dataset.title = title;
    this.title = title;
    this.audio = this.element.querySelector(".result-audio");
    this.audio.hidden = true;
    if (append) list.append(this.element); else list.prepend(this.element);
  }

  set(selector, text) { this.element.querySelector(selector).textContent = text; }

  playable(url) {
    this.audio.src = url;
    this.audio.hidden = false;
  }

  fail(message) {
    this.element.dataset.state = "error";
    this.set(".result-word", "Could not classify");
    this.set(".result-confidence", "");
    this.set(".result-verdict", message);
    this.audio.hidden = true;
    this.element.querySelector(".charts").remove();
  }

  /* "file · 1.00 s · model X · answered in 24 ms", the time explained on hover and to screen readers. */
  meta(result) {
    const el = this.element.querySelector(".result-meta");
    el.textContent = `${this.title} · ${result.duration_s.toFixed(2)} s · model ${result.model} · `;
    if (result.on_device) el.append(`classified on this device in ${Math.round(result.timing_ms.total)} ms`);
    else el.append(Hark.timing(result.timing_ms));
  }

  async show(result) {
    const verdict = Hark.verdictFor ? Hark.verdictFor(result) : result.verdict;
    const kind = verdict.kind;
    this.element.dataset.state = "done";
    this.element.dataset.kind = kind;
    this.element.dataset.label = result.label;
    this.set(".result-word", result.display_label);
    this.set(".result-confidence", Hark.percent(result.confidence));
    this.set(".result-verdict", verdict.text);
    this.meta(result);
    try {
      await this.draw(result.figures);
      this.element.dataset.charts = "drawn";
    } catch (err) {   // the answer stands even if the charts cannot be drawn
      this.element.dataset.charts = "failed";
      this.element.querySelector(".charts").textContent = `Charts unavailable: ${err.message}`;
    }
  }

  async draw(figures) {
    const Plotly = await Hark.loadPlotly();
    const touch = window.matchMedia("(hover: none)").matches;
    const draws = [];
    for (const chart of this.element.querySelectorAll("[data-chart]")) {
      const figure = figures[chart.dataset.chart];
      if (!figure) { chart.remove(); continue; }   // e.g. no spectrogram for a page's waveform model
      // On touch screens a drag must scroll the page, not zoom the chart; taps still show values.
      const layout = touch ? { ...figure.layout, dragmode: false } : figure.layout;
      const config = touch ? { ...figure.config, displayModeBar: false } : figure.config;
      draws.push(Plotly.newPlot(chart, figure.data, layout, config));
    }
    await Promise.all(draws);
  }

  remove() {
    if (this.audio.src) URL.revokeObjectURL(this.audio.src);
    if (window.Plotly) this.element.querySelectorAll(".js-plotly-plot").forEach((c) => window.Plotly.purge(c));
    this.element.remove();
  }
};

/* "answered in 24 ms": the server's time for the clip, its stages in the tooltip. */
Hark.timing = function (timing) {
  const span = document.createElement("span");
  span.className = "result-timing";
  const ms = (v) => `${Math.round(v || 0)} ms`;
  span.textContent = `answered in ${ms(timing.total)}`;
  const stages = { decode: "decoding", features: "features", model: "model", detect: "finding the words" };
  const parts = Object.entries(stages).filter(([key]) => timing[key] !== undefined)
    .map(([key, name]) => `${name} ${ms(timing[key])}`);
  span.title = `Time the server took for this clip, from receiving it to answering` +
    (parts.length ? `: ${parts.join(", ")}` : "") + ". Sending it over the network is not counted.";
  span.tabIndex = 0;
  span.setAttribute("aria-label", `${span.textContent}. ${span.title}`);
  return span;
};

/* Classify one audio blob on the server and fill a new card with the answer. */
Hark.analyzeInto = async function (list, blob, title, options) {
  const card = new Hark.ResultCard(list, title, options);
  card.playable(URL.createObjectURL(blob));
  let result;
  try {
    result = await Hark.postAudio(Hark.settings.analyzeUrl, blob, title);
  } catch (err) {
    card.fail(err.message);
    return card;
  }
  await card.show(result);
  return card;
};
