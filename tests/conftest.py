"""Shared fixtures: an embedded DynamoDB (moto server), a fake OpenAI upstream
over real HTTP, and the gateway's real ASGI app served by uvicorn."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from afk import observability
from afk.aggregator import StreamPoller, local_poller
from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.local.dynamodb import EmbeddedDynamoDB
from afk.money import from_pico, parse_usd, to_pico
from afk.settings import Settings, Upstream
from afk.store import Account, Dynamo, Statement, Store, create_table
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_openai import FakeOpenAI
from tests.support.asgi import Recorder
from tests.support.servers import serve
from tests.support.stage import StagePrefix

UPSTREAM_KEY = "sk-upstream-secret"


@pytest.fixture(autouse=True)
def holds_bound_the_bill(request, monkeypatch) -> Iterator[list]:
    """Every settlement of every test: the hold covered the provider's bill for what
    was forwarded, so nothing went `uncovered` (usage cost above the hold, not
    charged). The fakes report what the real provider would bill; a test that
    drives usage above the hold on purpose says so with `uncovered_allowed`."""
    uncovered: list[tuple[str, str, int]] = []
    observe = observability.observe_settlement

    def watched(model, route, settlement, cost_pico, upstream_ms) -> None:
        if getattr(settlement, "uncovered", 0):
            uncovered.append((model, route, settlement.uncovered))
        observe(model, route, settlement, cost_pico, upstream_ms)

    monkeypatch.setattr(observability, "observe_settlement", watched)
    yield uncovered
    if request.node.get_closest_marker("uncovered_allowed") is None:
        assert uncovered == [], f"usage exceeded the hold (model, route, pico-USD): {uncovered}"


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    with EmbeddedDynamoDB() as db:
        yield db.endpoint


@pytest.fixture(scope="module")
def embedded_dynamodb() -> Iterator[str]:
    """An embedded DynamoDB (moto server) of the test module's own, for tests below
    the gateway (unit tests, the DynamoDB-semantics layer)."""
    with EmbeddedDynamoDB() as db:
        yield db.endpoint


@pytest.fixture(scope="session")
def store(dynamodb_endpoint: str) -> Store:
    dynamo = Dynamo("afk-test", endpoint_url=dynamodb_endpoint)
    create_table(dynamo.client, "afk-test")
    return Store(dynamo)


def _served(fake_class, name: str):
    """A session-wide fake upstream served over real HTTP, and a per-test fixture
    handing it out with its script and records reset."""

    @pytest.fixture(scope="session")
    def server():
        fake = fake_class()
        with serve(fake.app) as url:
            yield fake, url

    @pytest.fixture
    def fresh(request):
        fake, _ = request.getfixturevalue(f"{name}_server")
        fake.reset()
        return fake

    return server, fresh


fake_openai_server, fake_openai = _served(FakeOpenAI, "fake_openai")
fake_anthropic_server, fake_anthropic = _served(FakeAnthropic, "fake_anthropic")
fake_gemini_server, fake_gemini = _served(FakeGemini, "fake_gemini")


@pytest.fixture(scope="session")
def settings(dynamodb_endpoint: str, fake_openai_server: tuple[FakeOpenAI, str],
             fake_anthropic_server: tuple[FakeAnthropic, str],
             fake_gemini_server: tuple[FakeGemini, str]) -> Settings:
    base = Settings.from_env({})
    return replace(base, table="afk-test", dynamodb_endpoint=dynamodb_endpoint,
                   upstreams={"openai": Upstream(f"{fake_openai_server[1]}/v1", UPSTREAM_KEY),
                              "anthropic": Upstream(fake_anthropic_server[1], UPSTREAM_KEY),
                              "gemini": Upstream(fake_gemini_server[1], UPSTREAM_KEY)},
                   read_timeout=10.0, connect_timeout=2.0)


@pytest.fixture(scope="session")
def aggregator(store: Store, dynamodb_endpoint: str) -> Iterator[StreamPoller]:
    """The usage aggregator on the test table's stream, as `afk dev` runs it; a test
    that reads rollups calls `drain()` first to read them current."""
    poller = local_poller(store, dynamodb_endpoint, "us-east-1").start()
    yield poller
    poller.stop()


@pytest.fixture(scope="session")
def gateway(settings: Settings, store: Store) -> Gateway:
    return Gateway(settings, store=store)


@pytest.fixture(scope="session")
def gateway_url(gateway: Gateway) -> Iterator[str]:
    with serve(create_app("local", gateway)) as url:
        yield url


@pytest.fixture(scope="session")
def staged_url(gateway: Gateway) -> Iterator[str]:
    """The gateway as deployed: only under API Gateway's `/prod` stage (the stack's
    ApiUrl output), a 403 `{"message":"Forbidden"}` anywhere else."""
    with serve(StagePrefix(create_app("local", gateway))) as url:
        yield url + "/prod"


KEEPALIVE = 0.1  # seconds of silence before the keepalive gateway sends a keepalive


@pytest.fixture(scope="session")
def keepalive_gateway(settings: Settings, store: Store) -> Gateway:
    return Gateway(replace(settings, keepalive_seconds=KEEPALIVE), store=store)


@pytest.fixture(scope="session")
def keepalive_server(keepalive_gateway: Gateway) -> Iterator[tuple[Recorder, str]]:
    """The gateway with a small keepalive interval, every exchange recorded."""
    recorder = Recorder(create_app("local", keepalive_gateway))
    with serve(recorder) as url:
        yield recorder, url


@pytest.fixture(scope="session")
def keyless_server(settings: Settings, store: Store) -> Iterator[tuple[Recorder, Gateway, str]]:
    """A gateway holding no key for Anthropic and Gemini (OpenAI has one), every
    exchange recorded."""
    upstreams = {**settings.upstreams,
                 "anthropic": Upstream(settings.upstreams["anthropic"].base_url),
                 "gemini": Upstream(settings.upstreams["gemini"].base_url)}
    gateway = Gateway(replace(settings, upstreams=upstreams), store=store)
    recorder = Recorder(create_app("local", gateway))
    with serve(recorder) as url:
        yield recorder, gateway, url


@dataclass
class Customer:
    """A fresh account with one key, and clients pointed at the gateway."""

    account_id: str
    key: str
    key_id: str
    url: str
    store: Store
    gateway: Gateway | None = None

    def openai(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0,
                             **kwargs)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=self.key, max_retries=0)

    def genai(self, version: str = "v1beta") -> genai.Client:
        return genai.Client(api_key=self.key, http_options=genai_types.HttpOptions(
            base_url=self.url, api_version=version))

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"authorization": f"Bearer {self.key}"})

    def account(self) -> Account:
        return self.store.accounts.require(self.account_id)

    def statement(self) -> Statement:
        return self.store.leases.statement(self.account_id)

    def balance(self) -> Decimal:
        """Credit not yet charged (what `GET /v1/account` calls the balance)."""
        return from_pico(self.statement().remaining)

    def in_flight(self) -> int:
        """Calls of this account the gateway has reserved and not yet settled."""
        assert self.gateway is not None
        return self.gateway.wallet.in_flight(self.account_id)

    def ledger(self) -> list:
        return self.store.ledger.all_entries(self.account_id)

    def charges(self) -> list:
        return [e for e in self.ledger() if e.type == "charge"]

    def assert_books_balance(self) -> None:
        """On the account item: balance + leased + charged − credited = 0; and the
        statement's charges and credits are the ledger's sums."""
        statement = self.statement()
        account = statement.account
        entries = self.ledger()
        charged = sum(e.amount for e in entries if e.type == "charge")
        credited = sum(e.amount for e in entries if e.type == "credit")
        assert account.balance >= 0
        assert account.balance + account.leased + account.charged - account.credited == 0
        assert (statement.charged, account.credited) == (charged, credited)
        assert account.balance + statement.held + charged - credited == 0


def open_account(store: Store, url: str, gateway: Gateway | None = None,
                 credits: str = "10") -> Customer:
    """A new account with `credits` and one key, calling the gateway served at `url`."""
    account = store.accounts.create(f"test-{secrets.token_hex(3)}",
                                    credits=to_pico(parse_usd(credits)))
    key, record = store.keys.create(account.id, "test")
    return Customer(account.id, key, record.key_id, url, store, gateway)


@pytest.fixture
def make_customer(store: Store, gateway: Gateway, gateway_url: str, fake_openai_server,
                  fake_anthropic_server, fake_gemini_server):
    # A test starts with every fake's script empty, whichever fakes it names: a reply
    # an earlier test queued and never used must not answer this test's calls.
    for fake, _ in (fake_openai_server, fake_anthropic_server, fake_gemini_server):
        fake.reset()

    def make(credits: str = "10") -> Customer:
        return open_account(store, gateway_url, gateway, credits)

    return make


@pytest.fixture
def customer(make_customer) -> Customer:
    return make_customer()


@pytest.fixture
def patient_customer(make_customer, keepalive_gateway: Gateway,
                     keepalive_server: tuple[Recorder, str]) -> Customer:
    """A customer of the keepalive gateway (its recorder emptied)."""
    recorder, url = keepalive_server
    recorder.exchanges.clear()
    return replace(make_customer(), url=url, gateway=keepalive_gateway)
