"""Bounds on how far an uploaded XLSX may expand, checked before openpyxl opens it."""

from __future__ import annotations

import re
import zipfile
from typing import BinaryIO

from pipelines.documents.errors import TabularInvalid, XlsxBomb
from pipelines.documents.validation import (
    MAX_COMPRESSION_RATIO, MAX_ENTRIES, MAX_TOTAL_UNCOMPRESSED, RATIO_MIN_SIZE,
)

SCAN_CHUNK = 1024 * 1024

# openpyxl streams worksheets in read-only mode but loads every other part whole (shared strings,
# styles): a 300 KB upload that expands to 300 MB of shared strings took a worker to 650 MB before
# the header was read. So the archive's expansion is bounded first, measured while decompressing
# (the ZIP directory's sizes are the attacker's word), with the template rules for ratio and entries.
MAX_XLSX_UNCOMPRESSED = 512 * 1024 * 1024  # all parts; a 100,000-row sheet is tens of MiB
MAX_XLSX_LOADED_WHOLE = MAX_TOTAL_UNCOMPRESSED  # the parts openpyxl keeps in memory, together
_STREAMED_PART = re.compile(r"xl/worksheets/[^/]+\.xml")


def check_xlsx_expansion(fh: BinaryIO) -> None:
    """Raise ``XlsxBomb`` unless the workbook's parts expand within bounds; leaves ``fh`` at 0."""
    try:
        archive = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TabularInvalid(f"The XLSX file cannot be read: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise XlsxBomb(f"The XLSX file holds {len(infos)} archive entries (at most {MAX_ENTRIES}).")
        total = whole = 0
        for info in infos:
            if info.is_dir():
                continue
            loaded_whole = not _STREAMED_PART.fullmatch(info.filename)
            size = 0
            try:
                with archive.open(info) as stream:
                    while chunk := stream.read(SCAN_CHUNK):
                        size += len(chunk)
                        _check_expansion(info, size, total + size, whole + size if loaded_whole else whole)
            except XlsxBomb:
                raise
            except Exception as exc:  # noqa: BLE001 - corrupt data fails in many ways: zlib.error, CRC, lzma...
                raise TabularInvalid(f"The XLSX file cannot be read: entry {info.filename!r}: {exc}") from exc
            total += size
            whole += size if loaded_whole else 0
    fh.seek(0)


def _check_expansion(info: zipfile.ZipInfo, size: int, total: int, whole: int) -> None:
    mib = 1024 * 1024
    if total > MAX_XLSX_UNCOMPRESSED:
        raise XlsxBomb(f"The XLSX file expands beyond {MAX_XLSX_UNCOMPRESSED // mib} MiB.", entry=info.filename)
    if whole > MAX_XLSX_LOADED_WHOLE:
        raise XlsxBomb(f"The XLSX file's shared strings, styles and other parts expand beyond "
                       f"{MAX_XLSX_LOADED_WHOLE // mib} MiB.", entry=info.filename)
    if size > RATIO_MIN_SIZE and size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise XlsxBomb(f"Entry {info.filename!r} of the XLSX file expands more than {MAX_COMPRESSION_RATIO}x.",
                       entry=info.filename)
