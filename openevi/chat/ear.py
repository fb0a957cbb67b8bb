"""The chat's ear: its `Listener`, built on the first audio (the models are shared and already
loaded), reporting to the floor. `session_settings.audio` says how raw PCM is to be read."""

from __future__ import annotations

from openevi.chat.config import ChatConfig
from openevi.chat.floor import Floor
from openevi.chat.listener import Listener
from openevi.chat.output import ChatOutput
from openevi.chat.runtime import ChatRuntime
from openevi.chat.tasks import TaskScope
from openevi.schemas import messages as msg
from openevi.schemas import protocol as p


class Ear:
    """Audio in → the floor's events (speech, barge-in, turns)."""

    def __init__(
        self,
        *,
        runtime: ChatRuntime,
        config: ChatConfig,
        floor: Floor,
        output: ChatOutput,
        tasks: TaskScope,
        verbose: bool,
        speculate: bool,
    ) -> None:
        self._runtime = runtime
        self._config = config
        self._floor = floor
        self._output = output
        self._tasks = tasks
        self._verbose = verbose
        self._speculate = speculate
        self.audio_format: p.AudioConfiguration | None = None
        self.listener: Listener | None = None

    def configure(self, audio: p.AudioConfiguration | None) -> None:
        """session_settings.audio: raw linear16 at this rate and channel count from now on."""
        self.audio_format = audio
        if self.listener is not None and audio is not None:
            self.listener.configure_pcm(audio.sample_rate, audio.channels)

    async def hear(self, raw: bytes) -> None:
        """One chunk of the user's audio."""
        listener = self.listener or self._start()
        if listener is not None:
            await listener.push(raw)

    def _start(self) -> Listener | None:
        rt = self._runtime
        if rt.vad is None or rt.asr is None:
            self._output.emit_error(msg.E_INVALID_AUDIO, "Voice input is not available on this server (see its log)")
            return None
        self._floor.offset_ms = self._output.elapsed_ms()
        self.listener = Listener(
            vad=rt.vad,
            asr=rt.asr,
            prosody=rt.prosody,
            turn_detection=self._config.turn_detection,
            min_interruption_ms=self._config.min_interruption_ms,
            verbose=self._verbose,
            events=self._floor,
            speculate=self._speculate,
            tasks=self._tasks,
            clock=rt.clock,
            end_of_turn=rt.end_of_turn,
        )
        self.configure(self.audio_format)
        return self.listener

    async def aclose(self) -> None:
        if self.listener is not None:
            await self.listener.aclose()
