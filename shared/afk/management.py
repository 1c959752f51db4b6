"""Account and key operations, and how their results read: the one place the
account API (http/account.py, usage.py) and `afk admin` (admin.py) both call.

A customer acts on its own account through a manage key; the operator acts on
any account. The difference is who owns the limits set (a customer's own can
only be stricter than the operator's) and which key ids are found (a customer
finds only its account's). Every change forgets what this process cached of it
(the account view, the key lookups), so the next request sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from afk import limits as key_limits
from afk.errors import InvalidRequest, ModelNotFound, NotFound, PermissionDenied
from afk.limits import Limits
from afk.money import format_usd
from afk.store.items import iso

if TYPE_CHECKING:
    from afk.catalog import Catalog
    from afk.store import Account, KeyRecord, LedgerEntry, Statement, Store
    from afk.store.rollups import Totals

Owner = Literal["own", "operator"]


def _nothing(*_: object) -> None:
    """What a process without caches (`afk admin`) forgets."""


class Management:
    def __init__(self, store: Store, catalog: Callable[[], Catalog], *,
                 forget_account: Callable[[str], None] = _nothing,
                 forget_keys: Callable[[], None] = _nothing) -> None:
        self.store = store
        self._catalog = catalog  # loaded when a model is named, not before
        self._forget_account = forget_account
        self._forget_keys = forget_keys

    # ------------------------------------------------------------ accounts
    def statement(self, account_id: str) -> Statement:
        return self.store.leases.statement(account_id)

    def set_cap(self, account_id: str, model_id: str, cap: int | None) -> None:
        """A model's per-call cap in pico-USD (None clears it). 404 unless the model
        is one of the account's."""
        self._account_model(self.store.accounts.require(account_id), model_id)
        if cap is None:
            self.store.accounts.clear_cap(account_id, model_id)
        else:
            self.store.accounts.set_cap(account_id, model_id, cap)
        self._forget_account(account_id)

    def set_markup(self, account_id: str, model_id: str, percent: Decimal | None) -> None:
        """The account's price of a model ("*": every model) at `percent` over provider
        cost (None: back to the catalog's)."""
        if model_id != "*":
            self._account_model(self.store.accounts.require(account_id), model_id)
        if percent is None:
            self.store.accounts.clear_markup(account_id, model_id)
        else:
            self.store.accounts.set_markup(account_id, model_id, percent)
        self._forget_account(account_id)

    def add_credits(self, account_id: str, amount: int, *, credit_id: str | None) -> None:
        self.store.accounts.add_credits(account_id, amount, credit_id=credit_id)
        self._forget_account(account_id)

    def _account_model(self, account: Account, model_id: str) -> None:
        if self._catalog().get(model_id) is None or (
                account.models is not None and model_id not in account.models):
            raise ModelNotFound(model_id)

    # ------------------------------------------------------------ keys
    def keys(self, account_id: str) -> list[tuple[KeyRecord, tuple[int, int]]]:
        """The account's keys, each with its spend today and this month (UTC)."""
        self.store.accounts.require(account_id)
        _, _, day_ms, month_ms = key_limits.periods(int(time.time() * 1000))
        spend = self.store.ledger.spend_by_key(account_id, day_ms=day_ms, month_ms=month_ms)
        return [(k, spend.get(k.key_id, (0, 0))) for k in self.store.keys.list(account_id)]

    def create_key(self, account_id: str, name: str, *, scope: str,
                   changes: dict[str, Any], by_key: str | None = None
                   ) -> tuple[str, KeyRecord]:
        """A new key (its plaintext is returned once). Made by the operator (`by_key`
        None), `changes` are operator limits; made by a customer key, they are the
        account's own, and the new key carries the maker's operator limits: a key
        cannot mint its way out of what the operator set on it."""
        self._known_models(changes)
        if by_key is None:
            own, operator = Limits(), key_limits.changed(Limits(), changes)
        else:
            maker, _ = self.store.keys.get(by_key)
            operator = maker.operator
            own = _own_limits(key_limits.changed(Limits(), changes), operator)
        return self.store.keys.create(account_id, name, scope=scope, own=own,
                                      operator=operator)

    def limit_key(self, key_id: str, changes: dict[str, Any], *, owner: Owner,
                  account_id: str | None = None) -> KeyRecord:
        """Change one owner's limits on a key: the fields in `changes`, None lifting
        one. With `account_id`, a key of another account is not found."""
        self._known_models(changes)
        record, _ = self.store.keys.get(key_id)
        if account_id is not None and record.account_id != account_id:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        if owner == "own":
            limits = _own_limits(key_limits.changed(record.own, changes), record.operator)
        else:
            limits = key_limits.changed(record.operator, changes)
        updated = self.store.keys.set_limits(key_id, limits, owner=owner, account_id=account_id)
        self._forget_keys()
        return updated

    def revoke_key(self, key_id: str, *, account_id: str | None = None) -> KeyRecord:
        record = self.store.keys.revoke(key_id, account_id=account_id)
        self._forget_keys()
        return record

    def _known_models(self, changes: dict[str, Any]) -> None:
        catalog = self._catalog() if changes.get("models") else None
        unknown = sorted(m for m in changes.get("models") or ()
                         if catalog is not None and catalog.get(m) is None)
        if unknown:
            raise InvalidRequest(f"'models' names models this gateway's catalog does not have: "
                                 f"{', '.join(unknown)}.", param="models")


def _own_limits(own: Limits, operator: Limits) -> Limits:
    """A customer's limits, refused (403) where they would allow more than the
    operator's: those the customer cannot lift, and should know it cannot."""
    looser = own.looser_than(operator)
    if looser is not None:
        theirs = operator.render()[looser]
        raise PermissionDenied(
            f"The operator limits this key's {looser} to {theirs}; a limit of your own can "
            "only be stricter. Ask the operator to change theirs.", param=looser,
            code="operator_limit")
    return own


# ---------------------------------------------------------------- how results read
def render_account(statement: Statement) -> dict[str, Any]:
    """`balance` is the credit not yet charged; `held` the part of it reserved for
    calls (credit leases of running environments, in-flight calls included);
    `available` the rest, what a new environment can reserve now."""
    account = statement.account
    return {
        "object": "account", "id": account.id, "name": account.name,
        "currency": account.currency, "balance": format_usd(statement.remaining),
        "held": format_usd(statement.held), "available": format_usd(account.balance),
        "debt": format_usd(account.debt),
        "open_leases": len(statement.leases),
        "caps": {model: format_usd(cap) for model, cap in sorted(account.caps.items())},
        "created": account.created,
    }


def render_account_for_operator(statement: Statement) -> dict[str, Any]:
    """The account as the operator reads it: its open leases listed, its negotiated
    prices, and the totals the ledger invariant balances (charged, credited)."""
    account = statement.account
    rendered = render_account(statement)
    del rendered["object"]
    return {**rendered,
            "open_leases": [{"id": lease.id, "granted": format_usd(lease.granted),
                             "owner": lease.owner, "expires": iso(lease.expires_ms),
                             "reconcile_after": iso(lease.reconcile_ms)}
                            for lease in statement.leases],
            "markups": {m: str(p) for m, p in sorted(account.markups.items())},
            "charged": format_usd(statement.charged), "credited": format_usd(account.credited),
            "created": account.created}


def render_key(key: KeyRecord, spend: tuple[int, int] | None = None) -> dict[str, Any]:
    """`limits` is what applies (the stricter of both owners'); `own_limits` the
    account's (a manage key can change them), `operator_limits` the operator's
    (read-only to every customer key)."""
    rendered = {"object": "api_key", "id": key.key_id, "name": key.name, "prefix": key.prefix,
                "created": key.created, "last_used": key.last_used, "status": key.status,
                "scope": key.scope, "rpm": key.rpm, "limits": key.limits.render(),
                "own_limits": key.own.render(), "operator_limits": key.operator.render()}
    if spend is not None:
        rendered["spend"] = {"today": format_usd(spend[0]), "this_month": format_usd(spend[1])}
    return rendered


def render_entry(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "object": "ledger.entry", "id": entry.id, "type": entry.type,
        "request_id": entry.request_id, "created": entry.created, "model": entry.model,
        "endpoint": entry.endpoint, "key_id": entry.key_id,
        "input_tokens": entry.input_tokens, "cached_input_tokens": entry.cached_input_tokens,
        "output_tokens": entry.output_tokens, "reasoning_tokens": entry.reasoning_tokens,
        "cost": format_usd(entry.amount) if entry.type == "charge" else "0.00",
        "credit": format_usd(entry.amount) if entry.type == "credit" else
        format_usd(-entry.amount) if entry.type == "debit" else "0.00",
        "status": entry.status, "estimated": entry.estimated, "note": entry.note,
        "web_searches": entry.web_searches, "web_search_cost": format_usd(entry.web_search_cost),
        "provider": entry.provider,  # the deployment that served the call
    }


def render_totals(totals: Totals) -> dict[str, Any]:
    """What the customer sees of a rollup: their spend, never the provider's cost."""
    return {"requests": totals.requests, "input_tokens": totals.input_tokens,
            "cached_input_tokens": totals.cached_input_tokens,
            "output_tokens": totals.output_tokens, "reasoning_tokens": totals.reasoning_tokens,
            "cost": format_usd(totals.revenue), "credits": format_usd(totals.credits),
            "debits": format_usd(totals.debits)}
