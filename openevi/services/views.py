"""Stored rows → the spec's response objects (plain dicts, JSON-ready)."""

from __future__ import annotations

from typing import Any

from openevi.store.resources import Versioned


def prompt_view(p: Versioned, *, version_type: str = "FIXED") -> dict[str, Any]:
    """return_prompt / return_prompt_public / ReturnConfigPrompt."""
    expansion = p.body.get("prompt_expansion")
    view: dict[str, Any] = {
        "id": p.id,
        "version": p.version,
        "version_type": version_type,
        "version_description": p.version_description,
        "name": p.name,
        "created_on": p.created_on,
        "modified_on": p.modified_on,
        "text": p.body["text"],
    }
    if expansion is not None:
        view["prompt_expansion"] = expansion
    return view


def tool_view(t: Versioned, *, version_type: str = "FIXED") -> dict[str, Any]:
    """return_user_defined_tool."""
    return {
        "tool_type": "FUNCTION",
        "id": t.id,
        "version": t.version,
        "version_type": version_type,
        "version_description": t.version_description,
        "name": t.name,
        "created_on": t.created_on,
        "modified_on": t.modified_on,
        "fallback_content": t.body.get("fallback_content"),
        "description": t.body.get("description"),
        "parameters": t.body["parameters"],
    }


def paged(key: str, items: list[dict[str, Any]], *, page_number: int, page_size: int, total: int) -> dict[str, Any]:
    """The common page envelope; total_pages counts pages of `page_size`."""
    return {
        "page_number": page_number,
        "page_size": page_size,
        "total_pages": (total + page_size - 1) // page_size,
        key: items,
    }
