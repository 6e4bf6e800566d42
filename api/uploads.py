"""Streaming uploads for every product: multipart body -> object store, never whole in memory.

``stream_upload_to_store(request, store, key, max_bytes=...)`` parses the ``multipart/form-data``
body as it arrives (python-multipart's streaming parser over ``request.stream()``), hands the
``file`` field's bytes in small batches to an ``ObjectStore.open_writer`` writer (each write a
brief worker-thread call; the event loop does the waiting for the client), and keeps the small
form fields beside it. Memory
stays at a few chunks whatever the file size. A too-large upload answers 413
``payload_too_large`` and a body cut off before its closing boundary 400 ``malformed_multipart``;
both leave nothing stored.

``sniff(first_bytes)`` names the content type from the bytes, never from the filename.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from fastapi import Request
from starlette.datastructures import UploadFile  # the base class: parsed forms hold it, FastAPI subclasses it
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.problems import ApiProblem
from pipelines.errors import PayloadTooLarge
from resources.objectstore import ObjectStore

CHUNK_SIZE = 1024 * 1024
SNIFF_BYTES = 512
MAX_FIELD_BYTES = 64 * 1024  # non-file form fields are small JSON/text
MULTIPART_OVERHEAD = 1024 * 1024  # headers and other fields, beyond the file's own limit
WRITE_BATCH_BYTES = 256 * 1024  # body chunks (~64 KiB) gathered per thread hop: fewer hops, small memory


@dataclass(frozen=True)
class StreamedUpload:
    key: str
    sha256: str
    size_bytes: int
    filename: str | None
    content_type: str  # sniffed from the bytes
    declared_content_type: str | None  # what the client claimed (not trusted)
    fields: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------- sniffing

def sniff(first_bytes: bytes) -> str:
    """The content type the leading bytes show (magic numbers); ``application/octet-stream`` if unknown."""
    b = first_bytes
    if b.startswith(b"%PDF-"):
        return "application/pdf"
    if b.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if b.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if b.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return "image/webp"
    if b[:4] == b"RIFF" and b[8:12] == b"WAVE":
        return "audio/wav"
    if b[:4] == b"RIFF" and b[8:12] == b"AVI ":
        return "video/x-msvideo"
    if b[4:8] == b"ftyp":
        brand = b[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if b.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in b[:64] else "video/x-matroska"
    if b.startswith(b"OggS"):
        return "audio/ogg"
    if b.startswith(b"fLaC"):
        return "audio/flac"
    if b.startswith(b"ID3") or (len(b) > 1 and b[0] == 0xFF and b[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if b.startswith(b"PK\x03\x04"):
        return "application/zip"  # DOCX/XLSX are ZIPs: products check the members, not this
    if b.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "application/x-ole-storage"  # legacy .doc/.xls
    return _sniff_text(b)


def _sniff_text(b: bytes) -> str:
    if not b:
        return "application/octet-stream"
    sample = b[:SNIFF_BYTES]
    if b"\x00" in sample:
        return "application/octet-stream"
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the sample's end is fine
        if exc.start < len(sample) - 3:
            return "application/octet-stream"
        text = sample[: exc.start].decode("utf-8")
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        return "application/json"
    return "text/plain"


# ---------------------------------------------------------------------------- streaming

class _MultipartFeed:
    """Drives python-multipart over the request stream; yields the file field's chunks."""

    def __init__(self, request: Request, boundary: bytes, file_field: str) -> None:
        self.body = request.stream().__aiter__()
        self.file_field = file_field
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.declared_type: str | None = None
        self.file_seen = False
        self.file_done = False
        self.body_done = False
        self.complete = False  # the closing boundary arrived: nothing was cut off
        self.ready: list[bytes] = []
        self._headers: dict[str, str] = {}
        self._header_field = b""
        self._header_value = b""
        self._part_kind: str | None = None  # "file" | "field" | "skip"
        self._part_name = ""
        self._field_buffer = bytearray()
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._append("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._append("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        })

    def _append(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _part_begin(self) -> None:
        self._headers, self._part_kind, self._field_buffer = {}, None, bytearray()

    def _header_end(self) -> None:
        # Kept byte-for-byte (latin-1 maps each byte to one character): parse_options_header encodes
        # the value back to latin-1, and browsers send names and filenames as raw UTF-8 bytes, which
        # are decoded as UTF-8 only once parsed.
        self._headers[self._header_field.decode("latin-1").lower()] = self._header_value.decode("latin-1")
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        self._part_name = name
        if name == self.file_field and not self.file_seen:
            self._part_kind = "file"
            self.file_seen = True
            self.filename = filename.decode("utf-8", "replace") if filename is not None else None
            self.declared_type = self._headers.get("content-type")
        elif filename is None:
            self._part_kind = "field"
        else:
            self._part_kind = "skip"  # a second file: ignored, never stored

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_kind == "file":
            self.ready.append(bytes(data[start:end]))
        elif self._part_kind == "field":
            self._field_buffer += data[start:end]
            if len(self._field_buffer) > MAX_FIELD_BYTES:
                raise ApiProblem(413, "payload_too_large", f"Form field {self._part_name!r} is too large.")

    def _end(self) -> None:
        self.complete = True

    def _part_end(self) -> None:
        if self._part_kind == "file":
            self.file_done = True
        elif self._part_kind == "field" and len(self.fields) < 50:
            self.fields[self._part_name] = self._field_buffer.decode("utf-8", "replace")

    async def _feed_once(self) -> None:
        try:
            chunk = await self.body.__anext__()
        except StopAsyncIteration:
            self.body_done = True
            self.parser.finalize()
            # python-multipart's finalize() does not check for the closing boundary: without it the
            # body was cut off (a dropped connection, a proxy limit) and the file may be partial.
            if not self.complete:
                raise ApiProblem(400, "malformed_multipart",
                                 "The multipart body ended before its closing boundary; the upload is incomplete.")
            return
        try:
            self.parser.write(chunk)
        except MultipartParseError:
            raise ApiProblem(400, "malformed_multipart", "The multipart body could not be parsed.") from None

    async def until_file_starts(self) -> None:
        while not self.file_seen and not self.body_done:
            await self._feed_once()

    async def next_file_chunk(self) -> bytes | None:
        """The file bytes parsed so far (at least one body chunk's worth), or None at its end."""
        while not self.ready and not self.file_done and not self.body_done:
            await self._feed_once()
        if not self.ready:
            return None
        data, self.ready = b"".join(self.ready), []
        return data

    async def rest(self) -> None:
        while not self.body_done:
            await self._feed_once()


async def stream_upload_to_store(
    source: Request | UploadFile,
    store: ObjectStore,
    key: str,
    *,
    max_bytes: int,
    field_name: str = "file",
) -> StreamedUpload:
    """Stream the upload's file to ``store`` under ``key`` (a server-made key), hashing as it goes."""
    if isinstance(source, UploadFile):
        return await _from_upload_file(source, store, key, max_bytes)
    content_type, params = parse_options_header(source.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise ApiProblem(415, "unsupported_media_type", f"Send multipart/form-data with the file in {field_name!r}.")
    boundary = params.get(b"boundary")
    if not boundary or not re.fullmatch(rb"[ -~]{1,200}", boundary):
        raise ApiProblem(400, "malformed_multipart", "The multipart boundary is missing or invalid.")
    declared_length = source.headers.get("content-length")
    if declared_length and declared_length.isdigit() and int(declared_length) > max_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")

    feed = _MultipartFeed(source, boundary, field_name)
    await feed.until_file_starts()
    if not feed.file_seen:
        raise ApiProblem(422, "missing_file", f"The multipart body has no {field_name!r} file field.")

    # The event loop reads the body; only each batch's blocking write goes to a worker thread, and
    # briefly. A stalled client therefore parks a coroutine, never a thread (the thread pool is
    # shared by every sync route, /healthz included); the idle timeout lives in api.transport.
    writer = await anyio.to_thread.run_sync(lambda: store.open_writer(key, max_bytes=max_bytes))
    head = bytearray()
    pending = bytearray()
    received = 0
    try:
        while (chunk := await feed.next_file_chunk()) is not None:
            received += len(chunk)
            if received > max_bytes:
                raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
            if len(head) < SNIFF_BYTES:
                head.extend(chunk[: SNIFF_BYTES - len(head)])
            pending += chunk
            if len(pending) >= WRITE_BATCH_BYTES:
                await anyio.to_thread.run_sync(writer.write, bytes(pending))
                pending.clear()
        if pending:
            await anyio.to_thread.run_sync(writer.write, bytes(pending))
            pending.clear()
        await feed.rest()  # form fields after the file, up to the closing boundary
        # Published only once the whole request arrived: a cut-off body never leaves an object.
        put = await anyio.to_thread.run_sync(writer.commit)
    except BaseException:
        # Shielded, so a cancelled request (timeout, client gone) still discards the partial object.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer.abort)
        raise
    return StreamedUpload(key=put.key, sha256=put.sha256, size_bytes=put.size_bytes, filename=feed.filename,
                          content_type=sniff(bytes(head)), declared_content_type=feed.declared_type,
                          fields=dict(feed.fields))


async def _from_upload_file(upload: UploadFile, store: ObjectStore, key: str, max_bytes: int) -> StreamedUpload:
    head = bytearray()

    def chunks() -> Iterator[bytes]:
        upload.file.seek(0)
        while chunk := upload.file.read(CHUNK_SIZE):
            if len(head) < SNIFF_BYTES:
                head.extend(chunk[: SNIFF_BYTES - len(head)])
            yield chunk

    put = await anyio.to_thread.run_sync(lambda: store.put_stream(key, chunks(), max_bytes=max_bytes))
    return StreamedUpload(key=put.key, sha256=put.sha256, size_bytes=put.size_bytes, filename=upload.filename,
                          content_type=sniff(bytes(head)), declared_content_type=upload.content_type)
