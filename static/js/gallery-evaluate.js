/* The admin's "evaluate on a folder" form: posts to the JSON endpoint (with the CSRF token)
   and opens the stored result in the gallery; errors are shown as the server words them. */
"use strict";
(function () {
  const form = document.getElementById("evaluate-form");
  if (!form) return;
  const status = document.getElementById("evaluate-status");
  const button = document.getElementById("evaluate-go");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { model: form.elements.model.value, folder: form.elements.folder.value.trim() };
    if (!body.folder) { status.textContent = "Name a folder first."; return; }
    button.disabled = true;
    status.dataset.kind = "";
    status.textContent = "Evaluating… (about a second per thousand clips)";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": form.dataset.csrfToken || "" },
        body: JSON.stringify(body),
      });
      let json = null;
      try { json = await response.json(); } catch (_) { /* not JSON */ }
      if (!response.ok) throw new Error((json && json.error) || `The server answered ${response.status}.`);
      status.textContent = `Done: ${Math.round(json.accuracy * 1000) / 10}% on ${json.n} clips. Opening it…`;
      window.location.assign(json.gallery_url);
    } catch (err) {
      status.dataset.kind = "error";
      status.textContent = err.message === "Failed to fetch" ? "Could not reach the server." : err.message;
      button.disabled = false;
    }
  });
})();
