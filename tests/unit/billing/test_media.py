"""afk.billing.media: sizes read from image headers, PDF pages and text, and each
provider's image rule applied to them (the documented worked examples)."""

from __future__ import annotations

import zlib
from decimal import Decimal

import pytest

from afk.billing.media import (
    MediaError,
    decode_base64,
    image_size,
    image_tokens,
    page_tokens,
    pdf_facts,
)
from afk.catalog import Catalog, ImageRule
from tests.support.media import gif, jpeg, pdf, png, webp

GPT_4O = ImageRule(kind="tiles", base=85, per_tile=170)
GPT_4O_MINI = ImageRule(kind="tiles", base=2833, per_tile=5667)
GPT_41_MINI = ImageRule(kind="patches", max_patches=1536, multiplier=Decimal("1.62"))
CLAUDE = ImageRule(kind="pixels", max_tokens=1700)
GEMINI_2 = ImageRule(kind="gemini_tiles")
GEMINI_3 = ImageRule(kind="fixed", max_tokens=2240)


# ------------------------------------------------------------------ sizes from headers
@pytest.mark.parametrize("data, size", [
    (png(1, 1), (1, 1)),
    (png(1920, 1080), (1920, 1080)),
    (jpeg(640, 480), (640, 480)),
    (jpeg(4000, 3000, exif=60_000), (4000, 3000)),  # the frame header after a big EXIF block
    (gif(320, 200), (320, 200)),
    (webp(1024, 768), (1024, 768)),               # VP8X (extended)
    (webp(1000, 3000, "VP8L"), (1000, 3000)),     # lossless
    (webp(800, 600, "VP8 "), (800, 600)),         # lossy
])
def test_image_size_is_read_from_the_header(data: bytes, size: tuple[int, int]) -> None:
    assert image_size(data) == size


@pytest.mark.parametrize("data", [
    b"", b"not an image", png(10, 10)[:20], jpeg(10, 10)[:8], b"GIF89a",
    b"RIFF\0\0\0\0WEBPVP8Z", b"\x89PNG\r\n\x1a\n" + b"\0" * 64,  # no IHDR
    png(10, 10)[:16] + b"\0" * 8,  # a zero size
])
def test_unreadable_or_truncated_headers_have_no_size(data: bytes) -> None:
    assert image_size(data) is None


def test_the_declared_type_is_not_trusted() -> None:
    """The size comes from the bytes: a PNG labelled image/jpeg is still read."""
    assert image_size(png(3000, 2000)) == (3000, 2000)


# ------------------------------------------------------------------ the providers' rules
@pytest.mark.parametrize("size, detail, tokens", [
    ((1024, 1024), None, 765),     # OpenAI's worked example: 4 tiles
    ((2048, 4096), "high", 1105),  # scaled to 1024 x 2048, then 768 x 1536: 6 tiles
    ((4096, 8192), "low", 85),     # low detail: the base, whatever the size
    ((512, 512), None, 255),       # one tile
    ((100, 10_000), None, 85 + 170 * 4),
    (None, None, 85 + 170 * 8),    # unknown size (a URL): the most an image can cost
])
def test_openai_tiles(size, detail, tokens) -> None:
    assert image_tokens(GPT_4O, size, detail) == tokens


def test_gpt_4o_mini_tiles_cost_33_times_more() -> None:
    assert image_tokens(GPT_4O_MINI, (1024, 1024)) == 2833 + 4 * 5667
    assert image_tokens(GPT_4O_MINI, None) == 2833 + 8 * 5667


@pytest.mark.parametrize("size, tokens", [
    ((1024, 1024), 1659),   # 32 x 32 patches x 1.62, rounded up
    ((1800, 2400), 2489),   # 4,275 patches: scaled down to the 1,536 cap
    ((32, 32), 2),
    (None, 2489),
])
def test_openai_patches(size, tokens) -> None:
    assert image_tokens(GPT_41_MINI, size) == tokens


@pytest.mark.parametrize("size, tokens", [
    ((1000, 1000), 1334),   # Anthropic's table: ~1,334 tokens a megapixel
    ((200, 200), 64),       # 8 x 8 patches of 28 px (w*h/750 = 54)
    ((1092, 1092), 1590),
    ((8000, 8000), 1700),   # scaled down first: never above the model's ceiling
    (None, 1700),
])
def test_anthropic_pixels(size, tokens) -> None:
    assert image_tokens(CLAUDE, size) == tokens


@pytest.mark.parametrize("size, tokens", [
    ((384, 384), 258),
    ((385, 10), 258),
    ((1000, 1000), 4 * 258),
    ((3072, 3072), 16 * 258),  # Gemini 2.x tiles: a big image is not one tile
])
def test_gemini_tiles(size, tokens) -> None:
    assert image_tokens(GEMINI_2, size) == tokens


def test_gemini_tiles_have_no_ceiling_without_a_size() -> None:
    assert image_tokens(GEMINI_2, None) is None


def test_gemini_3_media_resolution_is_a_fixed_ceiling() -> None:
    assert image_tokens(GEMINI_3, (10_000, 10_000)) == image_tokens(GEMINI_3, None) == 2240


def test_pdf_pages_cost_the_largest_image_of_the_rule() -> None:
    assert page_tokens(GPT_4O) == 85 + 170 * 8
    assert page_tokens(CLAUDE) == 1700
    assert page_tokens(GEMINI_2) == 258
    assert page_tokens(GEMINI_3) == 2240


# Bedrock models served without images: text-only models (Llama 3.3, Mistral Large
# 24.02, Nova Micro), and Nova Pro / Lite, whose per-image token count has no
# published bound (catalog.yaml): images to them are refused before the call.
WITHOUT_IMAGES = {"llama-3.3-70b", "mistral-large-2402", "nova-micro", "nova-pro", "nova-lite"}


def test_every_shipped_model_of_a_real_provider_has_an_image_rule() -> None:
    for model in Catalog.load():
        expected = model.provider != "echo" and model.id not in WITHOUT_IMAGES \
            and model.kind == "chat"
        assert (model.images is not None) == expected, model.id
        assert page_tokens(model.images) > 0 if model.images else True


# ------------------------------------------------------------------ PDFs
@pytest.mark.parametrize("compress", [True, False])
def test_pdf_pages_and_text_are_counted(compress: bool) -> None:
    facts = pdf_facts(pdf(7, text_per_page=1000, compress=compress))
    assert facts.pages == 7
    assert 7 * 1000 <= facts.text_bytes < 7 * 1100  # the text, plus its drawing operators


def test_pages_hidden_in_an_object_stream_are_counted() -> None:
    assert pdf_facts(pdf(12, object_stream=True)).pages == 12


def test_the_page_tree_count_is_taken_when_larger() -> None:
    data = pdf(2).replace(b"/Count 2", b"/Count 40")
    assert pdf_facts(data).pages == 40


def test_text_compressed_a_thousandfold_is_counted_decompressed() -> None:
    """The attack a byte count of the file misses: text that deflates to nothing."""
    text = b"BT (" + b"a" * 2_000_000 + b") Tj ET"
    packed = zlib.compress(text, 9)
    data = (b"%PDF-1.7\n1 0 obj\n<< /Type /Pages /Count 1 >>\nendobj\n2 0 obj\n<< /Type /Page >>"
            b"\nendobj\n3 0 obj\n" + f"<< /Length {len(packed)} /Filter /FlateDecode >>".encode()
            + b"\nstream\n" + packed + b"\nendstream\nendobj\n%%EOF")
    assert len(data) < 10_000
    assert pdf_facts(data).text_bytes >= 2_000_000


def test_images_and_fonts_inside_a_pdf_are_not_text() -> None:
    font = b"<< /Length1 5000 /Length 5000 >>\nstream\n" + b"f" * 5000 + b"\nendstream"
    image = (b"<< /Subtype /Image /Filter /DCTDecode /Length 5000 >>\nstream\n" + b"i" * 5000
             + b"\nendstream")
    data = pdf(1).replace(b"trailer", b"9 0 obj\n" + font + b"\nendobj\n10 0 obj\n" + image
                          + b"\nendobj\ntrailer")
    assert pdf_facts(data).text_bytes < 200


@pytest.mark.parametrize("data, why", [
    (b"plain text", "not a PDF"),
    (pdf(1).replace(b"trailer\n<<", b"trailer\n<< /Encrypt 9 0 R"), "encrypted"),
    (pdf(1, compress=False).replace(b"/Length", b"/Filter /LZWDecode /Length"), "LZWDecode"),
    (b"%PDF-1.7\n%%EOF", "pages"),
])
def test_pdfs_that_cannot_be_bounded_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(MediaError, match=why):
        pdf_facts(data)


def test_a_decompression_bomb_is_refused(monkeypatch) -> None:
    import afk.billing.media as media

    monkeypatch.setattr(media, "MAX_PDF_DECODED", 100_000)
    with pytest.raises(MediaError, match="more content"):
        pdf_facts(pdf(1, text_per_page=200_000))


# ------------------------------------------------------------------ base64
def test_base64_is_strict_but_allows_line_breaks() -> None:
    assert decode_base64("aGVs\nbG8=") == b"hello"
    with pytest.raises(MediaError):
        decode_base64("not base64!")
