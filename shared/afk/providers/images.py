"""Fetching an image by URL for a provider that only takes images inline (Gemini).

Fetching a URL a caller chose is a server-side request forgery risk, so the
fetch is bounded in every direction:
* https only; the host must resolve to public addresses only (no loopback,
  private, link-local, multicast or reserved targets), and the connection goes
  to the address that was checked (no DNS-rebinding window), with TLS still
  verified against the host name;
* at most MAX_BYTES, within TIMEOUT seconds, no redirects followed;
* the answer must say it is an image.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from afk import ir
from afk.errors import InvalidRequest

MAX_BYTES = 20 * 1024 * 1024
TIMEOUT = 10.0

Resolver = Callable[[str, int], Awaitable[list[str]]]


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


@dataclass(frozen=True, slots=True)
class ImageFetcher:
    resolver: Resolver = resolve
    is_allowed: Callable[[str], bool] = is_public_address
    schemes: tuple[str, ...] = ("https",)
    max_bytes: int = MAX_BYTES
    timeout: float = TIMEOUT

    async def fetch(self, url: str) -> ir.Image:
        parts = urlsplit(url)
        refuse = _refusal(url)
        if parts.scheme not in self.schemes or not parts.hostname:
            raise refuse("only https image URLs can be fetched")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await asyncio.wait_for(self.resolver(parts.hostname, port),
                                               self.timeout)
        except (OSError, TimeoutError):
            raise refuse("its host does not resolve") from None
        if not addresses or not all(self.is_allowed(a) for a in addresses):
            raise refuse("its host is not a public address")
        address = addresses[0]
        pinned = parts._replace(netloc=f"[{address}]:{port}" if ":" in address
                                else f"{address}:{port}").geturl()
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client,
                client.stream("GET", pinned, headers={"host": parts.netloc},
                              extensions={"sni_hostname": parts.hostname}) as resp,
            ):
                if resp.status_code != 200:
                    raise refuse(f"it answered HTTP {resp.status_code}")
                media_type = resp.headers.get("content-type", "").split(";")[0].strip()
                if not media_type.startswith("image/"):
                    raise refuse(f"it is not an image ({media_type or 'no content type'})")
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise refuse(f"it is larger than {self.max_bytes} bytes")
        except httpx.HTTPError as exc:
            raise refuse(f"fetching it failed ({type(exc).__name__})") from None
        return ir.Image(data=base64.b64encode(bytes(body)).decode(), media_type=media_type)

    async def inline(self, request: ir.Request, keep: Callable[[str], bool]) -> None:
        """Replace every image URL in `request` that `keep` rejects by its bytes."""
        for message in request.messages:
            for i, block in enumerate(message.content):
                if isinstance(block, ir.Image) and block.url and block.data is None \
                        and not block.url.startswith("data:") and not keep(block.url):
                    fetched = await self.fetch(block.url)
                    fetched.detail = block.detail
                    message.content[i] = fetched


def _refusal(url: str) -> Callable[[str], InvalidRequest]:
    shown = url if len(url) <= 100 else url[:97] + "..."
    return lambda why: InvalidRequest(
        f"The image {shown} cannot be sent to this model: {why}. Send it as base64 data.",
        param="messages", code="image_fetch_failed")
