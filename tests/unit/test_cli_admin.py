"""afk.cli `afk admin`: run in-process against an embedded DynamoDB."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from afk import admin, cli
from afk.billing.wallet import Wallet
from afk.cli import main
from afk.store import Dynamo, Hold, Settlement, Store, create_table


@pytest.fixture(scope="module")
def table(embedded_dynamodb: str) -> str:
    name = f"afk-cli-{secrets.token_hex(4)}"
    create_table(Dynamo(name, endpoint_url=embedded_dynamodb).client, name)
    return name


@pytest.fixture(scope="module")
def direct_store(table: str, embedded_dynamodb: str) -> Store:
    """The same table, read directly, to check what the CLI wrote."""
    return Store(Dynamo(table, endpoint_url=embedded_dynamodb))


@pytest.fixture
def store(table: str, embedded_dynamodb: str, direct_store: Store,
          monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("AFK_TABLE", table)
    monkeypatch.setenv("AFK_DYNAMODB_ENDPOINT", embedded_dynamodb)
    monkeypatch.delenv("AFK_CATALOG", raising=False)
    monkeypatch.setattr(admin, "_store", _store_per_environment)
    return direct_store


_REAL_STORE = admin._store
_STORES: dict[tuple[str | None, str | None], Any] = {}


def _store_per_environment(where: admin.Target) -> Any:
    """The CLI's own `_store()` (so AFK_TABLE / AFK_DYNAMODB_ENDPOINT are read as
    in production), built once per environment: a boto3 client costs ~0.3 s."""
    env = (os.environ.get("AFK_TABLE"), os.environ.get("AFK_DYNAMODB_ENDPOINT"))
    if env not in _STORES:
        _STORES[env] = _REAL_STORE(where)
    return _STORES[env]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["admin", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def account(store: Store, capsys: pytest.CaptureFixture[str]) -> str:
    return run_json(capsys, "accounts", "create", "--name", "acme", "--credits", "5")["id"]


def test_accounts_create_json(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    created = run_json(capsys, "accounts", "create", "--name", "acme", "--credits", "5")
    assert created["balance"] == "5.00"
    assert created["credited"] == "5.00" and created["charged"] == "0.00"
    assert created["name"] == "acme" and created["id"].startswith("acct_")
    assert store.accounts.require(created["id"]).balance == 5 * 10**12
    shown = run_json(capsys, "accounts", "show", "--account", created["id"])
    assert shown["balance"] == "5.00" and shown["open_leases"] == []
    assert shown["held"] == "0.00" and shown["available"] == "5.00"


def test_accounts_create_fractional_credits(store: Store,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    created = run_json(capsys, "accounts", "create", "--name", "x", "--credits", "0.0000003")
    assert created["balance"] == "0.0000003"


def test_accounts_create_bad_credits(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "accounts", "create", "--name", "x", "--credits", "1.5e")
    assert code == 1 and out == ""
    assert "credits" in err


def test_keys_create_prints_key_once(account: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keys", "create", "--account", account, "--name", "laptop")
    assert code == 0, err
    keys = re.findall(r"afk-[0-9A-Za-z]{20,}", out)
    assert len(keys) == 1
    assert out.count(keys[0]) == 1
    code, listed, _ = run(capsys, "keys", "list", "--account", account)
    assert code == 0 and "laptop" in listed
    assert keys[0] not in listed


def test_keys_create_json_and_list(store: Store, account: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    created = run_json(capsys, "keys", "create", "--account", account, "--name", "ci")
    assert created["key"].startswith("afk-")
    assert store.keys.lookup(created["key"]).account_id == account
    listed = run_json(capsys, "keys", "list", "--account", account)
    assert [(k["id"], k["name"], k["status"]) for k in listed] == [
        (created["id"], "ci", "active")]
    assert "key" not in listed[0]
    revoked = run_json(capsys, "keys", "revoke", "--key-id", created["id"])
    assert revoked["status"] == "revoked"
    assert store.keys.lookup(created["key"]).status == "revoked"


def test_keys_create_unknown_account(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keys", "create", "--account", "acct_nope")
    assert code == 1 and "afk-" not in out
    assert "acct_nope" in err


def test_credits_add(account: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "credits", "add", "--account", account, "--usd", "2.50")
    assert result["balance"] == "7.50" and result["credited"] == "7.50"


def test_credits_add_idempotent(account: str, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):
        result = run_json(capsys, "credits", "add", "--account", account, "--usd", "1",
                          "--idempotency-key", "evt-1")
    assert result["balance"] == "6.00"


def test_credits_add_reused_key_with_other_terms_fails(
        account: str, store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "credits", "add", "--account", account, "--usd", "1",
             "--idempotency-key", "evt-strict")
    code, out, err = run(capsys, "credits", "add", "--account", account, "--usd", "2",
                         "--idempotency-key", "evt-strict")
    assert code == 1 and out == "" and "evt-strict" in err and "$1.00" in err
    assert store.accounts.require(account).balance == 6 * 10**12


def test_prices_set_and_clear(account: str, store: Store,
                              capsys: pytest.CaptureFixture[str]) -> None:
    shown = run_json(capsys, "prices", "set", "--account", account, "--markup", "-5")
    assert shown["markups"] == {"*": "-5"}
    shown = run_json(capsys, "prices", "set", "--account", account, "--model", "echo",
                     "--markup", "12.5")
    assert shown["markups"] == {"*": "-5", "echo": "12.5"}
    assert store.accounts.require(account).markups["echo"] == Decimal("12.5")
    code, _, err = run(capsys, "prices", "set", "--account", account, "--markup", "-100")
    assert code == 1 and "above -100" in err
    code, _, err = run(capsys, "prices", "set", "--account", account, "--model", "nope",
                       "--markup", "1")
    assert code == 1 and "nope" in err
    shown = run_json(capsys, "prices", "clear", "--account", account)
    assert shown["markups"] == {"echo": "12.5"}


@pytest.mark.parametrize("usd", ["0", "-1", "abc", "0.05f"])
def test_credits_add_bad_amount(account: str, capsys: pytest.CaptureFixture[str],
                                usd: str) -> None:
    code, out, err = run(capsys, "credits", "add", "--account", account, "--usd", usd)
    assert code == 1 and out == ""
    assert err.startswith("afk: error: credit")


def test_caps_set(store: Store, account: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "caps", "set", "--account", account, "--model", "echo",
                      "--usd", "0.05")
    assert result["caps"] == {"echo": "0.05"}
    assert store.accounts.require(account).caps == {"echo": 50_000_000_000}
    cleared = run_json(capsys, "caps", "clear", "--account", account, "--model", "echo")
    assert cleared["caps"] == {}


@pytest.mark.parametrize(("usd", "words"), [
    ("abc", ("cap", "'abc'", "not a decimal")),
    ("-1", ("cap", "greater than zero")),
    ("0", ("cap", "greater than zero")),
    ("0.0000000000001", ("cap", "decimal places")),
])
def test_caps_set_bad_amount(store: Store, account: str, capsys: pytest.CaptureFixture[str],
                             usd: str, words: tuple[str, ...]) -> None:
    code, out, err = run(capsys, "caps", "set", "--account", account, "--model", "echo",
                         "--usd", usd)
    assert code == 1 and out == ""
    assert err.startswith("afk: error:")
    for word in words:
        assert word in err
    assert store.accounts.require(account).caps == {}


def test_caps_set_bad_amount_json_error(account: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "caps", "set", "--account", account, "--model", "echo",
                         "--usd", "abc", "--json")
    assert code == 1 and out == ""
    assert "abc" in json.loads(err)["error"]


def test_caps_set_unknown_model(store: Store, account: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "caps", "set", "--account", account, "--model", "gpt-99",
                       "--usd", "1")
    assert code == 1
    assert "gpt-99" in err and "catalog" in err
    assert store.accounts.require(account).caps == {}


def test_caps_set_unknown_account(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "caps", "set", "--account", "acct_nope", "--model", "echo",
                       "--usd", "1")
    assert code == 1
    assert "acct_nope" in err


def test_accounts_show_unknown_account(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "accounts", "show", "--account", "acct_nope")
    assert code == 1 and out == "" and "acct_nope" in err


def test_usage_json_lists_entries(store: Store, account: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    hold = Hold(id="req_cli_usage", account_id=account, amount=10**9, model="echo",
                endpoint="/v1/chat/completions", key_id="", created_ms=int(time.time() * 1000))
    wallet = Wallet(store.leases, owner="cli-test")
    lease = wallet.reserve(hold)
    wallet.settle(replace(hold, lease_id=lease.id),
                  Settlement(charge=300_000, input_tokens=3, output_tokens=4))
    entries = run_json(capsys, "usage", "--account", account)
    assert [e["type"] for e in entries] == ["charge", "credit"]
    charge, credit = entries
    assert (charge["request_id"], charge["cost"], charge["model"]) == (
        "req_cli_usage", "0.0000003", "echo")
    assert (charge["input_tokens"], charge["output_tokens"]) == (3, 4)
    assert credit["credit"] == "5.00" and credit["cost"] == "0.00"
    assert len(run_json(capsys, "usage", "--account", account, "--limit", "1")) == 1


def test_usage_unknown_account(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "usage", "--account", "acct_nope")
    assert code == 1 and "acct_nope" in err


def test_human_output(account: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "accounts", "show", "--account", account)
    assert code == 0
    assert re.search(rf"^id +{account}$", out, re.M)
    assert re.search(r"^balance +5\.00$", out, re.M)
    assert "{" not in out and "[" not in out  # no Python reprs


def test_environment_names_the_table(account: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AFK_TABLE", f"afk-missing-{secrets.token_hex(3)}")
    code, out, err = run(capsys, "accounts", "show", "--account", account)
    assert code == 1 and out == ""
    missing = os.environ["AFK_TABLE"]
    assert f"table {missing!r} at {os.environ['AFK_DYNAMODB_ENDPOINT']}" in err
    assert "does not exist" in err and "AFK_TABLE" in err
    assert "Nothing was charged" not in err  # not the customer's wording


def test_keys_scope_and_operator_limits(store: Store, account: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    created = run_json(capsys, "keys", "create", "--account", account, "--name", "ci",
                       "--rpm", "60", "--spend-per-day", "2.50")
    assert created["scope"] == "inference"
    assert created["operator_limits"]["rpm"] == 60
    assert created["limits"]["spend_per_day"] == "2.50"
    manager = run_json(capsys, "keys", "create", "--account", account, "--scope", "manage")
    assert manager["scope"] == "manage" and manager["limits"]["rpm"] is None
    limited = run_json(capsys, "keys", "limit", "--key-id", created["id"], "--rpm", "none",
                       "--models", "echo,echo-large", "--expires-at", "2031-01-01T00:00:00Z")
    assert limited["operator_limits"]["rpm"] is None
    assert limited["operator_limits"]["spend_per_day"] == "2.50"  # untouched
    assert limited["limits"]["models"] == ["echo", "echo-large"]
    record, _ = store.keys.get(created["id"])
    assert record.operator.expires_ms is not None and record.own.rpm is None


@pytest.mark.parametrize(("flags", "words"), [
    (("--rpm", "fast"), ("--rpm", "integer")),
    (("--spend-per-month", "1e3x"), ("--spend-per-month", "decimal")),
    (("--models", "gpt-99"), ("gpt-99", "catalog")),
    ((), ("--rpm", "--spend-per-day")),
])
def test_keys_limit_bad_flags(store: Store, account: str, capsys: pytest.CaptureFixture[str],
                              flags: tuple[str, ...], words: tuple[str, ...]) -> None:
    key_id = run_json(capsys, "keys", "create", "--account", account)["id"]
    code, out, err = run(capsys, "keys", "limit", "--key-id", key_id, *flags)
    assert code == 1 and out == ""
    for word in words:
        assert word in err


def test_accounts_list_reads_as_a_table(store: Store, account: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "accounts", "list")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "NAME", "AVAILABLE", "HELD", "CREATED"]
    mine = [row for row in rows if row.startswith(account)]
    assert len(mine) == 1 and mine[0].split()[1:3] == ["acme", "5.00"]
    assert account in [a["id"] for a in run_json(capsys, "accounts", "list")]


def test_key_list_text_has_no_python_reprs(store: Store, account: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "keys", "create", "--account", account, "--name", "ci", "--rpm", "5",
             "--models", "echo")
    code, out, _ = run(capsys, "keys", "list", "--account", account)
    assert code == 0
    assert "{" not in out and "None" not in out and "'" not in out
    assert "rpm=5" in out and "models=echo" in out
    listed = run_json(capsys, "keys", "list", "--account", account)
    assert all(k["spend"] == {"today": "0.00", "this_month": "0.00"} for k in listed)


def _subcommands(parser: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    import argparse

    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append(((*path, name), helps.get(name) or ""))
                found += _subcommands(sub, (*path, name))
    return found


def test_admin_help_describes_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [c for c in _subcommands(cli.build_parser()) if c[0][0] == "admin"]
    assert len(commands) >= 14
    assert all(len(help_) > 10 for _, help_ in commands), commands
    for path, help_ in commands:
        if len(path) < 2:
            continue
        with pytest.raises(SystemExit):
            main([*path[:-1], "--help"])
        assert help_ in " ".join(capsys.readouterr().out.split())
