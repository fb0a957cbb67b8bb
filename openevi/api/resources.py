"""The three versioned resources wired to the shared router shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from openevi.api.auth import Principal
from openevi.api.deps import Page
from openevi.api.versioned import Create, CreateVersion, Render, VersionedResource, versioned_router
from openevi.schemas import rest
from openevi.services import configs
from openevi.services.bodies import prompt_body, tool_body
from openevi.services.views import prompt_view, tool_view
from openevi.settings import Settings
from openevi.store import resources
from openevi.store.resources import Kind, Versioned


def _prompt_body(posted: rest.PostedPrompt | rest.PostedPromptVersion) -> dict[str, Any]:
    return prompt_body(posted.text, posted.prompt_expansion)


def _stored_as_posted(
    kind: Kind, body_of: Callable[[Any], dict[str, Any]], view: Callable[[Versioned], dict[str, Any]]
) -> tuple[Create, CreateVersion, Render]:
    """The hooks of a kind stored as posted (prompts, tools): `body_of` picks the stored fields, `view` shows a row."""

    async def create(s: AsyncSession, caller: Principal, body: Any, _: Settings) -> dict[str, Any]:
        created = await resources.create(
            s,
            account_id=caller.account_id,
            kind=kind,
            name=body.name,
            body=body_of(body),
            version_description=body.version_description,
        )
        return view(created)

    async def create_version(s: AsyncSession, caller: Principal, id: str, body: Any, _: Settings) -> dict[str, Any]:
        created = await resources.create_version(
            s,
            account_id=caller.account_id,
            kind=kind,
            resource_id=id,
            body=body_of(body),
            version_description=body.version_description,
        )
        return view(created)

    async def render(_: AsyncSession, __: Principal, items: list[Versioned]) -> list[dict[str, Any]]:
        return [view(item) for item in items]

    return create, create_version, render


_create_prompt, _create_prompt_version, _render_prompts = _stored_as_posted("prompt", _prompt_body, prompt_view)
_create_tool, _create_tool_version, _render_tools = _stored_as_posted("tool", tool_body, tool_view)


async def _create_config(
    s: AsyncSession, caller: Principal, body: rest.PostedConfig, settings: Settings
) -> dict[str, Any]:
    return await configs.create_config(
        s, body, account_id=caller.account_id, allow_http_webhooks=settings.allow_http_webhooks
    )


async def _create_config_version(
    s: AsyncSession, caller: Principal, id: str, body: rest.PostedConfigVersion, settings: Settings
) -> dict[str, Any]:
    return await configs.create_config_version(
        s, body, account_id=caller.account_id, config_id=id, allow_http_webhooks=settings.allow_http_webhooks
    )


async def _render_configs(s: AsyncSession, caller: Principal, items: list[Versioned]) -> list[dict[str, Any]]:
    return await configs.render_configs(s, account_id=caller.account_id, configs=items)


async def _read_config(s: AsyncSession, caller: Principal, id: str, version: int) -> dict[str, Any]:
    return await configs.load_config(s, account_id=caller.account_id, config_id=id, version=version)


async def _read_config_page(
    s: AsyncSession, caller: Principal, page: Page, most_recent: bool, filters: dict[str, Any]
) -> tuple[list[dict[str, Any]], int]:
    return await configs.load_config_page(
        s,
        account_id=caller.account_id,
        page_number=page.number,
        page_size=page.size,
        restrict_to_most_recent=most_recent,
        **filters,
    )


prompts_router = versioned_router(
    VersionedResource(
        kind="prompt",
        plural="prompts",
        page_key="prompts_page",
        create_body=rest.PostedPrompt,
        version_body=rest.PostedPromptVersion,
        name_body=rest.PostedName,
        create=_create_prompt,
        create_version=_create_prompt_version,
        render=_render_prompts,
    )
)
tools_router = versioned_router(
    VersionedResource(
        kind="tool",
        plural="tools",
        page_key="tools_page",
        create_body=rest.PostedTool,
        version_body=rest.PostedToolVersion,
        name_body=rest.PostedToolName,
        create=_create_tool,
        create_version=_create_tool_version,
        render=_render_tools,
    )
)
configs_router = versioned_router(
    VersionedResource(
        kind="config",
        plural="configs",
        page_key="configs_page",
        create_body=rest.PostedConfig,
        version_body=rest.PostedConfigVersion,
        name_body=rest.PostedName,
        create=_create_config,
        create_version=_create_config_version,
        render=_render_configs,
        read_one=_read_config,
        read_page=_read_config_page,
    )
)
