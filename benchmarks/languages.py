"""Spoken-language detection (Whisper base) on real speech, and what detecting costs per turn.

The set: every third utterance of at least 0.5 s of the real speech corpus per language (the English
telephony voice, Allison, likewise; the other English speakers whole): Asterisk telephony prompts
(en/fr/it), France Inter news (fr), CMU/LibriVox/TIMIT/pyannote/ALSA/Moonshine/JFK recordings (en).
Each is transcribed twice by WhisperASR as the server runs it: with the language pinned to the truth
and with detection (the server's default); the table gives the detected language (after the 75 %
fallback to English) and the median transcription time of both.

Run: .venv/bin/python -m benchmarks.languages
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter, defaultdict

from openevi.speech.asr.whisper import WhisperASR
from tests.support.real_speech import Utterance, utterances


def sample() -> list[Utterance]:
    chosen: list[Utterance] = []
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in utterances(min_seconds=0.5):
        by_speaker[utt.speaker].append(utt)
    for items in by_speaker.values():
        items.sort(key=lambda u: u.id)
        chosen.extend(items[::3] if len(items) > 20 else items)
    return chosen


async def main() -> None:
    detecting = WhisperASR(language=None)
    pinned = {code: WhisperASR(language=code) for code in ("en", "fr", "it")}
    for asr in (detecting, *pinned.values()):
        await asr.load()
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    seconds: dict[str, list[float]] = defaultdict(list)
    try:
        for utt in sample():
            audio = utt.load()
            start = time.perf_counter()
            heard = await detecting.transcribe(audio)
            seconds["detect"].append(time.perf_counter() - start)
            start = time.perf_counter()
            await pinned[utt.language].transcribe(audio)
            seconds["pinned"].append(time.perf_counter() - start)
            outcomes[utt.language][heard.language or "?"] += 1
    finally:
        for asr in (detecting, *pinned.values()):
            await asr.aclose()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| spoken | utterances | detected as |")
    print("|---|---|---|")
    for code, counts in outcomes.items():
        detected = ", ".join(f"{lang} {n}" for lang, n in counts.most_common())
        print(f"| {code} | {sum(counts.values())} | {detected} |")
    pinned_ms = 1000 * statistics.median(seconds["pinned"])
    detect_ms = 1000 * statistics.median(seconds["detect"])
    print(f"\nmedian transcription: pinned {pinned_ms:.0f} ms, detecting {detect_ms:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
