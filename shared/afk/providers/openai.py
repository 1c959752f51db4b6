"""OpenAI and any OpenAI-compatible upstream, over Chat Completions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from afk.catalog import Model
from afk.dialects import openai_chat
from afk.providers import Call, Embedded
from afk.providers.base import HTTPProvider
from afk.providers.transport import json_body, upstream_errors
from afk.sse import ServerSentEvent

if TYPE_CHECKING:
    from afk.dialects.base import UpstreamCodec


class OpenAIProvider(HTTPProvider[ServerSentEvent]):
    name = "openai"
    codec = openai_chat

    def url(self, call: Call, *, stream: bool) -> str:
        return f"{self.base_url}/chat/completions"

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def body(self, call: Call, *, stream: bool) -> dict[str, Any]:
        body = call.passthrough_body
        if body is None:
            body = openai_chat.render_request(call.request, model=call.model.upstream)
        if not stream:
            body = {**body, "stream": False}
            body.pop("stream_options", None)
            return body
        # Always ask for usage: billing needs it. The caller sees the usage chunk
        # only if it asked (see openai_chat.StreamDecoder.passthrough).
        return {**body, "stream": True,
                "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}


    def embeddings_url(self, model: Model) -> str:
        return f"{self.base_url}/embeddings"

    async def embed(self, model: Model, texts: list[str], *,
                    dimensions: int | None) -> Embedded:
        """POST /embeddings (https://platform.openai.com/docs/api-reference/embeddings),
        floats asked for: the gateway encodes for its caller."""

        body: dict[str, Any] = {"model": model.upstream, "input": texts,
                                "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        async with upstream_errors(self.name):
            response = await self.client().post(self.embeddings_url(model), json=body,
                                                headers=self.headers(None))  # type: ignore[arg-type]
        if response.status_code >= 300:
            raise self.error(response)
        raw = json_body(response, self.name)
        data = sorted(raw.get("data") or [], key=lambda d: d.get("index", 0))
        tokens = (raw.get("usage") or {}).get("prompt_tokens")
        return Embedded(vectors=[d.get("embedding") or [] for d in data],
                        input_tokens=tokens if isinstance(tokens, int) else None)


class OpenAIResponsesProvider(HTTPProvider[ServerSentEvent]):
    """OpenAI over the Responses API, for callers that speak it.

    The gateway keeps conversation state itself (any provider can continue a
    chain), so the upstream is asked to store nothing and to return reasoning
    as encrypted content, which the gateway stores and sends back to OpenAI.
    """

    name = "openai"

    @property
    def codec(self) -> UpstreamCodec[ServerSentEvent]:  # type: ignore[override]  # imported when used
        from afk.dialects import openai_responses

        return openai_responses

    def url(self, call: Call, *, stream: bool) -> str:
        return f"{self.base_url}/responses"

    headers = OpenAIProvider.headers

    def body(self, call: Call, *, stream: bool) -> dict[str, Any]:
        body = call.passthrough_body
        if body is None:
            body = self.codec.render_request(call.request, model=call.model.upstream)
        include = [i for i in body.get("include") or [] if i != "reasoning.encrypted_content"]
        if call.model.reasoning:
            include.append("reasoning.encrypted_content")  # reasoning state comes back to us
        if call.passthrough_body is None and call.request.web_search is not None:
            include.append("web_search_call.action.sources")  # for the caller's citations
        body = {k: v for k, v in body.items() if k not in ("previous_response_id",
                                                             "conversation", "include")}
        return {**body, "stream": stream, "store": False, **({"include": include}
                                                             if include else {})}
