"""What the user has heard the assistant say: the model's context and the stored history keep that.

`assistant_message` goes out when a sentence starts (the wire is unchanged), but the sentence joins
the conversation and is stored as an `AGENT_MESSAGE` only once its audio has been heard (by the
playback's position). When the user barges in, the sentences heard in full are kept, the one being
played is kept up to the words heard so far (stored with `{"interrupted": true}` metadata, ending in
"—" in the model's context), the rest is dropped, and the next model request is told it was cut off
(`Conversation.cut_off`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from openevi.chat.context import Conversation
from openevi.chat.output import ChatOutput
from openevi.chat.ports import Playback
from openevi.schemas.chat_types import EventRole, EventType

CUT_MARK = " —"


@dataclass
class Sentence:
    """One assistant sentence on the playback's timeline (`Playback.sent_s` positions)."""

    text: str
    starts_s: float
    ends_s: float = math.inf  # until all of its audio has been sent
    event_id: str | None = None
    then: list[Callable[[str], None]] = field(default_factory=list)
    """Records that point at this sentence's stored event (its assistant_prosody)."""


class SaidLedger:
    """The sentences sent but not yet known to be heard, in order."""

    def __init__(self, *, conversation: Conversation, output: ChatOutput, playback: Playback) -> None:
        self._conversation = conversation
        self._out = output
        self._playback = playback
        self._pending: list[Sentence] = []

    def begin(self, text: str) -> Sentence:
        """A sentence is about to be spoken (its audio follows)."""
        sentence = Sentence(text, starts_s=self._playback.sent_s)
        self._pending.append(sentence)
        return sentence

    def sent(self, sentence: Sentence) -> None:
        """All of the sentence's audio has been sent (none, if synthesis failed: heard at once)."""
        sentence.ends_s = self._playback.sent_s
        self.settle()

    def after_stored(self, sentence: Sentence, record: Callable[[str], None]) -> None:
        """Run `record(event_id)` once the sentence is stored (at once if it is; never if unheard)."""
        if sentence.event_id is not None:
            record(sentence.event_id)
        else:
            sentence.then.append(record)

    def settle(self) -> None:
        """Keep every sentence the listener has heard to its end."""
        played = self._playback.played_s()
        while self._pending and self._pending[0].ends_s <= played + 1e-6:
            self._keep(self._pending.pop(0), None)

    def keep_all(self) -> None:
        """Everything sent counts as said (words before a tool call; the chat's goodbye)."""
        while self._pending:
            self._keep(self._pending.pop(0), None)

    def cut(self, played_s: float, sent_s: float, *, interrupted: bool) -> None:
        """Playback stopped at `played_s` (of `sent_s` sent): keep what was heard, drop the rest. When
        the user `interrupted` (not a pause or a replaced answer), the next request is told."""
        heard, _ = self._split(played_s, sent_s)
        if heard is None:
            return
        self._keep(*heard)
        self._conversation.cut_off = interrupted

    def resume_point(self, played_s: float, sent_s: float) -> list[str]:
        """Playback stopped at `played_s` and is to go on (the barge-in held no words): keep what was
        heard; returns the words not heard, to be spoken again (the rest of the sentence, the next ones)."""
        heard, unheard = self._split(played_s, sent_s)
        if heard is not None:
            self._keep(*heard, interrupted=False)
        return unheard

    def _split(self, played_s: float, sent_s: float) -> tuple[tuple[Sentence, str] | None, list[str]]:
        """Keep the sentences heard in full; the one being played splits into its heard words (with
        the sentence, or None when nothing is pending) and the texts not heard."""
        while self._pending and self._pending[0].ends_s <= played_s + 1e-6:
            self._keep(self._pending.pop(0), None)
        if not self._pending:
            return None, []
        current, later = self._pending[0], self._pending[1:]
        self._pending = []
        words = current.text.split()
        # A sentence still being synthesized has the length of what was sent of it so far.
        span = min(current.ends_s, sent_s) - current.starts_s
        heard = max(0.0, played_s - current.starts_s)
        # Words are spread evenly over the sentence's audio: a word counts once its share has played.
        count = min(len(words), int(len(words) * heard / span)) if span > 0 else 0
        rest = " ".join(words[count:])
        return (current, " ".join(words[:count])), [t for t in [rest, *(s.text for s in later)] if t]

    def _keep(self, sentence: Sentence, cut_text: str | None, *, interrupted: bool = True) -> None:
        """Store and add to the context the sentence (or only `cut_text`, its words heard)."""
        if cut_text == "":
            return
        text = sentence.text if cut_text is None else cut_text
        marked = cut_text is not None and interrupted
        sentence.event_id = self._out.record(
            EventRole.AGENT,
            EventType.AGENT_MESSAGE,
            text,
            metadata=json.dumps({"interrupted": True}) if marked else None,
        )
        self._conversation.add_assistant(text + CUT_MARK if marked else text)
        for record in sentence.then:
            record(sentence.event_id)
        sentence.then.clear()
