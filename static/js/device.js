/* "On this device": the active model run in the page with LiteRT.js (static/vendor/litertjs),
   so no audio leaves the browser. Loaded on demand by listen.js (import()).

   The server's span graph takes a span of any length; LiteRT.js runs fixed shapes only, so
   the page runs the run's one-window graph (GET /api/model-window.tflite, window.tflite):
   audio = the window and `context` samples each side, starts = [context], offset = where
   that span begins in its stream. One clip is classified as ml.classifier does it (its
   loudest second, silence around it); Live computes each window of the stream as
   ml/detect.py's Detector lays them out, with its partial-word check, and sends only
   window probabilities to POST /api/decide, which runs the detector's decisions. */
import { loadAndCompile, loadLiteRt, Tensor } from "../vendor/litertjs/litert.js";

const Hark = window.Hark;
const RATE = 16000;
const WASM_DIR = new URL("../vendor/litertjs/wasm/", import.meta.url).href;

export function supported() {
  return typeof WebAssembly === "object" && typeof WebAssembly.instantiate === "function";
}

let loading = null;

/* The Device for the active model, loaded once per page (the browser keeps the graph: ETag). */
export function load(infoUrl) {
  if (!loading) {
    loading = (async () => {
      const started = performance.now();
      const info = await Hark.fetchJSON(infoUrl, { cache: "no-cache" });
      await loadLiteRt(WASM_DIR);
      const model = await loadAndCompile(info.files.window_model, { accelerator: "wasm" });
      return new Device(info, model, performance.now() - started);
    })();
    loading.catch(() => { loading = null; });
  }
  return loading;
}

/* Forget the loaded model (the server's model changed): the next load() fetches it again. */
export function forget() {
  if (loading) loading.then((d) => d.model.delete(), () => {});
  loading = null;
}

/* ---- ml.audio.fit_clip: the loudest second (zero-padded when shorter) ---- */
export function loudestWindow(wave, length = RATE, hop = 160) {
  if (wave.length <= length) return 0;
  const energy = new Float64Array(wave.length + 1);
  for (let i = 0; i < wave.length; i++) energy[i + 1] = energy[i] + wave[i] * wave[i];
  let best = 0, bestSum = -Infinity;
  const consider = (s) => {
    const sum = energy[s + length] - energy[s];
    if (sum > bestSum) { bestSum = sum; best = s; }
  };
  let last = 0;
  for (let s = 0; s <= wave.length - length; s += hop) { consider(s); last = s; }
  if (last !== wave.length - length) consider(wave.length - length);
  return best;
}

export function fitClip(wave, length = RATE) {
  const clip = new Float32Array(length);
  if (wave.length < length) { clip.set(wave); return [clip, 0]; }
  const start = loudestWindow(wave, length);
  clip.set(wave.subarray(start, start + length));
  return [clip, start];
}

/* ---- ml.detect.cuts_word for one window: sound at an edge as loud as its loudest part ---- */
export function cutsWord(clip, edgeS, edgeRatio) {
  if (edgeRatio <= 0) return false;
  const frames = Math.floor(clip.length / 160);
  const energy = new Float64Array(frames);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let i = f * 160; i < f * 160 + 160; i++) sum += clip[i] * clip[i];
    energy[f] = sum / 160;
  }
  const sorted = Float64Array.from(energy).sort();
  const v = 0.2 * (frames - 1), g = Math.floor(v), t = v - g;   // numpy's linear quantile
  const a = sorted[g], b = sorted[Math.min(g + 1, frames - 1)];
  const floor = t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
  const k = Math.max(1, Math.round(edgeS / 0.01));
  let edge = -Infinity, top = -Infinity;
  for (let f = 0; f < frames; f++) {
    top = Math.max(top, energy[f]);
    if (f < k || f >= frames - k) edge = Math.max(edge, energy[f]);
  }
  return edge - floor > edgeRatio * (top - floor);
}

class Device {
  constructor(info, model, loadMs) {
    this.info = info;
    this.model = model;
    this.loadMs = loadMs;
    this.labels = info.labels;
    this.context = info.context;
    this.span = info.span_samples;
    this.queue = Promise.resolve();     // one run of the graph at a time
  }

  get version() { return this.info.model; }

  /* (probabilities, picture) of the window whose span (window + context each side) is `audio`,
     the span beginning `position` samples into its stream. */
  window(audio, position = 0) {
    if (audio.length !== this.span) throw new Error(`a window's span is ${this.span} samples`);
    const period = this.info.offset_period;
    const offset = ((position % period) + period) % period;
    const run = async () => {
      const inputs = {
        audio: new Tensor(Float32Array.from(audio), [1, this.span]),
        starts: new Tensor(Int32Array.of(this.context), [1, 1]),
        offset: new Tensor(Int32Array.of(offset), [1, 1]),
      };
      try {
        const out = await this.model.run(inputs);
        const result = { probabilities: Float32Array.from(out.probabilities.toTypedArray()),
                         picture: Float32Array.from(out.picture.toTypedArray()) };
        Object.values(out).forEach((t) => t.delete());
        return result;
      } finally {
        Object.values(inputs).forEach((t) => t.delete());
      }
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => {});
    return next;
  }

  /* One recording (16 kHz) classified as the server's Classifier.classify does it: the
     answer in the shape of POST /api/analyze, charts drawn from the page's own numbers. */
  async classify(wave) {
    const t0 = performance.now();
    const [clip, start] = fitClip(wave);
    const audio = new Float32Array(this.span);
    audio.set(clip, this.context);
    const t1 = performance.now();
    const { probabilities, picture } = await this.window(audio, 0);
    const t2 = performance.now();
    let best = 0;
    for (let i = 1; i < probabilities.length; i++) if (probabilities[i] > probabilities[best]) best = i;
    const label = this.labels[best];
    const probs = {};
    this.labels.forEach((l, i) => { probs[l] = probabilities[i]; });
    const result = {
      label, confidence: probabilities[best], probabilities: probs, model: this.version,
      duration_s: wave.length / RATE, window_start_s: start / RATE, on_device: true,
      display_label: Hark.displayName(label),
      timing_ms: { model: t2 - t1, total: t2 - t0 },
    };
    result.verdict = verdict(label, result.confidence);
    result.figures = figures(this.info, wave, result, picture);
    return result;
  }

  stream(sensitivity) { return new DeviceStream(this, sensitivity); }

  /* Every command in one 16 kHz recording, as `python -m ml detect` finds them: the stream's
     windows here, the decisions by POST /api/decide. */
  async detect(wave, sensitivity = "medium") {
    const stream = this.stream(sensitivity);
    const rows = (await stream.push(wave)).concat(await stream.finish());
    const decider = new RemoteDecider(this, sensitivity);
    const found = [];
    for (let i = 0; i < rows.length; i += 256) {
      const last = i + 256 >= rows.length;
      found.push(...(await decider.send(rows.slice(i, i + 256), last)).detections);
    }
    return found;
  }
}

/* ml.detect.Detector's windows over a stream fed in pieces (16 kHz): silence before it
   (edge_pad_s and the context), windows every hop, each with its context both sides. */
class DeviceStream {
  constructor(device, sensitivity) {
    const config = device.info.detector[sensitivity] || device.info.detector.medium;
    this.device = device;
    this.hop = Math.max(1, Math.round(config.hop_s * RATE));
    this.edgeS = config.edge_s;
    this.edgeRatio = config.edge_ratio;
    this.pad = Math.round(device.info.edge_pad_s * RATE);
    this.context = device.context;
    this.tailStart = -(this.pad + this.context);      // stream position of tail[0]
    this.tail = new Float32Array(this.pad + this.context);
    this.next = -this.pad;                               // where the next window begins
    this.windows = 0;
  }

  get heardS() { return (this.tailStart + this.tail.length) / RATE; }

  append(samples) {
    const joined = new Float32Array(this.tail.length + samples.length);
    joined.set(this.tail);
    joined.set(samples, this.tail.length);
    this.tail = joined;
  }

  /* More audio; resolves to the rows [time_s, probabilities, cut] of the windows now whole. */
  push(samples) {
    this.append(samples);
    return this.advance();
  }

  async advance() {
    const reach = RATE + 2 * this.context;
    const rows = [];
    while (this.next - this.context - this.tailStart + reach <= this.tail.length) {
      const from = this.next - this.context - this.tailStart;
      const span = this.tail.subarray(from, from + reach);
      const { probabilities } = await this.device.window(span, this.next - this.context);
      const cut = cutsWord(span.subarray(this.context, this.context + RATE), this.edgeS, this.edgeRatio);
      rows.push([(this.next + RATE / 2) / RATE, Array.from(probabilities), cut]);
      this.next += this.hop;
      this.windows += 1;
    }
    const keep = this.next - this.context - this.tailStart;
    if (keep > 0) {
      this.tail = this.tail.slice(keep);
      this.tailStart += keep;
    }
    return rows;
  }

  /* The stream ended: silence after it, as before it (more for a clip shorter than a window). */
  finish() {
    let extra = this.pad + this.context;
    if (this.windows === 0) {
      const held = this.tail.length - (this.next - this.context - this.tailStart);
      extra = Math.max(extra, RATE + 2 * (this.pad + this.context) - held);
    }
    this.append(new Float32Array(extra));
    return this.advance();
  }
}

/* The server's detector decisions for rows computed here (POST /api/decide): the state
   goes back and forth, as with /api/detect; no audio is sent. */
export class RemoteDecider {
  constructor(device, sensitivity) {
    this.device = device;
    this.sensitivity = sensitivity;
    this.state = "new";
  }

  async send(rows, end = false, signal = undefined) {
    const reply = await Hark.fetchJSON(this.device.info.decide_url, {
      method: "POST", signal, headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: this.device.version, sensitivity: this.sensitivity,
                             state: this.state, windows: rows, end }),
    });
    this.state = reply.state;
    return reply;
  }
}

/* ---- webapp/labels.py verdict() and webapp/figures.py's three charts, for a page's own result ---- */
function verdict(label, confidence) {
  const pct = Hark.percent(confidence);
  const special = Hark.settings.specialLabels;
  if (label === special.silence) return { kind: "silence", text: `Silence: no word heard in this clip (${pct} sure).` };
  if (label === special.unknown) return { kind: "unknown", text: `Not a command: something was said, but not one of the words (${pct} sure).` };
  if (confidence < Hark.settings.lowConfidence) return { kind: "unsure", text: `Not sure: the best guess is \u201c${label}\u201d, at only ${pct} confidence.` };
  return { kind: "word", text: `Heard \u201c${label}\u201d with ${pct} confidence.` };
}

const ACCENT = "#4338ca", MUTED = "#cbd5e1", WINDOW = "rgba(67,56,202,0.10)";
const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toImage"] };
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;

function layout(title, height, extra) {
  return { title: { text: title, x: 0, xanchor: "left", font: { size: 14 } }, height,
           margin: { l: 56, r: 16, t: 36, b: 44 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
           font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1e293b" },
           showlegend: false, ...extra };
}
const axis = (title, extra) => ({ title: { text: title }, gridcolor: "#e2e8f0", zeroline: false, ...extra });

function figures(info, wave, result, picture) {
  const points = 600, n = wave.length;
  let step = 1 / RATE, values = Array.from(wave, (v) => round(v, 4));
  if (n > 2 * points) {
    values = [];
    for (let b = 0; b < points; b++) {
      const from = Math.floor((b * n) / points), to = Math.max(from + 1, Math.floor(((b + 1) * n) / points));
      let lo = Infinity, hi = -Infinity;
      for (let i = from; i < to; i++) { lo = Math.min(lo, wave[i]); hi = Math.max(hi, wave[i]); }
      values.push(round(lo, 4), round(hi, 4));
    }
    step = n / RATE / (2 * points);
  }
  const duration = n / RATE;
  let peak = 0.1;
  for (let i = 0; i < n; i++) peak = Math.max(peak, Math.abs(wave[i]));
  const start = result.window_start_s, end = Math.min(start + 1, Math.max(duration, 1));
  const waveform = {
    data: [{ type: "scatter", x0: step / 2, dx: step, y: values, mode: "lines", line: { color: ACCENT, width: 1 },
             hovertemplate: "%{x:.3f} s<br>%{y:.3f}<extra></extra>" }],
    layout: layout("Waveform", 220, {
      shapes: [{ type: "rect", xref: "x", yref: "paper", x0: start, x1: end, y0: 0, y1: 1, fillcolor: WINDOW, line: { width: 0 }, layer: "below" }],
      annotations: [{ x: (start + end) / 2, y: 1, xref: "x", yref: "paper", yanchor: "bottom", text: "classified second", showarrow: false, font: { size: 11, color: ACCENT } }],
      xaxis: axis("time (s)", { range: [0, Math.max(duration, 1)] }), yaxis: axis("amplitude", { range: [-peak * 1.05, peak * 1.05] }) }),
    config: CONFIG,
  };
  const times = info.picture.times_s, freqs = info.picture.freqs_hz;
  let spectrogram = null;
  if (info.picture.kind !== "wave" && times.length * freqs.length === picture.length) {
    const logmel = info.picture.kind === "logmel";
    const z = freqs.map((_, f) => times.map((__, t) => {
      const v = picture[t * freqs.length + f];
      return round(logmel ? v * (10 / Math.LN10) : 20 * Math.log10(v + 1e-6), 1);
    }));
    spectrogram = {
      data: [{ type: "heatmap", x: times.map((t) => round(t + start, 4)), y: freqs, z, colorscale: "Viridis",
               colorbar: { title: { text: "dB" }, thickness: 12 }, hovertemplate: "%{x:.2f} s<br>%{y:.0f} Hz<br>%{z:.1f} dB<extra></extra>" }],
      layout: layout(logmel ? "Log-mel spectrogram (model input)" : "Spectrogram (model input, log scale)", 260,
                     { xaxis: axis("time (s)"), yaxis: axis("frequency (Hz)") }),
      config: CONFIG,
    };
  }
  const ordered = Object.entries(result.probabilities).sort((a, b) => a[1] - b[1]);
  const probabilities = {
    data: [{ type: "bar", orientation: "h", x: ordered.map(([, p]) => round(p, 4)), y: ordered.map(([l]) => Hark.displayName(l)),
             marker: { color: ordered.map(([l]) => (l === result.label ? ACCENT : MUTED)) },
             text: ordered.map(([, p]) => `${Math.round(p * 100)}%`), textposition: "outside", cliponaxis: false,
             hovertemplate: "%{y}: %{x:.1%}<extra></extra>" }],
    layout: layout("Probabilities", Math.max(180, 40 + 26 * ordered.length),
                   { margin: { l: 100, r: 40, t: 36, b: 36 }, xaxis: axis("", { range: [0, 1], tickformat: ".0%" }), yaxis: { automargin: true } }),
    config: CONFIG,
  };
  return { waveform, spectrogram, probabilities };
}
