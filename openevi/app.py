"""The ASGI application: routers, error handling, and a lifespan that owns the database."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openevi import __version__, metrics, tracing
from openevi.api import audio, chat_ws, chats, control, oauth, twilio
from openevi.api.auth import Authenticator
from openevi.api.drain import Drain
from openevi.api.errors import error_body, install_error_handlers
from openevi.api.operations import HttpTelemetry, metrics_router, readiness_router
from openevi.api.quotas import ChatAdmission
from openevi.api.ratelimit import RestRateLimit, RestRateLimiter
from openevi.api.resources import configs_router, prompts_router, tools_router
from openevi.api.revocation import RevocationWatcher
from openevi.audio.worker import ReconstructionWorker
from openevi.bootstrap import announce, ensure_default_key
from openevi.bus.base import ChatBus
from openevi.bus.memory import MemoryBus
from openevi.chat.instances import InstanceSweeper
from openevi.chat.metered import metered_asr, metered_language_model, metered_prosody, metered_tts
from openevi.chat.presence import SessionBus
from openevi.chat.recovery import close_orphans, instance_id_for
from openevi.chat.runtime import ChatRuntime, LiveChats, warm_up
from openevi.chat.turn_detection import EndOfTurnRule
from openevi.llm.registry import create_language_model
from openevi.logging_setup import install_redaction
from openevi.services.configs import ConfigRejected
from openevi.settings import Settings
from openevi.speech.asr.registry import create_asr
from openevi.speech.asr.registry import provider_options as asr_options
from openevi.speech.prosody.registry import create_prosody
from openevi.speech.prosody.registry import provider_options as prosody_options
from openevi.speech.tts.registry import create_tts
from openevi.speech.tts.registry import provider_options as tts_options
from openevi.speech.turn.registry import create_turn_model
from openevi.speech.vad.registry import create_vad
from openevi.storage import create_store
from openevi.storage.spool import RecordingSpool
from openevi.store import accounts
from openevi.store.db import create_engine, migrate, read_session_factory, session_factory
from openevi.store.errors import NameTakenError, NotFoundError
from openevi.web.router import router as web_router
from openevi.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("openevi")
T = TypeVar("T")


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, counting what actually arrives."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((value for name, value in scope.get("headers", []) if name == b"content-length"), None)
        if length is not None:  # the HTTP server never delivers more than the declared length
            if length.isdigit() and int(length) > self.limit:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # No declared length (chunked): read up to the limit before the app sees the body. Failing
        # inside the app's own read would surface as the framework's 400 "error parsing the body".
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"Request body larger than {self.limit} bytes"
        response = JSONResponse(error_body(413, "payload_too_large", message), status_code=413)
        await response(scope, receive, send)


def _install_store_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(error_body(404, "not_found", str(exc)), status_code=404)

    @app.exception_handler(NameTakenError)
    async def _name_taken(_: Request, exc: NameTakenError) -> JSONResponse:
        return JSONResponse(error_body(400, "name_conflict", str(exc)), status_code=400)

    @app.exception_handler(ConfigRejected)
    async def _config_rejected(_: Request, exc: ConfigRejected) -> JSONResponse:
        if exc.status == 422:
            detail = [{"loc": ["body", *exc.loc], "msg": exc.message, "type": "value_error"}]
            return JSONResponse({"detail": detail}, status_code=422)
        return JSONResponse(error_body(exc.status, "invalid_reference", exc.message), status_code=exc.status)


def end_of_turn_rule(settings: Settings) -> EndOfTurnRule | None:
    """OPENEVI_TURN_DETECTOR's model and rule; None for the silence-only detector (or, logged, when the
    model cannot be loaded: turns then end on silence alone)."""
    options = {"model_path": settings.turn_model_path} if settings.turn_model_path else {}
    try:
        model = create_turn_model(settings.turn_detector, **options)
    except Exception as exc:
        log.error("end-of-turn model %r unavailable, turns end on silence alone: %s", settings.turn_detector, exc)
        return None
    if model is None:
        return None
    return EndOfTurnRule(
        model,
        settings.turn_min_silence_ms,
        settings.turn_max_silence_ms,
        confirm_by_words=settings.turn_confirm_by_words,
    )


def _optional(kind: str, make: Callable[[], T]) -> T | None:
    """A speech-input provider, or None (with the reason logged): chats then accept text only."""
    try:
        return make()
    except Exception as exc:
        log.error("%s provider unavailable, voice input disabled: %s", kind, exc)
        return None


async def _create_bus(settings: Settings, instance_id: str) -> ChatBus:
    """Redis when configured (live chats reachable from every instance), else this process only."""
    if not settings.redis_url:
        if settings.workers > 1:
            log.warning("--workers > 1 without OPENEVI_REDIS_URL: each worker reaches only its own live chats")
        return MemoryBus(instance_id=instance_id, observer_queue_max=settings.observer_queue_max)
    from openevi.bus.redis import RedisBus  # only deployments with Redis need the client

    bus = RedisBus(
        settings.redis_url,
        instance_id=instance_id,
        lease_s=settings.instance_lease_s,
        heartbeat_s=settings.instance_heartbeat_s,
        ack_timeout_s=settings.bus_ack_timeout_s,
        observer_queue_max=settings.observer_queue_max,
    )
    await bus.start()
    return bus


# At shutdown, how long uploads of just-ended chats' recordings may hold the exit (the rest resume at the next start).
UPLOAD_DRAIN_S = 10.0


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the lifespan connects the store and makes the first key."""
    settings = settings or Settings()
    drain = Drain(settings.drain_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_redaction()  # no ?api_key= in the logs, however the server was started
        metrics.configure(account_labels=settings.metrics_account_labels)
        tracing.configure_from_env()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url)
        await migrate(engine)
        factory = session_factory(engine)
        boot = await ensure_default_key(factory, api_key=settings.api_key, secret_key=settings.secret_key)
        if boot.issued is not None:
            announce(boot.issued, settings)
        async with factory() as s, s.begin():
            signing = await accounts.server_secret(s, "access_tokens")
        app.state.settings = settings
        app.state.engine = engine
        app.state.db = factory
        app.state.read_db = read_session_factory(engine)
        app.state.authenticator = Authenticator(factory, signing, settings.access_token_ttl_secs)
        app.state.rest_rate_limiter = RestRateLimiter(settings)
        instance_id = instance_id_for(settings.data_dir, settings.instance_id)
        if settings.workers > 1:
            # Worker processes share the data dir; each is an instance of its own.
            instance_id = f"{instance_id}-{secrets.token_hex(4)}"
        bus = await _create_bus(settings, instance_id)
        sessions = LiveChats()
        app.state.bus = SessionBus(bus, sessions)
        app.state.webhooks = WebhookDispatcher(factory, settings)
        app.state.webhooks.start()
        # Recordings: written locally while chats run, handed to the store (maybe S3) when they end.
        store = create_store(settings)
        await store.start()
        app.state.recording_store = store
        spool = RecordingSpool(settings.data_dir / "recordings", store)
        spool.resume()
        runtime = ChatRuntime(
            settings=settings,
            db=factory,
            bus=app.state.bus,
            tts=metered_tts(create_tts(settings.tts_provider, **tts_options(settings.tts_provider, settings))),
            language_model=lambda spec, key: metered_language_model(create_language_model(spec, settings, api_key=key)),
            notify_webhooks=app.state.webhooks.notify,
            instance_id=instance_id,
            sessions=sessions,
            on_recording_finished=spool.finished,
            vad=_optional("vad", lambda: create_vad(settings.vad_provider)),
            asr=metered_asr(
                _optional(
                    "asr",
                    lambda: create_asr(settings.asr_provider, **asr_options(settings.asr_provider, settings)),
                )
            ),
            prosody=metered_prosody(
                _optional(
                    "prosody",
                    lambda: create_prosody(
                        settings.prosody_provider, **prosody_options(settings.prosody_provider, settings)
                    ),
                )
            ),
            end_of_turn=end_of_turn_rule(settings),
        )
        app.state.chat_runtime = runtime
        app.state.chat_admission = ChatAdmission(settings, factory, runtime.sessions, draining=lambda: drain.draining)
        drain.install(runtime)
        app.state.revocations = RevocationWatcher(
            app.state.chat_admission, factory, interval_s=settings.revocation_check_interval_s
        )
        app.state.revocations.start()
        async with factory() as s, s.begin():
            app.state.audio_url_secret = await accounts.server_secret(s, "audio_urls")
        app.state.reconstructions = ReconstructionWorker(factory, store, settings.data_dir / "scratch")
        app.state.reconstructions.start()
        await close_orphans(runtime)
        sweeper = InstanceSweeper(
            runtime,
            app.state.bus.instances_alive,
            interval_s=settings.instance_heartbeat_s,
            confirm_s=2 * settings.instance_heartbeat_s,
        )
        if settings.redis_url:
            sweeper.start()
        warm = asyncio.create_task(warm_up(runtime), name="warm-up")
        log.info("openevi %s ready (database: %s)", __version__, engine.url.get_backend_name())
        try:
            yield
        finally:
            warm.cancel()
            await sweeper.stop()
            await app.state.revocations.stop()
            await runtime.shutdown()
            await runtime.close_providers()
            await app.state.reconstructions.stop()
            await spool.drain(timeout_s=UPLOAD_DRAIN_S)
            await store.aclose()
            await app.state.webhooks.stop()
            await app.state.bus.close()
            await engine.dispose()
            metrics.process_exited(os.getpid())
            tracing.shutdown()

    app = FastAPI(
        title="openevi",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.drain = drain
    install_error_handlers(app)
    _install_store_error_handlers(app)
    for router in (
        prompts_router,
        tools_router,
        configs_router,
        chats.router,
        control.router,
        oauth.router,
        chat_ws.router,
        twilio.router,
        audio.router,
        web_router,
        readiness_router,
    ):
        app.include_router(router)
    if settings.metrics:
        app.include_router(metrics_router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RestRateLimit)  # outside BodyLimit: a refused request's body is never read
    app.add_middleware(HttpTelemetry)
    return app
