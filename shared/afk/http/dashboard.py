"""`GET /`: the dashboard page (a static, self-contained page that calls the
account API with the key the user signs in with)."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

# The page holds an API key, so only its own inline script may run: the script is
# allowed by hash, never by 'unsafe-inline'. Styles stay inline-allowed because the
# markup uses a few style attributes and CSS cannot reach another origin here.
CSP_TEMPLATE = ("default-src 'none'; script-src {script}; style-src 'self' 'unsafe-inline'; "
                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'none'")

# Features the page never uses; clipboard-write is for its "Copy key" button.
PERMISSIONS_POLICY = ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), "
                      "magnetometer=(), microphone=(), payment=(), usb=(), "
                      "clipboard-read=(), clipboard-write=(self)")

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def script_hashes(page: str) -> list[str]:
    """CSP source expressions ('sha256-…') for every inline <script> in `page`."""
    return ["'sha256-{}'".format(base64.b64encode(
        hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii"))
        for body in _INLINE_SCRIPT.findall(page)]


@cache
def page_and_headers() -> tuple[str, dict[str, str]]:
    # Read on first request, not at import; the page is immutable for a process. By
    # path: importlib.resources costs the cold start ~5 ms of imports.
    page = (Path(__file__).parent.parent / "dashboard" / "index.html").read_text("utf-8")
    csp = CSP_TEMPLATE.format(script=" ".join(script_hashes(page)) or "'none'")
    return page, {"content-security-policy": csp,
                  "x-content-type-options": "nosniff",
                  "x-frame-options": "DENY",
                  "referrer-policy": "no-referrer",
                  "permissions-policy": PERMISSIONS_POLICY,
                  "cross-origin-opener-policy": "same-origin",
                  "cache-control": "no-store"}


async def dashboard(request: Request) -> HTMLResponse:
    page, headers = page_and_headers()
    return HTMLResponse(page, headers=headers)


routes = [Route("/", dashboard, methods=["GET"])]  # its errors: OpenAI's, like the account API
