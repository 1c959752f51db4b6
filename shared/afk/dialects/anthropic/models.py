"""The Anthropic model-list shape (`GET /v1/models`, `GET /v1/models/{id}` for a
caller that speaks Anthropic): `ModelInfo` objects in a cursor page.

The shape is the anthropic SDK's `types/model_info.py` (`type: "model"`, `id`,
`display_name`, `created_at` as RFC 3339, `lifecycle` (required by SDK 2.14),
`max_input_tokens`, `max_tokens`) and `pagination.SyncPage` (`data`, `has_more`,
`first_id`, `last_id`; `limit` 1-1000, default 20, with `after_id` / `before_id`
cursors), as https://docs.anthropic.com/en/api/models-list documents it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from afk.errors import InvalidRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def render_model(model_id: str, display_name: str, created: int, context_window: int,
                 max_output_tokens: int) -> dict[str, Any]:
    return {
        "type": "model", "id": model_id, "display_name": display_name,
        "created_at": datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lifecycle": "active", "deprecated_at": None, "retires_at": None,
        "max_input_tokens": context_window, "max_tokens": max_output_tokens,
    }


def render_model_list(models: list[dict[str, Any]], *, limit: str | None = None,
                      after_id: str | None = None,
                      before_id: str | None = None) -> dict[str, Any]:
    """One page of `models` (in list order) the way the SDK's `SyncPage` pages it."""
    size = _limit(limit)
    ids = [m["id"] for m in models]
    start, end = 0, len(models)
    if after_id is not None:
        start = _position(ids, after_id, "after_id") + 1
    if before_id is not None:
        end = _position(ids, before_id, "before_id")
        start = max(start, end - size)
    page = models[start:min(end, start + size)]
    more = (start > 0) if before_id is not None else (start + len(page) < end)
    return {"data": page, "has_more": more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None}


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(f"limit: must be an integer from 1 to {MAX_LIMIT}.", param="limit")
    return int(value)


def _position(ids: list[str], cursor: str, name: str) -> int:
    if cursor not in ids:
        raise InvalidRequest(f"{name}: no model with id '{cursor}' in this list.", param=name)
    return ids.index(cursor)
