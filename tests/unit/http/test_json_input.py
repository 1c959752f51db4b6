"""The strict body parser on its own: exact depth whatever the strings hold."""

from __future__ import annotations

import json

import pytest

from afk.errors import InvalidRequest
from afk.http.json_input import MAX_DEPTH, parse_json


def nested(levels: int, inner: str = "0") -> bytes:
    return ("[" * levels + inner + "]" * levels).encode()


@pytest.mark.parametrize("levels, ok", [(MAX_DEPTH, True), (MAX_DEPTH + 1, False),
                                        (100_000, False)])
def test_depth_limit_is_exact(levels: int, ok: bool):
    if ok:
        assert parse_json(nested(levels)) is not None
    else:
        with pytest.raises(InvalidRequest, match="levels deep"):
            parse_json(nested(levels))


@pytest.mark.parametrize("inner", [
    json.dumps("[" * 1000),                 # brackets in a string do not nest
    json.dumps("]" * 1000 + "[" * 1000),    # nor unbalance anything
    json.dumps('\\"[[[' * 300),             # escaped quotes and backslashes inside
    json.dumps({"k[{": "\\" * 7 + '"' + "{" * 400}),
])
def test_strings_never_count_towards_depth(inner: str):
    assert parse_json(nested(MAX_DEPTH - 2, inner))


def test_a_key_twice_anywhere_is_refused_and_names_the_key():
    with pytest.raises(InvalidRequest, match="'b' appears twice"):
        parse_json(b'{"a": [{"b": 1, "c": 2, "b": 3}]}')
    assert parse_json(b'{"a": {"b": 1}, "c": {"b": 2}}')  # the same key in two objects


@pytest.mark.parametrize("raw", [b'"\\ud800"', b'["\\udc00x"]', b'{"\\ud83d": 1}',
                                 b'"\\ud83d\\ud83d"'])
def test_unpaired_surrogates_are_refused(raw: bytes):
    with pytest.raises(InvalidRequest, match="surrogate"):
        parse_json(raw)


def test_paired_surrogates_and_escaped_backslashes_pass():
    assert parse_json(b'"\\ud83d\\ude00"') == "\U0001F600"
    assert parse_json(b'"\\\\ud800"') == "\\ud800"  # an escaped backslash, then text


@pytest.mark.parametrize("raw", [b"\xff{}", b'"\xed\xa0\x80"'])  # not UTF-8; encoded surrogate
def test_invalid_utf8_is_refused(raw: bytes):
    with pytest.raises(InvalidRequest, match="not valid UTF-8"):
        parse_json(raw)
