"""Speech recognition offloaded to an OpenAI-compatible `POST /v1/audio/transcriptions` server.

Served by OpenAI itself, vLLM, Speaches (faster-whisper-server) and others, typically on a GPU
machine. Each utterance goes up as a 16 kHz mono 16-bit WAV in a multipart form (`file`, `model`,
`language`, `prompt`, `response_format`); the reply is `{"text": …}` (`json`) or, when the language
is to be detected, `verbose_json`, which adds `language` (a server refusing it is asked for `json`
from then on). Formats and servers: docs/providers.md.
"""

from __future__ import annotations

import io
import logging
import re
import wave

import httpx
import numpy as np

from openevi.speech.asr.base import ASRCapabilities, Transcript
from openevi.speech.asr.errors import ASRError
from openevi.speech.remote_http import audio_url, auth_headers, describe_failure, error_text, make_client

__all__ = ["OpenAIAudioASR", "encode_wav"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # what Whisper-family servers resample to anyway; the smallest upload
_WARM_SECONDS = 0.5
_REFUSED = (400, 415, 422)  # how servers refuse a parameter value (OpenAI 400, FastAPI 422)
_ISO_CODE = re.compile(r"^[a-z]{2,3}$")
# OpenAI's verbose_json names the language ("english"); user_message.language wants its ISO code.
_LANGUAGE_NAMES = {
    "english": "en", "spanish": "es", "french": "fr", "german": "de", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "russian": "ru", "chinese": "zh", "japanese": "ja", "korean": "ko", "arabic": "ar",
    "hindi": "hi", "turkish": "tr", "polish": "pl", "swedish": "sv", "ukrainian": "uk", "indonesian": "id",
}  # fmt: skip


def encode_wav(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """float32 mono in [-1, 1] as a 16-bit PCM WAV file."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return out.getvalue()


def _language_code(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    name = value.strip().lower()
    if _ISO_CODE.match(name):
        return name
    return _LANGUAGE_NAMES.get(name)


class OpenAIAudioASR:
    """A remote transcription server behind the SpeechRecognizer contract (whole utterances).

    `language=None` asks the server to detect the language (`verbose_json`, which reports it);
    with a language set the cheaper `json` format is used and that language is reported.
    `read_timeout` bounds the wait for the transcript; `connect_timeout` bounds connecting.
    """

    capabilities = ASRCapabilities(streaming=False, sample_rate=SAMPLE_RATE)

    def __init__(
        self,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        model: str = "whisper-1",
        language: str | None = "en",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.strip():
            raise ASRError("The ASR provider 'openai' needs a base URL (OPENEVI_ASR_BASE_URL)")
        self.url = audio_url(base_url, "transcriptions")
        self.model = model
        self._language = language.strip().lower() if language and language.strip() else None
        self._verbose = self._language is None  # only verbose_json reports the detected language
        self._headers = auth_headers(api_key)
        self._client = make_client(connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport)
        self._closed = False

    async def load(self, *, warm: bool = True) -> None:
        """With `warm`, transcribe half a second of near-silence: servers such as Speaches load their
        model on the first request, which should not be the user's first turn. Failures raise ASRError."""
        if warm:
            t = np.arange(int(SAMPLE_RATE * _WARM_SECONDS), dtype=np.float32) / SAMPLE_RATE
            await self.transcribe((0.01 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))

    async def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> Transcript:
        """Transcribe one utterance. Cancelling abandons the request (its connection is closed)."""
        if self._closed:
            raise ASRError("The remote ASR provider is closed")
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if not samples.size:
            return Transcript(text="", language=self._language)
        wav = encode_wav(samples)
        verbose = self._verbose
        response = await self._post(wav, prompt, verbose=verbose)
        if verbose and response.status_code in _REFUSED:
            # gpt-4o-transcribe and older vLLM answer only `json`: detect without being told the language.
            logger.warning(
                "ASR server at %s refused verbose_json (HTTP %d: %s); using json, languages go unreported",
                self.url, response.status_code, error_text(response.content),
            )  # fmt: skip
            self._verbose = False
            response = await self._post(wav, prompt, verbose=False)
        if response.status_code >= 400:
            raise ASRError(
                f"The ASR server at {self.url} returned HTTP {response.status_code}: {error_text(response.content)}"
            )
        return self._parse(response)

    async def _post(self, wav: bytes, prompt: str | None, *, verbose: bool) -> httpx.Response:
        form = {"model": self.model, "response_format": "verbose_json" if verbose else "json"}
        if self._language:
            form["language"] = self._language
        if prompt:
            form["prompt"] = prompt
        files = {"file": ("speech.wav", wav, "audio/wav")}
        try:
            return await self._client.post(self.url, data=form, files=files, headers=self._headers)
        except httpx.HTTPError as exc:
            raise ASRError(describe_failure("The ASR server", self.url, exc, self._client.timeout)) from exc

    def _parse(self, response: httpx.Response) -> Transcript:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            shown = response.content[:200].decode("utf-8", "replace")
            raise ASRError(f"The ASR server at {self.url} sent a malformed transcription (no JSON text): {shown!r}")
        language = _language_code(body.get("language")) or self._language
        return Transcript(text=body["text"].strip(), language=language)

    async def aclose(self) -> None:
        self._closed = True
        await self._client.aclose()

