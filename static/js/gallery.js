/* The gallery page: filters, pages of clip cards, and the evaluation panel whose confusion
   matrix filters the cards. The page's address keeps the filters, so a view can be shared
   or reloaded. */
"use strict";
(function () {
  const root = document.getElementById("gallery");
  if (!root) return;
  const form = document.getElementById("filters");
  const grid = document.getElementById("clip-grid");
  const count = document.getElementById("gallery-count");
  const nav = document.getElementById("pager");
  const panel = document.getElementById("eval-panel");
  const names = JSON.parse(root.dataset.labelNames || "{}");
  const byName = Object.fromEntries(Object.entries(names).map(([label, name]) => [name, label]));
  let page = Number(form.elements.page.value) || 1;
  let controller = null;

  // The version picker shows its choice at once.
  const picker = document.getElementById("source-picker");
  document.getElementById("source-go").hidden = true;
  document.getElementById("source-select").addEventListener("change", () => picker.submit());

  function percentField(name, fallback) {
    const value = Number(form.elements[name].value);
    return form.elements[name].value === "" || !Number.isFinite(value) ? fallback
      : Math.min(100, Math.max(0, value));
  }

  /* The API's query for the form's state (defaults left out). */
  function query() {
    const q = new URLSearchParams();
    for (const name of ["true", "pred"]) if (form.elements[name].value) q.set(name, form.elements[name].value);
    if (form.elements.errors.checked) q.set("errors", "1");
    let low = percentField("min", 0), high = percentField("max", 100);
    if (low > high) [low, high] = [high, low];
    if (low > 0) q.set("min", String(low / 100));
    if (high < 100) q.set("max", String(high / 100));
    if (form.elements.sort.value !== "index") q.set("sort", form.elements.sort.value);
    if (page > 1) q.set("page", String(page));
    return q;
  }

  function describe(q) {
    const parts = [];
    if (q.get("true")) parts.push(`true “${names[q.get("true")] || q.get("true")}”`);
    if (q.get("pred")) parts.push(`heard “${names[q.get("pred")] || q.get("pred")}”`);
    if (q.get("errors")) parts.push("errors only");
    if (q.get("min") || q.get("max")) {
      parts.push(`confidence ${Math.round((q.get("min") || 0) * 100)}–${Math.round((q.get("max") || 1) * 100)}%`);
    }
    return parts.join(" · ");
  }

  function open(item) {
    const heard = `the test run heard “${item.pred_name}” with ${Hark.percent(item.confidence)} confidence`;
    Hark.Clips.openDetail(item.path, `True label: ${item.true_name} · ${heard}.`,
      [{ url: item.analyze_url }]);
  }

  async function load({ scroll = false } = {}) {
    const q = query();
    const address = new URLSearchParams([["source", root.dataset.source], ...q]);
    window.history.replaceState(null, "", `${root.dataset.pageUrl}?${address}`);
    if (controller) controller.abort();
    controller = new AbortController();
    grid.dataset.state = "loading";
    grid.setAttribute("aria-busy", "true");
    let body;
    try {
      body = await Hark.Clips.getJSON(`${root.dataset.clipsUrl}?${q}`, { signal: controller.signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      grid.replaceChildren();
      grid.dataset.state = "error";
      grid.removeAttribute("aria-busy");
      count.textContent = err.message;
      nav.hidden = true;
      return;
    }
    page = body.page;
    Hark.Clips.stop();
    grid.replaceChildren(...body.items.map((item) => Hark.Clips.card(item, [
      ["true", item.true_name, "clip-true"],
      ["heard", item.pred_name, "clip-pred"],
    ], open)));
    const filters = describe(q);
    if (!body.matched) {
      count.textContent = `No clip matches${filters ? ` (${filters})` : ""}.`;
    } else {
      const total = body.matched < body.total ? ` (${filters}; ${body.total.toLocaleString()} in all)` : "";
      count.textContent = `Clips ${Hark.Clips.range(body)}${total}`;
    }
    Hark.Clips.pager(nav, body.page, body.pages);
    grid.dataset.state = body.matched ? "ready" : "empty";
    grid.removeAttribute("aria-busy");
    if (scroll) root.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  let typing = null;
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", () => { page = 1; load(); });
  form.addEventListener("input", (event) => {
    if (event.target.type !== "number") return;
    window.clearTimeout(typing);
    typing = window.setTimeout(() => { page = 1; load(); }, 400);
  });
  document.getElementById("reset-filters").addEventListener("click", () => {
    form.elements.true.value = form.elements.pred.value = "";
    form.elements.errors.checked = false;
    form.elements.min.value = 0;
    form.elements.max.value = 100;
    form.elements.sort.value = "index";
    page = 1;
    load();
  });
  nav.addEventListener("click", (event) => {
    const button = event.target.closest("[data-page]");
    if (!button) return;
    page += button.dataset.page === "next" ? 1 : -1;
    load({ scroll: true });
  });

  /* Show the clips of one confusion-matrix cell. */
  function showCell(trueLabel, predLabel) {
    form.elements.true.value = trueLabel;
    form.elements.pred.value = predLabel;
    form.elements.errors.checked = false;
    form.elements.min.value = 0;
    form.elements.max.value = 100;
    page = 1;
    load({ scroll: true });
  }

  async function drawPanel() {
    let body;
    try {
      body = await Hark.Clips.getJSON(panel.dataset.evaluationUrl);
    } catch (err) {
      document.getElementById("latency").textContent = "—";
      return;
    }
    const latency = document.getElementById("latency");
    if (body.latency) {
      latency.textContent = `${body.latency.median_ms.toFixed(1)} ms per clip ` +
        `(median of ${body.latency.clips}, on this server)`;
    } else {
      latency.textContent = "—";
    }
    let Plotly;
    try { Plotly = await Hark.loadPlotly(); } catch (err) { return; }
    const touch = window.matchMedia("(hover: none)").matches;
    for (const chart of panel.querySelectorAll("[data-figure]")) {
      const figure = body.figures[chart.dataset.figure];
      if (!figure) {
        chart.hidden = true;
        continue;
      }
      const layout = touch ? { ...figure.layout, dragmode: false } : figure.layout;
      const config = touch ? { ...figure.config, displayModeBar: false } : figure.config;
      await Plotly.newPlot(chart, figure.data, layout, config);
      chart.dataset.drawn = "true";
      if (chart.dataset.figure === "confusion") {
        chart.on("plotly_click", (event) => {
          const point = event.points && event.points[0];
          if (!point) return;
          const [t, p] = Array.isArray(point.customdata) ? point.customdata
            : [byName[point.y] || point.y, byName[point.x] || point.x];
          showCell(t, p);
        });
      }
    }
    const curves = panel.querySelector(".curves");
    if (curves && !curves.querySelector("[data-figure]:not([hidden])")) {
      curves.append(Object.assign(document.createElement("p"), {
        className: "muted small", textContent: "No training history was recorded for this run." }));
    }
  }

  load();
  drawPanel();
})();
