"""`GET /`: the dashboard page (a static, self-contained page that calls the
account API with the key the user signs in with)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter()

CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")


@router.get("/")
async def dashboard() -> HTMLResponse:
    page = resources.files("afk").joinpath("dashboard/index.html").read_text("utf-8")
    return HTMLResponse(page, headers={"content-security-policy": CSP,
                                       "x-content-type-options": "nosniff",
                                       "referrer-policy": "no-referrer",
                                       "cache-control": "no-store"})
