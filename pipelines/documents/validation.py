"""Validate an uploaded .docx before anything else touches it.

Checks, in order, each with its own typed error (stable ``code``):
- a real ZIP (``not_docx``), with safe entry names (``unsafe_zip_entry``: ``..``, absolute paths,
  backslashes, drive letters, NUL);
- bounded expansion (``zip_bomb``): total uncompressed size, per-entry ratio, entry count; sizes are
  measured while reading, not trusted from the ZIP directory (which an attacker writes);
- OOXML parts present: ``[Content_Types].xml`` and ``word/document.xml`` (``not_docx``);
- not macro-enabled (``macro_enabled``): no ``vbaProject.bin``; ``[Content_Types].xml`` parsed, and
  no content type (any case, any spacing) that is macro-enabled, a VBA project, or a template/
  macro main document type other than the plain ``document.main+xml``;
- every XML part parses with defusedxml: DTDs, entity declarations and external references are
  refused (``template_invalid``), so no billion-laughs expansion or XXE;
- no reference to anything outside the package (``external_reference``, see ``external_refs``).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from pipelines.documents import external_refs
from pipelines.documents.errors import MacroEnabled, NotDocx, TemplateInvalid, UnsafeZipEntry, ZipBomb

MAX_TOTAL_UNCOMPRESSED = 100 * 1024 * 1024  # 100 MiB expanded: far above any real template
MAX_COMPRESSION_RATIO = 100  # per entry; real DOCX XML compresses ~5-20x
RATIO_MIN_SIZE = 1024 * 1024  # small entries may compress well (repetitive XML); only big ones are judged
MAX_ENTRIES = 2000
MAX_XML_PART = 50 * 1024 * 1024

# The only main document type a template may have; docxtpl/python-docx refuse the others (.docm,
# .dotx, .dotm) with an unhelpful error, and the macro-enabled ones carry code.
DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
MAIN_TYPES = ("document.main+xml", "template.main+xml", "macroenabled.main+xml", "macroenabledtemplate.main+xml")
REQUIRED_PARTS = ("[Content_Types].xml", "word/document.xml")


@dataclass(frozen=True)
class DocxInfo:
    parts: tuple[str, ...]
    total_uncompressed: int


def _check_name(name: str) -> None:
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeZipEntry(f"Entry name {name!r} is not allowed (backslash or NUL).", entry=name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeZipEntry(f"Entry name {name!r} is an absolute path.", entry=name)
    if ".." in PurePosixPath(name).parts:
        raise UnsafeZipEntry(f"Entry name {name!r} climbs out of the archive ('..').", entry=name)


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """Read one entry, stopping as soon as it exceeds the remaining budget or the ratio cap."""
    chunks: list[bytes] = []
    size = 0
    with archive.open(info) as stream:
        while chunk := stream.read(64 * 1024):
            size += len(chunk)
            if size > budget:
                raise ZipBomb(
                    f"The archive expands beyond {MAX_TOTAL_UNCOMPRESSED // (1024 * 1024)} MiB.", entry=info.filename
                )
            if size > RATIO_MIN_SIZE and size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                raise ZipBomb(
                    f"Entry {info.filename!r} expands more than {MAX_COMPRESSION_RATIO}x.", entry=info.filename
                )
            chunks.append(chunk)
    return b"".join(chunks)


def _parse_xml_safely(name: str, data: bytes):
    try:
        return safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise TemplateInvalid(
            f"Part {name!r} declares a DTD or entities, which are not allowed in templates.", part=name
        ) from exc
    except safe_et.ParseError as exc:
        raise TemplateInvalid(f"Part {name!r} is not well-formed XML: {exc}.", part=name) from exc


def _check_content_types(root) -> None:
    """Refuse macro-enabled and non-document main types, read from the parsed Default/Override entries."""
    for el in root.iter():
        content_type = " ".join((el.get("ContentType") or "").split()).lower().replace(" ", "")
        if not content_type:
            continue
        if "macroenabled" in content_type or "vbaproject" in content_type or "vbadata" in content_type:
            raise MacroEnabled("The document is macro-enabled (its content types declare macros); "
                               "upload a macro-free .docx.")
        if content_type.endswith(MAIN_TYPES) and content_type != DOCX_MAIN:
            raise MacroEnabled("The document is a Word template (.dotx/.dotm), not a .docx document; "
                               "open it in Word and save it as a .docx.")


def validate_docx(source: bytes | BinaryIO | str) -> DocxInfo:
    """Raise a typed ``TemplateInvalid`` subclass unless ``source`` is a safe, macro-free .docx."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise NotDocx("The upload is not a ZIP archive, so it cannot be a .docx file.") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ZipBomb(f"The archive holds {len(infos)} entries (at most {MAX_ENTRIES}).")
        names = [info.filename for info in infos]
        for name in names:
            _check_name(name)
        if len(set(names)) != len(names):
            raise UnsafeZipEntry("The archive holds the same entry name twice.")
        # The directory's sizes are only a first, cheap filter: reading enforces the real limits.
        if sum(info.file_size for info in infos) > MAX_TOTAL_UNCOMPRESSED:
            raise ZipBomb(f"The archive declares more than {MAX_TOTAL_UNCOMPRESSED // (1024 * 1024)} MiB expanded.")
        missing = [part for part in REQUIRED_PARTS if part not in names]
        if missing:
            raise NotDocx(f"The archive lacks the Word parts {', '.join(missing)}: it is not a .docx file.")
        if any(PurePosixPath(name).name.lower() == "vbaproject.bin" for name in names):
            raise MacroEnabled("The document contains macros (vbaProject.bin); upload a macro-free .docx.")

        budget = MAX_TOTAL_UNCOMPRESSED
        xml_parts: dict[str, bytes] = {}
        for info in infos:
            if info.is_dir():
                continue
            try:
                data = _read_bounded(archive, info, budget)
            except ZipBomb:
                raise
            except Exception as exc:  # corrupt data fails in many ways: zlib.error, bad CRC, lzma...
                raise NotDocx(f"Entry {info.filename!r} cannot be read ({type(exc).__name__}: {exc}); "
                              "the file is damaged.") from exc
            budget -= len(data)
            lowered = info.filename.lower()
            if lowered.endswith((".xml", ".rels")):
                if len(data) > MAX_XML_PART:
                    raise ZipBomb(f"Part {info.filename!r} is larger than {MAX_XML_PART // (1024 * 1024)} MiB.")
                root = _parse_xml_safely(info.filename, data)
                if lowered == "[content_types].xml":
                    _check_content_types(root)
            if not lowered.startswith("word/media/") or external_refs.looks_like_xml(info.filename, data):
                xml_parts[info.filename] = data  # pictures only when XML (SVG can reference URLs)
        external_refs.check_parts(xml_parts)
        return DocxInfo(parts=tuple(names), total_uncompressed=MAX_TOTAL_UNCOMPRESSED - budget)
