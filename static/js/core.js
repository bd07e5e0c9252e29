/* Hark's shared helpers: page settings, API calls and loading Plotly on demand.
   Pages get their settings from data- attributes on <body>, never inline scripts,
   so a strict Content-Security-Policy can forbid inline code. */
"use strict";
window.Hark = window.Hark || {};

(function (Hark) {
  const data = document.body.dataset;

  Hark.settings = {
    plotlyUrl: data.plotlyUrl,
    healthUrl: data.healthUrl,
    analyzeUrl: data.analyzeUrl,
    predictUrl: data.predictUrl,
    maxUpload: Number(data.maxUpload || 0),
    lowConfidence: Number(data.lowConfidence || 0.6),
    displayNames: JSON.parse(data.displayNames || "{}"),
    specialLabels: JSON.parse(data.specialLabels || "{}"),   // {silence, unknown}: webapp/labels.py
    hasModel: data.hasModel === "true",
  };

  Hark.displayName = (label) => Hark.settings.displayNames[label] || label;
  const special = Object.values(Hark.settings.specialLabels);
  Hark.isCommand = (label) => !special.includes(label);
  Hark.percent = (p) => `${Math.round(p * 100)}%`;

  /* A job's progress bar (role=progressbar with a child bar) at steps {done, total}. */
  Hark.showProgress = function (bar, steps) {
    bar.setAttribute("aria-valuemax", steps.total || 0);
    bar.setAttribute("aria-valuenow", steps.done);
    bar.firstElementChild.style.width = steps.total ? `${(100 * steps.done) / steps.total}%` : "0";
  };

  /* A job's log tail, kept scrolled to the end when the reader was there. */
  Hark.showLog = function (log, text) {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = text || "";
    if (atBottom) log.scrollTop = log.scrollHeight;
  };

  /* fetch(url, init); resolve with the JSON body, reject with the server's own message. */
  Hark.fetchJSON = async function (url, init) {
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new Error("Could not reach the server. Is it still running?");
    }
    let json = null;
    try { json = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) {
      const error = new Error((json && json.error) || `The server answered ${response.status}.`);
      error.status = response.status;
      error.code = json && json.code;
      throw error;
    }
    return json;
  };

  /* POST audio; resolve with the JSON body, reject with the server's own message. */
  Hark.postAudio = async function (url, blob, filename, { multipart = true, signal, fields = {} } = {}) {
    let body = blob;
    const headers = {};
    if (multipart) {
      body = new FormData();
      body.append("file", blob, filename || "audio.wav");
      for (const [name, value] of Object.entries(fields)) body.append(name, value);
    } else {
      headers["Content-Type"] = blob.type || "audio/wav";
    }
    return Hark.fetchJSON(url, { method: "POST", body, headers, signal });
  };

  /* The detector's sensitivity (low, medium, high): one choice per browser, shared by every
     select[data-sensitivity] (Live, Upload); its option's data-about says what it means. */
  const SENSITIVITY_KEY = "hark.sensitivity";
  const SENSITIVITIES = ["low", "medium", "high"];
  Hark.sensitivity = function () {
    let value = null;
    try { value = localStorage.getItem(SENSITIVITY_KEY); } catch (e) { /* storage off */ }
    return SENSITIVITIES.includes(value) ? value : "medium";
  };
  function showSensitivity(value) {
    document.querySelectorAll("select[data-sensitivity]").forEach((select) => {
      select.value = value;
      const about = select.closest(".sensitivity").querySelector("[data-sensitivity-about]");
      if (about) about.textContent = select.selectedOptions[0] ? select.selectedOptions[0].dataset.about : "";
    });
  }
  document.addEventListener("DOMContentLoaded", () => {
    showSensitivity(Hark.sensitivity());
    document.querySelectorAll("select[data-sensitivity]").forEach((select) => {
      select.addEventListener("change", () => {
        try { localStorage.setItem(SENSITIVITY_KEY, select.value); } catch (e) { /* storage off */ }
        showSensitivity(select.value);
      });
    });
  });

  /* Plotly is 1.5 MB (gzip; 4.8 MB unpacked): fetch it once, when first needed or when idle. */
  let plotlyPromise = null;
  Hark.loadPlotly = function () {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyPromise) {
      plotlyPromise = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = Hark.settings.plotlyUrl;
        script.async = true;
        script.onload = () => resolve(window.Plotly);
        script.onerror = () => { plotlyPromise = null; reject(new Error("Could not load the chart library.")); };
        document.head.appendChild(script);
      });
    }
    return plotlyPromise;
  };

  /* A job's time left as people read it: the server's estimate counted down (eta_left_s),
     and once the epochs are done what the job still does, never a frozen "about 1 s". */
  Hark.timeLeft = function (job) {
    if (!job) return "—";
    if (job.state === "queued") return "waiting for the worker";
    if (job.state !== "running") return "—";
    const s = job.steps || { done: job.epoch || 0, total: job.epochs };
    const stage = job.stage === "training" ? "testing and saving the model" : job.stage;
    const left = job.eta_left_s ?? job.eta_s;
    if (s.total && s.done >= s.total) return `finishing${stage ? `: ${stage}` : ""}`;
    if (left === null || left === undefined) return "—";
    if (left < 1) return "almost done";
    return left < 90 ? `about ${Math.round(left)} s` : `about ${(left / 60).toFixed(1)} min`;
  };

  /* A figure as drawn here: on touch screens a drag scrolls the page (no zoom, no mode bar). */
  Hark.touchFigure = function (figure) {
    if (!window.matchMedia("(hover: none)").matches) return figure;
    return { ...figure, layout: { ...figure.layout, dragmode: false },
             config: { ...figure.config, displayModeBar: false } };
  };

  Hark.whenIdle = function (fn) {
    if ("requestIdleCallback" in window) window.requestIdleCallback(fn, { timeout: 2000 });
    else window.setTimeout(fn, 500);
  };
})(window.Hark);
