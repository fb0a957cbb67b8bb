"""Reply delivery styles measured with the project's own prosody scorer (as assistant_prosody scores replies).

Each voice speaks a fixed set of reply sentences in every style (openevi/speech/tts/style.py), as a
first sentence (Piper's controls only, slowing capped) and as a later one (all of it, with the WORLD
pitch level and range);
the acoustic scorer (voice only, no words) gives arousal and valence, reported as the change from the
neutral rendering (standard units). First audio: median time to the first chunk of a first sentence,
neutral vs styled, interleaved.

Run: .venv/bin/python -m benchmarks.reply_style [--voices Joe,Nora,Hugo]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics

import numpy as np

from benchmarks.voices import speak
from openevi.speech.prosody.acoustic import analyze
from openevi.speech.tts.piper import PiperTTS
from openevi.speech.tts.style import STYLES, styled
from openevi.speech.voices import VOICES

SENTENCES = (
    "I am here with you, and we will work through this together.",
    "That sounds like a lot to carry, so let us take it one step at a time.",
    "Your order shipped on Monday and should arrive on Thursday.",
    "The meeting has been moved to three o'clock on Friday afternoon.",
    "You can change the setting in the menu at the top of the page.",
    "Let me check the weather for the weekend before you decide.",
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voices", default="Joe,Nora,Hugo")
    args = parser.parse_args()
    voices = [v for v in VOICES if v.name in args.voices.split(",")]
    tts = PiperTTS()
    for voice in voices:
        await tts.load(voice)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {len(SENTENCES)} sentences per cell")
    print("| voice | style | first sentence: Δ arousal / Δ valence | later sentences: Δ arousal / Δ valence "
          "| first audio: neutral → styled (median ms) |")  # fmt: skip
    print("|---|---|---|---|---|")
    try:
        for voice in voices:
            vad: dict[tuple[str, bool], list[tuple[float, float]]] = {}
            firsts: dict[str, list[float]] = {}
            for text in SENTENCES:
                for name, style in STYLES.items():
                    for later in (False, True):
                        audio, first, _, _ = await speak(tts, styled(voice, style, first=not later), text)
                        v, a, _ = analyze(audio).vad
                        vad.setdefault((name, later), []).append((a, v))
                        if not later:
                            firsts.setdefault(name, []).append(first)
            for name in STYLES:
                if name == "neutral":
                    continue
                cells = []
                for later in (False, True):
                    delta = np.mean(np.array(vad[(name, later)]) - np.array(vad[("neutral", later)]), axis=0)
                    cells.append(f"{delta[0]:+.2f} / {delta[1]:+.2f}")
                neutral_ms = 1000 * statistics.median(firsts["neutral"])
                styled_ms = 1000 * statistics.median(firsts[name])
                print(f"| {voice.name} | {name} | {cells[0]} | {cells[1]} | {neutral_ms:.0f} → {styled_ms:.0f} |")
    finally:
        await tts.aclose()


if __name__ == "__main__":
    asyncio.run(main())
