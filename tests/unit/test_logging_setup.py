"""The log filter: credential query parameters are redacted in every shape a record can carry them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from openevi.logging_setup import RedactCredentials, install_redaction, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /v0/evi/chat?api_key=abc&x=1", "GET /v0/evi/chat?api_key=***&x=1"),
        ("/p?x=1&access_token=a.b-c_d", "/p?x=1&access_token=***"),
        ('"GET /v0/evi/configs?API_KEY=abc HTTP/1.1"', '"GET /v0/evi/configs?API_KEY=*** HTTP/1.1"'),
        ("https://g.example/v1?key=AIza#frag", "https://g.example/v1?key=***#frag"),
        ("/p?monkey=banana&api_keys=x", "/p?monkey=banana&api_keys=x"),  # other names are left alone
        ("no query here api_key=abc", "no query here api_key=abc"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactCredentials())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, out
    logger.removeHandler(handler)


def test_every_record_shape_is_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = captured
    logger.info("HTTP Request: %s %s", "POST", httpx.URL("https://llm.example/v1?key=SECRET1&a=1"))
    logger.info("plain https://x.example/?access_token=SECRET2")
    logger.info("format ?api_key=%s", "SECRET3")
    logger.info("%(url)s", {"url": "/hook?token=SECRET4"})
    text = out.getvalue()
    assert "SECRET" not in text
    assert text.count("=***") == 4 and "https://llm.example/v1?key=***&a=1" in text


def test_uvicorn_access_lines_keep_their_format() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    handler.addFilter(RedactCredentials())
    logger = logging.getLogger("uvicorn.access.test")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/v0/evi/chat?api_key=SECRET", "1.1", 101)
    finally:
        logger.removeHandler(handler)
    assert out.getvalue().strip() == '127.0.0.1:5 - "GET /v0/evi/chat?api_key=*** HTTP/1.1" 101 Switching Protocols'


def test_install_is_idempotent() -> None:
    install_redaction()
    install_redaction()
    access = logging.getLogger("uvicorn.access")
    assert sum(isinstance(f, RedactCredentials) for f in access.filters) == 1
    for handler in logging.getLogger().handlers:
        assert sum(isinstance(f, RedactCredentials) for f in handler.filters) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /v0/evi/chat?api%5Fkey=abc&x=1", "GET /v0/evi/chat?api%5Fkey=***&x=1"),
        ("GET /v0/evi/chat?%61pi_key=abc", "GET /v0/evi/chat?%61pi_key=***"),
        ("/p?access%5Ftoken=a.b&x=1", "/p?access%5Ftoken=***&x=1"),
        ("/p?Access%5FToken=a.b", "/p?Access%5FToken=***"),
        ("POST https://bob:hunter2@llm.example/v1", "POST https://***@llm.example/v1"),
        ("wss://u:p@clm.example/ws?x=1", "wss://***@clm.example/ws?x=1"),
        ("> x-hume-api-key: abc123", "> x-hume-api-key: ***"),
        ("(b'authorization', b'Bearer eyJ.x.y')", "(b'authorization', b'***')"),
        ("Authorization: Basic Zm9vOmJhcg==", "Authorization: ***"),
        ('{"x-goog-api-key": "AIza"}', '{"x-goog-api-key": "***"}'),
    ],
)
def test_redact_encoded_names_userinfo_and_headers(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_urls_httpx_logs_lose_every_query_value(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A tenant's custom model URL may carry a secret under any name; httpx logs it in full."""
    _, out = captured
    logger = logging.getLogger("httpx")
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactCredentials())
    logger.addHandler(handler)
    try:
        logger.warning("HTTP Request: %s %s", "POST", httpx.URL("https://u:pw@clm.example/v1?sig=SECRET1&x=SECRET2"))
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "SECRET" not in text and "pw" not in text
    assert "https://***@clm.example/v1?sig=***&x=***" in text


def test_debug_level_keeps_header_and_frame_loggers_at_info() -> None:
    from openevi.logging_setup import QUIET_LIBRARIES, configure_logging

    saved = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    try:
        configure_logging("debug")
        assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
        for name in ("websockets", "websockets.server", "httpcore", "botocore"):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.INFO, name
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        configure_logging("info")


async def test_sql_parameters_are_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """At DEBUG, SQLAlchemy logs each statement's parameters: event text is the conversation."""
    from sqlalchemy import text

    from openevi.store.db import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT :said"), {"said": "my card number is 4111"})
    finally:
        await engine.dispose()
    assert "SELECT" in caplog.text  # the statement is logged (so the check below means something)
    assert "4111" not in caplog.text


def test_the_first_start_keeps_the_secret_key_out_of_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from openevi.bootstrap import SECRET_KEY_FILE, announce
    from openevi.settings import Settings
    from openevi.store.accounts import IssuedKey

    issued = IssuedKey(account_id="a", key_id="k", api_key="API-KEY-VALUE", secret_key="SECRET-KEY-VALUE")
    announce(issued, Settings(data_dir=tmp_path))
    shown = capsys.readouterr().out
    assert "API-KEY-VALUE" in shown and "SECRET-KEY-VALUE" not in shown
    saved = tmp_path / SECRET_KEY_FILE
    assert saved.read_text().strip() == "SECRET-KEY-VALUE"
    assert saved.stat().st_mode & 0o777 == 0o600
