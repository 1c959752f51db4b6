"""The `afk` command: `afk dev` (everything locally, local/devserver.py) and
`afk admin` (accounts, keys, limits, credits, caps, usage: admin.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from afk.errors import GatewayError, StoreUnavailable

ADMIN_STORE = ("works on $AFK_TABLE at $AFK_DYNAMODB_ENDPOINT when either is set; else on "
               "the store of an `afk dev` running from this directory (.afk/dev.json); else "
               "on the table `afk` on AWS")


def _limit_arguments(parser: argparse.ArgumentParser, *, lift: bool) -> None:
    none = " (none lifts it)" if lift else ""
    parser.add_argument("--rpm", help=f"requests per minute{none}")
    parser.add_argument("--spend-per-day", dest="spend_per_day", metavar="USD",
                        help=f"spend per UTC day, e.g. 5.00{none}")
    parser.add_argument("--spend-per-month", dest="spend_per_month", metavar="USD",
                        help=f"spend per UTC calendar month{none}")
    parser.add_argument("--models", metavar="M1,M2",
                        help=f"the only models the key may call, comma-separated{none}")
    parser.add_argument("--expires-at", dest="expires_at", metavar="ISO",
                        help=f"when the key stops working, e.g. 2027-01-31T00:00:00Z{none}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="afk", description="afk gateway")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev", help="run every endpoint locally with an embedded DynamoDB",
        description="Serve every endpoint and the dashboard on one port, with an embedded "
                    "DynamoDB (a fresh, empty one each time unless --data-dir), a demo "
                    "account and its key.")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--no-seed", action="store_true", help="do not create a demo account")
    dev.add_argument("--data-dir", metavar="DIR",
                     help="keep the embedded store in DIR across restarts (default: a fresh "
                          "store every time)")
    dev.add_argument("--log-level", default="info",
                     choices=["critical", "error", "warning", "info", "debug"])

    admin = commands.add_parser(
        "admin", help="manage accounts, keys, limits, credits, caps; read usage",
        description=f"Operator commands on the account store. `afk admin` {ADMIN_STORE}. "
                    "Every command takes --json; amounts are USD decimal strings.")
    groups = admin.add_subparsers(dest="group", required=True, metavar="GROUP")

    def group(name: str, help_: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        sub = groups.add_parser(name, help=help_, description=help_)
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
               help_: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_, description=help_)
        sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    accounts = group("accounts", "create, list and show accounts")
    a = action(accounts, "create", "create an account with an opening credit")
    a.add_argument("--name", required=True)
    a.add_argument("--credits", default="0", help="opening credit in USD, e.g. 10.00")
    action(accounts, "list", "every account: id, name, available and held credit")
    a = action(accounts, "show", "an account's balance, held credit, open leases and caps")
    a.add_argument("--account", required=True)

    keys = group("keys", "create, list, limit and revoke API keys")
    a = action(keys, "create", "create a key (printed once), optionally with operator limits")
    a.add_argument("--account", required=True)
    a.add_argument("--name", default="default")
    a.add_argument("--scope", choices=["inference", "manage"], default="inference",
                   help="inference: call models, read its own usage (default); manage: also "
                        "keys, caps, usage, top-ups (the dashboard's sign-in key)")
    _limit_arguments(a, lift=False)
    a = action(keys, "limit", "set or lift operator limits on a key: no customer key can "
                              "change them (a customer's own limits can only be stricter)")
    a.add_argument("--key-id", required=True)
    _limit_arguments(a, lift=True)
    a = action(keys, "list", "an account's keys with their scope and limits")
    a.add_argument("--account", required=True)
    a = action(keys, "revoke", "revoke a key for good")
    a.add_argument("--key-id", required=True)

    credits = group("credits", "add credits to an account")
    a = action(credits, "add", "add credits (a ledger entry)")
    a.add_argument("--account", required=True)
    a.add_argument("--usd", required=True)
    a.add_argument("--idempotency-key", default=None,
                   help="replaying a credit with the same key adds it once")

    caps = group("caps", "per-model per-call caps of an account")
    a = action(caps, "set", "set a model's per-call cap (max tokens are lowered to fit it)")
    a.add_argument("--account", required=True)
    a.add_argument("--model", required=True)
    a.add_argument("--usd", required=True)
    a = action(caps, "clear", "clear a model's per-call cap")
    a.add_argument("--account", required=True)
    a.add_argument("--model", required=True)

    prices = group("prices", "an account's negotiated prices (markups over provider cost)")
    a = action(prices, "set", "price a model (or every model, --model '*') for one account "
                              "at a markup over provider cost, replacing the catalog's price")
    a.add_argument("--account", required=True)
    a.add_argument("--model", default="*")
    a.add_argument("--markup", required=True, help='percent over provider cost, e.g. "15" '
                                                   'or "-5" (below cost)')
    a = action(prices, "clear", "back to the catalog's price for a model (or every model)")
    a.add_argument("--account", required=True)
    a.add_argument("--model", default="*")

    report = groups.add_parser("report", help="revenue, provider cost and margin (exact), "
                                              "from the usage rollups")
    report.set_defaults(action="report")
    report.add_argument("--by", choices=["day", "model", "account"], default="day")
    report.add_argument("--since", default=None, help="first UTC day (default: 29 days ago)")
    report.add_argument("--until", default=None, help="last UTC day (default: today)")
    report.add_argument("--json", action="store_true", help="print JSON")

    usage = groups.add_parser("usage", help="an account's ledger entries, newest first",
                              description="an account's ledger entries, newest first")
    usage.set_defaults(action="list")
    usage.add_argument("--account", required=True)
    usage.add_argument("--limit", type=int, default=50)
    usage.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        from afk.local.devserver import run_dev

        return run_dev(args)
    from afk import admin

    where = admin.target()
    try:
        result = admin.run(args, admin._store(where))
    except (admin.AdminError, GatewayError) as exc:
        if isinstance(exc, StoreUnavailable):
            message = admin.store_error(where, exc)
        else:
            message = exc.message if isinstance(exc, GatewayError) else str(exc)
        if args.json:
            print(json.dumps({"error": message}), file=sys.stderr)
        else:
            print(f"afk: error: {message}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else admin.render_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
