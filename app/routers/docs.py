"""GET /docs (Swagger UI) and /redoc (ReDoc), from this service's own files: no CDN, no other host.

The scripts and styles come from `fastapi-offline`, a maintained package that ships Swagger UI's and
ReDoc's bundles (and nothing else this service uses); the HTML is FastAPI's own. Each page gets a
Content-Security-Policy that allows this service only, plus the one inline script FastAPI writes to
start Swagger UI, by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = "/static/api-docs"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
FAVICON = "/favicon.ico"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def guarded(page: HTMLResponse) -> tuple[bytes, dict[str, str]]:
    """The page's body, and headers with a CSP naming its inline scripts by hash. Swagger UI and
    ReDoc set styles inline, and ReDoc's search runs in a worker made from a blob, so those two are
    allowed."""
    body = bytes(page.body)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT.findall(body.decode())
    )
    csp = (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return body, {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"}


def answer(body: bytes, headers: dict[str, str]) -> Callable[[], Awaitable[HTMLResponse]]:
    """An endpoint that sends this page (a fresh response each time: middleware adds headers)."""

    async def page() -> HTMLResponse:
        return HTMLResponse(body, headers=headers)

    return page


def install(app: FastAPI) -> None:
    """/docs, its OAuth2 redirect and /redoc, with the assets they load under ASSETS. The app is
    made with `docs_url=None, redoc_url=None`, so FastAPI's CDN pages are not there. The pages do
    not change while the app runs: each is written, and its CSP hashed, once."""
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    swagger_ui = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title}: Swagger UI",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=FAVICON,
        oauth2_redirect_url=redirect_url,
        swagger_ui_parameters=app.swagger_ui_parameters,
    )
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{app.title}: ReDoc",
        redoc_js_url=f"{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=FAVICON,
        with_google_fonts=False,
    )
    router = APIRouter(include_in_schema=False)
    for path, page in (("/docs", swagger_ui), (redirect_url, get_swagger_ui_oauth2_redirect_html()), ("/redoc", redoc)):
        router.add_api_route(path, answer(*guarded(page)), methods=["GET"])
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=ASSETS_DIR), name="api-docs")
