"""One assistant turn: model text → speakable pieces → assistant_message + audio_output, with tools.

The model keeps writing while earlier pieces are being synthesized: a producer (model + chunker)
feeds a queue that a speaker drains in order. Cancelling the turn's task stops both at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import numpy as np
import soxr

from openevi.audio.recorder import ChatRecorder
from openevi.chat.chunker import SentenceChunker
from openevi.chat.clock import Clock
from openevi.chat.context import Conversation
from openevi.chat.output import ChatOutput
from openevi.chat.ports import PhoneCaller, Playback
from openevi.chat.said import SaidLedger, Sentence
from openevi.chat.tasks import TaskScope
from openevi.chat.timings import TurnTimings
from openevi.chat.tools import HANG_UP, WEB_SEARCH, ToolSet, web_search
from openevi.llm.base import GenerationRequest, LanguageModel, LLMError, Message, TextDelta, ToolCall
from openevi.periodic import cancel_and_wait
from openevi.schemas import messages as msg
from openevi.schemas import protocol as p
from openevi.schemas.chat_types import EventRole, EventType
from openevi.speech.prosody.base import ProsodyModel
from openevi.speech.tts.base import TextToSpeech, TTSError
from openevi.speech.tts.style import choose_style, styled
from openevi.speech.voices import Voice
from openevi.store.db import now_ms
from openevi.webhooks import outbox

log = logging.getLogger("openevi.chat.turns")

# Audio is sent in pieces of this length so that barge-in can stop playback between them.
AUDIO_PIECE_MS = 250
MAX_TOOL_ROUNDS = 8
# assistant_end waits at most this long for the emotion scores of the turn's last sentence.
MEASURE_WAIT_S = 2.0


_NO_MORE_TOOLS = "Answer the user now in words, using the tool results you already have. Do not call tools."


@dataclass
class TurnOutcome:
    hang_up: bool = False


@dataclass(frozen=True)
class Deadlines:
    """How long a turn waits for its providers and clients (seconds)."""

    llm_s: float
    tool_response_s: float


@dataclass(frozen=True)
class ChatIdentity:
    """Which chat a turn belongs to: for logs and the `tool_call` webhook's payload."""

    chat_id: str
    chat_group_id: str
    config_id: str | None
    webhooks: tuple[dict[str, object], ...] = ()
    caller: PhoneCaller | None = None


@dataclass(frozen=True)
class TurnContext:
    """Everything one assistant turn may use, fixed when the turn starts (a new voice or key applies
    from the next turn on); the turn never sees the session."""

    llm: Callable[[], LanguageModel]
    temperature: float | None
    tts: TextToSpeech
    voice: Voice
    conversation: Conversation
    tools: ToolSet
    outbound: ChatOutput
    said: SaidLedger
    playback: Playback
    clock: Clock
    deadlines: Deadlines
    tasks: TaskScope
    timings: TurnTimings
    chat: ChatIdentity
    prosody: ProsodyModel | None = None
    recorder: ChatRecorder | None = None
    web_search_url: str | None = None
    pending_tools: dict[str, asyncio.Future[p.ToolResponse | p.ToolError]] = field(default_factory=dict)
    """Function tool calls waiting for the client's tool_response (shared with the chat's inbound)."""
    reply_style: bool = False
    """Each sentence's delivery follows the user's measured emotion (OPENEVI_REPLY_STYLE, issue 17)."""

    def voice_for(self, sentence: str, *, first: bool) -> Voice:
        """The voice for one reply sentence: `voice`, in a delivery style that follows the user.

        A reply's first sentence gets the cheap part only: first audio waits for it (speech/tts/style.py)."""
        if not self.reply_style:
            return self.voice
        return styled(self.voice, choose_style(self.conversation.user_emotions, sentence), first=first)


class AssistantTurn:
    """Generates (or speaks given text) and streams it to the chat's sockets."""

    def __init__(
        self,
        ctx: TurnContext,
        *,
        speak: str | None,
        instruction: str | None,
        pending_user: Message | None = None,
        hold: asyncio.Event | None = None,
        from_text: bool | None = None,
    ) -> None:
        """`from_text`: how its assistant_messages are flagged (default: whether `speak` is given, as
        for an assistant_input)."""
        self.ctx = ctx
        self.speak_text = speak
        self.from_text = speak is not None if from_text is None else from_text
        self.instruction = instruction
        # A speculative turn: generated for a user message not yet confirmed, and silent until `hold`
        # is set (the end of the user's turn is confirmed); cancelled if the user speaks on.
        self.pending_user = pending_user
        self.hold = hold
        self.started_speaking = False
        self.spoken: list[str] = []
        self._pieces: asyncio.Queue[str | None] = asyncio.Queue()
        self._measures: list[asyncio.Task[None]] = []
        self.outcome = TurnOutcome()
        self._speaker: asyncio.Task[None] | None = None
        self._go_on = asyncio.Event()  # cleared while a barge-in is being checked for words
        self._go_on.set()
        self._set_aside: list[str | None] = []

    async def run(self) -> TurnOutcome:
        # The speaker's failure surfaces here (awaited below), so the chat's scope need not log it.
        speaker = self._speaker = self.ctx.tasks.spawn(
            self._speak_pieces(), name=f"speaker-{self.ctx.chat.chat_id}", log_failure=False
        )
        try:
            if self.speak_text is not None:
                chunker = SentenceChunker(first_clause_words=10_000)
                for piece in [*chunker.push(self.speak_text + " "), *chunker.flush()]:
                    self._pieces.put_nowait(piece)
            else:
                await self._generate()
            self._pieces.put_nowait(None)
            await speaker
        finally:
            if not speaker.done():
                await cancel_and_wait(speaker)
            elif not speaker.cancelled() and (failure := speaker.exception()) is not None:
                # Read here, or the speaker's error would go unseen when the turn ends another way.
                log.error("chat %s: speaking failed", self.ctx.chat.chat_id, exc_info=failure)
        # Every message of the turn (the last sentence's assistant_prosody too) comes before its end.
        if self._measures:
            await asyncio.wait(self._measures, timeout=MEASURE_WAIT_S)
        self.ctx.outbound.emit(msg.AssistantEnd())
        return self.outcome

    # --- generation -------------------------------------------------------------------------

    async def _generate(self) -> None:
        for _ in range(MAX_TOOL_ROUNDS):
            if not await self._generate_round(offer_tools=True):
                return
        # The loop guard tripped: the model keeps calling tools. It still answers, without tools.
        log.warning(
            "chat %s: %d tool rounds in one turn; answering without tools",
            self.ctx.chat.chat_id,
            MAX_TOOL_ROUNDS,
        )
        spoke = len(self.spoken) + self._pieces.qsize()
        await self._generate_round(offer_tools=False)
        await self._drain_pieces()
        if len(self.spoken) == spoke:
            out = self.ctx.outbound
            text = "the language model kept calling tools without answering"
            out.emit_error(msg.E_LANGUAGE_MODEL, f"Language model error (tool_loop): {text}")
            out.record_error(msg.E_LANGUAGE_MODEL, text)

    async def _generate_round(self, *, offer_tools: bool) -> bool:
        """One model request; True when it called tools and the model should go on."""
        s = self.ctx
        chunker = SentenceChunker()
        calls: list[ToolCall] = []
        messages = s.conversation.messages(extra_system=self.instruction if offer_tools else _NO_MORE_TOOLS)
        if self.pending_user is not None and not (self.hold is not None and self.hold.is_set()):
            messages.append(self.pending_user)
        request = GenerationRequest(
            messages=messages,
            tools=s.tools.specs() if offer_tools else [],
            temperature=s.temperature,
            custom_session_id=s.outbound.custom_session_id,
        )
        try:
            async with asyncio.timeout(s.deadlines.llm_s):
                async for event in s.llm().stream(request):
                    if isinstance(event, TextDelta):
                        s.timings.mark("llm_first_token")
                        for piece in chunker.push(event.text):
                            self._pieces.put_nowait(piece)
                    else:
                        calls.append(event)
        except (LLMError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, LLMError) else "timeout"
            text = str(exc) or "the language model did not answer in time"
            s.outbound.emit_error(msg.E_LANGUAGE_MODEL, f"Language model error ({code}): {text}")
            s.outbound.record_error(msg.E_LANGUAGE_MODEL, text)
            for piece in chunker.flush():
                self._pieces.put_nowait(piece)
            return False
        for piece in chunker.flush():
            self._pieces.put_nowait(piece)
        if not calls or not offer_tools:
            return False
        if self.hold is not None:
            # A speculative answer: tools have side effects (hang_up!), so nothing runs and no
            # tool_call is sent before the user's turn is confirmed (and its user_message sent).
            await self.hold.wait()
        # Tool calls come after the words said before them.
        await self._drain_pieces()
        return await self._run_tools(calls)

    async def _drain_pieces(self) -> None:
        """Wait until every piece queued so far has been spoken (or the speaker has failed)."""
        assert self._speaker is not None
        joined = asyncio.ensure_future(self._pieces.join())
        try:
            # A speaker that died would never take the rest of the queue: its failure ends the turn.
            await asyncio.wait({joined, self._speaker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            joined.cancel()
        if self._speaker.done():  # before the turn's end it can only have failed: nothing more is said
            self._speaker.result()  # raises the speaker's error

    async def _run_tools(self, calls: list[ToolCall]) -> bool:
        """Run one round of tool calls; True when the model should continue."""
        s = self.ctx
        s.said.keep_all()  # the words before the calls: sent, and heard while the tools run
        s.conversation.add_tool_calls(calls)
        try:
            for call in calls:
                kind = s.tools.kind(call.name)
                if kind is None:
                    s.conversation.add_tool_result(call, f"Error: there is no tool named {call.name}.")
                    continue
                s.outbound.record(
                    EventRole.AGENT,
                    EventType.FUNCTION_CALL,
                    call.arguments,
                    metadata=json.dumps(
                        {"tool_call_id": call.id, "name": call.name, "parameters": call.arguments, "tool_type": kind}
                    ),
                )
                self._enqueue_tool_webhook(call, kind)
                if kind == "builtin":
                    content = await self._run_builtin(call)
                else:
                    content = await self._await_client(call)
                s.outbound.record(
                    EventRole.TOOL,
                    EventType.FUNCTION_CALL_RESPONSE,
                    content,
                    metadata=json.dumps({"tool_call_id": call.id, "name": call.name, "tool_type": kind}),
                )
                s.conversation.add_tool_result(call, content)
        except asyncio.CancelledError:
            # Interrupted (the user spoke, a pause, the chat ended): every call sent to the model needs
            # a result, or OpenAI-style APIs reject each later request of this chat.
            answered = {m.tool_call_id for m in s.conversation.history if m.role == "tool"}
            for call in calls:
                if call.id not in answered:
                    s.conversation.add_tool_result(call, "Cancelled: the user interrupted before the tool answered.")
            raise
        return not self.outcome.hang_up

    def _enqueue_tool_webhook(self, call: ToolCall, kind: str) -> None:
        chat = self.ctx.chat
        caller = chat.caller
        payload = outbox.tool_call_payload(
            chat_id=chat.chat_id,
            chat_group_id=chat.chat_group_id,
            config_id=chat.config_id,
            custom_session_id=self.ctx.outbound.custom_session_id,
            timestamp_ms=now_ms(),
            name=call.name,
            parameters=call.arguments,
            tool_call_id=call.id,
            tool_type="builtin" if kind == "builtin" else "function",
            response_required=kind == "function",
            caller_number=caller.caller_number if caller else None,
            twilio_metadata=caller.twilio_metadata if caller else None,
        )
        self.ctx.outbound.history.notify_tool_call([dict(w) for w in chat.webhooks], payload)

    async def _await_client(self, call: ToolCall) -> str:
        """Send the call to the client and wait for its tool_response or tool_error."""
        s = self.ctx
        future: asyncio.Future[p.ToolResponse | p.ToolError] = asyncio.get_running_loop().create_future()
        s.pending_tools[call.id] = future
        s.outbound.emit(
            msg.ToolCall(
                name=call.name,
                parameters=call.arguments,
                tool_call_id=call.id,
                tool_type="function",
                response_required=True,
            )
        )
        try:
            async with asyncio.timeout(s.deadlines.tool_response_s):
                answer = await future
        except TimeoutError:
            fallback = s.tools.fallback(call.name)
            return fallback or f"The tool {call.name} did not answer in time."
        finally:
            s.pending_tools.pop(call.id, None)
        if isinstance(answer, p.ToolError):
            return answer.content or s.tools.fallback(call.name) or f"The tool failed: {answer.error}"
        return answer.content

    async def _run_builtin(self, call: ToolCall) -> str:
        s = self.ctx
        if call.name == HANG_UP:
            self.outcome.hang_up = True
            content = "Call ended."
        elif call.name == WEB_SEARCH:
            try:
                query = str(json.loads(call.arguments or "{}").get("query", ""))
                assert s.web_search_url is not None
                content = await web_search(s.web_search_url, query)
            except Exception as exc:
                log.warning("chat %s: web_search failed: %s", s.chat.chat_id, exc)
                fallback = s.tools.fallback(call.name) or "The web search failed."
                s.outbound.emit(
                    msg.ToolError(
                        tool_call_id=call.id,
                        error=str(exc) or "web search failed",
                        content=fallback,
                        code="web_search_failed",
                        tool_type="builtin",
                    )
                )
                return fallback
        else:
            content = ""
        s.outbound.emit(
            msg.ToolResponse(tool_call_id=call.id, content=content, tool_name=call.name, tool_type="builtin")
        )
        return content

    # --- speaking ---------------------------------------------------------------------------

    # --- barge-in without words -------------------------------------------------------------

    def suspend(self) -> None:
        """The user barged in: stop speaking at once (the sentence being sent is dropped mid-way);
        generation goes on into the queue, and no tool runs, until `resume` or cancellation."""
        self._go_on.clear()

    def resume(self, unheard: list[str]) -> None:
        """The barge-in held no words: speak `unheard` (what the listener missed), then go on."""
        queued = [*self._set_aside]
        self._set_aside.clear()
        while not self._pieces.empty():
            queued.append(self._pieces.get_nowait())
            self._pieces.task_done()
        for piece in [*unheard, *queued]:
            self._pieces.put_nowait(piece)
        self._go_on.set()

    @property
    def suspended(self) -> bool:
        return not self._go_on.is_set()

    # --- speaking ---------------------------------------------------------------------------

    async def _speak_pieces(self) -> None:
        s = self.ctx
        tts = s.tts
        while True:
            await self._go_on.wait()
            piece = await self._pieces.get()
            try:
                if self.suspended:
                    self._set_aside.append(piece)  # came while suspended: it goes back in order
                    continue
                if piece is None:
                    return
                prerendered: list[bytes] | None = None
                if self.hold is not None and not self.hold.is_set():
                    # Render the first piece while the end of the user's turn is being confirmed.
                    voice = s.voice_for(piece, first=len(self.spoken) <= 1)  # issue 17: language and style
                    async with contextlib.aclosing(tts.synthesize(piece, voice=voice)) as stream:
                        prerendered = [pcm async for pcm in stream]
                    await self.hold.wait()
                message_id = str(uuid.uuid4())
                s.timings.mark("first_piece")
                self.started_speaking = True
                s.outbound.emit(msg.AssistantMessage(id=message_id, text=piece, from_text=self.from_text))
                sentence = s.said.begin(piece)  # kept (context, history) once heard
                self.spoken.append(piece)
                spoken_audio = await self._synthesize(message_id, piece, prerendered)
                if self.suspended:
                    continue  # cut off mid-sentence: what was not heard of it is spoken again on resume
                s.said.sent(sentence)
                if spoken_audio and s.prosody is not None:
                    self._measures.append(
                        s.tasks.spawn(
                            self._measure(s.prosody, message_id, sentence, spoken_audio, piece),
                            name=f"assistant-prosody-{s.chat.chat_id}",
                        )
                    )
            finally:
                self._pieces.task_done()

    async def _measure(self, prosody: ProsodyModel, message_id: str, sentence: Sentence, pcm: bytes, text: str) -> None:
        """Score the emotion of the assistant's own speech (assistant_prosody), in the background."""
        s = self.ctx
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if s.tts.sample_rate != prosody.sample_rate:
            audio = soxr.resample(audio, s.tts.sample_rate, prosody.sample_rate).astype(np.float32)
        try:
            scores = await prosody.score(audio, text=text)
        except Exception:
            log.exception("chat %s: assistant prosody failed", s.chat.chat_id)
            return
        s.outbound.emit(msg.AssistantProsody(id=message_id, scores=scores))
        features = json.dumps(msg.wire_scores(scores))

        def store(event_id: str) -> None:  # tied to the sentence's AGENT_MESSAGE, once that is stored
            s.outbound.record(
                EventRole.AGENT, EventType.ASSISTANT_PROSODY, None, emotion_features=features, related_event_id=event_id
            )

        s.said.after_stored(sentence, store)

    async def _synthesize(self, message_id: str, text: str, prerendered: list[bytes] | None = None) -> bytes:
        """Speak one piece; returns the audio that was sent."""
        s = self.ctx
        tts = s.tts
        sent: list[bytes] = []
        rate = tts.sample_rate
        piece_bytes = rate * 2 * AUDIO_PIECE_MS // 1000
        index = 0
        pending = b""
        try:
            async with contextlib.aclosing(
                _replay(prerendered)
                if prerendered is not None
                else tts.synthesize(text, voice=s.voice_for(text, first=len(self.spoken) <= 1))  # issue 17
            ) as stream:
                async for pcm in stream:
                    pending += pcm
                    while len(pending) >= piece_bytes:
                        chunk, pending = pending[:piece_bytes], pending[piece_bytes:]
                        if self.suspended:
                            return b"".join(sent)
                        await self._send_audio(message_id, index, chunk, rate)
                        sent.append(chunk)
                        index += 1
            if pending and not self.suspended:
                await self._send_audio(message_id, index, pending, rate)
                sent.append(pending)
        except TTSError as exc:
            s.outbound.emit_error(msg.E_TTS, f"Speech synthesis failed: {exc}")
            s.outbound.record_error(msg.E_TTS, str(exc))
        return b"".join(sent)

    async def _send_audio(self, message_id: str, index: int, pcm: bytes, rate: int) -> None:
        """Send one piece, no further ahead of the listener's playback than the configured lead."""
        s = self.ctx
        wait = s.playback.wait_before_next()
        if wait > 0:
            await s.clock.sleep(wait)
        if self.suspended:
            return  # a barge-in came while this piece waited: it is not sent
        starts_ms = s.playback.play(len(pcm) / (2 * rate), message_id)
        s.outbound.emit(msg.AudioOutput(id=message_id, index=index, pcm=pcm, rate=rate))
        s.said.settle()
        if index == 0:
            s.timings.mark("first_audio")
            s.timings.report(s.chat.chat_id)
        if s.recorder is not None:
            s.recorder.assistant_audio(pcm, rate, at_ms=starts_ms)


async def _replay(chunks: list[bytes]) -> AsyncGenerator[bytes, None]:
    for chunk in chunks:
        yield chunk
