"""The Gemini model-list shape (`GET /v1beta/models`, `GET /v1beta/models/{m}`)."""

from __future__ import annotations

from typing import Any

__all__ = ["render_model", "render_model_list"]


def render_model(model_id: str, display_name: str, context_window: int,
                 max_output_tokens: int) -> dict[str, Any]:
    return {
        "name": f"models/{model_id}", "version": "001", "displayName": display_name,
        "inputTokenLimit": context_window, "outputTokenLimit": max_output_tokens,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def render_model_list(models: list[dict[str, Any]]) -> dict[str, Any]:
    return {"models": models}
