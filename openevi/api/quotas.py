"""Who may open another chat: per-account quotas, the server's open-file headroom, live chats.

At connect time an account is refused (HTTP 429, the JSON error body of every other refusal) when
it already has `OPENEVI_ACCOUNT_MAX_CONCURRENT_CHATS` live chats in this process, started
`OPENEVI_ACCOUNT_MAX_CHATS_PER_MINUTE` chats in the last minute (counted in the database, so across
instances), or stores `OPENEVI_ACCOUNT_MAX_STORED_BYTES` of chat events and recordings. Any caller is refused
(503) when fewer than `OPENEVI_FD_RESERVE` file descriptors are left, before a chat could fail
half-open. Admitted chats are remembered with the key that opened them, for the revocation watch.

Observer sockets (`/chat/{id}/connect`) are admitted too: at most `OPENEVI_CHAT_MAX_OBSERVERS` per
chat and `OPENEVI_ACCOUNT_MAX_OBSERVERS` per account in this process (429 `too_many_observers`), each
remembered with its own key, so revoking that key closes it even when the chat's key stays live.

What an account stores through the REST API (prompt, tool and config versions) is bounded by
`OPENEVI_ACCOUNT_MAX_RESOURCE_BYTES`: a create that would pass it is refused with 429
`storage_quota_exceeded` and rolled back.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.api.auth import Principal
from openevi.api.errors import ApiError
from openevi.chat.limits import AccountBudget
from openevi.settings import Settings
from openevi.store import usage
from openevi.store.db import now_ms
from openevi.store.models import Account

if TYPE_CHECKING:
    from openevi.chat.session import ChatSession

# A session admitted but never started (its socket died during the handshake) stops counting after this.
_START_GRACE_S = 30.0


class QuotaExceeded(ApiError):
    status = 429
    code = "quota_exceeded"


class ServerBusy(ApiError):
    status = 503
    code = "server_busy"


class ServerDraining(ServerBusy):
    """This instance is leaving service (SIGTERM): another one takes the chat (openevi/api/drain.py)."""

    code = "server_draining"


@dataclass
class LiveChat:
    """A chat this process admitted, and the API key (or the key behind the access token) that opened it."""

    session: ChatSession
    key_id: str
    admitted_at: float = field(default_factory=time.monotonic)

    def abandoned(self, running: dict[str, ChatSession]) -> bool:
        """Admitted, but its socket died before the chat started: it will never end by itself."""
        return (
            self.session.status is None
            and running.get(self.session.chat_id) is not self.session
            and time.monotonic() - self.admitted_at > _START_GRACE_S
        )

    def finished(self, running: dict[str, ChatSession]) -> bool:
        """Ended and every event written (or abandoned)."""
        return self.session.closed.is_set() or self.abandoned(running)

    def live(self, running: dict[str, ChatSession]) -> bool:
        return self.session.status is None and not self.abandoned(running)


async def check_resource_quota(session: AsyncSession, account_id: str, settings: Settings) -> None:
    """After a write in `session`'s transaction: refuse it (QuotaExceeded) if the account now stores
    more prompt, tool and config versions than its quota allows."""
    limit = settings.account_max_resource_bytes
    if not limit:
        return
    used = await session.scalar(select(Account.resource_bytes).where(Account.id == account_id)) or 0
    if used > limit:
        raise QuotaExceeded(
            f"This account's prompts, tools and configs would store {used} bytes; its limit is {limit}. "
            "Delete versions it no longer needs",
            code="storage_quota_exceeded",
        )


@dataclass(eq=False)
class LiveObserver:
    """An observer socket this process admitted, with the key that opened it; `revoked` tells its pump
    to close it (the chat goes on)."""

    account_id: str
    key_id: str
    chat_id: str
    revoked: asyncio.Event = field(default_factory=asyncio.Event)


class ObserverAdmission:
    """Admits observer sockets per chat and per account, and keeps them for the revocation watch."""

    def __init__(self, settings: Settings) -> None:
        self._per_chat = settings.chat_max_observers
        self._per_account = settings.account_max_observers
        self._live: list[LiveObserver] = []

    def live(self) -> list[LiveObserver]:
        return list(self._live)

    def admit(self, principal: Principal, chat_id: str) -> LiveObserver:
        """Check the limits (QuotaExceeded) and count the observer until `release`."""
        account = principal.account_id
        if self._per_chat and sum(1 for o in self._live if o.chat_id == chat_id) >= self._per_chat:
            raise QuotaExceeded(
                f"This chat already has {self._per_chat} observers, its limit", code="too_many_observers"
            )
        if self._per_account and sum(1 for o in self._live if o.account_id == account) >= self._per_account:
            raise QuotaExceeded(
                f"This account already has {self._per_account} observer sockets open, its limit",
                code="too_many_observers",
            )
        observer = LiveObserver(account, principal.key_id, chat_id)
        self._live.append(observer)
        return observer

    def release(self, observer: LiveObserver) -> None:
        self._live.remove(observer)


def free_file_descriptors() -> int | None:
    """How many more files this process may open, or None where that cannot be told."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        used = len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # not Linux
        return None
    except OSError:  # listing needs a descriptor too: none are left
        return 0
    return int(soft) - used


class ChatAdmission:
    """Admits chats against the quotas and keeps the registry of live chats."""

    def __init__(
        self,
        settings: Settings,
        db: async_sessionmaker[AsyncSession],
        running: dict[str, ChatSession],
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self._settings = settings
        self._draining = draining
        self._db = db
        self._running = running  # the runtime's started sessions
        self._live: dict[str, LiveChat] = {}  # admitted chats until their last event is written
        self._budgets: dict[str, AccountBudget] = {}  # accounts with such chats
        # One admission at a time per account, so two connects cannot both take the last slot.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.observers = ObserverAdmission(settings)

    def live_chats(self) -> list[LiveChat]:
        """The live chats (forgetting the finished ones)."""
        for chat_id, chat in list(self._live.items()):
            if chat.finished(self._running):
                del self._live[chat_id]
        unfinished = {chat.session.account_id for chat in self._live.values()}
        for account in set(self._budgets) - unfinished:
            # Everything is written: the next admission reads the account's usage from the database.
            del self._budgets[account]
        return [chat for chat in self._live.values() if chat.live(self._running)]

    def live_count(self, account_id: str) -> int:
        return sum(1 for chat in self.live_chats() if chat.session.account_id == account_id)

    @asynccontextmanager
    async def admit(
        self, principal: Principal, *, answered_call: bool = False
    ) -> AsyncIterator[Callable[[ChatSession], None]]:
        """Check the quotas; inside the block open the chat and hand its session to the callable.

        `answered_call`: the media stream of a phone call this instance already answered, which a
        drain must not refuse (the caller would hear the line drop)."""
        cfg = self._settings
        if self._draining() and not answered_call:
            raise ServerDraining("This server is restarting; connect again to reach another one")
        free = free_file_descriptors()
        if free is not None and free < cfg.fd_reserve:
            raise ServerBusy("The server is at its limit of open connections; try again later")
        account = principal.account_id
        lock = self._locks.get(account)
        if lock is None:
            lock = self._locks[account] = asyncio.Lock()
        async with lock:
            live = self.live_count(account)  # also forgets finished chats and their budgets
            limit = cfg.account_max_concurrent_chats
            budget = self._budgets.get(account)
            async with self._db() as s:
                if limit and live < limit and cfg.redis_url:
                    # Several instances: the account's chats on the others count too (the store knows
                    # them all; a crashed instance's chats stop counting once the sweeper ends them).
                    since = now_ms() - cfg.max_chat_duration_s * 1000
                    live = max(live, await usage.active_chats(s, account, since))
                if limit and live >= limit:
                    raise QuotaExceeded(
                        f"This account already has {limit} live chats, its limit; end one first",
                        code="too_many_concurrent_chats",
                    )
                if cfg.account_max_stored_bytes and budget is None:
                    used = await usage.account_stored_bytes(s, account)
                    budget = AccountBudget(cfg.account_max_stored_bytes - used)
                if budget is not None and budget.remaining <= 0:
                    raise QuotaExceeded(
                        f"This account stores {cfg.account_max_stored_bytes} bytes of chat history, its limit",
                        code="storage_quota_exceeded",
                    )
                per_minute = cfg.account_max_chats_per_minute
                if per_minute and await usage.chats_started_since(s, account, now_ms() - 60_000) >= per_minute:
                    raise QuotaExceeded(
                        f"This account started {per_minute} chats in the last minute, its limit; try again shortly",
                        code="too_many_chats_per_minute",
                    )

            def register(session: ChatSession) -> None:
                session.limits.share(budget)
                if budget is not None:
                    self._budgets[account] = budget
                self._live[session.chat_id] = LiveChat(session=session, key_id=principal.key_id)

            yield register
