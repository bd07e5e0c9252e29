/* Upload: files dropped or picked are classified two at a time, one card each. */
"use strict";
(function () {
  const dropzone = document.getElementById("dropzone");
  if (!dropzone) return;   // no model yet
  const input = document.getElementById("file-input");
  const results = document.getElementById("results");
  const status = document.getElementById("upload-status");
  const clear = document.getElementById("clear-results");
  const queue = [];
  let running = 0, done = 0, total = 0;
  const PARALLEL = 2;

  Hark.whenIdle(() => Hark.loadPlotly().catch(() => {}));

  function report() {
    status.textContent = running || queue.length
      ? `Classifying ${Math.min(done + 1, total)} of ${total}…`
      : `${total} file${total === 1 ? "" : "s"} classified.`;
  }

  function add(files) {
    for (const file of files) {
      total += 1;
      if (Hark.settings.maxUpload && file.size > Hark.settings.maxUpload) {
        const card = new Hark.ResultCard(results, file.name, { append: true });
        card.fail(`${file.name} is larger than the ${Math.round(Hark.settings.maxUpload / 1048576)} MB limit.`);
        done += 1;
        continue;
      }
      queue.push(file);
    }
    clear.hidden = false;
    pump();
    report();
  }

  function pump() {
    while (running < PARALLEL && queue.length) {
      const file = queue.shift();
      running += 1;
      Hark.analyzeInto(results, file, file.name, { append: true }).finally(() => {
        running -= 1;
        done += 1;
        report();
        pump();
      });
    }
  }

  input.addEventListener("change", () => { add(Array.from(input.files)); input.value = ""; });
  ["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => dropzone.addEventListener(type, () => dropzone.classList.remove("over")));
  // A file dropped beside the zone must not make the browser navigate away to it.
  ["dragover", "drop"].forEach((type) => document.addEventListener(type, (event) => event.preventDefault()));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    add(Array.from(event.dataTransfer.files));
  });
  clear.addEventListener("click", () => {
    results.querySelectorAll("audio").forEach((a) => a.src && URL.revokeObjectURL(a.src));
    results.replaceChildren();
    total = done = 0;
    clear.hidden = true;
    status.textContent = "Each file gets its own result card.";
  });
})();
