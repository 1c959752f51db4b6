"""The `afk` command: `afk dev` (everything locally) and `afk admin` (accounts,
keys, credits, caps, usage against the table)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from afk.billing.money import MoneyError, format_usd, parse_usd, to_pico
from afk.errors import GatewayError
from afk.settings import Settings
from afk.store.accounts import _iso

DEMO_CREDITS_USD = "10"


# ---------------------------------------------------------------- afk dev
def run_dev(args: argparse.Namespace) -> int:
    import uvicorn

    from afk.gateway import Gateway
    from afk.http.apps import create_app
    from afk.store import Dynamo, Store, create_table

    settings = Settings.from_env()
    embedded = None
    if settings.dynamodb_endpoint is None:
        from afk.local.dynamodb import EmbeddedDynamoDB

        embedded = EmbeddedDynamoDB().start()
        settings = replace(settings, dynamodb_endpoint=embedded.endpoint)
        print(f"embedded DynamoDB (moto) at {embedded.endpoint}", flush=True)
    store = Store(Dynamo(settings.table, endpoint_url=settings.dynamodb_endpoint,
                         region=settings.region))
    if create_table(store.dynamo.client, settings.table):
        print(f"created table {settings.table}", flush=True)
    gateway = Gateway(settings, store=store)
    if not args.no_seed:
        account = store.accounts.create("Demo", credits=to_pico(parse_usd(DEMO_CREDITS_USD)))
        key, _ = store.keys.create(account.id, "demo")
        print(f"demo account {account.id} with ${DEMO_CREDITS_USD} of credits", flush=True)
        print(f"AFK_API_KEY={key}", flush=True)
    print(f"afk gateway on http://{args.host}:{args.port}  (dashboard: /, API: /v1)",
          flush=True)
    try:
        config = uvicorn.Config(create_app("local", gateway), host=args.host, port=args.port,
                                log_level=args.log_level, access_log=args.log_level == "debug")
        _dev_logging(args.log_level)  # after uvicorn configured (and replaced) its handlers
        uvicorn.Server(config).run()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _dev_logging(level: str) -> None:
    """The gateway's own log lines on stderr next to uvicorn's, every handler
    redacting (the app's startup redoes this for whatever a server installs later)."""
    import logging

    from afk import observability

    root = logging.getLogger()
    if not root.handlers:  # else Python's last-resort handler, which nothing filters
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        root.addHandler(handler)
    logging.getLogger("afk").setLevel(level.upper())
    observability.install_redaction()


# ---------------------------------------------------------------- afk admin
class AdminError(Exception):
    pass


def _store() -> Any:
    from afk.store import Dynamo, Store

    settings = Settings.from_env()
    return Store(Dynamo(settings.table, endpoint_url=settings.dynamodb_endpoint,
                        region=settings.region))


def _usd(value: str, what: str, *, allow_zero: bool = True) -> int:
    try:
        return to_pico(parse_usd(value, what=what, allow_zero=allow_zero))
    except MoneyError as exc:
        raise AdminError(str(exc)) from None


def _rpm(value: str | None) -> int | None:
    if value is None or value.lower() == "none":
        return None
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise AdminError(f"--rpm must be an integer from 1 to 1000000, or none (got {value!r})")
    return int(value)


def _markup(value: str) -> Any:
    from afk.catalog import CatalogError, parse_markup_percent

    try:
        return parse_markup_percent(value, "--markup")
    except CatalogError as exc:
        raise AdminError(str(exc)) from None


def _catalog_model(model: str) -> str:
    from afk.catalog import Catalog

    if Catalog.load(Settings.from_env().catalog_path).get(model) is None:
        raise AdminError(f"unknown model {model!r} (not in the catalog)")
    return model


def _account_json(store: Any, account_id: str) -> dict[str, Any]:
    """The account's money as the ledger has it: `balance` (credit not charged) =
    `available` (not leased) + `held` (in open credit leases, listed)."""
    statement = store.leases.statement(account_id)
    account = statement.account
    return {"id": account.id, "name": account.name, "currency": account.currency,
            "balance": format_usd(statement.remaining), "held": format_usd(statement.held),
            "available": format_usd(account.balance),
            "open_leases": [{"id": lease.id, "granted": format_usd(lease.granted),
                             "owner": lease.owner, "expires": _iso(lease.expires_ms),
                             "reconcile_after": _iso(lease.reconcile_ms)}
                            for lease in statement.leases],
            "caps": {m: format_usd(c) for m, c in sorted(account.caps.items())},
            "markups": {m: str(p) for m, p in sorted(account.markups.items())},
            "charged": format_usd(statement.charged), "credited": format_usd(account.credited),
            "created": account.created}


def _key_json(record: Any) -> dict[str, Any]:
    return {"id": record.key_id, "account": record.account_id, "name": record.name,
            "prefix": record.prefix, "created": record.created,
            "last_used": record.last_used, "status": record.status, "rpm": record.rpm}


def run_admin(args: argparse.Namespace) -> Any:
    store = _store()
    match (args.group, args.action):
        case ("accounts", "create"):
            credits = _usd(args.credits, "credits")
            return _account_json(store, store.accounts.create(args.name, credits=credits).id)
        case ("accounts", "show"):
            return _account_json(store, args.account)
        case ("keys", "create"):
            key, record = store.keys.create(args.account, args.name, _rpm(args.rpm))
            return {**_key_json(record), "key": key}
        case ("keys", "set-rpm"):
            return _key_json(store.keys.set_rpm(args.key_id, _rpm(args.rpm)))
        case ("keys", "list"):
            store.accounts.require(args.account)
            return [_key_json(k) for k in store.keys.list(args.account)]
        case ("keys", "revoke"):
            return _key_json(store.keys.revoke(args.key_id))
        case ("credits", "add"):
            amount = _usd(args.usd, "credit", allow_zero=False)
            store.accounts.add_credits(args.account, amount, credit_id=args.idempotency_key)
            return _account_json(store, args.account)
        case ("prices", "set"):
            percent = _markup(args.markup)
            model = args.model if args.model == "*" else _catalog_model(args.model)
            store.accounts.set_markup(args.account, model, percent)
            return _account_json(store, args.account)
        case ("prices", "clear"):
            model = args.model if args.model == "*" else _catalog_model(args.model)
            store.accounts.clear_markup(args.account, model)
            return _account_json(store, args.account)
        case ("caps", "set"):
            cap = _usd(args.usd, "cap", allow_zero=False)
            store.accounts.set_cap(args.account, _catalog_model(args.model), cap)
            return _account_json(store, args.account)
        case ("caps", "clear"):
            store.accounts.clear_cap(args.account, _catalog_model(args.model))
            return _account_json(store, args.account)
        case ("usage", _):
            store.accounts.require(args.account)
            from afk.http.account import render_entry

            return [render_entry(e) for e in store.ledger.entries(args.account,
                                                                  limit=args.limit)]
    raise AdminError("unknown command")


def _print_human(result: Any) -> None:
    rows = result if isinstance(result, list) else [result]
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items() if v not in (None, [], {})))
    if not rows:
        print("(none)")


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="afk", description="afk gateway")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run every function locally with an embedded DynamoDB")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--no-seed", action="store_true", help="do not create a demo account")
    dev.add_argument("--log-level", default="info",
                     choices=["critical", "error", "warning", "info", "debug"])

    admin = commands.add_parser("admin", help="manage accounts, keys, credits and caps "
                                              "(table: $AFK_TABLE at $AFK_DYNAMODB_ENDPOINT)")
    groups = admin.add_subparsers(dest="group", required=True)

    def action(group: argparse._SubParsersAction, name: str, help_: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help_)
        sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    accounts = groups.add_parser("accounts").add_subparsers(dest="action", required=True)
    a = action(accounts, "create", "create an account")
    a.add_argument("--name", required=True)
    a.add_argument("--credits", default="0", help="opening credit in USD, e.g. 10.00")
    a = action(accounts, "show", "balance, open holds and caps")
    a.add_argument("--account", required=True)

    keys = groups.add_parser("keys").add_subparsers(dest="action", required=True)
    a = action(keys, "create", "create a key (printed once)")
    a.add_argument("--account", required=True)
    a.add_argument("--name", default="default")
    a.add_argument("--rpm", default=None, help="requests per minute allowed (default: no limit)")
    a = action(keys, "set-rpm", "set or lift (--rpm none) a key's requests-per-minute limit")
    a.add_argument("--key-id", required=True)
    a.add_argument("--rpm", required=True)
    a = action(keys, "list", "list an account's keys")
    a.add_argument("--account", required=True)
    a = action(keys, "revoke", "revoke a key")
    a.add_argument("--key-id", required=True)

    credits = groups.add_parser("credits").add_subparsers(dest="action", required=True)
    a = action(credits, "add", "add credits")
    a.add_argument("--account", required=True)
    a.add_argument("--usd", required=True)
    a.add_argument("--idempotency-key", default=None,
                   help="replaying a credit with the same key adds it once")

    caps = groups.add_parser("caps").add_subparsers(dest="action", required=True)
    a = action(caps, "set", "set a model's per-call cap")
    a.add_argument("--account", required=True)
    a.add_argument("--model", required=True)
    a.add_argument("--usd", required=True)
    a = action(caps, "clear", "clear a model's per-call cap")
    a.add_argument("--account", required=True)
    a.add_argument("--model", required=True)

    prices = groups.add_parser("prices", help="an account's negotiated prices").add_subparsers(
        dest="action", required=True)
    a = action(prices, "set", "price a model (or every model, --model '*') for one account "
                              "at a markup over provider cost, replacing the catalog's price")
    a.add_argument("--account", required=True)
    a.add_argument("--model", default="*")
    a.add_argument("--markup", required=True, help='percent over provider cost, e.g. "15" '
                                                   'or "-5" (below cost)')
    a = action(prices, "clear", "back to the catalog's price")
    a.add_argument("--account", required=True)
    a.add_argument("--model", default="*")

    usage = groups.add_parser("usage", help="ledger entries, newest first")
    usage.set_defaults(action="list")
    usage.add_argument("--account", required=True)
    usage.add_argument("--limit", type=int, default=50)
    usage.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        return run_dev(args)
    try:
        result = run_admin(args)
    except (AdminError, GatewayError) as exc:
        message = exc.message if isinstance(exc, GatewayError) else str(exc)
        if getattr(args, "json", False):
            print(json.dumps({"error": message}), file=sys.stderr)
        else:
            print(f"afk: error: {message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_human(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
