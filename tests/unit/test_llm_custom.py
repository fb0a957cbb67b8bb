"""CUSTOM_LANGUAGE_MODEL over SSE and WebSocket, against the scripted server."""

from __future__ import annotations

import pytest

from openevi.chat.context import Conversation
from openevi.llm.base import GenerationRequest, LLMError, LLMEvent, Message, TextDelta
from openevi.llm.custom import (
    CustomSSELanguageModel,
    CustomWebSocketLanguageModel,
    create_custom_language_model,
)
from openevi.speech.prosody.base import EMOTIONS
from tests.support.scripted_llm import Fail, Hang, Reply, ScriptedLLM


def _text(events: list[LLMEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def _conversation(turns: int) -> list[Message]:
    messages = [Message("system", "You are Eliza.")]
    for i in range(turns):
        messages += [Message("user", f"question {i}"), Message("assistant", f"answer {i}")]
    return [*messages, Message("user", "last question")]


async def test_sse_sends_openai_request_with_session_id(scripted: ScriptedLLM) -> None:
    scripted.script(Reply("Tell me more.", when="last question"))
    model = create_custom_language_model(scripted.completions_url, model="eliza-1", api_key="secret")
    assert isinstance(model, CustomSSELanguageModel)
    request = GenerationRequest(messages=_conversation(2), custom_session_id="sess-42")
    events = [e async for e in model.stream(request)]
    await model.aclose()
    assert _text(events) == "Tell me more."
    (sent,) = scripted.requests
    assert sent.path == "/chat/completions" and sent.query == {"custom_session_id": "sess-42"}
    assert sent.headers["authorization"] == "Bearer secret"
    assert sent.body["model"] == "eliza-1" and sent.body["stream"] is True
    assert sent.body["messages"][0] == {"role": "system", "content": "You are Eliza."}
    assert sent.body["messages"][-1] == {"role": "user", "content": "last question"}
    assert "tools" not in sent.body


async def test_sse_history_is_windowed(scripted: ScriptedLLM) -> None:
    model = CustomSSELanguageModel(url=scripted.completions_url, max_history_messages=3)
    [e async for e in model.stream(GenerationRequest(messages=_conversation(10)))]
    await model.aclose()
    sent = scripted.requests[0].body["messages"]
    assert [m["content"] for m in sent] == ["You are Eliza.", "question 9", "answer 9", "last question"]


async def test_sse_payload_bound_by_bytes(scripted: ScriptedLLM) -> None:
    long = [Message("user", "x" * 5000), Message("assistant", "y" * 5000), Message("user", "short")]
    model = CustomSSELanguageModel(url=scripted.completions_url, max_payload_bytes=4000)
    [e async for e in model.stream(GenerationRequest(messages=long))]
    await model.aclose()
    assert [m["content"] for m in scripted.requests[0].body["messages"]] == ["short"]


async def test_payload_that_cannot_fit_is_an_error(scripted: ScriptedLLM) -> None:
    model = CustomSSELanguageModel(url=scripted.completions_url, max_payload_bytes=1024)
    with pytest.raises(LLMError) as info:
        [e async for e in model.stream(GenerationRequest(messages=[Message("user", "z" * 5000)]))]
    await model.aclose()
    assert info.value.code == "llm_payload_too_large"


async def test_sse_error_status(scripted: ScriptedLLM) -> None:
    scripted.script(Fail(503, "eliza is asleep"))
    model = create_custom_language_model(scripted.completions_url)
    with pytest.raises(LLMError, match="eliza is asleep"):
        [e async for e in model.stream(GenerationRequest(messages=[Message("user", "hi")]))]
    await model.aclose()


async def test_websocket_round_trips_and_keeps_the_socket(scripted: ScriptedLLM) -> None:
    scripted.script(Reply("How does that make you feel?", when="sad"))
    model = create_custom_language_model(scripted.ws_url)
    assert isinstance(model, CustomWebSocketLanguageModel)
    prosody = [None, {"Sadness": 0.8, "Calmness": 0.1}]
    request = GenerationRequest(
        messages=[Message("system", "Eliza"), Message("user", "I am sad")],
        custom_session_id="sess-1",
        metadata={"prosody": prosody},
    )
    first = [e async for e in model.stream(request)]
    second = [e async for e in model.stream(GenerationRequest(messages=[Message("user", "hello")]))]
    await model.aclose()
    assert _text(first) == "How does that make you feel?" and _text(second) == "OK."
    sent = scripted.requests[0].body
    assert sent["custom_session_id"] == "sess-1"
    assert sent["messages"][1] == {
        "type": "user_message",
        "message": {"role": "user", "content": "I am sad"},
        "models": {"prosody": {"scores": {"Sadness": 0.8, "Calmness": 0.1}}},
    }


async def test_websocket_error_message(scripted: ScriptedLLM) -> None:
    scripted.script(Fail(500, "agent crashed", once=True))
    model = create_custom_language_model(scripted.ws_url)
    with pytest.raises(LLMError, match="agent crashed"):
        [e async for e in model.stream(GenerationRequest(messages=[Message("user", "x")]))]
    # The next turn reconnects and works.
    events = [e async for e in model.stream(GenerationRequest(messages=[Message("user", "x")]))]
    await model.aclose()
    assert _text(events) == "OK."


async def test_websocket_silence_times_out(scripted: ScriptedLLM) -> None:
    scripted.script(Hang(after="Hmm", once=True))
    # Long enough for "Hmm" to arrive first on a loaded machine (the stub answers at once).
    model = CustomWebSocketLanguageModel(url=scripted.ws_url, read_timeout=1.0)
    seen: list[LLMEvent] = []
    with pytest.raises(LLMError) as info:
        async for event in model.stream(GenerationRequest(messages=[Message("user", "x")])):
            seen.append(event)
    assert info.value.code == "llm_timeout" and _text(seen) == "Hmm"
    events = [e async for e in model.stream(GenerationRequest(messages=[Message("user", "x")]))]
    await model.aclose()
    assert _text(events) == "OK."


async def test_websocket_unreachable() -> None:
    model = CustomWebSocketLanguageModel(url="ws://127.0.0.1:9/nothing", connect_timeout=0.5)
    with pytest.raises(LLMError) as info:
        [e async for e in model.stream(GenerationRequest(messages=[Message("user", "x")]))]
    assert info.value.code == "llm_unreachable"


def test_bad_scheme() -> None:
    with pytest.raises(LLMError) as info:
        create_custom_language_model("ftp://example.invalid/llm")
    assert info.value.code == "llm_bad_config"


def _measured_conversation() -> list[Message]:
    """A conversation built the way a chat builds it: spoken turns carry all 48 scores."""
    convo = Conversation(base_prompt="You are Eliza.")
    first = dict.fromkeys(EMOTIONS, 0.02) | {"sadness": 0.66, "anxiety": 0.4, "tiredness": 0.3}
    convo.add_user("I'm fine", emotions=first)
    convo.add_assistant("Are you, though?")
    convo.add_user("typed, not spoken")  # a text turn has no measures
    convo.add_assistant("I see.")
    last = dict.fromkeys(EMOTIONS, 0.05) | {"surprise_positive": 0.8, "joy": 0.55}
    convo.add_user("I got the job", emotions=last)
    return convo.messages()


async def test_websocket_sends_each_user_turns_scores_and_hume_suffix(scripted: ScriptedLLM) -> None:
    model = create_custom_language_model(scripted.ws_url)
    [e async for e in model.stream(GenerationRequest(messages=_measured_conversation()))]
    await model.aclose()
    sent = scripted.requests[0].body["messages"]
    users = [m for m in sent if m["type"] == "user_message"]
    assert [m["message"]["content"] for m in users] == [
        "I'm fine {very sad, somewhat anxious, slightly tired}",
        "typed, not spoken",
        "I got the job {extremely positively surprised, quite joyful, slightly admiring}",
    ]
    first, typed, last = (m["models"]["prosody"]["scores"] for m in users)
    assert len(first) == 48 and first["Sadness"] == 0.66 and first["Surprise (negative)"] == 0.02
    assert typed == {}
    assert len(last) == 48 and last["Surprise (positive)"] == 0.8
    # Hume's CLM examples recover the words by cutting at the first brace
    assert [m["message"]["content"].split("{")[0].strip() for m in users] == [
        "I'm fine",
        "typed, not spoken",
        "I got the job",
    ]
    assert all(m["models"]["prosody"]["scores"] == {} for m in sent if m["type"] != "user_message")


async def test_sse_user_turns_carry_scores_beside_role_and_content(scripted: ScriptedLLM) -> None:
    model = create_custom_language_model(scripted.completions_url)
    [e async for e in model.stream(GenerationRequest(messages=_measured_conversation()))]
    await model.aclose()
    sent = scripted.requests[0].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert sent[1]["content"] == "I'm fine {very sad, somewhat anxious, slightly tired}"
    assert len(sent[1]["models"]["prosody"]["scores"]) == 48
    assert sent[1]["models"]["prosody"]["scores"]["Anxiety"] == 0.4
    assert sent[3] == {"role": "user", "content": "typed, not spoken"}  # nothing measured, nothing added
    assert "models" not in sent[2] and "models" not in sent[0]
    assert sent[5]["models"]["prosody"]["scores"]["Joy"] == 0.55


async def test_metadata_prosody_still_overrides_the_message_scores(scripted: ScriptedLLM) -> None:
    model = create_custom_language_model(scripted.ws_url)
    message = Message("user", "hi", emotions={"Joy": 0.9})
    request = GenerationRequest(messages=[message], metadata={"prosody": [{"Calmness": 0.3}]})
    [e async for e in model.stream(request)]
    await model.aclose()
    assert scripted.requests[0].body["messages"][0]["models"]["prosody"]["scores"] == {"Calmness": 0.3}


async def test_sse_redirect_is_an_error_not_an_empty_turn(scripted: ScriptedLLM) -> None:
    """A CLM answering with a redirect used to give an empty turn and no error."""
    scripted.script(Fail(307, "moved"))
    model = create_custom_language_model(scripted.completions_url)
    with pytest.raises(LLMError, match="HTTP 307") as info:
        [e async for e in model.stream(GenerationRequest(messages=[Message("user", "hi")]))]
    await model.aclose()
    assert info.value.code == "llm_bad_response" and "redirects are not followed" in str(info.value)
