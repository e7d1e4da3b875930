"""A small PNG decoder for test screenshots (8-bit RGB/RGBA, not interlaced), so the browser
test needs no imaging library. Sub and Up rows are unfiltered with numpy, Average and Paeth
rows byte by byte."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def _paeth_row(raw: bytes, prev: bytearray, bpp: int) -> bytearray:
    out = bytearray(raw)
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out[i] = (out[i] + pred) & 0xFF
    return out


def _average_row(raw: bytes, prev: bytearray, bpp: int) -> bytearray:
    out = bytearray(raw)
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        out[i] = (out[i] + ((a + prev[i]) >> 1)) & 0xFF
    return out


def read_png(path: Path) -> np.ndarray:
    """The image as a (height, width, channels) uint8 array (RGB or RGBA)."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    pos, idat = 8, bytearray()
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
            channels = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    image = np.zeros((height, stride), dtype=np.uint8)
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind_byte, row = raw[start], raw[start + 1 : start + 1 + stride]
        if kind_byte == 0:
            out = bytearray(row)
        elif kind_byte == 1:
            px = np.frombuffer(row, dtype=np.uint8).reshape(width, channels).astype(np.uint32)
            out = bytearray((np.cumsum(px, axis=0) & 0xFF).astype(np.uint8).tobytes())
        elif kind_byte == 2:
            out = bytearray(
                ((np.frombuffer(row, np.uint8).astype(np.uint16) + np.frombuffer(prev, np.uint8)) & 0xFF)
                .astype(np.uint8)
                .tobytes()
            )
        elif kind_byte == 3:
            out = _average_row(row, prev, channels)
        elif kind_byte == 4:
            out = _paeth_row(row, prev, channels)
        else:
            raise ValueError(f"bad PNG filter {kind_byte} on row {y}")
        image[y] = np.frombuffer(out, dtype=np.uint8)
        prev = out
    return image.reshape(height, width, channels)
