"""The gateway as API Gateway's default endpoint serves it: only under its stage.

A deployed REST API answers at `https://{id}.execute-api.{region}.amazonaws.com/prod/...`.
API Gateway strips the stage before the integration (a Lambda proxy event's `path` is
`/v1/account`; `requestContext.path` is `/prod/v1/account`), and a path outside any
deployed stage never reaches a function: it is a 403 `{"message":"Forbidden"}` with
`x-amzn-ErrorType: ForbiddenException` (AWS re:Post, "How do I troubleshoot HTTP 403
errors from API Gateway?", https://repost.aws/knowledge-center/api-gateway-troubleshoot-403-forbidden).

`StagePrefix(app)` is that, as an ASGI wrapper served on its own port: a client or page
that leaves the stage out of a path gets the 403 a deployed gateway gives it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FORBIDDEN", "StagePrefix"]

FORBIDDEN = b'{"message":"Forbidden"}'


class StagePrefix:
    def __init__(self, app: Any, stage: str = "prod") -> None:
        self.app = app
        self.prefix = "/" + stage

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        # `/prod` itself is the API's root resource, as `/prod/` is.
        if path == self.prefix or path.startswith(self.prefix + "/"):
            inner = path[len(self.prefix):] or "/"
            raw = scope.get("raw_path") or path.encode()
            raw_inner = raw[len(self.prefix):] or b"/"
            await self.app(dict(scope, path=inner, raw_path=raw_inner), receive, send)
            return
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(FORBIDDEN)).encode()),
                                (b"x-amzn-errortype", b"ForbiddenException")]})
        await send({"type": "http.response.body", "body": FORBIDDEN})
