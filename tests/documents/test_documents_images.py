"""Image fields: PNG/JPEG data URIs checked, then rendered as real pictures (docxtpl InlineImage)."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
import zlib

import pytest

from pipelines.documents.images import InvalidImage, decode_data_uri, parse_image_value
from pipelines.documents.render import prepare_template, render_docx
from tests.support.corpus import PUBLIC


def png_bytes(width: int = 3, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    """A real, decodable RGB PNG written with zlib and struct."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg_header(width: int = 16, height: int = 8) -> bytes:
    """The markers a reader needs for a JPEG's type and size (SOI, JFIF APP0, SOF0, EOI)."""
    app0 = b"JFIF\x00\x01\x01\x01\x00\x48\x00\x48\x00\x00"
    sof0 = b"\x08" + struct.pack(">HH", height, width) + b"\x01\x01\x11\x00"
    return (b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0
            + b"\xff\xc0" + struct.pack(">H", len(sof0) + 2) + sof0 + b"\xff\xd9")


def data_uri(data: bytes, content_type: str = "image/png") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def media_parts(docx: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        return {n: z.read(n) for n in z.namelist() if n.startswith("word/media/")}


def test_png_and_jpeg_data_uris_decode_with_their_size():
    png = png_bytes(5, 4)
    assert decode_data_uri(data_uri(png), "logo") == (png, "image/png", 5, 4)
    jpeg = jpeg_header(640, 480)
    assert decode_data_uri(data_uri(jpeg, "image/jpeg"), "logo")[1:] == ("image/jpeg", 640, 480)
    image = parse_image_value('{"data": "%s", "width_mm": 40}' % data_uri(png), "logo")
    assert image.data == png and image.width_mm == 40.0 and image.height_mm is None
    assert parse_image_value("", "logo") is None and parse_image_value(None, "logo") is None


@pytest.mark.parametrize("value,why", [
    ("https://example.test/logo.png", "data URI"),
    ("not an image at all", "data URI"),
    (data_uri(b"GIF89a" + b"\x00" * 20, "image/png"), "neither PNG nor JPEG"),
    ("data:image/svg+xml;base64," + base64.b64encode(b"<svg/>").decode(), "data URI"),
    (data_uri(png_bytes(), "image/jpeg"), "declared image/jpeg but holds image/png"),
    ("data:image/png;base64,%%%notbase64", "base64"),
    (data_uri(png_bytes(20_000, 1)), "20000x1 pixels"),
    (data_uri(b"\x89PNG\r\n\x1a\n" + b"\x00" * 4), "IHDR"),
    ({"data": data_uri(png_bytes()), "width_mm": -3}, "millimetres"),
    ({"width_mm": 40}, "'data'"),
    (42, "data URI"),
    ("{not json", "neither a data URI nor a JSON object"),
])
def test_anything_else_is_invalid_image(value, why):
    with pytest.raises(InvalidImage) as caught:
        parse_image_value(value, "logo")
    assert caught.value.code == "invalid_image" and why in caught.value.message and "'logo'" in caught.value.message


def test_image_size_is_capped_before_decoding():
    with pytest.raises(InvalidImage, match="larger than"):
        decode_data_uri(data_uri(png_bytes() + b"\x00" * 4096), "logo", max_bytes=1024)


def test_corpus_inline_image_template_renders_real_pictures():
    template = prepare_template((PUBLIC / "docx/inline_image_tpl.docx").read_bytes())
    kinds = {f.name: f.kind for f in template.analysis.fields}
    assert kinds == {"frameworks": "loop", "myimage": "image", "myimageratio": "image"}
    logo, ratio, item = png_bytes(3, 2), png_bytes(4, 8, (0, 0, 255)), png_bytes(2, 2, (0, 255, 0))
    output = render_docx(template, {
        "myimage": {"data": data_uri(logo), "width_mm": 40},
        "myimageratio": data_uri(ratio),
        "frameworks": [{"image": data_uri(item), "desc": "Kiln"}],
    })
    media = media_parts(output).values()
    assert logo in media and ratio in media and item in media
    empty = render_docx(template, {"myimage": "", "myimageratio": "", "frameworks": [{"image": "", "desc": "Kiln"}]})
    with zipfile.ZipFile(io.BytesIO(output)) as z, zipfile.ZipFile(io.BytesIO(empty)) as without:
        document = z.read("word/document.xml").decode()
        drawings_in_template = without.read("word/document.xml").decode().count("<w:drawing>")
    # {{ myimage }} appears three times in the template, {{ myimageratio }} once, plus one loop item.
    assert document.count("<w:drawing>") == drawings_in_template + 5 and "Kiln" in document
    assert 'cx="1440000"' in document, "40 mm wide (36,000 EMU per mm)"


def test_jpeg_with_a_height_keeps_its_ratio():
    template = prepare_template((PUBLIC / "docx/inline_image_tpl.docx").read_bytes())
    jpeg = jpeg_header(64, 32)
    output = render_docx(template, {"myimage": "", "frameworks": [],
                                    "myimageratio": {"data": data_uri(jpeg, "image/jpeg"), "height_mm": 20}})
    assert list(media_parts(output).values()) == [jpeg]
    with zipfile.ZipFile(io.BytesIO(output)) as z:
        document = z.read("word/document.xml").decode()
    assert 'cx="1440000" cy="720000"' in document, "20 mm high, 40 mm wide: the 2:1 ratio"


def test_invalid_image_value_fails_the_fill():
    template = prepare_template((PUBLIC / "docx/inline_image_tpl.docx").read_bytes())
    with pytest.raises(InvalidImage) as caught:
        render_docx(template, {"myimage": "see attached", "myimageratio": "", "frameworks": []})
    assert caught.value.code == "invalid_image" and "'myimage'" in caught.value.message
