// Starts openevi wired to the scripted OpenAI-compatible model (tests/support/playground_server.py)
// and resolves with {base_url, api_key, secret_key, stop()} once it answers /healthz.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

function python() {
  const venv = join(REPO, ".venv", "bin", "python");
  return process.env.OPENEVI_PYTHON ?? (existsSync(venv) ? venv : "python3");
}

export async function startServer({ startupTimeoutMs = 120_000 } = {}) {
  const child = spawn(python(), ["-m", "tests.support.playground_server"], {
    cwd: REPO,
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
  });
  const lines = createInterface({ input: child.stdout });
  const info = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error("openevi did not start in time")), startupTimeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`openevi helper exited early (code ${code})`));
    });
    lines.on("line", (line) => {
      const trimmed = line.trim();
      if (!trimmed.startsWith("{")) return;
      clearTimeout(timer);
      resolvePromise(JSON.parse(trimmed));
    });
  });
  const exited = new Promise((r) => child.once("exit", r));
  return {
    ...info,
    async stop() {
      child.stdin.end(); // the helper stops both servers when its stdin closes
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** POST /oauth2-cc/token exactly as the SDK's fetchAccessToken does, but to an http origin. */
export async function accessToken(baseUrl, apiKey, secretKey) {
  const res = await fetch(`${baseUrl}/oauth2-cc/token`, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      Authorization: `Basic ${Buffer.from(`${apiKey}:${secretKey}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials" }).toString(),
  });
  if (!res.ok) throw new Error(`token exchange failed: ${res.status} ${await res.text()}`);
  const body = await res.json();
  return body.access_token;
}
