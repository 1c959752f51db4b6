"""Anthropic, over the Messages API."""

from __future__ import annotations

from typing import Any

from afk.dialects import anthropic
from afk.providers import Call
from afk.providers.base import HTTPProvider
from afk.providers.transport import json_body, upstream_errors
from afk.sse import ServerSentEvent

# The version the IR path is written for. A passthrough keeps the caller's.
ANTHROPIC_VERSION = "2026-10-21"


class AnthropicProvider(HTTPProvider[ServerSentEvent]):
    name = "anthropic"
    codec = anthropic

    def url(self, call: Call, *, stream: bool) -> str:
        return f"{self.base_url}/v1/messages"

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        if call.passthrough_body is not None:
            # Same dialect end to end: the caller's version and betas apply as sent.
            for name in ("anthropic-version", "anthropic-beta"):
                if call.caller_headers.get(name):
                    headers[name] = call.caller_headers[name]
        return headers

    def body(self, call: Call, *, stream: bool) -> dict[str, Any]:
        body = call.passthrough_body
        if body is None:
            body = anthropic.render_request(call.request, model=call.model.upstream)
        return {**body, "stream": stream}

    async def count_tokens(self, call: Call) -> int | None:
        body = dict(call.passthrough_body or anthropic.render_request(
            call.request, model=call.model.upstream))
        for field in ("max_tokens", "stream", "stop_sequences", "metadata", "temperature",
                      "top_p", "top_k", "service_tier"):
            body.pop(field, None)
        async with upstream_errors(self.name):
            response = await self.client().post(f"{self.base_url}/v1/messages/count_tokens",
                                                json=body, headers=self.headers(call))
        if response.status_code >= 300:
            raise self.error(response)
        count = json_body(response, self.name).get("input_tokens")
        return int(count) if isinstance(count, int) else None
