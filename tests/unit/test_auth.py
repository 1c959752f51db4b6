"""afk.auth on its own: the key from every header style, and the key cache (what
is read from the store, when, and what a revocation or a stale refresh does), on
an injected clock and a store that counts its reads."""

from __future__ import annotations

import types
from dataclasses import replace

import pytest

from afk import auth
from afk.auth import Authenticator, TTLCache, key_from
from afk.errors import AuthenticationFailed, PermissionDenied
from afk.limits import Limits
from afk.store.keys import KeyRecord, new_key

TTL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(auth, "time", types.SimpleNamespace(monotonic=clock.monotonic,
                                                            time=clock.time))
    return clock


class Keys:
    """The store's key lookups, counted."""

    def __init__(self) -> None:
        self.records: dict[str, KeyRecord] = {}
        self.reads: list[str] = []

    def add(self, **fields: object) -> str:
        key = new_key()
        self.records[key] = replace(KeyRecord(
            key_id=f"key_{len(self.records)}", account_id="acct_1", name="k", prefix=key[:12],
            created="2026-12-03T00:00:00Z", status="active"), **fields)
        return key

    def lookup(self, key: str) -> KeyRecord | None:
        self.reads.append(key)
        return self.records.get(key)


class Jobs:
    """A Background that runs nothing until told to."""

    def __init__(self) -> None:
        self.jobs: list = []

    def submit(self, key: object, job) -> bool:
        self.jobs.append(job)
        return True


@pytest.mark.parametrize(("headers", "query"), [
    ({"authorization": "Bearer K"}, {}), ({"authorization": "bearer  K "}, {}),
    ({"x-api-key": "K"}, {}), ({"x-goog-api-key": " K"}, {}), ({}, {"key": "K"}),
    ({"authorization": "Bearer K", "x-api-key": "other"}, {"key": "third"}),
])
def test_the_key_is_found_in_every_style(headers: dict, query: dict) -> None:
    assert key_from(headers, query) == "K"


@pytest.mark.parametrize("headers", [{}, {"authorization": "Basic K"},
                                     {"authorization": "Bearer "}, {"x-api-key": ""}])
def test_no_key_is_none(headers: dict) -> None:
    assert key_from(headers, {}) is None


def test_a_known_key_is_read_once_per_ttl(clock: Clock) -> None:
    keys = Keys()
    key = keys.add()
    authenticator = Authenticator(keys, TTL)  # type: ignore[arg-type]
    first = authenticator.authenticate(key)
    clock.now += TTL - 1
    assert authenticator.authenticate(key) == first
    assert keys.reads == [key]
    clock.now += 2  # expired: read again
    authenticator.authenticate(key)
    assert keys.reads == [key, key]
    assert (first.account_id, first.key_id) == ("acct_1", "key_0")


def test_unknown_and_malformed_keys_are_401_and_cost_one_read_at_most(clock: Clock) -> None:
    keys = Keys()
    authenticator = Authenticator(keys, TTL)  # type: ignore[arg-type]
    unknown = new_key()
    for _ in range(3):
        with pytest.raises(AuthenticationFailed) as caught:
            authenticator.authenticate(unknown)
        assert caught.value.code == "invalid_api_key"
        with pytest.raises(AuthenticationFailed):
            authenticator.cached(unknown)  # the cached absence is a 401 too, without I/O
    for junk in ("afk-short", "sk-" + "a" * 48, "afk-" + "!" * 48, "afk-" + "é" * 48,
                 "afk-" + "²" * 48):  # letters and digits, ASCII only
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate(junk)
        assert authenticator.cached(junk) is None
    with pytest.raises(AuthenticationFailed) as missing:
        authenticator.authenticate(None)
    assert missing.value.code == "missing_api_key"
    assert keys.reads == [unknown]


def test_revoked_and_expired_keys_are_401_saying_so(clock: Clock) -> None:
    keys = Keys()
    revoked = keys.add(status="revoked")
    expired = keys.add(own=Limits(expires_ms=int(clock.time() * 1000) - 1))
    authenticator = Authenticator(keys, TTL)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationFailed) as caught:
        authenticator.authenticate(revoked)
    assert caught.value.code == "revoked_api_key"
    with pytest.raises(AuthenticationFailed) as caught:
        authenticator.authenticate(expired)
    assert caught.value.code == "expired_api_key"


def test_cached_is_no_io_and_refreshes_in_the_background_after_half_the_ttl(clock: Clock):
    keys, jobs = Keys(), Jobs()
    key = keys.add()
    authenticator = Authenticator(keys, TTL, jobs)  # type: ignore[arg-type]
    assert authenticator.cached(key) is None  # not known yet: the caller must authenticate
    authenticator.authenticate(key)
    clock.now += TTL / 2 - 1
    assert authenticator.cached(key) is not None and jobs.jobs == []
    clock.now += 2
    assert authenticator.cached(key) is not None and len(jobs.jobs) == 1
    keys.records[key] = replace(keys.records[key], status="revoked")
    jobs.jobs.pop()()  # the refresh reads the revocation...
    with pytest.raises(AuthenticationFailed):  # ...and the next call sees it
        authenticator.cached(key)
    assert keys.reads == [key, key]


def test_a_refresh_read_before_a_forget_does_not_bring_the_old_record_back(clock: Clock):
    keys, jobs = Keys(), Jobs()
    key = keys.add()
    authenticator = Authenticator(keys, TTL, jobs)  # type: ignore[arg-type]
    authenticator.authenticate(key)
    clock.now += TTL / 2 + 1
    authenticator.cached(key)
    [refresh] = jobs.jobs
    real_lookup = keys.lookup

    def lookup_then_revoke(k: str) -> KeyRecord | None:
        record = real_lookup(k)  # read while active...
        keys.records[key] = replace(keys.records[key], status="revoked")
        authenticator.forget()   # ...revoked by this process before the read lands
        return record

    keys.lookup = lookup_then_revoke  # type: ignore[method-assign]
    refresh()
    keys.lookup = real_lookup  # type: ignore[method-assign]
    assert authenticator.cached(key) is None  # not the stale active record
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate(key)


def test_the_cache_drops_its_oldest_entry_when_full(clock: Clock) -> None:
    cache: TTLCache[int] = TTLCache(TTL, max_entries=3)
    for i in range(4):
        cache.put(f"k{i}", i)
    assert [cache.get(f"k{i}") for i in range(4)] == [None, 1, 2, 3]
    assert len(cache) == 3


def test_an_inference_key_cannot_manage(clock: Clock) -> None:
    keys = Keys()
    inference = Authenticator(keys, TTL).authenticate(keys.add(scope="inference"))  # type: ignore[arg-type]
    inference.require("inference")
    with pytest.raises(PermissionDenied) as caught:
        inference.require("manage")
    assert caught.value.code == "insufficient_scope"
    Authenticator(keys, TTL).authenticate(keys.add(scope="manage")).require("manage")  # type: ignore[arg-type]
