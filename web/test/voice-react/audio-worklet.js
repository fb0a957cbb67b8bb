// Local stand-in for the AudioWorklet that @humeai/voice-react loads from a CDN (the tests serve this
// file for that URL; nothing is fetched from the internet). Written from the messages voice-react's
// player exchanges with its "audio-processor" node:
//   in:  {type: "audio", data: Float32Array, id, index} | {type: "fadeAndClear"} | {type: "end"}
//   out: {type: "start_clip", id, index} | {type: "queueLength", length} | {type: "ended"} | {type: "worklet_closed"}
// It plays the queued clips in order on every output channel; fades are reduced to an immediate clear.
class QueuedClipPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.clips = [];
    this.offset = 0;
    this.started = false;
    this.playing = false;
    this.closed = false;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (message.type === "audio") {
      this.clips.push({ data: message.data, id: message.id, index: message.index });
      this.port.postMessage({ type: "queueLength", length: this.clips.length });
    } else if (message.type === "fadeAndClear") {
      this.clips = [];
      this.offset = 0;
      this.started = false;
      this.port.postMessage({ type: "queueLength", length: 0 });
    } else if (message.type === "end") {
      this.closed = true;
    }
  }

  process(_inputs, outputs) {
    if (this.closed) {
      this.port.postMessage({ type: "worklet_closed" });
      return false;
    }
    const output = outputs[0];
    const frames = output[0]?.length ?? 128;
    for (let i = 0; i < frames; i++) {
      let sample = 0;
      const clip = this.clips[0];
      if (clip) {
        if (!this.started) {
          this.started = true;
          this.playing = true;
          this.port.postMessage({ type: "start_clip", id: clip.id, index: clip.index });
        }
        sample = clip.data[this.offset++] ?? 0;
        if (this.offset >= clip.data.length) {
          this.clips.shift();
          this.offset = 0;
          this.started = false;
          this.port.postMessage({ type: "queueLength", length: this.clips.length });
        }
      } else if (this.playing) {
        this.playing = false;
        this.port.postMessage({ type: "ended" });
      }
      for (const channel of output) channel[i] = sample;
    }
    return true;
  }
}

registerProcessor("audio-processor", QueuedClipPlayer);
