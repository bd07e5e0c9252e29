/* Training page: poll /api/training every second and redraw what changed — the
   running job's epoch, time left, loss and accuracy curves (Plotly), its log, and the
   finished jobs. With nothing running, the last finished job stays in view with its
   curves. The page reloads itself when another model becomes active. */
"use strict";
(function () {
  const box = document.getElementById("training-live");
  if (!box) return;
  const $ = (id) => document.getElementById(id);
  let rev = null;                       // draw once on load, then only on change
  let plottedJob = null;
  const activeModel = box.dataset.activeModel;
  const jobPage = (id) => box.dataset.jobPage.replace(/0$/, String(id));

  const pct = (p) => (p === null || p === undefined ? "—" : `${(p * 100).toFixed(1)}%`);
  // Trainings count epochs, folder evaluations count clips (job.steps.unit says which).
  const steps = (job) => job.steps || { done: job.epoch || 0, total: job.epochs, unit: "epochs" };
  const accuracy = (job) => (job.evaluation ? job.evaluation.accuracy : job.test_accuracy);
  /* "87.5% on its test split" / "72.0% on the folder words": every figure says on what. */
  const measured = (job) => {
    const value = accuracy(job);
    if (value === null || value === undefined) return "—";
    return `${pct(value)} ${job.evaluation ? `on the ${job.dataset}` : "on its test split"}`;
  };
  const cell = (row, content, className, label) => {
    const td = row.insertCell();
    if (className) td.className = className;
    if (label) td.dataset.label = label;
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    return td;
  };
  /* Append to `parent` a <br>, then <tag class="className">text</tag>. */
  const newLine = (parent, tag, className, text) => {
    parent.appendChild(document.createElement("br"));
    const el = document.createElement(tag);
    el.className = className;
    el.textContent = text;
    parent.appendChild(el);
  };
  const stateBadge = (job) => {
    const frag = document.createDocumentFragment();
    const badge = document.createElement("span");
    badge.className = "state";
    badge.dataset.state = job.state;
    badge.textContent = job.state;
    frag.appendChild(badge);
    if (job.error) newLine(frag, "span", "error-text small", job.error);
    return frag;
  };
  const link = (href, text) => Object.assign(document.createElement("a"), { href, textContent: text });

  async function drawCurves(job) {
    if (!job.figures) return;
    const Plotly = await Hark.loadPlotly();
    for (const key of ["loss", "accuracy"]) {
      const f = Hark.touchFigure(job.figures[key]);
      const div = $(`curve-${key}`);
      if (plottedJob === job.id) Plotly.react(div, f.data, f.layout, f.config);
      else Plotly.newPlot(div, f.data, f.layout, f.config);
    }
    plottedJob = job.id;
  }

  /* The running job's time left, counted down by the server; past the last epoch, what it does. */
  function showEta(job) {
    if (!job) return;
    $("live-eta").textContent = Hark.timeLeft(job);
  }

  function showJob(job, running) {
    const s = steps(job);
    const box = $("live-job");
    box.dataset.finished = String(!running);
    $("live-heading").textContent = running
      ? `Job #${job.id}: ${job.stalled ? "no word from its worker" : job.state}`
      : `Last job #${job.id}: ${job.state}`;
    $("live-stage").textContent = running && job.stage
      ? `· ${job.stage}${job.cancel_requested ? " (stopping)" : ""}` : "";
    $("live-link").href = jobPage(job.id);
    $("live-what").textContent = job.what || `${job.arch} on the ${job.dataset}`;
    $("live-epoch").textContent = s.total ? `${s.done} of ${s.total} ${s.unit}` : `${s.done} ${s.unit}`;
    $("live-eta-row").hidden = !running;
    $("live-result-row").hidden = running;
    if (!running) {
      const result = $("live-result");
      result.replaceChildren(stateBadge(job));
      if (accuracy(job) !== null && accuracy(job) !== undefined) result.append(` ${measured(job)}`);
      if (job.version) result.append(" · version ", Object.assign(document.createElement("code"), { textContent: job.version }));
      if (job.activation && !job.activation.activated) newLine(result, "span", "error-text small", `not activated: ${job.activation.why}`);
    }
    showEta(running ? job : null);
    Hark.showProgress($("live-progress"), s);
    Hark.showLog($("live-log"), job.log_tail);
    drawCurves(job).catch(() => {});
  }

  function showCurrent(job, last, queued) {
    $("live-idle").hidden = !!job;
    $("live-job").hidden = !(job || last);
    $("live-queued").hidden = !queued;
    $("live-queued").textContent = `${queued} job(s) waiting in the queue.`;
    if (job || last) showJob(job || last, !!job);
  }

  function showHistory(history) {
    $("history-empty").hidden = history.length > 0;
    $("history-table").hidden = history.length === 0;
    const body = $("history-rows");
    body.replaceChildren();
    for (const job of history) {
      const row = body.insertRow();
      cell(row, link(jobPage(job.id), `#${job.id}`), null, "Job");
      cell(row, stateBadge(job), null, "Result");
      const model = document.createDocumentFragment();
      model.append(job.what || `${job.arch} · ${job.dataset}`);
      if (job.version) newLine(model, "code", "small", job.version);
      cell(row, model, null, "What");
      const s = steps(job);
      cell(row, `${s.done}/${s.total} ${s.unit}`, null, "Progress");
      cell(row, measured(job), null, "Accuracy");
      cell(row, (job.finished_at || "").slice(0, 19).replace("T", " "), "small", "Finished");
    }
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.statusUrl, { cache: "no-store" });
      if (response.ok) {
        const status = await response.json();
        const name = status.active_model ? status.active_model.name : "";
        if (name !== activeModel) { window.location.reload(); return; }
        if (status.rev !== rev) {
          rev = status.rev;
          showCurrent(status.current, status.last, status.queued);
          showHistory(status.history);
        }
        showEta(status.current);
      }
    } catch (_) { /* server restarting: keep polling */ }
    window.setTimeout(poll, 1000);
  }
  poll();
})();
