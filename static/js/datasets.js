/* Recording a data set in the browser: a session walks through the chosen words, so many
   takes each. Every take: the prompt ("say 'yes'"), a countdown, then the microphone is
   listened to until the word starts; 0.3 s before it and 1.2 s after it are kept and cut to
   the loudest second (as the server and the model cut clips). The take can be replayed, kept
   (uploaded to the data set's API, which stores 16 kHz mono WAV) or discarded (said again).
   Keys: Space start, K/Enter keep, D/Backspace discard, P replay, Esc stop. */
"use strict";
(function () {
  const root = document.getElementById("recorder");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const meter = new Hark.LevelMeter($("rec-meter"));
  const CAPTURE = {
    preRoll: 0.3,          // s kept before the word starts
    afterOnset: 1.2,       // s kept from its start
    waitForWord: 5.0,      // s to wait for a word before asking again
    silenceTake: 1.5,      // s recorded for a _silence_ take (no word to wait for)
    onsetFloor: 0.01,      // RMS (-40 dBFS) below which nothing counts as a word
    noiseFloor: 0.003,     // RMS (-50 dBFS): the quietest room assumed
    digitalSilence: 1e-5,  // zeros while the microphone starts: not the room
    silentPeak: 0.01,      // a kept second quieter than this holds no word
  };
  const SILENCE = "_silence_", UNKNOWN = "_unknown_";
  const speakerInput = $("rec-speaker");
  const status = $("rec-status");
  const audio = $("rec-audio");
  let mic = null, state = "idle", prompts = [], index = 0, kept = 0;
  let capture = null, take = null, timer = null;

  speakerInput.value = window.localStorage.getItem("hark.speaker") || "";

  function setState(next, message) {
    state = next;
    root.dataset.state = next;
    if (message !== undefined) status.textContent = message;
    $("rec-review").hidden = next !== "review" && next !== "saving";
    $("rec-keep").disabled = next !== "review";
    $("rec-discard").disabled = next !== "review";
    meter.active = next === "listening";
  }

  function say(label) {
    if (label === SILENCE) return "Stay quiet…";
    if (label === UNKNOWN) return "Say any word that is not a command";
    return `Say “${label}”`;
  }

  /* ---- the session ---- */
  async function start() {
    if (state !== "idle") return;
    const speaker = speakerInput.value.trim();
    const words = [...$("rec-words").querySelectorAll("input:checked")].map((box) => box.value);
    const takes = Math.max(1, Math.min(50, Number($("rec-takes").value) || 0));
    if (!speaker) { speakerInput.focus(); return fail("Name the speaker first."); }
    if (!words.length) return fail("Tick at least one word to record.");
    window.localStorage.setItem("hark.speaker", speaker);
    prompts = [];
    for (let i = 0; i < takes; i++) prompts.push(...words);   // round by round: varied takes
    index = 0;
    kept = 0;
    $("rec-stage").hidden = false;
    setState("opening", "Opening the microphone…");
    try {
      mic = await Hark.Mic.open(root.dataset.workletUrl, onBlock);
    } catch (err) {
      $("rec-stage").hidden = true;
      return fail(err.message);
    }
    next();
  }

  function fail(message) {
    setState("idle", message);
    $("rec-stage").hidden = false;
  }

  function stop(message) {
    window.clearTimeout(timer);
    if (mic) mic.close();
    mic = null;
    capture = null;
    setState("idle", message || `Stopped: ${kept} clip(s) kept.`);
    $("rec-prompt").textContent = "";
    $("rec-count").textContent = "";
  }

  function progress() {
    $("rec-progress").textContent = `Take ${Math.min(index + 1, prompts.length)} of ${prompts.length} · ${kept} kept`;
  }

  function next() {
    if (index >= prompts.length) return stop(`Done: ${kept} clip(s) kept. Start again for more.`);
    const label = prompts[index];
    progress();
    $("rec-prompt").textContent = say(label);
    root.dataset.label = label;
    const beat = Number($("rec-countdown").value) || 0;
    setState("countdown", beat ? "Get ready…" : "");
    let count = beat ? 3 : 0;
    const tick = () => {
      if (state !== "countdown") return;
      if (count > 0) {
        $("rec-count").textContent = String(count--);
        timer = window.setTimeout(tick, beat);
        return;
      }
      $("rec-count").textContent = "●";
      listen(label);
    };
    tick();
  }

  function listen(label) {
    capture = { label, rate: mic.sampleRate, blocks: [], samples: 0, noise: null, onset: null };
    setState("listening", label === SILENCE ? "Recording the room…" : "Listening: say it now.");
  }

  /* ---- the microphone: wait for the word, keep it ---- */
  function onBlock(samples, rms) {
    if (state !== "listening" || !capture) return;
    meter.push(rms);
    const c = capture;
    const start = c.samples;
    c.blocks.push(samples);
    c.samples += samples.length;
    if (c.label === SILENCE) {
      if (c.samples >= CAPTURE.silenceTake * c.rate) finish(0);
      return;
    }
    if (c.onset === null) {
      if (rms >= CAPTURE.digitalSilence) {
        if (c.noise === null) c.noise = Math.max(rms, CAPTURE.noiseFloor);
        if (rms > Math.max(CAPTURE.onsetFloor, c.noise * 3)) {
          c.onset = start;
        } else {
          // Follow the room: at once to a quieter level, slowly towards a louder one.
          c.noise = Math.max(CAPTURE.noiseFloor, Math.min(rms, 0.9 * c.noise + 0.1 * rms));
        }
      }
      if (c.onset === null && c.samples > CAPTURE.waitForWord * c.rate) {
        capture = null;
        setState("countdown", "No word was heard: once more, a little closer to the microphone.");
        timer = window.setTimeout(next, 1200);
      }
      return;
    }
    if (c.samples - c.onset >= CAPTURE.afterOnset * c.rate) {
      finish(Math.max(0, c.onset - Math.round(CAPTURE.preRoll * c.rate)));
    }
  }

  function finish(from) {
    const c = capture;
    capture = null;
    const all = new Float32Array(c.samples);
    let offset = 0;
    for (const block of c.blocks) { all.set(block, offset); offset += block.length; }
    const clip = loudestSecond(all.subarray(from), c.rate);
    let peak = 0;
    for (let i = 0; i < clip.length; i++) peak = Math.max(peak, Math.abs(clip[i]));
    if (c.label !== SILENCE && peak < CAPTURE.silentPeak) {
      setState("countdown", "That was silent: once more, a little closer to the microphone.");
      timer = window.setTimeout(next, 1200);
      return;
    }
    if (take) URL.revokeObjectURL(take.url);
    const blob = Hark.encodeWav(clip, c.rate);
    const problems = c.label === SILENCE ? [] : takeProblems(clip, c.rate);
    take = { label: c.label, blob, url: URL.createObjectURL(blob), problems };
    audio.src = take.url;
    drawWave($("rec-wave"), clip);
    $("rec-problems").hidden = !problems.length;
    $("rec-problems").textContent = problems.length
      ? `This take looks like a fragment of the word (${problems.join(", ")}): say it again (D)?` : "";
    $("rec-count").textContent = "";
    setState("review", "Keep it (K) or discard it and say it again (D)?");
  }

  /* Why a take looks like a fragment of a word: ml.audio.take_problems, same thresholds. */
  const TAKE = { quietPeak: 0.03, minVoicedS: 0.15, edgeS: 0.03, edgeShare: 0.3 };
  function takeProblems(clip, rate) {
    let peak = 0;
    for (let i = 0; i < clip.length; i++) peak = Math.max(peak, Math.abs(clip[i]));
    if (peak < TAKE.quietPeak) return ["too quiet"];
    const frame = Math.round(rate / 100);
    const rms = [];
    for (let s = 0; s + frame <= clip.length; s += frame) {
      let sum = 0;
      for (let i = s; i < s + frame; i++) sum += clip[i] * clip[i];
      rms.push(Math.sqrt(sum / frame));
    }
    const loud = Math.max(...rms);
    const problems = [];
    if (rms.filter((r) => r > 0.1 * loud).length / 100 < TAKE.minVoicedS) problems.push("too short");
    const edge = Math.max(1, Math.round(TAKE.edgeS * 100));
    if (Math.max(...rms.slice(0, edge)) >= TAKE.edgeShare * loud) problems.push("cut at the start");
    if (Math.max(...rms.slice(-edge)) >= TAKE.edgeShare * loud) problems.push("cut at the end");
    return problems;
  }

  /* The take's waveform: each column its lowest and highest sample. */
  function drawWave(canvas, clip) {
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = getComputedStyle(canvas).color || "#2563eb";
    const per = clip.length / width;
    for (let x = 0; x < width; x++) {
      let lo = 0, hi = 0;
      for (let i = Math.floor(x * per); i < Math.floor((x + 1) * per); i++) {
        lo = Math.min(lo, clip[i]); hi = Math.max(hi, clip[i]);
      }
      ctx.fillRect(x, (1 - hi) * height / 2, 1, Math.max(1, (hi - lo) * height / 2));
    }
  }

  /* The loudest second (what ml.audio.fit_clip keeps), at the microphone's own rate. */
  function loudestSecond(wave, rate) {
    const length = Math.round(rate);
    if (wave.length <= length) {
      const padded = new Float32Array(length);
      padded.set(wave);
      return padded;
    }
    const hop = Math.max(1, Math.round(rate / 100));
    let sum = 0;
    for (let i = 0; i < length; i++) sum += wave[i] * wave[i];
    let best = sum, bestStart = 0;
    for (let s = hop; s + length <= wave.length; s += hop) {
      for (let i = s - hop; i < s; i++) sum += wave[i + length] * wave[i + length] - wave[i] * wave[i];
      if (sum > best) { best = sum; bestStart = s; }
    }
    return wave.slice(bestStart, bestStart + length);
  }

  /* ---- keep, discard, replay ---- */
  async function keep() {
    if (state !== "review" || !take) return;
    setState("saving", "Saving…");
    const body = new FormData();
    body.append("label", take.label);
    body.append("speaker", speakerInput.value.trim());
    body.append("source", "recording");
    body.append("files", take.blob, `${take.label}.wav`);
    try {
      const result = await Hark.fetchJSON(root.dataset.uploadUrl, { method: "POST", body });
      kept += 1;
      index += 1;
      showCounts(result.labels || {});
      status.textContent = `Kept as ${result.added[0].label}/${result.added[0].file}` +
        (take.problems.length ? ` (it looks like a fragment: ${take.problems.join(", ")}).` : ".");
      if (mic) next();
    } catch (err) {
      setState("review", `Not kept: ${err.message}`);
    }
  }

  function discard() {
    if (state !== "review") return;
    status.textContent = "Discarded: say it again.";
    next();
  }

  function replay() {
    if (take && (state === "review" || state === "saving")) {
      audio.currentTime = 0;
      audio.play().catch(() => {});
    }
  }

  function showCounts(labels) {
    for (const [label, n] of Object.entries(labels)) {
      const item = document.querySelector(`#label-counts li[data-label="${CSS.escape(label)}"] .count`);
      if (item) item.textContent = n.toLocaleString("en");
    }
  }

  $("rec-start").addEventListener("click", start);
  $("rec-stop").addEventListener("click", () => stop());
  $("rec-keep").addEventListener("click", keep);
  $("rec-discard").addEventListener("click", discard);
  $("rec-play").addEventListener("click", replay);
  document.addEventListener("keydown", (event) => {
    const target = event.target.closest ? event.target : document.body;
    const typing = target.closest("input:not([type=checkbox]):not([type=radio]), select, textarea");
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    const key = event.key.toLowerCase();
    // Space and Enter on a focused button, link or box do what they always do.
    if ((key === " " || key === "enter") && target.closest("button, a, input")) return;
    const action = {
      " ": state === "idle" ? start : null,
      k: keep, enter: state === "review" ? keep : null,
      d: discard, backspace: state === "review" ? discard : null,
      p: replay, escape: state !== "idle" ? () => stop() : null,
    }[key];
    if (!action) return;
    event.preventDefault();
    action();
  });
  setState("idle");
})();
