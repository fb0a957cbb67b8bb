"""`openevi import` and `openevi export`: prompts, tools and configs moved between servers (or saved
from hosted EVI) with their original ids, version numbers, names, descriptions and timestamps.

The file format is what the REST API returns: list pages (`prompts_page`, `tools_page`,
`configs_page`) or single objects as `GET` returns them, alone or in JSON lists. Apps hard-code
config ids, so an import never invents ids: it creates what is missing, skips what is already
here unchanged, and refuses (with the reason) what would overwrite or take over anything.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.schemas.rest import PostedConfig, PostedPrompt, PostedTool
from openevi.services import configs
from openevi.services.bodies import prompt_body, tool_body
from openevi.services.views import paged, prompt_view, tool_view
from openevi.store import accounts, resources
from openevi.store.db import now_ms, transaction
from openevi.store.resources import Kind, Versioned

Action = Literal["created", "skipped", "refused", "conflict"]
KINDS: tuple[Kind, ...] = ("prompt", "tool", "config")  # import order: configs point at the other two
PAGE_KEYS: dict[str, Kind] = {"prompts_page": "prompt", "tools_page": "tool", "configs_page": "config"}
EXPORT_PAGE_SIZE = 100  # the largest page the REST API returns
# Versions stored per import transaction: SQLite has one writer, so a long import must let others in.
BATCH_VERSIONS = 200
MAX_LIST_DEPTH = 8  # files hold pages, objects or lists of them; deeper is not an export
BATCH_PAUSE_S = 0.1


class UnknownKeyError(Exception):
    """The given API key is not a live key of this server."""


@dataclass(frozen=True)
class Item:
    """One version of a prompt, tool or config, as read from a file."""

    kind: Kind
    id: str
    version: int
    data: dict[str, Any]
    source: str
    embedded: bool = False  # a config's copy of the prompt or tool it points to

    @property
    def name(self) -> str:
        return str(self.data.get("name") or "")


@dataclass(frozen=True)
class Outcome:
    """What happened to one version (or to an entry that could not be read)."""

    action: Action
    kind: str
    id: str
    version: int | None
    name: str
    reason: str = ""
    source: str = ""

    def line(self) -> str:
        version = "" if self.version is None else f"v{self.version}"
        name = json.dumps(self.name, ensure_ascii=False)
        text = f"{self.action:9} {self.kind:7} {self.id or '-':36} {version:4} {name}"
        if self.reason:
            text += f": {self.reason}"
        if self.source and self.action in ("refused", "conflict"):
            text += f" [{self.source}]"
        return text


@dataclass
class Parsed:
    """Versions to import, in import order, and entries refused while reading."""

    items: list[Item]
    refused: list[Outcome]


@dataclass
class Report:
    """What an import did, in order."""

    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, action: Action) -> int:
        return sum(1 for o in self.outcomes if o.action == action)

    @property
    def clean(self) -> bool:
        """Nothing was refused and nothing conflicted."""
        return not self.count("refused") and not self.count("conflict")

    def lines(self) -> list[str]:
        summary = (
            f"created {self.count('created')}, skipped {self.count('skipped')}, "
            f"refused {self.count('refused')}, conflicts {self.count('conflict')}"
        )
        return [o.line() for o in self.outcomes] + [f"note: {n}" for n in self.notes] + [summary]


# --- reading -------------------------------------------------------------------------------------


def kind_of(obj: dict[str, Any]) -> Kind | None:
    """The kind of a single object as the REST API returns it, from the fields only that kind has."""
    if "evi_version" in obj:
        return "config"
    if "parameters" in obj or obj.get("tool_type") == "FUNCTION":
        return "tool"
    if "text" in obj:
        return "prompt"
    return None


def _canonical_id(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        # Exactly as the API writes ids: an upper-case copy would be a second id for the same UUID.
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _without_nulls(value: Any) -> Any:
    """The same content whether a client dropped null fields or kept them (SDK dumps keep them)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and k != "version_type"}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


class _Reader:
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.refused: list[Outcome] = []

    def walk(self, value: Any, where: str, depth: int = 0) -> None:
        if isinstance(value, list):
            if depth >= MAX_LIST_DEPTH:
                self.refuse("?", value, where, f"lists nested more than {MAX_LIST_DEPTH} deep")
                return
            for index, entry in enumerate(value):
                self.walk(entry, f"{where}[{index}]", depth + 1)
            return
        if not isinstance(value, dict):
            self.refuse("?", value, where, f"expected a JSON object or list, found {type(value).__name__}")
            return
        keys = [key for key in PAGE_KEYS if key in value]
        if keys:
            for key in keys:
                entries = value[key]
                if entries is None:
                    continue
                if not isinstance(entries, list):
                    self.refuse(PAGE_KEYS[key], {}, f"{where}.{key}", "a page's entries must be a list")
                    continue
                for index, entry in enumerate(entries):
                    self.add(PAGE_KEYS[key], entry, f"{where}.{key}[{index}]")
            return
        kind = kind_of(value)
        if kind is None:
            self.refuse("?", value, where, "not a prompt, tool or config (no text, parameters or evi_version)")
            return
        self.add(kind, value, where)

    def add(self, kind: Kind, obj: Any, where: str, *, embedded: bool = False) -> None:
        if not isinstance(obj, dict):
            self.refuse(kind, obj, where, f"expected a {kind} object, found {type(obj).__name__}")
            return
        version = obj.get("version")
        well_formed = (
            _canonical_id(obj.get("id"))
            and isinstance(version, int)
            and not isinstance(version, bool)
            and 0 <= version <= resources.MAX_VERSION
            and isinstance(obj.get("name"), str)
        )
        if embedded and not well_formed:
            return  # only a copy: the config itself says what is wrong with its reference
        if not _canonical_id(obj.get("id")):
            self.refuse(kind, obj, where, "id must be a UUID, in lower case as the API returns it")
        elif not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= resources.MAX_VERSION:
            self.refuse(kind, obj, where, "version must be an integer from 0")
        elif not isinstance(obj.get("name"), str):
            self.refuse(kind, obj, where, "name is missing")
        else:
            self.items.append(Item(kind=kind, id=obj["id"], version=version, data=obj, source=where, embedded=embedded))
        if kind == "config" and not embedded:
            # A config embeds the prompt and tool versions it points to: enough to recreate them
            # when only the configs were saved.
            prompt = obj.get("prompt")
            if isinstance(prompt, dict) and isinstance(prompt.get("text"), str):
                self.add("prompt", prompt, f"{where}.prompt", embedded=True)
            for index, tool in enumerate(obj.get("tools") or []):
                if isinstance(tool, dict) and isinstance(tool.get("parameters"), str):
                    self.add("tool", tool, f"{where}.tools[{index}]", embedded=True)

    def refuse(self, kind: str, obj: Any, where: str, reason: str) -> None:
        found = obj if isinstance(obj, dict) else {}
        version = found.get("version")
        self.refused.append(
            Outcome(
                action="refused",
                kind=kind,
                id=str(found.get("id") or ""),
                version=version if isinstance(version, int) and not isinstance(version, bool) else None,
                name=str(found.get("name") or ""),
                reason=reason,
                source=where,
            )
        )


def parse_documents(documents: Iterable[tuple[str, Any]]) -> Parsed:
    """The versions held by JSON documents (`(source name, decoded JSON)`): list pages, single
    objects, or lists of them. Prompts come first, then tools, then configs, each by id and
    ascending version. A version given twice with different content is refused the second time;
    a config's embedded copy of a prompt or tool counts only when that version is not given itself."""
    reader = _Reader()
    for source, document in documents:
        reader.walk(document, source)
    chosen: dict[tuple[str, str, int], Item] = {}
    for item in sorted(reader.items, key=lambda i: i.embedded):  # stable: files' own order otherwise
        key = (item.kind, item.id, item.version)
        first = chosen.get(key)
        if first is None:
            chosen[key] = item
        elif not item.embedded and _without_nulls(first.data) != _without_nulls(item.data):
            reader.refused.append(
                Outcome(
                    action="refused",
                    kind=item.kind,
                    id=item.id,
                    version=item.version,
                    name=item.name,
                    reason=f"differs from the copy of the same version in {first.source}",
                    source=item.source,
                )
            )
    ordered = sorted(chosen.values(), key=lambda i: (KINDS.index(i.kind), i.id, i.version))
    return Parsed(items=ordered, refused=reader.refused)


# --- importing -----------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _validation_reason(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors(include_url=False)
    )


def _validated(model: type[BaseModel], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise _Refused(_validation_reason(exc)) from exc


def _ref(obj: Any) -> Any:
    """A config's embedded prompt/tool → the reference it was made from (null version: LATEST)."""
    if not isinstance(obj, dict):
        return obj
    latest = obj.get("version_type") == "LATEST"
    return {"id": obj.get("id"), "version": None if latest else obj.get("version")}


def config_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A returned config (`return_config`) as the body that would create it (`posted_config`)."""
    voice = data.get("voice")
    return {
        "name": data.get("name"),
        "evi_version": data.get("evi_version"),
        "version_description": data.get("version_description"),
        "prompt": _ref(data.get("prompt")) if data.get("prompt") is not None else None,
        "voice": {k: voice.get(k) for k in ("id", "name", "provider")} if isinstance(voice, dict) else voice,
        "language_model": data.get("language_model"),
        "ellm_model": data.get("ellm_model"),
        "tools": [_ref(t) for t in data.get("tools") or [] if t is not None],
        "builtin_tools": [
            {"name": b.get("name"), "fallback_content": b.get("fallback_content")} if isinstance(b, dict) else b
            for b in data.get("builtin_tools") or []
            if b is not None
        ],
        "event_messages": data.get("event_messages"),
        "nudges": data.get("nudges"),
        "timeouts": data.get("timeouts"),
        "interruption": data.get("interruption"),
        "turn_detection": data.get("turn_detection"),
        "webhooks": [
            {"url": w.get("url"), "events": w.get("events")} if isinstance(w, dict) else w
            for w in data.get("webhooks") or []
            if w is not None
        ],
    }


class _Importer:
    def __init__(self, session: AsyncSession, *, account_id: str, allow_http_webhooks: bool, report: Report) -> None:
        self.session = session
        self.account_id = account_id
        self.allow_http_webhooks = allow_http_webhooks
        self.report = report
        self.refusals: dict[tuple[str, str, int], str] = {}  # why a prompt/tool version was not imported

    def outcome(self, item: Item, action: Action, reason: str = "") -> None:
        if action in ("refused", "conflict"):
            self.refusals[(item.kind, item.id, item.version)] = reason
        self.report.outcomes.append(
            Outcome(
                action=action,
                kind=item.kind,
                id=item.id,
                version=item.version,
                name=item.name,
                reason=reason,
                source=item.source,
            )
        )

    async def body(self, item: Item, name: str) -> dict[str, Any]:
        data = item.data
        if item.kind == "prompt":
            prompt = _validated(
                PostedPrompt,
                {
                    "name": name,
                    "text": data.get("text"),
                    "version_description": data.get("version_description"),
                    "prompt_expansion": data.get("prompt_expansion"),
                },
            )
            return prompt_body(prompt.text, prompt.prompt_expansion)
        if item.kind == "tool":
            tool = _validated(
                PostedTool,
                {
                    "name": name,
                    "parameters": data.get("parameters"),
                    "description": data.get("description"),
                    "fallback_content": data.get("fallback_content"),
                    "version_description": data.get("version_description"),
                },
            )
            return tool_body(tool)
        return await self.config_body(item, name)

    async def config_body(self, item: Item, name: str) -> dict[str, Any]:
        posted: PostedConfig = _validated(PostedConfig, {**config_fields(item.data), "name": name})

        try:
            return await configs.checked_body(
                self.session,
                posted,
                account_id=self.account_id,
                config_id=item.id,
                config_name=name,
                version=item.version,
                allow_http_webhooks=self.allow_http_webhooks,
            )
        except configs.ConfigRejected as exc:
            raise _Refused(self.config_reason(posted, exc)) from exc

    def config_reason(self, posted: PostedConfig, exc: configs.ConfigRejected) -> str:
        field_name = exc.loc[0] if exc.loc else None
        ref: Any = None
        if field_name == "prompt" and posted.prompt is not None and exc.status == 400:
            kind, ref = "prompt", posted.prompt
        elif field_name == "tools" and len(exc.loc) == 2 and exc.status == 400 and posted.tools:
            kind, ref = "tool", posted.tools[int(exc.loc[1])]
        if ref is None:
            where = ".".join(str(p) for p in exc.loc)
            return f"{where}: {exc.message}" if where else exc.message
        wanted = "its latest version" if ref.version is None else f"version {ref.version}"
        reason = f"refers to {kind} {ref.id} ({wanted}), which is neither in the import nor in this account"
        why = self.refusals.get((kind, ref.id, ref.version)) if ref.version is not None else None
        return f"{reason} (that {kind} version was refused: {why})" if why else reason

    async def resource(self, kind: Kind, resource_id: str, versions: list[Item]) -> None:
        name = versions[-1].name  # a name belongs to all versions of a resource; the newest copy wins
        head = await resources.find_head(self.session, resource_id=resource_id)
        if head is not None and head.account_id != self.account_id:
            for item in versions:
                self.outcome(item, "refused", "this id already belongs to another account")
            return
        if head is not None and head.kind != kind:
            for item in versions:
                self.outcome(item, "refused", f"this id is already used by a {head.kind}")
            return
        if head is None and await resources.name_taken(self.session, account_id=self.account_id, kind=kind, name=name):
            for item in versions:
                self.outcome(item, "refused", f"this account already has another {kind} named {name!r}")
            return
        if head is not None and head.name != name:
            self.report.notes.append(f"{kind} {resource_id}: kept its name {head.name!r} (the import says {name!r})")
            name = head.name

        to_insert: list[tuple[Item, dict[str, Any]]] = []
        for item in versions:
            try:
                body = await self.body(item, name)
            except _Refused as exc:
                self.outcome(item, "refused", exc.reason)
                continue
            stored = (
                await resources.find_version(self.session, resource_id=resource_id, version=item.version)
                if head is not None
                else None
            )
            if stored is None:
                to_insert.append((item, body))
            elif stored.body == body and stored.version_description == item.data.get("version_description"):
                self.outcome(item, "skipped", "already here with the same content")
            else:
                self.outcome(
                    item, "conflict", f"version {item.version} is already stored with other content; not overwritten"
                )
        if not to_insert:
            return
        if head is None:
            created = [_timestamp(i.data, "created_on") for i in versions]
            known = [c for c in created if c is not None]
            if len(set(known)) > 1:
                self.report.notes.append(
                    f"{kind} {resource_id}: versions give different created_on values; kept the earliest "
                    "(openevi keeps one creation time per resource)"
                )
            await resources.insert_head(
                self.session,
                account_id=self.account_id,
                kind=kind,
                resource_id=resource_id,
                name=name,
                created_on=min(known) if known else now_ms(),
            )
        for item, body in to_insert:
            modified = _timestamp(item.data, "modified_on") or _timestamp(item.data, "created_on") or now_ms()
            await resources.insert_version(
                self.session,
                account_id=self.account_id,
                kind=kind,
                resource_id=resource_id,
                version=item.version,
                body=body,
                version_description=item.data.get("version_description"),
                created_on=modified,
                modified_on=modified,
            )
            self.outcome(item, "created")


def _timestamp(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


async def import_items(
    factory: async_sessionmaker[AsyncSession],
    parsed: Parsed,
    *,
    account_id: str,
    allow_http_webhooks: bool,
    batch_versions: int = BATCH_VERSIONS,
) -> Report:
    """Recreate the parsed versions under the account, in short transactions of about
    `batch_versions` versions (a resource's versions always together), so a server running meanwhile
    is never locked out of the database for long. An interrupted import can simply be run again:
    what it already stored is skipped."""
    report = Report(outcomes=list(parsed.refused))
    groups: dict[tuple[Kind, str], list[Item]] = {}
    for item in parsed.items:  # already in import order: prompts, tools, configs; ascending versions
        groups.setdefault((item.kind, item.id), []).append(item)
    pending = list(reversed(groups.items()))  # popped from the end: in import order
    importer: _Importer | None = None
    while pending:
        async with transaction(factory) as session:
            if importer is None:
                importer = _Importer(
                    session, account_id=account_id, allow_http_webhooks=allow_http_webhooks, report=report
                )
            importer.session = session  # one importer: it remembers refusals across transactions
            done = 0
            while pending and done < batch_versions:
                (kind, resource_id), versions = pending.pop()
                await importer.resource(kind, resource_id, versions)
                done += len(versions)
        if pending:
            # SQLite's busy handler retries a waiting writer every few to 100 ms: a pause that long
            # lets it in (taking the lock again at once would starve it until its busy timeout).
            await asyncio.sleep(BATCH_PAUSE_S)
    return report


# --- accounts and exporting ----------------------------------------------------------------------


async def account_for(session: AsyncSession, api_key: str | None) -> str:
    """The account of a live key, or the default account (made if the server never started yet)."""
    if api_key:
        row = await accounts.find_key(session, api_key)
        if row is None:
            raise UnknownKeyError("no live key matches the given --api-key")
        return row.account_id
    found = await accounts.default_account_id(session)
    if found is None:
        found = await accounts.create_account(session, name="default", is_default=True)
    return found


async def _render(session: AsyncSession, account_id: str, kind: Kind, items: list[Versioned]) -> list[dict[str, Any]]:
    if kind == "prompt":
        return [prompt_view(p) for p in items]
    if kind == "tool":
        return [tool_view(t) for t in items]
    return await configs.render_configs(session, account_id=account_id, configs=items)


async def export_pages(session: AsyncSession, *, account_id: str) -> list[dict[str, Any]]:
    """Every version of the account's prompts, tools and configs as the REST list pages return them
    (`restrict_to_most_recent=false`, pages of 100): what `import_items` reads back."""
    pages: list[dict[str, Any]] = []
    for key, kind in PAGE_KEYS.items():
        number = 0
        while True:
            items, total = await resources.list_page(
                session,
                account_id=account_id,
                kind=kind,
                page_number=number,
                page_size=EXPORT_PAGE_SIZE,
                restrict_to_most_recent=False,
            )
            views = await _render(session, account_id, kind, items)
            pages.append(paged(key, views, page_number=number, page_size=EXPORT_PAGE_SIZE, total=total))
            number += 1
            if number * EXPORT_PAGE_SIZE >= total:
                break
    return pages
