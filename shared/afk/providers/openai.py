"""OpenAI and any OpenAI-compatible upstream, over Chat Completions."""

from __future__ import annotations

import httpx

from afk.dialects import openai_chat
from afk.errors import GatewayError, UpstreamError
from afk.providers import Call, Completion, Frame, UpstreamStream
from afk.providers.transport import client_for_loop, json_body, open_sse, upstream_errors
from afk.settings import Settings
from afk.sse import ServerSentEvent


class OpenAIProvider:
    name = "openai"
    dialect = openai_chat.DIALECT

    def __init__(self, settings: Settings) -> None:
        upstream = settings.upstreams["openai"]
        self._url = f"{upstream.base_url}/chat/completions"
        self._api_key = upstream.api_key
        self._settings = settings

    def _client(self) -> httpx.AsyncClient:
        return client_for_loop(self._settings.connect_timeout, self._settings.read_timeout)

    def _body(self, call: Call) -> dict:
        if call.passthrough_body is not None:
            return call.passthrough_body
        return openai_chat.render_request(call.request, model=call.model.upstream)

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def _error(self, response: httpx.Response) -> GatewayError:
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"message": response.text[:200] or response.reason_phrase}}
        if response.status_code in (401, 403):
            # The provider refused OUR key: a gateway misconfiguration, not the caller's fault.
            return UpstreamError("The gateway's OpenAI credentials were refused upstream.")
        if response.status_code == 404:
            return UpstreamError(f"The OpenAI upstream does not serve this model: "
                                 f"{body.get('error', {}).get('message', '')}".strip())
        error = openai_chat.error_from_body(body, status=response.status_code)
        retry_after = response.headers.get("retry-after")
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            error.retry_after = float(retry_after)
        return error

    async def complete(self, call: Call) -> Completion:
        body = {**self._body(call), "stream": False}
        body.pop("stream_options", None)
        async with upstream_errors(self.name):
            response = await self._client().post(self._url, json=body, headers=self._headers())
        if response.status_code >= 300:
            raise self._error(response)
        raw = json_body(response, self.name)
        return Completion(response=openai_chat.parse_response(raw), raw=raw)

    async def open_stream(self, call: Call) -> UpstreamStream:
        body = self._body(call)
        body = {**body, "stream": True,
                "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        decoder = openai_chat.StreamDecoder()
        include_usage = call.request.stream_usage

        def decode(event: ServerSentEvent) -> Frame:
            events = decoder.feed(event)
            return Frame(events=events, raw=event,
                         relay=openai_chat.passthrough_keep(decoder, include_usage=include_usage))

        client = self._client()
        request = client.build_request("POST", self._url, json=body, headers=self._headers())
        return await open_sse(client, request, provider=self.name, on_error=self._error,
                              decode=decode, finish=decoder.finish)
