/* A job's page: draw its curves; while it runs, follow /api/training/jobs/<id> every second
   (progress, time left, log, curves) and reload once it ends, to show its result. */
"use strict";
(function () {
  const root = document.getElementById("job");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  let drawn = false;

  async function drawCurves(job) {
    if (!job.figures) return;
    $("job-curves").hidden = false;
    const Plotly = await Hark.loadPlotly();
    for (const key of ["loss", "accuracy"]) {
      const f = Hark.touchFigure(job.figures[key]);
      const div = $(`curve-${key}`);
      if (drawn) Plotly.react(div, f.data, f.layout, f.config);
      else Plotly.newPlot(div, f.data, f.layout, f.config);
    }
    drawn = true;
    root.dataset.curves = "drawn";
  }

  function show(job) {
    const s = job.steps;
    const done = s.total ? `${s.done} of ${s.total} ${s.unit}` : `${s.done} ${s.unit}`;
    $("job-steps").textContent = `${done}${job.stage ? ` · ${job.stage}` : ""}`;
    if ($("job-eta")) $("job-eta").textContent = Hark.timeLeft(job);
    Hark.showProgress($("job-progress"), s);
    Hark.showLog($("job-log"), job.log_tail);
  }

  async function poll() {
    let job = null;
    try {
      job = await Hark.fetchJSON(root.dataset.jobUrl, { cache: "no-store" });
    } catch (_) { /* server restarting: try again */ }
    if (job) {
      if (job.state !== root.dataset.state && ["succeeded", "failed", "cancelled"].includes(job.state)) {
        window.location.reload();
        return;
      }
      show(job);
      drawCurves(job).catch(() => {});
    }
    window.setTimeout(poll, 1000);
  }

  if (root.dataset.finished === "true") {
    Hark.fetchJSON(root.dataset.jobUrl).then(drawCurves).catch(() => {});
  } else {
    poll();
  }
})();
