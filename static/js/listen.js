/* Listen: record one word (stops by itself after the word), or classify live. */
"use strict";
(function () {
  const root = document.getElementById("listen");
  if (!root) return;   // no model yet
  const workletUrl = root.dataset.workletUrl;
  const meter = new Hark.LevelMeter(document.getElementById("level-meter"));
  const results = document.getElementById("results");
  const KEEP_CARDS = 10;   // older recordings are dropped, with their audio and charts
  Hark.whenIdle(() => Hark.loadPlotly().catch(() => {}));

  /* ---- "On this device": the model runs in the page (static/js/device.js), no audio is sent.
     One choice per browser, like the sensitivity; where WebAssembly is missing, or the model
     cannot load, the server classifies and the status says so. ---- */
  const onDevice = (function () {
    const KEY = "hark.onDevice";
    const box = document.getElementById("on-device");
    const status = document.getElementById("on-device-status");
    let module = null;
    const stored = () => { try { return localStorage.getItem(KEY) === "on"; } catch (e) { return false; } };
    const say = (text) => { status.textContent = text; };

    async function device() {
      module = module || await import(root.dataset.deviceModule);
      return module.load(root.dataset.modelInfoUrl);
    }

    async function prepare() {
      root.dataset.device = "loading";
      say("Loading the model into this page…");
      try {
        const d = await device();
        root.dataset.device = "ready";
        say(`On: model ${d.version} runs in this page (loaded in ${(d.loadMs / 1000).toFixed(1)} s); no audio is sent.`);
      } catch (err) {
        root.dataset.device = "failed";
        say(`The model could not run in this page (${err.message}); the server classifies instead.`);
      }
    }

    function set(on) {
      box.checked = on;
      try { localStorage.setItem(KEY, on ? "on" : "off"); } catch (e) { /* storage off */ }
      if (on) prepare();
      else { root.dataset.device = "off"; say("Off: recordings are classified by the server."); }
    }

    const wasm = typeof WebAssembly === "object" && typeof WebAssembly.instantiate === "function";
    if (!wasm) {
      box.checked = false;
      box.disabled = true;
      root.dataset.device = "unsupported";
      say("This browser cannot run the model (no WebAssembly): the server classifies.");
    } else {
      box.addEventListener("change", () => { live.stop(); set(box.checked); });
      if (stored()) set(true); else root.dataset.device = "off";
    }
    return {
      /* The loaded Device when the switch is on and the model runs here; null otherwise. */
      async active() {
        if (!box.checked || root.dataset.device === "failed" || root.dataset.device === "unsupported") return null;
        try { return await device(); } catch (err) { return null; }
      },
      wanted: () => box.checked && wasm,
      async reload() { if (module) module.forget(); await prepare(); },
      module: () => module,
    };
  })();

  /* ---- mode tabs ---- */
  const tabs = { record: document.getElementById("mode-record"), live: document.getElementById("mode-live") };
  const panels = { record: document.getElementById("record-panel"), live: document.getElementById("live-panel") };
  function selectMode(mode) {
    if (mode !== "live") live.stop();
    if (mode !== "record") record.cancel();
    for (const name of Object.keys(tabs)) {
      tabs[name].setAttribute("aria-selected", String(name === mode));
      panels[name].hidden = name !== mode;
    }
  }

  /* ---- end-of-word detection on RMS levels ---- */
  const ENDPOINT = {
    preRoll: 0.3,        // s kept before the word starts
    maxWord: 1.2,        // s after the start: about 1.5 s in all
    hang: 0.35,          // s of quiet that ends the word
    minWord: 0.15,       // s of sound before quiet may end it
    waitForWord: 4.0,    // s to wait for a word at all
    onsetFloor: 0.01,    // RMS (-40 dBFS) below which nothing counts as a word
    noiseFloor: 0.003,   // RMS (-50 dBFS): the quietest room we assume
    digitalSilence: 1e-5,  // exact zeros while the microphone starts: not the room's level
  };

  class Endpointer {
    constructor(rate) {
      this.rate = rate;
      this.noise = null;
      this.samples = 0;
      this.onset = null;       // sample index where the word began
      this.lastLoud = 0;
    }
    /* Feed one block; returns true when recording should stop. */
    push(length, rms) {
      const start = this.samples;
      this.samples += length;
      const waited = this.samples > ENDPOINT.waitForWord * this.rate;
      if (this.onset === null && rms < ENDPOINT.digitalSilence) return waited;   // device still starting
      if (this.noise === null) this.noise = Math.max(rms, ENDPOINT.noiseFloor);
      const loud = rms > Math.max(ENDPOINT.onsetFloor, this.noise * 3);
      if (this.onset === null) {
        if (loud) { this.onset = start; this.lastLoud = this.samples; return false; }
        // Follow the room: drop at once to a quieter level, rise slowly towards a louder one.
        this.noise = Math.max(ENDPOINT.noiseFloor, Math.min(rms, 0.9 * this.noise + 0.1 * rms));
        return waited;
      }
      if (rms > Math.max(ENDPOINT.onsetFloor * 0.7, this.noise * 2)) this.lastLoud = this.samples;
      const sinceOnset = (this.samples - this.onset) / this.rate;
      const quiet = (this.samples - this.lastLoud) / this.rate;
      return sinceOnset >= ENDPOINT.maxWord || (sinceOnset >= ENDPOINT.minWord + ENDPOINT.hang && quiet >= ENDPOINT.hang);
    }
    /* [from, to) sample range worth sending: the word with a little before it. */
    range() {
      const end = this.samples;
      if (this.onset === null) return [Math.max(0, end - Math.round(1.5 * this.rate)), end];
      return [Math.max(0, this.onset - Math.round(ENDPOINT.preRoll * this.rate)), end];
    }
  }

  /* ---- record one word ---- */
  const record = (function () {
    const button = document.getElementById("record-button");
    const label = button.querySelector(".record-label");
    const status = document.getElementById("record-status");
    let mic = null, blocks = [], endpointer = null, state = "idle";
    const recent = [];

    function setState(next, message) {
      state = next;
      root.dataset.recording = next;
      button.classList.toggle("recording", next === "recording");
      button.disabled = next === "opening" || next === "analyzing";
      label.textContent = { idle: "Record", opening: "Starting…", recording: "Stop", analyzing: "Working…" }[next];
      if (message) status.textContent = message;
    }

    function onBlock(samples, rms) {
      if (state !== "recording") return;
      meter.push(rms);
      blocks.push(samples);
      if (endpointer.push(samples.length, rms)) finish();
    }

    async function start() {
      setState("opening", "Opening the microphone…");
      try {
        // On the device the page hears at the model's rate (the browser resamples), so the
        // samples it captures are the samples the model is given.
        mic = await Hark.Mic.open(workletUrl, onBlock, onDevice.wanted() ? { sampleRate: 16000 } : {});
      } catch (err) {
        setState("idle", err.message);
        return;
      }
      blocks = [];
      endpointer = new Endpointer(mic.sampleRate);
      meter.active = true;
      setState("recording", "Listening… say one word.");
    }

    async function finish() {
      if (state !== "recording") return;
      const rate = mic.sampleRate;
      mic.close();
      mic = null;
      meter.active = false;
      const [from, to] = endpointer.range();
      const all = new Float32Array(blocks.reduce((n, b) => n + b.length, 0));
      let offset = 0;
      for (const b of blocks) { all.set(b, offset); offset += b.length; }
      blocks = [];
      setState("analyzing", "Classifying…");
      const heard = endpointer.onset !== null;
      const device = rate === 16000 ? await onDevice.active() : null;
      const card = device ? await classifyHere(device, all.slice(from, to))
        : await Hark.analyzeInto(results, Hark.encodeWav(all.subarray(from, to), rate), "Recording");
      recent.unshift(card);
      while (recent.length > KEEP_CARDS) recent.pop().remove();
      const word = card.element.querySelector(".result-word").textContent;
      setState("idle", heard ? `Heard: ${word}. Tap to record again.` : "No word was heard. Tap to try again, a little closer to the microphone.");
      // The button was disabled while the clip was classified, which dropped the focus to the
      // page: give it back, so Enter or Space records again at once.
      if (document.activeElement === document.body || document.activeElement === button) {
        button.focus({ preventScroll: true });
      }
    }

    /* The clip classified in the page: nothing is uploaded; the card plays a local copy. */
    async function classifyHere(device, samples) {
      Hark.lastCapture = { samples, rate: 16000, result: null };
      const card = new Hark.ResultCard(results, "Recording");
      card.playable(URL.createObjectURL(Hark.encodeWav(samples, 16000)));
      try {
        const result = await device.classify(samples);
        Hark.lastCapture.result = result;
        await card.show(result);
      } catch (err) {
        card.fail(`The model could not run in this page: ${err.message}`);
      }
      return card;
    }

    function cancel() {
      if (state !== "recording") return;
      mic.close();
      mic = null;
      meter.active = false;
      setState("idle", "Tap, then say one word.");
    }

    button.addEventListener("click", () => (state === "recording" ? finish() : state === "idle" && start()));
    setState("idle");
    return { cancel };
  })();

  /* ---- live: the server's detector over the microphone stream, five times a second ----
     The server keeps nothing: each answer carries the stream's state and where the next
     audio must start (next_s); the page sends the state back with the audio from there on.
     "Now" shows the latest (smoothed) window; "Last word heard" and the list below it
     change only when the detector decides a word, so a word said again stays itself. */
  const live = (function () {
    const TICK_MS = 200, RING_S = 6, KEEP_WORDS = 12;
    const button = document.getElementById("live-button");
    const status = document.getElementById("live-status");
    const nowLabel = document.getElementById("live-label");
    const word = document.getElementById("live-word");
    const when = document.getElementById("live-word-when");
    const heard = document.getElementById("live-words");
    const detectUrl = root.dataset.detectUrl;
    const bars = new Map();
    document.querySelectorAll("#live-bars li").forEach((li) => bars.set(li.dataset.label, {
      li, fill: li.querySelector(".bar-fill"), value: li.querySelector(".bar-value") }));
    let mic = null, ring = null, written = 0, timer = null, inFlight = null, running = false;
    let state = "new", nextS = 0, last = null, updates = 0;
    let here = null;   // on the device: {device, stream, decider, pending samples, rows to send}

    function onBlock(samples, rms) {
      meter.push(rms);
      if (here) here.samples.push(samples);
      for (let i = 0; i < samples.length; i++) ring[(written + i) % ring.length] = samples[i];
      written += samples.length;
    }

    /* Samples [from, written) of the stream, out of the ring buffer. */
    function since(from) {
      const out = new Float32Array(written - from);
      for (let i = 0; i < out.length; i++) out[i] = ring[(from + i) % ring.length];
      return out;
    }

    function showNow(probabilities) {
      if (!probabilities) return;
      let top = null;
      for (const [label, bar] of bars) {
        const p = probabilities[label] || 0;
        bar.fill.style.width = `${(p * 100).toFixed(1)}%`;
        bar.value.textContent = Hark.percent(p);
        if (top === null || p > probabilities[top]) top = label;
      }
      for (const [label, bar] of bars) bar.li.classList.toggle("top", label === top);
      const sure = probabilities[top] >= Hark.settings.lowConfidence;
      const command = Hark.isCommand(top);
      nowLabel.textContent = command && !sure ? `${Hark.displayName(top)}?` : Hark.displayName(top);
      nowLabel.dataset.kind = !command ? top.replace(/_/g, "") : sure ? "word" : "unsure";
    }

    function showWord(detection) {
      last = detection;
      word.classList.remove("flash");
      void word.offsetWidth;   // restart the highlight animation
      word.classList.add("flash");
      word.textContent = Hark.displayName(detection.label);
      word.dataset.label = detection.label;
      const item = document.createElement("li");
      item.dataset.label = detection.label;
      item.textContent = Hark.displayName(detection.label);
      heard.prepend(item);
      while (heard.children.length > KEEP_WORDS) heard.lastElementChild.remove();
    }

    function showWhen() {
      if (!last) return;
      const ago = Math.max(0, Math.round(written / mic.sampleRate - last.time_s));
      when.textContent = `${Hark.percent(last.confidence)} sure · ${ago < 1 ? "just now" : `${ago} s ago`}`;
    }

    /* On the device: the new audio's windows computed here, their probabilities (no audio)
       sent to the server's detector, which answers as /api/detect does. */
    async function tickHere() {
      const samples = here.samples.splice(0);
      const joined = new Float32Array(samples.reduce((n, b) => n + b.length, 0));
      let offset = 0;
      for (const b of samples) { joined.set(b, offset); offset += b.length; }
      inFlight = new AbortController();
      try {
        here.rows.push(...(await here.stream.push(joined)));
        if (!running || !here.rows.length) return;
        const rows = here.rows.splice(0, 512);
        const reply = await here.decider.send(rows, false, inFlight.signal);
        if (!running) return;
        showNow(reply.probabilities);
        reply.detections.forEach(showWord);
        showWhen();
        root.dataset.updates = String(++updates);
        status.textContent = "Listening on this device. Say a word.";
      } catch (err) {
        if (err.name !== "AbortError") status.textContent = err.message;
        if (err.status === 409) { stop(); await onDevice.reload(); status.textContent = "The model changed: start again."; }
        if (err.status === 400) here.decider.state = "new";
        if (err.status === 503) stop();
      } finally {
        inFlight = null;
      }
    }

    async function tick() {
      if (!running || inFlight) return;   // one request at a time
      if (here) return tickHere();
      const rate = mic.sampleRate;
      const from = Math.max(Math.round(nextS * rate), written - ring.length, 0);
      if (written - from < rate) return;   // not yet a whole second to listen to
      const body = new FormData();
      body.append("file", Hark.encodeWav(since(from), rate), "live.wav");
      body.append("stream", state);
      body.append("sensitivity", Hark.sensitivity());
      body.append("start_s", String(from / rate));
      inFlight = new AbortController();
      try {
        const reply = await Hark.fetchJSON(detectUrl, { method: "POST", body, signal: inFlight.signal });
        if (!running) return;
        state = JSON.stringify(reply.state);
        nextS = reply.next_s;
        showNow(reply.probabilities);
        reply.detections.forEach(showWord);
        showWhen();
        root.dataset.updates = String(++updates);
        status.textContent = "Listening. Say a word.";
      } catch (err) {
        if (err.name !== "AbortError") status.textContent = err.message;
        if (err.status === 400) state = "new";   // e.g. a state the server no longer reads
        if (err.status === 503) stop();
      } finally {
        inFlight = null;
      }
    }

    async function start() {
      button.disabled = true;
      status.textContent = "Opening the microphone…";
      const device = await onDevice.active();
      try {
        mic = await Hark.Mic.open(workletUrl, onBlock, device ? { sampleRate: 16000 } : {});
      } catch (err) {
        status.textContent = err.message;
        button.disabled = false;
        return;
      }
      const sensitivity = Hark.sensitivity();
      here = device && mic.sampleRate === 16000 ? { device, stream: device.stream(sensitivity), samples: [], rows: [],
        decider: new (onDevice.module().RemoteDecider)(device, sensitivity) } : null;
      root.dataset.liveOn = here ? "device" : "server";
      ring = new Float32Array(Math.round(mic.sampleRate * RING_S));
      written = 0;
      state = "new";
      nextS = 0;
      running = true;
      meter.active = true;
      root.dataset.live = "on";
      button.textContent = "Stop listening";
      button.setAttribute("aria-pressed", "true");
      button.disabled = false;
      status.textContent = "Listening. Say a word.";
      timer = window.setInterval(tick, TICK_MS);
    }

    function stop() {
      if (!running) return;
      running = false;
      here = null;
      window.clearInterval(timer);
      if (inFlight) inFlight.abort();
      mic.close();
      mic = null;
      meter.active = false;
      root.dataset.live = "off";
      button.textContent = "Start listening";
      button.setAttribute("aria-pressed", "false");
      status.textContent = "Stopped.";
    }

    button.addEventListener("click", () => (running ? stop() : start()));
    return { stop };
  })();

  tabs.record.addEventListener("click", () => selectMode("record"));
  tabs.live.addEventListener("click", () => selectMode("live"));
})();
