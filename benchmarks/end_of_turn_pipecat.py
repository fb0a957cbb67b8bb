"""Pipecat 1.14's side of benchmarks/end_of_turn.py: Smart Turn run its default way.

Run by that benchmark with a separate interpreter that has `pipecat-ai==1.14.0` installed
(`--pipecat-python`); openevi is not imported here, nor pipecat into openevi's environment.

What pipecat does with `LocalSmartTurnAnalyzerV3` behind `TurnAnalyzerUserTurnStopStrategy`:
`SileroVADAnalyzer(params=VADParams(stop_secs=0.2))` watches 20 ms chunks; when it reports the user
stopped (0.2 s of quiet), the analyzer runs the model on the turn's audio; COMPLETE ends the turn,
otherwise the turn ends after the analyzer's own `stop_secs` (3 s) of silence. The turn end is taken
as soon as the analyzer says COMPLETE (the strategy's `wait_for_transcript=False` mode, i.e. no
speech-to-text wait, like openevi's side). Time is the audio's own: the analyzer's timestamps
(`time.monotonic` inside pipecat's smart-turn module) follow the chunks, and each model check adds
its measured compute time.

Input (stdin): JSON list of {"name", "wav"} (16 kHz mono 16-bit). Output (stdout): JSON list of
{"name", "turn_ends_ms": [...], "stops_ms": [...], "checks_ms": [...]}, where stops_ms[i] is when the VAD
reported the stop that turn i's end follows (where pipecat's speech-to-text gets the segment).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import types
import wave

import numpy as np
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn import base_smart_turn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

RATE = 16_000
CHUNK_MS = 20
CHUNK = RATE * CHUNK_MS // 1000


class AudioClock:
    """Stands in for the `time` module inside pipecat's smart-turn code: monotonic() is audio time."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def module(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(monotonic=lambda: self.now_s, perf_counter=time.perf_counter, time=time.time)


async def run_clip(path: str, clock: AudioClock, analyzer: LocalSmartTurnAnalyzerV3) -> dict[str, object]:
    with wave.open(path, "rb") as w:
        pcm = w.readframes(w.getnframes())
    samples = np.frombuffer(pcm, dtype=np.int16)
    vad = SileroVADAnalyzer(sample_rate=RATE, params=VADParams(stop_secs=0.2))
    vad.set_sample_rate(RATE)
    analyzer.clear()
    speaking = False
    stopped_ms = 0.0
    ends: list[float] = []
    stops: list[float] = []
    checks: list[float] = []
    for index in range(0, samples.size - CHUNK + 1, CHUNK):
        chunk = samples[index : index + CHUNK].tobytes()
        clock.now_s = (index + CHUNK) / RATE
        now_ms = clock.now_s * 1000
        state = await vad.analyze_audio(chunk)
        if state == VADState.SPEAKING and not speaking:
            speaking = True
            analyzer.update_vad_start_secs(vad.params.start_secs)
        elif state == VADState.QUIET and speaking:
            speaking = False
            stopped_ms = now_ms
            started = time.perf_counter()
            verdict, _ = await analyzer.analyze_end_of_turn()
            took = (time.perf_counter() - started) * 1000
            checks.append(took)
            if verdict == EndOfTurnState.COMPLETE:
                ends.append(now_ms + took)
                stops.append(stopped_ms)
        if analyzer.append_audio(chunk, speaking) == EndOfTurnState.COMPLETE:
            ends.append(now_ms)  # the analyzer's stop_secs ran out
            stops.append(stopped_ms)
    await vad.cleanup()
    return {"turn_ends_ms": ends, "stops_ms": stops, "checks_ms": checks}


async def main() -> None:
    clips = json.load(sys.stdin)
    clock = AudioClock()
    base_smart_turn.time = clock.module()  # type: ignore[assignment]
    analyzer = LocalSmartTurnAnalyzerV3(sample_rate=RATE)
    analyzer.set_sample_rate(RATE)
    results = []
    for clip in clips:
        results.append({"name": clip["name"], **await run_clip(clip["wav"], clock, analyzer)})
    await analyzer.cleanup()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    from loguru import logger

    logger.remove()
    asyncio.run(main())
