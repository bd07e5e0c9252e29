/* Admin page: ask before destructive actions, and keep the job and version tables
   current (re-fetched from the server every two seconds while a job is active). */
"use strict";
(function () {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  const box = document.getElementById("admin-tables");
  if (!box) return;
  const active = () => box.querySelector('tr[data-state="queued"], tr[data-state="running"]') !== null;
  let idleRounds = 0;

  const refresh = async () => {
    // Fast while something runs; every 10 s otherwise (a job may be queued elsewhere).
    if (!active() && ++idleRounds % 5 !== 0) return;
    try {
      const response = await fetch(box.dataset.url, { cache: "no-store", credentials: "same-origin" });
      if (response.redirected || !response.ok) return;   // logged out: leave the page as it is
      const html = await response.text();
      if (html.trim() !== box.innerHTML.trim()) box.innerHTML = html;
    } catch (_) { /* server restarting: try again next round */ }
  };
  window.setInterval(refresh, 2000);
})();
