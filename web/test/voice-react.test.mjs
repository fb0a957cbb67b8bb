// @humeai/voice-react (VoiceProvider/useVoice, its own pinned `hume`) in headless Debian Chromium
// against a real openevi with the scripted model. The test page (test/voice-react/) is built here with
// Vite into a temporary directory and served from a second loopback origin, as an app hosted apart
// from openevi would be. The fake microphone plays an espeak-ng question; voice-react records it with
// MediaRecorder and sends webm/opus binary frames. voice-react loads its AudioWorklet from a CDN: that
// one URL is answered from test/voice-react/audio-worklet.js (through a browser-wide CDP Fetch session),
// and every other request that is not to 127.0.0.1 is refused and recorded (Chromium's resolver is also
// told to resolve nothing else).
import assert from "node:assert/strict";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { after, before, test } from "node:test";
import { HumeClient } from "hume";
import { chromium } from "playwright-core";
import { build } from "vite";
import { REPO, accessToken, startServer } from "./server.mjs";
import { spoken } from "./speech.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const PAGE_SRC = join(REPO, "web", "test", "voice-react");
const WORKLET_URL = "https://storage.googleapis.com/evi-react-sdk-assets/audio-worklet-20250702.js";
const ARTIFACTS = join(REPO, "test-artifacts", "web");
const QUESTION = "What is the weather like in Paris today?";
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };

let server;
let site;
let siteOrigin;
let browser;
let page;
let workDir;
const foreignRequests = [];
const workletServed = [];
const sockets = [];
const consoleErrors = [];

const isLoopback = (url) => {
  const { protocol, hostname } = new URL(url);
  return ["http:", "ws:"].includes(protocol) && hostname === "127.0.0.1";
};

/** A static file server on 127.0.0.1 for the built page. */
function serve(dir) {
  const http = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^\/+/, "");
    const file = resolve(dir, path || "index.html");
    if (!file.startsWith(resolve(dir)) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  return new Promise((r) => http.listen(0, "127.0.0.1", () => r(http)));
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  workDir = mkdtempSync(join(tmpdir(), "openevi-voice-react-"));
  const out = join(workDir, "site");
  await build({
    configFile: false,
    root: PAGE_SRC,
    base: "./",
    logLevel: "warn",
    build: {
      outDir: out,
      emptyOutDir: true,
      target: "es2022",
      sourcemap: false,
      rolldownOptions: {
        // voice-react starts with a "use client" directive (for React Server Components); harmless here.
        onwarn(warning, warn) {
          if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
        },
      },
    },
  });
  const wav = join(workDir, "question.wav");
  writeFileSync(wav, spoken(QUESTION, { silenceS: 2.5 }).wav);

  server = await startServer();
  site = await serve(out);
  siteOrigin = `http://127.0.0.1:${site.address().port}`;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Belt and braces: no name other than 127.0.0.1 resolves, so nothing can leave the machine.
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${wav}`,
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  // Interception at the browser target: Playwright's page/context routes do not see the module fetch
  // of audioWorklet.addModule(), the browser-wide CDP Fetch domain sees every HTTP(S) request.
  const worklet = readFileSync(join(PAGE_SRC, "audio-worklet.js")).toString("base64");
  const cdp = await browser.newBrowserCDPSession();
  cdp.on("Fetch.requestPaused", (event) => {
    const { requestId, request } = event;
    let reply;
    if (request.url === WORKLET_URL) {
      workletServed.push(request.url);
      // addModule() fetches in CORS mode from the page's (loopback) origin.
      reply = cdp.send("Fetch.fulfillRequest", {
        requestId,
        responseCode: 200,
        responseHeaders: [
          { name: "Content-Type", value: "text/javascript" },
          { name: "Access-Control-Allow-Origin", value: "*" },
        ],
        body: worklet,
      });
    } else if (isLoopback(request.url)) {
      reply = cdp.send("Fetch.continueRequest", { requestId });
    } else {
      foreignRequests.push(request.url);
      reply = cdp.send("Fetch.failRequest", { requestId, errorReason: "BlockedByClient" });
    }
    reply.catch(() => {}); // the request may be gone already (page closed)
  });
  await cdp.send("Fetch.enable", { patterns: [{ urlPattern: "*" }] });
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  await context.grantPermissions(["microphone"], { origin: siteOrigin });
  page = await context.newPage();
  page.on("websocket", (ws) => sockets.push(ws.url()));
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => consoleErrors.push(String(err)));
  page.on("response", (res) => {
    if (res.status() >= 400) consoleErrors.push(`HTTP ${res.status()} for ${res.url()}`);
  });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => (site ? site.close(r) : r()));
  await server?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test("voice-react: the spoken question is transcribed and answered with audio", async () => {
  const token = await accessToken(server.base_url, server.api_key, server.secret_key);
  const client = new HumeClient({ accessToken: token, environment: server.base_url });
  const config = await client.empathicVoice.configs.createConfig({
    name: `voice-react-${Date.now().toString(36)}`,
    eviVersion: "3",
    prompt: { text: "You are a concise assistant." },
    languageModel: { modelProvider: "OPEN_AI", modelResource: "gpt-4o-mini" },
    turnDetection: { endOfTurnSilenceMs: 700 },
  });
  const fragment = new URLSearchParams({ host: server.base_url, token, config: config.id });
  await page.goto(`${siteOrigin}/index.html#${fragment}`);
  await page.locator("#start").click();
  try {
    await page.locator('#status[data-status="connected"]').waitFor({ timeout: 20_000 });
    // Chromium loops the WAV from when capture starts, and voice-react starts recording only once the
    // chat is open, so the first turn may be the tail of a repetition: wait for a whole question.
    const spoken = page
      .locator('#messages li[data-type="user_message"][data-interim="false"]')
      .filter({ hasText: /weather/i })
      .first();
    await spoken.waitFor({ timeout: 45_000 });
    const transcript = (await spoken.textContent()).toLowerCase();
    assert.match(transcript, /weather/, `transcript: ${transcript}`);
    assert.match(transcript, /paris/, `transcript: ${transcript}`);
    // voice-react lists an assistant_message only once the player has started that message's audio:
    // an answer listed after the question was received, decoded and started in the AudioWorklet.
    await page
      .locator('#messages li[data-type="user_message"][data-interim="false"]:has-text("weather") ~ li[data-type="assistant_message"]')
      .filter({ hasText: "Hello from openevi" })
      .first()
      .waitFor({ timeout: 30_000 });
    // The callbacks count as the audio arrives and plays, which need not be before the text is shown.
    const counted = (name) => Number(document.body.getAttribute(name)) > 0;
    await page.waitForFunction(counted, "data-audio-received", { timeout: 30_000 }); // audio_output received
    await page.waitForFunction(counted, "data-audio-started", { timeout: 30_000 }); // a clip started playing
    await page.screenshot({ path: join(ARTIFACTS, "voice-react-1024.png") });
  } catch (err) {
    await page.screenshot({ path: join(ARTIFACTS, "voice-react-1024.png") }).catch(() => {});
    const shown = await page.locator("main").innerText().catch(() => "(page gone)");
    const log = readFileSync(server.log, "utf8").split("\n").slice(-30).join("\n");
    throw new Error(`voice-react round trip failed.\npage:\n${shown}\nserver log (tail):\n${log}`, { cause: err });
  }
  const errors = await page.locator("body").getAttribute("data-errors");
  assert.equal(errors, null, `voice-react reported errors: ${errors}`);
  await page.locator("#stop").click();
  await page.locator('#status[data-status="disconnected"]').waitFor();
});

test("voice-react: nothing left 127.0.0.1; the CDN worklet was served locally", () => {
  assert.deepEqual(foreignRequests, [], "requests refused because they were not to 127.0.0.1");
  assert.ok(workletServed.length >= 1, "voice-react asked for its AudioWorklet and got the local stand-in");
  assert.ok(sockets.length >= 1, "a chat socket was opened");
  for (const url of sockets) assert.ok(isLoopback(url), `WebSocket to ${url}`);
  assert.ok(
    sockets.some((url) => url.startsWith(`${server.base_url.replace("http://", "ws://")}/v0/evi/chat?`)),
    `chat socket at openevi: ${sockets.join(", ")}`,
  );
  assert.deepEqual(consoleErrors, [], "no console errors and no failed requests");
});
