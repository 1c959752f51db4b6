"""Fetching an image by URL for a provider that only takes images inline (Gemini).

Fetching a URL a caller chose is a server-side request forgery risk, so the
fetch is bounded in every direction:
* https only; the host must resolve to public addresses only (no loopback,
  private, link-local, multicast or reserved targets), and the connection goes
  to the address that was checked (no DNS-rebinding window), with TLS still
  verified against the host name;
* at most MAX_BYTES per image, no redirects followed;
* the answer must say it is an image.

It is also work the gateway does for free (a request whose fetch fails is
billed nothing), so each request has a budget (`ImageBudget`): at most so many
images, so many bytes in all, and one wall-clock deadline over the whole
fetch (a slow server trickling bytes cannot stretch it read by read). The
images of a request are fetched concurrently, a few at a time; the first
failure cancels the rest.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import anyio

from afk import ir
from afk.errors import InvalidRequest
from afk.providers import Call, Completion, UpstreamStream
from afk.providers.base import Event, HTTPProvider
from afk.records import dataclass

MAX_BYTES = 20 * 1024 * 1024
TIMEOUT = 10.0
MAX_IMAGES = 16
CONCURRENCY = 4

Resolver = Callable[[str, int], Awaitable[list[str]]]


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class ImageBudget:
    """What one request may have fetched: images, bytes in all, seconds in all."""

    images: int = MAX_IMAGES
    bytes: int = MAX_BYTES
    seconds: float = TIMEOUT


@dataclass(slots=True)
class _Spent:
    """Bytes left of a request's budget, shared by its concurrent fetches."""

    bytes_left: int
    limit: int


@dataclass(frozen=True, slots=True)
class ImageFetcher:
    resolver: Resolver = resolve
    is_allowed: Callable[[str], bool] = is_public_address
    schemes: tuple[str, ...] = ("https",)
    max_bytes: int = MAX_BYTES  # per image
    timeout: float = TIMEOUT  # one fetch on its own, wall clock
    concurrency: int = CONCURRENCY

    async def fetch(self, url: str) -> ir.Image:
        """One image, within `max_bytes` and `timeout` seconds in all."""
        with anyio.move_on_after(self.timeout) as scope:
            return await self._fetch(url, _Spent(self.max_bytes, self.max_bytes))
        assert scope.cancelled_caught
        raise _refusal(url)(f"it took longer than {self.timeout:g} s to fetch")

    async def inline(self, request: ir.Request, keep: Callable[[str], bool],
                     budget: ImageBudget | None = None) -> None:
        """Replace every image URL in `request` that `keep` rejects by its bytes,
        within `budget` for the whole request."""
        budget = budget or ImageBudget()
        targets = [(message, i, block) for message in request.messages
                   for i, block in enumerate(message.content)
                   if isinstance(block, ir.Image) and block.url and block.data is None
                   and not block.url.startswith("data:") and not keep(block.url)]
        if not targets:
            return
        if len(targets) > budget.images:
            raise InvalidRequest(
                f"The request has {len(targets)} image URLs for a model that takes images "
                f"only inline; the gateway fetches at most {budget.images} per request. "
                "Send the others as base64 data.", param="messages", code="image_fetch_failed")
        spent = _Spent(budget.bytes, budget.bytes)
        fetched: dict[int, ir.Image] = {}
        failures: list[InvalidRequest] = []
        limiter = anyio.CapacityLimiter(self.concurrency)

        async def fetch_one(index: int, url: str, group: anyio.abc.TaskGroup) -> None:
            async with limiter:
                try:
                    fetched[index] = await self._fetch(url, spent)
                except InvalidRequest as error:
                    failures.append(error)
                    group.cancel_scope.cancel()  # the request fails: stop the others

        with anyio.move_on_after(budget.seconds) as deadline:
            async with anyio.create_task_group() as group:
                for index, (_, _, block) in enumerate(targets):
                    group.start_soon(fetch_one, index, block.url or "", group)
        if failures:
            raise failures[0]
        if deadline.cancelled_caught:
            raise InvalidRequest(
                f"The request's image URLs could not be fetched within {budget.seconds:g} s "
                "in all. Send the images as base64 data.", param="messages",
                code="image_fetch_failed")
        for index, (message, i, block) in enumerate(targets):
            image = fetched[index]
            image.detail = block.detail
            message.content[i] = image

    async def _fetch(self, url: str, spent: _Spent) -> ir.Image:
        parts = urlsplit(url)
        refuse = _refusal(url)
        if parts.scheme not in self.schemes or not parts.hostname:
            raise refuse("only https image URLs can be fetched")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await self.resolver(parts.hostname, port)
        except OSError:
            raise refuse("its host does not resolve") from None
        if not addresses or not all(self.is_allowed(a) for a in addresses):
            raise refuse("its host is not a public address")
        address = addresses[0]
        import httpx  # not on the generation path: only a call with image URLs gets here

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
                    spent.bytes_left -= len(chunk)
                    if len(body) > self.max_bytes:
                        raise refuse(f"it is larger than {self.max_bytes} bytes")
                    if spent.bytes_left < 0:
                        raise refuse(f"the request's images are larger than {spent.limit} "
                                     "bytes in all")
        except httpx.HTTPError as exc:
            raise refuse(f"fetching it failed ({type(exc).__name__})") from None
        return ir.Image(data=base64.b64encode(bytes(body)).decode(), media_type=media_type)


def _refusal(url: str) -> Callable[[str], InvalidRequest]:
    shown = url if len(url) <= 100 else url[:97] + "..."
    return lambda why: InvalidRequest(
        f"The image {shown} cannot be sent to this model: {why}. Send it as base64 data.",
        param="messages", code="image_fetch_failed")


class InlinesImages(HTTPProvider[Event]):
    """A provider base for upstreams that take images only inline (or only from their
    own storage): image URLs are fetched in `prepare`, before the hold, so the quote
    prices them by their real size; `complete` and `open_stream` then find nothing
    left to fetch (a buffered retry never fetches twice)."""

    def keeps_url(self, url: str) -> bool:
        """An image URL the upstream fetches itself (sent as is)."""
        return False

    async def _inline_images(self, call: Call) -> None:
        if call.passthrough_body is None:
            settings = self._settings
            await self.upstreams.images.inline(call.request, keep=self.keeps_url, budget=ImageBudget(
                images=settings.image_fetch_max_images, bytes=settings.image_fetch_max_bytes,
                seconds=settings.image_fetch_seconds))

    async def prepare(self, call: Call) -> None:
        await self._inline_images(call)

    async def complete(self, call: Call) -> Completion:
        await self._inline_images(call)
        return await super().complete(call)

    async def open_stream(self, call: Call) -> UpstreamStream:
        await self._inline_images(call)
        return await super().open_stream(call)
