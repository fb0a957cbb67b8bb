"""A stand-in for the `sounddevice` module (the sound card), so the hume SDK's own microphone and
playback code can run in tests: the "microphone" plays given PCM in real time and then silence, the
"speaker" records what the SDK plays.

    card = FakeSoundCard(mic_pcm, sample_rate=48_000)
    with card.installed():                  # sys.modules["sounddevice"] = card, SDK audio modules reloaded
        await MicrophoneInterface.start(socket, byte_stream=stream)
    card.played                             # bytes the SDK wrote to the speaker
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

_SDK_AUDIO_MODULES = (
    "hume.empathic_voice.chat.audio.microphone",
    "hume.empathic_voice.chat.audio.audio_utilities",
    "hume.empathic_voice.chat.audio.chat_client",
    "hume.empathic_voice.chat.audio.microphone_sender",
    "hume.empathic_voice.chat.audio.microphone_interface",
)


class CallbackStop(Exception):
    """Raised by a playback callback to end the stream (as in sounddevice)."""


class _Stream:
    """A sound card stream: calls `callback` once per block from its own thread, in real time."""

    def __init__(self, *, samplerate: float, channels: int, blocksize: int, tick: Callable[[], bool]) -> None:
        self._period = blocksize / samplerate
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not self._tick():
                return
            next_at += self._period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> _Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class FakeSoundCard(ModuleType):
    """The parts of `sounddevice` that the hume SDK uses."""

    CallbackStop = CallbackStop
    CallbackFlags = object

    def __init__(self, mic_pcm: bytes, *, sample_rate: int = 48_000, block_ms: int = 20) -> None:
        super().__init__("sounddevice")
        self.default = SimpleNamespace(device=(0, 0))
        self.sample_rate = sample_rate
        self._mic = mic_pcm
        self._block = sample_rate * block_ms // 1000
        self.played = bytearray()
        self.mic_sent = 0
        self._lock = threading.Lock()

    def query_devices(self, device: Any = None) -> Any:
        info = {"name": "fake", "max_input_channels": 1, "default_samplerate": float(self.sample_rate)}
        return info if device is not None else [info]

    def RawInputStream(self, *, callback: Callable[..., None], dtype: str, device: Any = None) -> _Stream:
        assert dtype == "int16"

        def tick() -> bool:
            size = self._block * 2
            chunk = self._mic[self.mic_sent : self.mic_sent + size]
            chunk += b"\x00" * (size - len(chunk))  # after the speech: a quiet room
            self.mic_sent += size
            callback(chunk, self._block, None, None)
            return True

        return _Stream(samplerate=self.sample_rate, channels=1, blocksize=self._block, tick=tick)

    def RawOutputStream(
        self,
        *,
        samplerate: float,
        channels: int,
        dtype: str,
        callback: Callable[..., None],
        blocksize: int | None = None,
        device: Any = None,
        finished_callback: Callable[[], None] | None = None,
    ) -> _Stream:
        frames = blocksize or 256
        out = bytearray(frames * channels * 2)

        def tick() -> bool:
            try:
                callback(memoryview(out), frames, None, None)
            except CallbackStop:
                if finished_callback is not None:
                    finished_callback()
                return False
            with self._lock:
                self.played += out
            return True

        return _Stream(samplerate=samplerate, channels=channels, blocksize=frames, tick=tick)

    @contextlib.contextmanager
    def installed(self) -> Iterator[FakeSoundCard]:
        """Make the SDK's audio modules see this card (they import `sounddevice` at import time)."""
        previous = sys.modules.get("sounddevice")
        sys.modules["sounddevice"] = self
        try:
            for name in _SDK_AUDIO_MODULES:
                if name in sys.modules:
                    importlib.reload(sys.modules[name])
                else:
                    importlib.import_module(name)
            yield self
        finally:
            if previous is None:
                sys.modules.pop("sounddevice", None)
            else:
                sys.modules["sounddevice"] = previous
