"""Logging for `openevi serve`: one format, and credentials in URLs never written out.

Clients may authenticate with `?api_key=` or `?access_token=` (the SDKs do on the chat WebSocket), and
uvicorn logs every request line and WebSocket path with its query string; httpx logs the URLs it
calls. A filter on every handler rewrites such parameters to `name=***` before a record is written —
also when the name is percent-encoded (`?api%5Fkey=`, `?%61pi_key=`: the server decodes names, so
they authenticate) — and the `user:password@` of any URL. A URL httpx logs may be a tenant's
(a custom language model, a webhook), whose query may carry a secret under any name: there every
query value is redacted. Credential headers written as `name: value` are redacted too.

At DEBUG the libraries below would log request headers (`x-hume-api-key`, `authorization`), every
WebSocket frame (the conversation) or signed requests: they stay at INFO whatever the level. The
database engine never logs SQL parameters (`hide_parameters`, openevi/store/db.py).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

# Query parameters whose values are credentials (`key` is Google's API key parameter).
SECRET_PARAMS = ("api_key", "apikey", "access_token", "refresh_token", "secret_key", "client_secret", "key", "token")
_SECRET_NAMES = frozenset(SECRET_PARAMS)
# Headers whose values are credentials, as libraries print them (`name: value`).
SECRET_HEADERS = ("x-hume-api-key", "authorization", "x-goog-api-key", "x-api-key", "api-key", "cookie")
REDACTED = "***"
_QUERY_PARAM = re.compile(r"(?<=[?&;])([^=&;#\s\"'?]+)=([^&;#\s\"']*)")
_USERINFO = re.compile(r"(?<=//)[^/@\s\"'?#]+@")
_SECRET_HEADER = re.compile(
    r"(?i)\b(" + "|".join(re.escape(h) for h in SECRET_HEADERS) + r")"  # the name,
    r"(['\"]?\s*[:=,]\s*(?-i:b)?['\"]?)"  # `: `, `=`, or `', b'` (a bytes pair),
    r"(?:Bearer |Basic )?[^\s'\",;)]+"  # and the value
)
# Loggers whose URLs may be a tenant's: every query value there is redacted.
_TENANT_URL_LOGGERS = ("httpx", "httpcore")
# Libraries that log headers, frames or signed requests at DEBUG: never below INFO.
QUIET_LIBRARIES = ("websockets", "httpcore", "hpack", "botocore", "aiobotocore", "s3transfer", "urllib3", "h11")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str, *, every_query_value: bool = False) -> str:
    """`text` with credential query values (names decoded first), URL user info and credential
    headers replaced by `***`; with `every_query_value`, all query values."""

    def param(m: re.Match[str]) -> str:
        name = m.group(1)
        if every_query_value or unquote_plus(name).lower() in _SECRET_NAMES:
            return f"{name}={REDACTED}"
        return m.group(0)

    if "=" in text:
        text = _QUERY_PARAM.sub(param, text)
    if "@" in text:
        text = _USERINFO.sub(f"{REDACTED}@", text)
    return _SECRET_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


class RedactCredentials(logging.Filter):
    """Rewrites a record's message and arguments so no credential query value survives formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        every = record.name.split(".", 1)[0] in _TENANT_URL_LOGGERS
        args = record.args
        if isinstance(args, tuple):
            # Keep the tuple's shape: uvicorn's access formatter unpacks it by position.
            record.args = tuple(redact(a, every_query_value=every) if isinstance(a, str) else a for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: redact(v, every_query_value=every) if isinstance(v, str) else v for k, v in args.items()}
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed record: let the handler report it as usual
        cleaned = redact(message, every_query_value=every)
        if cleaned != message and not record.name.startswith("uvicorn.access"):
            # The secret was in the message itself or in an argument that is not a str (an httpx.URL,
            # say): keep the clean text. (uvicorn's access formatter needs its argument tuple, but its
            # arguments are all str and already clean.)
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str) -> None:
    """Root logging at `level` (name, e.g. "info"), with credentials redacted."""
    logging.basicConfig(level=level.upper(), format=FORMAT, force=True)
    quiet_libraries()
    install_redaction()


def quiet_libraries() -> None:
    """Keep the libraries that would log headers, frames or signed requests at INFO or above."""
    for name in QUIET_LIBRARIES:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def install_redaction() -> None:
    """Put the filter on the handlers of the root and uvicorn loggers that lack it (idempotent).

    The app calls this at start-up too, so servers started without `openevi serve` (uvicorn's own
    command line with the app factory) redact as well.
    """
    quiet_libraries()
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        targets: list[logging.Filterer] = [*logger.handlers]
        if name.startswith("uvicorn."):
            targets.append(logger)  # also covers handlers someone adds to it later
        for target in targets:
            if not any(isinstance(f, RedactCredentials) for f in target.filters):
                target.addFilter(RedactCredentials())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging config with the redacting filter on its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_credentials"] = {"()": f"{__name__}.RedactCredentials"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_credentials")
    return config
