"""afk/settings.py: the environment read once, and a misconfigured variable refused
at cold start with an error naming it, what it takes and what it got."""

from __future__ import annotations

import pytest

from afk.settings import Settings, SettingsError


def refusal(**env: str) -> str:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    return str(refused.value)


def test_numbers_durations_and_flags_are_read() -> None:
    settings = Settings.from_env({"AFK_CACHE_TTL": "2.5", "AFK_KEEPALIVE_SECONDS": "0",
                                  "AFK_RESPONSES_TTL_DAYS": "7", "AFK_COUNT_TOKENS_RPM": "5",
                                  "AFK_BEDROCK": "yes"})
    assert (settings.cache_ttl, settings.keepalive_seconds, settings.responses_ttl_days,
            settings.count_tokens_rpm, settings.bedrock) == (2.5, 0.0, 7.0, 5, True)


def test_an_empty_variable_means_the_default() -> None:
    assert Settings.from_env({"AFK_MAX_CALL_SECONDS": ""}).max_call_seconds == 900.0


def test_a_duration_that_is_not_a_number_is_refused_by_name() -> None:
    """Regression: `float()` said only "could not convert string to float: '10s'",
    naming no variable."""
    assert refusal(AFK_READ_TIMEOUT="10s") == \
        "AFK_READ_TIMEOUT must be a number of seconds, 0 or more (got '10s')"


def test_a_negative_or_infinite_duration_is_refused() -> None:
    assert refusal(AFK_CACHE_TTL="-1") == \
        "AFK_CACHE_TTL must be a number of seconds, 0 or more (got '-1')"
    assert refusal(AFK_RESPONSES_TTL_DAYS="inf") == \
        "AFK_RESPONSES_TTL_DAYS must be a number of days, 0 or more (got 'inf')"


def test_a_count_and_a_flag_are_refused_by_name() -> None:
    assert refusal(AFK_COUNT_TOKENS_RPM="sixty") == \
        "AFK_COUNT_TOKENS_RPM must be a whole number (got 'sixty')"
    assert refusal(AFK_ECHO_MODELS="maybe") == "AFK_ECHO_MODELS must be 1 or 0 (got 'maybe')"
