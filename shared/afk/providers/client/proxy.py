"""Upstreams behind an HTTP(S) proxy: through httpx, imported only when a proxy applies.

The lean client (pool.py) speaks to origins directly. Where the environment names
a proxy for an upstream URL (`HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, lower case
first, minus the hosts `NO_PROXY` names, as curl and urllib read them; read once,
into `Settings.proxies`), the request goes through an httpx client for that proxy
instead (CONNECT tunnel for https, absolute-form for http), and its answers and
failures come back in the lean client's types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from afk import tls
from afk.providers.client.messages import (
    ConnectFailed,
    ConnectTimeout,
    DeadlineReached,
    Headers,
    ProtocolFailure,
    ReadTimeout,
    Request,
    WriteTimeout,
)

if TYPE_CHECKING:
    import httpx

def proxy_for(proxies: Mapping[str, str], scheme: str, host: str, port: int) -> str | None:
    """The proxy URL for an origin, or None when it is reached directly."""
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy:
        return None
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in proxies.get("no", "").split(",")):
        if not entry:
            continue
        if entry == "*":
            return None
        name, _, only_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if only_port and only_port != str(port):
            continue
        name = name.lstrip(".").strip("[]")
        if host == name or host.endswith("." + name):
            return None
    return proxy if "://" in proxy else f"http://{proxy}"


async def _mapped(awaitable: Any) -> Any:
    """httpx's failures as the lean client's."""
    import httpx

    try:
        return await awaitable
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise ConnectTimeout(str(exc) or "connect timeout") from exc
    except httpx.ReadTimeout as exc:
        raise ReadTimeout(str(exc) or "read timeout") from exc
    except httpx.WriteTimeout as exc:
        raise WriteTimeout(str(exc) or "write timeout") from exc
    except (httpx.ConnectError, httpx.ProxyError) as exc:
        raise ConnectFailed(str(exc) or type(exc).__name__) from exc
    except httpx.HTTPError as exc:
        raise ProtocolFailure(str(exc) or type(exc).__name__) from exc


class ProxiedExchange:
    """An answer through the proxy, read like pool.Exchange."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks = response.aiter_raw()
        self.status_code = response.status_code
        self.headers = Headers({k.lower(): v for k, v in response.headers.items()})

    async def read(self, until: float | None = None) -> bytes | None:
        try:
            async with asyncio.timeout_at(until):
                chunk: bytes | None = await _mapped(anext(self._chunks, None))
        except TimeoutError:
            raise DeadlineReached("the caller's deadline passed") from None
        return chunk

    async def read_all(self) -> bytes:
        content: bytes = await _mapped(self._response.aread())
        return content

    async def aclose(self) -> None:
        await self._response.aclose()


class ProxiedClient:
    """An httpx client through one proxy (its environment ignored: the proxy is ours)."""

    def __init__(self, proxy: str, *, connect_timeout: float, read_timeout: float,
                 write_timeout: float) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            proxy=proxy, trust_env=False, verify=tls.context(),
            timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout,
                                  write=write_timeout, pool=connect_timeout))

    async def open(self, request: Request) -> ProxiedExchange:
        built = self._client.build_request(
            request.method, request.url, content=request.content,
            headers={"accept-encoding": "identity", **request.headers})
        return ProxiedExchange(await _mapped(self._client.send(built, stream=True)))

    async def aclose(self) -> None:
        await self._client.aclose()
