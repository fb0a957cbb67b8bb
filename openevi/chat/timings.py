"""Per-turn stage timings (end of speech → words → model → first audio), logged for benchmarks."""

from __future__ import annotations

import json
import logging
import time

log = logging.getLogger("openevi.metrics")

# The stage every other one is measured from: the end of the user's speech, or a typed message.
ORIGINS = ("speech_end", "user_input")


class TurnTimings:
    """Marks of one user→assistant exchange; the first mark of each stage wins."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.reported = False

    def mark(self, stage: str) -> None:
        self.marks.setdefault(stage, time.monotonic())

    def forget(self, stage: str) -> None:
        self.marks.pop(stage, None)

    def report(self, chat_id: str) -> dict[str, float] | None:
        """Log the stages in ms after the origin (once per turn); None without an origin."""
        origin = next((self.marks[o] for o in ORIGINS if o in self.marks), None)
        if origin is None or self.reported:
            return None
        self.reported = True
        stages = {name: round((at - origin) * 1000, 1) for name, at in sorted(self.marks.items(), key=lambda x: x[1])}
        log.info("turn-timings %s", json.dumps({"chat_id": chat_id, "stages": stages}))
        return stages
