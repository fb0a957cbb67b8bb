"""What every chat of this process shares: settings, the store, speech models, the bus."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi import metrics, tracing
from openevi.bus.base import ChatBus
from openevi.chat.clock import Clock, SystemClock
from openevi.chat.turn_detection import EndOfTurnRule
from openevi.llm.base import LanguageModel
from openevi.schemas.chat_types import ChatStatus
from openevi.settings import Settings
from openevi.speech.asr.base import SpeechRecognizer
from openevi.speech.prosody.base import ProsodyModel
from openevi.speech.tts.base import TextToSpeech
from openevi.speech.vad.base import VoiceActivityDetector
from openevi.speech.voices import DEFAULT_VOICE

if TYPE_CHECKING:
    from openevi.chat.session import ChatSession

log = logging.getLogger("openevi.chat.runtime")

LanguageModelFactory = Callable[[dict[str, Any] | None, str | None], LanguageModel]


class LiveChats(dict[str, "ChatSession"]):
    """This process's live chats by id; a chat entering or leaving is counted (openevi_chats_*)."""

    def __init__(self) -> None:
        super().__init__()
        self._empty = asyncio.Event()
        self._empty.set()

    def __setitem__(self, chat_id: str, session: ChatSession) -> None:
        if chat_id not in self:
            metrics.chat_started(_transport(session))
            traced = tracing.chat_started(chat_id, transport=_transport(session), chat_group_id=session.chat_group_id)
            if traced is not None:
                session.tasks.context = traced  # the chat's tasks trace as children of its span
        super().__setitem__(chat_id, session)
        self._empty.clear()

    async def until_empty(self) -> None:
        """Return once no chat is live (at once if none is)."""
        await self._empty.wait()

    def pop(self, chat_id: str, *default: Any) -> Any:
        if chat_id not in self:
            return super().pop(chat_id, *default)
        session = super().pop(chat_id)
        metrics.chat_ended(_transport(session), str(session.status or "ACTIVE"), session.account_id)
        tracing.chat_ended(chat_id, str(session.status or "ACTIVE"))
        if not self:
            self._empty.set()
        return session


def _transport(session: ChatSession) -> str:
    return "phone" if session.phone_caller is not None else "websocket"


@dataclass
class ChatRuntime:
    """Shared by all chats in this process; built once by the app lifespan."""

    settings: Settings
    db: async_sessionmaker[AsyncSession]
    bus: ChatBus
    tts: TextToSpeech
    language_model: LanguageModelFactory
    notify_webhooks: Callable[[], None] = lambda: None
    # A chat's recording directory is finished (openevi/storage/spool.py uploads it to the store).
    on_recording_finished: Callable[[Path], None] = lambda _: None
    # Speech input; None when the provider could not be created (chats then take text only).
    vad: VoiceActivityDetector | None = None
    asr: SpeechRecognizer | None = None
    prosody: ProsodyModel | None = None
    # OPENEVI_TURN_DETECTOR=smart-turn: the trained end-of-turn model and its rule; None: silence only.
    end_of_turn: EndOfTurnRule | None = None
    instance_id: str = field(default_factory=lambda: secrets.token_hex(6))
    # Timeouts, nudges and playback pacing read time here (tests drive a fake one).
    clock: Clock = field(default_factory=SystemClock)
    sessions: LiveChats = field(default_factory=LiveChats)

    async def shutdown(self) -> None:
        """End every live chat (the server is stopping)."""
        live = list(self.sessions.values())
        if live:
            await asyncio.gather(*(s.close(ChatStatus.USER_ENDED, reason="server shutting down") for s in live))

    async def close_providers(self) -> None:
        """Release the speech models' threads and sessions (the app lifespan owns them)."""
        turn_model = self.end_of_turn.model if self.end_of_turn is not None else None
        providers = (("tts", self.tts), ("asr", self.asr), ("prosody", self.prosody), ("vad", self.vad))
        for name, provider in (*providers, ("end-of-turn", turn_model)):
            closer = getattr(provider, "aclose", None)
            if closer is None:
                continue
            try:
                await closer()
            except Exception:
                log.exception("closing the %s provider failed", name)


async def warm_up(runtime: ChatRuntime) -> None:
    """Load the speech models (and the default language model) before the first chat needs them."""
    turn_model = runtime.end_of_turn.model if runtime.end_of_turn is not None else None
    for name, model in (("asr", runtime.asr), ("prosody", runtime.prosody), ("end-of-turn", turn_model)):
        loader = getattr(model, "load", None)
        if loader is None:
            continue
        try:
            await loader()
        except Exception:
            log.exception("%s warm-up failed", name)
    try:
        async for _ in runtime.tts.synthesize("Hello.", voice=DEFAULT_VOICE):
            pass
    except Exception:
        log.exception("speech warm-up failed")
    try:
        llm = runtime.language_model(None, None)
        warmer = getattr(llm, "warm_up", None)
        if warmer is not None:
            await warmer()
    except Exception:
        log.exception("language model warm-up failed")
