"""What the HTTP providers share: send, check status, decode, map errors.

A provider subclass says only what differs: the URL, the headers, the body
for a passthrough or an IR call, and how the upstream's error bodies read.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx

from afk.errors import GatewayError, UpstreamError
from afk.providers import Call, Completion, Frame, UpstreamStream
from afk.providers.transport import client_for_loop, json_body, open_sse, upstream_errors
from afk.settings import Settings
from afk.sse import ServerSentEvent


class HTTPProvider:
    name: str
    codec: ModuleType  # the dialect module the upstream speaks

    def __init__(self, settings: Settings) -> None:
        upstream = settings.upstreams[self.name]
        self.base_url = upstream.base_url
        self.api_key = upstream.api_key
        self._settings = settings

    @property
    def dialect(self) -> str:
        return self.codec.DIALECT

    # -------------------------------------------------------- what differs
    def url(self, call: Call, *, stream: bool) -> str:
        raise NotImplementedError

    def headers(self, call: Call) -> dict[str, str]:
        raise NotImplementedError

    def body(self, call: Call, *, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    # -------------------------------------------------------- shared
    def client(self) -> httpx.AsyncClient:
        return client_for_loop(self._settings.connect_timeout, self._settings.read_timeout)

    def error(self, response: httpx.Response) -> GatewayError:
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"message": response.text[:300] or response.reason_phrase}}
        status = response.status_code
        if status in (401, 403):
            # The provider refused OUR credentials: a gateway fault, not the caller's.
            return UpstreamError(f"The gateway's {self.name} credentials were refused upstream.")
        if status == 404:
            return UpstreamError(f"The {self.name} upstream does not serve this model.")
        error = self.codec.error_from_body(body, status=status)
        # Overload, rate limits, timeouts and conflicts say "try again", unless the
        # provider's own x-should-retry (OpenAI, Anthropic) says not to. A request
        # the provider found invalid is never sent again.
        should_retry = response.headers.get("x-should-retry", "").lower() != "false"
        error.retryable = should_retry and (status in (408, 409, 429) or status >= 500)
        retry_after = response.headers.get("retry-after")
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            error.retry_after = float(retry_after)
        return error

    async def complete(self, call: Call) -> Completion:
        async with upstream_errors(self.name):
            response = await self.client().post(self.url(call, stream=False),
                                                json=self.body(call, stream=False),
                                                headers=self.headers(call))
        if response.status_code >= 300:
            raise self.error(response)
        raw = json_body(response, self.name)
        return Completion(response=self.codec.parse_response(raw), raw=raw)

    async def open_stream(self, call: Call) -> UpstreamStream:
        decoder = self.codec.StreamDecoder()
        include_usage = call.request.stream_usage
        codec = self.codec

        def decode(event: ServerSentEvent) -> Frame:
            events = decoder.feed(event)
            return Frame(events=events, raw=event,
                         relay=codec.passthrough_keep(decoder, include_usage=include_usage))

        client = self.client()
        request = client.build_request("POST", self.url(call, stream=True),
                                       json=self.body(call, stream=True),
                                       headers=self.headers(call))
        stream = await open_sse(client, request, provider=self.name, on_error=self.error,
                                decode=decode, finish=decoder.finish)
        stream.decoder = decoder
        return stream

    async def count_tokens(self, call: Call) -> int | None:
        """The provider's own count of the prompt, or None where it has no such API."""
        return None
