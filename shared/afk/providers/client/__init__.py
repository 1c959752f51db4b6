"""The gateway's HTTP/1.1 client for its upstreams (the providers' generation calls):
asyncio Protocols and httptools instead of httpx/httpcore/h11/anyio on the hot path
(bench/LEVERS.md, "the upstream client"). httpx stays for what is not hot (image
fetching, admin tools) and for upstreams behind a proxy (proxy.py)."""

from afk.providers.client.messages import (
    ConnectFailed,
    ConnectTimeout,
    DeadlineReached,
    Exchange,
    Headers,
    ProtocolFailure,
    ReadTimeout,
    Request,
    Response,
    TransportError,
    WriteTimeout,
)
from afk.providers.client.pool import Client

__all__ = ["Client", "ConnectFailed", "ConnectTimeout", "DeadlineReached", "Exchange", "Headers",
           "ProtocolFailure", "ReadTimeout", "Request", "Response", "TransportError",
           "WriteTimeout"]
