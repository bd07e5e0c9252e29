/* While no model is active: show the training job's progress (/api/training) and
   reload the page once /api/health says a model serves. */
"use strict";
(function () {
  const panel = document.getElementById("no-model");
  const box = document.getElementById("first-model");
  const state = document.getElementById("first-model-state");
  const bar = document.getElementById("first-model-bar");

  const describe = (job, queued) => {
    if (!job) return queued ? "A training job is waiting in the queue." : "";
    if (job.state === "queued") return "A training job is queued: the worker starts it shortly.";
    if (job.stalled) return `Training job #${job.id} is not reporting: is the worker running?`;
    if (job.epoch) {
      const eta = job.eta_s ? `, about ${Math.max(1, Math.round(job.eta_s / 60))} min left in this stage` : "";
      return `Training the first model: ${job.stage || `epoch ${job.epoch}`}${eta}.`;
    }
    return `Training job #${job.id}: ${job.stage || job.state}…`;
  };

  const showProgress = async () => {
    if (!panel || !panel.dataset.statusUrl) return;
    try {
      const response = await fetch(panel.dataset.statusUrl, { cache: "no-store" });
      if (!response.ok) return;
      const status = await response.json();
      const job = status.current;
      const text = describe(job, status.queued);
      box.hidden = !text;
      state.textContent = text;
      const steps = job && job.steps;
      const share = steps && steps.total ? (100 * (steps.done || 0)) / steps.total : 0;
      bar.style.width = `${share}%`;
      bar.parentElement.setAttribute("aria-valuenow", Math.round(share));
    } catch (_) { /* server restarting */ }
  };

  const poll = async () => {
    try {
      const response = await fetch(Hark.settings.healthUrl, { cache: "no-store" });
      if (response.ok) { window.location.reload(); return; }
    } catch (_) { /* server restarting: keep waiting */ }
    await showProgress();
    window.setTimeout(poll, 2000);
  };
  showProgress();
  window.setTimeout(poll, 2000);
})();
