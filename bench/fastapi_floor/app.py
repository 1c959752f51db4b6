"""The account function's framework floor: Mangum and FastAPI serving 13 routes shaped
like the account API's, and nothing of afk but `afk.http.lean_fastapi` (the same
import and route-building levers the account function uses).

bench/functions.py starts it as it starts the AccountFunction (a fresh python3.12
with the built layers on the path, `app.handler` called on events/account_get.json)
and reports it beside that function: what remains of the account function's cold
start above this row is afk's (settings, store, authentication, the DynamoDB
calls); this row itself is FastAPI's, pydantic's, Starlette's, Mangum's and
asyncio's. Every route takes what the account API's take: the caller and the app's
services as dependencies, and a body model, a path parameter or query parameters.
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

with lean_fastapi.without_pydantic_v1():
    router = APIRouter()

    @router.get("/v1/account", response_model=None)
    async def account(principal: Caller, app: Services) -> dict[str, Any]:
        return {"object": "account", "balance_usd": "10.00", "caps": {}}

    for i in range(4):
        async def put(model_id: str, body: Body, principal: Caller,
                      app: Services) -> dict[str, Any]:
            return {"model": model_id, "usd": body.usd}

        router.add_api_route(f"/v1/floor/{i}/{{model_id:path}}", put, methods=["PUT"],
                             response_model=None)
    for i in range(4):
        async def listing(query: Annotated[Page, Query()], principal: Caller,
                          app: Services) -> dict[str, Any]:
            return {"object": "list", "data": []}

        router.add_api_route(f"/v1/floor/{i}", listing, methods=["GET"], response_model=None)
    for i in range(4):
        async def create(principal: Caller, app: Services,
                         body: Body | None = None) -> dict[str, Any]:
            return {"created": True}

        router.add_api_route(f"/v1/floor/{i}", create, methods=["POST"], response_model=None)

    app = FastAPI(title="floor", openapi_url="/v1/floor/openapi.json", docs_url=None,
                  redoc_url=None)
    app.include_router(router)

handler = Mangum(app, lifespan="off")
