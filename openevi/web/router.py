"""Serves the built playground (`openevi/web/static`, from `npm --prefix web run build`) at `/playground`.

`/` redirects there. Hashed assets are cached for good; `index.html` is revalidated every time so a
rebuilt playground is picked up at once.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

from openevi.web.security_headers import security_headers

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/playground"
# No built asset path comes close; longer ones are refused before touching the file system.
MAX_PATH_CHARS = 512

router = APIRouter(include_in_schema=False)


def _file(relative: str) -> Path | None:
    """The static file at `relative`, or None (also for anything that escapes the directory)."""
    if len(relative) > MAX_PATH_CHARS or "\x00" in relative:
        return None
    root = STATIC_DIR.resolve()
    try:
        candidate = (root / relative).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
    except (OSError, ValueError):  # a name too long for the file system, or otherwise unusable
        return None
    return candidate


def _secured(request: Request, response: Response) -> Response:
    settings = getattr(request.app.state, "settings", None)
    response.headers.update(security_headers(getattr(settings, "public_url", None)))
    return response


def _index() -> Response:
    index = _file("index.html")
    if index is None:
        return PlainTextResponse(
            "The playground is not built: run `npm --prefix web ci && npm --prefix web run build`.", status_code=404
        )
    return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get(PREFIX)
async def playground_bare(request: Request) -> Response:
    return _secured(request, _index())


@router.get(PREFIX + "/{path:path}")
async def playground(request: Request, path: str) -> Response:
    return _secured(request, _serve(path))


def _serve(path: str) -> Response:
    if path in ("", "index.html"):
        return _index()
    found = _file(path)
    if found is None:
        if len(path) > MAX_PATH_CHARS or "\x00" in path or "." in path.rsplit("/", 1)[-1]:
            return PlainTextResponse("Not found", status_code=404)
        return _index()  # a client-side route
    cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
    return FileResponse(found, headers={"Cache-Control": cache})
