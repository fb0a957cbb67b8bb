// The official TypeScript SDK (npm `hume`) against a real openevi server with a scripted model.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { HumeClient } from "hume";
import { accessToken, startServer } from "./server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const unique = (prefix) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;

/** The RIFF/WAVE header of one audio_output chunk: sample rate, channels, bits, data bytes. */
function wavHeader(b64) {
  const buf = Buffer.from(b64, "base64");
  assert.equal(buf.toString("ascii", 0, 4), "RIFF");
  assert.equal(buf.toString("ascii", 8, 12), "WAVE");
  assert.equal(buf.toString("ascii", 12, 16), "fmt ");
  assert.equal(buf.readUInt16LE(20), 1, "PCM");
  let offset = 12;
  let dataBytes = -1;
  while (offset + 8 <= buf.length) {
    const id = buf.toString("ascii", offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    if (id === "data") {
      dataBytes = size;
      break;
    }
    offset += 8 + size;
  }
  assert.ok(dataBytes > 0, "a data chunk with samples");
  assert.equal(offset + 8 + dataBytes, buf.length, "the data size in the header matches the payload");
  return { sampleRate: buf.readUInt32LE(24), channels: buf.readUInt16LE(22), bits: buf.readUInt16LE(34), dataBytes };
}

/** Collect chat messages until `until(message)` is true; rejects on socket errors or a `error` message. */
function collect(socket, until, limitMs = 60_000) {
  const seen = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out; saw ${seen.map((m) => m.type).join(",")}`)), limitMs);
    socket.on("message", (message) => {
      seen.push(message);
      if (message.type === "error") {
        clearTimeout(timer);
        reject(new Error(`server error: ${message.code} ${message.message}`));
      } else if (until(message)) {
        clearTimeout(timer);
        resolve(seen);
      }
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

test("REST through the SDK: prompts and configs", async () => {
  const client = new HumeClient({ apiKey: server.api_key, environment: server.base_url });
  const prompt = await client.empathicVoice.prompts.createPrompt({
    name: unique("sdk-prompt"),
    text: "You are a friendly test assistant.",
  });
  assert.ok(prompt?.id);
  assert.equal(prompt.version, 0);
  const name = unique("sdk-config");
  const config = await client.empathicVoice.configs.createConfig({
    name,
    eviVersion: "3",
    prompt: { id: prompt.id, version: prompt.version },
    voice: { name: "Joe", provider: "HUME_AI" },
    languageModel: { modelProvider: "OPEN_AI", modelResource: "gpt-4o-mini" },
    turnDetection: { endOfTurnSilenceMs: 900, speechDetectionThreshold: 0.5 },
  });
  assert.equal(config.name, name);
  assert.equal(config.prompt?.id, prompt.id);
  assert.equal(config.languageModel?.modelProvider, "OPEN_AI");

  const page = await client.empathicVoice.configs.listConfigs({ pageSize: 100 });
  const names = [];
  for await (const c of page) names.push(c.name);
  assert.ok(names.includes(name), `listed: ${names.join(", ")}`);

  const versions = await client.empathicVoice.configs.listConfigVersions(config.id);
  assert.equal(versions.data.length, 1);
  const prompts = await client.empathicVoice.prompts.listPrompts({ pageSize: 100 });
  assert.ok(prompts.data.some((p) => p?.id === prompt.id));
});

test("chat over the SDK's WebSocket with an access token: text in, audio out", async () => {
  const token = await accessToken(server.base_url, server.api_key, server.secret_key);
  assert.ok(token.length > 20);
  // A browser app holds only the token: build the client with it, as the SDK documents.
  const client = new HumeClient({ accessToken: token, environment: server.base_url });
  const config = await client.empathicVoice.configs.createConfig({
    name: unique("sdk-chat"),
    eviVersion: "3",
    prompt: { text: "You are a concise assistant." },
    languageModel: { modelProvider: "OPEN_AI", modelResource: "gpt-4o-mini" },
  });
  const socket = client.empathicVoice.chat.connect({ configId: config.id, accessToken: token, reconnectAttempts: 0 });
  try {
    const metadata = collect(socket, (m) => m.type === "chat_metadata");
    await socket.waitForOpen();
    const [meta] = (await metadata).filter((m) => m.type === "chat_metadata");
    assert.ok(meta.chatId && meta.chatGroupId);

    const turn = collect(socket, (m) => m.type === "assistant_end");
    socket.sendUserInput("Hello there, can you hear me?");
    const messages = await turn;
    const types = messages.map((m) => m.type);

    const user = messages.find((m) => m.type === "user_message");
    assert.ok(user, `user_message echoed; saw ${types.join(",")}`);
    assert.equal(user.message.content, "Hello there, can you hear me?");
    assert.equal(user.fromText, true);

    const assistant = messages.filter((m) => m.type === "assistant_message");
    assert.ok(assistant.length > 0);
    const said = assistant.map((m) => m.message.content).join(" ");
    assert.match(said, /Hello from openevi/);

    const audio = messages.filter((m) => m.type === "audio_output");
    assert.ok(audio.length > 0, "audio_output chunks");
    const ids = new Set(assistant.map((m) => m.id));
    let samples = 0;
    for (const chunk of audio) {
      assert.ok(ids.has(chunk.id), "audio_output.id names an assistant_message");
      const header = wavHeader(chunk.data);
      assert.equal(header.channels, 1);
      assert.equal(header.bits, 16);
      assert.equal(header.sampleRate, 24000);
      samples += header.dataBytes / 2;
    }
    assert.ok(samples > 24000 / 2, "at least half a second of speech");
    // `index` counts the chunks of one assistant_message (0, 1, 2, … per id), in order.
    for (const id of ids) {
      const indexes = audio.filter((m) => m.id === id).map((m) => m.index);
      assert.deepEqual(indexes, indexes.map((_, i) => i), `chunk indexes of ${id}`);
    }
    assert.ok(types.indexOf("assistant_end") > types.lastIndexOf("audio_output"), "assistant_end comes last");

    // History through the SDK: the chat is listed with its events (stored off the hot path, so poll).
    const stored = async () => {
      const events = await client.empathicVoice.chats.listChatEvents(meta.chatId, { pageSize: 100 });
      return events.data.some((e) => e.type === "USER_MESSAGE" && e.messageText === "Hello there, can you hear me?");
    };
    const deadline = Date.now() + 30_000; // bounds a hang only
    while (!(await stored()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(await stored(), "the user's message is in the stored history");
  } finally {
    socket.close();
  }
});

test("a wrong secret key is refused and a bad token cannot open a chat", async () => {
  await assert.rejects(accessToken(server.base_url, server.api_key, "not-the-secret"), /401/);
  const client = new HumeClient({ accessToken: "bogus", environment: server.base_url });
  const socket = client.empathicVoice.chat.connect({ accessToken: "bogus", reconnectAttempts: 0 });
  const outcome = await new Promise((resolve) => {
    socket.on("open", () => resolve("open"));
    socket.on("error", () => resolve("refused"));
    socket.on("close", () => resolve("refused"));
  });
  socket.close();
  assert.equal(outcome, "refused");
});
