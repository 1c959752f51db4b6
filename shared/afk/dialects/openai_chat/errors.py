"""OpenAI-shaped errors (afk/dialects/openai_errors.py), and the in-stream error a
Chat Completions caller gets: a `data:` event of the same envelope."""

from __future__ import annotations

from afk.dialects.jsonwire import dumps
from afk.dialects.openai_errors import error_from_body, render_error
from afk.errors import GatewayError
from afk.sse import ServerSentEvent

__all__ = ["error_from_body", "render_error", "render_stream_error"]


def render_stream_error(error: GatewayError) -> list[ServerSentEvent]:
    return [ServerSentEvent(data=dumps(render_error(error)))]
