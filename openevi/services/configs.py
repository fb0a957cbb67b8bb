"""Configs: validation of references, defaults, inline prompts, and rendering to `return_config`.

The chat engine reads configs through `load_config` too, so a chat sees exactly what the REST API
shows.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from openevi.schemas import config_defaults as defaults
from openevi.schemas.rest import PostedConfig, PostedConfigVersion
from openevi.services.bodies import prompt_body
from openevi.services.views import prompt_view, tool_view
from openevi.speech.voices import public_voice
from openevi.store import config_reads, resources
from openevi.store.config_reads import Referenced
from openevi.store.db import new_id
from openevi.store.errors import NotFoundError
from openevi.store.models import ResourceHead, ResourceVersion
from openevi.store.resources import Versioned


class ConfigRejected(Exception):
    """A config body that parsed but cannot be accepted; `loc` points into the body."""

    def __init__(self, loc: list[str | int], message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.status = status


DEFAULT_TURN_DETECTION = defaults.TURN_DETECTION
DEFAULT_INTERRUPTION = defaults.INTERRUPTION
DEFAULT_TIMEOUTS = defaults.TIMEOUTS
DEFAULT_NUDGES = defaults.NUDGES
EVENT_MESSAGE_NAMES = defaults.EVENT_MESSAGE_NAMES
LANGUAGE_MODEL_URL_SCHEMES = ("http", "https", "ws", "wss")
_OMIT_WHEN_NONE = frozenset({"prompt", "voice", "language_model"})


def _merge(defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with the given non-null values."""
    merged = dict(defaults)
    for key, value in (given or {}).items():
        if value is not None:
            merged[key] = value
    return merged


def unparseable(url: str) -> str | None:
    """Why the HTTP client could not call `url` (`0177.0.0.1`, Unicode digits…), or None."""
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        return str(exc)
    return None


def _check_webhook_url(url: str, index: int, *, allow_http: bool) -> None:
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        hint = "" if allow_http else " (set OPENEVI_ALLOW_HTTP_WEBHOOKS=true to allow http for local development)"
        raise ConfigRejected(["webhooks", index, "url"], f"webhook url must be a valid https URL{hint}")
    if (why := unparseable(url)) is not None:
        raise ConfigRejected(["webhooks", index, "url"], f"webhook url is not a valid URL: {why}")


async def checked_body(
    session: AsyncSession,
    posted: PostedConfigVersion,
    *,
    account_id: str,
    config_id: str,
    config_name: str,
    version: int,
    allow_http_webhooks: bool,
    previous: Versioned | None = None,
) -> dict[str, Any]:
    """Check a posted config and turn it into the stored body (references, not copies).

    The REST API's create and new-version routes store what this returns; so does `openevi import`,
    which stores versions under their original numbers (`previous` None).
    """
    body: dict[str, Any] = {"evi_version": posted.evi_version}

    prompt_ref: dict[str, Any] | None = None
    if posted.prompt is not None:
        if posted.prompt.text is not None:
            created = await resources.create(
                session,
                account_id=account_id,
                kind="prompt",
                name=f"{config_name[:400]} v{version} prompt ({config_id[:8]})",
                body=prompt_body(posted.prompt.text, posted.prompt.prompt_expansion),
                version_description=f"Created inline by config {config_id} version {version}",
            )
            prompt_ref = {"id": created.id, "version": created.version}
        else:
            assert posted.prompt.id is not None
            try:
                await resources.get_version(
                    session,
                    account_id=account_id,
                    kind="prompt",
                    resource_id=posted.prompt.id,
                    version=posted.prompt.version,
                )
            except NotFoundError as exc:
                raise ConfigRejected(["prompt"], str(exc), status=400) from exc
            prompt_ref = {"id": posted.prompt.id, "version": posted.prompt.version}
    body["prompt"] = prompt_ref

    # Any voice a Hume app could name is accepted and kept as posted (Voice Library names and ids,
    # custom voices): the chat speaks it with a local voice (openevi.speech.voices.resolve_voice).
    body["voice"] = posted.voice.model_dump(exclude_none=True) if posted.voice is not None else None

    lm = posted.language_model.model_dump(exclude_none=True) if posted.language_model else None
    if lm and lm.get("model_provider") == "CUSTOM_LANGUAGE_MODEL":
        resource = lm.get("model_resource") or ""
        if urlsplit(resource).scheme not in LANGUAGE_MODEL_URL_SCHEMES or unparseable(resource) is not None:
            raise ConfigRejected(
                ["language_model", "model_resource"],
                "CUSTOM_LANGUAGE_MODEL needs model_resource set to the URL of your model server",
            )
    body["language_model"] = lm

    inherited_short = (previous.body.get("ellm_model") or {}).get("allow_short_responses") if previous else None
    short = posted.ellm_model.allow_short_responses if posted.ellm_model else None
    body["ellm_model"] = {"allow_short_responses": bool(short if short is not None else inherited_short or False)}

    tools: list[dict[str, Any]] = []
    tool_names: set[str] = set()
    for index, ref in enumerate(posted.tools or []):
        try:
            tool = await resources.get_version(
                session, account_id=account_id, kind="tool", resource_id=ref.id, version=ref.version
            )
        except NotFoundError as exc:
            raise ConfigRejected(["tools", index], str(exc), status=400) from exc
        if tool.name in tool_names:
            raise ConfigRejected(["tools", index], f"Two tools named {tool.name!r}; tool names must be unique")
        tool_names.add(tool.name)
        tools.append({"id": ref.id, "version": ref.version})
    body["tools"] = tools

    builtins: list[dict[str, Any]] = []
    for index, builtin in enumerate(posted.builtin_tools or []):
        if any(b["name"] == builtin.name for b in builtins):
            raise ConfigRejected(["builtin_tools", index], f"Built-in tool {builtin.name!r} listed twice")
        builtins.append({"name": builtin.name, "fallback_content": builtin.fallback_content})
    body["builtin_tools"] = builtins

    posted_events = posted.event_messages.model_dump() if posted.event_messages else {}
    body["event_messages"] = {
        name: _merge({"enabled": False, "text": None}, posted_events.get(name)) for name in EVENT_MESSAGE_NAMES
    }
    body["nudges"] = _merge(DEFAULT_NUDGES, posted.nudges.model_dump() if posted.nudges else None)
    posted_timeouts = posted.timeouts.model_dump() if posted.timeouts else {}
    body["timeouts"] = {
        name: _merge(DEFAULT_TIMEOUTS[name], posted_timeouts.get(name)) for name in ("inactivity", "max_duration")
    }
    body["interruption"] = _merge(
        DEFAULT_INTERRUPTION, posted.interruption.model_dump() if posted.interruption else None
    )
    body["turn_detection"] = _merge(
        DEFAULT_TURN_DETECTION, posted.turn_detection.model_dump() if posted.turn_detection else None
    )

    webhooks: list[dict[str, Any]] = []
    for index, hook in enumerate(posted.webhooks or []):
        _check_webhook_url(hook.url, index, allow_http=allow_http_webhooks)
        webhooks.append({"url": hook.url, "events": list(dict.fromkeys(hook.events))})
    body["webhooks"] = webhooks
    return body


async def create_config(
    session: AsyncSession, posted: PostedConfig, *, account_id: str, allow_http_webhooks: bool
) -> dict[str, Any]:
    """Create a config at version 0 and return it rendered."""
    config_id = new_id()
    body = await checked_body(
        session,
        posted,
        account_id=account_id,
        config_id=config_id,
        config_name=posted.name,
        version=0,
        allow_http_webhooks=allow_http_webhooks,
    )
    created = await resources.create(
        session,
        account_id=account_id,
        kind="config",
        name=posted.name,
        body=body,
        version_description=posted.version_description,
        resource_id=config_id,
    )
    return (await render_configs(session, account_id=account_id, configs=[created]))[0]


async def create_config_version(
    session: AsyncSession,
    posted: PostedConfigVersion,
    *,
    account_id: str,
    config_id: str,
    allow_http_webhooks: bool,
) -> dict[str, Any]:
    previous = await resources.get_version(
        session, account_id=account_id, kind="config", resource_id=config_id, version=None
    )
    head = await resources.head(session, account_id=account_id, kind="config", resource_id=config_id)
    body = await checked_body(
        session,
        posted,
        account_id=account_id,
        config_id=config_id,
        config_name=previous.name,
        version=head.last_version + 1,
        previous=previous,
        allow_http_webhooks=allow_http_webhooks,
    )
    created = await resources.create_version(
        session,
        account_id=account_id,
        kind="config",
        resource_id=config_id,
        body=body,
        version_description=posted.version_description,
    )
    return (await render_configs(session, account_id=account_id, configs=[created]))[0]


_heads = ResourceHead.__table__
_versions = ResourceVersion.__table__
_other = _versions.alias()  # not auto-correlated with the outer query's versions
_newest = select(func.max(_other.c.version)).where(_other.c.id == _heads.c.id).scalar_subquery()
# The versions a set of configs refers to, prompts and tools together: of each referenced resource its
# newest version (for LATEST references) and any version whose number some FIXED reference names —
# never its whole history. Ids are unique across kinds; the caller checks each row's kind.
_REFERENCED = (
    select(*resources.COLUMNS, _heads.c.kind)
    .select_from(_heads.join(_versions, _versions.c.id == _heads.c.id))
    .where(
        _heads.c.account_id == bindparam("account_id"),
        _heads.c.kind.in_(("prompt", "tool")),
        _heads.c.id.in_(bindparam("ids", expanding=True)),
        or_(_versions.c.version.in_(bindparam("versions", expanding=True)), _versions.c.version == _newest),
    )
)


def _refs_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    refs = list(body.get("tools", []))
    if body.get("prompt"):
        refs.append(body["prompt"])
    return refs


async def _referenced(session: AsyncSession, *, account_id: str, configs: list[Versioned]) -> Referenced:
    """The prompt and tool versions the configs refer to, in one query (for configs already read)."""
    refs = [ref for c in configs for ref in _refs_of(c.body)]
    if not refs:
        return {}
    params = {
        "account_id": account_id,
        "ids": sorted({ref["id"] for ref in refs}),
        "versions": sorted({ref["version"] for ref in refs if ref["version"] is not None}),
    }
    found: Referenced = defaultdict(dict)
    for row in await session.execute(_REFERENCED, params):
        found[(row[-1], row[0])][row[2]] = resources.versioned_row(row)
    return found


def _pick(versions: dict[int, Versioned] | None, version: int | None) -> Versioned | None:
    if not versions:
        return None
    if version is None:
        return versions[max(versions)]  # the newest version is always among the rows fetched
    return versions.get(version)


def _voice_view(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    shown = public_voice(voice_id=stored.get("id"), name=stored.get("name"), provider=stored.get("provider"))
    return {**shown, "compatible_octave_models": []}


async def render_configs(session: AsyncSession, *, account_id: str, configs: list[Versioned]) -> list[dict[str, Any]]:
    """Render configs with their prompts and tools embedded (one query for any number)."""
    return render_found(configs, await _referenced(session, account_id=account_id, configs=configs))


def render_found(configs: list[Versioned], referenced: Referenced) -> list[dict[str, Any]]:
    """Render configs given the prompt and tool versions they refer to (references not found are left
    out, as for a deleted version)."""
    rendered = []
    for c in configs:
        body = c.body
        prompt = None
        if body.get("prompt"):
            ref = body["prompt"]
            found = _pick(referenced.get(("prompt", ref["id"])), ref["version"])
            if found is not None:
                prompt = prompt_view(found, version_type="FIXED" if ref["version"] is not None else "LATEST")
        tool_views = []
        for ref in body.get("tools", []):
            found = _pick(referenced.get(("tool", ref["id"])), ref["version"])
            if found is not None:
                tool_views.append(tool_view(found, version_type="FIXED" if ref["version"] is not None else "LATEST"))
        view = {
            "id": c.id,
            "version": c.version,
            "version_description": c.version_description,
            "name": c.name,
            "created_on": c.created_on,
            "modified_on": c.modified_on,
            "evi_version": body["evi_version"],
            "prompt": prompt,
            "voice": _voice_view(body.get("voice")),
            "language_model": body.get("language_model"),
            "ellm_model": body["ellm_model"],
            "tools": tool_views,
            "builtin_tools": [
                {"tool_type": "BUILTIN", "name": b["name"], "fallback_content": b.get("fallback_content")}
                for b in body.get("builtin_tools", [])
            ],
            "event_messages": body["event_messages"],
            "nudges": body["nudges"],
            "timeouts": body["timeouts"],
            "interruption": body["interruption"],
            "turn_detection": body["turn_detection"],
            "webhooks": body.get("webhooks", []),
        }
        # The spec types these three as plain objects (not nullable): absent rather than null.
        rendered.append({k: v for k, v in view.items() if v is not None or k not in _OMIT_WHEN_NONE})
    return rendered


async def load_config(session: AsyncSession, *, account_id: str, config_id: str, version: int | None) -> dict[str, Any]:
    """One config version (latest when `version` is None), rendered, in one query; NotFoundError if absent."""
    found = await config_reads.config_version(session, account_id=account_id, config_id=config_id, version=version)
    if not found.configs:
        what = f"version {version} of " if version is not None else ""
        raise NotFoundError(f"No {what}config with id {config_id}")
    return render_found(found.configs, found.referenced)[0]


async def load_config_page(
    session: AsyncSession,
    *,
    account_id: str,
    page_number: int,
    page_size: int,
    restrict_to_most_recent: bool,
    name: str | None = None,
    resource_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of config versions, rendered, and the total (as `resources.list_page`), in one query
    unless the page is past the end."""
    found = await config_reads.config_page(
        session,
        account_id=account_id,
        page_number=page_number,
        page_size=page_size,
        restrict_to_most_recent=restrict_to_most_recent,
        name=name,
        resource_id=resource_id,
    )
    if not found.configs:
        _, total = await resources.list_page(
            session,
            account_id=account_id,
            kind="config",
            page_number=page_number,
            page_size=page_size,
            restrict_to_most_recent=restrict_to_most_recent,
            name=name,
            resource_id=resource_id,
        )
        return [], total
    return render_found(found.configs, found.referenced), found.total
