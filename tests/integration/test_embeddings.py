"""Embeddings through the official SDKs: OpenAI's `/v1/embeddings` (string or array
input, `dimensions`, float and base64) and Gemini's embedContent /
batchEmbedContents, on the embedding models of OpenAI and Gemini, either way round,
each billed on its input tokens at the catalog price."""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

import openai
import pytest

from afk.catalog import Catalog
from tests.conftest import Customer
from tests.fakes.upstream import fake_vector

CATALOG = Catalog.load()


def price(model: str) -> Decimal:
    return CATALOG.get(model).prices.input


def charged(customer: Customer) -> list[tuple[str, int, Decimal, bool]]:
    return [(e.model, e.input_tokens, Decimal(e.amount) / 10**12, e.estimated)
            for e in sorted(customer.charges(), key=lambda e: e.created_ms)]


def decoded(embedding: list[float] | str) -> list[float]:
    if isinstance(embedding, list):
        return embedding
    raw = base64.b64decode(embedding)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@pytest.mark.parametrize("encoding", [None, "base64", "float"],
                         ids=["sdk-default", "base64", "float"])
def test_openai_sdk_embeds_an_array_billed_on_the_providers_token_count(
        encoding, customer, fake_openai):
    texts = ["The quick brown fox", "jumps over the lazy dog!"]
    options = {"encoding_format": encoding} if encoding else {}
    raw = customer.openai().embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=texts, **options)
    result = raw.parse()
    # base64 is little-endian float32 (the SDK asks for it by default, and decodes it)
    assert [decoded(d.embedding) for d in result.data] == [fake_vector(t) for t in texts]
    assert [d.index for d in result.data] == [0, 1]
    sent = fake_openai.requests[-1]
    assert (sent.path, sent.body["input"], sent.body["encoding_format"]) == (
        "/v1/embeddings", texts, "float")
    tokens = 4 + 6  # the fake counts a token per 4 bytes
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (tokens, tokens)
    cost = tokens * price("text-embedding-3-small") / 10**6
    assert charged(customer) == [("text-embedding-3-small", tokens, cost, False)]
    assert Decimal(raw.headers["x-afk-cost"]) == cost
    customer.assert_books_balance()


def test_a_single_string_with_dimensions(customer, fake_openai):
    result = customer.openai().embeddings.create(model="text-embedding-3-large",
                                                 input="hello there", dimensions=4)
    assert [d.embedding for d in result.data] == [fake_vector("hello there", 4)]
    assert fake_openai.requests[-1].body["dimensions"] == 4
    assert charged(customer) == [("text-embedding-3-large", 2,
                                  2 * price("text-embedding-3-large") / 10**6, False)]


def test_openai_sdk_on_geminis_embedding_model(customer, fake_gemini):
    texts = ["first", "second one"]
    result = customer.openai().embeddings.create(model="gemini-embedding-001", input=texts,
                                                 dimensions=3)
    assert [d.embedding for d in result.data] == [fake_vector(t, 3) for t in texts]
    sent = fake_gemini.requests[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.body["requests"][1] == {"model": "models/gemini-embedding-001",
                                        "content": {"parts": [{"text": "second one"}]},
                                        "outputDimensionality": 3}
    # Gemini reports no token count: the fair estimate is billed, and marked so.
    ((model, tokens, cost, estimated),) = charged(customer)
    assert (model, estimated) == ("gemini-embedding-001", True) and tokens > 0
    assert cost == tokens * price("gemini-embedding-001") / 10**6
    assert result.usage.prompt_tokens == tokens
    customer.assert_books_balance()


def test_genai_sdk_batch_embeds_on_gemini_and_on_openai(customer, fake_gemini, fake_openai):
    client = customer.genai()
    on_gemini = client.models.embed_content(model="gemini-embedding-001",
                                            contents=["alpha", "beta gamma"])
    assert [e.values for e in on_gemini.embeddings] == [fake_vector("alpha"),
                                                         fake_vector("beta gamma")]
    on_openai = client.models.embed_content(model="text-embedding-3-small",
                                            contents=["alpha", "beta gamma"])
    assert [e.values for e in on_openai.embeddings] == [fake_vector("alpha"),
                                                         fake_vector("beta gamma")]
    assert fake_openai.requests[-1].body["input"] == ["alpha", "beta gamma"]
    assert [c[0] for c in charged(customer)] == ["gemini-embedding-001",
                                                 "text-embedding-3-small"]
    assert charged(customer)[1][1:] == (1 + 2, 3 * price("text-embedding-3-small") / 10**6,
                                        False)


def test_embedding_and_chat_models_stay_on_their_routes(customer, fake_openai):
    client = customer.openai()
    with pytest.raises(openai.BadRequestError, match="not an embedding model"):
        client.embeddings.create(model="gpt-4o-mini", input="hi")
    with pytest.raises(openai.BadRequestError, match="is an embedding model"):
        client.chat.completions.create(model="text-embedding-3-small",
                                       messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="token arrays"):
        client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3]])
    assert fake_openai.requests == [] and customer.charges() == []


def test_langchains_openai_embeddings(customer, fake_openai):
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length off: on, LangChain first tokenizes with tiktoken, whose
    # encodings it downloads (no network in tests); the texts then go as strings.
    embedder = OpenAIEmbeddings(model="text-embedding-3-small", api_key=customer.key,
                                base_url=f"{customer.url}/v1", max_retries=0,
                                check_embedding_ctx_length=False)
    documents = embedder.embed_documents(["one document", "another document"])
    query = embedder.embed_query("a question?")
    assert documents == [fake_vector("one document"), fake_vector("another document")]
    assert query == fake_vector("a question?")
    assert [e[0] for e in charged(customer)] == ["text-embedding-3-small"] * 2
    customer.assert_books_balance()


def test_a_large_batch_reaches_gemini_in_batches_of_100_in_order(customer, fake_gemini):
    texts = [f"text number {i}" + "x" * (i % 5) for i in range(230)]
    result = customer.openai().embeddings.create(model="gemini-embedding-001", input=texts)
    assert [d.embedding for d in result.data] == [fake_vector(t) for t in texts]
    assert [len(r.body["requests"]) for r in fake_gemini.requests] == [100, 100, 30]


def test_a_per_call_cap_bounds_the_input_and_nothing_reaches_the_provider(customer,
                                                                         fake_openai):
    with customer.http() as http:
        http.put("/v1/account/caps/text-embedding-3-large",
                 json={"usd": "0.000003"}).raise_for_status()
    # Bound: a token per byte plus 16 an input, at $0.13/M: 51 tokens > $0.000003 > 18
    with pytest.raises(openai.APIStatusError) as refused:
        customer.openai().embeddings.create(model="text-embedding-3-large",
                                            input="a sentence long enough to cost more")
    assert refused.value.status_code == 402 and "cap" in refused.value.message
    assert fake_openai.requests == [] and customer.charges() == []
    small = customer.openai().embeddings.create(model="text-embedding-3-large", input="hi")
    assert small.data[0].embedding == fake_vector("hi")  # within the cap: served
