"""What the account API accepts, as pydantic models: the OpenAPI document's
request schemas, validated by the parsers the rest of the gateway uses
(afk.limits, afk.money), so a field refused here is refused with the
same words as anywhere else, naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainValidator
from pydantic_core import PydanticCustomError

from afk import limits as key_limits
from afk.http.api import OUR_ERROR
from afk.limits import LimitError
from afk.money import MoneyError, parse_usd, to_pico


def ours(parse: Callable[[Any], Any], wire: Any) -> PlainValidator:
    """Validation by one of our parsers; `wire` is the type the caller sends (the
    schema's). Its refusal is the 400's message as written."""

    def validate(value: Any) -> Any:
        try:
            return parse(value)
        except (LimitError, MoneyError) as exc:
            raise PydanticCustomError(OUR_ERROR, "{message}", {"message": str(exc)}) from None

    return PlainValidator(validate, json_schema_input_type=wire)


def _cap(value: Any) -> int:
    try:
        return to_pico(parse_usd(value, what="cap", allow_zero=False))
    except MoneyError as exc:
        raise MoneyError(f"Invalid cap: {exc}.") from None


def _limit(api_name: str) -> Callable[[Any], Any]:
    return lambda value: key_limits.parse_changes({api_name: value})[key_limits.FIELDS[api_name]]


def _name(value: Any) -> str:
    if value is None or value == "":
        return "default"
    if not isinstance(value, str) or len(value) > 100:
        raise LimitError("'name' must be a string of at most 100 characters.", "name")
    return value


USD = "USD as a decimal string, e.g. \"5.00\""


class Cap(BaseModel):
    """`PUT /v1/account/caps/{model}`: the most one call of the model may cost."""

    usd: Annotated[int, ours(_cap, str), Field(description=f"{USD}; more than zero")]


class KeyLimits(BaseModel):
    """The account's own limits on a key; null lifts one. They can only be
    stricter than the operator's (403 `operator_limit` otherwise)."""

    rpm: Annotated[int | None, ours(_limit("rpm"), int | None),
                   Field(description="requests per minute")] = None
    spend_per_day: Annotated[int | None, ours(_limit("spend_per_day"), str | None),
                             Field(description=f"spend per UTC day, {USD}")] = None
    spend_per_month: Annotated[int | None, ours(_limit("spend_per_month"), str | None),
                               Field(description=f"spend per UTC month, {USD}")] = None
    models: Annotated[frozenset[str] | None, ours(_limit("models"), list[str] | None),
                      Field(description="the only models the key may call")] = None
    expires_at: Annotated[int | None, ours(_limit("expires_at"), str | None),
                          Field(description="when the key stops working, an ISO time "
                                            "such as 2027-01-31T00:00:00Z")] = None

    def changes(self) -> dict[str, Any]:
        """The limits sent (as `Limits` attributes), null ones included."""
        return {attr: getattr(self, api_name) for api_name, attr in key_limits.FIELDS.items()
                if api_name in self.model_fields_set}


class NewKey(KeyLimits):
    """`POST /v1/account/keys`: every field optional."""

    name: Annotated[str, ours(_name, str | None),
                    Field(description="at most 100 characters")] = "default"
    scope: Annotated[str, ours(key_limits.parse_scope, str | None),
                     Field(description='"inference" (generation, models, its own usage; '
                                       'the default) or "manage" (also keys, caps, '
                                       "usage, top-ups)")] = "inference"


class Checkout(BaseModel):
    """`POST /v1/account/checkout`: a Stripe Checkout session for `usd` of credit."""

    usd: Annotated[Any, Field(description=f"{USD}, within the bounds of "
                                          "GET /v1/account/topup",
                              json_schema_extra={"type": "string"})]
    return_url: Annotated[str, Field(description="a page of this gateway (the dashboard) "
                                                 "Checkout returns to")]
