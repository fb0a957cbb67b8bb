"""Helpers for the language-model provider tests: a recording MockTransport, and a reply read to its end."""

from __future__ import annotations

import json
from typing import Any

import httpx

from openevi.llm.base import GenerationRequest, LanguageModel, LLMEvent


class Recorder:
    """Answers with `body` (HTTP `status`) as text/event-stream; `requests` holds what was sent."""

    def __init__(self, body: str, status: int = 200) -> None:
        self.body, self.status = body, status
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, text=self.body, headers={"content-type": "text/event-stream"})

    @property
    def sent(self) -> dict[str, Any]:
        """The JSON body of the last request."""
        body: dict[str, Any] = json.loads(self.requests[-1].content)
        return body


async def collect(model: LanguageModel, request: GenerationRequest) -> list[LLMEvent]:
    """Every event of one reply; the model is closed afterwards."""
    try:
        return [event async for event in model.stream(request)]
    finally:
        await model.aclose()
