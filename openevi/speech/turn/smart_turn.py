"""Smart Turn v3.2 (Pipecat's end-of-turn model, ONNX) run directly with onnxruntime.

One session shared by all chats; checks run on a small thread pool, off the event loop. A check is
one forward pass over 8 s of log-mel features (~80 ms on one core).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime

from openevi.speech.turn import features
from openevi.speech.turn.model_file import verified

__all__ = ["SmartTurnModel"]

log = logging.getLogger(__name__)


class SmartTurnModel:
    """P(complete) of the speech so far, from the last 8 s of audio."""

    sample_rate: int = features.SAMPLE_RATE

    def __init__(self, *, model_path: Path | None = None, onnx_threads: int = 1, workers: int = 1) -> None:
        """`model_path` overrides the file fetched from the pipecat-ai wheel (model_file.py); a missing
        or damaged file fails here, at startup, with the command that fetches it."""
        self._path = verified(model_path)
        self._threads = onnx_threads
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smart-turn")
        self._session: onnxruntime.InferenceSession | None = None

    def _load_sync(self) -> onnxruntime.InferenceSession:
        if self._session is None:
            path = verified(self._path)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            log.info("Loaded Smart Turn from %s", path)
        return self._session

    def probability_sync(self, audio: np.ndarray) -> float:
        """The check itself, on the calling thread (benchmarks time it; chats use `probability`)."""
        session = self._load_sync()
        inputs = features.log_mel(audio)[np.newaxis]
        (output,) = session.run(None, {"input_features": inputs})
        return float(np.asarray(output).reshape(-1)[0])

    async def probability(self, audio: np.ndarray) -> float:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.probability_sync, audio)

    async def load(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._load_sync)

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
