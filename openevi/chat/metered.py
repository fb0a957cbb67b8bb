"""Providers wrapped so every request is counted, timed (openevi_provider_requests_*) and traced.

The wrappers pass every other attribute through, so the engine sees the provider it was given.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from opentelemetry.trace import Span

from openevi import metrics, tracing
from openevi.llm.base import GenerationRequest, LanguageModel, LLMEvent, TextDelta
from openevi.speech.asr.base import SpeechRecognizer, Transcript
from openevi.speech.prosody.base import ProsodyModel
from openevi.speech.tts.base import TextToSpeech
from openevi.speech.voices import Voice


@contextmanager
def _request(kind: str) -> Iterator[Span]:
    with metrics.timed_provider_request(kind), tracing.span(kind) as span:
        yield span


class _Passthrough:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class MeteredASR(_Passthrough):
    def __init__(self, inner: SpeechRecognizer) -> None:
        super().__init__(inner)
        self._asr = inner

    async def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> Transcript:
        with _request("asr"):
            return await self._asr.transcribe(audio, prompt=prompt)


class MeteredTTS(_Passthrough):
    def __init__(self, inner: TextToSpeech) -> None:
        super().__init__(inner)
        self._tts = inner

    async def synthesize(self, text: str, *, voice: Voice) -> AsyncGenerator[bytes, None]:
        with _request("tts"):
            stream = self._tts.synthesize(text, voice=voice)
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                await stream.aclose()


class MeteredProsody(_Passthrough):
    def __init__(self, inner: ProsodyModel) -> None:
        super().__init__(inner)
        self._prosody = inner

    async def score(self, audio: np.ndarray, *, text: str | None = None) -> dict[str, float]:
        with _request("prosody"):
            return await self._prosody.score(audio, text=text)


class MeteredLanguageModel(_Passthrough):
    def __init__(self, inner: LanguageModel) -> None:
        super().__init__(inner)
        self._model = inner

    async def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
        with _request("llm") as span:
            span.set_attribute("openevi.llm.model", str(getattr(self._model, "name", "")))
            started, deltas = time.monotonic(), 0
            events = self._model.stream(request)
            try:
                async for event in events:
                    if isinstance(event, TextDelta):
                        if deltas == 0:
                            span.set_attribute(
                                "openevi.llm.first_token_ms", round((time.monotonic() - started) * 1000, 1)
                            )
                        deltas += 1
                    yield event
            finally:
                span.set_attribute("openevi.llm.text_deltas", deltas)
                closer = getattr(events, "aclose", None)
                if closer is not None:
                    await closer()


def metered_asr(inner: SpeechRecognizer | None) -> SpeechRecognizer | None:
    return None if inner is None else MeteredASR(inner)


def metered_tts(inner: TextToSpeech) -> TextToSpeech:
    return MeteredTTS(inner)


def metered_prosody(inner: ProsodyModel | None) -> ProsodyModel | None:
    return None if inner is None else MeteredProsody(inner)


def metered_language_model(inner: LanguageModel) -> LanguageModel:
    return MeteredLanguageModel(inner)
