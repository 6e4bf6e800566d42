"""What ``POST /v1/videos`` checks of an upload before it records anything: the bytes and the language field.

The bytes: PyAV must open the stored object as a container with an audio or video stream. It reads through
:class:`_StoreReader`, ranged reads of the object store, so memory stays flat and an MP4 whose ``moov`` index sits
at the end of a 2 GiB file costs a few ranged reads, not a download. Opening reads headers only (no decoding); a
read budget and PyAV's own timeout bound what a hostile file can cost. Past either bound the request cannot tell,
and the upload is accepted: the ``video_probe`` asset does the full check (truncation included) and fails the job
with ``invalid_media``.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from enum import Enum

import av
import structlog

from api.problems import ApiProblem
from resources.objectstore import ObjectStore

_log = structlog.get_logger("kiln.api")

_READ_WINDOW = 4 * 1024 * 1024  # bytes one ranged read asks for; a seek starts a new one
_READ_CHUNK = 64 * 1024  # PyAV reads 32 KiB at a time: larger chunks would fetch bytes it skips with a seek
_READ_BUDGET = 64 * 1024 * 1024  # a long video's index is a few MiB; this is far past any header
_OPEN_TIMEOUT_S = 15.0
_AVSEEK_FORCE = 0x20000  # an FFmpeg hint that may ride along with whence; a ranged read is cheap either way
_PROBE_OPTIONS = {"probesize": str(8 * 1024 * 1024), "analyzeduration": str(10_000_000)}  # 10 s of media


class Verdict(Enum):
    MEDIA = "media"
    NOT_MEDIA = "not_media"
    UNDECIDED = "undecided"  # a bound was hit: the job's probe decides


class _BudgetSpent(Exception):
    pass


class _StoreReader(io.RawIOBase):
    """A seekable, read-only file over one stored object, reading ranges of it on demand."""

    def __init__(self, store: ObjectStore, key: str, size: int, budget: int) -> None:
        self._store, self._key, self._size, self._budget = store, key, size, budget
        self._pos = 0
        self._chunks: Iterator[bytes] | None = None
        self._pending = b""
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        whence &= ~_AVSEEK_FORCE
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        target = max(0, base + offset)
        if target != self._pos:
            self._drop()
            self._pos = target
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._pos >= self._size:
            return 0
        if not self._pending:
            fresh = self._chunks is None
            if fresh:
                end = min(self._size, self._pos + _READ_WINDOW) - 1
                self._chunks = self._store.iter_range(self._key, self._pos, end, chunk_size=_READ_CHUNK)
            self._pending = next(self._chunks, b"")
            if not self._pending:
                self._drop()
                # A used-up window: the next one. Nothing from a fresh one: the object is shorter than it was.
                return 0 if fresh else self.readinto(buffer)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._pos += n
        self.bytes_read += n
        if self.bytes_read > self._budget:
            raise _BudgetSpent
        return n

    def _drop(self) -> None:
        if self._chunks is not None:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()  # gives back the file handle / HTTP body
        self._chunks, self._pending = None, b""

    def close(self) -> None:
        self._drop()
        super().close()


def open_as_media(store: ObjectStore, key: str, size: int) -> Verdict:
    """Whether PyAV opens the stored object as a container with at least one audio or video stream."""
    reader = _StoreReader(store, key, size, _READ_BUDGET)
    try:
        with av.open(reader, mode="r", options=_PROBE_OPTIONS, timeout=_OPEN_TIMEOUT_S) as container:
            kinds = {stream.type for stream in container.streams}
    except _BudgetSpent:
        _log.info("upload_check_undecided", reason="read budget spent", key=key)
        return Verdict.UNDECIDED
    except av.error.ExitError:  # PyAV's timeout interrupted the open
        _log.info("upload_check_undecided", reason="timed out", key=key)
        return Verdict.UNDECIDED
    except (av.error.FFmpegError, EOFError, ValueError):
        return Verdict.NOT_MEDIA
    finally:
        reader.close()
    return Verdict.MEDIA if kinds & {"audio", "video"} else Verdict.NOT_MEDIA


@functools.cache
def whisper_languages() -> frozenset[str]:
    """The language codes the transcriber (faster-whisper) accepts; loaded on first use, it is a heavy import."""
    # The very list faster-whisper's Tokenizer checks ``language`` against (it raises ValueError otherwise).
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


def normalize_language(value: str | None) -> str | None:
    """A Whisper language code for ``value`` (``EN``, ``en-US``, ``pt_BR`` -> ``en``, ``pt``); None when blank.

    An unknown code answers 422 ``invalid_language`` here: passed on, the transcriber would reject it in the job.
    """
    raw = (value or "").strip()
    if not raw:
        return None
    code = raw.replace("_", "-").split("-", 1)[0].lower()
    if code not in whisper_languages():
        raise ApiProblem(422, "invalid_language",
                         f"language {raw[:32]!r} is not a language the transcriber knows: send an ISO 639-1 code "
                         "such as 'en', 'de' or 'pt' (a region such as 'en-US' is ignored), or leave it out to "
                         "detect the language.", title="Unknown language")
    return code
