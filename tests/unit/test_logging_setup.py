"""The log filter: credential query parameters are redacted in every shape a record can carry them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

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
