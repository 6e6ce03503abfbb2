"""The test videos of the browser sampler as one grayscale PNG (book ch. 6).

Row i of tiles is video i, column t its frame t: an image of (N H, T W)
pixels. Written and read with the standard library only (8-bit gray, no
filter), so the page decodes it with the browser's own image decoder.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_strip(path, videos: np.ndarray) -> None:
    """Write ``videos`` (N, T, H, W) uint8 as one PNG of N rows of T frames."""
    n, nt, h, w = videos.shape
    image = videos.transpose(0, 2, 1, 3).reshape(n * h, nt * w)  # (N H, T W)
    rows = b"".join(b"\x00" + row.tobytes() for row in image.astype(np.uint8))
    header = struct.pack(">IIBBBBB", nt * w, n * h, 8, 0, 0, 0, 0)  # 8-bit gray
    Path(path).write_bytes(_SIGNATURE + _chunk(b"IHDR", header)
                           + _chunk(b"IDAT", zlib.compress(rows, 9))
                           + _chunk(b"IEND", b""))


def read_strip(path, frame_size: int = 64) -> np.ndarray:
    """The videos (N, T, H, W) uint8 of a strip written by :func:`write_strip`."""
    data = Path(path).read_bytes()
    if not data.startswith(_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file")
    pos, chunks = len(_SIGNATURE), {}
    while pos < len(data):
        (size,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunks[kind] = chunks.get(kind, b"") + data[pos + 8:pos + 8 + size]
        pos += size + 12
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8)
    image = raw.reshape(height, width + 1)[:, 1:]  # drop each row's filter byte
    n, nt = height // frame_size, width // frame_size
    return image.reshape(n, frame_size, nt, frame_size).transpose(0, 2, 1, 3).copy()
