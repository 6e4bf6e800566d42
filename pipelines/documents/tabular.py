"""Bulk input (CSV / XLSX rows), per-row checks, output filenames and the spreadsheet-safe report.

Rows stream: CSV is decoded incrementally and XLSX is read with openpyxl's read-only mode, so memory
stays flat however many rows there are. Cells are kept as text: 'NA', '007' or '-12.5' stay exactly
what the user typed. A cell that a spreadsheet would run as a formula (``is_formula``: ``=1+1``,
``+cmd|' /C calc'!A0``...) fails its row with ``formula_injection``; every report cell that starts
like a formula is also defanged, since the report is opened in a spreadsheet.
"""

from __future__ import annotations

import codecs
import csv
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from charset_normalizer import from_bytes

from pipelines.documents.errors import MissingColumns, ParseBudgetExceeded, TabularInvalid, TooManyRows
from pipelines.documents.xlsx_limits import check_xlsx_expansion
from pipelines.documents.formulas import is_formula
from pipelines.filenames import safe_name

MAX_CELL_BYTES = 1024 * 1024
SNIFF_BYTES = 64 * 1024
csv.field_size_limit(64 * 1024 * 1024)  # big cells are read, then refused per row with a clear error


@dataclass
class RowError:
    code: str
    message: str


# --- reading --------------------------------------------------------------------------------

def detect_encoding(head: bytes) -> str:
    """Encoding of a CSV from its first bytes: BOMs first, then UTF-8, then charset-normalizer."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the sniff window
            return "utf-8"
    # Valid multi-byte UTF-8 next to invalid bytes: a file of mixed encodings. Read it as UTF-8 so the
    # stray bytes become U+FFFD and fail their own rows (bad_encoding), instead of garbling every row.
    if any(ord(ch) > 127 and ch != "\ufffd" for ch in head.decode("utf-8", "replace")):
        return "utf-8"
    best = from_bytes(head).best()
    return best.encoding if best is not None else "cp1252"


_NON_ASCII = re.compile(rb"[\x80-\xff]")
SCAN_CHUNK = 1024 * 1024
CONTEXT_BYTES = 4 * 1024  # ASCII text before the first accent: charset-normalizer guesses better with context


def sniff_file_encoding(fh: BinaryIO) -> str:
    """Encoding of a whole CSV file, read in bounded chunks. The first ``SNIFF_BYTES`` decide unless
    they are plain ASCII, which says nothing (a cp1252 file whose first accent is on row 3,000 looks
    like UTF-8 there): then the file is scanned on to its first non-ASCII byte, and the text from
    that line on (with a little ASCII before it) decides, by the same rules."""
    head = fh.read(SNIFF_BYTES)
    encoding = detect_encoding(head)
    if encoding != "utf-8" or not head.isascii():
        return encoding
    context = head[-CONTEXT_BYTES:]
    while chunk := fh.read(SCAN_CHUNK):
        found = _NON_ASCII.search(chunk)
        if found is None:
            context = (context + chunk)[-CONTEXT_BYTES:]
            continue
        line_start = chunk.rfind(b"\n", 0, found.start()) + 1
        before = (context + chunk[:line_start])[-CONTEXT_BYTES:]
        sample = chunk[line_start:]
        if len(sample) < SNIFF_BYTES:
            sample += fh.read(SNIFF_BYTES - len(sample))
        return detect_encoding(before + sample[:SNIFF_BYTES])
    return "utf-8"  # ASCII throughout


def _open_text(path: Path) -> TextIO:
    with open(path, "rb") as fh:
        encoding = sniff_file_encoding(fh)
    # newline="" lets the csv module handle CRLF and newlines inside quoted cells.
    return open(path, encoding=encoding, errors="replace", newline="")


def _clean_header(header: list[str]) -> list[str]:
    names = [h.replace("\ufeff", "").strip() for h in header]
    if not any(names):
        raise TabularInvalid("The first row must name the columns.")
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise TabularInvalid(f"Column {name!r} appears twice in the header.", column=name)
        seen.add(name)
    return names


def iter_csv_rows(path: str | Path) -> tuple[list[str], Iterator[dict[str, str]]]:
    """(columns, rows): rows are dicts of strings; empty cells are '' (never NaN)."""
    fh = _open_text(Path(path))
    sample = fh.read(SNIFF_BYTES)
    fh.seek(0)
    reader = csv.reader(fh, delimiter=detect_delimiter(sample))
    try:
        columns = _clean_header(_next_csv_record(reader))
    except StopIteration:
        fh.close()
        raise TabularInvalid("The CSV file is empty.") from None
    except BaseException:
        fh.close()
        raise

    def rows() -> Iterator[dict[str, str]]:
        with fh:
            while True:
                try:
                    record = _next_csv_record(reader)
                except StopIteration:
                    return
                if not any(cell.strip() for cell in record):
                    continue  # blank lines (often a trailing CRLF) are not rows
                record = record + [""] * (len(columns) - len(record))
                yield {col: record[i] for i, col in enumerate(columns) if col}

    return columns, rows()


def _next_csv_record(reader) -> list[str]:
    try:
        return next(reader)
    except csv.Error as exc:  # a field over csv.field_size_limit, a NUL on old Pythons...
        raise TabularInvalid(f"The CSV file cannot be read (line {reader.line_num}): {exc}.") from None


DELIMITERS = ",;\t|"  # in order of preference when several fit equally
SNIFF_LINES = 50


def detect_delimiter(sample: str) -> str:
    """The delimiter of a CSV, from the first ``SNIFF_LINES`` lines of ``sample``, in one pass.

    Replaces ``csv.Sniffer``, whose regular expressions backtrack catastrophically on quote-heavy
    input (64 KB of ``"\\n`` took a minute, holding the GIL). Candidates are counted outside quoted
    fields (a quote opens a field only at its start, as the csv module reads it); the winner is the
    one found the same, non-zero number of times on every complete line, the most often; failing
    that, the one most lines agree on with the header; a file with none of them is one column: comma.
    """
    lines: list[dict[str, int]] = []
    counts = dict.fromkeys(DELIMITERS, 0)
    in_quotes, at_field_start = False, True
    for ch in sample:
        if ch == '"' and (in_quotes or at_field_start):
            in_quotes = not in_quotes  # '""' inside a quoted field toggles twice: still inside
            at_field_start = False
            continue
        if in_quotes:
            continue
        if ch in "\r\n":
            if any(counts.values()) or not at_field_start:
                lines.append(counts)
                if len(lines) >= SNIFF_LINES:
                    break
            counts, at_field_start = dict.fromkeys(DELIMITERS, 0), True
            continue
        if ch in counts:
            counts[ch] += 1
            at_field_start = True
        else:
            at_field_start = False
    if not lines:
        lines.append(counts)  # a header without a line end: it decides alone (a cut last line never counts)
    header = lines[0]
    consistent = [d for d in DELIMITERS if header[d] and all(line[d] == header[d] for line in lines)]
    if consistent:
        return max(consistent, key=lambda d: header[d])  # max keeps the first of equals: preference order
    agreeing = {d: sum(line[d] == header[d] for line in lines) for d in DELIMITERS if header[d]}
    return max(agreeing, key=lambda d: agreeing[d]) if agreeing else ","


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def iter_xlsx_rows(path: str | Path, sheet: str | None = None) -> tuple[list[str], Iterator[dict[str, str]]]:
    """(columns, rows) from the first (or named) sheet; cached values, not formulas.

    openpyxl is handed an open file, not the path: given a path it insists on an .xlsx extension,
    and uploads are stored under server-made names.
    """
    from openpyxl import load_workbook

    fh = open(path, "rb")
    try:
        check_xlsx_expansion(fh)
        try:
            workbook = load_workbook(fh, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a bad file
            raise _unreadable(exc, path) from exc
        try:
            if not workbook.worksheets:
                raise TabularInvalid("The XLSX file holds no worksheet.")
            worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
            values = worksheet.iter_rows(values_only=True)
            header = _next_record(values, path)
            if header is None:
                raise TabularInvalid("The sheet is empty.")
            columns = _clean_header([_cell_text(v) for v in header])
        except BaseException:
            workbook.close()
            raise
    except BaseException:
        fh.close()
        raise

    def rows() -> Iterator[dict[str, str]]:
        try:
            while (record := _next_record(values, path)) is not None:
                cells = [_cell_text(v) for v in record]
                if not any(c.strip() for c in cells):
                    continue
                cells += [""] * (len(columns) - len(cells))
                yield {col: cells[i] for i, col in enumerate(columns) if col}
        finally:
            workbook.close()
            fh.close()

    return columns, rows()


def _next_record(values: Iterator[tuple], path: str | Path) -> tuple | None:
    try:
        return next(values)
    except StopIteration:
        return None
    except Exception as exc:  # a damaged sheet part, found while streaming
        # openpyxl's messages may quote the file's (server-side, temporary) path: keep it out of answers.
        raise _unreadable(exc, path) from exc


def _unreadable(exc: Exception, path: str | Path) -> TabularInvalid:
    return TabularInvalid(f"The XLSX file cannot be read: {str(exc).replace(str(path), 'the file')}")


def iter_rows(path: str | Path) -> tuple[list[str], Iterator[dict[str, str]]]:
    """CSV or XLSX, told apart by content (an XLSX is a ZIP), not by the file name."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x03\x04":
        return iter_xlsx_rows(path)
    return iter_csv_rows(path)


# --- checks ---------------------------------------------------------------------------------

def count_rows(rows: Iterator[dict[str, str]], max_rows: int, seconds: float) -> int:
    """The number of data rows, read at most ``max_rows + 1`` rows and ``seconds`` far: ``TooManyRows``
    past the first bound, ``ParseBudgetExceeded`` past the second. Closes ``rows`` either way."""
    deadline = time.monotonic() + seconds
    count = 0
    try:
        for _ in rows:
            count += 1
            if count > max_rows:
                raise TooManyRows(f"The spreadsheet has more than {max_rows:,} rows; at most {max_rows:,} are "
                                  "allowed in one bulk run. Split it into several runs.", max_rows=max_rows)
            if time.monotonic() > deadline:
                raise ParseBudgetExceeded(f"Reading the spreadsheet took longer than {seconds:g} s; "
                                          "split it into smaller files.", seconds=seconds)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    return count


def check_columns(columns: Iterable[str], required: Iterable[str]) -> None:
    """Raise ``MissingColumns`` naming every required field without a column."""
    present = set(columns)
    missing = sorted(name for name in required if name not in present)
    if missing:
        raise MissingColumns(f"The spreadsheet has no column for: {', '.join(missing)}.", missing=missing)


def validate_row(row: dict[str, str], required_values: Iterable[str], max_cell_bytes: int = MAX_CELL_BYTES) -> RowError | None:
    """The first problem with one row, or None. ``required_values``: fields that must not be empty."""
    for column, value in row.items():
        if len(value) * 4 > max_cell_bytes and len(value.encode("utf-8")) > max_cell_bytes:
            return RowError("cell_too_large", f"Cell {column!r} holds more than {max_cell_bytes // 1024} KiB.")
        if "\ufffd" in value:
            return RowError("bad_encoding", f"Cell {column!r} holds bytes that are not valid text in this file's encoding.")
        if is_formula(value):
            return RowError(
                "formula_injection",
                f"Cell {column!r} holds a spreadsheet formula ({_preview(value)}), which Kiln refuses as input. "
                "If you meant the literal text, prefix the value with an apostrophe (') in the CSV: Kiln drops "
                "that apostrophe and fills in the rest as text. Otherwise remove the leading '=', '+', '-' or '@'.")
    empty = [name for name in required_values if not row.get(name, "").strip()]
    if empty:
        return RowError("missing_values", f"Empty value for required field(s): {', '.join(empty)}.")
    return None


def unescape_literal(value: str) -> str:
    """A cell escaped the spreadsheet way ("'=1+1") holds the literal text after the apostrophe."""
    if value.startswith("'") and is_formula(value[1:]):
        return value[1:]
    return value


def _preview(value: str, limit: int = 40) -> str:
    text = value.strip().replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- output filenames -----------------------------------------------------------------------

_PATTERN_FIELD = re.compile(r"\{([^{}]++)\}")
MAX_STEM = 120  # bytes of UTF-8; a "-N" suffix and the extension come on top


def pattern_fields(pattern: str) -> list[str]:
    return [m.strip() for m in _PATTERN_FIELD.findall(pattern)]


def sanitize_stem(text: str) -> str:
    """A file name stem from row values: the one sanitiser (``pipelines.filenames``), with each run of
    separators and control characters made ``_`` so ``a/b`` stays readable as ``a_b``; may be ''."""
    return safe_name(text, default="", replacement="_", max_bytes=MAX_STEM)


class FilenameAllocator:
    """Names outputs from a pattern such as ``"{last_name}-{first_name}"``, unique within one ZIP.

    Uniqueness ignores case (Windows and macOS unzip into case-insensitive folders); a clash gets
    ``-2``, ``-3``... Call ``reserve`` with names already used (e.g. on resume) before allocating.
    """

    def __init__(self, pattern: str, fallback: str = "row-{row}") -> None:
        self.pattern, self.fallback = pattern or fallback, fallback
        self.used: set[str] = set()

    def reserve(self, filename: str) -> None:
        self.used.add(filename.lower())

    def allocate(self, row: dict[str, str], row_number: int, extension: str) -> str:
        values = {**row, "row": str(row_number)}
        stem = sanitize_stem(_PATTERN_FIELD.sub(lambda m: values.get(m.group(1).strip(), ""), self.pattern))
        if not stem.strip("_- "):
            stem = sanitize_stem(self.fallback.replace("{row}", str(row_number)))
        candidate, n = f"{stem}.{extension}", 1
        while candidate.lower() in self.used:
            n += 1
            candidate = f"{stem}-{n}.{extension}"
        self.used.add(candidate.lower())
        return candidate


# --- report ---------------------------------------------------------------------------------

REPORT_COLUMNS = ["row", "status", "error_code", "error", "output_filename", "sha256"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defang(value: Any) -> str:
    """Make a cell safe to open in a spreadsheet: no formula can start it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class ReportWriter:
    """Writes the per-row report CSV (UTF-8 with BOM so Excel reads accents) row by row."""

    def __init__(self, stream: TextIO, extra_columns: Iterable[str] = ()) -> None:
        self.extra = list(extra_columns)
        self.writer = csv.writer(stream, lineterminator="\r\n")
        stream.write("\ufeff")
        self.writer.writerow([defang(c) for c in REPORT_COLUMNS + self.extra])

    def write(self, row: int, status: str, error_code: str = "", error: str = "", output_filename: str = "",
              sha256: str = "", extra: dict[str, Any] | None = None) -> None:
        cells = [row, status, error_code, error, output_filename, sha256] + [(extra or {}).get(c, "") for c in self.extra]
        self.writer.writerow([defang(c) for c in cells])
