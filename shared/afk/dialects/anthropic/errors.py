"""Messages errors, both ways: upstream error bodies (and in-stream error events) as
ours, ours in the caller's shape."""

from __future__ import annotations

from typing import Any

from afk.dialects.jsonwire import dumps
from afk.errors import (
    GatewayError,
    InvalidRequest,
    Overloaded,
    RateLimited,
    RequestTooLarge,
    UpstreamError,
)
from afk.sse import ServerSentEvent

__all__ = ["error_from_body", "render_error", "render_stream_error"]


def error_from_body(body: Any, *, status: int) -> GatewayError:
    """An upstream Anthropic error as ours, keeping its message."""
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        message = str(detail.get("message") or "upstream error")
    else:
        message = str(detail) if detail else "upstream error"
    if status in (400, 422):
        return InvalidRequest(message, status=status)
    if status == 413:
        return RequestTooLarge(message)
    if status == 429:
        return RateLimited(message)
    if status in (503, 529):
        return Overloaded(message)
    return UpstreamError(f"upstream error ({status}): {message}")


def stream_error_status(body: dict[str, Any]) -> int:
    """The HTTP status an in-stream error stands for (its own status was 200)."""
    detail = body.get("error")
    kind = detail.get("type") if isinstance(detail, dict) else None
    return _STATUS_BY_ERROR_TYPE.get(kind or "", 502)


_STATUS_BY_ERROR_TYPE = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}


_ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "invalid_request_error",
    422: "invalid_request_error", 429: "rate_limit_error", 500: "api_error", 502: "api_error",
    503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error",
}


def _error_type(error: GatewayError) -> str:
    default = "api_error" if error.status >= 500 else "invalid_request_error"
    return _ERROR_TYPE_BY_STATUS.get(error.status, default)


def render_error(error: GatewayError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _error_type(error), "message": error.message},
            "request_id": None}


def render_stream_error(error: GatewayError) -> list[ServerSentEvent]:
    data = {"type": "error", "error": {"type": _error_type(error), "message": error.message}}
    return [ServerSentEvent(data=dumps(data), event="error")]
