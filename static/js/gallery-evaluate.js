/* The admin's "evaluate on a folder" form: posts to the JSON endpoint (with the CSRF token),
   which queues an evaluation job (202); then follows the job (GET /admin/api/jobs/<id>) every
   second, shows its progress in clips, and links the stored result in the gallery when it is
   done. Errors are shown as the server words them. A page opened while an evaluation runs
   follows that one. */
"use strict";
(function () {
  const form = document.getElementById("evaluate-form");
  const box = document.getElementById("evaluate-job");
  if (!box) return;
  const $ = (id) => document.getElementById(id);
  const status = $("evaluate-status");
  const button = $("evaluate-go");
  const cancel = $("evaluate-cancel");
  const token = () => (form && form.dataset.csrfToken) || (Hark.csrfToken ? Hark.csrfToken() : "");
  const urlFor = (template, id) => template.replace(/\/0(\/|$)/, `/${id}$1`);
  const number = (n) => (n || 0).toLocaleString("en");
  let following = null;

  const errorOf = async (response) => {
    let json = null;
    try { json = await response.json(); } catch (_) { /* not JSON */ }
    return (json && json.error) || `The server answered ${response.status}.`;
  };

  function show(job) {
    box.hidden = false;
    const steps = job.steps || { done: 0, total: 0 };
    $("evaluate-job-title").textContent = `Job #${job.id}: ${job.stalled ? "no word from its worker" : job.state}`;
    $("evaluate-job-stage").textContent = job.stage
      ? `· ${job.stage}${job.cancel_requested ? " (stopping)" : ""}`
      : (job.state === "queued" ? "· waiting for the queue (a running training goes first)" : "");
    const bar = $("evaluate-bar");
    bar.setAttribute("aria-valuemax", steps.total || 0);
    bar.setAttribute("aria-valuenow", steps.done || 0);
    bar.firstElementChild.style.width = steps.total ? `${(100 * steps.done) / steps.total}%` : "0";
    const result = $("evaluate-result");
    result.replaceChildren();
    result.dataset.kind = "";
    const running = job.state === "queued" || job.state === "running";
    cancel.hidden = !running || job.cancel_requested;
    if (running) {
      result.textContent = `${number(steps.done)} of ${number(steps.total)} clips evaluated.`;
    } else if (job.state === "succeeded" && job.evaluation) {
      const e = job.evaluation;
      result.append(`Done: ${Math.round(e.accuracy * 1000) / 10}% on ${number(e.n)} clips. `);
      if (job.gallery_url) {
        const link = document.createElement("a");
        link.href = job.gallery_url;
        link.id = "evaluate-open";
        link.textContent = "Open it in the gallery";
        result.appendChild(link);
      }
    } else {
      result.dataset.kind = "error";
      result.textContent = job.error || `The evaluation ended: ${job.state}.`;
    }
    return running || (job.state === "succeeded" && job.evaluation && !job.gallery_url);
  }

  async function follow(id) {
    following = id;
    while (following === id) {
      try {
        const response = await fetch(urlFor(box.dataset.jobUrl, id), { cache: "no-store" });
        if (response.ok) {
          if (!show(await response.json())) break;
        } else if (response.status === 401 || response.status === 404) {
          $("evaluate-result").textContent = await errorOf(response);
          break;
        }
      } catch (_) { /* server restarting: keep polling */ }
      await new Promise((resolve) => window.setTimeout(resolve, 1000));
    }
    if (button) button.disabled = false;
  }

  cancel.addEventListener("click", async () => {
    if (!following || !window.confirm(`Cancel evaluation job ${following}?`)) return;
    const response = await fetch(urlFor(box.dataset.cancelUrl, following), {
      method: "POST", headers: { "X-CSRFToken": token() },
    });
    if (!response.ok) $("evaluate-result").textContent = await errorOf(response);
  });

  if (box.dataset.follow) follow(Number(box.dataset.follow));
  if (!form) return;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // A data set's page names its set by key; the gallery's form takes a folder.
    const body = form.elements.dataset ? { model: form.elements.model.value, dataset: form.elements.dataset.value }
      : { model: form.elements.model.value, folder: form.elements.folder.value.trim() };
    if (!body.dataset && !body.folder) { status.textContent = "Name a folder first."; return; }
    button.disabled = true;
    status.dataset.kind = "";
    status.textContent = "Checking the folder…";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token() },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(await errorOf(response));
      const job = await response.json();
      status.textContent = `Queued as job #${job.id}.`;
      show(job);
      follow(job.id);
    } catch (err) {
      status.dataset.kind = "error";
      status.textContent = err.message === "Failed to fetch" ? "Could not reach the server." : err.message;
      button.disabled = false;
    }
  });
})();
