"""Fetching image URLs for Gemini: bounded, and never at a private address."""

from __future__ import annotations

import asyncio
import base64

import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from afk import ir
from afk.errors import InvalidRequest
from afk.providers.images import ImageFetcher, is_public_address
from tests.support.servers import serve

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def image_server() -> Starlette:
    return Starlette(routes=[
        Route("/cat.png", lambda r: Response(PNG, media_type="image/png")),
        Route("/big.png", lambda r: Response(b"\0" * 5000, media_type="image/png")),
        Route("/page.html", lambda r: Response("<html>", media_type="text/html")),
        Route("/gone.png", lambda r: Response(b"", status_code=404)),
        Route("/hop.png", lambda r: Response(b"", status_code=302, headers={
            "location": "http://169.254.169.254/latest/meta-data/"})),
    ])


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
    ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False), ("::1", False),
    ("fe80::1", False), ("fc00::1", False), ("224.0.0.1", False), ("0.0.0.0", False),
    ("::ffff:127.0.0.1", False), ("100.64.0.1", False),
])
def test_only_public_addresses_are_fetchable(address: str, public: bool):
    assert is_public_address(address) is public


@pytest.mark.parametrize("url", ["https://127.0.0.1/x.png", "https://localhost/x.png",
                                 "https://[::1]/x.png", "http://example.com/x.png",
                                 "ftp://example.com/x.png"])
def test_private_or_non_https_urls_are_refused_before_any_request(url: str):
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(ImageFetcher().fetch(url))
    assert url in caught.value.message


def test_a_host_resolving_to_a_private_address_is_refused():
    async def metadata_service(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "169.254.169.254"]  # one bad address is enough to refuse

    with pytest.raises(InvalidRequest, match="not a public address"):
        asyncio.run(ImageFetcher(resolver=metadata_service).fetch("https://evil.example/x.png"))


def test_fetch_inlines_within_limits():
    with serve(image_server()) as url:
        port = int(url.rsplit(":", 1)[1])

        async def local(host: str, p: int) -> list[str]:
            return ["127.0.0.1"]

        fetcher = ImageFetcher(resolver=local, is_allowed=lambda a: True, schemes=("http",),
                               max_bytes=1000)
        image = asyncio.run(fetcher.fetch(f"http://images.test:{port}/cat.png"))
        assert image.media_type == "image/png" and base64.b64decode(image.data) == PNG
        for path, why in [("big.png", "larger than"), ("page.html", "not an image"),
                          ("gone.png", "HTTP 404"),
                          # Redirects are never followed: that is how a public URL
                          # would otherwise reach the metadata service.
                          ("hop.png", "HTTP 302")]:
            with pytest.raises(InvalidRequest, match=why):
                asyncio.run(fetcher.fetch(f"http://images.test:{port}/{path}"))

        request = ir.Request(model="m", messages=[ir.Message(role="user", content=[
            ir.Text(text="what is this?"), ir.Image(url=f"http://images.test:{port}/cat.png"),
            ir.Image(url="gs://bucket/kept.png")])])
        asyncio.run(fetcher.inline(request, keep=lambda u: u.startswith("gs://")))
        blocks = request.messages[0].content
        assert blocks[1].data and blocks[1].url is None
        assert blocks[2].url == "gs://bucket/kept.png"
