"""Reference images: what an upload is (type, size, perceptual hash) or a typed refusal. Plain functions.

Only PNG, JPEG and WebP are decoded, and only after the header's dimensions passed the side limit, so a
decompression bomb (a tiny PNG that declares 100,000 x 100,000 pixels) is refused before a pixel is
inflated; Pillow's own bomb guard stays on and its warning is an error here. The type comes from the bytes,
never from a filename or a declared content type. The perceptual hash is imagehash's ``phash`` (DCT, 8x8:
16 hex digits), so a re-encoded or resized copy lands a few bits away from the original.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import imagehash
from PIL import Image, UnidentifiedImageError

from pipelines.episodes.errors import ImageInvalid, ImageTooLarge, ImageUnsupported

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@dataclass(frozen=True)
class ImageInfo:
    media_type: str
    width: int
    height: int
    phash: str


def _looks_like_markup(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<", b"<?xml")) or b"<svg" in head.lower()


def inspect_image(data: bytes, *, max_side: int) -> ImageInfo:
    """Type, dimensions and perceptual hash of ``data``; ``ImageUnsupported`` / ``ImageInvalid`` /
    ``ImageTooLarge`` otherwise. Decodes the pixels once (to prove the file is whole, and to hash it)."""
    if not data:
        raise ImageInvalid("The file is empty.")
    if _looks_like_markup(data[:512]):
        raise ImageUnsupported("SVG and other markup images are not accepted; upload PNG, JPEG or WebP.")
    if Image.MAX_IMAGE_PIXELS is None:  # someone switched Pillow's guard off in this process: put it back
        Image.MAX_IMAGE_PIXELS = int(1024 * 1024 * 1024 // 4 // 3)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
                width, height = image.size
                if width > max_side or height > max_side:
                    raise ImageTooLarge(f"The image is {width}x{height} pixels; the limit is {max_side} pixels "
                                        "a side.", limit=max_side)
                if width < 1 or height < 1:
                    raise ImageInvalid("The image has no pixels.")
                media_type = FORMATS[image.format]
                image.load()
                phash = str(imagehash.phash(image))
    except UnidentifiedImageError:
        raise ImageUnsupported("The file is not a PNG, JPEG or WebP image.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge("The image declares more pixels than allowed (a decompression bomb?).") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data: Pillow's decoder errors
        raise ImageInvalid(f"The image could not be decoded ({type(exc).__name__}).") from None
    return ImageInfo(media_type=media_type, width=width, height=height, phash=phash)


def hamming(a: str, b: str) -> int:
    """Bits that differ between two 16-hex-digit perceptual hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
