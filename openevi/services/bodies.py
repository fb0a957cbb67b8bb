"""What a prompt or tool version stores: the posted fields its kind keeps, in one place.

The REST routes, `openevi import` and a config's inline prompt all store versions through these, so
the stored bodies cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from openevi.schemas.rest import PostedToolVersion, PromptExpansion


def prompt_body(text: str, expansion: PromptExpansion | None) -> dict[str, Any]:
    """A prompt version's stored body."""
    return {"text": text, "prompt_expansion": expansion.model_dump() if expansion else None}


def tool_body(posted: PostedToolVersion) -> dict[str, Any]:
    """A tool version's stored body."""
    return {
        "parameters": posted.parameters,
        "description": posted.description,
        "fallback_content": posted.fallback_content,
    }
