"""The ear of a chat: audio_input → decode → VAD → turn detection → transcript + emotion measures.

Work on each audio frame is small and synchronous (decode, resample, one VAD step). Transcription
starts speculatively the moment the user falls silent, so by the time the end-of-turn silence has
passed the words are usually ready; if the user speaks again the speculation is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from openevi.audio.decode import AudioDecoder, DecodeError
from openevi.chat.clock import Clock, SystemClock
from openevi.chat.config import TurnDetection
from openevi.chat.tasks import TaskScope
from openevi.chat.turn_detection import (
    EndOfTurnRule,
    SilenceStarted,
    SpeechOngoing,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
)
from openevi.speech.asr.base import SpeechRecognizer, Transcript
from openevi.speech.prosody.base import ProsodyModel
from openevi.speech.vad.base import VoiceActivityDetector

log = logging.getLogger("openevi.chat.listener")

# Interim transcripts (verbose_transcription) are refreshed at most this often while the user speaks.
INTERIM_EVERY_MS = 1000
# VAD steps run between turns of the event loop in groups this large (~1 s of audio at 32 ms frames).
_YIELD_EVERY_FRAMES = 32

# Audio that stops arriving is silence (a muted or push-to-talk client, Hume's SDK muting its
# microphone while the assistant plays). Once the stream is this far behind its own real-time playout,
# the missing time is counted as quiet frames, so a turn ends on the clock, not only on audio.
STALL_S = 0.25


# Words that acknowledge without taking the floor (OPENEVI_BACKCHANNEL_TOLERANCE).
BACKCHANNEL_WORDS = frozenset(
    {"mm", "mmm", "mhm", "hm", "hmm", "uh", "huh", "mm-hmm", "uh-huh", "yeah", "yep", "yes", "yup", "ok"}
    | {"okay", "right", "sure", "i_see", "got_it", "aha", "ah", "oh"}
)


def is_backchannel(text: str) -> bool:
    """Whether a short utterance only acknowledges ("mm-hmm", "yeah, right", "okay", "I see")."""
    joined = re.sub(r"\bi see\b", "i_see", re.sub(r"\bgot it\b", "got_it", text.lower()))
    words = [w.strip("-'") for w in re.split(r"[^a-z_'-]+", joined) if w.strip("-'")]
    return 0 < len(words) <= 3 and all(w in BACKCHANNEL_WORDS for w in words)


@dataclass(frozen=True)
class HeardTurn:
    """A finished user turn."""

    text: str
    begin_ms: int
    end_ms: int
    emotions: dict[str, float] | None
    language: str | None
    interrupting: bool = False
    """The user spoke long enough (min_interruption_ms) to take the floor during this turn."""


class ListenerEvents(Protocol):
    """What the listener tells the engine, in the order it happens. Times are ms of the user's audio
    since the listener started."""

    def speech_started(self) -> None:
        """The user began to speak (a new turn)."""

    async def user_speaking(self, span_ms: int) -> None:
        """The user has spoken for min_interruption_ms in this turn: enough to take the floor."""

    async def heard_early(self, heard: HeardTurn) -> None:
        """Words ready inside the end-of-turn silence, before the end of the turn is certain."""

    async def speech_resumed(self) -> None:
        """The user spoke again inside the silence window: what was heard early is not the turn."""

    def turn_closing(self) -> None:
        """The user finished a turn; its words are being transcribed (`heard` or `heard_nothing` follows)."""

    async def heard(self, heard: HeardTurn) -> None:
        """The final words of the closing turn."""

    def heard_nothing(self) -> None:
        """The closing turn held no words (a cough, a click) or could not be transcribed."""

    def interim(self, text: str, begin_ms: int, end_ms: int) -> None:
        """An interim transcript of the turn so far (verbose_transcription)."""

    def error(self, message: str) -> None:
        """The audio could not be used (undecodable, transcription failed)."""

    def audio(self, samples: np.ndarray, at_ms: int) -> None:
        """The user's audio, for the chat's recording."""

    def mark(self, stage: str) -> None:
        """A latency mark of the turn (speech_start, speech_end, asr_done, turn_end …)."""


@dataclass
class _Speculation:
    audio_samples: int
    transcript: asyncio.Task[Transcript]
    emotions: asyncio.Task[dict[str, float]] | None


class Listener:
    """Turns a chat's audio_input stream into user turns, interruptions and interim transcripts."""

    def __init__(
        self,
        *,
        vad: VoiceActivityDetector,
        asr: SpeechRecognizer,
        prosody: ProsodyModel | None,
        turn_detection: TurnDetection,
        min_interruption_ms: int,
        verbose: bool,
        events: ListenerEvents,
        speculate: bool = True,
        tasks: TaskScope | None = None,
        clock: Clock | None = None,
        end_of_turn: EndOfTurnRule | None = None,
    ) -> None:
        """`speculate`: tell `heard_early` (words before the end of the turn is certain). `tasks`: the
        chat's task scope, which then owns (and at the end cancels) the listener's tasks; without one
        the listener has its own, closed by `aclose`. `clock`: where the time a silent (stopped)
        stream is measured on comes from. `end_of_turn`: a trained model judges each silence
        (OPENEVI_TURN_DETECTOR=smart-turn); None: silence alone."""
        self.sample_rate = vad.sample_rate
        self._vad = vad.stream()
        self._frame = vad.frame_samples
        self._asr = asr
        self._prosody = prosody
        self._detector = TurnDetector(
            threshold=turn_detection.speech_detection_threshold,
            prefix_padding_ms=turn_detection.prefix_padding_ms,
            end_of_turn_silence_ms=turn_detection.end_of_turn_silence_ms,
            sample_rate=self.sample_rate,
            frame_samples=self._frame,
            rule=end_of_turn,
        )
        self._min_interruption_ms = min_interruption_ms
        self._verbose = verbose
        self._events = events
        self._speculate_words = speculate
        self._decoder: AudioDecoder | None = None
        self._pending = np.zeros(0, dtype=np.float32)
        self._speculation: _Speculation | None = None
        self._interim: asyncio.Task[None] | None = None
        self._last_interim_ms = 0.0
        self._turn_frames: list[np.ndarray] = []  # this turn's speech so far, for interim transcripts
        self._samples_in = 0
        self._turn_begin_ms = 0
        self._owns_tasks = tasks is None
        self._tasks = tasks if tasks is not None else TaskScope("listener")
        self._onset_ms = 0.0
        self._interrupting = False
        self._clock: Clock = clock or SystemClock()
        self._frame_s = self._frame / self.sample_rate
        self._due = 0.0  # clock time by which the audio received so far has played, in real time
        self._stalled = False  # the stream stopped: missing time is being counted as silence
        self._feeding = asyncio.Lock()  # frames from the socket and stall silence, one at a time
        self._stall_watch: asyncio.Task[None] | None = None

    def configure_pcm(self, sample_rate: int, channels: int) -> None:
        """session_settings.audio: raw linear16 at this rate (a new decoder from the next chunk on)."""
        self._replace_decoder(AudioDecoder(target_rate=self.sample_rate, pcm_format=(sample_rate, channels)))

    def _replace_decoder(self, decoder: AudioDecoder | None) -> None:
        # The old decoder's demuxer thread is told to stop now (so it ends even if the chat closes
        # before the join below runs), and joined in the background (never on the event loop).
        old, self._decoder = self._decoder, decoder
        if old is not None:
            old.close()
            self._spawn(old.aclose())

    async def push(self, data: bytes) -> None:
        """One audio_input chunk."""
        if self._decoder is None:
            self._decoder = AudioDecoder(target_rate=self.sample_rate, pcm_format=None)
        try:
            samples = await self._decoder.push_async(data)
        except DecodeError as exc:
            self._events.error(str(exc))
            self._replace_decoder(None)  # the next chunk may start a valid stream again
            return
        if samples.size == 0:
            return
        async with self._feeding:
            self._due = max(self._due, self._clock.monotonic()) + samples.size / self.sample_rate
            self._stalled = False
            await self._feed(samples)
        self._watch_for_stall()

    async def _feed(self, samples: np.ndarray) -> None:
        self._events.audio(samples, self._samples_in * 1000 // self.sample_rate)
        self._samples_in += samples.size
        buffered = np.concatenate((self._pending, samples)) if self._pending.size else samples
        whole = buffered.size - buffered.size % self._frame
        for start in range(0, whole, self._frame):
            if start and start % (_YIELD_EVERY_FRAMES * self._frame) == 0:
                await asyncio.sleep(0)  # hostile (issue 19): a long chunk must not hold the loop for its whole VAD
            frame = buffered[start : start + self._frame]
            await self._step(frame, self._vad.probability(frame))
        self._pending = buffered[whole:].copy()

    async def _step(self, frame: np.ndarray, probability: float) -> None:
        events = self._detector.push(frame, probability)
        if self._detector.in_turn:
            self._turn_frames.append(frame)
        for event in events:
            await self._on_event(event)

    def _watch_for_stall(self) -> None:
        """While a turn is open, watch for the stream stopping (see STALL_S)."""
        if self._detector.in_turn and (self._stall_watch is None or self._stall_watch.done()):
            self._stall_watch = self._tasks.spawn(self._fill_stalls(), name="listener-stall")

    async def _fill_stalls(self) -> None:
        quiet = np.zeros(self._frame, dtype=np.float32)
        while self._detector.in_turn:
            # Once stalled, keep counting frame by frame; before, allow the stream STALL_S of jitter.
            late = self._clock.monotonic() - self._due
            allowed = self._frame_s if self._stalled else STALL_S
            if late < allowed:
                await self._clock.sleep(allowed - late)
                continue
            async with self._feeding:
                missing = int((self._clock.monotonic() - self._due) / self._frame_s)
                self._stalled = missing > 0
                for _ in range(missing):
                    if not self._detector.in_turn:
                        break
                    self._samples_in += self._frame
                    self._due += self._frame_s
                    await self._step(quiet, 0.0)
            if not self._stalled:
                await self._clock.sleep(self._frame_s)  # rounding left less than a frame missing

    async def _on_event(self, event: object) -> None:
        match event:
            case SpeechStarted(at_ms=at_ms):
                self._events.mark("speech_start")
                self._events.speech_started()
                self._last_interim_ms = 0.0
                self._turn_frames = []
                self._turn_begin_ms = int(at_ms)
                self._onset_ms = at_ms
                self._interrupting = False
            case SpeechOngoing(speech_ms=speech_ms, at_ms=at_ms):
                # "How long the user must speak": counted from the onset across short inter-word
                # gaps, with at least half of that span voiced, so that clicks far apart do not add up.
                span_ms = at_ms + self._detector.frame_ms - self._onset_ms
                if span_ms >= self._min_interruption_ms and speech_ms >= self._min_interruption_ms / 2:
                    self._interrupting = True
                    await self._events.user_speaking(int(span_ms))
                if self._verbose and speech_ms - self._last_interim_ms >= INTERIM_EVERY_MS:
                    self._last_interim_ms = speech_ms
                    self._start_interim()
            case SilenceStarted(at_ms=at_ms, audio=audio):
                self._events.mark("speech_end")
                self._speculate(audio, begin_ms=self._turn_begin_ms, end_ms=int(at_ms))
                self._judge_silence(event)
            case SpeechResumed():
                self._events.mark("speech_resumed")
                self._cancel_speculation()
                await self._events.speech_resumed()
            case TurnEnded(audio=audio, begin_ms=begin_ms, end_ms=end_ms):
                self._events.mark("turn_end")
                self._events.turn_closing()
                # Finishing waits for the recognizer: let frames keep flowing meanwhile (barge-in).
                self._tasks.spawn(
                    self._finish_turn(audio, int(begin_ms), int(end_ms), interrupting=self._interrupting),
                    name="listener-finish-turn",
                )

    def _judge_silence(self, silence: SilenceStarted) -> None:
        """The end-of-turn model judges this silence off the event loop; its verdict may end the
        turn early (complete) or hold it open longer (unfinished). With `confirm_by_words`, the
        speculative transcript started for this silence then confirms an unsure "complete". Events
        are handled like the VAD's (under the same lock as frames, so a verdict never lands between
        two frames of one chunk), and a TurnEnded from here finishes the turn the usual way."""
        rule = self._detector.rule
        if rule is None:
            return
        spec = self._speculation if rule.confirm_by_words else None

        async def judge() -> None:
            try:
                probability = await rule.model.probability(silence.audio)
            except Exception:
                log.exception("end-of-turn model failed; the silence window applies")
                return
            async with self._feeding:
                for event in self._detector.verdict(silence.at_ms, probability):
                    await self._on_event(event)
            if spec is None:
                return
            await asyncio.wait({spec.transcript})
            if spec.transcript.cancelled() or spec.transcript.exception() is not None:
                return  # speech resumed, or no words: the silence window applies
            async with self._feeding:
                for event in self._detector.heard(silence.at_ms, spec.transcript.result().text):
                    await self._on_event(event)

        self._tasks.spawn(judge(), name="listener-end-of-turn")

    def _speculate(self, audio: np.ndarray, *, begin_ms: int, end_ms: int) -> None:
        """Start transcribing (and scoring) what was said so far, before the turn is certain."""
        self._cancel_speculation()
        if audio.size == 0:
            return
        # A speculation's failure is reported when the turn uses it (see _transcribed, _retrieve).
        transcript = self._tasks.spawn(self._asr.transcribe(audio), name="listener-speculate", log_failure=False)
        transcript.add_done_callback(self._transcribed)
        emotions = (
            self._tasks.spawn(self._prosody.score(audio), name="listener-speculate-prosody", log_failure=False)
            if self._prosody
            else None
        )
        if emotions is not None:
            emotions.add_done_callback(_retrieve)
        spec = _Speculation(audio.size, transcript, emotions)
        self._speculation = spec
        if self._speculate_words:
            self._tasks.spawn(self._early(spec, begin_ms, end_ms), name="listener-early")

    async def _early(self, spec: _Speculation, begin_ms: int, end_ms: int) -> None:
        """The words are ready before the end of the turn is certain: the engine may start answering."""
        try:
            transcript = await spec.transcript
            emotions = await spec.emotions if spec.emotions is not None else None
        except (asyncio.CancelledError, Exception):
            return
        if self._speculation is spec and transcript.text.strip():
            await self._events.heard_early(
                HeardTurn(transcript.text.strip(), begin_ms, end_ms, emotions, transcript.language)
            )

    def _cancel_speculation(self) -> None:
        spec, self._speculation = self._speculation, None
        if spec is not None:
            spec.transcript.cancel()
            if spec.emotions is not None:
                spec.emotions.cancel()

    def _start_interim(self) -> None:
        if self._interim is not None and not self._interim.done():
            return  # one interim transcription at a time; skip rather than queue
        if not self._turn_frames:
            return
        audio = np.concatenate(self._turn_frames)
        begin_ms = self._turn_begin_ms

        async def run() -> None:
            result = await self._asr.transcribe(audio)
            if result.text.strip():
                self._events.interim(result.text.strip(), begin_ms, begin_ms + audio.size * 1000 // self.sample_rate)

        self._interim = self._tasks.spawn(run(), name="listener-interim", log_failure=False)
        self._interim.add_done_callback(_retrieve)

    async def _finish_turn(self, audio: np.ndarray, begin_ms: int, end_ms: int, *, interrupting: bool) -> None:
        heard = False
        try:
            text, emotions, language = await self._transcribe_turn(audio)
            if text:  # else a cough or a click: VAD said speech, the recognizer heard no words
                heard = True
                await self._events.heard(HeardTurn(text, begin_ms, end_ms, emotions, language, interrupting))
        finally:
            if not heard:
                self._events.heard_nothing()

    async def _transcribe_turn(self, audio: np.ndarray) -> tuple[str, dict[str, float] | None, str | None]:
        """The turn's words, emotion scores and language ("" when it failed, after saying so)."""
        spec, self._speculation = self._speculation, None
        if self._interim is not None:
            self._interim.cancel()
        try:
            if spec is not None and spec.audio_samples == audio.size:  # the same audio: reuse the speculation
                transcript = await spec.transcript
                emotions = await spec.emotions if spec.emotions is not None else None
            else:
                if spec is not None:
                    spec.transcript.cancel()
                emotion_task = (
                    self._tasks.spawn(self._prosody.score(audio), name="listener-prosody", log_failure=False)
                    if self._prosody
                    else None
                )
                if emotion_task is not None:
                    emotion_task.add_done_callback(_retrieve)  # unread if transcription fails
                transcript = await self._asr.transcribe(audio)
                self._events.mark("asr_done")
                emotions = await emotion_task if emotion_task is not None else None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("transcription failed")
            self._events.error(f"transcription failed: {exc}")
            return "", None, None
        return transcript.text.strip(), emotions, transcript.language

    def _transcribed(self, task: asyncio.Task[Transcript]) -> None:
        _retrieve(task)  # a failed speculation is reported (once) when the turn is finished
        if not task.cancelled() and task.exception() is None:
            self._events.mark("asr_done")

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(work, name="listener-decoder-close")

    async def aclose(self) -> None:
        """Stop listening: speculation, interim transcripts and the decoder's thread."""
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            await decoder.aclose()
        self._cancel_speculation()
        if self._interim is not None:
            self._interim.cancel()
        if self._owns_tasks:
            await self._tasks.aclose()
        # Otherwise the chat's scope cancels and awaits them (ChatSession.close, before this).


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's failure as seen (it is reported where its result is used, if at all)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("background speech task failed: %s", task.exception())
