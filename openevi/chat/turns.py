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
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openevi.chat import messages as msg
from openevi.chat.chunker import SentenceChunker
from openevi.chat.tools import HANG_UP, WEB_SEARCH, web_search
from openevi.llm.base import GenerationRequest, LLMError, Message, TextDelta, ToolCall
from openevi.schemas import protocol as p
from openevi.schemas.chat_types import EventRole, EventType
from openevi.speech.tts.base import TTSError
from openevi.store.db import now_ms
from openevi.webhooks import outbox

if TYPE_CHECKING:
    from openevi.chat.session import ChatSession

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


class AssistantTurn:
    """Generates (or speaks given text) and streams it to the chat's sockets."""

    def __init__(
        self,
        session: ChatSession,
        *,
        speak: str | None,
        instruction: str | None,
        pending_user: Message | None = None,
        hold: asyncio.Event | None = None,
    ) -> None:
        self.session = session
        self.speak_text = speak
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

    async def run(self) -> TurnOutcome:
        # The speaker's failure surfaces here (awaited below), so the chat's scope need not log it.
        speaker = self._speaker = self.session.tasks.spawn(
            self._speak_pieces(), name=f"speaker-{self.session.chat_id}", log_failure=False
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
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await speaker
            elif not speaker.cancelled() and (failure := speaker.exception()) is not None:
                # Read here, or the speaker's error would go unseen when the turn ends another way.
                log.error("chat %s: speaking failed", self.session.chat_id, exc_info=failure)
        # Every message of the turn (the last sentence's assistant_prosody too) comes before its end.
        if self._measures:
            await asyncio.wait(self._measures, timeout=MEASURE_WAIT_S)
        self.session.emit(msg.AssistantEnd())
        return self.outcome

    # --- generation -------------------------------------------------------------------------

    async def _generate(self) -> None:
        for _ in range(MAX_TOOL_ROUNDS):
            if not await self._generate_round(offer_tools=True):
                return
        # The loop guard tripped: the model keeps calling tools. It still answers, without tools.
        log.warning(
            "chat %s: %d tool rounds in one turn; answering without tools",
            self.session.chat_id,
            MAX_TOOL_ROUNDS,
        )
        spoke = len(self.spoken) + self._pieces.qsize()
        await self._generate_round(offer_tools=False)
        await self._drain_pieces()
        if len(self.spoken) == spoke:
            s = self.session
            text = "the language model kept calling tools without answering"
            s.emit_error(msg.E_LANGUAGE_MODEL, f"Language model error (tool_loop): {text}")
            s.record_error(msg.E_LANGUAGE_MODEL, text)

    async def _generate_round(self, *, offer_tools: bool) -> bool:
        """One model request; True when it called tools and the model should go on."""
        s = self.session
        chunker = SentenceChunker()
        calls: list[ToolCall] = []
        messages = s.conversation.messages(extra_system=self.instruction if offer_tools else _NO_MORE_TOOLS)
        if self.pending_user is not None and not (self.hold is not None and self.hold.is_set()):
            messages.append(self.pending_user)
        request = GenerationRequest(
            messages=messages,
            tools=s.tools.specs() if offer_tools else [],
            temperature=s.temperature,
            custom_session_id=s.custom_session_id,
        )
        try:
            async with asyncio.timeout(s.runtime.settings.llm_timeout_s):
                async for event in s.language_model().stream(request):
                    if isinstance(event, TextDelta):
                        s.timings.mark("llm_first_token")
                        for piece in chunker.push(event.text):
                            self._pieces.put_nowait(piece)
                    else:
                        calls.append(event)
        except (LLMError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, LLMError) else "timeout"
            text = str(exc) or "the language model did not answer in time"
            s.emit_error(msg.E_LANGUAGE_MODEL, f"Language model error ({code}): {text}")
            s.record_error(msg.E_LANGUAGE_MODEL, text)
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
        s = self.session
        s.conversation.add_tool_calls(calls)
        try:
            for call in calls:
                kind = s.tools.kind(call.name)
                if kind is None:
                    s.conversation.add_tool_result(call, f"Error: there is no tool named {call.name}.")
                    continue
                s.record(
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
                s.record(
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
        s = self.session
        caller = s.phone_caller
        payload = outbox.tool_call_payload(
            chat_id=s.chat_id,
            chat_group_id=s.chat_group_id,
            config_id=s.config.id,
            custom_session_id=s.custom_session_id,
            timestamp_ms=now_ms(),
            name=call.name,
            parameters=call.arguments,
            tool_call_id=call.id,
            tool_type="builtin" if kind == "builtin" else "function",
            response_required=kind == "function",
            caller_number=caller.caller_number if caller else None,
            twilio_metadata=caller.twilio_metadata if caller else None,
        )
        s.history.notify_tool_call(list(s.config.webhooks), payload)

    async def _await_client(self, call: ToolCall) -> str:
        """Send the call to the client and wait for its tool_response or tool_error."""
        s = self.session
        future: asyncio.Future[p.ToolResponse | p.ToolError] = asyncio.get_running_loop().create_future()
        s.pending_tools[call.id] = future
        s.emit(
            msg.ToolCall(
                name=call.name,
                parameters=call.arguments,
                tool_call_id=call.id,
                tool_type="function",
                response_required=True,
            )
        )
        try:
            async with asyncio.timeout(s.runtime.settings.tool_response_timeout_s):
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
        s = self.session
        if call.name == HANG_UP:
            self.outcome.hang_up = True
            content = "Call ended."
        elif call.name == WEB_SEARCH:
            try:
                query = str(json.loads(call.arguments or "{}").get("query", ""))
                assert s.runtime.settings.web_search_url is not None
                content = await web_search(s.runtime.settings.web_search_url, query)
            except Exception as exc:
                log.warning("chat %s: web_search failed: %s", s.chat_id, exc)
                fallback = s.tools.fallback(call.name) or "The web search failed."
                s.emit(
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
        s.emit(msg.ToolResponse(tool_call_id=call.id, content=content, tool_name=call.name, tool_type="builtin"))
        return content

    # --- speaking ---------------------------------------------------------------------------

    async def _speak_pieces(self) -> None:
        s = self.session
        tts = s.runtime.tts
        while True:
            piece = await self._pieces.get()
            try:
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
                s.emit(msg.AssistantMessage(id=message_id, text=piece, from_text=self.speak_text is not None))
                event_id = s.record(EventRole.AGENT, EventType.AGENT_MESSAGE, piece)
                s.conversation.add_assistant(piece)
                self.spoken.append(piece)
                spoken_audio = await self._synthesize(message_id, piece, tts, prerendered)
                if spoken_audio and s.runtime.prosody is not None:
                    measure = s.measure_assistant(message_id, event_id, spoken_audio, tts.sample_rate, piece)
                    if measure is not None:
                        self._measures.append(measure)
            finally:
                self._pieces.task_done()

    async def _synthesize(self, message_id: str, text: str, tts: Any, prerendered: list[bytes] | None = None) -> bytes:
        """Speak one piece; returns the audio that was sent."""
        s = self.session
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
                        await self._send_audio(message_id, index, chunk, rate)
                        sent.append(chunk)
                        index += 1
            if pending:
                await self._send_audio(message_id, index, pending, rate)
                sent.append(pending)
        except TTSError as exc:
            s.emit_error(msg.E_TTS, f"Speech synthesis failed: {exc}")
            s.record_error(msg.E_TTS, str(exc))
        return b"".join(sent)

    async def _send_audio(self, message_id: str, index: int, pcm: bytes, rate: int) -> None:
        """Send one piece, no further ahead of the listener's playback than the configured lead."""
        s = self.session
        wait = s.playback.wait_before_next()
        if wait > 0:
            await s.clock.sleep(wait)
        starts_ms = s.playback.play(len(pcm) / (2 * rate))
        s.emit(msg.AudioOutput(id=message_id, index=index, pcm=pcm, rate=rate))
        if index == 0:
            s.timings.mark("first_audio")
            s.timings.report(s.chat_id)
        if s.recorder is not None:
            s.recorder.assistant_audio(pcm, rate, at_ms=starts_ms)


async def _replay(chunks: list[bytes]) -> AsyncGenerator[bytes, None]:
    for chunk in chunks:
        yield chunk

