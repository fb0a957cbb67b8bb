"""Chat limits: sizes are measured without building huge strings, budgets are shared per account,
deep JSON is refused before it is parsed, and recordings hold no file until audio arrives."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from openevi.audio.reconstruction import reconstruct
from openevi.audio.recorder import ChatRecorder
from openevi.chat.context import Conversation, fill_variables
from openevi.chat.limits import QUIET, ROW_BYTES, AccountBudget, ChatLimits, json_depth_ok, rendered_prompt_bytes
from openevi.schemas import protocol as p
from openevi.schemas.rest import check_tool_parameters
from openevi.settings import Settings


def limits(**overrides: int) -> ChatLimits:
    return ChatLimits(Settings(**overrides))  # type: ignore[arg-type]


def test_rendered_prompt_size_matches_the_rendering() -> None:
    prompt = "Hi {{name}}, you are {{ age }} and {{unknown}}; {{vip}} {{ratio}} ünïcode"
    variables = {"name": "Åsa", "age": 36.0, "vip": True, "ratio": 0.5}
    assert rendered_prompt_bytes(prompt, variables) == len(fill_variables(prompt, variables).encode())


def test_a_placeholder_bomb_is_measured_not_built() -> None:
    prompt = "{{v}}" * 20_000  # 100 kB of placeholders
    value = "x" * 60_000
    tracemalloc.start()
    try:
        size = rendered_prompt_bytes(prompt, {"v": value})  # the rendering would be 1.2 GB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 20_000 * 60_000
    assert peak < 10_000_000


def test_bomb_is_refused_by_the_session_settings_check() -> None:
    chat = limits(chat_max_system_prompt_bytes=10_000)
    settings = p.SessionSettings(type="session_settings", system_prompt="{{v}}" * 100, variables={"v": "x" * 200})
    refusal = chat.check(settings, Conversation(base_prompt=None))
    assert refusal is not None and refusal[0] == ("E0104", "limit_exceeded")
    # Variables alone can blow up a prompt that was accepted earlier.
    conversation = Conversation(base_prompt="{{v}}" * 100)
    refusal = chat.check(p.SessionSettings(type="session_settings", variables={"v": "x" * 200}), conversation)
    assert refusal is not None and "system_prompt" in refusal[1]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"a": [[[]]]}', True),
        ("[" * 65, False),
        ('{"a": "' + "[" * 500 + '"}', True),  # brackets inside strings do not nest
        ('{"a": "\\"' + "[" * 500 + '"}', True),
        ("[" * 64 + "]" * 64, True),
    ],
)
def test_json_depth(text: str, ok: bool) -> None:
    assert json_depth_ok(text) is ok


def test_chats_of_one_account_share_its_remaining_quota() -> None:
    account = AccountBudget(10_000)
    first, second = limits(), limits()
    first.share(account)
    second.share(account)
    conversation = Conversation(base_prompt=None)
    message = p.UserInput(type="user_input", text="a" * 6_000)
    assert first.check(message, conversation) is None
    first.charge(message.text)
    refusal = second.check(message, conversation)
    assert refusal is not None and refusal[0] == ("E0105", "storage_limit_reached")
    assert "4000 are left" in refusal[1]
    assert second.check(p.UserInput(type="user_input", text="b" * 4_000), conversation) is None


def test_the_chat_budget_applies_without_an_account_quota() -> None:
    chat = limits(chat_max_stored_bytes=1_000)
    conversation = Conversation(base_prompt=None)
    chat.charge("x" * (990 - ROW_BYTES))
    pause = p.PauseAssistant(type="pause_assistant_message")
    assert chat.check(pause, conversation) is None  # its row costs ROW_BYTES, charged when accepted
    assert chat.stored == 990
    assert chat.check(p.UserInput(type="user_input", text="y" * 10), conversation) is None
    assert chat.check(p.UserInput(type="user_input", text="y" * 11), conversation) is not None
    assert chat.check(pause, conversation) is not None  # no room left for its row


def test_messages_are_rate_limited_per_chat_and_the_client_is_told_once_a_second() -> None:
    now = [0.0]
    chat = ChatLimits(Settings(chat_max_messages_per_s=10, chat_message_burst=5), clock=lambda: now[0])
    conversation = Conversation(base_prompt=None)
    hello = p.UserInput(type="user_input", text="hi")
    assert [chat.check(hello, conversation) for _ in range(5)] == [None] * 5
    refusal = chat.check(hello, conversation)
    assert refusal is not None and refusal[0] == ("E0104", "limit_exceeded") and "Too many messages" in refusal[1]
    assert chat.check(hello, conversation) is QUIET
    now[0] = 0.5  # five more tokens, but the client was told less than a second ago
    assert [chat.check(hello, conversation) for _ in range(5)] == [None] * 5
    assert chat.check(hello, conversation) is QUIET
    now[0] = 1.5
    assert chat.check(hello, conversation) is None


def test_deeply_nested_rest_tool_parameters_are_a_validation_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        check_tool_parameters("[" * 99_999)
    deep_schema = '{"type": "object", "properties": {"a": ' + '{"items": ' * 900 + "{}" + "}" * 900 + "}}"
    with pytest.raises(ValueError, match="nested too deeply"):
        check_tool_parameters(deep_schema)


def test_recorder_opens_no_file_until_audio_arrives(tmp_path: Path) -> None:
    directory = tmp_path / "chat"
    recorder = ChatRecorder(directory)
    assert recorder.open_files == 0 and not directory.exists()
    recorder.assistant_audio(b"\x01\x00" * 2400, 24000, at_ms=0)
    assert recorder.open_files == 1
    recorder.user_audio(np.zeros(1600, dtype=np.float32), at_ms=100)
    assert recorder.open_files == 2
    recorder.close()
    assert recorder.open_files == 0
    assert reconstruct(directory).is_file()


def test_a_text_only_recording_still_reconstructs(tmp_path: Path) -> None:
    directory = tmp_path / "chat"
    recorder = ChatRecorder(directory)
    recorder.close()
    assert (directory / "meta.json").is_file()
    assert reconstruct(directory).is_file()


def test_a_recorder_that_cannot_open_files_does_not_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    recorder = ChatRecorder(blocker / "chat")
    recorder.assistant_audio(b"\x00\x00" * 100, 24000, at_ms=0)  # logged, not raised
    recorder.close()
    assert recorder.open_files == 0


def test_a_recording_track_holds_at_most_its_bound(tmp_path: Path) -> None:
    """Audio sent faster than real time (or a timestamp far ahead) used to grow user.wav without end:
    10 s of 1 MB messages made 834 MB. A track stops at `max_seconds`; the rest is not recorded."""
    import wave

    directory = tmp_path / "chat"
    recorder = ChatRecorder(directory, max_seconds=2)
    second = np.full(16_000, 0.25, dtype=np.float32)
    for i in range(10):
        recorder.user_audio(second, at_ms=i * 1000)
    recorder.user_audio(second, at_ms=10_000_000)  # a gap of ~3 h of silence would be 320 MB
    recorder.assistant_audio(b"\x01\x00" * 24_000 * 5, 24_000, at_ms=0)
    recorder.close()
    with wave.open(str(directory / "user.wav")) as user, wave.open(str(directory / "assistant.wav")) as assistant:
        assert user.getnframes() == 2 * 16_000
        assert assistant.getnframes() == 2 * 24_000
    assert reconstruct(directory).is_file()


def fake_time(monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], list[float]]:
    """A clock ([now]) that the limits module's sleeps advance, and the sleeps taken."""
    from openevi.chat import limits as limits_module

    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(limits_module, "_sleep", fake_sleep)
    return now, slept


async def test_a_socket_held_back_too_long_is_told_to_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames past the rate wait (in TCP, not memory); a sender held back on end is cut off."""

    from openevi.chat.limits import MessageRate

    now, slept = fake_time(monkeypatch)
    pacer = MessageRate(10, 5, clock=lambda: now[0])
    assert all([await pacer.wait(at_most_s=2) for _ in range(5)]) and slept == []  # the burst is free
    results = [await pacer.wait(at_most_s=2) for _ in range(40)]
    assert slept and all(abs(s - 0.1) < 1e-9 for s in slept)  # then one frame per 0.1 s
    assert results[:20] == [True] * 20 and results[-1] is False  # held for over 2 s: stop reading
    now[0] += 10  # a sender that slowed down is read at once again
    assert await pacer.wait(at_most_s=2) is True


async def test_a_socket_is_read_at_a_bounded_byte_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """1 MB audio messages as fast as a client could send them took the server's whole CPU."""
    from openevi.api.chat_ws import _pacers

    now, slept = fake_time(monkeypatch)
    _, by_bytes = _pacers(Settings())
    assert by_bytes is not None
    by_bytes._clock = lambda: now[0]  # type: ignore[method-assign]
    by_bytes._at = 0.0
    for _ in range(11):
        await by_bytes.wait(cost=1_000_000)
    # 1 MiB of burst, then 256 KiB a second: 11 MB take ~38 s to be read.
    assert 35 < sum(slept) < 42, sum(slept)
