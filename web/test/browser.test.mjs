// The playground in headless Debian Chromium (playwright-core; no downloaded browser), against a real
// openevi with the scripted model. The fake microphone plays a WAV made with espeak-ng: a spoken
// question followed by ~2 s of silence (Chromium loops it). Screenshots go to test-artifacts/web/.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { REPO, startServer } from "./server.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = join(REPO, "test-artifacts", "web");
const QUESTION = "What is the weather like in Paris today?";
const TYPED = "Hello there, can you hear me?";

/** espeak-ng speech + `silenceS` seconds of silence, as a 16-bit mono WAV. */
function questionWav(path, text, silenceS = 2) {
  const wav = execFileSync("espeak-ng", ["-v", "en-us", "-s", "150", "--stdout", text]);
  assert.equal(wav.toString("ascii", 0, 4), "RIFF");
  const rate = wav.readUInt32LE(24);
  let offset = 12;
  while (wav.toString("ascii", offset, offset + 4) !== "data") offset += 8 + wav.readUInt32LE(offset + 4);
  // espeak writes 0xFFFFFFFF as the size when streaming to stdout: take what is actually there.
  const pcm = wav.subarray(offset + 8);
  const samples = Buffer.concat([pcm.subarray(0, pcm.length - (pcm.length % 2)), Buffer.alloc(Math.round(rate * silenceS) * 2)]);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + samples.length, 4);
  header.write("WAVEfmt ", 8, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(samples.length, 40);
  writeFileSync(path, Buffer.concat([header, samples]));
}

let server;
let browser;
let page;
let workDir;
let chatId;
const foreignRequests = [];
const consoleErrors = [];

async function shot(name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: false });
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  workDir = mkdtempSync(join(tmpdir(), "openevi-browser-"));
  const wav = join(workDir, "question.wav");
  questionWav(wav, QUESTION);
  server = await startServer();
  // A fresh, empty profile each run (launchPersistentContext owns --user-data-dir).
  browser = await chromium.launchPersistentContext(join(workDir, "profile"), {
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
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${wav}`,
      "--autoplay-policy=no-user-gesture-required",
    ],
    viewport: { width: 1280, height: 800 },
  });
  await browser.grantPermissions(["microphone"], { origin: server.base_url });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith(server.base_url) && !url.startsWith("data:") && !url.startsWith("blob:")) foreignRequests.push(url);
  });
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => consoleErrors.push(String(err)));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test("the page loads from / and signs in with the API key + secret key", async () => {
  await page.goto(`${server.base_url}/`);
  assert.match(page.url(), /\/playground\/$/);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await shot("01-sign-in-1280");

  await page.getByLabel("API key").fill(server.api_key);
  await page.getByLabel("Secret key").fill("wrong-secret");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "not valid" }).waitFor();

  await page.getByLabel("Secret key").fill(server.secret_key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#app").waitFor({ state: "visible" });
  // The keys are gone from the page once the token is in hand.
  assert.equal(await page.getByLabel("API key").inputValue(), "");
  const stored = await page.evaluate(() => JSON.stringify(sessionStorage));
  assert.ok(!stored.includes(server.api_key) && !stored.includes(server.secret_key));
});

test("a config is created through the SDK and selected", async () => {
  await page.getByText("Create a config").click();
  await page.getByLabel("Name").fill("browser-test");
  await page.getByLabel("Language model").selectOption("OPEN_AI");
  await page.getByLabel("Model", { exact: true }).fill("gpt-4o-mini");
  await page.getByLabel("End-of-turn silence (ms)").fill("700");
  await page.getByRole("button", { name: "Create config" }).click();
  await page.waitForFunction(() => {
    const select = document.querySelector("#config-select");
    return select && select.selectedOptions[0]?.textContent?.startsWith("browser-test");
  });
});

test("connect, type a message, get the assistant's text and audio", async () => {
  await page.getByRole("button", { name: "Connect" }).click();
  await page.locator('#conn-state[data-state="connected"]').waitFor();
  await page.waitForFunction(() => document.querySelector("#stat-chat")?.textContent?.length > 10);
  chatId = (await page.locator("#stat-chat").textContent()).trim();

  await page.getByLabel("Message").fill(TYPED);
  await page.getByLabel("Message").press("Enter");
  await page.locator(".msg.user").filter({ hasText: TYPED }).waitFor();
  await page.locator(".msg.assistant").filter({ hasText: "Hello from openevi" }).waitFor({ timeout: 60_000 });
  // audio_output chunks arrived and the SDK's player decoded and started them in the AudioContext.
  await page.waitForFunction(() => Number(document.querySelector("#stat-audio")?.dataset.chunks) > 0);
  await page.waitForFunction(() => Number(document.querySelector("#stat-audio")?.dataset.played) > 0, null, {
    timeout: 30_000,
  });
  await page.locator(".msg.user .latency").first().waitFor();
  assert.match(await page.locator("#stat-latency").textContent(), /^\d+ ms$/);
  await shot("02-typed-round-trip-1280");
});

test("the history view shows the chat, its events and its audio", async () => {
  await page.getByRole("button", { name: "Disconnect" }).click();
  await page.locator('#conn-state[data-state="disconnected"]').waitFor();
  await page.getByRole("tab", { name: "History" }).click();
  const item = page.locator(`#history-list button[data-id="${chatId}"]`);
  await item.waitFor();
  await item.click();
  await page.locator("#history-detail .event-text").filter({ hasText: TYPED }).waitFor();
  await page.locator("#history-detail .event-text").filter({ hasText: "Hello from openevi" }).first().waitFor();
  await page.getByRole("button", { name: "Reconstruct audio" }).click();
  const audio = page.locator('#history-detail audio[src*="/audio/"]');
  await audio.waitFor({ timeout: 90_000 });
  await page.waitForFunction(() => (document.querySelector("#history-detail audio")?.duration ?? 0) > 0.5, null, {
    timeout: 30_000,
  });
  await shot("03-history-1280");

  await page.getByRole("button", { name: "Chat groups" }).click();
  await page.locator("#history-list button.item").first().waitFor();
  await page.locator("#history-list button.item").first().click();
  await page.locator("#history-detail h2").filter({ hasText: "Chat group" }).waitFor();
  await page.locator("#history-detail .event-text").first().waitFor();
});

test("small screens: sign-in and talk views fit 390×844", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  // Tabs follow the ARIA pattern: arrow keys move the selection and the focus.
  await page.getByRole("tab", { name: "History" }).focus();
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.getByRole("tab", { name: "Talk" }).getAttribute("aria-selected"), "true");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "tab-talk");
  await shot("04-talk-390");
  await page.getByRole("tab", { name: "History" }).click();
  await shot("05-history-390");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px too wide)`);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByRole("tab", { name: "Talk" }).click();
});

// Speech input: the fake microphone asks QUESTION. Needs the server's voice input (VAD → ASR →
// prosody) to turn audio_input into a user_message with a transcript and emotion scores.
test("a spoken question shows up as a transcript with three emotion bars, and is answered", async () => {
  await page.getByRole("button", { name: "Connect" }).click();
  await page.locator('#conn-state[data-state="connected"]').waitFor();
  await page.getByRole("button", { name: "Start microphone" }).click();
  await page.waitForFunction(() => Number(document.querySelector("#mic")?.dataset.sent) > 5);
  const spoken = page.locator('.msg.user[data-source="voice"]').first();
  try {
    await spoken.waitFor({ timeout: 90_000 });
  } catch (err) {
    await shot("06-voice-1280");
    const transcript = await page.locator("#transcript").innerText();
    const log = readFileSync(server.log, "utf8").split("\n").slice(-40).join("\n");
    throw new Error(
      `No user_message came back for the spoken question (voice input: VAD → ASR → prosody).\n` +
        `audio_input chunks sent: ${await page.locator("#mic").getAttribute("data-sent")}\n` +
        `transcript on the page:\n${transcript}\nserver log (tail):\n${log}`,
      { cause: err },
    );
  }
  const text = (await spoken.locator(".text").textContent()).toLowerCase();
  assert.match(text, /weather|paris/, `transcript: ${text}`);
  assert.equal(await spoken.locator(".emotions .emotion").count(), 3, "three emotion bars");
  await page.locator(".msg.assistant").nth(0).waitFor();
  await page.getByRole("button", { name: "Stop microphone" }).click();
  await shot("06-voice-1280");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator("#transcript").scrollIntoViewIfNeeded();
  await shot("07-voice-390");
  await page.setViewportSize({ width: 1280, height: 800 });
});

test("nothing was fetched from anywhere but this server", () => {
  assert.deepEqual(foreignRequests, []);
  assert.deepEqual(
    consoleErrors.filter((e) => !/Failed to load resource/.test(e)),
    [],
  );
});
