"""Errors in Google's shape for Gemini callers, and upstream Gemini error bodies
as the gateway's own exceptions."""

from __future__ import annotations

from typing import Any

from afk.dialects.jsonwire import dumps
from afk.errors import (
    CredentialsRefused,
    GatewayError,
    InvalidRequest,
    Overloaded,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from afk.sse import ServerSentEvent

__all__ = ["error_from_body", "render_error", "render_stream_error"]

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED", 404: "NOT_FOUND", 413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def render_error(error: GatewayError) -> dict[str, Any]:
    """Google's error shape, with OUR status (401 bad key, 402 credits) in `code`,
    so google-genai raises ClientError/ServerError for the right reason."""
    body: dict[str, Any] = {"code": error.status, "message": error.message,
                            "status": _STATUS_NAMES.get(error.status, "INTERNAL")}
    details: list[dict[str, Any]] = []
    if error.code:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": error.code.upper(), "domain": "afk"})
    if error.param:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": error.param,
                                             "description": error.message}]})
    if details:
        body["details"] = details
    return {"error": body}


def render_stream_error(error: GatewayError) -> list[ServerSentEvent]:
    # google-genai raises only when `error` is the chunk's first key.
    return [ServerSentEvent(data=dumps(render_error(error)))]


def error_from_body(body: Any, *, status: int) -> GatewayError:
    """An upstream Gemini error as ours. A refused key is the gateway's own
    misconfiguration (Gemini says 400 API_KEY_INVALID or 403), never the caller's."""
    detail = body.get("error") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        detail = {"message": str(detail) if detail else "upstream error"}
    message = str(detail.get("message") or "upstream error")
    reasons = {d.get("reason") for d in detail.get("details") or [] if isinstance(d, dict)}
    if "API_KEY_INVALID" in reasons or status in (401, 403):
        return CredentialsRefused("gemini")
    if status == 429:
        return RateLimited(message)
    if status in (400, 413, 422) and detail.get("status") != "FAILED_PRECONDITION":
        return InvalidRequest(message, status=status)
    if status == 503:
        return Overloaded(message)
    if status == 504:
        return UpstreamTimeout(message)
    return UpstreamError(f"upstream error ({status}): {message}")
