"""Server settings: one typed object, read from `OPENEVI_*` environment variables and CLI flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
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
    # Tenant URLs (custom language models, webhooks) may not reach loopback/private/link-local/...
    # addresses; these comma-separated hosts and CIDRs are exempt (openevi/net/outbound.py).
    outbound_allow: str = Field(default="", description="Hosts and CIDRs tenant URLs may reach anyway.")
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
    # The offline model: qwen2.5-coder-0.5b (shipped) | qwen2.5-coder-1.5b (extra models-1.5b) | a .gguf path.
    local_llm_model: str = "qwen2.5-coder-0.5b"
    local_llm_model_path: Path | None = Field(default=None, description="A GGUF file; overrides local_llm_model.")
    local_llm_threads: int = Field(default=2, ge=1)
    local_llm_context: int = Field(default=2048, ge=256)
    clm_max_history_messages: int = Field(default=50, ge=1)
    clm_max_payload_bytes: int = Field(default=100_000, ge=1024)
    tts_provider: str = "piper"
    # Reply delivery follows the user's emotion (openevi/speech/tts/style.py); remote TTS: `instructions`.
    reply_style: bool = Field(default=True, description="Reply delivery style follows the user's emotion.")
    # Speech input (openevi/speech/vad, openevi/speech/asr); the Whisper model is assembled under data_dir/models.
    vad_provider: str = "silero"
    asr_provider: str = "whisper"
    # Whisper model: whisper-base (shipped) | whisper-tiny.en (extra models-whisper-tiny) | a CTranslate2 dir.
    asr_model: str = "whisper-base"
    # Whisper on CPU (docs/providers.md, "Many chats"): transcription lanes x CPU threads per lane, and
    # how many waiting utterances of different chats one lane decodes together.
    asr_workers: int = Field(default=1, ge=1)
    asr_threads: int = Field(default=2, ge=1)
    asr_max_batch: int = Field(default=8, ge=1)
    # Speech offload (docs/providers.md "Remote speech"): provider "openai" speaks OpenAI's
    # /v1/audio/transcriptions and /v1/audio/speech (OpenAI, vLLM, Speaches, Kokoro-FastAPI, ...).
    # Base URLs are the server root or its /v1 URL; they are operator settings, trusted as such.
    asr_language: str = Field(default="", description="Language of speech input (ISO code); empty: detect it.")
    asr_fallback_language: str = Field(
        default="en", description="Whisper: the language of an utterance whose language detection is unsure."
    )
    asr_base_url: str = "https://api.openai.com/v1"
    asr_api_key: str | None = None
    asr_remote_model: str = "whisper-1"
    asr_connect_timeout_s: float = Field(default=5.0, gt=0)
    asr_read_timeout_s: float = Field(default=30.0, gt=0)
    tts_base_url: str = "https://api.openai.com/v1"
    tts_api_key: str | None = None
    tts_remote_model: str = "tts-1"
    tts_remote_voice: str = Field(default="alloy", description="Remote voice for openevi voices not mapped.")
    tts_remote_voices: str = Field(default="", description="'openevi voice=remote voice' pairs, comma-separated.")
    tts_remote_format: str = Field(default="pcm", pattern="^(pcm|wav)$")
    tts_remote_sample_rate: int = Field(default=24_000, ge=8000, le=192_000, description="Rate of raw pcm replies.")
    tts_remote_speed: float | None = Field(default=None, ge=0.25, le=4.0)
    tts_connect_timeout_s: float = Field(default=5.0, gt=0)
    tts_read_timeout_s: float = Field(default=30.0, gt=0)
    # End of turn (openevi/chat/turn_detection.py, openevi/speech/turn; docs/protocol.md "End of turn"):
    # "silence" ends a turn after the config's end_of_turn_silence_ms; "smart-turn" lets a trained model
    # judge each pause: complete-sounding turns end after turn_min_silence_ms, unfinished-sounding ones
    # wait up to turn_max_silence_ms. With turn_confirm_by_words, a "complete" the model is unsure of
    # (P <= 0.9) also needs the speculative transcript to end like a sentence.
    turn_detector: str = Field(default="smart-turn", pattern="^(silence|smart-turn)$")
    turn_min_silence_ms: int = Field(default=200, ge=0, le=10_000)
    turn_max_silence_ms: int = Field(default=2000, ge=0, le=30_000)
    turn_confirm_by_words: bool = True
    turn_model_path: Path | None = Field(default=None, description="Smart Turn ONNX file (default: fetched).")
    prosody_provider: str = "acoustic"  # emotion scores of user speech (openevi/speech/prosody/registry.py)
    # Prosody provider "onnx": a trained speech-emotion model you bring, its JSON label map (default:
    # the model path with .labels.json) and its input: waveform | waveform_normalized | features.
    prosody_onnx_model: Path | None = None
    prosody_onnx_labels: Path | None = None
    prosody_onnx_input: str = "waveform"
    # Live chats (openevi/chat).
    chat_max_message_bytes: int = 8 * 1024 * 1024
    tool_response_timeout_s: float = Field(default=120.0, gt=0)
    llm_timeout_s: float = Field(default=60.0, gt=0)
    max_chat_duration_s: int = Field(default=1800, ge=30)
    # audio_output is paced to stay at most this far ahead of real-time playback, so that a barge-in
    # stops the assistant within this bound and history records only what was (about to be) heard.
    audio_lead_ms: int = Field(default=1500, ge=0)
    backchannel_tolerance: bool = Field(
        default=False, description="Short 'mm-hmm'/'yeah' turns while the assistant talks do not stop it."
    )
    # A custom language model bills, logs or keeps state per request: by default it is asked only once
    # the user's turn is confirmed (no speculative requests inside the end-of-turn silence).
    clm_speculation: bool = Field(
        default=False, description="Speculative requests to CUSTOM_LANGUAGE_MODEL endpoints too (faster, more calls)."
    )
    instance_id: str | None = Field(default=None, description="Name of this instance (default: random).")
    # Several instances (openevi/bus/redis.py, openevi/chat/instances.py; docs/deploy.md): with a Redis
    # URL, live chats are reachable from every instance (control plane, observers) and an instance that
    # dies has its chats closed by the others once its lease (refreshed every heartbeat) runs out.
    redis_url: str | None = Field(default=None, description="redis:// URL shared by all instances.")
    instance_lease_s: float = Field(default=15.0, gt=0)
    instance_heartbeat_s: float = Field(default=5.0, gt=0)
    # How long `send` waits for the owning instance to take a message before answering 404.
    bus_ack_timeout_s: float = Field(default=2.0, gt=0)
    # Messages buffered for an observer socket on another instance; one that falls further behind is closed.
    observer_queue_max: int = Field(default=512, ge=1)
    # `openevi serve --workers N`: N processes on one port, each a full instance with its own id.
    workers: int = Field(default=1, ge=1)
    # Phone calls (openevi/api/twilio.py, docs/phone.md): with the Twilio account's auth token set,
    # voice-webhook requests must carry a valid X-Twilio-Signature.
    twilio_auth_token: str | None = Field(default=None, description="Twilio auth token: checks X-Twilio-Signature.")

    # Recordings and reconstructions (openevi/storage; docs/deploy.md "Object storage"): a directory
    # (default <data dir>/recordings) or s3://BUCKET/PREFIX on any S3-compatible store, whose credentials
    # are the standard AWS_* variables (read as they are, without the OPENEVI_ prefix).
    storage_url: str | None = Field(default=None, description="Directory or s3://BUCKET/PREFIX for recordings.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 API endpoint of stores other than AWS.")
    aws_access_key_id: str | None = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(default=None, validation_alias="AWS_SECRET_ACCESS_KEY")
    aws_session_token: SecretStr | None = Field(default=None, validation_alias="AWS_SESSION_TOKEN")
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")

    # Limits and quotas (openevi/chat/limits.py, openevi/api/quotas.py; docs/security.md). Sizes are
    # UTF-8 bytes; a quota of 0 means unlimited.
    chat_max_system_prompt_bytes: int = Field(default=131_072, ge=0)
    chat_max_context_bytes: int = Field(default=65_536, ge=0)
    chat_max_variables: int = Field(default=100, ge=0)
    chat_max_variables_bytes: int = Field(default=65_536, ge=0)
    chat_max_tools: int = Field(default=64, ge=0)
    chat_max_tools_bytes: int = Field(default=262_144, ge=0)
    chat_max_text_bytes: int = Field(default=65_536, ge=0)
    chat_max_stored_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # Client messages per chat (all its sockets and the control plane): a sustained rate and a burst.
    chat_max_messages_per_s: float = Field(default=20.0, ge=0)
    chat_message_burst: int = Field(default=100, ge=1)
    # Frames read per second from one chat socket (audio included): past it the socket is read later.
    chat_max_frames_per_s: float = Field(default=200.0, ge=0)
    # Bytes read per second from one chat socket (bursts of 1 MiB): audio sent faster than
    # this waits. 256 KiB/s is 8x real time for 16 kHz mono linear16, 1.3x for 48 kHz stereo.
    chat_max_bytes_per_s: int = Field(default=262_144, ge=0)
    account_max_concurrent_chats: int = Field(default=5, ge=0)
    # Observer sockets (`/chat/{id}/connect`) open at once, per chat and per account (in this process).
    chat_max_observers: int = Field(default=8, ge=0)
    account_max_observers: int = Field(default=32, ge=0)
    account_max_chats_per_minute: int = Field(default=60, ge=0)
    account_max_stored_bytes: int = Field(default=1024 * 1024 * 1024, ge=0)
    # Prompt, tool and config versions an account stores through the REST API (JSON bodies).
    account_max_resource_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    # REST requests per account and process (openevi/api/ratelimit.py; 429 + Retry-After past them):
    # reads and writes a second with their bursts, and the bytes of write bodies a second with theirs.
    # A rate of 0 turns that limit off.
    rest_reads_per_s: float = Field(default=100.0, ge=0)
    rest_read_burst: int = Field(default=500, ge=1)
    rest_writes_per_s: float = Field(default=10.0, ge=0)
    rest_write_burst: int = Field(default=50, ge=1)
    rest_write_bytes_per_s: int = Field(default=64 * 1024, ge=0)
    rest_write_bytes_burst: int = Field(default=1024 * 1024, ge=1)
    # Open files kept free for the server itself: a chat that would eat into them is refused (503).
    fd_reserve: int = Field(default=64, ge=0)
    revocation_check_interval_s: float = Field(default=2.0, gt=0)
    # On SIGTERM, open chats and requests get this long to finish before they are cancelled.
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    # An idle keep-alive connection is closed after this long. Longer than clients keep theirs (httpx
    # 5 s, undici 4 s, aiohttp 15 s, Go 90 s), so the client closes first: at uvicorn's default of 5 s a
    # client reusing a connection just as the server closed it got no response (issue 19).
    http_keep_alive_s: float = Field(default=100.0, gt=0)
    # A client must finish sending a request's headers within this time (slow-header clients).
    http_header_timeout_s: float = Field(default=15.0, gt=0)

    # Webhook delivery (openevi/webhooks): attempts per delivery, idle poll, per-request timeout, backoff.
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_poll_interval_s: float = Field(default=1.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_backoff_base_s: float = Field(default=1.0, gt=0)
    webhook_backoff_max_s: float = Field(default=300.0, gt=0)

    # Operations (openevi/metrics.py, openevi/api/operations.py; docs/deploy.md "Metrics", "Deploys").
    metrics: bool = Field(default=True, description="Serve GET /metrics (Prometheus text format).")
    metrics_account_labels: bool = Field(default=False, description="Label chat counts with account ids.")
    # On SIGTERM: how long live chats may go on before they are ended (close code 1012) and the process exits.
    drain_timeout_s: float = Field(default=300.0, ge=0)

    @property
    def resolved_database_url(self) -> str:
        """The database URL to use, defaulting to SQLite inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'openevi.db').resolve()}"
