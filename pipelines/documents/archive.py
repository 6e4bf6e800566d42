"""Streaming ZIP output: files are added one by one from disk and the archive is produced as a
sequence of chunks (zipstream-ng), so neither the ZIP nor its members are ever held in memory.

DOCX and PDF members are already compressed, so they are stored, not deflated again (deflating
them costs CPU and saves almost nothing); text members (the report) are deflated.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import zipstream

from pipelines.filenames import safe_name

_ALREADY_COMPRESSED = (".docx", ".pdf", ".xlsx", ".zip", ".png", ".jpg", ".jpeg")


def _compression(arcname: str) -> int:
    return zipfile.ZIP_STORED if arcname.lower().endswith(_ALREADY_COMPRESSED) else zipfile.ZIP_DEFLATED


def _safe_arcname(arcname: str) -> str:
    """Each folder level made safe; no empty, '.' or '..' level survives (sanitising drops leading dots)."""
    parts = [safe_name(part, default="") for part in arcname.replace("\\", "/").split("/")]
    return "/".join(p for p in parts if p) or "file"


def _unique(name: str, used: set[str]) -> str:
    folder, slash, base = name.rpartition("/")
    stem, dot, ext = base.rpartition(".") if "." in base else (base, "", "")
    stem = f"{folder}{slash}{stem}"
    candidate, n = name, 1
    while candidate.lower() in used:  # case-insensitive, as Windows and macOS unzip
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    used.add(candidate.lower())
    return candidate


def zip_chunks(entries: Iterable[tuple[str | Path, str]]) -> Iterator[bytes]:
    """Yield the bytes of a ZIP holding ``(path_on_disk, name_in_zip)`` entries, in order.

    ``entries`` may be a generator: each entry is streamed before the next one is asked for, so
    a caller can render a file, hand it over, and delete it once the next entry is requested.
    Names should already be unique and safe (see ``tabular.FilenameAllocator``); each still passes the
    one sanitiser (``pipelines.filenames``), which leaves a safe name unchanged, so a name recorded
    before a rule was added (a bidi control, a leading '-') cannot reach an archive; a clash that makes
    gets a ``-N`` suffix.
    """
    stream = zipstream.ZipStream(sized=False)
    used: set[str] = set()
    for path, arcname in entries:
        arcname = _unique(_safe_arcname(arcname), used)
        stream.add_path(str(path), arcname, compress_type=_compression(arcname))
        yield from stream.all_files()
    yield from stream.footer()


def write_zip(entries: Iterable[tuple[str | Path, str]], out: BinaryIO) -> int:
    """Stream the ZIP into a file object; returns the number of bytes written."""
    written = 0
    for chunk in zip_chunks(entries):
        out.write(chunk)
        written += len(chunk)
    return written
