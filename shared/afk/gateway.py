"""The per-process services every route shares, built once per container.

Building is cheap (no I/O): the store client, the catalog and the providers
are created lazily on first use, so cold start pays only for what a
function actually touches.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import field
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING

from afk import observability
from afk.auth import Authenticator, Principal, TTLCache
from afk.background import Background
from afk.endpoints import Endpoint
from afk.errors import ModelNotFound, PermissionDenied, ProviderNotConfigured
from afk.records import dataclass
from afk.settings import KEY_SETTINGS, Settings, get_settings
from afk.store import Account, Dynamo, Store

if TYPE_CHECKING:
    from afk.billing.wallet import Wallet
    from afk.catalog import Catalog, Model
    from afk.failover import Breaker
    from afk.management import Management
    from afk.payments import Payments
    from afk.providers import Provider
    from afk.providers.transport import Upstreams


@dataclass(frozen=True, slots=True)
class AccountView:
    """What the request path needs of an account between reads (cached briefly)."""

    caps: dict[str, int]
    models: frozenset[str] | None
    # Credit not yet charged, as of the read (unleased balance + open leases; an
    # open lease's own charges are not subtracted): whether free calls (token
    # counting) may run. Never used to decide what a call may spend.
    credit: int | None = None
    # The account's negotiated markups over provider cost, in percent: per model id,
    # or "*" for every model; they replace the catalog's price for this account.
    markups: Mapping[str, Decimal] = field(default_factory=dict)

    def priced(self, model: Model) -> Model:
        """`model` at this account's price."""
        percent = self.markups.get(model.id, self.markups.get("*"))
        return model if percent is None else model.priced_at(percent)


class Gateway:
    def __init__(self, settings: Settings, *, store: Store | None = None,
                 catalog: Catalog | None = None,
                 providers: dict[str, Provider] | None = None) -> None:
        # As read from the environment until `ready()` folds in the provider-keys
        # secret (once per environment); every key lookup goes through it after.
        self.settings = settings
        self._secret_resolved = settings.secret_arn is None
        self._secret_lock = threading.Lock()
        self._store = store
        self._catalog = catalog
        self._providers = providers or {}
        self._providers_lock = threading.Lock()
        self.accounts_cache: TTLCache[AccountView] = TTLCache(settings.cache_ttl)
        # Bytes of stored Responses turns per account, as read (plus what this process
        # stored since): the quota check's figure, at most cache_ttl old.
        self.responses_usage: TTLCache[list[int]] = TTLCache(settings.cache_ttl)

    async def ready(self) -> None:
        """What a route awaits before it needs a provider or payment key: the first
        call of an environment reads the provider-keys secret in a worker thread
        (never on the event loop); every later call returns at once."""
        if not self._secret_resolved:
            import anyio.to_thread

            await anyio.to_thread.run_sync(self.resolve_secret)

    def resolve_secret(self) -> Settings:
        """Blocking, once per environment: `settings` with the provider-keys secret's
        keys (afk.secrets). Every later call returns the same settings, no I/O."""
        if not self._secret_resolved:
            with self._secret_lock:
                if not self._secret_resolved:
                    from afk.secrets import resolve

                    self.settings = resolve(self.settings)
                    for value in self.settings.named_keys.values():
                        observability.register_secret(value)  # never in a log line
                    self._secret_resolved = True
        return self.settings

    @cached_property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(Dynamo(self.settings.table,
                                       endpoint_url=self.settings.dynamodb_endpoint,
                                       region=self.settings.region))
        return self._store

    @cached_property
    def upstreams(self) -> Upstreams:
        """What every provider of this gateway shares: the pooled HTTP client and
        the image fetcher (afk/providers/transport.py)."""
        from afk.providers.transport import Upstreams

        return Upstreams(connect_timeout=self.settings.connect_timeout,
                         read_timeout=self.settings.read_timeout,
                         proxies=self.settings.proxies)

    @cached_property
    def background(self) -> Background:
        """Store work no request waits for (afk/background.py)."""
        return Background()

    @cached_property
    def wallet(self) -> Wallet:
        """This process's credit leases (billing/wallet.py)."""
        from afk.billing.wallet import Wallet

        return Wallet(self.store.leases, self.store.keys,
                      owner=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
                      max_call_s=self.settings.max_call_seconds,
                      lease_s=self.settings.lease_seconds, background=self.background)

    @cached_property
    def payments(self) -> Payments:
        """Self-serve top-ups (afk/payments.py)."""
        from afk.payments import Payments

        return Payments(self.resolve_secret(), self.store)

    @cached_property
    def management(self) -> Management:
        """Account and key operations (afk/management.py), forgetting what this
        process cached of what they change."""
        from afk.management import Management

        return Management(self.store, lambda: self.catalog, forget_account=self.forget_account,
                          forget_keys=self._forget_keys)

    def _forget_keys(self) -> None:
        if "auth" in vars(self):
            self.auth.forget()

    @cached_property
    def catalog(self) -> Catalog:
        if self._catalog is not None:
            return self._catalog
        from afk.catalog import Catalog  # the account and dashboard functions never load it

        catalog = Catalog.load(self.settings.catalog_path)
        if self.settings.catalog_path is None and not self.settings.echo_models:
            # The built-in catalog's offline models serve `afk dev` and tests; a
            # deployed gateway lists what the operator's catalog lists.
            catalog = Catalog([m for m in catalog if m.provider != "echo"], catalog.endpoints)
        return catalog

    @cached_property
    def auth(self) -> Authenticator:
        return Authenticator(self.store.keys, self.settings.cache_ttl, self.background)

    def provider(self, name: str, *, dialect: str | None = None,
                 web_search: bool = False) -> Provider:
        """The provider serving `name`'s models to a caller of `dialect`. OpenAI is
        reached over the Responses API when the caller speaks it (so nothing the
        caller sent is lost) or wants hosted web search (which OpenAI serves there
        on every model; Chat Completions only on its search models), over Chat
        Completions otherwise."""
        responses = dialect == "openai_responses" or web_search
        key = "openai_responses" if name == "openai" and responses else name
        settings = self.resolve_secret()  # before the lock: no I/O is made under it
        with self._providers_lock:
            provider = self._providers.get(key)
            if provider is None:
                provider = self._providers[key] = _build_provider(
                    key, settings, self.catalog.endpoints.get(name), self.upstreams)
            return provider

    def provider_for(self, model: Model, *, dialect: str | None = None,
                     web_search: bool = False) -> Provider:
        """What serves `model` to a caller of `dialect`: its provider, or, for a model
        with fallbacks, its deployments that can be called, in order (afk/failover.py)."""
        deployments = [m for m in model.deployments if self.has_credentials(m.provider)]
        if not model.fallbacks or len(deployments) < 2:
            chosen = deployments[0] if deployments else model
            return self.provider(chosen.provider, dialect=dialect, web_search=web_search)
        from afk.failover import FailoverProvider

        return FailoverProvider([(m, self.provider(m.provider, dialect=dialect))
                                 for m in deployments], self.breaker)

    @cached_property
    def breaker(self) -> Breaker:
        """Which deployments this environment has seen failing (afk/failover.py)."""
        from afk.failover import Breaker

        return Breaker()

    # ------------------------------------------------------------ accounts
    def account_view(self, account_id: str) -> AccountView:
        """Blocking: may read the account (only when this process has no recent
        view of it; one due for a refresh is re-read in the background)."""
        view, due = self.accounts_cache.lookup(account_id)
        if view is None:
            return self.remember(self.store.accounts.require(account_id))
        if due:
            self.background.submit(("account", account_id),
                                   lambda: self._refresh_account(account_id))
        return view

    def _refresh_account(self, account_id: str) -> None:
        read_at = self.accounts_cache.epoch()
        self.remember(self.store.accounts.require(account_id), read_at=read_at)

    def remember(self, account: Account, *, read_at: int | None = None) -> AccountView:
        view = AccountView(caps=dict(account.caps),
                           models=frozenset(account.models) if account.models is not None
                           else None, credit=account.balance + account.leased,
                           markups=dict(account.markups))
        self.accounts_cache.put(account.id, view, read_at=read_at)
        return view

    def forget_account(self, account_id: str) -> None:
        self.accounts_cache.discard(account_id)

    # ------------------------------------------------------------ models
    def key_setting(self, provider: str) -> str | None:
        """The setting holding `provider`'s API key (None: it needs none)."""
        endpoint = self.catalog.endpoints.get(provider)
        return endpoint.key if endpoint is not None else KEY_SETTINGS.get(provider)

    def has_credentials(self, provider: str) -> bool:
        """Whether this gateway can call `provider`: it holds its API key (the offline
        echo and a keyless declared server need none; Bedrock is enabled, its calls
        signed with the function's role). Blocking the first time in an environment
        that has not awaited `ready()`: it reads the provider-keys secret."""
        if provider == "bedrock":
            return self.settings.bedrock
        settings = self.resolve_secret()
        setting = self.key_setting(provider)
        if setting is None:
            return True
        if provider in self.catalog.endpoints:
            return settings.credential(setting) is not None
        upstream = settings.upstreams.get(provider)
        return upstream is not None and bool(upstream.api_key)

    def require_credentials(self, model: Model) -> None:
        """A final 403 naming the missing setting, before anything is reserved or sent
        upstream (an unauthenticated call would come back a retryable 502)."""
        if not any(self.has_credentials(m.provider) for m in model.deployments):
            raise ProviderNotConfigured(model.id, model.provider,
                                        self.key_setting(model.provider) or "AFK_BEDROCK",
                                        secret=self.settings.secret_arn is not None
                                        and model.provider != "bedrock")

    def models_for(self, view: AccountView, principal: Principal | None = None) -> list[Model]:
        """The account's models, callable now or not (caps may be set on any); with
        `principal`, only those its key may call."""
        allowed = principal.limits.models if principal is not None else None
        return [view.priced(m) for m in self.catalog
                if (view.models is None or m.id in view.models)
                and (allowed is None or m.id in allowed)]

    def callable_models(self, view: AccountView,
                        principal: Principal | None = None) -> list[Model]:
        """The account's models whose provider has a key (and, with `principal`, that
        its key may call): what every model list shows. Blocking: may read the
        provider-keys secret."""
        models = self.models_for(view, principal)
        configured = {p for p in {d.provider for m in models for d in m.deployments}
                      if self.has_credentials(p)}
        return [m for m in models if any(d.provider in configured for d in m.deployments)]

    def model_for(self, principal: Principal, model_id: str,
                  view: AccountView | None = None) -> tuple[Model, AccountView]:
        """Blocking (unless the account is cached or `view` given). The catalog model
        if the caller's account has it (else 404), its key may call it (else 403)
        and its provider has a key (else 403)."""
        view = view or self.account_view(principal.account_id)
        model = self.catalog.get(model_id.removeprefix("models/"))
        if model is None or (view.models is not None and model.id not in view.models):
            raise ModelNotFound(model_id)
        allowed = principal.limits.models
        if allowed is not None and model.id not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise PermissionDenied(f"This key may not call {model.id}: its limits allow only "
                                   f"these models: {names}.", param="model",
                                   code="model_not_allowed")
        self.require_credentials(model)
        return view.priced(model), view


def _build_provider(name: str, settings: Settings, endpoint: Endpoint | None,
                    upstreams: Upstreams) -> Provider:
    if endpoint is not None:
        from afk.providers.compatible import AzureOpenAIProvider, OpenAICompatibleProvider

        kind = AzureOpenAIProvider if endpoint.api == "azure_openai" else \
            OpenAICompatibleProvider
        return kind(settings, endpoint, upstreams=upstreams)
    if name == "bedrock":
        from afk.providers.bedrock import BedrockProvider

        return BedrockProvider(settings, upstreams=upstreams)
    if name == "openai":
        from afk.providers.openai import OpenAIProvider

        return OpenAIProvider(settings, upstreams=upstreams)
    if name == "openai_responses":
        from afk.providers.openai import OpenAIResponsesProvider

        return OpenAIResponsesProvider(settings, upstreams=upstreams)
    if name == "anthropic":
        from afk.providers.anthropic import AnthropicProvider

        return AnthropicProvider(settings, upstreams=upstreams)
    if name == "gemini":
        from afk.providers.gemini import GeminiProvider

        return GeminiProvider(settings, upstreams=upstreams)
    if name == "echo":
        from afk.providers.echo import EchoProvider

        return EchoProvider()
    from afk.errors import GatewayError

    raise GatewayError(f"Models of the {name} provider cannot be called through this "
                       "gateway yet.", status=501, code="provider_not_available")


_default: Gateway | None = None
_default_lock = threading.Lock()


def default_gateway() -> Gateway:
    """The process-wide gateway (one per Lambda container)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Gateway(get_settings())
        return _default
