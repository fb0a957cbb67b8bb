// Audio as BINARY WebSocket frames through the official TypeScript SDK (`ChatSocket.sendBinary`), the
// way the Python SDK's microphone (raw linear16 after a session_settings.audio) and @humeai/voice-react
// (MediaRecorder webm/opus, no settings) put audio on the wire. Real openevi, scripted model, real
// voice input (VAD → ASR → prosody); the speech is espeak-ng.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { HumeClient } from "hume";
import { accessToken, startServer } from "./server.mjs";
import { paced, spoken, splitEvenly } from "./speech.mjs";

const QUESTION = "What is the weather like in Paris today?";
const TYPED = "Hello there, can you hear me?";
const CHUNK_MS = 40;

let server;
let client;
let configId;
let speech;
let token;

before(async () => {
  speech = spoken(QUESTION, { silenceS: 2 });
  server = await startServer();
  token = await accessToken(server.base_url, server.api_key, server.secret_key);
  client = new HumeClient({ accessToken: token, environment: server.base_url });
  const config = await client.empathicVoice.configs.createConfig({
    name: `sdk-binary-${Date.now().toString(36)}`,
    eviVersion: "3",
    prompt: { text: "You are a concise assistant." },
    languageModel: { modelProvider: "OPEN_AI", modelResource: "gpt-4o-mini" },
    turnDetection: { endOfTurnSilenceMs: 700 },
  });
  configId = config.id;
});

after(async () => {
  await server?.stop();
});

/** A chat socket with every message recorded; `next(pred)` waits for the first match at or after `from`. */
async function openChat() {
  const socket = client.empathicVoice.chat.connect({ configId, accessToken: token, reconnectAttempts: 0 });
  const seen = [];
  const waiters = [];
  let failure = null;
  socket.on("message", (m) => {
    seen.push(m);
    for (const w of [...waiters]) w.check();
  });
  socket.on("error", (err) => {
    failure = err;
    for (const w of [...waiters]) w.check();
  });
  const chat = {
    socket,
    seen,
    next(pred, { from = 0, timeoutMs = 60_000, what = "message" } = {}) {
      return new Promise((resolve, reject) => {
        const waiter = {
          check() {
            const found = seen.slice(from).find(pred);
            if (found || failure) {
              clearTimeout(timer);
              waiters.splice(waiters.indexOf(waiter), 1);
              if (found) resolve(found);
              else reject(failure);
            }
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no ${what} within ${timeoutMs} ms; saw ${describe(seen)}\nserver log (tail):\n${logTail()}`));
        }, timeoutMs);
        waiters.push(waiter);
        waiter.check();
      });
    },
  };
  await socket.waitForOpen();
  await chat.next((m) => m.type === "chat_metadata", { what: "chat_metadata" });
  return chat;
}

function describe(messages) {
  return messages
    .map((m) => (m.type === "error" ? `error(${m.slug ?? m.code}: ${m.message})` : m.type))
    .join(", ");
}

function logTail() {
  try {
    return readFileSync(server.log, "utf8").split("\n").slice(-30).join("\n");
  } catch {
    return "(no server log)";
  }
}

/** After a spoken turn: the transcript, then the scripted answer in text and audio. */
async function assertSpokenTurn(chat, from) {
  const user = await chat.next((m) => m.type === "user_message" && !m.interim, { from, what: "final user_message" });
  const errors = chat.seen.slice(from).filter((m) => m.type === "error");
  assert.deepEqual(errors, [], `no errors while streaming audio: ${describe(errors)}`);
  assert.equal(user.fromText, false, "the user_message came from speech");
  const transcript = user.message.content.toLowerCase();
  assert.match(transcript, /weather/, `transcript: ${transcript}`);
  assert.match(transcript, /paris/, `transcript: ${transcript}`);
  const at = chat.seen.indexOf(user);
  const assistant = await chat.next((m) => m.type === "assistant_message", { from: at, what: "assistant_message" });
  assert.match(assistant.message.content, /Hello from openevi/);
  await chat.next((m) => m.type === "audio_output" && m.id === assistant.id, { from: at, what: "audio_output" });
  await chat.next((m) => m.type === "assistant_end", { from: at, what: "assistant_end" });
}

test("linear16 PCM as binary frames after session_settings.audio", async () => {
  const chat = await openChat();
  try {
    chat.socket.sendSessionSettings({ audio: { encoding: "linear16", sampleRate: 16000, channels: 1 } });
    const from = chat.seen.length;
    const bytesPerChunk = (16000 * 2 * CHUNK_MS) / 1000;
    const silence = Buffer.alloc(Math.round(16000 * 2 * speech.silenceS));
    const stream = Buffer.concat([speech.pcm, silence]);
    const chunks = [];
    for (let i = 0; i < stream.length; i += bytesPerChunk) chunks.push(stream.subarray(i, i + bytesPerChunk));
    await paced(chunks, CHUNK_MS, (c) => chat.socket.sendBinary(c));
    await assertSpokenTurn(chat, from);
  } finally {
    chat.socket.close();
  }
});

test("webm/opus as binary frames with no audio settings (MediaRecorder-style 100 ms slices)", async () => {
  const chat = await openChat();
  try {
    const from = chat.seen.length;
    const seconds = speech.pcm.length / 2 / 16000 + speech.silenceS;
    const slices = splitEvenly(speech.webm, Math.ceil((seconds * 1000) / 100));
    assert.equal(slices[0].subarray(0, 4).toString("hex"), "1a45dfa3", "the first slice starts with the EBML magic");
    await paced(slices, 100, (c) => chat.socket.sendBinary(c));
    await assertSpokenTurn(chat, from);
  } finally {
    chat.socket.close();
  }
});

test("a WAV file as binary frames with no audio settings", async () => {
  const chat = await openChat();
  try {
    const from = chat.seen.length;
    const bytesPer100ms = 16000 * 2 * 0.1;
    const slices = [];
    for (let i = 0; i < speech.wav.length; i += bytesPer100ms) slices.push(speech.wav.subarray(i, i + bytesPer100ms));
    await paced(slices, 100, (c) => chat.socket.sendBinary(c));
    await assertSpokenTurn(chat, from);
  } finally {
    chat.socket.close();
  }
});

test("a binary frame that is not audio is an invalid_audio error, and the chat goes on", async () => {
  const chat = await openChat();
  try {
    const from = chat.seen.length;
    // No audio settings were declared, and these bytes carry no container's magic.
    chat.socket.sendBinary(Buffer.from("this is certainly not audio, just some text bytes \u0000\u0001\u0002"));
    const error = await chat.next((m) => m.type === "error", { from, what: "error", timeoutMs: 20_000 });
    assert.equal(error.slug, "invalid_audio", `error: ${JSON.stringify(error)}`);
    assert.ok(error.code, "the error has a code");

    const afterError = chat.seen.length;
    chat.socket.sendUserInput(TYPED);
    const user = await chat.next((m) => m.type === "user_message", { from: afterError, what: "user_message" });
    assert.equal(user.message.content, TYPED);
    const assistant = await chat.next((m) => m.type === "assistant_message", { from: afterError, what: "assistant_message" });
    assert.match(assistant.message.content, /Hello from openevi/);
    await chat.next((m) => m.type === "assistant_end", { from: afterError, what: "assistant_end" });
    assert.equal(chat.socket.readyState, 1, "the socket stayed open");
  } finally {
    chat.socket.close();
  }
});
