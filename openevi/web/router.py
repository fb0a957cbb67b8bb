"""Serves the built playground (`openevi/web/static`, from `npm --prefix web run build`) at `/playground`.

`/` redirects there. Hashed assets are cached for good; `index.html` is revalidated every time so a
rebuilt playground is picked up at once.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/playground"

router = APIRouter(include_in_schema=False)


def _file(relative: str) -> Path | None:
    """The static file at `relative`, or None (also for anything that escapes the directory)."""
    root = STATIC_DIR.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


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
async def playground_bare() -> Response:
    return _index()


@router.get(PREFIX + "/{path:path}")
async def playground(path: str) -> Response:
    if path in ("", "index.html"):
        return _index()
    found = _file(path)
    if found is None:
        if "." in path.rsplit("/", 1)[-1]:
            return PlainTextResponse("Not found", status_code=404)
        return _index()  # a client-side route
    cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
    return FileResponse(found, headers={"Cache-Control": cache})
