"""store/dynamo.py: botocore's errors made ours in one place, and one retry layer
over botocore's (issue 17): transaction conflicts are retried here, a throttle or
5xx is not (botocore's standard mode retried it already), a refused condition
comes back once with its reasons."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from afk.errors import StoreUnavailable
from afk.store.dynamo import Busy, ConditionFailed, Dynamo


class Scripted:
    """A client whose put_item answers with the scripted errors, then succeeds."""

    def __init__(self, *errors: dict[str, Any]) -> None:
        self.errors, self.calls = list(errors), 0

    def put_item(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise ClientError(self.errors.pop(0), "PutItem")  # type: ignore[arg-type]
        return {}


def _error(code: str, **extra: Any) -> dict[str, Any]:
    return {"Error": {"Code": code, "Message": "scripted"}, **extra}


CONFLICT = _error("TransactionConflictException")
CANCELLED_BY_CONFLICT = _error("TransactionCanceledException", CancellationReasons=[
    {"Code": "None"}, {"Code": "TransactionConflict"}])


def _dynamo(client: Scripted, budget: float = 2.0) -> Dynamo:
    return Dynamo("t", client=client, retry_budget=budget)


@pytest.mark.parametrize("contention", [CONFLICT, CANCELLED_BY_CONFLICT])
def test_contention_is_retried_until_the_write_lands(contention):
    client = Scripted(contention, contention)
    db = _dynamo(client)
    assert db.retrying(lambda: client.put_item()) == {}
    assert client.calls == 3


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException",
                                  "ThrottlingException", "InternalServerError"])
def test_what_botocore_retries_is_not_retried_again(code):
    client = Scripted(_error(code))
    with pytest.raises(StoreUnavailable) as caught:
        _dynamo(client).retrying(lambda: client.put_item())
    assert client.calls == 1 and not isinstance(caught.value, Busy)
    assert caught.value.status == 503 and "Nothing was charged" in caught.value.message


def test_contention_that_outlasts_the_budget_is_a_503():
    client = Scripted(*[CONFLICT] * 1000)
    with pytest.raises(StoreUnavailable):
        _dynamo(client, budget=0.05).retrying(lambda: client.put_item())
    assert 1 < client.calls < 1000


def test_a_refused_condition_comes_back_once_with_its_reasons_and_item():
    cancelled = _error("TransactionCanceledException", CancellationReasons=[
        {"Code": "None"}, {"Code": "ConditionalCheckFailed", "Item": {"PK": {"S": "x"}}},
        {"Code": "TransactionConflict"}])  # a refused condition wins over contention
    client = Scripted(cancelled)
    with pytest.raises(ConditionFailed) as caught:
        _dynamo(client).retrying(lambda: client.put_item())
    assert client.calls == 1
    assert caught.value.codes == ["None", "ConditionalCheckFailed", "TransactionConflict"]
    assert caught.value.reasons[1]["Item"] == {"PK": {"S": "x"}}

    single = Scripted(_error("ConditionalCheckFailedException", Item={"PK": {"S": "y"}}))
    with pytest.raises(ConditionFailed) as caught, _dynamo(single).errors():
        single.put_item()
    assert caught.value.item == {"PK": {"S": "y"}} and caught.value.reasons == []
