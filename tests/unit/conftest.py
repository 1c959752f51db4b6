"""Unit-test fixtures: an embedded DynamoDB (moto server) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from afk.local.dynamodb import EmbeddedDynamoDB


@pytest.fixture(scope="module")
def embedded_dynamodb() -> Iterator[str]:
    with EmbeddedDynamoDB() as db:
        yield db.endpoint
