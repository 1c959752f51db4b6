"""Issue 19, "No free lunch": what an attacker with a cheap account tried, pinned.

1. The hold bounds what can be billed: the quote covers every byte forwarded
   (tool schemas, fields the IR drops, media by the provider's own rule from
   their real size and pages); what cannot be bounded is a 400 before any hold.
2. Premium upstream features are priced from the catalog or refused.

Each case goes through a real SDK or httpx against the real app, with the fake
upstream reporting what the real provider would bill for that body (scripted
usage, the hold kept tight with a small output cap): the charge is asserted to
the pico-dollar, or the 400 before any upstream call. The autouse fixture
`holds_bound_the_bill` (tests/conftest.py) fails any test whose usage exceeded
its hold. "Before" figures in docstrings are the issue's measurements.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from afk.catalog import Catalog
from tests.conftest import Customer
from tests.fakes.fake_anthropic import Reply as AnthropicReply
from tests.fakes.fake_gemini import Reply as GeminiReply
from tests.fakes.fake_openai import Reply as OpenAIReply
from tests.support.media import b64, jpeg, pdf, png

CATALOG = Catalog.load()
M = Decimal(10**6)


def charged(customer: Customer) -> Decimal:
    """USD of the one charge this customer's call made."""
    [entry] = customer.charges()
    assert entry.status == "ok" and not entry.estimated
    return Decimal(entry.amount) / 10**12


def big_tools(n: int = 41, size: int = 100_000) -> list[dict[str, Any]]:
    """`n` function tools of ~`size` bytes of schema each (41 x 100 KB: ~4 MB)."""
    return [{"name": f"tool_{i}", "description": f"tool {i} " + "lorem ipsum " * (size // 12),
             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
            for i in range(n)]


def anthropic_client(customer: Customer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=customer.url, api_key=customer.key, max_retries=0)


def gemini_client(customer: Customer) -> genai.Client:
    return genai.Client(api_key=customer.key, http_options=gtypes.HttpOptions(
        base_url=customer.url, api_version="v1beta"))


def post(customer: Customer, path: str, body: dict[str, Any],
         headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=customer.url, timeout=60) as client:
        return client.post(path, json=body, headers={"x-api-key": customer.key,
                                                     "x-goog-api-key": customer.key,
                                                     **(headers or {})})


def assert_refused(response: httpx.Response, *words: str) -> str:
    """A 400 naming `words`; returns the error message."""
    assert response.status_code == 400, response.text
    text = json.dumps(response.json())
    for word in words:
        assert word in text, (word, text)
    return text


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini) -> dict[str, Any]:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}


def assert_nothing_happened(customer: Customer, fakes: dict[str, Any]) -> None:
    assert all(fake.requests == [] for fake in fakes.values())
    assert customer.charges() == []


# ================================================================ 1. the hold bounds the bill
def test_responses_allowed_tools_bills_every_forwarded_tool(customer: Customer,
                                                            fake_openai) -> None:
    """Before: 41 tools (4 MB) with `allowed_tools` naming one were quoted as one tool;
    upstream billed 800,049 input tokens ($1.60), the account was charged $0.000212."""
    fake_openai.push(OpenAIReply(text="ok", prompt_tokens=800_049, completion_tokens=7))
    tools = [{"type": "function", "strict": False, **t} for t in big_tools()]
    customer.openai().responses.create(
        model="gpt-4.1", input="Look it up.", tools=tools, max_output_tokens=16, store=False,
        tool_choice={"type": "allowed_tools", "mode": "auto",
                     "tools": [{"type": "function", "name": "tool_0"}]})
    assert len(fake_openai.requests[-1].body["tools"]) == 41  # all of them reached OpenAI
    assert charged(customer) == (800_049 * Decimal("2.00") + 7 * Decimal("8.00")) / M


def test_gemini_allowed_function_names_bills_every_declaration(customer: Customer,
                                                                 fake_gemini) -> None:
    """Before: the same 4 MB through `allowedFunctionNames` on gemini-2.5-pro was quoted
    as the allowed declarations only ($0.125 held, $2.00 billed upstream). 800,049
    tokens is past Pro's 200k threshold: long-context prices."""
    fake_gemini.push(GeminiReply(text="ok", prompt_tokens=800_049, candidates_tokens=7))
    body = {"contents": [{"role": "user", "parts": [{"text": "Look it up."}]}],
            "tools": [{"functionDeclarations": big_tools()}],
            "toolConfig": {"functionCallingConfig": {
                "mode": "ANY", "allowedFunctionNames": ["tool_0", "tool_1"]}},
            "generationConfig": {"maxOutputTokens": 16}}
    response = post(customer, "/v1beta/models/gemini-2.5-pro:generateContent", body)
    assert response.status_code == 200, response.text
    assert len(fake_gemini.requests[-1].body["tools"][0]["functionDeclarations"]) == 41
    assert charged(customer) == (800_049 * Decimal("2.50") + 7 * Decimal("15.00")) / M


def test_anthropic_search_result_block_is_billed(customer: Customer, fake_anthropic) -> None:
    """Before: a `search_result` block (150k words) was skipped by the parser, so not
    quoted, yet forwarded verbatim."""
    fake_anthropic.push(AnthropicReply(text="ok", input_tokens=195_000, output_tokens=7))
    words = "gateway " * 150_000
    anthropic_client(customer).messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": [
            {"type": "search_result", "source": "https://example.com", "title": "Everything",
             "content": [{"type": "text", "text": words}]},
            {"type": "text", "text": "Summarise."}]}])
    assert fake_anthropic.requests[-1].body["messages"][0]["content"][0]["type"] == \
        "search_result"
    assert charged(customer) == (195_000 * Decimal("3.00") + 7 * Decimal("15.00")) / M


def test_legacy_chat_functions_are_billed(customer: Customer, fake_openai) -> None:
    """Before: 4 MB of legacy `functions` were quoted like an 87-byte request."""
    fake_openai.push(OpenAIReply(text="ok", prompt_tokens=900_000, completion_tokens=5))
    response = post(customer, "/v1/chat/completions", {
        "model": "gpt-4.1", "max_completion_tokens": 16, "functions": big_tools(),
        "messages": [{"role": "user", "content": "Call one."}]},
        headers={"authorization": f"Bearer {customer.key}"})
    assert response.status_code == 200, response.text
    assert len(fake_openai.requests[-1].body["functions"]) == 41
    assert charged(customer) == (900_000 * Decimal("2.00") + 5 * Decimal("8.00")) / M


def test_legacy_functions_cannot_be_dropped_on_the_way_to_another_provider(
        customer: Customer, fakes) -> None:
    response = post(customer, "/v1/chat/completions", {
        "model": "claude-haiku-4-5", "functions": big_tools(1, 100),
        "messages": [{"role": "user", "content": "Call one."}]},
        headers={"authorization": f"Bearer {customer.key}"})
    assert_refused(response, "functions")
    assert_nothing_happened(customer, fakes)


@pytest.mark.parametrize("dialect, model, where, body, headers", [
    ("responses", "gpt-4.1", "file_url", {"input": [{"role": "user", "content": [
        {"type": "input_file", "file_url": "https://example.com/huge.pdf"},
        {"type": "input_text", "text": "Summarise."}]}]}, {}),
    ("responses", "gpt-4.1", "file_id", {"input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "file-abc"}]}]}, {}),
    ("responses", "gpt-4.1", "file_id", {"input": [{"role": "user", "content": [
        {"type": "input_image", "file_id": "file-abc", "detail": "auto"}]}]}, {}),
    ("messages", "claude-haiku-4-5", "source.url", {"max_tokens": 16, "messages": [
        {"role": "user", "content": [{"type": "document", "source": {
            "type": "url", "url": "https://example.com/huge.pdf"}}]}]}, {}),
    ("messages", "claude-haiku-4-5", "file_id", {"max_tokens": 16, "messages": [
        {"role": "user", "content": [{"type": "image", "source": {
            "type": "file", "file_id": "file_abc"}}]}]}, {"anthropic-beta": "files-api-2025-04-14"}),
    ("gemini", "gemini-2.5-flash", "fileData", {"contents": [{"role": "user", "parts": [
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/x",
                      "mimeType": "application/pdf"}}]}]}, {}),
    ("gemini", "gemini-2.5-flash", "audio", {"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "audio/mp3", "data": b64(b"ID3" + b"\0" * 100)}}]}]}, {}),
    ("gemini", "gemini-2.5-flash", "video", {"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "video/mp4", "data": b64(b"\0" * 100)}}]}]}, {}),
])
def test_input_that_cannot_be_bounded_is_a_400_before_any_hold(
        dialect, model, where, body, headers, customer: Customer, fakes) -> None:
    """Before: an `input_file.file_url` billed upstream at 500k tokens was charged $0.003.
    A file the gateway cannot see (by id, by URL, by URI) or a medium it does not price
    (audio, video) is refused naming it: no hold, no upstream call."""
    path = {"responses": "/v1/responses", "messages": "/v1/messages",
            "gemini": f"/v1beta/models/{model}:generateContent"}[dialect]
    if dialect != "gemini":
        body = {"model": model, **body}
    response = post(customer, path, body, {"authorization": f"Bearer {customer.key}",
                                           **headers})
    assert_refused(response, where)
    assert_nothing_happened(customer, fakes)


# ------------------------------------------------------------------ media by their own rules
def test_a_large_image_on_gemini_is_billed_by_its_tiles(customer: Customer,
                                                         fake_gemini) -> None:
    """Before: every image was quoted as 1,600 tokens; Gemini 2.x bills a 3072 x 3072
    image as 16 tiles of 258 (4,128 tokens)."""
    fake_gemini.push(GeminiReply(text="ok", prompt_tokens=4_128 + 9, candidates_tokens=1))
    client = gemini_client(customer)
    client.models.generate_content(
        model="gemini-2.5-flash", config=gtypes.GenerateContentConfig(max_output_tokens=1),
        contents=[gtypes.Part.from_bytes(data=png(3072, 3072), mime_type="image/png"),
                  "What is in it?"])
    assert charged(customer) == (4_137 * Decimal("0.30") + 1 * Decimal("2.50")) / M


def test_an_image_on_gpt_4o_mini_is_billed_at_its_multiplied_tiles(customer: Customer,
                                                                    fake_openai) -> None:
    """GPT-4o mini bills a 1024 x 1024 image as 2,833 + 4 x 5,667 = 25,501 tokens."""
    fake_openai.push(OpenAIReply(text="ok", prompt_tokens=25_501 + 12, completion_tokens=1))
    customer.openai().chat.completions.create(
        model="gpt-4o-mini", max_completion_tokens=1, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in it?"},
            {"type": "image_url", "image_url": {
                "url": f"data:image/jpeg;base64,{b64(jpeg(1024, 1024))}"}}]}])
    assert charged(customer) == (25_513 * Decimal("0.15") + 1 * Decimal("0.60")) / M


def test_an_image_by_url_is_held_at_the_most_it_can_cost(customer: Customer,
                                                          fake_openai) -> None:
    """A URL's image is unseen before the call: held at the rule's largest image (GPT-4o
    mini: 2,833 + 8 x 5,667 = 48,169 tokens), charged what the provider reports."""
    fake_openai.push(OpenAIReply(text="ok", prompt_tokens=48_169 + 12, completion_tokens=1))
    customer.openai().chat.completions.create(
        model="gpt-4o-mini", max_completion_tokens=1, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in it?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/poster.png"}}]}])
    assert charged(customer) == (48_181 * Decimal("0.15") + 1 * Decimal("0.60")) / M


def test_an_image_on_claude_is_billed_by_its_pixels(customer: Customer,
                                                    fake_anthropic) -> None:
    fake_anthropic.push(AnthropicReply(text="ok", input_tokens=1_334 + 10, output_tokens=1))
    anthropic_client(customer).messages.create(
        model="claude-haiku-4-5", max_tokens=1, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": b64(png(1000, 1000))}},
            {"type": "text", "text": "What is in it?"}]}])
    assert charged(customer) == (1_344 * Decimal("1.00") + 1 * Decimal("5.00")) / M


def test_a_pdf_on_claude_is_billed_by_its_pages_and_text(customer: Customer,
                                                         fake_anthropic) -> None:
    """Before: a PDF was quoted as one 1,600-token image, whatever its pages. Anthropic
    bills each page as an image plus its extracted text: 40 dense pages ~ 100k tokens."""
    fake_anthropic.push(AnthropicReply(text="ok", input_tokens=100_000, output_tokens=1))
    anthropic_client(customer).messages.create(
        model="claude-haiku-4-5", max_tokens=1, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": b64(pdf(40, text_per_page=3000))}},
            {"type": "text", "text": "Summarise."}]}])
    assert charged(customer) == (100_000 * Decimal("1.00") + 1 * Decimal("5.00")) / M


def test_a_pdf_on_openai_responses_is_billed_by_its_pages(customer: Customer,
                                                          fake_openai) -> None:
    pages = 25
    fake_openai.push(OpenAIReply(text="ok", prompt_tokens=pages * (85 + 8 * 170) + 2_000,
                                       completion_tokens=1))
    customer.openai().responses.create(
        model="gpt-4.1", max_output_tokens=16, store=False, input=[{"role": "user", "content": [
            {"type": "input_file", "filename": "report.pdf",
             "file_data": f"data:application/pdf;base64,{b64(pdf(pages, text_per_page=80))}"},
            {"type": "input_text", "text": "Summarise."}]}])
    tokens = pages * (85 + 8 * 170) + 2_000
    assert charged(customer) == (tokens * Decimal("2.00") + 1 * Decimal("8.00")) / M


def test_a_pdf_on_gemini_is_billed_by_its_pages(customer: Customer, fake_gemini) -> None:
    fake_gemini.push(GeminiReply(text="ok", prompt_tokens=30 * 258 + 5, candidates_tokens=1))
    client = gemini_client(customer)
    client.models.generate_content(
        model="gemini-2.5-flash", config=gtypes.GenerateContentConfig(max_output_tokens=1),
        contents=[gtypes.Part.from_bytes(data=pdf(30), mime_type="application/pdf"),
                  "Summarise."])
    assert charged(customer) == ((30 * 258 + 5) * Decimal("0.30") + Decimal("2.50")) / M


def test_an_unreadable_image_on_gemini_2_is_refused(customer: Customer, fakes) -> None:
    """Gemini 2.x bills by tiles, so an image whose size cannot be read has no bound."""
    response = post(customer, "/v1beta/models/gemini-2.5-flash:generateContent", {
        "contents": [{"role": "user", "parts": [
            {"inlineData": {"mimeType": "image/heic", "data": b64(b"\0\0\0\x18ftypheic")}}]}]})
    assert_refused(response, "inlineData", "size")
    assert_nothing_happened(customer, fakes)


# ================================================================ 2. premium features
@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "service_tier": "priority",
                              "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "service_tier": "flex",
                              "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/responses", {"model": "gpt-4.1", "service_tier": "priority", "input": "hi"}),
    ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 16, "service_tier": "priority",
                      "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1beta/models/gemini-2.5-flash:generateContent",
     {"serviceTier": "priority", "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
])
def test_service_tiers_other_than_standard_are_refused(path, body, customer: Customer,
                                                       fakes) -> None:
    """Before: `service_tier: "priority"` passed through, billed upstream at priority
    rates, charged at standard."""
    assert_refused(post(customer, path, body, {"authorization": f"Bearer {customer.key}"}),
                   "ervice")
    assert_nothing_happened(customer, fakes)


@pytest.mark.parametrize("tier", ["auto", "default"])
def test_the_standard_service_tier_passes(tier: str, customer: Customer, fake_openai) -> None:
    fake_openai.push(OpenAIReply(text="ok", prompt_tokens=9, completion_tokens=1))
    customer.openai().chat.completions.create(
        model="gpt-4o-mini", service_tier=tier, messages=[{"role": "user", "content": "hi"}])
    assert fake_openai.requests[-1].body["service_tier"] == tier
    assert charged(customer) == (9 * Decimal("0.15") + Decimal("0.60")) / M


@pytest.mark.parametrize("tool", [
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "image_generation"},
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
    {"type": "computer_use_preview", "display_width": 1024, "display_height": 768,
     "environment": "browser"},
    {"type": "mcp", "server_label": "x", "server_url": "https://example.com/mcp"},
])  # web search is priced per search (tests/integration/test_web_search.py)
def test_openai_hosted_tools_are_refused_naming_the_tool(tool, customer: Customer,
                                                         fakes) -> None:
    response = post(customer, "/v1/responses", {"model": "gpt-4.1", "input": "hi",
                                                "tools": [tool]},
                    {"authorization": f"Bearer {customer.key}"})
    assert_refused(response, tool["type"], "tools[0]")
    assert_nothing_happened(customer, fakes)


def test_a_hosted_tool_choice_is_refused(customer: Customer, fakes) -> None:
    response = post(customer, "/v1/responses", {
        "model": "gpt-4.1", "input": "hi", "tool_choice": {"type": "file_search"}},
        {"authorization": f"Bearer {customer.key}"})
    assert_refused(response, "file_search", "tool_choice")
    assert_nothing_happened(customer, fakes)


@pytest.mark.parametrize("tool", [
    {"type": "code_execution_20250825", "name": "code_execution"},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
    {"type": "computer_20250124", "name": "computer", "display_width_px": 1024,
     "display_height_px": 768},
])
def test_anthropic_server_tools_are_refused_naming_the_tool(tool, customer: Customer,
                                                            fakes) -> None:
    """Before: server tools ran upstream (billed per use; `usage.server_tool_use` was
    ignored) and the account paid tokens only."""
    response = post(customer, "/v1/messages", {
        "model": "claude-haiku-4-5", "max_tokens": 16, "tools": [tool],
        "messages": [{"role": "user", "content": "hi"}]})
    assert_refused(response, tool["type"])
    assert_nothing_happened(customer, fakes)


def test_anthropic_client_tools_pass_and_are_billed(customer: Customer, fake_anthropic) -> None:
    """Anthropic-defined tools the caller runs (bash, text editor) cost only tokens."""
    fake_anthropic.push(AnthropicReply(text="ok", input_tokens=1_200, output_tokens=3))
    anthropic_client(customer).messages.create(
        model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "ls"}],
        tools=[{"type": "bash_20250124", "name": "bash"},
               {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}])
    assert charged(customer) == (1_200 * Decimal("1.00") + 3 * Decimal("5.00")) / M


@pytest.mark.parametrize("tool", [{"codeExecution": {}}, {"urlContext": {}},
                                  {"enterpriseWebSearch": {}}])
def test_gemini_hosted_tools_are_refused_naming_the_tool(tool, customer: Customer,
                                                         fakes) -> None:
    response = post(customer, "/v1beta/models/gemini-2.5-flash:generateContent", {
        "tools": [tool], "contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert_refused(response, f"tools[0].{next(iter(tool))}")  # as the caller spelt it
    assert_nothing_happened(customer, fakes)


def test_server_tool_blocks_in_the_history_are_refused(customer: Customer, fakes) -> None:
    response = post(customer, "/v1/messages", {
        "model": "claude-haiku-4-5", "max_tokens": 16, "messages": [
            {"role": "user", "content": "find it"},
            {"role": "assistant", "content": [
                {"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_1",
                 "content": {"type": "web_fetch_result", "url": "https://example.com"}}]},
            {"role": "user", "content": "go on"}]})
    assert_refused(response, "web_fetch_tool_result", "messages[1].content[0]")
    assert_nothing_happened(customer, fakes)


@pytest.mark.parametrize("stream", [False, True])
def test_one_hour_cache_writes_are_billed_at_twice_the_input_price(
        stream: bool, customer: Customer, fake_anthropic) -> None:
    """Before: `cache_control.ttl: "1h"` was billed upstream at 2x input and charged
    1.25x. Now: 5-minute writes at 1.25x, one-hour writes at 2x (the catalog's
    cache_write_1h), the rest at list."""
    fake_anthropic.push(AnthropicReply(
        text="ok", input_tokens=50, cache_creation_input_tokens=10_000,
        cache_creation_1h_input_tokens=8_000, output_tokens=5))
    system = [{"type": "text", "text": "policy " * 6_000,
               "cache_control": {"type": "ephemeral", "ttl": "1h"}},
              {"type": "text", "text": "rules " * 2_000, "cache_control": {"type": "ephemeral"}}]
    client = anthropic_client(customer)
    kwargs = dict(model="claude-sonnet-4-5", max_tokens=16, system=system,
                  messages=[{"role": "user", "content": "hi"}])
    if stream:
        with client.messages.stream(**kwargs) as events:
            events.get_final_message()
    else:
        client.messages.create(**kwargs)
    assert fake_anthropic.requests[-1].body["system"][0]["cache_control"]["ttl"] == "1h"
    assert charged(customer) == (50 * Decimal("3.00") + 2_000 * Decimal("3.75")
                                 + 8_000 * Decimal("6.00") + 5 * Decimal("15.00")) / M


@pytest.mark.parametrize("beta", ["context-1m-2025-08-07",
                                  "interleaved-thinking-2025-05-14,context-1m-2025-08-07"])
def test_long_context_betas_are_refused(beta: str, customer: Customer, fakes) -> None:
    """Before: `anthropic-beta: context-1m-…` reached Anthropic, which bills prompts past
    200k at long-context rates; the catalog prices no long context for Claude."""
    response = post(customer, "/v1/messages", {
        "model": "claude-sonnet-4-5", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]}, {"anthropic-beta": beta})
    assert_refused(response, "context-1m-2025-08-07", "anthropic-beta")
    assert_nothing_happened(customer, fakes)


@pytest.mark.parametrize("field, value", [("speed", "fast"), ("inference_geo", "us"),
                                          ("container", "container_1"),
                                          ("mcp_servers", [{"type": "url", "name": "x",
                                                            "url": "https://x.example"}])])
def test_anthropic_premium_modes_are_refused(field, value, customer: Customer, fakes) -> None:
    response = post(customer, "/v1/messages", {
        "model": "claude-opus-4-5", "max_tokens": 16, field: value,
        "messages": [{"role": "user", "content": "hi"}]})
    assert_refused(response, field)
    assert_nothing_happened(customer, fakes)


@pytest.mark.parametrize("config", [
    {"candidateCount": 4, "candidate_count": 1},  # before: passed the n=1 check; 4 ran
    {"candidate_count": 1, "candidateCount": 4},
    {"candidateCount": 4},
    {"candidate_count": 4},
])
def test_gemini_candidate_counts_above_one_are_refused_in_every_spelling(
        config, customer: Customer, fakes) -> None:
    response = post(customer, "/v1beta/models/gemini-2.5-flash:generateContent", {
        "generationConfig": config, "contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert_refused(response, "andidate")
    assert_nothing_happened(customer, fakes)


def test_gemini_fields_spelt_both_ways_are_ambiguous(customer: Customer, fakes) -> None:
    response = post(customer, "/v1beta/models/gemini-2.5-flash:generateContent", {
        "generationConfig": {"maxOutputTokens": 10, "max_output_tokens": 10_000},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert_refused(response, "maxOutputTokens", "max_output_tokens")
    assert_nothing_happened(customer, fakes)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_openai_n_above_one_is_refused(model: str, customer: Customer, fakes) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        customer.openai().chat.completions.create(
            model=model, n=2, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["param"] == "n"
    assert_nothing_happened(customer, fakes)


@pytest.mark.parametrize("path, body, field", [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "prediction": {
        "type": "content", "content": "x"}}, "prediction"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini",
                              "audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "modalities": ["text", "audio"]},
     "modalities"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "made_up_field": 1}, "made_up_field"),
    ("/v1/responses", {"model": "gpt-4.1", "background": True}, "background"),
    ("/v1/responses", {"model": "gpt-4.1", "prompt": {"id": "pmpt_1"}}, "prompt"),
    ("/v1/responses", {"model": "gpt-4.1", "made_up_field": 1}, "made_up_field"),
    ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 16, "made_up_field": 1},
     "made_up_field"),
    ("/v1beta/models/gemini-2.5-flash:generateContent", {"cachedContent": "cachedContents/x"},
     "cachedContent"),
    ("/v1beta/models/gemini-2.5-flash:generateContent",
     {"generationConfig": {"responseModalities": ["TEXT", "AUDIO"]}}, "responseModalities"),
    ("/v1beta/models/gemini-2.5-flash:generateContent", {"made_up_field": 1}, "made_up_field"),
])
def test_passthrough_fields_the_gateway_cannot_price_are_refused(
        path, body, field, customer: Customer, fakes) -> None:
    """A same-dialect call forwards only what the gateway understands and prices."""
    if "gemini" in path:
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **body}
    elif "responses" in path:
        body = {"input": "hi", **body}
    else:
        body = {"messages": [{"role": "user", "content": "hi"}], **body}
    response = post(customer, path, body, {"authorization": f"Bearer {customer.key}"})
    assert_refused(response, field)
    assert_nothing_happened(customer, fakes)


def test_long_context_prompts_are_billed_at_the_long_context_tier(customer: Customer,
                                                                   fake_openai) -> None:
    """gpt-5.4 bills a prompt past 272k tokens at 2x input and 1.5x output."""
    fake_openai.push(OpenAIReply(text="ok", prompt_tokens=300_000, completion_tokens=7))
    customer.openai().chat.completions.create(
        model="gpt-5.4", max_completion_tokens=16,
        messages=[{"role": "user", "content": "token " * 300_000}])
    assert charged(customer) == (300_000 * Decimal("5.00") + 7 * Decimal("22.50")) / M


# ================================================================ the operator's alarm
@pytest.fixture
def lambda_metrics(capsys):
    """Metrics on, as on Lambda (a namespace configured); off again afterwards."""
    from dataclasses import replace

    from afk import observability
    from afk.settings import Settings

    observability.configure(replace(Settings.from_env({}), metrics_namespace="afk/test"))
    yield observability
    observability._telemetry.namespace = None


@pytest.mark.uncovered_allowed
def test_usage_above_the_hold_is_an_uncovered_metric_and_an_error_log(lambda_metrics, capsys,
                                                                      caplog) -> None:
    """If a bill still exceeds its hold (a quoting bug), the account is charged the hold,
    the excess is the settlement's `uncovered`, and the operator hears of it: an error
    log naming the model and UncoveredNanoUSD with the service dimension only (what the
    UncoveredChargesAlarm of template.yaml watches)."""
    from afk.store.ledger import Settlement

    settlement = Settlement(charge=5_000_000, input_tokens=10, output_tokens=2,
                            uncovered=1_234_567)
    with caplog.at_level("ERROR", logger="afk.billing"):
        lambda_metrics.observe_settlement("gpt-4.1", "responses", settlement,
                                          settlement.charge, 12)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{") and "_aws" in line]
    alarm = next(line for line in lines if "UncoveredNanoUSD" in line)
    assert alarm["UncoveredNanoUSD"] in (1235, [1235.0])  # nano-USD, rounded up
    assert alarm["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert any("exceeded the hold" in r.getMessage() and "gpt-4.1" in r.getMessage()
               for r in caplog.records)


def test_a_covered_settlement_emits_no_uncovered_metric(lambda_metrics, capsys) -> None:
    from afk.store.ledger import Settlement

    lambda_metrics.observe_settlement("gpt-4.1", "responses", Settlement(charge=5), 5, 12)
    assert "Uncovered" not in capsys.readouterr().out
