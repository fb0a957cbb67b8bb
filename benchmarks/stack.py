"""The server the chat and voice benchmarks talk to: embedded defaults, or the scripted model."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.server import ServerProcess
from tests.support.scripted_llm import Reply, ScriptedLLM


@contextmanager
def bench_server(
    model: str,
    reply: str,
    *,
    log_level: str = "warning",
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
) -> Iterator[ServerProcess]:
    """A running server whose model is the local default (`local`) or a scripted fast one (`scripted`).

    The scripted model streams `reply` two words every 20 ms, so the numbers measure openevi itself.
    Audio is not paced to real time (the benchmark clients do not play it).
    """
    llm = ScriptedLLM(default=Reply(reply, chunk_words=2, delay=0.02)).start()
    env = {"OPENEVI_AUDIO_LEAD_MS": "600000", "OPENEVI_LOG_LEVEL": log_level, **(extra_env or {})}
    if model == "scripted":
        env |= {
            "OPENEVI_LLM_PROVIDER": "OPEN_AI",
            "OPENEVI_LLM_MODEL": "scripted",
            "OPENEVI_OPENAI_BASE_URL": llm.base_url,
            "OPENEVI_OPENAI_API_KEY": "x",
        }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            serve_args = ("--workers", str(workers)) if workers > 1 else ()
            server = ServerProcess(data_dir=Path(tmp), extra_env=env, serve_args=serve_args)
            server.start(timeout=300)
            try:
                yield server
            finally:
                server.stop()
    finally:
        llm.stop()
