"""Messages requests (`POST /v1/messages`, `/v1/messages/count_tokens`), both
directions: the caller's body to the IR, the IR to an upstream body, the passthrough
patch."""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.dialects.anthropic import search
from afk.dialects.anthropic.messages import (
    Skipped,
    parse_messages,
    parse_system,
    render_messages,
)
from afk.errors import InvalidRequest

__all__ = ["check_translatable", "parse_count_tokens", "parse_request", "patch_request",
           "render_count_tokens", "render_request", "strip_reasoning"]

# Only reached outside the pipeline (which always sets the cap), e.g. when a
# provider renders a request just to count its tokens.
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024  # Anthropic's floor for thinking.budget_tokens

# Anthropic accepts low..max; the IR's lower rungs round to the nearest it has.
_EFFORT_TO_WIRE = {"minimal": "low", "low": "low", "medium": "medium", "high": "high",
                   "xhigh": "xhigh", "max": "max"}


# ================================================================ requests
def parse_request(body: Any, *, model: str | None = None,
                  stream: bool | None = None) -> ir.Request:
    """Validate a caller's Messages body and lift it into the IR.

    Server (hosted) tools become `ir.Tool(parameters=None)` and content the IR
    cannot carry is left out, rather than refused: an Anthropic caller on a
    Claude model is relayed verbatim, and only a cross-dialect call needs them
    translated. Such calls should run `check_translatable(body)` first.
    """
    return _parse(body, skipped=[], count_only=False)


def parse_count_tokens(body: Any) -> ir.Request:
    """`/v1/messages/count_tokens`: a Messages body without the need for `max_tokens`."""
    return _parse(body, skipped=[], count_only=True)


def check_translatable(body: Any) -> None:
    """Raise a 400 naming the first feature of `body` that only Anthropic can run
    (server tools, Files-API sources, server-tool blocks in the history)."""
    skipped: Skipped = []
    _parse(body, skipped=skipped, count_only=True)
    if skipped:
        raise InvalidRequest(f"{', '.join(skipped)}: only Anthropic models can serve this, "
                             "and this model is served by another provider.",
                             param=skipped[0].split(" ", 1)[0])


def render_count_tokens(n: int) -> dict[str, Any]:
    return {"input_tokens": n}


def _parse(body: Any, *, skipped: Skipped, count_only: bool) -> ir.Request:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    max_tokens = body.get("max_tokens")
    if max_tokens is None and count_only:
        pass
    elif not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: a positive integer is required", param="max_tokens")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: must be a boolean", param="stream")
    choice, parallel = _parse_tool_choice(body.get("tool_choice"))
    output_config = _object(body, "output_config")
    metadata = _object(body, "metadata")
    request = ir.Request(
        model=model,
        messages=parse_system(body.get("system"), skipped) + parse_messages(messages, skipped),
        max_output_tokens=max_tokens,
        stream=stream,
        tools=[_parse_tool(t, i, skipped) for i, t in enumerate(_list(body, "tools"))
               if not search.is_search_tool(t)],
        web_search=next((search.parse_tool(t, f"tools[{i}]")
                         for i, t in enumerate(_list(body, "tools"))
                         if search.is_search_tool(t)), None),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        response_format=_parse_format(output_config.get("format")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=_parse_stop(body.get("stop_sequences")),
        reasoning_effort=output_config.get("effort"),
        user=metadata.get("user_id"),
    )
    _parse_thinking(body.get("thinking"), request)
    return request


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name}: must be an object", param=name)
    return value


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{name}: must be an array", param=name)
    return value


def _parse_stop(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidRequest("stop_sequences: must be an array of strings",
                             param="stop_sequences")
    return value


def _parse_tool(tool: Any, i: int, skipped: Skipped) -> ir.Tool:
    where = f"tools[{i}]"
    if not isinstance(tool, dict):
        raise InvalidRequest(f"{where}: must be an object", param=where)
    kind = tool.get("type")
    name = tool.get("name")
    if kind not in (None, "custom"):
        # A server tool (web_search_*, bash_*, text_editor_*, ...): Anthropic runs
        # it, no other provider can. Kept with no schema; see parse_request.
        skipped.append(f"{where} (server tool {kind!r})")
        return ir.Tool(name=name if isinstance(name, str) and name else str(kind))
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name: Field required", param=f"{where}.name")
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where}.input_schema: Field required",
                             param=f"{where}.input_schema")
    return ir.Tool(name=name, description=tool.get("description"), parameters=schema,
                   strict=tool.get("strict"))


def _parse_tool_choice(choice: Any) -> tuple[ir.ToolChoice | None, bool | None]:
    if choice is None:
        return None, None
    if not isinstance(choice, dict):
        raise InvalidRequest("tool_choice: must be an object", param="tool_choice")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind in ("auto", "none"):
        return ir.ToolChoice(mode=kind), parallel
    if kind == "any":
        return ir.ToolChoice(mode="required"), parallel
    if kind == "tool" and isinstance(choice.get("name"), str):
        return ir.ToolChoice(mode="tool", name=choice["name"]), parallel
    raise InvalidRequest("tool_choice: expected {type: auto|any|tool|none}", param="tool_choice")


def _parse_format(value: Any) -> ir.ResponseFormat | None:
    if value is None:
        return None
    if isinstance(value, dict) and value.get("type") == "json_schema" and isinstance(
            value.get("schema"), dict):
        return ir.ResponseFormat(type="json_schema", schema=value["schema"])
    raise InvalidRequest("output_config.format: expected {type: json_schema, schema}",
                         param="output_config.format")


def _parse_thinking(thinking: Any, request: ir.Request) -> None:
    """`enabled` carries a budget; `adaptive` lets the model decide, which is
    every other provider's default, so it adds nothing beyond any effort;
    `disabled` likewise maps to the provider default (no knob is sent)."""
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
            raise InvalidRequest("thinking.budget_tokens: a non-negative integer is required",
                                 param="thinking.budget_tokens")
        request.thinking_budget = budget
    elif kind not in ("adaptive", "disabled"):
        raise InvalidRequest("thinking: expected {type: enabled|adaptive|disabled}",
                             param="thinking")


def patch_request(body: dict[str, Any], *, model: str, max_tokens: int,
                  stream_usage: bool) -> dict[str, Any]:
    """The caller's body for an Anthropic upstream: only the model and `max_tokens`
    change (Anthropic always reports stream usage, so `stream_usage` is moot).

    One consequence of lowering `max_tokens` is carried through: a thinking
    budget that no longer fits under the new cap is lowered with it, or the
    clamp would turn a valid request into an upstream 400.
    """
    patched = {**body, "model": model, "max_tokens": max_tokens}
    if "tools" in body:
        patched["tools"] = search.limit_uses(body["tools"], ir.DEFAULT_MAX_SEARCHES)
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and isinstance(thinking.get("budget_tokens"), int) \
            and thinking["budget_tokens"] >= max_tokens:
        patched["thinking"] = {**thinking, "budget_tokens": max(max_tokens - 1, 0)}
    return patched


def render_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """The IR as a Messages body for an Anthropic upstream (API 2026-10-21, which
    refuses temperature/top_p/top_k: they are dropped)."""
    system, messages = render_messages(request.messages)
    max_tokens = request.max_output_tokens or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
    if system:
        body["system"] = system
    if request.stream:
        body["stream"] = True
    if request.stop:
        body["stop_sequences"] = request.stop
    if request.user:
        body["metadata"] = {"user_id": request.user}
    thinking = _render_thinking(request.thinking_budget, max_tokens)
    if thinking:
        body["thinking"] = thinking
    output_config = _render_output_config(request)
    if output_config:
        body["output_config"] = output_config
    if request.tools:
        body["tools"] = [_render_tool(t) for t in request.tools]
        choice = _render_tool_choice(request, thinking=thinking is not None)
        if choice:
            body["tool_choice"] = choice
    if request.web_search is not None:
        body["tools"] = [*body.get("tools", []), search.render_tool(request.web_search)]
    return body


def _render_thinking(budget: int | None, max_tokens: int) -> dict[str, Any] | None:
    """A budget must stay under max_tokens and reach Anthropic's floor; a budget
    that cannot (or 0, Gemini's "off") sends no thinking at all."""
    if not budget:
        return None
    budget = min(budget, max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        return None
    return {"type": "enabled", "budget_tokens": budget}


def _render_output_config(request: ir.Request) -> dict[str, Any]:
    config: dict[str, Any] = {}
    effort = _EFFORT_TO_WIRE.get(request.reasoning_effort or "")
    if effort and request.thinking_budget is None:
        config["effort"] = effort
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        config["format"] = {"type": "json_schema", "schema": fmt.schema or {"type": "object"}}
    elif fmt is not None and fmt.type == "json_object":
        # "Any JSON object" is the most permissive schema Anthropic accepts.
        config["format"] = {"type": "json_schema", "schema": {"type": "object"}}
    return config


def _render_tool(tool: ir.Tool) -> dict[str, Any]:
    schema = tool.parameters or {}
    out: dict[str, Any] = {"name": tool.name,
                           "input_schema": schema if "type" in schema
                           else {"type": "object", **schema}}
    if tool.description:
        out["description"] = tool.description
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _render_tool_choice(request: ir.Request, *, thinking: bool) -> dict[str, Any] | None:
    choice = request.tool_choice
    mode = choice.mode if choice else "auto"
    if thinking and mode in ("required", "tool"):
        mode = "auto"  # with thinking on, Anthropic allows only auto and none
    out: dict[str, Any] = {"type": {"required": "any"}.get(mode, mode)}
    if mode == "tool" and choice is not None:
        out["name"] = choice.name
    if request.parallel_tool_calls is False and mode != "none":
        out["disable_parallel_tool_use"] = True
    if choice is None and len(out) == 1:
        return None  # nothing beyond Anthropic's default
    return out


def strip_reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """The body without thinking or effort settings, for a model that takes none."""
    stripped = {k: v for k, v in body.items() if k != "thinking"}
    output_config = body.get("output_config")
    if isinstance(output_config, dict) and "effort" in output_config:
        rest = {k: v for k, v in output_config.items() if k != "effort"}
        stripped.pop("output_config")
        if rest:
            stripped["output_config"] = rest
    return stripped
