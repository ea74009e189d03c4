"""Real headless Chromium for the page tests: Debian's ``chromium`` driven by Playwright.

Playwright comes from PyPI (the dev extras); its own browser builds are never downloaded:
it launches the system binary (``executable_path``), which ``.ci/run`` installs with apt-get.
Tests that need it are skipped, with the reason, where either is missing.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    sync_playwright = None

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or sync_playwright is None,
    reason="needs Playwright (pip install -e '.[dev]') and a chromium binary (apt-get install -y chromium)",
)


@contextmanager
def browser():
    """A launched headless Chromium (the system binary)."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def open_page(b, url: str, width: int = 1400, height: int = 1000, wait_for: str | None = "[data-viewer-ready='1']"):
    """A new page at ``url`` whose console errors, warnings and uncaught exceptions are collected
    in ``page.problems``; waits for ``wait_for`` (every viewer on the page mounted)."""
    page = b.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    page.problems = []
    page.on("console", lambda m: page.problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: page.problems.append(f"uncaught: {e}"))
    page.goto(url)
    if wait_for:
        page.wait_for_selector(wait_for, timeout=15_000)
    return page


def png_pixels(data: bytes) -> tuple[int, int, bytes, int]:
    """Width, height, raw pixel rows and channels of an 8-bit RGB(A) PNG, with no imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 3
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, bytes(out), channels


def not_blank(png: bytes, stride: int = 7) -> tuple[float, int]:
    """Share of sampled pixels that are not near-white, and how many distinct colours they have."""
    _, _, pixels, channels = png_pixels(png)
    samples = [pixels[i : i + 3] for i in range(0, len(pixels), channels * stride)]
    return sum(1 for p in samples if min(p) < 235) / len(samples), len(set(samples))


def write_page(path: Path, html: str) -> str:
    path.write_text(html, encoding="utf-8")
    return path.resolve().as_uri()
