"""The account function's framework floor: Mangum and FastAPI serving 13 routes shaped
like the account API's, and nothing of afk but `afk.http.lean_fastapi` (the same
import and route-building levers the account function uses).

bench/functions.py starts it as it starts the AccountFunction (a fresh python3.12
with the built layers on the path, `app.handler` called on events/account_get.json)
and reports it beside that function: what remains of the account function's cold
start above this row is afk's (settings, store, authentication, the DynamoDB
calls); this row itself is FastAPI's, pydantic's, Starlette's, Mangum's and
asyncio's. Each route takes what its account API namesake takes: the caller and the
app's services as dependencies, and its body, path or query parameters.
"""

from __future__ import annotations

from afk.http import lean_fastapi  # before FastAPI, as afk.http.apps imports it

# isort: split
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from mangum import Mangum
from pydantic import BaseModel, Field


class Body(BaseModel):
    name: str | None = Field(default=None, description="a name")
    usd: str | None = Field(default=None, description="USD as a decimal string")


class Page(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    after: str | None = None


async def caller(request: Request) -> str:
    return request.headers.get("authorization", "")


async def services(request: Request) -> object:
    return request.app


Caller = Annotated[str, Depends(caller)]
Services = Annotated[object, Depends(services)]
Listing = Annotated[Page, Query()]
ANSWER = {"object": "account", "balance_usd": "10.00", "caps": {}}

# The account API's 13 routes, by their parameters (afk/http/account.py, usage.py,
# payments.py), each answering a constant.
with lean_fastapi.without_pydantic_v1():
    router = APIRouter()

    @router.get("/v1/account", response_model=None)
    async def account(principal: Caller, app: Services) -> dict[str, Any]:
        return ANSWER

    @router.put("/v1/account/caps/{model_id:path}", response_model=None)
    async def put_cap(model_id: str, body: Body, principal: Caller,
                      app: Services) -> dict[str, Any]:
        return ANSWER

    @router.delete("/v1/account/caps/{model_id:path}", response_model=None)
    async def delete_cap(model_id: str, principal: Caller, app: Services) -> dict[str, Any]:
        return ANSWER

    @router.get("/v1/account/keys", response_model=None)
    async def list_keys(principal: Caller, app: Services) -> dict[str, Any]:
        return ANSWER

    @router.post("/v1/account/keys", response_model=None, status_code=201)
    async def create_key(principal: Caller, app: Services,
                         body: Body | None = None) -> dict[str, Any]:
        return ANSWER

    @router.patch("/v1/account/keys/{key_id}", response_model=None)
    async def update_key(key_id: str, body: Body, principal: Caller,
                         app: Services) -> dict[str, Any]:
        return ANSWER

    @router.delete("/v1/account/keys/{key_id}", response_model=None)
    async def revoke_key(key_id: str, principal: Caller, app: Services) -> dict[str, Any]:
        return ANSWER

    @router.get("/v1/account/usage", response_model=None)
    async def usage(query: Listing, principal: Caller, app: Services) -> dict[str, Any]:
        return ANSWER

    @router.get("/v1/account/usage/summary", response_model=None)
    async def summary(query: Listing, principal: Caller, app: Services) -> dict[str, Any]:
        return ANSWER

    @router.get("/v1/account/usage/export", response_model=None)
    async def export(query: Listing, principal: Caller, app: Services) -> dict[str, Any]:
        return ANSWER

    @router.get("/v1/account/topup", response_model=None)
    async def topup(principal: Caller, app: Services) -> dict[str, Any]:
        return ANSWER

    @router.post("/v1/account/checkout", response_model=None, status_code=201)
    async def checkout(body: Body, request: Request, principal: Caller,
                       app: Services) -> dict[str, Any]:
        return ANSWER

    @router.post("/webhooks/stripe", response_model=None)
    async def webhook(request: Request, app: Services) -> dict[str, Any]:
        return ANSWER

    app = FastAPI(title="floor", openapi_url="/v1/account/openapi.json", docs_url=None,
                  redoc_url=None)
    app.include_router(router)

handler = Mangum(app, lifespan="off")
