/* The microphone, raw: no echo cancellation, noise suppression or auto gain, so the
   input sounds like the training clips; captured at the device's own rate through an
   AudioWorklet. Hark.Mic.open() resolves to a mic that calls onBlock(samples, rms).
   `{ sampleRate }` asks for another rate (the browser resamples the device's input to it). */
"use strict";
window.Hark = window.Hark || {};

Hark.Mic = class {
  static async open(workletUrl, onBlock, { sampleRate } = {}) {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("The microphone needs a secure page: open Hark over https or on localhost.");
    }
    if (!window.AudioWorkletNode) throw new Error("This browser cannot record here (no AudioWorklet support).");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (err) {
      const reasons = {
        NotAllowedError: "Microphone access was refused. Allow it in the browser's site settings and try again.",
        NotFoundError: "No microphone was found.",
        NotReadableError: "The microphone is in use by another program.",
      };
      throw new Error(reasons[err.name] || `The microphone could not be opened (${err.message || err.name}).`);
    }
    const mic = new Hark.Mic(stream, onBlock, sampleRate);
    try {
      await mic.start(workletUrl);
    } catch (err) {
      mic.close();
      throw new Error(`Recording could not start (${err.message || err}).`);
    }
    return mic;
  }

  constructor(stream, onBlock, sampleRate) {
    this.stream = stream;
    this.onBlock = onBlock;
    // The device's native rate, unless a rate is asked for.
    this.context = new AudioContext({ latencyHint: "interactive", ...(sampleRate ? { sampleRate } : {}) });
  }

  get sampleRate() { return this.context.sampleRate; }

  async start(workletUrl) {
    await this.context.audioWorklet.addModule(workletUrl);
    if (this.context.state === "suspended") await this.context.resume();
    this.source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "hark-recorder", { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: "explicit" });
    this.node.port.onmessage = (event) => this.onBlock(event.data.samples, event.data.rms);
    this.mute = this.context.createGain();   // keeps the graph pulled without playing anything
    this.mute.gain.value = 0;
    this.source.connect(this.node).connect(this.mute).connect(this.context.destination);
  }

  close() {
    if (this.node) this.node.port.onmessage = null;
    if (this.source) this.source.disconnect();
    this.stream.getTracks().forEach((track) => track.stop());
    if (this.context.state !== "closed") this.context.close();
  }
};

/* Drives a .meter element from RMS levels, at most once per frame. */
Hark.LevelMeter = class {
  constructor(element) {
    this.element = element;
    this.fill = element.querySelector(".meter-fill");
    this.level = 0;
    this.pending = false;
  }

  push(rms) {
    const db = 20 * Math.log10(Math.max(rms, 1e-5));
    this.level = Math.max(0, Math.min(1, (db + 60) / 60));   // -60 dBFS .. 0 dBFS
    if (!this.pending) {
      this.pending = true;
      window.requestAnimationFrame(() => this.draw());
    }
  }

  draw() {
    this.pending = false;
    const pct = Math.round(this.level * 100);
    this.fill.style.width = `${pct}%`;
    this.element.setAttribute("aria-valuenow", String(pct));
    this.element.classList.toggle("hot", this.level > 0.9);
  }

  reset() { this.level = 0; this.draw(); }

  set active(on) { this.element.classList.toggle("active", on); if (!on) this.reset(); }
};
