"""Google Gemini, over generateContent / streamGenerateContent (SSE)."""

from __future__ import annotations

from typing import Any

from afk.dialects import gemini
from afk.providers import Call, Completion, UpstreamStream
from afk.providers.base import HTTPProvider
from afk.providers.images import ImageBudget, ImageFetcher
from afk.providers.transport import json_body, upstream_errors

API_VERSION = "v1beta"


def takes_by_reference(url: str) -> bool:
    """Gemini's fileData takes only Cloud Storage and its own Files API URIs."""
    return url.startswith(("gs://", "https://generativelanguage.googleapis.com/"))


class GeminiProvider(HTTPProvider):
    name = "gemini"
    codec = gemini
    images = ImageFetcher()

    async def _inline_images(self, call: Call) -> None:
        if call.passthrough_body is None:
            settings = self._settings
            await self.images.inline(call.request, keep=takes_by_reference, budget=ImageBudget(
                images=settings.image_fetch_max_images, bytes=settings.image_fetch_max_bytes,
                seconds=settings.image_fetch_seconds))

    async def prepare(self, call: Call) -> None:
        """Images by URL travel inline (Gemini fetches none itself): fetched before the
        hold, so the quote prices them from their real size; `complete` and
        `open_stream` then find nothing left to fetch."""
        await self._inline_images(call)

    async def complete(self, call: Call) -> Completion:
        await self._inline_images(call)
        return await super().complete(call)

    async def open_stream(self, call: Call) -> UpstreamStream:
        await self._inline_images(call)
        return await super().open_stream(call)

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
