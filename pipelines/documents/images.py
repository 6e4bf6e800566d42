"""Values of image fields: PNG/JPEG ``data:`` URIs, checked before they reach a document.

An image field takes ``"data:image/png;base64,..."`` (or ``image/jpeg``), or an object
``{"data": "data:image/...", "width_mm": 40, "height_mm": 30}`` (sizes optional; with one of them
the other follows the image's aspect ratio, with neither the image's own size is used). In a bulk
spreadsheet the cell holds the same URI, or that object as JSON. The bytes are trusted only after
checks: size (``MAX_IMAGE_BYTES``), type by magic bytes (and matching the declared type), and the
dimensions read from the image header (``MAX_SIDE_PX``, ``MAX_PIXELS``) so no decompression bomb
reaches Word or LibreOffice. Anything else for an image field is ``invalid_image``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from pipelines.documents.errors import _CleanMessage
from pipelines.errors import InvalidInput

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_SIDE_PX = 10_000
MAX_PIXELS = 40_000_000
MAX_SIZE_MM = 1000.0

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
_DATA_URI = re.compile(r"data:(image/(?:png|jpeg|jpg))((?:;[\w.+-]+=[\w.+-]+)*);base64,(.*)", re.IGNORECASE | re.DOTALL)
# Start-of-frame markers carry the dimensions (not DHT C4, JPG C8, DAC CC, which share the range).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class InvalidImage(_CleanMessage, InvalidInput):
    code = "invalid_image"
    title = "The value of an image field is not a usable image"


@dataclass(frozen=True)
class ImageValue:
    """Checked image bytes and the size to show them at."""

    data: bytes
    content_type: str
    width_px: int
    height_px: int
    width_mm: float | None = None
    height_mm: float | None = None


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ValueError("the PNG has no IHDR header")
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("the JPEG segments are corrupt")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if marker == 0xDA:  # image data starts before any frame header: not a valid JPEG
            break
        i += 2 + length
    raise ValueError("the JPEG has no frame header")


def _sniff(data: bytes) -> tuple[str, tuple[int, int]]:
    if data.startswith(PNG_MAGIC):
        return "image/png", _png_size(data)
    if data.startswith(JPEG_MAGIC):
        return "image/jpeg", _jpeg_size(data)
    raise ValueError("the bytes are neither PNG nor JPEG")


def _size_mm(spec: dict, key: str, field: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_SIZE_MM:
        raise InvalidImage(f"{key} of image field {field!r} must be a number of millimetres in (0, {MAX_SIZE_MM:g}].",
                           field=field)
    return float(value)


def decode_data_uri(uri: str, field: str, *, max_bytes: int = MAX_IMAGE_BYTES) -> tuple[bytes, str, int, int]:
    """(bytes, content type, width px, height px) of a PNG/JPEG data URI, or ``InvalidImage``."""
    m = _DATA_URI.fullmatch(uri.strip())
    if m is None:
        raise InvalidImage(
            f"Image field {field!r} needs a PNG or JPEG data URI (data:image/png;base64,...).", field=field)
    payload = re.sub(r"\s+", "", m.group(3))
    if len(payload) * 3 // 4 > max_bytes + 2:
        raise InvalidImage(f"The image for {field!r} is larger than {max_bytes // 1024} KiB.", field=field)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage(f"The image for {field!r} is not valid base64.", field=field) from None
    if len(data) > max_bytes:
        raise InvalidImage(f"The image for {field!r} is larger than {max_bytes // 1024} KiB.", field=field)
    try:
        content_type, (width, height) = _sniff(data)
    except (ValueError, struct.error) as exc:
        raise InvalidImage(f"The image for {field!r} cannot be used: {exc}.", field=field) from None
    declared = m.group(1).lower().replace("image/jpg", "image/jpeg")
    if declared != content_type:
        raise InvalidImage(f"The image for {field!r} is declared {declared} but holds {content_type}.", field=field)
    if not (0 < width <= MAX_SIDE_PX and 0 < height <= MAX_SIDE_PX) or width * height > MAX_PIXELS:
        raise InvalidImage(f"The image for {field!r} is {width}x{height} pixels; at most {MAX_SIDE_PX} per side "
                           f"and {MAX_PIXELS // 1_000_000} megapixels are accepted.", field=field)
    return data, content_type, width, height


def parse_image_value(value: Any, field: str, *, max_bytes: int = MAX_IMAGE_BYTES) -> ImageValue | None:
    """The checked image for one image field; None for an empty value (the field renders empty)."""
    if isinstance(value, ImageValue):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    spec: Any = value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            spec = json.loads(value)
        except ValueError:
            raise InvalidImage(f"Image field {field!r} holds text that is neither a data URI nor a JSON object.",
                               field=field) from None
    if isinstance(spec, str):
        spec = {"data": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), str):
        raise InvalidImage(f"Image field {field!r} needs a data URI, or an object with a 'data' data URI.", field=field)
    data, content_type, width, height = decode_data_uri(spec["data"], field, max_bytes=max_bytes)
    return ImageValue(data, content_type, width, height,
                      _size_mm(spec, "width_mm", field), _size_mm(spec, "height_mm", field))
