/**
 * A live chat: the SDK's chat socket, microphone capture (MediaRecorder → `audio_input`), playback of
 * `audio_output` WAV chunks with the SDK's EVIWebAudioPlayer, the transcript and per-turn latency.
 */
import {
  EVIWebAudioPlayer,
  convertBlobToBase64,
  ensureSingleValidAudioTrack,
  getAudioStream,
  getBrowserSupportedMimeType,
  type Hume,
} from "hume";
import type { Client } from "./client";
import { $, errorText, h } from "./dom";
import { emotionBars, type Scores } from "./emotions";

type ChatSocket = ReturnType<Client["empathicVoice"]["chat"]["connect"]>;
type Incoming = Hume.empathicVoice.SubscribeEvent;
export type ConnectionState = "disconnected" | "connecting" | "connected" | "error";

const STATE_LABEL: Record<ConnectionState, string> = {
  disconnected: "Disconnected",
  connecting: "Connecting…",
  connected: "Connected",
  error: "Connection error",
};

/** Sample rate, channels, bits and payload size from a base64 WAV chunk's header. */
function wavSeconds(b64: string): number {
  const head = atob(b64.slice(0, 64));
  const byte = (i: number): number => head.charCodeAt(i);
  if (head.slice(0, 4) !== "RIFF") return 0;
  const rate = byte(24) | (byte(25) << 8) | (byte(26) << 16) | (byte(27) << 24);
  const channels = byte(22) | (byte(23) << 8);
  const bits = byte(34) | (byte(35) << 8);
  const bytes = Math.floor((b64.length * 3) / 4) - 44;
  return rate && channels && bits ? bytes / (rate * channels * (bits / 8)) : 0;
}

export class Talk {
  private socket: ChatSocket | null = null;
  private player: EVIWebAudioPlayer | null = null;
  private recorder: MediaRecorder | null = null;
  private stream: MediaStream | null = null;
  private sendChain: Promise<void> = Promise.resolve();
  private closingOnPurpose = false;
  private state: ConnectionState = "disconnected";

  private assistantEl: HTMLLIElement | null = null;
  private interimEl: HTMLLIElement | null = null;
  private lastUserEl: HTMLLIElement | null = null;
  private turnStartedAt: number | null = null;
  private latencies: number[] = [];
  private audioChunks = 0;
  private audioSeconds = 0;
  private played = 0;
  private sentChunks = 0;

  private readonly transcript = $<HTMLOListElement>("transcript");
  private readonly empty = $("transcript-empty");
  private readonly pill = $("conn-state");
  private readonly connectBtn = $<HTMLButtonElement>("connect");
  private readonly micBtn = $<HTMLButtonElement>("mic");
  private readonly input = $<HTMLInputElement>("message");
  private readonly sendBtn = $<HTMLButtonElement>("send");
  private readonly errorEl = $("session-error");
  private readonly speaking = $("speaking");

  constructor(
    private readonly client: () => Client,
    private readonly token: () => string,
    private readonly onChatStarted: (chatId: string) => void,
  ) {
    this.setState("disconnected");
  }

  get connected(): boolean {
    return this.state === "connected";
  }

  async connect(configId: string | undefined): Promise<void> {
    if (this.socket) return;
    this.errorEl.textContent = "";
    this.setState("connecting");
    this.closingOnPurpose = false;
    try {
      // Created and resumed inside the click that connects: browsers only start audio after a gesture.
      // Regular Buffer Mode: the worklet mode loads its processor from a CDN, which the playground avoids.
      this.player = new EVIWebAudioPlayer({ disableAudioWorklet: true });
      this.player.on("play", () => {
        this.played += 1;
        this.speaking.hidden = false;
        this.updateAudioStat();
      });
      this.player.on("stop", () => {
        this.speaking.hidden = true;
      });
      await this.player.init();
    } catch (err) {
      this.errorEl.textContent = `Audio playback is unavailable: ${errorText(err)}`;
    }
    const socket = this.client().empathicVoice.chat.connect({
      configId,
      accessToken: this.token(),
      verboseTranscription: true,
      reconnectAttempts: 0,
    });
    this.socket = socket;
    socket.on("open", () => this.setState("connected"));
    socket.on("message", (message) => this.handle(message));
    socket.on("error", (err) => {
      this.errorEl.textContent = `Socket error: ${errorText(err)}`;
    });
    socket.on("close", (event) => {
      const expected = this.closingOnPurpose;
      this.teardown();
      if (expected || event.code === 1000) {
        this.setState("disconnected");
      } else {
        this.setState("error");
        this.errorEl.textContent = `The connection closed (${event.code}${event.reason ? `: ${event.reason}` : ""}).`;
      }
    });
  }

  disconnect(): void {
    this.closingOnPurpose = true;
    this.socket?.close();
    this.teardown();
    this.setState("disconnected");
  }

  sendText(text: string): void {
    if (!this.socket || !this.connected) return;
    this.player?.stop();
    this.turnStartedAt = performance.now();
    this.socket.sendUserInput(text);
  }

  async toggleMic(): Promise<void> {
    if (!this.socket || !this.connected) return;
    if (this.recorder?.state === "recording") {
      this.recorder.pause(); // one continuous webm stream across pauses
      this.setMic(false);
      return;
    }
    if (this.recorder?.state === "paused") {
      this.recorder.resume();
      this.setMic(true);
      return;
    }
    try {
      this.stream = await getAudioStream();
      ensureSingleValidAudioTrack(this.stream);
      const mime = getBrowserSupportedMimeType();
      this.recorder = new MediaRecorder(this.stream, mime.success ? { mimeType: mime.mimeType } : undefined);
      this.recorder.ondataavailable = (event: BlobEvent) => {
        if (!event.data.size) return;
        // Keep chunks in order: base64 conversion is async.
        this.sendChain = this.sendChain.then(async () => {
          const data = await convertBlobToBase64(event.data);
          if (this.socket && this.connected) {
            this.socket.sendAudioInput({ data });
            this.sentChunks += 1;
            this.micBtn.dataset.sent = String(this.sentChunks);
          }
        });
      };
      this.recorder.start(100);
      this.setMic(true);
    } catch (err) {
      this.errorEl.textContent = `Microphone unavailable: ${errorText(err)}`;
    }
  }

  clearTranscript(): void {
    this.transcript.replaceChildren();
    this.empty.hidden = false;
    this.latencies = [];
    this.audioChunks = 0;
    this.audioSeconds = 0;
    this.played = 0;
    $("stat-latency").textContent = "—";
    $("stat-median").textContent = "—";
    $("stat-chat").textContent = "—";
    this.updateAudioStat();
  }

  // --- incoming messages -------------------------------------------------------------------
  private handle(message: Incoming): void {
    switch (message.type) {
      case "chat_metadata": {
        const chat = $("stat-chat");
        chat.textContent = message.chatId;
        chat.title = `Chat group ${message.chatGroupId}`;
        this.onChatStarted(message.chatId);
        break;
      }
      case "user_message":
        this.onUserMessage(message);
        break;
      case "assistant_message":
        this.onAssistantMessage(message.message.content ?? "");
        break;
      case "audio_output":
        this.onAudio(message);
        break;
      case "assistant_end":
        this.assistantEl = null;
        break;
      case "user_interruption":
        this.player?.stop();
        this.assistantEl?.classList.add("interrupted");
        this.assistantEl?.append(h("span", { class: "tag" }, "interrupted"));
        this.assistantEl = null;
        break;
      case "error":
        this.addSystem(`Error ${message.code}: ${message.message}`, true);
        break;
      case "tool_call":
        this.addSystem(`Tool call: ${message.name}(${message.parameters})`);
        break;
      default:
        break;
    }
  }

  private onUserMessage(message: Hume.empathicVoice.UserMessage): void {
    const text = message.message.content ?? "";
    if (message.interim) {
      if (!this.interimEl) {
        this.interimEl = this.bubble("user", "", { interim: true });
      }
      this.interimEl.querySelector(".text")!.textContent = text;
      this.scroll();
      return;
    }
    if (!message.fromText) {
      // The user spoke: anything still playing is stale, and the turn's clock starts now.
      this.player?.stop();
      this.turnStartedAt = performance.now();
    }
    const el = this.interimEl ?? this.bubble("user", "");
    this.interimEl = null;
    el.classList.remove("interim");
    el.querySelector(".text")!.textContent = text;
    el.dataset.source = message.fromText ? "text" : "voice";
    const bars = emotionBars(message.models?.prosody?.scores as unknown as Scores | undefined);
    if (bars) el.append(bars);
    this.lastUserEl = el;
    this.assistantEl = null;
    this.scroll();
  }

  private onAssistantMessage(text: string): void {
    if (!this.assistantEl) {
      this.assistantEl = this.bubble("assistant", text);
    } else {
      const p = this.assistantEl.querySelector(".text")!;
      p.textContent = `${p.textContent ?? ""} ${text}`.trim();
    }
    this.scroll();
  }

  private onAudio(message: Hume.empathicVoice.AudioOutput): void {
    this.audioChunks += 1;
    this.audioSeconds += wavSeconds(message.data);
    if (this.turnStartedAt !== null) {
      const ms = Math.round(performance.now() - this.turnStartedAt);
      this.turnStartedAt = null;
      this.latencies.push(ms);
      $("stat-latency").textContent = `${ms} ms`;
      const sorted = [...this.latencies].sort((a, b) => a - b);
      $("stat-median").textContent = `${sorted[Math.floor((sorted.length - 1) / 2)]} ms`;
      this.lastUserEl?.querySelector(".meta")?.append(h("span", { class: "latency", title: "End of turn → first audio" }, `${ms} ms to first audio`));
    }
    this.updateAudioStat();
    void this.player?.enqueue(message);
  }

  // --- rendering ---------------------------------------------------------------------------
  private bubble(role: "user" | "assistant", text: string, opts: { interim?: boolean } = {}): HTMLLIElement {
    this.empty.hidden = true;
    const li = h(
      "li",
      { class: `msg ${role}${opts.interim ? " interim" : ""}`, "data-role": role },
      h("div", { class: "meta" }, h("span", { class: "who" }, role === "user" ? "You" : "Assistant")),
      h("p", { class: "text" }, text),
    );
    this.transcript.append(li);
    return li;
  }

  private addSystem(text: string, isError = false): void {
    this.empty.hidden = true;
    this.transcript.append(h("li", { class: `msg system${isError ? " error" : ""}` }, h("p", { class: "text" }, text)));
    this.scroll();
  }

  private scroll(): void {
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  private updateAudioStat(): void {
    const stat = $("stat-audio");
    stat.dataset.chunks = String(this.audioChunks);
    stat.dataset.played = String(this.played);
    stat.replaceChildren(
      this.audioChunks ? `${this.audioSeconds.toFixed(1)} s` : "—",
      ...(this.audioChunks ? [h("small", {}, `${this.audioChunks} chunk${this.audioChunks === 1 ? "" : "s"}`)] : []),
    );
  }

  private setMic(on: boolean): void {
    this.micBtn.setAttribute("aria-pressed", String(on));
    this.micBtn.querySelector(".label")!.textContent = on ? "Stop microphone" : "Start microphone";
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    this.pill.dataset.state = state;
    this.pill.textContent = STATE_LABEL[state];
    const live = state === "connected";
    this.connectBtn.textContent = state === "connecting" ? "Connecting…" : live ? "Disconnect" : "Connect";
    this.connectBtn.disabled = state === "connecting";
    this.connectBtn.classList.toggle("danger", live);
    this.micBtn.disabled = !live;
    this.input.disabled = !live;
    this.sendBtn.disabled = !live;
    if (!live) this.setMic(false);
  }

  private teardown(): void {
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
    this.recorder = null;
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.player?.stop();
    this.player?.dispose();
    this.player = null;
    this.socket = null;
    this.interimEl = null;
    this.assistantEl = null;
    this.turnStartedAt = null;
    this.speaking.hidden = true;
  }
}
