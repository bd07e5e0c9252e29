/* Runs on the audio thread: passes raw microphone samples to the page in ~20 ms blocks,
   with their RMS level for the meter and the end-of-word detector. */
class HarkRecorder extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(1024);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      let offset = 0;
      while (offset < channel.length) {
        const n = Math.min(channel.length - offset, this.block.length - this.filled);
        this.block.set(channel.subarray(offset, offset + n), this.filled);
        this.filled += n;
        offset += n;
        if (this.filled === this.block.length) this.flush();
      }
    }
    return true;
  }

  flush() {
    let sum = 0;
    for (let i = 0; i < this.block.length; i++) sum += this.block[i] * this.block[i];
    const samples = this.block;
    this.port.postMessage({ samples, rms: Math.sqrt(sum / samples.length) }, [samples.buffer]);
    this.block = new Float32Array(1024);
    this.filled = 0;
  }
}

registerProcessor("hark-recorder", HarkRecorder);
