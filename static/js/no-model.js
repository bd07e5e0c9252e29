/* While no model is active, ask the server every few seconds and reload once one is. */
"use strict";
(function () {
  const poll = async () => {
    try {
      const response = await fetch(Hark.settings.healthUrl, { cache: "no-store" });
      if (response.ok) { window.location.reload(); return; }
    } catch (_) { /* server restarting: keep waiting */ }
    window.setTimeout(poll, 5000);
  };
  window.setTimeout(poll, 5000);
})();
