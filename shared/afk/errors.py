"""One exception hierarchy for everything a caller can be told.

Upstream, transport (providers/transport.py) and AWS failures are translated into
these at the boundary where they happen; each dialect renders them in its own shape
(`dialects/*.render_error`). `kind` is dialect-neutral; the codecs map it.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """An error with an HTTP status and a message safe to show the caller."""

    status: int = 500
    kind: str = "api_error"
    # The same request may succeed if sent again (upstream overload, rate limit,
    # a connection that never opened); only such errors are retried, and only
    # before any byte reached the caller.
    retryable: bool = False
    # What the provider reported it billed for the failed call (an ir.Usage), if
    # anything: the provider charges it, so it is charged (billing/meter.py).
    usage: Any = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class InvalidRequest(GatewayError):
    status = 400
    kind = "invalid_request"


class RequestTooLarge(GatewayError):
    status = 413
    kind = "request_too_large"


class AuthenticationFailed(GatewayError):
    status = 401
    kind = "authentication"


class PermissionDenied(GatewayError):
    """403: the key is valid but may not do this (its scope, or a limit on it)."""

    status = 403
    kind = "permission"


class InsufficientCredits(GatewayError):
    """402: the balance or the per-call cap cannot cover the request."""

    status = 402
    kind = "billing"


class NotFound(GatewayError):
    status = 404
    kind = "not_found"


class ModelNotFound(NotFound):
    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )


class Conflict(GatewayError):
    """409: the request contradicts what was already done under the same
    idempotency key (Stripe's `idempotency_error`)."""

    status = 409
    kind = "conflict"


class ProviderNotConfigured(GatewayError):
    """The gateway holds no API key for the model's provider: the operator's to fix,
    so final. 403 (Google's own status for a missing key): no SDK or coding CLI
    retries it, unlike the 5xx an unauthenticated upstream call would come back as."""

    status = 403
    kind = "permission"

    def __init__(self, model: str, provider: str, setting: str, *, secret: bool) -> None:
        where = (f"the {setting} field of the gateway's provider-keys secret (or the "
                 f"{setting} environment variable)" if secret
                 else f"the {setting} environment variable")
        said = (f"this gateway has no API key for its provider ({provider}). The gateway's "
                f"operator must set {where}.") if provider != "bedrock" else (
            "Amazon Bedrock is not enabled on this gateway. The gateway's operator must set "
            "AFK_BEDROCK=1 where it runs with AWS credentials allowed to invoke the model "
            "(on Lambda, the stack's role is).")
        super().__init__(f"The model `{model}` is unavailable: {said}", param="model",
                         code="provider_not_configured")


class CredentialsRefused(GatewayError):
    """The provider refused the gateway's own API key: the operator's to fix (never
    the caller's 401), so final, like ProviderNotConfigured."""

    status = 403
    kind = "permission"

    def __init__(self, provider: str, setting: str | None = None) -> None:
        check = f" The gateway's operator must check {setting}." if setting else ""
        super().__init__(f"The {provider} upstream refused this gateway's key.{check}",
                         code="provider_credentials_refused")


class RateLimited(GatewayError):
    status = 429
    kind = "rate_limit"
    retryable = True


class UpstreamError(GatewayError):
    """The provider failed: 502 unless it told us something more precise."""

    status = 502
    kind = "upstream"


class UpstreamTimeout(UpstreamError):
    status = 504
    kind = "timeout"


class Overloaded(UpstreamError):
    status = 503
    kind = "overloaded"
    retryable = True


class UpstreamUnreachable(UpstreamError):
    """No connection could be opened: the request never reached the provider."""

    retryable = True


class StoreUnavailable(GatewayError):
    """Our own database failed; nothing was charged."""

    status = 503
    kind = "api_error"
