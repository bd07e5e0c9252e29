/* Settings kept by this browser (localStorage), not by the server: the confidence below
   which a result reads "Not sure". The server's HARK_LOW_CONFIDENCE is the default; a
   value set here changes Hark.settings.lowConfidence (Live mode's "?" marks) and the
   verdict of every result card drawn in this browser (Hark.verdictFor, used by result.js). */
"use strict";
(function (Hark) {
  const KEY = "hark.lowConfidence";
  const serverValue = Hark.settings.lowConfidence;

  function stored() {
    try {
      const value = Number(window.localStorage.getItem(KEY));
      return window.localStorage.getItem(KEY) !== null && value >= 0.05 && value <= 0.99 ? value : null;
    } catch (_) { return null; }          // storage blocked: the server's value
  }
  function save(value) {
    try {
      if (value === null) window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, String(value));
    } catch (_) { /* storage blocked: this page only */ }
    Hark.settings.lowConfidence = value === null ? serverValue : value;
    document.dispatchEvent(new CustomEvent("hark:settings"));
  }
  Hark.settings.lowConfidence = stored() ?? serverValue;

  /* The server's verdict, or this browser's when its threshold differs (same wording). */
  Hark.verdictFor = function (result) {
    const threshold = Hark.settings.lowConfidence;
    if (threshold === serverValue || !Hark.isCommand(result.label)) return result.verdict;
    const pct = Hark.percent(result.confidence);
    return result.confidence < threshold
      ? { kind: "unsure", text: `Not sure: the best guess is “${result.label}”, at only ${pct} confidence.` }
      : { kind: "word", text: `Heard “${result.label}” with ${pct} confidence.` };
  };

  /* The control: a small "Settings for this browser" disclosure in the Listen and Upload cards. */
  function control() {
    const box = document.createElement("details");
    box.className = "browser-settings";
    box.id = "browser-settings";
    const summary = document.createElement("summary");
    summary.textContent = "Settings for this browser";
    const row = document.createElement("div");
    row.className = "setting";
    const label = document.createElement("label");
    label.htmlFor = "low-confidence";
    label.textContent = "Say “not sure” below";
    const input = Object.assign(document.createElement("input"), {
      type: "range", id: "low-confidence", min: "30", max: "95", step: "5",
      value: String(Math.round(Hark.settings.lowConfidence * 100)) });
    const output = document.createElement("output");
    output.htmlFor = "low-confidence";
    const reset = Object.assign(document.createElement("button"), {
      type: "button", className: "link-button", textContent: `Use the server's (${Hark.percent(serverValue)})` });
    const note = document.createElement("p");
    note.className = "muted small";
    note.textContent = "Kept in this browser only. Applies to new results and to Live mode.";
    const show = () => {
      output.textContent = Hark.percent(Hark.settings.lowConfidence);
      input.value = String(Math.round(Hark.settings.lowConfidence * 100));
      reset.hidden = Hark.settings.lowConfidence === serverValue;
    };
    input.addEventListener("input", () => save(Number(input.value) / 100));
    reset.addEventListener("click", () => save(null));
    document.addEventListener("hark:settings", show);
    row.append(label, input, output, reset);
    box.append(summary, row, note);
    show();
    return box;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const home = document.getElementById("listen") || document.querySelector(".card.upload");
    if (home) home.append(control());
  });
})(window.Hark);
