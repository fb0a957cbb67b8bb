"""ChatSession in-process, on fakes of its ports and providers: turns, tools, failures, pause/resume,
barge-in, speculation and the end of a chat — no server, no database, no models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from openevi.chat.config import BuiltinTool, ChatConfig, EventMessage, FunctionTool, Timeout
from openevi.chat.context import CUT_OFF_NOTE
from openevi.chat.floor import TRANSITIONS, FloorState
from openevi.chat.limits import ROW_BYTES
from openevi.chat.listener import HeardTurn
from openevi.chat.session import Phase
from openevi.llm.base import LLMError, TextDelta, ToolCall
from openevi.schemas import messages as msg
from openevi.schemas.chat_types import ChatStatus
from tests.support.fakes import HOLD, FakeClock, FakeEngine, FakeHistory, StoredEvent, kinds, receive_until, settle

WEATHER = FunctionTool("get_weather", '{"type": "object", "properties": {"city": {"type": "string"}}}')


@pytest.fixture
def engine(tmp_path: Path) -> FakeEngine:
    return FakeEngine(tmp_path)


async def started(engine: FakeEngine, config: ChatConfig | None = None, **kw: object):  # type: ignore[no-untyped-def]
    session = engine.session(config, **kw)  # type: ignore[arg-type]
    queue = session.subscribe()
    await session.start(resumed=bool(kw.get("history")), session_settings=None)
    assert isinstance(await queue.get(), msg.ChatMetadata)
    return session, queue


async def test_a_text_turn_in_order(engine: FakeEngine) -> None:
    engine.model.replies.append([TextDelta("It is sunny. "), TextDelta("Enjoy the day.")])
    session, queue = await started(engine)
    await session.handle({"type": "user_input", "text": "How is the weather?"})
    messages = await receive_until(queue, "assistant_end")
    shown = [k for k in kinds(messages) if k != "audio_output"]
    assert shown[0] == "user_message" and shown[-1] == "assistant_end"
    said = [m.text for m in messages if isinstance(m, msg.AssistantMessage)]
    assert " ".join(said) == "It is sunny. Enjoy the day."
    # every sentence is scored before the turn ends
    assert len([k for k in shown if k == "assistant_prosody"]) == len(said)
    assert engine.tts.spoken == said
    await session.close(ChatStatus.USER_ENDED, reason="bye")  # sentences are stored once heard (or at the end)
    history = engine.histories[0]
    assert history.types()[:3] == ["SYSTEM_PROMPT", "USER_MESSAGE", "AGENT_MESSAGE"]
    agent = {e.id for e in history.events if e.type == "AGENT_MESSAGE"}
    scored = {e.related_event_id for e in history.events if e.type == "ASSISTANT_PROSODY"}
    assert len(agent) == len(said) and scored == agent  # each sentence scored, tied to its message
    assert engine.model.requests[0].messages[-1].content == "How is the weather?"


async def test_a_tool_round_trip(engine: FakeEngine) -> None:
    engine.model.replies += [
        [ToolCall("call-1", "get_weather", '{"city": "Paris"}')],
        [TextDelta("Sunny in Paris.")],
    ]
    session, queue = await started(engine, ChatConfig(tools=(WEATHER,), webhooks=({"url": "https://x.test"},)))
    await session.handle({"type": "user_input", "text": "Weather in Paris?"})
    before = await receive_until(queue, "tool_call")
    call = before[-1]
    assert isinstance(call, msg.ToolCall) and call.name == "get_weather" and call.tool_call_id == "call-1"
    await session.handle({"type": "tool_response", "tool_call_id": "call-1", "content": "sunny"})
    after = await receive_until(queue, "assistant_end")
    assert "tool_response" in kinds(after)  # echoed, as the SDK expects
    second = engine.model.requests[1].messages
    assert [m.role for m in second[-3:]] == ["user", "assistant", "tool"] and second[-1].content == "sunny"
    await session.close(ChatStatus.USER_ENDED)
    history = engine.histories[0]
    turn = [
        t for t in history.types() if t in ("USER_MESSAGE", "FUNCTION_CALL", "FUNCTION_CALL_RESPONSE", "AGENT_MESSAGE")
    ]
    assert turn == ["USER_MESSAGE", "FUNCTION_CALL", "FUNCTION_CALL_RESPONSE", "AGENT_MESSAGE"]
    assert history.tool_webhooks[0]["tool_call_message"]["name"] == "get_weather"


async def test_a_speaker_crash_before_a_tool_call_ends_the_turn(engine: FakeEngine) -> None:
    # Words, then a tool call: the tool waits for the words to be spoken, and the speaker dies on them.
    engine.model.replies.append(
        [TextDelta("Let me check that for you. It takes one moment. "), ToolCall("c1", "get_weather", "{}")]
    )
    engine.tts.crash_on = "check"
    session, queue = await started(engine, ChatConfig(tools=(WEATHER,)))
    await session.handle({"type": "user_input", "text": "Weather?"})
    messages = await receive_until(queue, "assistant_end")
    errors = [m for m in messages if isinstance(m, msg.Error)]
    assert errors and errors[0].slug == "internal_error"
    assert "tool_call" not in kinds(messages)  # the turn ended; no tool ran after the failure
    await session.handle({"type": "user_input", "text": "Still there?"})  # the chat goes on
    engine.tts.crash_on = None
    assert isinstance((await receive_until(queue, "assistant_end"))[-1], msg.AssistantEnd)
    await session.close(ChatStatus.USER_ENDED)


async def test_a_crashed_turn_ends_with_error_and_assistant_end(engine: FakeEngine) -> None:
    engine.model.replies.append(RuntimeError("a bug in a provider"))
    session, queue = await started(engine)
    await session.handle({"type": "user_input", "text": "hello"})
    messages = await receive_until(queue, "assistant_end")
    errors = [m for m in messages if isinstance(m, msg.Error)]
    assert errors and errors[0].slug == "internal_error"
    engine.model.replies.append([TextDelta("Back again.")])  # the chat goes on
    await session.handle({"type": "user_input", "text": "still there?"})
    messages = await receive_until(queue, "assistant_end")
    assert [m.text for m in messages if isinstance(m, msg.AssistantMessage)] == ["Back again."]


async def test_a_provider_error_is_reported_and_kept(engine: FakeEngine) -> None:
    engine.model.replies.append(LLMError("quota exceeded", code="rate_limited"))
    session, queue = await started(engine)
    await session.handle({"type": "user_input", "text": "hello"})
    messages = await receive_until(queue, "assistant_end")
    error = next(m for m in messages if isinstance(m, msg.Error))
    assert error.slug == "language_model_error" and "rate_limited" in error.message
    assert engine.histories[0].errors[-1]["slug"] == "language_model_error"


async def test_pause_holds_the_answer_until_resume(engine: FakeEngine) -> None:
    engine.model.default = [TextDelta("Answered.")]
    session, queue = await started(engine)
    await session.handle({"type": "pause_assistant_message"})
    await session.handle({"type": "user_input", "text": "Are you there?"})
    shown = await receive_until(queue, "user_message")
    assert engine.model.requests == [] and kinds(shown) == ["user_message"]
    await session.handle({"type": "resume_assistant_message"})
    messages = await receive_until(queue, "assistant_end")
    assert "assistant_message" in kinds(messages)
    assert engine.model.requests[-1].messages[-1].content == "Are you there?"
    assert [t for t in engine.histories[0].types() if t.endswith("_ONSET")] == ["PAUSE_ONSET", "RESUME_ONSET"]


async def test_speaking_over_the_assistant_interrupts_it(engine: FakeEngine) -> None:
    engine.model.replies.append([TextDelta("First sentence here. "), HOLD, TextDelta("Never said.")])
    session, queue = await started(engine)
    await session.handle({"type": "user_input", "text": "Tell me a story"})
    await receive_until(queue, "audio_output")
    assert session.speaking
    await session.floor.user_speaking(300)  # the listener heard min_interruption_ms of speech
    messages = await receive_until(queue, "user_interruption")
    assert "assistant_end" not in kinds(messages)
    engine.model.gate.set()
    await asyncio.sleep(0.05)
    assert not session.speaking
    assert "USER_INTERRUPTION" in engine.histories[0].types()
    assert "Never said." not in engine.tts.spoken


async def test_a_speculative_answer_runs_no_tool_until_confirmed(engine: FakeEngine) -> None:
    """The words before a pause make the model ask for hang_up; the user goes on: nothing ran."""
    engine.model.replies.append([ToolCall("c1", "hang_up", "{}")])
    session, queue = await started(engine, ChatConfig(builtin_tools=(BuiltinTool("hang_up"),)))
    heard = HeardTurn("please hang up", 0, 900, None, "en")
    session.floor.speech_started()
    await session.floor.heard_early(heard)
    for _ in range(20):
        await asyncio.sleep(0)
    assert engine.model.requests, "the speculative answer started"
    assert queue.empty(), "nothing is shown before the turn is confirmed"
    await session.floor.speech_resumed()  # the user spoke again inside the silence window
    engine.model.replies.append([TextDelta("Here is a joke.")])
    session.floor.turn_closing()
    await session.floor.heard(HeardTurn("please hang up no wait tell me a joke", 0, 3000, None, "en"))
    messages = await receive_until(queue, "assistant_end")
    assert "tool_call" not in kinds(messages) and "tool_response" not in kinds(messages)
    assert session.status is None and "FUNCTION_CALL" not in engine.histories[0].types()


async def test_a_confirmed_speculative_answer_runs_its_tool_after_the_user_message(engine: FakeEngine) -> None:
    engine.model.replies += [[ToolCall("c1", "get_weather", '{"city": "Oslo"}')], [TextDelta("Cold in Oslo.")]]
    session, queue = await started(engine, ChatConfig(tools=(WEATHER,)))
    heard = HeardTurn("weather in Oslo", 0, 900, None, "en")
    session.floor.speech_started()
    await session.floor.heard_early(heard)
    for _ in range(20):
        await asyncio.sleep(0)
    assert queue.empty() and session.floor.state is FloorState.SPECULATING
    session.floor.turn_closing()
    await session.floor.heard(heard)  # the same words: the speculative answer is the answer
    assert session.floor.state is FloorState.RESPONDING
    messages = await receive_until(queue, "tool_call")
    assert kinds(messages)[0] == "user_message"
    await session.handle({"type": "tool_response", "tool_call_id": "c1", "content": "minus five"})
    await receive_until(queue, "assistant_end")
    types = [t for t in engine.histories[0].types() if t in ("USER_MESSAGE", "FUNCTION_CALL")]
    assert types == ["USER_MESSAGE", "FUNCTION_CALL"]


async def test_the_tool_loop_guard_still_answers(engine: FakeEngine) -> None:
    engine.model.default = lambda request: (
        [ToolCall(f"c{len(engine.model.requests)}", "get_weather", "{}")] if request.tools else [TextDelta("Sorry.")]
    )
    session, queue = await started(engine, ChatConfig(tools=(WEATHER,)))
    await session.handle({"type": "user_input", "text": "loop"})
    calls = 0
    while True:
        message = await queue.get()
        assert message is not None
        if isinstance(message, msg.ToolCall):
            calls += 1
            await session.handle({"type": "tool_response", "tool_call_id": message.tool_call_id, "content": "?"})
        if isinstance(message, msg.AssistantEnd):
            break
        if isinstance(message, msg.AssistantMessage):
            assert message.text == "Sorry."
    assert calls == 8 and engine.model.requests[-1].tools == []


async def test_resume_with_event_limit_and_the_end_of_the_chat(engine: FakeEngine) -> None:
    earlier = [
        StoredEvent("USER", "USER_MESSAGE", f"fact {n}") if n % 2 == 0 else StoredEvent("AGENT", "AGENT_MESSAGE", "ok")
        for n in range(6)
    ]
    history = FakeHistory(earlier=earlier)  # type: ignore[arg-type]
    session = engine.session(ChatConfig(id="cfg", webhooks=({"url": "https://x.test"},)), history=history)
    queue = session.subscribe()
    await session.start(resumed=True, session_settings={"event_limit": "2"})
    engine.model.replies.append([TextDelta("Hi again.")])
    await session.handle({"type": "user_input", "text": "hello"})
    await receive_until(queue, "assistant_end")
    sent = [m.content for m in engine.model.requests[0].messages if m.role != "system"]
    assert sent == ["fact 4", "ok", "hello"]
    stored_settings = [e for e in history.events if e.type == "SESSION_SETTINGS"]
    assert json.loads(stored_settings[0].message_text or "{}")["event_limit"] == 2
    await session.close(ChatStatus.INACTIVITY_TIMEOUT, reason="on_inactivity_timeout")
    assert history.ended is not None and history.ended.status == ChatStatus.INACTIVITY_TIMEOUT
    assert history.ended.config_id == "cfg" and history.closed
    while await queue.get() is not None:
        pass  # the stream ends with None: the sockets close


async def test_phases_and_their_transitions(engine: FakeEngine) -> None:
    session = engine.session()
    assert session.phase is Phase.NEW
    queue = session.subscribe()
    await session.start(resumed=False, session_settings=None)
    assert session.phase is Phase.OPEN
    await session.handle({"type": "pause_assistant_message"})
    assert session.phase is Phase.PAUSED and session.paused
    await session.handle({"type": "pause_assistant_message"})  # pausing twice is harmless
    await session.handle({"type": "resume_assistant_message"})
    assert session.phase is Phase.OPEN
    await session.close(ChatStatus.USER_ENDED)
    assert session.phase is Phase.ENDED and session.status == ChatStatus.USER_ENDED
    await session.handle({"type": "resume_assistant_message"})  # an ended chat never reopens
    assert session.phase is Phase.ENDED
    await session.handle({"type": "user_input", "text": "anyone?"})  # ignored once ended
    assert engine.model.requests == []
    while await queue.get() is not None:
        pass


async def test_a_silent_user_is_nudged_once_then_timed_out(engine: FakeEngine) -> None:
    engine.model.default = [TextDelta("Are you still there?")]
    config = ChatConfig(
        nudge_interval_s=0.5,
        inactivity=Timeout(enabled=True, duration_s=2),
        on_inactivity_timeout=EventMessage(enabled=True, text="Goodbye for now."),
    )
    session, queue = await started(engine, config)
    messages: list[msg.ServerMessage] = []
    async with asyncio.timeout(20):
        while (message := await queue.get()) is not None:
            messages.append(message)
    said = [m.text for m in messages if isinstance(m, msg.AssistantMessage)]
    assert said == ["Are you still there?", "Goodbye for now."]  # one nudge, then the goodbye
    assert session.status == ChatStatus.INACTIVITY_TIMEOUT
    ended = engine.histories[0].ended
    assert ended is not None and ended.message == "on_inactivity_timeout"


async def test_a_typed_turn_sent_while_a_spoken_turn_closes_is_answered_after_it(engine: FakeEngine) -> None:
    """Turns are answered in the order the user finished them: the spoken turn ended first (its words
    still being transcribed when the typed message came), so its answer comes first, uninterrupted."""
    engine.model.replies += [[TextDelta("The spoken answer.")], [TextDelta("The typed answer.")]]
    session, queue = await started(engine)
    floor = session.floor
    floor.speech_started()
    floor.turn_closing()  # the user stopped talking; the recognizer is at work
    await session.handle({"type": "user_input", "text": "typed words"})
    assert engine.model.requests == [] and queue.empty()  # nothing jumps ahead of the spoken turn
    await floor.heard(HeardTurn("spoken words", 0, 900, None, "en"))
    first = await receive_until(queue, "assistant_end")
    second = await receive_until(queue, "assistant_end")
    shown = [(m.type, getattr(m, "text", None)) for m in first + second if m.type != "audio_output"]
    assert [s for s in shown if s[0] != "assistant_prosody"] == [
        ("user_message", "spoken words"),
        ("assistant_message", "The spoken answer."),
        ("assistant_end", None),
        ("user_message", "typed words"),
        ("assistant_message", "The typed answer."),
        ("assistant_end", None),
    ]
    assert "USER_INTERRUPTION" not in engine.histories[0].types()
    asked = [[m.content for m in r.messages if m.role != "system"] for r in engine.model.requests]
    assert asked == [["spoken words"], ["spoken words", "The spoken answer.", "typed words"]]


async def test_a_typed_turn_waiting_for_a_spoken_turn_without_words_is_answered(engine: FakeEngine) -> None:
    engine.model.replies.append([TextDelta("Typed answer.")])
    session, queue = await started(engine)
    session.floor.speech_started()
    session.floor.turn_closing()
    await session.handle({"type": "user_input", "text": "typed words"})
    session.floor.heard_nothing()  # it was a cough
    messages = await receive_until(queue, "assistant_end")
    assert [m.text for m in messages if isinstance(m, msg.UserMessage)] == ["typed words"]
    await session.floor.wait_reply()
    assert session.floor.state in (FloorState.PLAYING_OUT, FloorState.IDLE)


async def test_the_floor_moves_only_along_its_table(engine: FakeEngine) -> None:
    engine.model.replies.append([TextDelta("One. "), HOLD, TextDelta("Two.")])
    session, queue = await started(engine)
    floor = session.floor
    assert floor.state is FloorState.IDLE
    floor.speech_started()
    assert floor.state is FloorState.USER_SPEAKING
    floor.turn_closing()
    await floor.heard(HeardTurn("tell me two things", 0, 900, None, "en"))
    assert floor.state is FloorState.RESPONDING and session.speaking
    await receive_until(queue, "audio_output")
    await floor.user_speaking(900)  # barge-in
    assert floor.state is FloorState.USER_SPEAKING and not session.speaking
    assert "user_interruption" in kinds(await receive_until(queue, "user_interruption"))
    floor.heard_nothing()  # it held no words: the answer goes on
    await receive_until(queue, "assistant_message")
    assert floor.state is FloorState.RESPONDING
    assert FloorState.SPECULATING not in TRANSITIONS[FloorState.RESPONDING]
    engine.model.gate.set()


async def test_a_barge_in_keeps_only_what_was_heard_and_the_model_knows(tmp_path: Path) -> None:
    """The context and the history keep what the listener heard: whole sentences, then the words of
    the one cut off (marked interrupted); the next request is told the answer was cut off."""
    clock = FakeClock()
    engine = FakeEngine(tmp_path, clock=clock)  # every piece is sent at once; the clock says what played
    first, second, third = "One two three four.", "Five six seven eight.", "Nine ten eleven twelve."
    engine.model.replies += [[TextDelta(f"{first} {second} {third}")], [TextDelta("Sorry, go on.")]]
    session, queue = await started(engine)
    await session.handle({"type": "user_input", "text": "Count for me"})
    said = [m.text for m in await receive_until(queue, "assistant_end") if isinstance(m, msg.AssistantMessage)]
    assert said == [first, second, third]  # all sent (60 ms of speech per word), none heard yet
    assert "AGENT_MESSAGE" not in engine.histories[0].types()
    await clock.advance(0.24 + 0.13)  # the first sentence, and two words of the second, have played
    await session.floor.user_speaking(900)  # the user barges in
    assert "user_interruption" in kinds(await receive_until(queue, "user_interruption"))
    session.floor.turn_closing()
    await session.floor.heard(HeardTurn("wait, stop", 0, 900, None, "en"))
    await receive_until(queue, "assistant_end")
    request = engine.model.requests[-1]
    assert [m.content for m in request.messages if m.role == "assistant"] == [f"{first} Five six —"]
    assert CUT_OFF_NOTE in (request.messages[0].content or "")
    await session.close(ChatStatus.USER_ENDED)
    stored = [e for e in engine.histories[0].events if e.type == "AGENT_MESSAGE"]
    assert [e.message_text for e in stored] == [first, "Five six", "Sorry, go on."]
    assert [json.loads(e.event_metadata or "{}").get("interrupted") for e in stored] == [None, True, None]
    scored = {e.related_event_id for e in engine.histories[0].events if e.type == "ASSISTANT_PROSODY"}
    assert scored <= {e.id for e in stored}  # the unheard sentence's scores are not stored either


async def test_a_barge_in_without_words_resumes_the_answer_where_it_stopped(tmp_path: Path) -> None:
    """A cough over the assistant: it stops at once (user_interruption), and when the listener hears
    no words in it, the answer goes on from the first word that was not heard — nothing is lost."""
    clock = FakeClock()
    engine = FakeEngine(tmp_path, clock=clock)
    engine.model.replies.append([TextDelta("One two three four. "), HOLD, TextDelta("Five six seven eight.")])
    session, queue = await started(engine)
    await session.handle({"type": "user_input", "text": "Count for me"})
    await receive_until(queue, "audio_output")
    await clock.advance(0.13)  # "One two" (60 ms a word) has played
    await session.floor.user_speaking(900)  # a noise long enough to barge in
    assert "user_interruption" in kinds(await receive_until(queue, "user_interruption"))
    engine.model.gate.set()  # the model goes on writing meanwhile; nothing is spoken
    await settle()
    assert all(m is not None and m.type != "assistant_message" for m in drain(queue))
    session.floor.turn_closing()
    session.floor.heard_nothing()  # the recognizer heard no words in it
    resumed = await receive_until(queue, "assistant_end")
    assert [m.text for m in resumed if isinstance(m, msg.AssistantMessage)] == ["three four.", "Five six seven eight."]
    await session.close(ChatStatus.USER_ENDED)
    stored = [e.message_text for e in engine.histories[0].events if e.type == "AGENT_MESSAGE"]
    assert stored == ["One two", "three four.", "Five six seven eight."]
    assert not session.conversation.cut_off


async def test_a_finished_answer_still_playing_resumes_after_a_barge_in_without_words(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = FakeEngine(tmp_path, clock=clock)
    engine.model.replies.append([TextDelta("One two three four.")])
    session, queue = await started(engine)
    await session.handle({"type": "user_input", "text": "Count for me"})
    await receive_until(queue, "assistant_end")  # all sent; the client is still playing it
    await clock.advance(0.13)
    await session.floor.user_speaking(900)
    await receive_until(queue, "user_interruption")
    session.floor.turn_closing()
    session.floor.heard_nothing()
    resumed = await receive_until(queue, "assistant_end")
    said = [m for m in resumed if isinstance(m, msg.AssistantMessage)]
    assert [(m.text, m.from_text) for m in said] == [("three four.", False)]
    assert len(engine.model.requests) == 1  # spoken again as it was, not asked again


async def test_a_pause_resume_flood_is_rate_limited_told_once_and_charged(tmp_path: Path) -> None:
    """One socket toggling pause/resume used to queue 345,200 free events in 5 s. Past the burst
    the toggles are dropped, the client is told once a second, and every accepted one costs the budget."""
    clock = FakeClock()
    engine = FakeEngine(tmp_path, clock=clock)
    session, queue = await started(engine)
    for i in range(1_000):
        await session.handle({"type": "pause_assistant_message" if i % 2 == 0 else "resume_assistant_message"})
    burst = engine.settings.chat_message_burst
    history = engine.histories[0]
    onsets = [e for e in history.events if e.type in ("PAUSE_ONSET", "RESUME_ONSET")]
    assert len(onsets) == burst
    assert session.limits.stored >= burst * ROW_BYTES
    errors = [m for m in drain(queue) if isinstance(m, msg.Error)]
    assert [(e.code, e.slug) for e in errors] == [("E0104", "limit_exceeded")]
    assert "Too many messages" in errors[0].message
    await clock.advance(1.0)  # the bucket refills at the configured rate
    for i in range(100):
        await session.handle({"type": "pause_assistant_message" if i % 2 == 0 else "resume_assistant_message"})
    onsets = [e for e in history.events if e.type in ("PAUSE_ONSET", "RESUME_ONSET")]
    assert len(onsets) == burst + int(engine.settings.chat_max_messages_per_s)
    assert len([m for m in drain(queue) if isinstance(m, msg.Error)]) == 1  # told again, once
    await session.close(ChatStatus.USER_ENDED)


def drain(queue: asyncio.Queue[msg.ServerMessage | None]) -> list[msg.ServerMessage | None]:
    """What is waiting in a subscribed queue now."""
    waiting = []
    while not queue.empty():
        waiting.append(queue.get_nowait())
    return waiting
