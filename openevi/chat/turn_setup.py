"""What every assistant turn of a chat works with: one frozen `TurnContext` per turn.

The chat's language model is built on first use and again after `session_settings` gives a new
`language_model_api_key`; the voice is the config's until `session_settings.voice_id` changes it.
A turn keeps the model, voice and recorder of the moment it starts.
"""

from __future__ import annotations

import asyncio

from openevi.audio.recorder import ChatRecorder
from openevi.chat.config import ChatConfig
from openevi.chat.context import Conversation
from openevi.chat.output import ChatOutput
from openevi.chat.ports import Playback
from openevi.chat.runtime import ChatRuntime
from openevi.chat.said import SaidLedger
from openevi.chat.tasks import TaskScope
from openevi.chat.timings import TurnTimings
from openevi.chat.tools import ToolSet
from openevi.chat.turns import ChatIdentity, Deadlines, TurnContext
from openevi.llm.base import LanguageModel
from openevi.schemas import protocol as p
from openevi.speech.language_voices import voice_for_language
from openevi.speech.voices import Voice, resolve_voice


class TurnSetup:
    """Builds each turn's context from the chat's parts and its current voice and model key."""

    def __init__(
        self,
        *,
        runtime: ChatRuntime,
        config: ChatConfig,
        chat: ChatIdentity,
        conversation: Conversation,
        tools: ToolSet,
        output: ChatOutput,
        playback: Playback,
        tasks: TaskScope,
    ) -> None:
        self._runtime = runtime
        self._config = config
        self._chat = chat
        self._conversation = conversation
        self._tools = tools
        self._output = output
        self._playback = playback
        self._tasks = tasks
        settings = runtime.settings
        self._deadlines = Deadlines(llm_s=settings.llm_timeout_s, tool_response_s=settings.tool_response_timeout_s)
        configured = config.voice or {}
        # Never fails: Hume Voice Library and custom voices are spoken by a mapped local voice.
        self.voice: Voice = resolve_voice(
            voice_id=configured.get("id"), name=configured.get("name"), provider=configured.get("provider")
        )
        self.recorder: ChatRecorder | None = None
        self.pending_tools: dict[str, asyncio.Future[p.ToolResponse | p.ToolError]] = {}
        self._api_key: str | None = None
        self._llm: LanguageModel | None = None

    def language_model(self) -> LanguageModel:
        if self._llm is None:
            self._llm = self._runtime.language_model(self._config.language_model, self._api_key)
        return self._llm

    def use_api_key(self, key: str | None) -> None:
        """session_settings.language_model_api_key: the next turn's model uses it."""
        self._api_key = key
        self._llm = None

    def use_voice(self, voice_id: str) -> None:
        """session_settings.voice_id: any id a Hume app could send (Voice Library, custom voice) or a name."""
        self.voice = resolve_voice(voice_id=voice_id, name=voice_id)

    def reply_voice(self) -> Voice:
        """The persona's voice, or a local voice of the user's language when they speak another (issue 17)."""
        if self._runtime.settings.tts_provider != "piper":
            return self.voice  # a remote TTS reads any language with the persona's mapped voice
        return voice_for_language(self.voice, self._conversation.reply_language)

    def context(self, said: SaidLedger, timings: TurnTimings) -> TurnContext:
        """What the next assistant turn works with."""
        return TurnContext(
            llm=self.language_model,
            temperature=self._config.temperature,
            tts=self._runtime.tts,
            voice=self.reply_voice(),
            conversation=self._conversation,
            tools=self._tools,
            outbound=self._output,
            said=said,
            playback=self._playback,
            clock=self._runtime.clock,
            deadlines=self._deadlines,
            tasks=self._tasks,
            timings=timings,
            chat=self._chat,
            prosody=self._runtime.prosody,
            recorder=self.recorder,
            web_search_url=self._runtime.settings.web_search_url,
            pending_tools=self.pending_tools,
            reply_style=self._runtime.settings.reply_style,
        )

    async def aclose(self) -> None:
        if self._llm is not None:
            await self._llm.aclose()
