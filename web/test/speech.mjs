// Spoken test audio for the web tests, made by the project's own Python helper
// (tests/support/speech.py: espeak-ng, resampled with soxr, containers encoded with PyAV) so the Node
// and Python suites speak the same way. Nothing here touches the network.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO } from "./server.mjs";

function python() {
  const venv = join(REPO, ".venv", "bin", "python");
  return process.env.OPENEVI_PYTHON ?? (existsSync(venv) ? venv : "python3");
}

const SCRIPT = `
import sys
from pathlib import Path
import numpy as np
from tests.support.speech import encode, speak, to_linear16

text, out, silence_s = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
speech = speak(text, sample_rate=16000)
tail = np.zeros(int(16000 * silence_s), dtype=np.float32)
(out / "speech.pcm").write_bytes(to_linear16(speech))
padded = np.concatenate([speech, tail])
(out / "speech.webm").write_bytes(encode(padded, fmt="webm", codec="libopus"))
(out / "speech.wav").write_bytes(encode(padded, fmt="wav", codec="pcm_s16le", codec_rate=16000))
`;

/**
 * `text` spoken by espeak-ng, as
 * - `pcm`: raw linear16 mono 16 kHz (no trailing silence),
 * - `webm`: webm/opus 48 kHz, like Chromium's MediaRecorder, with `silenceS` of silence after the speech,
 * - `wav`: a 16-bit 16 kHz WAV file with the same trailing silence.
 */
export function spoken(text, { silenceS = 2 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "openevi-speech-"));
  try {
    execFileSync(python(), ["-c", SCRIPT, text, dir, String(silenceS)], { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] });
    const read = (name) => readFileSync(join(dir, name));
    return { pcm: read("speech.pcm"), webm: read("speech.webm"), wav: read("speech.wav"), rate: 16000, silenceS };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Split `data` into `pieces` nearly equal parts (MediaRecorder-style timeslices of an encoded stream). */
export function splitEvenly(data, pieces) {
  const step = Math.max(1, Math.ceil(data.length / pieces));
  const out = [];
  for (let i = 0; i < data.length; i += step) out.push(data.subarray(i, i + step));
  return out;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Send `chunks` one every `intervalMs`, keeping to a real-time schedule (the next send is due at
 * start + i·interval, so slow event-loop turns don't stretch the stream).
 */
export async function paced(chunks, intervalMs, send) {
  const start = performance.now();
  for (let i = 0; i < chunks.length; i++) {
    const due = start + i * intervalMs - performance.now();
    if (due > 0) await sleep(due);
    send(chunks[i]);
  }
}
