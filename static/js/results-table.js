/* The Upload page's summary: one row per result card (file, heard, confidence, a link to
   its card and charts), above the cards, once there are two or more. It reads the cards
   as result.js and upload.js leave them, so it needs nothing from either. */
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", () => {
    const results = document.getElementById("results");
    if (!results || !document.getElementById("dropzone")) return;
    const section = document.createElement("section");
    section.className = "card results-summary";
    section.id = "results-summary";
    section.hidden = true;
    section.setAttribute("aria-labelledby", "results-summary-title");
    section.innerHTML = '<h2 id="results-summary-title">Results</h2><table class="table">' +
      "<thead><tr><th>File</th><th>Heard</th><th>Confidence</th><th><span class=\"sr-only\">Details</span></th></tr></thead>" +
      "<tbody></tbody></table>";
    results.before(section);
    const body = section.querySelector("tbody");
    let next = 1;
    let queued = false;

    const text = (card, selector) => (card.querySelector(selector) || {}).textContent || "";

    function row(card) {
      if (!card.id) card.id = `result-${next++}`;
      const tr = document.createElement("tr");
      tr.dataset.state = card.dataset.state || "pending";
      tr.dataset.card = card.id;
      const file = card.dataset.title || text(card, ".result-meta").split(" · ")[0];
      let heard, confidence;
      if (card.dataset.state === "error") {
        const why = text(card, ".result-verdict");
        heard = `could not classify: ${why.startsWith(`${file}: `) ? why.slice(file.length + 2) : why}`;
        confidence = "—";
      } else if (card.dataset.state !== "done") {
        heard = "…";
        confidence = "";
      } else if (card.dataset.words !== undefined) {       // a long recording: all its words
        heard = card.dataset.words ? card.dataset.words.split(" ").map(Hark.displayName).join(", ")
          : "no command";
        confidence = text(card, ".result-confidence") || "—";
      } else {
        heard = text(card, ".result-word") + (card.dataset.kind === "unsure" ? " (not sure)" : "");
        confidence = text(card, ".result-confidence");
      }
      for (const value of [file, heard, confidence]) tr.insertCell().textContent = value;
      const link = Object.assign(document.createElement("a"), {
        href: `#${card.id}`, textContent: card.dataset.state === "error" ? "why" : "charts" });
      link.setAttribute("aria-label", `${file}: its card${card.dataset.state === "error" ? "" : " and charts"}`);
      tr.insertCell().append(link);
      return tr;
    }

    function redraw() {
      queued = false;
      const cards = [...results.querySelectorAll(":scope > .result")];
      section.hidden = cards.length < 2;
      body.replaceChildren(...cards.map(row));
    }
    new MutationObserver(() => {
      if (!queued) { queued = true; window.setTimeout(redraw, 30); }
    }).observe(results, { childList: true, subtree: true, attributes: true,
                          attributeFilter: ["data-state", "data-words"] });
  });
})();
