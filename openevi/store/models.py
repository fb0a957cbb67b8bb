"""Database tables. Every row that users can see belongs to an account.

Ids are UUID strings (portable across SQLite and PostgreSQL); times are int64 epoch milliseconds.
Versioned resources (prompts, tools, configs) are a head row (id, name, version counter) plus
one immutable row per version.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(36)


class Base(DeclarativeBase):
    """Declarative base of all tables."""


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # Migration 0005: what the account's prompt, tool and config versions store (their stored_bytes).
    resource_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ServerSecret(Base):
    """Secrets shared by all instances (token signing, URL signing)."""

    __tablename__ = "server_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class ResourceHead(Base):
    """The name and version counter of one prompt, tool or config."""

    __tablename__ = "resource_heads"
    __table_args__ = (
        UniqueConstraint("account_id", "kind", "name", name="uq_resource_name"),
        # Migration 0004: list pages in order (created_on, id) without sorting every head.
        Index("ix_resource_heads_page", "account_id", "kind", "created_on", "id"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(512))
    created_on: Mapped[int] = mapped_column(BigInteger)
    last_version: Mapped[int] = mapped_column(Integer, default=0)


class ResourceVersion(Base):
    """One immutable version; `body` holds the kind's fields as validated JSON."""

    __tablename__ = "resource_versions"
    __table_args__ = (Index("ix_resource_versions_account_kind", "account_id", "kind"),)
    id: Mapped[str] = mapped_column(ID, ForeignKey("resource_heads.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    version_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_on: Mapped[int] = mapped_column(BigInteger)
    modified_on: Mapped[int] = mapped_column(BigInteger)
    # Migration 0005: the size of the body (as JSON) and the description, counted in the account's quota.
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ChatGroup(Base):
    __tablename__ = "chat_groups"
    __table_args__ = (Index("ix_chat_groups_account_start", "account_id", "first_start_timestamp"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, ForeignKey("accounts.id", ondelete="CASCADE"))
    first_start_timestamp: Mapped[int] = mapped_column(BigInteger)
    most_recent_start_timestamp: Mapped[int] = mapped_column(BigInteger)
    most_recent_chat_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    most_recent_config_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    most_recent_config_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    num_chats: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (Index("ix_chats_account_start", "account_id", "start_timestamp"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, ForeignKey("accounts.id", ondelete="CASCADE"))
    chat_group_id: Mapped[str] = mapped_column(ID, ForeignKey("chat_groups.id", ondelete="CASCADE"), index=True)
    config_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    config_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    start_timestamp: Mapped[int] = mapped_column(BigInteger)
    end_timestamp: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    event_count: Mapped[int] = mapped_column(BigInteger, default=0)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    chat_metadata: Mapped[str | None] = mapped_column("metadata", Text, nullable=True)
    instance_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ChatEvent(Base):
    __tablename__ = "chat_events"
    __table_args__ = (
        UniqueConstraint("chat_id", "seq", name="uq_chat_event_seq"),
        Index("ix_chat_events_group", "chat_group_id", "timestamp"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    chat_id: Mapped[str] = mapped_column(ID, ForeignKey("chats.id", ondelete="CASCADE"))
    chat_group_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    seq: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(40))
    message_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    emotion_features: Mapped[str | None] = mapped_column(Text, nullable=True)
    event_metadata: Mapped[str | None] = mapped_column("metadata", Text, nullable=True)
    related_event_id: Mapped[str | None] = mapped_column(ID, nullable=True)


class AudioReconstruction(Base):
    """State of one chat's audio reconstruction (filled in by the voice work)."""

    __tablename__ = "audio_reconstructions"
    chat_id: Mapped[str] = mapped_column(ID, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str | None] = mapped_column(String(512), nullable=True)
    modified_at: Mapped[int] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookDelivery(Base):
    """Transactional outbox of webhook deliveries (written with the event that causes them)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_due", "status", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)
    chat_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    url: Mapped[str] = mapped_column(Text)
    event_name: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Migration 0002. While a worker holds a delivery, next_attempt_at is its lease expiry.
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
