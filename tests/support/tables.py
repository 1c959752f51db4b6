"""A table of a test's own in an embedded DynamoDB: what it reads (a Query, the
sweeper's scan) sees only that test's items."""

from __future__ import annotations

import secrets

from afk.store import Dynamo, create_table


def new_table(endpoint: str, prefix: str = "afk-unit") -> Dynamo:
    name = f"{prefix}-{secrets.token_hex(4)}"
    dynamo = Dynamo(name, endpoint_url=endpoint)
    create_table(dynamo.client, name)
    return dynamo
