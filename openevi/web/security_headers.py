"""Browser hardening headers for the playground pages and assets.

The built page loads only same-origin scripts and styles, talks to this server over fetch and the
chat WebSocket, and plays audio it decodes itself or fetches by a signed URL; anything else (inline
script, framing by other sites, MIME sniffing, leaking URLs in Referer) is refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(public_url: str | None = None) -> str:
    """The page's CSP; `public_url` (OPENEVI_PUBLIC_URL) is allowed too, as signed audio URLs use it."""
    extra = _origin(public_url)
    also = f" {extra}" if extra else ""
    # 'self' covers ws:/wss: to this host in CSP Level 3 browsers, so no scheme-wide ws: is needed.
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data: blob:",
        "media-src": f"'self' blob: data:{also}",
        "connect-src": f"'self'{also}",
        "font-src": "'self'",
        "worker-src": "'self' blob:",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def security_headers(public_url: str | None = None) -> dict[str, str]:
    """Headers every playground response carries."""
    return {
        "Content-Security-Policy": content_security_policy(public_url),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    }
