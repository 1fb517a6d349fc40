"""GET /: the drawing page (static HTML, CSS and JS from app/static, nothing from other hosts)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: The page may talk to this service only: its own scripts, styles, images and API.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: Sent with the page on every path that serves it (`/`, `/static/...`).
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


class PageFiles(StaticFiles):
    """The page's files (app/static) with the page's headers, so that `/static/index.html` is as
    guarded as `/`."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


@router.api_route("/favicon.ico", methods=["GET", "HEAD"])
async def favicon() -> FileResponse:
    """The icon browsers ask for (the page and /docs name it too)."""
    return FileResponse(STATIC_DIR / "favicon.ico", headers={"Cache-Control": "public, max-age=86400"})


@router.api_route("/", methods=["GET", "HEAD"])
async def page() -> FileResponse:
    """The drawing page."""
    return FileResponse(
        STATIC_DIR / "index.html",
        headers={**PAGE_HEADERS, "Cache-Control": "no-cache"},
    )
