"""Every dialect package is a whole codec (afk.dialects.base.Codec): mypy checks the
types; this checks, at run time, that nothing is missing (a member a dialect lacks
would otherwise surface only on the route or stream that needs it)."""

from __future__ import annotations

from types import ModuleType

import pytest

from afk.dialects import anthropic, base, gemini, openai_chat, openai_responses
from afk.errors import RateLimited

DIALECTS = [anthropic, gemini, openai_chat, openai_responses]


def _members(protocol: type) -> set[str]:
    names = {n for c in protocol.__mro__ if c.__module__ == base.__name__
             for n in vars(c) if not n.startswith("_")}
    return names - {"register"}


@pytest.mark.parametrize("codec", DIALECTS, ids=lambda m: m.__name__)
def test_every_dialect_has_every_codec_member(codec: ModuleType) -> None:
    assert _members(base.Codec) - set(dir(codec)) == set()
    decoder = codec.StreamDecoder()
    assert _members(base.Decoder) - set(dir(decoder)) == set()
    encoder = codec.StreamEncoder(model="m", include_usage=False)
    assert _members(base.Encoder) - set(dir(encoder)) == set()


@pytest.mark.parametrize("codec", DIALECTS, ids=lambda m: m.__name__)
def test_a_failure_before_anything_was_relayed_is_the_dialects_stream_error(
        codec: ModuleType) -> None:
    error = RateLimited("Slow down.")
    expected = codec.render_stream_error(error)
    failed = codec.StreamDecoder().fail(error)
    assert [e.event for e in failed] == [e.event for e in expected]
    assert "Slow down." in failed[-1].data
    assert codec.StreamDecoder().final_response is None
