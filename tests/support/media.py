"""Real media files of chosen sizes, built in memory for tests: PNG (a valid,
decodable image), the headers of JPEG, GIF and WebP images, and PDFs with a
chosen number of pages and amount of text (plain or Flate-compressed, pages in
the page tree or hidden in an object stream)."""

from __future__ import annotations

import base64
import struct
import zlib


def png(width: int, height: int) -> bytes:
    """A valid grey PNG of `width` x `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def jpeg(width: int, height: int, *, exif: int = 0) -> bytes:
    """A JPEG's header up to its frame size (with `exif` bytes of APP1 before it)."""
    app1 = b"\xff\xe1" + struct.pack(">H", exif + 2) + b"\0" * exif if exif else b""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = b"\xff\xc2" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + app1 + sof + b"\xff\xda\0\x08\x01\x01\x00\x00\x3f\x00"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\0\0\0;"


def webp(width: int, height: int, kind: str = "VP8X") -> bytes:
    if kind == "VP8X":
        payload = b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(
            3, "little")
    elif kind == "VP8L":
        bits = (width - 1) | ((height - 1) << 14)
        payload = b"\x2f" + bits.to_bytes(4, "little") + b"\0"
    else:
        payload = b"\0\0\0\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\0\0"
    chunk = kind.encode().ljust(4) + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def pdf(pages: int, *, text_per_page: int = 0, compress: bool = True,
        object_stream: bool = False) -> bytes:
    """A PDF of `pages` pages, each drawing `text_per_page` characters of text."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    page_objects = []
    for i in range(pages):
        text = ("x" * text_per_page).encode()
        content = b"BT /F1 12 Tf 72 720 Td (" + text + b") Tj ET"
        if compress:
            data = zlib.compress(content)
            stream = (f"<< /Length {len(data)} /Filter /FlateDecode >>\nstream\n".encode()
                      + data + b"\nendstream")
        else:
            stream = (f"<< /Length {len(content)} >>\nstream\n".encode() + content
                      + b"\nendstream")
        page_objects.append(f"<< /Type /Page /Parent 2 0 R /Contents {4 + 2 * i} 0 R >>"
                            .encode())
        objects += [page_objects[-1], stream]
    if object_stream:  # the page dictionaries move into a compressed object stream
        packed = zlib.compress(b"\n".join(page_objects))
        objects = [o for o in objects if o not in page_objects]
        objects.append(f"<< /Type /ObjStm /N {pages} /First 0 /Length {len(packed)} "
                       "/Filter /FlateDecode >>\nstream\n".encode() + packed + b"\nendstream")
        objects[1] = f"<< /Type /Pages /Kids [] /Count {0} >>".encode()
    body = b"%PDF-1.7\n"
    for n, obj in enumerate(objects, start=1):
        body += f"{n} 0 obj\n".encode() + obj + b"\nendobj\n"
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
