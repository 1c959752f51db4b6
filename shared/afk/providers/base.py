"""What the HTTP providers share: send, check status, decode, map errors.

A provider subclass says only what differs: the URL, the headers, the body
for a passthrough or an IR call, and how the upstream's error bodies read.

Upstream errors reach the caller in our own words (`reworded`): the provider,
the HTTP status and the upstream's error type (and an identifier-shaped code
and param) are kept; the upstream's message never is. It is the operator's
business, not the caller's: it names the operator's organization, its limits,
sometimes a fragment of its key. The operator's log gets the provider's
request id to look the error up with the provider.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from afk import observability
from afk.errors import CredentialsRefused, GatewayError, UpstreamError
from afk.providers import Call, Completion, Frame, UpstreamStream
from afk.providers.client import Client, Request, Response, TransportError
from afk.providers.transport import (
    Framing,
    Upstreams,
    gateway_error,
    json_body,
    open_sse,
)
from afk.settings import KEY_SETTINGS, Settings, Upstream
from afk.sse import SSEDecoder

if TYPE_CHECKING:
    from afk.dialects.base import UpstreamCodec

log = logging.getLogger("afk.providers")


class WireEvent(Protocol):
    """One upstream stream event as framed: an SSE event, or an event-stream message."""

    @property
    def data(self) -> str: ...  # its JSON text


Event = TypeVar("Event", bound=WireEvent)

# What may pass from an upstream error body to the caller: identifiers, never text.
_TYPE = re.compile(r"^(?:[a-z][a-z0-9_]{0,63}|[A-Z][A-Z0-9_]{0,63})$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]]{0,79}$")
_WHAT = {  # error kind -> what happened, what to do
    "rate_limit": ("is rate-limiting the gateway", " Retry later."),
    "overloaded": ("is overloaded", " Retry later."),
    "invalid_request": ("refused the request as invalid", ""),
    "request_too_large": ("refused the request as too large", ""),
    "timeout": ("timed out", " Retry later."),
}


def _identifier(value: Any, pattern: re.Pattern[str]) -> str | None:
    if isinstance(value, str) and pattern.match(value) and observability.redact(value) == value:
        return value
    return None


def _detail(body: Any) -> dict[str, Any]:
    """The error object of an upstream error body, in any provider's shape: an HTTP
    body `{"error": {...}}`, a flat in-stream error event, or a failed response."""
    if not isinstance(body, dict):
        return {}
    for candidate in (body.get("error"), (body.get("response") or {}).get("error")
                      if isinstance(body.get("response"), dict) else None):
        if isinstance(candidate, dict):
            return candidate
    return body


def upstream_type(body: Any) -> str | None:
    """The upstream's own error type (Anthropic and OpenAI `type`, Gemini `status`,
    else an OpenAI `code`), if it is an identifier."""
    detail = _detail(body)
    for name in ("type", "status", "code"):
        found = _identifier(detail.get(name), _TYPE)
        if found is not None and found != "error":
            return found
    return None


def _upstream_text(body: Any) -> str | None:
    detail = _detail(body)
    for text in (detail.get("message"), body.get("error") if isinstance(body, dict) else None):
        if isinstance(text, str) and text.strip():
            return text.strip()
    return None


def reworded(error: GatewayError, *, provider: str, status: int, body: Any) -> GatewayError:
    """`error` (what a codec made of an upstream error body) in our own words: same
    class, HTTP status, kind and retry hints; the upstream's status, type, and an
    identifier-shaped code and param named; the upstream's message dropped. An
    error the codec already worded itself (a refused credential) keeps its words."""
    detail = _detail(body)
    mapped = copy.copy(error)
    mapped.code = _identifier(error.code, _TYPE) or _identifier(detail.get("code"), _TYPE)
    mapped.param = _identifier(error.param, _PARAM)
    text = _upstream_text(body)
    if text is None or text not in error.message:
        return mapped
    kind = upstream_type(body)
    said = ", ".join(x for x in (
        f"HTTP {status}" if status else None, kind,
        f"code {mapped.code}" if mapped.code and mapped.code != kind else None,
        f"param {mapped.param}" if mapped.param else None) if x)
    what, advice = _WHAT.get(error.kind, ("failed", ""))
    mapped.message = f"The {provider} upstream {what}" + (f" ({said})." if said else ".") \
        + advice
    mapped.args = (mapped.message,)
    return mapped


def _event_body(event: WireEvent) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        return None


class HTTPProvider(Generic[Event]):
    """A provider over HTTP; `Event` is what its stream framing yields (SSE events,
    or Bedrock's event-stream messages), which its codec's decoder reads."""

    name: str
    codec: UpstreamCodec[Event]  # the dialect the upstream speaks
    framing: Callable[[], Framing] = SSEDecoder  # how the upstream frames a stream

    def __init__(self, settings: Settings, upstream: Upstream | None = None, *,
                 key_setting: str | None = None, upstreams: Upstreams | None = None) -> None:
        """`upstreams`: what the gateway's providers share (a provider built on its own
        gets its own)."""
        self.upstreams = upstreams or Upstreams(connect_timeout=settings.connect_timeout,
                                                read_timeout=settings.read_timeout,
                                                proxies=settings.proxies)
        upstream = upstream or settings.upstreams[self.name]
        self.base_url = upstream.base_url
        self.api_key = upstream.api_key
        # The setting holding the key: named to the operator when the provider refuses it.
        self.key_setting = key_setting or KEY_SETTINGS.get(self.name)
        observability.register_secret(self.api_key)  # never in a log line, whatever its shape
        self._settings = settings

    @property
    def dialect(self) -> str:
        dialect: str = self.codec.DIALECT
        return dialect

    # -------------------------------------------------------- what differs
    def url(self, call: Call, *, stream: bool) -> str:
        raise NotImplementedError

    def headers(self, call: Call) -> dict[str, str]:
        raise NotImplementedError

    def body(self, call: Call, *, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    async def prepare(self, call: Call) -> None:
        """Make `call` what will be sent (before the hold: its body is what is quoted)."""

    def upstream_body(self, call: Call, *, stream: bool) -> dict[str, Any] | None:
        return self.body(call, stream=stream)

    # -------------------------------------------------------- shared
    def client(self) -> Client:
        return self.upstreams.client()

    def error(self, response: Response) -> GatewayError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        status = response.status_code
        log.warning("the %s upstream answered HTTP %s (%s; upstream request id %s)", self.name,
                    status, upstream_type(body) or "no error type",
                    response.headers.get("x-request-id") or response.headers.get("request-id")
                    or response.headers.get("x-amzn-requestid") or "none")
        error = self.codec.error_from_body(body, status=status)
        if status in (401, 403) or isinstance(error, CredentialsRefused):
            # The provider refused OUR key: a gateway fault, not the caller's, and final.
            return CredentialsRefused(self.name, self.key_setting)
        if status == 404:
            return UpstreamError(f"The {self.name} upstream does not serve this model.")
        error = reworded(error, provider=self.name, status=status, body=body)
        # Overload, rate limits, timeouts and conflicts say "try again", unless the
        # provider's own x-should-retry (OpenAI, Anthropic) says not to. A request
        # the provider found invalid is never sent again.
        should_retry = response.headers.get("x-should-retry", "").lower() != "false"
        error.retryable = should_retry and (status in (408, 409, 429) or status >= 500)
        retry_after = response.headers.get("retry-after")
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            error.retry_after = float(retry_after)
        return error

    def request(self, call: Call, *, stream: bool) -> Request:
        """The upstream HTTP request for `call` (a signing provider signs it here)."""
        return Request.post_json(self.url(call, stream=stream), self.body(call, stream=stream),
                                 self.headers(call))

    async def complete(self, call: Call) -> Completion:
        try:
            response = await self.client().send(self.request(call, stream=False))
        except TransportError as exc:
            raise gateway_error(exc, self.name) from exc
        if response.status_code >= 300:
            raise self.error(response)
        raw = json_body(response, self.name)
        try:
            return Completion(response=self.codec.parse_response(raw), raw=raw)
        except GatewayError as error:  # a 200 reporting a failed response
            raise reworded(error, provider=self.name, status=0, body=raw) from None

    async def open_stream(self, call: Call) -> UpstreamStream:
        decoder = self.codec.StreamDecoder()
        include_usage = call.request.stream_usage
        # Only a same-dialect caller gets the upstream's events themselves.
        passthrough = call.passthrough_body is not None

        def decode(event: Event) -> Frame:
            try:
                events = decoder.feed(event)
            except GatewayError as error:  # an in-stream error event, or a broken stream
                raise reworded(error, provider=self.name, status=0,
                               body=_event_body(event)) from None
            if not passthrough:
                return Frame(events=events)
            relayed = decoder.passthrough(event, include_usage=include_usage)
            return Frame(events=events, raw=relayed, relay=relayed is not None)

        stream = await open_sse(self.client(), self.request(call, stream=True),
                                provider=self.name, on_error=self.error, decode=decode,
                                finish=decoder.finish, framing=self.framing)
        stream.decoder = decoder
        return stream

    async def count_tokens(self, call: Call) -> int | None:
        """The provider's own count of the prompt, or None where it has no such API."""
        return None
