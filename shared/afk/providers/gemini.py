"""Google Gemini, over generateContent / streamGenerateContent (SSE)."""

from __future__ import annotations

from typing import Any

from afk.catalog import Model
from afk.dialects import gemini
from afk.providers import Call, Embedded
from afk.providers.images import InlinesImages
from afk.providers.transport import json_body, upstream_errors
from afk.sse import ServerSentEvent

API_VERSION = "v1beta"
EMBED_BATCH = 100  # requests per batchEmbedContents call (https://ai.google.dev/api/embeddings)


def takes_by_reference(url: str) -> bool:
    """Gemini's fileData takes only Cloud Storage and its own Files API URIs."""
    return url.startswith(("gs://", "https://generativelanguage.googleapis.com/"))


class GeminiProvider(InlinesImages[ServerSentEvent]):
    """Images by URL travel inline (Gemini fetches none itself, except from Cloud
    Storage and its own Files API)."""

    name = "gemini"
    codec = gemini

    def keeps_url(self, url: str) -> bool:
        return takes_by_reference(url)

    def url(self, call: Call, *, stream: bool) -> str:
        model = f"{self.base_url}/{API_VERSION}/models/{call.model.upstream}"
        return f"{model}:streamGenerateContent?alt=sse" if stream else f"{model}:generateContent"

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["x-goog-api-key"] = self.api_key
        return headers

    def body(self, call: Call, *, stream: bool) -> dict[str, Any]:
        if call.passthrough_body is not None:
            return call.passthrough_body
        return gemini.render_request(call.request, model=call.model.upstream)

    async def count_tokens(self, call: Call) -> int | None:
        body = self.body(call, stream=False)
        request = {"model": f"models/{call.model.upstream}",
                   **{k: v for k, v in body.items()
                      if k in ("contents", "systemInstruction", "system_instruction", "tools",
                               "toolConfig", "tool_config")}}
        async with upstream_errors(self.name):
            response = await self.client().post(
                f"{self.base_url}/{API_VERSION}/models/{call.model.upstream}:countTokens",
                json={"generateContentRequest": request}, headers=self.headers(call))
        if response.status_code >= 300:
            raise self.error(response)
        count = json_body(response, self.name).get("totalTokens")
        return int(count) if isinstance(count, int) else None

    async def embed(self, model: Model, texts: list[str], *,
                    dimensions: int | None) -> Embedded:
        """batchEmbedContents (https://ai.google.dev/api/embeddings): one request per
        input. Its answer reports no token count: the call is billed the fair estimate."""

        name = f"models/{model.upstream}"
        vectors: list[list[float]] = []
        for at in range(0, len(texts), EMBED_BATCH):  # the API takes 100 a batch
            requests = [{"model": name, "content": {"parts": [{"text": text}]},
                         **({"outputDimensionality": dimensions} if dimensions else {})}
                        for text in texts[at:at + EMBED_BATCH]]
            async with upstream_errors(self.name):
                response = await self.client().post(
                    f"{self.base_url}/{API_VERSION}/{name}:batchEmbedContents",
                    json={"requests": requests},
                    headers=self.headers(None))  # type: ignore[arg-type]
            if response.status_code >= 300:
                raise self.error(response)
            raw = json_body(response, self.name)
            vectors += [e.get("values") or [] for e in raw.get("embeddings") or []]
        return Embedded(vectors=vectors, input_tokens=None)
