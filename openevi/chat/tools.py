"""Tools offered to the language model: user-defined functions and the built-ins."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx

from openevi.chat.config import ChatConfig
from openevi.llm.base import ToolSpec
from openevi.schemas import protocol as p

log = logging.getLogger("openevi.chat.tools")

HANG_UP = "hang_up"
WEB_SEARCH = "web_search"
BUILTIN_SPECS = {
    HANG_UP: ToolSpec(
        name=HANG_UP,
        description=(
            "End the call. Use only when the conversation is clearly over, for example after the user "
            "says goodbye; say your own short goodbye before calling it."
        ),
        parameters={"type": "object", "properties": {}},
    ),
    WEB_SEARCH: ToolSpec(
        name=WEB_SEARCH,
        description="Search the web for current information the user asks about.",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to search for"}},
            "required": ["query"],
        },
    ),
}


@dataclass(frozen=True)
class FunctionTool:
    name: str
    description: str
    parameters: dict[str, Any]
    fallback_content: str | None


class ToolSet:
    """The tools of one chat: config tools, session tools and built-ins, by name."""

    def __init__(self, *, web_search_available: bool) -> None:
        self.functions: dict[str, FunctionTool] = {}
        self.builtins: dict[str, str | None] = {}  # name -> fallback_content
        self._web_search_available = web_search_available

    @classmethod
    def for_config(cls, config: ChatConfig, *, web_search_available: bool) -> ToolSet:
        """The config's function tools and built-ins."""
        tools = cls(web_search_available=web_search_available)
        for tool in config.tools:
            tools.add_function(
                name=tool.name,
                parameters=tool.parameters,
                description=tool.description,
                fallback_content=tool.fallback_content,
            )
        for builtin in config.builtin_tools:
            tools.add_builtin(builtin.name, builtin.fallback_content)
        return tools

    def apply_settings(self, s: p.SessionSettings) -> None:
        """session_settings.tools / builtin_tools: each given list replaces its set."""
        fields = s.model_fields_set
        functions = (
            [t.model_dump() for t in s.tools or []]
            if "tools" in fields
            else [
                {
                    "name": f.name,
                    "parameters": f.parameters,
                    "description": f.description,
                    "fallback_content": f.fallback_content,
                }
                for f in self.functions.values()
            ]
        )
        builtins = [b.model_dump() for b in s.builtin_tools or []] if "builtin_tools" in fields else None
        self.replace_session_tools(functions, builtins)

    def add_function(
        self, *, name: str, parameters: str | dict[str, Any], description: str | None, fallback_content: str | None
    ) -> None:
        schema = json.loads(parameters) if isinstance(parameters, str) else parameters
        self.functions[name] = FunctionTool(
            name=name, description=description or "", parameters=schema, fallback_content=fallback_content
        )

    def add_builtin(self, name: str, fallback_content: str | None) -> None:
        # web_search is offered only when a search backend is configured (OPENEVI_WEB_SEARCH_URL).
        if name == WEB_SEARCH and not self._web_search_available:
            log.info("web_search requested but no OPENEVI_WEB_SEARCH_URL is set; not offered")
            return
        if name in BUILTIN_SPECS:
            self.builtins[name] = fallback_content

    def replace_session_tools(self, functions: list[dict[str, Any]], builtins: list[dict[str, Any]] | None) -> None:
        """session_settings.tools / builtin_tools replace the current sets."""
        self.functions.clear()
        for tool in functions:
            self.add_function(
                name=tool["name"],
                parameters=tool.get("parameters") or "{}",
                description=tool.get("description"),
                fallback_content=tool.get("fallback_content"),
            )
        if builtins is not None:
            self.builtins.clear()
            for builtin in builtins:
                self.add_builtin(builtin["name"], builtin.get("fallback_content"))

    def specs(self) -> list[ToolSpec]:
        specs = [
            ToolSpec(name=f.name, description=f.description, parameters=f.parameters) for f in self.functions.values()
        ]
        specs += [BUILTIN_SPECS[name] for name in self.builtins]
        return specs

    def kind(self, name: str) -> str | None:
        """ "function", "builtin", or None for a name the chat does not offer."""
        if name in self.builtins:
            return "builtin"
        if name in self.functions:
            return "function"
        return None

    def fallback(self, name: str) -> str | None:
        if name in self.functions:
            return self.functions[name].fallback_content
        return self.builtins.get(name)


async def web_search(url_template: str, query: str, *, timeout_s: float = 10.0, max_chars: int = 4000) -> str:
    """Ask the configured search backend; `{query}` in the URL is replaced, else `q=` is appended."""
    if "{query}" in url_template:
        url = url_template.replace("{query}", quote_plus(query))
    else:
        url = f"{url_template}{'&' if '?' in url_template else '?'}q={quote_plus(query)}"
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        response = await client.get(url)
        response.raise_for_status()
    return response.text[:max_chars]
