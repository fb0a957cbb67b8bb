"""TwiML answers to Twilio's voice webhook, and the `X-Twilio-Signature` check of its requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree as ET

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def _render(response: ET.Element) -> str:
    return _DECLARATION + ET.tostring(response, encoding="unicode")


def connect_stream(stream_url: str, parameters: Mapping[str, str]) -> str:
    """`<Connect><Stream>`: a bidirectional Media Stream to `stream_url`; the call lasts as long as it."""
    response = ET.Element("Response")
    stream = ET.SubElement(ET.SubElement(response, "Connect"), "Stream", url=stream_url)
    for name, value in parameters.items():
        ET.SubElement(stream, "Parameter", name=name, value=value)
    return _render(response)


def say_and_hang_up(text: str) -> str:
    """Tell the caller what went wrong, then end the call."""
    response = ET.Element("Response")
    ET.SubElement(response, "Say").text = text
    ET.SubElement(response, "Hangup")
    return _render(response)


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature: HMAC-SHA1 over the full URL plus the sorted POST fields, base64."""
    fields = sorted(params)  # by name, then value (repeated names are signed in value order)
    payload = url + "".join(name + value for name, value in fields)
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def _port_variants(url: str) -> list[str]:
    """The URL as given, without its default port and with it: Twilio may sign either form."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    variants = [url]
    if default is not None:
        bare = urlunsplit(parts._replace(netloc=host))
        explicit = urlunsplit(parts._replace(netloc=f"{host}:{default}"))
        if parts.port in (None, default):
            variants += [bare, explicit]
    return list(dict.fromkeys(variants))


def signature_is_valid(auth_token: str, url: str, params: Iterable[tuple[str, str]], given: str | None) -> bool:
    """True when `given` is Twilio's signature of this request."""
    if not given:
        return False
    fields = list(params)
    return any(
        hmac.compare_digest(signature(auth_token, candidate, fields).encode(), given.encode())
        for candidate in _port_variants(url)
    )
