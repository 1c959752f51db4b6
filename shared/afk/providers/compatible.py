"""Upstreams declared in the catalog that speak OpenAI Chat Completions: any
OpenAI-compatible server (DeepSeek, Groq, Mistral, Together, vLLM, Ollama, ...)
and Azure OpenAI. The OpenAI provider with another URL, auth header and name
for the output cap (afk/endpoints.py)."""

from __future__ import annotations

from typing import Any

from afk.catalog import Model
from afk.endpoints import Endpoint
from afk.providers import Call
from afk.providers.openai import OpenAIProvider
from afk.providers.transport import Upstreams
from afk.settings import Settings, Upstream


class OpenAICompatibleProvider(OpenAIProvider):
    def __init__(self, settings: Settings, endpoint: Endpoint, *,
                 upstreams: Upstreams | None = None) -> None:
        self.name = endpoint.name
        self.endpoint = endpoint
        key = settings.credential(endpoint.key) if endpoint.key else None
        super().__init__(settings, Upstream(endpoint.base_url, key), key_setting=endpoint.key,
                         upstreams=upstreams)

    def body(self, call: Call, *, stream: bool) -> dict[str, Any]:
        body = super().body(call, stream=stream)  # a fresh dict
        # The cap under the name this server takes, once (a server that knows both
        # names refuses a body carrying both).
        wanted = self.endpoint.max_tokens_field
        other = "max_completion_tokens" if wanted == "max_tokens" else "max_tokens"
        if body.get(other) is not None:
            body[wanted] = body.pop(other)
        return body


class AzureOpenAIProvider(OpenAICompatibleProvider):
    """Azure OpenAI: a model's `upstream` names its deployment; the key travels in
    `api-key`; every call carries the endpoint's `api-version`.
    https://learn.microsoft.com/azure/ai-foundry/openai/reference (Chat completions)."""

    def url(self, call: Call, *, stream: bool) -> str:
        return (f"{self.base_url}/openai/deployments/{call.model.upstream}/chat/completions"
                f"?api-version={self.endpoint.api_version}")

    def headers(self, call: Call) -> dict[str, str]:
        return {"content-type": "application/json", "api-key": self.api_key or ""}

    def embeddings_url(self, model: Model) -> str:
        return (f"{self.base_url}/openai/deployments/{model.upstream}/embeddings"
                f"?api-version={self.endpoint.api_version}")
