"""Server settings: one typed object, read from `OPENEVI_*` environment variables and CLI flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the server needs to start. CLI flags override the environment."""

    model_config = SettingsConfigDict(env_prefix="OPENEVI_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".openevi")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default is SQLite in the data dir.",
    )
    api_key: str | None = Field(default=None, description="Key of the default account.")
    secret_key: str | None = Field(default=None, description="Secret paired with api_key for tokens.")
    allow_http_webhooks: bool = False
    max_body_bytes: int = 1_048_576
    access_token_ttl_secs: int = 1800
    log_level: str = "info"
    public_url: str | None = Field(default=None, description="Base URL clients reach this server at.")

    # Providers (issue 4/5); plain names resolved by the registries.
    llm_provider: str = "local"
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: str | None = None
    google_base_url: str = "https://generativelanguage.googleapis.com"
    google_api_key: str | None = None
    web_search_url: str | None = None
    # Language models (openevi/llm): `llm_model` names the model of `llm_provider` (configs without
    # one); keys of the OpenAI-compatible hosted APIs; timeouts bound connecting and each silence.
    llm_model: str | None = None
    llm_connect_timeout_s: float = Field(default=5.0, gt=0)
    llm_read_timeout_s: float = Field(default=30.0, gt=0)
    groq_api_key: str | None = None
    fireworks_api_key: str | None = None
    cerebras_api_key: str | None = None
    sambanova_api_key: str | None = None
    xai_api_key: str | None = None
    perplexity_api_key: str | None = None
    local_llm_model_path: Path | None = Field(default=None, description="A GGUF file; default: the shipped model.")
    local_llm_threads: int = Field(default=2, ge=1)
    local_llm_context: int = Field(default=2048, ge=256)
    clm_max_history_messages: int = Field(default=50, ge=1)
    clm_max_payload_bytes: int = Field(default=100_000, ge=1024)
    tts_provider: str = "piper"
    # Speech input (openevi/speech/vad, openevi/speech/asr); the Whisper model is assembled under data_dir/models.
    vad_provider: str = "silero"
    asr_provider: str = "whisper"
    prosody_provider: str = "acoustic"  # emotion scores of user speech (openevi/speech/prosody/registry.py)
    # Live chats (openevi/chat).
    chat_max_message_bytes: int = 8 * 1024 * 1024
    tool_response_timeout_s: float = Field(default=120.0, gt=0)
    llm_timeout_s: float = Field(default=60.0, gt=0)
    max_chat_duration_s: int = Field(default=1800, ge=30)
    # audio_output is paced to stay at most this far ahead of real-time playback, so that a barge-in
    # stops the assistant within this bound and history records only what was (about to be) heard.
    audio_lead_ms: int = Field(default=1500, ge=0)
    instance_id: str | None = Field(default=None, description="Name of this instance (default: random).")

    # Webhook delivery (openevi/webhooks): attempts per delivery, idle poll, per-request timeout, backoff.
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_poll_interval_s: float = Field(default=1.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_backoff_base_s: float = Field(default=1.0, gt=0)
    webhook_backoff_max_s: float = Field(default=300.0, gt=0)

    @property
    def resolved_database_url(self) -> str:
        """The database URL to use, defaulting to SQLite inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'openevi.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
