"""Hosted web search on every provider through every dialect (issue 13.1), with the
official SDKs, stream and not: the caller's own search tool reaches the provider as
that provider's tool, the searches and citations come back in the caller's dialect,
and each search is billed at the catalog's fee, with a worst case in the hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import pytest
from google.genai import types as gtypes

from afk.catalog import Catalog
from tests.conftest import Customer
from tests.fakes import fake_anthropic, fake_gemini, fake_openai
from tests.fakes.search import offered, results

CATALOG = Catalog.load()
QUERY = "afk gateway release"
ANSWER = "It shipped on Tuesday."
SOURCE = results(QUERY)[0][0]
MODELS = {"openai": "gpt-4.1-mini", "anthropic": "claude-haiku-4-5",
          "gemini": "gemini-2.5-flash"}
DIALECTS = ["chat", "responses", "anthropic", "gemini"]
PROMPT = "When did the afk gateway ship? Search the web."


def push(provider: str, fakes: dict[str, Any], **extra: Any) -> None:
    """The provider's model searches for QUERY, then answers citing the first page."""
    if provider == "openai":
        fakes[provider].push(fake_openai.Reply(text=ANSWER, search=QUERY, prompt_tokens=300,
                                               completion_tokens=9, **extra))
    elif provider == "anthropic":
        fakes[provider].push(fake_anthropic.Reply(text=ANSWER, search=QUERY, input_tokens=300,
                                                  output_tokens=9, **extra))
    else:
        fakes[provider].push(fake_gemini.Reply(text=ANSWER, search=QUERY, prompt_tokens=300,
                                               candidates_tokens=9, **extra))


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini) -> dict[str, Any]:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}


# ---------------------------------------------------------------- one call per dialect
def ask(dialect: str, customer: Customer, model: str, *, stream: bool,
        max_uses: int | None = None) -> tuple[str, list[str], list[str]]:
    """(answer text, cited URLs, searched queries) as the caller's SDK reads them."""
    return {"chat": _chat, "responses": _responses, "anthropic": _anthropic,
            "gemini": _gemini}[dialect](customer, model, stream=stream, max_uses=max_uses)


def _chat(customer: Customer, model: str, *, stream: bool, max_uses: int | None):
    client = customer.openai()
    messages = [{"role": "user", "content": PROMPT}]
    if not stream:
        message = client.chat.completions.create(model=model, messages=messages,
                                                 web_search_options={}).choices[0].message
        return (message.content, [a.url_citation.url for a in message.annotations or []], [])
    text, urls = "", []
    for chunk in client.chat.completions.create(model=model, messages=messages, stream=True,
                                                web_search_options={}):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            urls += [a["url_citation"]["url"]
                     for a in (choice.delta.model_extra or {}).get("annotations") or []]
    return text, urls, []


def _responses(customer: Customer, model: str, *, stream: bool, max_uses: int | None):
    client = customer.openai()
    kwargs: dict[str, Any] = {"model": model, "input": PROMPT, "store": False,
                              "tools": [{"type": "web_search"}]}
    if max_uses is not None:
        kwargs["max_tool_calls"] = max_uses
    if stream:
        with client.responses.stream(**kwargs) as events:
            for _ in events:
                pass
            response = events.get_final_response()
    else:
        response = client.responses.create(**kwargs)
    queries = [item.action.query for item in response.output if item.type == "web_search_call"]
    urls = [a.url for item in response.output if item.type == "message"
            for part in item.content for a in part.annotations]
    return response.output_text, urls, queries


def _anthropic(customer: Customer, model: str, *, stream: bool, max_uses: int | None):
    client = customer.anthropic()
    tool: dict[str, Any] = {"type": "web_search_20250305", "name": "web_search"}
    if max_uses is not None:
        tool["max_uses"] = max_uses
    kwargs: dict[str, Any] = {"model": model, "max_tokens": 1024, "tools": [tool],
                              "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        with client.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    text = "".join(b.text for b in message.content if b.type == "text")
    urls = [c.url for b in message.content if b.type == "text" for c in b.citations or []]
    queries = [b.input["query"] for b in message.content if b.type == "server_tool_use"]
    found = [r.url for b in message.content if b.type == "web_search_tool_result"
             for r in b.content]
    if queries:
        assert message.usage.server_tool_use.web_search_requests == len(queries)
        assert found, "the search's results reach the caller"
    return text, urls, queries


def _gemini(customer: Customer, model: str, *, stream: bool, max_uses: int | None):
    client = customer.genai()
    config = gtypes.GenerateContentConfig(tools=[gtypes.Tool(google_search=gtypes.GoogleSearch())])
    if stream:
        chunks = list(client.models.generate_content_stream(model=model, contents=PROMPT,
                                                            config=config))
        text = "".join(c.text or "" for c in chunks)
        metadata = next((c.candidates[0].grounding_metadata for c in chunks
                         if c.candidates and c.candidates[0].grounding_metadata), None)
    else:
        response = client.models.generate_content(model=model, contents=PROMPT, config=config)
        text, metadata = response.text, response.candidates[0].grounding_metadata
    if metadata is None:
        return text, [], []
    chunks_ = metadata.grounding_chunks or []
    urls = [chunks_[i].web.uri for s in metadata.grounding_supports or []
            for i in s.grounding_chunk_indices or []]
    return text, urls, list(metadata.web_search_queries or [])


def expected_cost(model_id: str, entry) -> Decimal:
    """Tokens at the catalog's prices plus the provider's search fee, computed here."""
    model = CATALOG.get(model_id)
    prices = model.prices
    million = Decimal(1_000_000)
    tokens = ((entry.input_tokens - entry.cached_input_tokens) * prices.input
              + entry.cached_input_tokens * prices.cached_input
              + entry.output_tokens * prices.output) / million
    return tokens + prices.web_search_per_1000 / 1000


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("dialect", DIALECTS)
def test_search_through_every_dialect_on_every_provider(dialect: str, provider: str,
                                                        stream: bool, customer: Customer,
                                                        fakes: dict[str, Any]):
    push(provider, fakes)
    model = MODELS[provider]

    text, urls, queries = ask(dialect, customer, model, stream=stream)

    assert text == ANSWER
    assert SOURCE in urls, "the answer cites the page the search found, in the caller's shape"
    if dialect in ("responses", "anthropic", "gemini"):  # Chat shows only the citations
        assert queries == [QUERY]
    sent = fakes[provider].requests[-1].body
    tool = offered(provider, sent)
    assert tool is not None, f"the {provider} upstream was offered its own search tool"
    if provider == "anthropic":
        assert tool["max_uses"] == 5  # bounded by the gateway where the caller set none
    if provider == "openai":
        assert sent["max_tool_calls"] == 5
    [entry] = customer.charges()
    assert (entry.web_searches, entry.model) == (1, model)
    fee = CATALOG.get(model).prices.web_search_per_1000 / 1000
    assert Decimal(entry.web_search_cost) / 10**12 == fee
    assert Decimal(entry.amount) / 10**12 == expected_cost(model, entry)
    customer.assert_books_balance()


def test_usage_api_shows_searches_and_their_cost(customer: Customer, fakes):
    push("anthropic", fakes)
    ask("chat", customer, MODELS["anthropic"], stream=False)
    with customer.http() as http:
        [entry] = http.get("/v1/account/usage", params={"limit": 1}).json()["data"]
    assert (entry["web_searches"], entry["web_search_cost"]) == (1, "0.01")


def test_callers_search_limit_reaches_the_provider_and_bounds_the_hold(customer: Customer,
                                                                       fakes):
    """max_uses / max_tool_calls pass through as the provider's own limit; a per-call cap
    that cannot cover the worst case of the allowed searches is a 402 before any
    upstream call, and one that can is honoured."""
    with customer.http() as http:
        http.put(f"/v1/account/caps/{MODELS['anthropic']}", json={"usd": "0.08"}
                 ).raise_for_status()
    before = len(fakes["anthropic"].requests)
    with pytest.raises(anthropic.APIStatusError) as refused:
        ask("anthropic", customer, MODELS["anthropic"], stream=False)  # 5 searches: > $0.08
    assert refused.value.status_code == 402
    assert len(fakes["anthropic"].requests) == before
    push("anthropic", fakes)
    text, _, _ = ask("anthropic", customer, MODELS["anthropic"], stream=False, max_uses=1)
    assert text == ANSWER
    assert offered("anthropic", fakes["anthropic"].requests[-1].body)["max_uses"] == 1
    assert customer.charges()[0].amount <= 8 * 10**10


def test_a_provider_without_search_drops_the_tool_and_says_so(customer: Customer):
    """The offline echo model has no search: the call is answered, the header names
    the dropped tool, nothing is billed for searches."""
    raw = customer.openai().responses.with_raw_response.create(
        model="echo", input="hi", store=False, tools=[{"type": "web_search"}])
    assert raw.headers["x-afk-dropped-tools"] == "web_search"
    assert raw.parse().output_text
    assert customer.charges()[0].web_searches == 0


def test_gemini_search_next_to_functions_is_dropped_not_refused(customer: Customer, fakes):
    """Gemini refuses googleSearch beside function declarations for API-key callers; a
    coding CLI sends both. The gateway drops search there, says so, and the call works."""
    fakes["gemini"].push(fake_gemini.Reply(text=ANSWER, search=QUERY))
    raw = customer.openai().responses.with_raw_response.create(
        model=MODELS["gemini"], input=PROMPT, store=False,
        tools=[{"type": "web_search"},
               {"type": "function", "name": "read_file", "parameters": {"type": "object"},
                "strict": False}])
    assert raw.headers["x-afk-dropped-tools"] == "web_search"
    assert raw.parse().output_text == ANSWER
    sent = fakes["gemini"].requests[-1].body
    assert offered("gemini", sent) is None
    assert customer.charges()[0].web_searches == 0


def test_openai_caller_of_chat_reaches_search_through_the_responses_api(customer: Customer,
                                                                        fakes):
    """OpenAI serves chat's web_search_options only on its search models; the gateway
    asks the Responses API instead, for any OpenAI model."""
    push("openai", fakes)
    ask("chat", customer, MODELS["openai"], stream=False)
    assert fakes["openai"].requests[-1].path.endswith("/responses")


def test_a_search_that_ran_is_billed_when_the_stream_breaks_after_it(customer: Customer,
                                                                     fakes):
    """OpenAI counts searches as call items and reports usage only at the end: a stream
    cut after the search item (before any text) still bills the search it ran."""
    # created, in_progress, the search item's added / 3 progress events / done, then EOF
    push("openai", fakes, eof_after=7)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's own error for a failed stream
        ask("responses", customer, MODELS["openai"], stream=True)
    [entry] = customer.charges()
    assert (entry.status, entry.web_searches) == ("error", 1)
    fee = CATALOG.get(MODELS["openai"]).prices.web_search_per_1000 / 1000
    assert Decimal(entry.amount) / 10**12 == fee
    customer.assert_books_balance()
