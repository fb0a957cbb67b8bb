"""Per-turn stage timings (end of speech → words → model → first audio), logged and measured."""

from __future__ import annotations

import json
import logging
import time

from openevi import metrics, tracing

log = logging.getLogger("openevi.metrics")

# The stage every other one is measured from: the end of the user's speech, or a typed message.
ORIGINS = ("speech_end", "user_input")

# Each metric stage (openevi_turn_stage_seconds) as (from mark, to mark); the first "from" mark present
# counts. "asr_done"/"user_input": the moment the user's words were known.
_STAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "end_of_turn": (("speech_end",), "turn_end"),
    "asr": (("speech_end",), "asr_done"),
    "llm_first_token": (("asr_done", "user_input"), "llm_first_token"),
    "tts_first_audio": (("first_piece",), "first_audio"),
    "voice_to_voice": (("speech_end",), "first_audio"),
}


class TurnTimings:
    """Marks of one user→assistant exchange; the first mark of each stage wins."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.reported = False

    def mark(self, stage: str) -> None:
        self.marks.setdefault(stage, time.monotonic())
        if stage == "barge_in" and "speech_start" in self.marks:
            # From the onset of the speech that interrupted to the assistant being silenced.
            metrics.turn_stage("barge_in", self.marks["barge_in"] - self.marks["speech_start"])

    def forget(self, stage: str) -> None:
        self.marks.pop(stage, None)

    def report(self, chat_id: str) -> dict[str, float] | None:
        """Log the stages in ms after the origin and measure them (once per turn); None without an origin."""
        origin = next((self.marks[o] for o in ORIGINS if o in self.marks), None)
        if origin is None or self.reported:
            return None
        self.reported = True
        spans: dict[str, tuple[float, float]] = {}
        for name, (starts, end) in _STAGES.items():
            start = next((s for s in starts if s in self.marks), None)
            if start is not None and end in self.marks:
                metrics.turn_stage(name, self.marks[end] - self.marks[start])
                spans[name] = (self.marks[start], self.marks[end])
        tracing.record_turn(chat_id, self.marks, spans)
        stages = {name: round((at - origin) * 1000, 1) for name, at in sorted(self.marks.items(), key=lambda x: x[1])}
        log.info("turn-timings %s", json.dumps({"chat_id": chat_id, "stages": stages}))
        return stages
