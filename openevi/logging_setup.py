"""Logging for `openevi serve`: one format, and credentials in URLs never written out.

Clients may authenticate with `?api_key=` or `?access_token=` (the SDKs do on the chat WebSocket), and
uvicorn logs every request line and WebSocket path with its query string; httpx logs the URLs it
calls. A filter on every handler rewrites such parameters to `name=***` before a record is written.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

# Query parameters whose values are credentials (`key` is Google's API key parameter).
SECRET_PARAMS = ("api_key", "apikey", "access_token", "refresh_token", "secret_key", "client_secret", "key", "token")
REDACTED = "***"
_SECRET_IN_QUERY = re.compile(
    r"(?i)(?<=[?&;])(" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=[^&;#\s\"']*",
)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str) -> str:
    """`text` with the values of credential query parameters replaced by `***`."""
    return _SECRET_IN_QUERY.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


class RedactCredentials(logging.Filter):
    """Rewrites a record's message and arguments so no credential query value survives formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            # Keep the tuple's shape: uvicorn's access formatter unpacks it by position.
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args.items()}
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed record: let the handler report it as usual
        cleaned = redact(message)
        if cleaned != message and not record.name.startswith("uvicorn.access"):
            # The secret was in the message itself or in an argument that is not a str (an httpx.URL,
            # say): keep the clean text. (uvicorn's access formatter needs its argument tuple, but its
            # arguments are all str and already clean.)
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str) -> None:
    """Root logging at `level` (name, e.g. "info"), with credentials redacted."""
    logging.basicConfig(level=level.upper(), format=FORMAT, force=True)
    install_redaction()


def install_redaction() -> None:
    """Put the filter on the handlers of the root and uvicorn loggers that lack it (idempotent).

    The app calls this at start-up too, so servers started without `openevi serve` (uvicorn's own
    command line with the app factory) redact as well.
    """
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
