"""What Bedrock's Converse answers share, buffered or streamed: usage, stop reasons,
errors (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
API_runtime_ConverseStream.html, API_runtime_TokenUsage.html)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from afk import errors, ir

DIALECT = "bedrock_converse"  # spoken only upstream: never a caller's, so never a passthrough
PROVIDER = "bedrock"  # the issuer named on reasoning signatures

STOP_REASONS: dict[str, ir.StopReason] = {
    "end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length",
    "stop_sequence": "stop_sequence", "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter", "model_context_window_exceeded": "length",
}

# Exceptions by name: the HTTP error's x-amzn-ErrorType, or an in-stream exception's
# :exception-type (lower camel case there), with the status Bedrock gives each.
EXCEPTION_STATUS = {
    "validationexception": 400, "accessdeniedexception": 403,
    "resourcenotfoundexception": 404, "modeltimeoutexception": 408,
    "modelnotreadyexception": 429, "modelerrorexception": 424,
    "throttlingexception": 429, "servicequotaexceededexception": 429,
    "internalserverexception": 500, "modelstreamerrorexception": 424,
    "serviceunavailableexception": 503,
}


def new_response_id() -> str:
    """Converse answers carry no id of their own."""
    return f"msg_bdrk_{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def parse_usage(usage: Any) -> ir.Usage:
    """Converse's `inputTokens` leaves out the cache reads and writes, which it
    reports beside it (`totalTokens` = input + cache read + cache write + output);
    the IR's input includes them."""
    usage = usage if isinstance(usage, dict) else {}

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and value > 0 else 0

    read, write = count("cacheReadInputTokens"), count("cacheWriteInputTokens")
    return ir.Usage(input_tokens=count("inputTokens") + read + write,
                    output_tokens=count("outputTokens"), cached_input_tokens=read,
                    cache_write_tokens=write)


def stop_reason(value: Any) -> ir.StopReason:
    return STOP_REASONS.get(value, "stop") if isinstance(value, str) else "stop"


def error_from_body(body: Any, *, status: int) -> errors.GatewayError:
    """A Bedrock error (`{"message": ...}`, its type in a header) as ours, by status."""
    detail = body if isinstance(body, dict) else {}
    message = str(detail.get("message") or detail.get("Message") or "upstream error")
    if status in (400, 422):
        return errors.InvalidRequest(message, status=status)
    if status == 408:
        error = errors.UpstreamTimeout(message)
        error.retryable = True
        return error
    if status == 429:
        return errors.RateLimited(message)
    if status == 503:
        return errors.Overloaded(message)
    return errors.UpstreamError(f"upstream error ({status}): {message}")


def exception_error(kind: str, body: Any) -> errors.GatewayError:
    """An in-stream exception (`:message-type: exception`) as ours."""
    status = EXCEPTION_STATUS.get(kind.lower(), 500)
    error = error_from_body(body, status=status)
    error.retryable = False  # bytes may have reached the caller: never re-sent
    return error
