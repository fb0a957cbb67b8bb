"""Local voices compared: intelligibility (Whisper round trip), pitch, real-time factor, first audio.

Each shipped voice speaks the same 30 fixed sentences through PiperTTS (one sentence per request, as
a reply's first sentence is); Whisper base (English) transcribes the 24 kHz output resampled to 16 kHz.

Run: .venv/bin/python -m benchmarks.voices [--voices Joe,Nora] [--sentences N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
from dataclasses import dataclass

import numpy as np
import pyworld
import soxr

from openevi.speech.asr.whisper import SAMPLE_RATE, WhisperASR
from openevi.speech.tts.piper import PiperTTS
from openevi.speech.voices import VOICES, Voice

SENTENCES = (
    "The train to the airport leaves every twenty minutes.",
    "Please remind me to call my sister after lunch.",
    "Our kitchen window looks out over a small garden.",
    "He forgot his umbrella and walked home in the rain.",
    "The museum opens at nine and closes at five.",
    "Could you turn the music down a little?",
    "She bought fresh bread and a bag of oranges.",
    "The meeting has been moved to Thursday afternoon.",
    "A warm bath helps me sleep after a long day.",
    "The children built a castle out of sand.",
    "My phone battery dies before the evening.",
    "We watched the sun go down behind the hills.",
    "The doctor said the results look perfectly normal.",
    "Turn left at the bakery and park near the bank.",
    "I would like a table for two by the window.",
    "The old bridge was painted bright green last summer.",
    "Her letter arrived three days after she left.",
    "The printer on the second floor is out of paper.",
    "Dogs are not allowed on the beach in July.",
    "Let me know when the package has been delivered.",
    "The soup needs a little more salt and pepper.",
    "They moved to a quiet town near the coast.",
    "The storm knocked down two trees on our street.",
    "Thank you for waiting while I check your account.",
    "The bus was late again this morning.",
    "He plays the piano every evening before dinner.",
    "The library lends books, films and board games.",
    "Water the plants twice a week during the summer.",
    "Your flight has been delayed by forty minutes.",
    "The cat sleeps all day on the warm windowsill.",
)


@dataclass
class Row:
    voice: Voice
    wer: float
    f0_median: float
    rtf: float
    cpu_rtf: float
    first_audio_ms: float


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word-level edit distance between two texts after normalisation, and the reference's length."""
    ref, hyp = _words(reference), _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1], len(ref)


def median_f0(audio: np.ndarray) -> float:
    """Median F0 (Hz) over voiced frames of 16 kHz audio (WORLD's Harvest, 60-400 Hz)."""
    f0, _ = pyworld.harvest(audio.astype(np.float64), SAMPLE_RATE, f0_floor=60.0, f0_ceil=400.0, frame_period=10.0)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else 0.0


async def speak(tts: PiperTTS, voice: Voice, text: str) -> tuple[np.ndarray, float, float, float]:
    """16 kHz audio, seconds to first chunk, wall and CPU seconds of one synthesis."""
    start, cpu = time.perf_counter(), time.process_time()
    first = 0.0
    chunks: list[bytes] = []
    async for chunk in tts.synthesize(text, voice=voice):
        if not chunks:
            first = time.perf_counter() - start
        chunks.append(chunk)
    wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    pcm = np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.float32) / 32768.0
    return soxr.resample(pcm, tts.sample_rate, SAMPLE_RATE), first, wall, cpu_s


async def measure(tts: PiperTTS, asr: WhisperASR, voices: list[Voice], sentences: tuple[str, ...]) -> list[Row]:
    """Every voice speaks each sentence in turn, so they share the machine's load alike."""
    for voice in voices:
        await tts.load(voice)
    errors = dict.fromkeys(voices, 0)
    firsts: dict[Voice, list[float]] = {voice: [] for voice in voices}
    wall = dict.fromkeys(voices, 0.0)
    cpu = dict.fromkeys(voices, 0.0)
    spoken: dict[Voice, list[np.ndarray]] = {voice: [] for voice in voices}
    words = 0
    for text in sentences:
        for voice in voices:
            audio, first, wall_s, cpu_s = await speak(tts, voice, text)
            firsts[voice].append(first)
            wall[voice] += wall_s
            cpu[voice] += cpu_s
            spoken[voice].append(audio)
            errors[voice] += word_errors(text, (await asr.transcribe(audio)).text)[0]
        words += len(_words(text))
    rows = []
    for voice in voices:
        seconds = sum(audio.size for audio in spoken[voice]) / SAMPLE_RATE
        f0 = median_f0(np.concatenate(spoken[voice]))
        first_ms = 1000 * statistics.median(firsts[voice])
        rows.append(Row(voice, 100 * errors[voice] / words, f0, wall[voice] / seconds, cpu[voice] / seconds, first_ms))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voices", default=",".join(v.name for v in VOICES))
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    args = parser.parse_args()
    chosen = [v for v in VOICES if v.name in args.voices.split(",")]
    tts = PiperTTS()
    asr = WhisperASR(language="en")
    await asr.load()
    print(f"{args.sentences} sentences; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        "| Voice | Gender | F0 x / formants x / pace x | WER % | Median F0 (Hz) | RTF (wall) | CPU-RTF "
        "| First audio (median ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    try:
        for row in await measure(tts, asr, chosen, SENTENCES[: args.sentences]):
            voice = row.voice
            print(
                f"| {voice.name} | {voice.gender} | {voice.pitch} / {voice.formant} / {voice.pace} | {row.wer:.1f} "
                f"| {row.f0_median:.0f} | {row.rtf:.3f} | {row.cpu_rtf:.3f} | {row.first_audio_ms:.0f} |"
            )
    finally:
        await tts.aclose()
        await asr.aclose()


if __name__ == "__main__":
    asyncio.run(main())
