"""Responses-API state: one turn of a conversation, before and after the call.

Before: `previous_response_id` is resolved to the stored chain (this
account's only), whose items become the history in front of this turn's
input, for whichever provider serves the model. After: the turn (its input
items, output items and response object) is stored under a response id of
ours, unless the caller said `store: false`.

Storing is bounded, and refused before any money moves: a turn whose input
(with the request fields its response repeats) exceeds
`responses_max_turn_bytes` is a 400 unless the caller says `store: false`
(the output is bounded by the model's output cap), and an account keeps at
most `responses_quota_bytes` of stored turns (a 400 naming the quota). The
usage figure is read at most once per `cache_ttl` per process and account
(store/responses.py keeps it without a hot item), so concurrent processes can
overshoot the quota by what they store within that window.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import anyio.to_thread

from afk import ir
from afk.auth import Principal
from afk.dialects import openai_responses
from afk.errors import InvalidRequest, NotFound
from afk.gateway import Gateway
from afk.pipeline import Turn, parse_caller
from afk.sse import ServerSentEvent
from afk.store import StoredResponse


def new_response_id() -> str:
    return f"resp_{secrets.token_hex(24)}"


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The caller's `input` as items, each with an id (what input_items lists)."""
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": raw}]}]
    if not isinstance(raw, list):
        raise InvalidRequest("'input' must be a string or an array of items.", param="input")
    items = []
    for item in raw:
        if not isinstance(item, dict):
            raise InvalidRequest("Every input item must be an object.", param="input")
        item = dict(item)
        if "id" not in item and item.get("type", "message") == "message":
            item = {"id": f"msg_{secrets.token_hex(24)}", "type": "message", **item}
        items.append(item)
    return items


class ResponsesTurn:
    """One Responses request: its history, its id, and how it is stored."""

    def __init__(self, gateway: Gateway, principal: Principal, body: dict[str, Any]) -> None:
        self.gateway = gateway
        self.codec = openai_responses
        self.principal = principal
        self.body = body
        self.id = new_response_id()
        self.previous_id = body.get("previous_response_id")
        self.store = body.get("store") is not False
        self.items = input_items(body)
        self.chain: list[StoredResponse] = []
        self._upstream_id: str | None = None

    async def check_storage(self) -> None:
        """A 400 now if this turn is to be stored and cannot be (see the module's
        docstring)."""
        if not self.store:
            return
        settings = self.gateway.settings
        size = len(json.dumps({"input": self.items, "echo": self.codec.echo_fields(self.body)},
                              separators=(",", ":"), ensure_ascii=False).encode())
        if size > settings.responses_max_turn_bytes:
            raise InvalidRequest(
                f"This turn's input is {size} bytes, and the gateway stores turns of at most "
                f"{settings.responses_max_turn_bytes} bytes. Send it with \"store\": false, "
                "or send less.", param="store", code="stored_turn_too_large")
        used = await self._stored_bytes()
        if used + size > settings.responses_quota_bytes:
            raise InvalidRequest(
                f"Storing this turn ({size} bytes) would exceed this account's quota for "
                f"stored responses: {used} of {settings.responses_quota_bytes} bytes are in "
                "use. Delete stored responses (DELETE /v1/responses/{id}), or send "
                "\"store\": false.", param="store", code="storage_quota_exceeded")

    async def _stored_bytes(self) -> int:
        cache, account = self.gateway.responses_usage, self.principal.account_id
        entry = cache.get(account)
        if entry is None:
            ttl_s = int(self.gateway.settings.responses_ttl_days * 86400)
            used = await anyio.to_thread.run_sync(
                lambda: self.gateway.store.responses.usage(account, ttl_s=ttl_s))
            entry = [used]
            cache.put(account, entry)
        return entry[0]

    async def prepare(self) -> tuple[ir.Request, dict[str, Any], Turn]:
        """The IR request with its history, the body a same-dialect upstream gets
        (history inlined, since the upstream never saw our ids), and the hooks."""
        request: ir.Request = parse_caller(self.codec, self.codec.parse_request, self.body)
        await self.check_storage()
        history_items: list[dict[str, Any]] = []
        if self.previous_id is not None:
            if not isinstance(self.previous_id, str):
                raise InvalidRequest("'previous_response_id' must be a string.",
                                     param="previous_response_id")
            chain = await anyio.to_thread.run_sync(
                self.gateway.store.responses.chain, self.principal.account_id, self.previous_id)
            if chain is None:
                raise NotFound(f"Previous response with id '{self.previous_id}' not found.",
                               param="previous_response_id", code="previous_response_not_found")
            self.chain = chain
            history_items = [i for turn in chain for i in (*turn.input_items, *turn.output_items)]
            history = self.codec.parse_items(history_items)
            # This turn's instructions (a leading system message; never inherited)
            # stay first, the history follows, then this turn's input.
            at = 1 if self.body.get("instructions") else 0
            request.messages[at:at] = history
        body = {k: v for k, v in self.body.items() if k != "previous_response_id"}
        body["input"] = [*history_items, *self.items]
        echo = {**self.codec.echo_fields(self.body), "id": self.id,
                "previous_response_id": self.previous_id, "store": self.store}
        return request, body, Turn(echo=echo, relay=self._relay,
                                   completed=self._completed)

    def _relay(self, event: ServerSentEvent) -> ServerSentEvent:
        """A relayed upstream event, with the upstream's response id replaced by ours."""
        if self._upstream_id is None:
            try:
                data = json.loads(event.data)
            except ValueError:
                return event
            response = data.get("response") if isinstance(data.get("response"), dict) else data
            upstream_id = response.get("id") if isinstance(response, dict) else None
            if isinstance(upstream_id, str) and upstream_id.startswith("resp"):
                self._upstream_id = upstream_id
        if self._upstream_id is None or self._upstream_id not in event.data:
            return event
        return ServerSentEvent(data=event.data.replace(self._upstream_id, self.id),
                               event=event.event)

    async def _completed(self, response: ir.Response, raw: dict[str, Any] | None) -> None:
        if not self.store:
            return
        response.id = self.id
        echo = {**self.codec.echo_fields(self.body), "id": self.id,
                "previous_response_id": self.previous_id, "store": True}
        if raw is not None:
            obj = json.loads(self._relay(ServerSentEvent(data=json.dumps(raw))).data)
            obj.update({k: v for k, v in echo.items() if k in ("previous_response_id", "store")})
            output = obj.get("output") or []
        else:
            obj = self.codec.render_response(response, echo=echo)
            output = obj["output"]
        now = int(time.time())
        record = StoredResponse(
            id=self.id, account_id=self.principal.account_id, model=response.model,
            created_at=now, expires_at=now + int(self.gateway.settings.responses_ttl_days * 86400),
            previous_response_id=self.previous_id,
            ancestors=[t.id for t in self.chain], input_items=self.items, output_items=output,
            response=obj)
        size = await anyio.to_thread.run_sync(self.gateway.store.responses.put, record)
        entry = self.gateway.responses_usage.get(self.principal.account_id)
        if entry is not None:  # this process's own additions count before the next read
            entry[0] += size
