"""afk.billing.prompt: the input bound of an upstream body (every byte, media by the
model's rule, clamped to the context window), what it refuses; and the dialects'
forwarding checks that no catalog price can be inferred for."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from afk import ir
from afk.billing.prompt import (
    PROVIDER_TOOL_OVERHEAD,
    REQUEST_OVERHEAD,
    TOOL_USE_OVERHEAD,
    bound_input_tokens,
)
from afk.billing.quote import make_quote, usage_cost
from afk.catalog import Catalog
from afk.dialects import anthropic, gemini
from afk.errors import InvalidRequest
from tests.support.media import b64, gif, pdf, png, webp

CATALOG = Catalog.load()
GPT = CATALOG.get("gpt-4.1")
MINI = CATALOG.get("gpt-4o-mini")
CLAUDE = CATALOG.get("claude-haiku-4-5")
GEMINI = CATALOG.get("gemini-2.5-flash")


def size(body: dict) -> int:
    import json

    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def test_every_byte_of_the_body_counts_once() -> None:
    body = {"model": "gpt-4.1", "input": "héllo wörld 🙂", "made_up": {"deep": ["x" * 1000]}}
    assert bound_input_tokens(body, GPT) == size(body) + REQUEST_OVERHEAD


def test_tools_count_with_the_providers_hidden_prompt() -> None:
    body = {"tools": [{"type": "function", "name": "f", "parameters": {}},
                      {"type": "bash_20250124", "name": "bash"}], "messages": []}
    assert bound_input_tokens(body, CLAUDE) == (size(body) + REQUEST_OVERHEAD
                                                + TOOL_USE_OVERHEAD + PROVIDER_TOOL_OVERHEAD)


def test_the_bound_never_exceeds_the_context_window() -> None:
    assert bound_input_tokens({"input": "x" * 2_000_000}, GPT) == GPT.context_window


@pytest.mark.parametrize("body, model, image", [
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": f"data:image/png;base64,{b64(png(1024, 1024))}", "detail": "high"}}]}]},
     MINI, 2833 + 4 * 5667),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": f"data:image/png;base64,{b64(png(1024, 1024))}", "detail": "low"}}]}]},
     MINI, 2833),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto",
                                              "image_url": "https://example.com/a.png"}]}]},
     GPT, 85 + 8 * 170),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/webp", "data": b64(webp(1000, 1000))}}]}]},
     CLAUDE, 1334),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "url", "url": "https://example.com/a.png"}}]}]}, CLAUDE, 1700),
    ({"contents": [{"parts": [{"inline_data": {"mime_type": "image/gif",
                                               "data": b64(gif(1000, 1000))}}]}]},
     GEMINI, 4 * 258),
])
def test_images_cost_their_rule_and_not_their_bytes(body, model, image) -> None:
    bound = bound_input_tokens(body, model)
    assert image <= bound < image + 400  # the image, and the few hundred bytes around it


def test_a_pdf_costs_its_pages_and_text() -> None:
    data = pdf(10, text_per_page=500)
    body = {"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": b64(data)}}]}]}
    bound = bound_input_tokens(body, CLAUDE)
    assert 10 * (1700 + 500) <= bound < 10 * (1700 + 16 + 600) + 400


def test_text_documents_cost_their_decoded_bytes() -> None:
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "text/csv",
                                                    "data": b64(b"a,b\n" * 10_000)}}]}]}
    assert 40_000 <= bound_input_tokens(body, GEMINI) < 40_400


@pytest.mark.parametrize("body, model, where", [
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {
        "file_id": "file-1"}}]}]}, MINI, "messages[0].content[0].file.file_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_file",
                                              "file_url": "https://x/y.pdf"}]}]},
     GPT, "input[0].content[0].file_url"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {
        "data": "AAAA", "format": "wav"}}]}]}, MINI, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png,%89PNG"}}]}]}, MINI, "image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "base64", "media_type": "application/zip", "data": b64(b"PK\3\4")}}]}]},
     CLAUDE, "source"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "%%%"}}]}]},
     CLAUDE, "source"),
    ({"contents": [{"parts": [{"file_data": {"file_uri": "gs://b/o"}}]}]}, GEMINI,
     "file_data"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png",
                                              "data": b64(b"not a png")}}]}]}, GEMINI,
     "inlineData"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "url", "url": "https://x/y.png"}}]}]},
     dataclasses.replace(CLAUDE, images=None), "source.url"),
])
def test_what_cannot_be_bounded_is_refused_naming_it(body, model, where) -> None:
    with pytest.raises(InvalidRequest) as caught:
        bound_input_tokens(body, model)
    assert where in caught.value.message and caught.value.status == 400


# ------------------------------------------------------------------ quoting at the bound
def test_the_quote_prices_input_at_the_highest_input_price() -> None:
    """Any input token may be billed as a one-hour cache write on Claude (2x input)."""
    quote = make_quote(CLAUDE, input_tokens=1_000, requested=10, cap=None, balance=None)
    assert quote.amount == 1_000 * CLAUDE.prices.cache_write_1h_pico + 10 * 5_000_000


def test_a_bound_past_the_threshold_is_quoted_at_the_long_context_tier() -> None:
    model = CATALOG.get("gemini-2.5-pro")
    quote = make_quote(model, input_tokens=200_001, requested=10, cap=None, balance=None)
    assert quote.amount == 200_001 * 2_500_000 + 10 * 15_000_000
    short = make_quote(model, input_tokens=200_000, requested=10, cap=None, balance=None)
    assert short.amount == 200_000 * 1_250_000 + 10 * 10_000_000


def test_usage_is_billed_at_its_tier_with_one_hour_writes_apart() -> None:
    sonnet = CATALOG.get("claude-sonnet-4-5")
    usage = ir.Usage(input_tokens=10_050, cache_write_tokens=10_000, cache_write_1h_tokens=8_000,
                     output_tokens=5)
    assert usage_cost(sonnet, usage) == (50 * 3_000_000 + 2_000 * 3_750_000 + 8_000 * 6_000_000
                                         + 5 * 15_000_000)
    pro = CATALOG.get("gemini-2.5-pro")
    assert usage_cost(pro, ir.Usage(input_tokens=300_000, output_tokens=1)) == (
        300_000 * 2_500_000 + 15_000_000)


# ------------------------------------------------------------------ forwarding checks
def test_one_hour_ttls_need_a_catalog_price() -> None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]}
    anthropic.check_forwardable(body, model=CLAUDE, headers={})
    unpriced = dataclasses.replace(CLAUDE, prices=dataclasses.replace(CLAUDE.prices,
                                                                      cache_write_1h=None))
    with pytest.raises(InvalidRequest, match="messages\\[0\\].content\\[0\\].cache_control.ttl"):
        anthropic.check_forwardable(body, model=unpriced, headers={})


def test_cache_control_inside_caller_data_is_not_a_block() -> None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "t", "input_schema": {"type": "object", "properties": {
                "cache_control": {"type": "object", "properties": {"ttl": {"type": "string"}}}}}}]}
    anthropic.check_forwardable(body, model=dataclasses.replace(
        CLAUDE, prices=dataclasses.replace(CLAUDE.prices, cache_write_1h=None)), headers={})


def test_clearing_context_edits_pass_and_compaction_does_not() -> None:
    base = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    anthropic.check_forwardable({**base, "context_management": {"edits": [
        {"type": "clear_thinking_20251015", "keep": "all"}]}}, model=CLAUDE, headers={})
    with pytest.raises(InvalidRequest, match="compact"):
        anthropic.check_forwardable({**base, "context_management": {"edits": [
            {"type": "compact_20260112"}]}}, model=CLAUDE, headers={})


def test_a_long_context_beta_passes_only_where_the_catalog_prices_long_context() -> None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(InvalidRequest, match="context-1m"):
        anthropic.check_forwardable(body, model=CLAUDE,
                                    headers={"anthropic-beta": "context-1m-2025-08-07"})
    priced = dataclasses.replace(CLAUDE, prices=dataclasses.replace(
        CLAUDE.prices, long_context=CATALOG.get("gemini-2.5-pro").prices.long_context))
    anthropic.check_forwardable(body, model=priced,
                                headers={"anthropic-beta": "context-1m-2025-08-07"})


def test_gemini_refusals_name_the_field_as_the_caller_spelt_it() -> None:
    with pytest.raises(InvalidRequest) as caught:
        gemini.check_forwardable({"contents": [], "generation_config": {
            "speech_config": {}}}, model=GEMINI, headers={})
    assert caught.value.param == "generation_config.speech_config"


def test_gemini_standard_service_tier_passes() -> None:
    for tier in ("standard", "STANDARD", "unspecified"):
        gemini.check_forwardable({"contents": [], "serviceTier": tier}, model=GEMINI,
                                 headers={})


def test_prices_of_the_shipped_catalog_are_what_the_pricing_pages_say() -> None:
    sonnet = CATALOG.get("claude-sonnet-4-5").prices
    assert (sonnet.cache_write, sonnet.cache_write_1h) == (Decimal("3.75"), Decimal("6.00"))
    tier = CATALOG.get("gpt-5.4").prices.long_context
    assert tier.threshold == 272_000
    assert (tier.prices.input, tier.prices.output) == (Decimal("5.00"), Decimal("22.50"))
