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
  // On a phone a page holds fewer cards, so the evaluation is not thousands of pixels down.
  const phone = window.matchMedia("(max-width: 700px)");
  const PHONE_PAGE = 12;
  let buildTimer = null;

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
    if (phone.matches) q.set("per_page", String(PHONE_PAGE));
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
    followBuild(body.audio);
    Hark.Clips.stop();
    grid.replaceChildren(...body.items.map((item) => Hark.Clips.card(item, [
      ["true", item.true_name, "clip-true"],
      ["heard", item.pred_name, "clip-pred"],
    ], open)));
    if (body.audio && body.audio.building && body.audio.building.state !== "failed") {
      grid.querySelectorAll(".clip-noaudio").forEach((el) => { el.textContent = "audio being made…"; });
    }
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

  /* While the server makes the clips' audio, show its progress and ask again every 3 s;
     when it is ready the cards come back playable (and openable). */
  function followBuild(audio) {
    const notice = document.getElementById("audio-building");
    window.clearTimeout(buildTimer);
    if (!notice) return;
    const building = audio && audio.building;
    if (!building) {
      notice.hidden = audio && audio.available;
      if (audio && audio.available) root.dataset.audio = "ready";
      return;
    }
    notice.dataset.state = building.state;
    document.getElementById("audio-building-text").textContent = building.message;
    const bar = notice.querySelector(".progress");
    if (bar && building.total) {
      bar.setAttribute("aria-valuemax", building.total);
      bar.setAttribute("aria-valuenow", building.done);
      bar.firstElementChild.style.width = `${(100 * building.done) / building.total}%`;
    }
    if (building.state !== "failed") buildTimer = window.setTimeout(checkBuild, 3000);
  }

  async function checkBuild() {
    try {
      const body = await Hark.Clips.getJSON(`${root.dataset.clipsUrl}?per_page=1`);
      if (body.audio && body.audio.building) followBuild(body.audio);
      else load();             // ready: the same cards again, playable and openable now
    } catch (_) {
      buildTimer = window.setTimeout(checkBuild, 3000);
    }
  }

  /* The confusion matrix as a table: one tab stop, arrow keys between cells, Enter filters. */
  const table = document.getElementById("confusion-table");
  if (table) {
    const cells = [...table.querySelectorAll(".confusion-cell")];
    const size = Math.round(Math.sqrt(cells.length));
    table.addEventListener("click", (event) => {
      const cell = event.target.closest(".confusion-cell");
      if (cell) showCell(cell.dataset.true, cell.dataset.pred);
    });
    table.addEventListener("keydown", (event) => {
      const cell = event.target.closest(".confusion-cell");
      if (!cell) return;
      let r = Number(cell.dataset.row), c = Number(cell.dataset.col);
      const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      if (event.key === "Home") c = 0;
      else if (event.key === "End") c = size - 1;
      else if (moves[event.key]) {
        r = Math.min(size - 1, Math.max(0, r + moves[event.key][0]));
        c = Math.min(size - 1, Math.max(0, c + moves[event.key][1]));
      } else return;
      event.preventDefault();
      const next = cells[r * size + c];
      cells.forEach((el) => { el.tabIndex = el === next ? 0 : -1; });
      next.focus();
    });
  }

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
