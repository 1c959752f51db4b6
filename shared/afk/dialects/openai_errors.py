"""The OpenAI error envelope (`{"error": {"message", "type", "param", "code"}}`),
both ways: what the two OpenAI dialects (Chat Completions, Responses) share,
since one provider defines both. Not a dialect: dialects import it, and the IR.
https://platform.openai.com/docs/guides/error-codes
"""

from __future__ import annotations

from typing import Any

from afk.errors import (
    GatewayError,
    InvalidRequest,
    Overloaded,
    RateLimited,
    UpstreamError,
)

_ERROR_TYPES = {
    "invalid_request": ("invalid_request_error", None),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "permission": ("invalid_request_error", "permission_denied"),
    "billing": ("insufficient_quota", "insufficient_credits"),
    "not_found": ("invalid_request_error", "not_found"),
    "conflict": ("invalid_request_error", "idempotency_error"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "upstream": ("server_error", "upstream_error"),
    "timeout": ("server_error", "upstream_timeout"),
    "overloaded": ("server_error", "overloaded"),
    "api_error": ("server_error", None),
}


def render_error(error: GatewayError) -> dict[str, Any]:
    kind, code = _ERROR_TYPES.get(error.kind, ("server_error", None))
    return {"error": {"message": error.message, "type": kind, "param": error.param,
                      "code": error.code or code}}


def error_from_body(body: Any, *, status: int) -> GatewayError:
    """An upstream OpenAI-shaped error as ours, keeping its message."""
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        message = str(detail.get("message") or "upstream error")
        code = detail.get("code")
        param = detail.get("param")
    else:
        message, code, param = (str(detail) if detail else "upstream error"), None, None
    if status == 429:
        return RateLimited(message, code=code)
    if status in (400, 413, 422):
        return InvalidRequest(message, param=param, code=code, status=status)
    if status in (503, 529):
        return Overloaded(message)
    return UpstreamError(f"upstream error ({status}): {message}")
