"""Errors: the caller's bodies (the OpenAI error envelope of
afk/dialects/openai_errors.py: same provider as Chat, same shape), the in-stream
failure, and upstream error bodies -> GatewayErrors."""

from __future__ import annotations

from typing import Any

from afk.dialects.openai_errors import error_from_body as _envelope_error
from afk.dialects.openai_errors import render_error
from afk.errors import GatewayError

__all__ = ["error_from_body", "failure", "render_error", "status_of_code"]

# The HTTP status an in-stream error (`error` event, `response.failed`) stands for.
_STATUS_BY_CODE = {
    "rate_limit_exceeded": 429, "insufficient_quota": 429, "invalid_request_error": 400,
    "invalid_prompt": 400, "context_length_exceeded": 400, "server_error": 500,
    "overloaded": 503,
}


def error_from_body(body: Any, *, status: int) -> GatewayError:
    """An upstream OpenAI error as ours: the HTTP body `{"error":{…}}`, or either
    shape of the in-stream `error` event (flat `code/message/param`, or nested)."""
    if isinstance(body, dict) and not isinstance(body.get("error"), dict) and (
            "message" in body or "code" in body):
        body = {"error": {k: body.get(k) for k in ("message", "code", "param")}}
    return _envelope_error(body, status=status)


def status_of_code(detail: Any) -> int:
    if not isinstance(detail, dict):
        return 502
    return _STATUS_BY_CODE.get(str(detail.get("code") or detail.get("type") or ""), 502)


def failure(error: GatewayError) -> dict[str, Any]:
    """`response.error` for a failed response."""
    code = error.code or ("rate_limit_exceeded" if error.kind == "rate_limit" else "server_error")
    return {"code": code, "message": error.message}

