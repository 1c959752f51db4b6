"""GenerateContentRequest bodies: caller -> IR (lenient, for passthrough), the
cross-dialect check, IR -> upstream, the passthrough patch, and countTokens.

The model and the stream flag live in the URL, so `parse_request` takes them as
arguments.
"""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.dialects.gemini import search
from afk.dialects.gemini.keys import normalize_keys
from afk.dialects.gemini.messages import (
    parse_contents,
    parse_system,
    render_contents,
    render_system,
)
from afk.dialects.gemini.parts import Skipped
from afk.errors import InvalidRequest

__all__ = ["MAX_STOP_SEQUENCES", "check_translatable", "parse_count_tokens", "parse_request",
           "patch_request", "render_count_tokens", "render_request", "strip_reasoning"]

MAX_STOP_SEQUENCES = 5
_MODES: dict[str, str] = {"AUTO": "auto", "NONE": "none", "ANY": "required",
                          "VALIDATED": "auto"}  # VALIDATED: call or answer, schema-checked
_MODES_TO_WIRE = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}
# reasoning_effort -> thinkingBudget. Budgets, unlike thinkingLevel, work on every
# thinking model (2.5 and 3); 24576 is the largest budget 2.5 Flash accepts, so
# the top efforts stay valid everywhere. `none` turns thinking off, which 2.5 Pro
# refuses with a 400 that names it.
_EFFORT_BUDGETS = {"none": 0, "minimal": 512, "low": 2048, "medium": 8192, "high": 24576,
                   "xhigh": 24576, "max": 24576}
# Output formats the IR carries; text/x.enum (answer with one enum value) it does not.
_MIME_TYPES = (None, "text/plain", "application/json")


# ================================================================ caller -> IR
def parse_request(body: Any, *, model: str | None = None,
                  stream: bool | None = None) -> ir.Request:
    """Validate a caller's GenerateContentRequest and lift it into the IR.

    What Gemini itself would reject is a 400. What is well formed but beyond the
    IR (non-function tools such as googleSearch or codeExecution, executableCode
    parts, cachedContent, audio or image output) is left out, rather than
    refused: a Gemini caller on a Gemini model is relayed verbatim and the IR
    only quotes it. Cross-dialect calls run `check_translatable(body)` first.
    `model` and `stream` are the URL's (the body names neither): both required.
    """
    if model is None or stream is None:
        raise TypeError("Gemini's model and stream come from the URL: pass both")
    return _parse(body, model=model, stream=stream, skipped=[])


def check_translatable(body: Any) -> None:
    """Raise a 400 naming every feature of `body` that only Gemini can serve.

    Named: non-function tools (googleSearch, codeExecution, urlContext, ...),
    parts the IR cannot carry (executableCode, codeExecutionResult, ...),
    `cachedContent` (part of the prompt lives only in Gemini's cache),
    `responseModalities` other than TEXT, `speechConfig`, and a
    `responseMimeType` other than JSON or plain text (text/x.enum): without
    them the answer is a different answer, not the same one served elsewhere.

    Not named, and silently lost: `safetySettings`, which only tune Gemini's own
    content filters; another provider answers under its own policy, which no
    Gemini threshold can loosen or tighten, and SDK wrappers commonly send them
    by default, so refusing them would turn away ordinary callers for a knob
    that cannot be honoured either way. Likewise pure tuning knobs the IR lacks
    (presence/frequency penalties, mediaResolution, logprobs, labels).
    """
    skipped: Skipped = []
    _parse(body, model="", stream=False, skipped=skipped)
    if skipped:
        raise InvalidRequest(f"{', '.join(skipped)}: only Gemini models can serve this, "
                             "and this model is served by another provider.",
                             param=skipped[0].split(" ", 1)[0])


def parse_count_tokens(body: Any, *, model: str) -> ir.Request:
    """`{"contents": …}` or `{"generateContentRequest": {…}}`, as a Request."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    if inner is not None:
        if not isinstance(inner, dict):
            raise InvalidRequest("generateContentRequest must be an object",
                                 param="generateContentRequest")
        return parse_request(inner, model=model, stream=False)
    return parse_request(body, model=model, stream=False)


def render_count_tokens(total: int) -> dict[str, Any]:
    return {"totalTokens": total}


def _parse(body: Any, *, model: str, stream: bool, skipped: Skipped) -> ir.Request:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    body = normalize_keys(body)
    config = _object(body.get("generationConfig"), "generationConfig")
    count = config.get("candidateCount")
    if count not in (None, 1):
        raise InvalidRequest("This gateway supports only candidateCount=1.",
                             param="generationConfig.candidateCount")
    thinking = _object(config.get("thinkingConfig"), "generationConfig.thinkingConfig")
    _note_gemini_only(body, config, skipped)
    tools = _parse_tools(body.get("tools"), skipped)
    tool_choice, tools = _parse_tool_config(body.get("toolConfig"), tools)
    searching = any(search.is_search_tool(t) for t in body.get("tools") or [])
    level = thinking.get("thinkingLevel")
    stop = config.get("stopSequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest("stopSequences must be an array of strings",
                             param="generationConfig.stopSequences")
    return ir.Request(
        model=model,
        messages=parse_system(body.get("systemInstruction")) + parse_contents(
            body.get("contents"), skipped),
        max_output_tokens=_positive_int(config, "maxOutputTokens"),
        stream=stream,
        stream_usage=stream,  # Gemini streams always carry usage
        tools=tools,
        tool_choice=tool_choice,
        response_format=_parse_response_format(config),
        temperature=config.get("temperature"),
        top_p=config.get("topP"),
        top_k=config.get("topK"),
        stop=stop,
        seed=config.get("seed"),
        reasoning_effort=(level.lower() if isinstance(level, str)
                          and level != "THINKING_LEVEL_UNSPECIFIED" else None),
        thinking_budget=thinking.get("thinkingBudget"),
        web_search=ir.WebSearch() if searching else None,
    )


def _note_gemini_only(body: dict[str, Any], config: dict[str, Any], skipped: Skipped) -> None:
    """Request-level settings that change the answer and that the IR lacks."""
    if body.get("cachedContent"):
        skipped.append(f"cachedContent ({body['cachedContent']})")
    modalities = config.get("responseModalities") or []
    if isinstance(modalities, list):
        other = [str(m) for m in modalities if str(m).upper() not in (
            "TEXT", "MODALITY_UNSPECIFIED")]
        if other:
            skipped.append(f"generationConfig.responseModalities ({', '.join(other)})")
    if config.get("speechConfig"):
        skipped.append("generationConfig.speechConfig (speech output)")
    if config.get("responseMimeType") not in _MIME_TYPES:
        skipped.append(f"generationConfig.responseMimeType ({config['responseMimeType']})")


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    return value


def _positive_int(config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest(f"generationConfig.{key} must be a positive integer",
                             param=f"generationConfig.{key}")
    return value


def _parse_tools(tools: Any, skipped: Skipped) -> list[ir.Tool]:
    out: list[ir.Tool] = []
    for i, tool in enumerate(tools or []):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not tool:
            raise InvalidRequest(f"{where} must be an object declaring a tool", param=where)
        # Gemini runs these itself (codeExecution, urlContext, ...); googleSearch is
        # the IR's web search.
        hosted = sorted(k for k in tool if k != "functionDeclarations"
                        and k not in search.SEARCH_TOOLS)
        if hosted:
            skipped.append(f"{where} ({', '.join(hosted)})")
        declarations = tool.get("functionDeclarations", [])
        if not isinstance(declarations, list):
            raise InvalidRequest(f"{where}.functionDeclarations must be an array",
                                 param=f"{where}.functionDeclarations")
        for j, declaration in enumerate(declarations):
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"),
                                                                   str):
                raise InvalidRequest(f"{where}.functionDeclarations[{j}] needs a name",
                                     param=f"{where}.functionDeclarations[{j}]")
            schema = declaration.get("parametersJsonSchema")
            if schema is None and declaration.get("parameters") is not None:
                schema = json_schema(declaration["parameters"])
            out.append(ir.Tool(name=declaration["name"],
                               description=declaration.get("description"), parameters=schema))
    return out


def _parse_tool_config(config: Any,
                       tools: list[ir.Tool]) -> tuple[ir.ToolChoice | None, list[ir.Tool]]:
    calling = _object(_object(config, "toolConfig").get("functionCallingConfig"),
                      "toolConfig.functionCallingConfig")
    mode = str(calling.get("mode") or "MODE_UNSPECIFIED").upper()
    if mode == "MODE_UNSPECIFIED":
        return None, tools
    if mode not in _MODES:
        raise InvalidRequest(f"Unknown function calling mode {mode!r}",
                             param="toolConfig.functionCallingConfig.mode")
    allowed = calling.get("allowedFunctionNames") or []
    if mode == "ANY" and len(allowed) == 1:
        return ir.ToolChoice(mode="tool", name=allowed[0]), tools
    if allowed:
        # The IR has no allow-list; offering only the allowed tools means the same.
        tools = [t for t in tools if t.name in allowed]
    return ir.ToolChoice(mode=_MODES[mode]), tools  # type: ignore[arg-type]


def _parse_response_format(config: dict[str, Any]) -> ir.ResponseFormat | None:
    if config.get("responseMimeType") != "application/json":
        return None
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = json_schema(config["responseSchema"])
    if schema is None:
        return ir.ResponseFormat(type="json_object")
    return ir.ResponseFormat(type="json_schema", schema=schema)


def json_schema(schema: Any) -> Any:
    """A Gemini `Schema` (OpenAPI subset) as JSON Schema, for the other dialects."""
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("propertyOrdering", "nullable"):
            continue  # Gemini-only hints; nullable is folded into `type` below
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(s) for name, s in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = json_schema(value)
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


# ================================================================ passthrough
def patch_request(body: dict[str, Any], *, model: str, max_tokens: int,
                  stream_usage: bool) -> dict[str, Any]:
    """The caller's body for a Gemini upstream with only the output cap changed.

    The model lives in the URL (the provider puts it there) and Gemini streams
    always carry usage, so `model` and `stream_usage` change nothing here.
    """
    del model, stream_usage
    patched = dict(body)
    containers = [k for k in ("generationConfig", "generation_config") if k in body]
    for container in containers or ["generationConfig"]:
        config = dict(body.get(container) or {})
        caps = [k for k in ("maxOutputTokens", "max_output_tokens") if k in config]
        for cap in caps or ["maxOutputTokens"]:
            config[cap] = max_tokens
        patched[container] = config
    return patched


# ================================================================ IR -> upstream
def render_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """The IR as a GenerateContentRequest body (the model goes in the URL).

    Tool schemas go out as `parametersJsonSchema`, unchanged: `parameters` is an
    OpenAPI subset (no additionalProperties, no type arrays, restricted $ref),
    and down-converting loses meaning; the JSON Schema field takes them as is.
    """
    del model
    system = render_system(request.messages)
    body: dict[str, Any] = {"contents": render_contents(request.messages)}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_render_tool(t) for t in request.tools]}]
    if request.web_search is not None:
        body["tools"] = [*body.get("tools", []), search.render_tool()]
    if request.tool_choice is not None:
        choice = request.tool_choice
        calling: dict[str, Any] = {"mode": _MODES_TO_WIRE[choice.mode]}
        if choice.mode == "tool":
            calling["allowedFunctionNames"] = [choice.name]
        body["toolConfig"] = {"functionCallingConfig": calling}
    config = _render_generation_config(request)
    if config:
        body["generationConfig"] = config
    return body


def _render_tool(tool: ir.Tool) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if tool.parameters is not None:
        declaration["parametersJsonSchema"] = tool.parameters
    return declaration


def _render_generation_config(request: ir.Request) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for wire, value in (("maxOutputTokens", request.max_output_tokens),
                        ("temperature", request.temperature), ("topP", request.top_p),
                        ("topK", request.top_k), ("seed", request.seed)):
        if value is not None:
            config[wire] = value
    if request.stop:
        if len(request.stop) > MAX_STOP_SEQUENCES:
            raise InvalidRequest(f"Gemini models accept at most {MAX_STOP_SEQUENCES} stop "
                                 "sequences.", param="stop")
        config["stopSequences"] = request.stop
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            config["responseJsonSchema"] = fmt.schema
    budget = request.thinking_budget
    if budget is None and request.reasoning_effort is not None:
        budget = _EFFORT_BUDGETS.get(request.reasoning_effort)
        if budget is None:
            raise InvalidRequest(f"Unknown reasoning effort {request.reasoning_effort!r}",
                                 param="reasoning_effort")
    if budget is not None:
        # Thought text never reaches callers of other dialects: don't pay to send it.
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": False}
    return config


def strip_reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """The body without thinking settings, for a model that takes none."""
    stripped = dict(body)
    for config_key in ("generationConfig", "generation_config"):
        config = body.get(config_key)
        if isinstance(config, dict):
            stripped[config_key] = {k: v for k, v in config.items()
                                    if k not in ("thinkingConfig", "thinking_config")}
    return stripped
