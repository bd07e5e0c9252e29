/* The compare page: the F1 chart, and pages of the clips two versions label differently;
   opening one shows it through both models side by side. */
"use strict";
(function () {
  const pick = document.getElementById("compare-pick");
  if (!pick) return;
  document.getElementById("compare-go").hidden = true;
  pick.addEventListener("change", () => pick.submit());

  const chart = document.getElementById("compare-chart");
  Hark.loadPlotly().then((Plotly) => {
    const figure = JSON.parse(chart.dataset.chart);
    const touch = window.matchMedia("(hover: none)").matches;
    const layout = touch ? { ...figure.layout, dragmode: false } : figure.layout;
    const config = touch ? { ...figure.config, displayModeBar: false } : figure.config;
    return Plotly.newPlot(chart, figure.data, layout, config);
  }).then(() => { chart.dataset.drawn = "true"; }).catch(() => {
    chart.textContent = "The chart could not be drawn; the table below has the same figures.";
  });

  const section = document.getElementById("disagreements");
  const grid = document.getElementById("compare-grid");
  if (!grid) return;   // no shared clips: nothing to list
  const count = document.getElementById("compare-count");
  const nav = document.getElementById("compare-pager");
  const which = document.getElementById("which");
  const nameA = section.dataset.nameA, nameB = section.dataset.nameB;
  let page = 1;
  let controller = null;

  function open(item) {
    Hark.Clips.openDetail(item.path, `True label: ${item.true_name}. A heard “${item.pred_name}”, B heard “${item.pred_b_name}”.`, [
      { heading: `A · ${nameA}`, url: item.analyze_url },
      { heading: `B · ${nameB}`, url: item.analyze_url_b },
    ]);
  }

  function lines(item) {
    return [
      ["true", item.true_name, "clip-true"],
      ["A", `${item.pred_name} ${Hark.percent(item.confidence)}`, `clip-a ${item.correct ? "is-right" : "is-wrong"}`],
      ["B", `${item.pred_b_name} ${Hark.percent(item.confidence_b)}`, `clip-b ${item.correct_b ? "is-right" : "is-wrong"}`],
    ];
  }

  async function load({ scroll = false } = {}) {
    const url = new URL(section.dataset.url, window.location.href);
    url.searchParams.set("which", which.value);
    if (page > 1) url.searchParams.set("page", String(page));
    const address = new URL(window.location.href);
    address.searchParams.set("which", which.value);
    window.history.replaceState(null, "", address);
    if (controller) controller.abort();
    controller = new AbortController();
    grid.dataset.state = "loading";
    let body;
    try {
      body = await Hark.Clips.getJSON(url, { signal: controller.signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      grid.replaceChildren();
      grid.dataset.state = "error";
      count.textContent = err.message;
      return;
    }
    page = body.page;
    Hark.Clips.stop();
    grid.replaceChildren(...body.items.map((item) => {
      const card = Hark.Clips.card(item, lines(item), open);
      delete card.dataset.correct;
      card.querySelector(".clip-confidence").textContent = "";
      card.querySelector(".clip-badge").textContent = "";
      return card;
    }));
    count.textContent = body.matched
      ? `Clips ${Hark.Clips.range(body)} on which A and B disagree`
      : "No clip of this kind: the two versions agree on them.";
    Hark.Clips.pager(nav, body.page, body.pages);
    grid.dataset.state = body.matched ? "ready" : "empty";
    if (scroll) section.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  which.addEventListener("change", () => { page = 1; load(); });
  document.getElementById("which-form").addEventListener("submit", (event) => event.preventDefault());
  nav.addEventListener("click", (event) => {
    const button = event.target.closest("[data-page]");
    if (!button) return;
    page += button.dataset.page === "next" ? 1 : -1;
    load({ scroll: true });
  });
  load();
})();
