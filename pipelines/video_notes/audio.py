"""Decode the audio track to 16 kHz mono with PyAV, streaming, so memory stays flat whatever the length.

The output is a 16-bit PCM WAV (32 KB per second of audio: 19 MB for 10 minutes), written in ~30 s blocks.
The transcriber reads it back in windows (:func:`read_audio_windows`), so a two-hour video never sits in memory
as one float array. 16-bit quantisation is far below what Whisper can hear (its own decoder resamples to s16).
"""

from __future__ import annotations

import math
import os
import wave
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from pipelines.video_notes.errors import InvalidMedia
from pipelines.video_notes.probe import media_path, open_media

SAMPLE_RATE = 16_000
_SAMPLE_WIDTH = 2  # bytes, s16
_BLOCK_SAMPLES = 30 * SAMPLE_RATE  # written to the WAV in blocks of ~30 s (960 KB): memory stays flat
# Below this level (dBFS RMS) the track is treated as silence: there is nothing to transcribe.
SILENCE_DBFS = -60.0

ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class AudioTrack:
    """The result of :func:`extract_audio`. ``path`` is None when the media has no audio stream."""

    path: str | None
    has_audio: bool
    sample_rate: int = SAMPLE_RATE
    samples: int = 0
    rms_dbfs: float | None = None  # None without audio; -inf for digital silence
    skipped_packets: int = 0  # packets FFmpeg refused to decode (tolerated, as faster-whisper does)

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    @property
    def is_silent(self) -> bool:
        return not self.has_audio or self.rms_dbfs is None or self.rms_dbfs < SILENCE_DBFS

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration_s"] = self.duration_s
        data["is_silent"] = self.is_silent
        if data["rms_dbfs"] is not None and math.isinf(data["rms_dbfs"]):
            data["rms_dbfs"] = None  # JSON has no -inf; is_silent carries the meaning
        return data


def extract_audio(
    source: str | os.PathLike[str],
    out_wav: str | os.PathLike[str],
    *,
    on_progress: ProgressCallback | None = None,
) -> AudioTrack:
    """Decode the first audio stream of ``source`` to a 16 kHz mono s16 WAV at ``out_wav``.

    Returns ``AudioTrack(has_audio=False, path=None)`` when there is no audio stream (no file is written).
    ``on_progress`` receives the fraction of the stream decoded so far (0..1), at most about once a second of audio.
    Raises :class:`InvalidMedia` when the audio stream exists but nothing in it decodes.
    """
    out_path = Path(out_wav)
    with open_media(source) as container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            return AudioTrack(path=None, has_audio=False)
        total_s = _stream_seconds(container, stream)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        samples = 0
        sum_squares = 0
        skipped = 0
        last_reported = -1.0
        pending: list[np.ndarray] = []  # resampled frames not yet written: at most _BLOCK_SAMPLES (~1 MB)
        pending_samples = 0
        tmp_path = out_path.with_name(out_path.name + ".part")
        with wave.open(str(tmp_path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(_SAMPLE_WIDTH)
            wav.setframerate(SAMPLE_RATE)

            def flush() -> None:
                # One write (and one exact int64 sum of squares) per ~30 s block: wave.writeframes per frame
                # rewrote the header each call (two seeks and writes per 1024 samples).
                nonlocal samples, sum_squares, pending_samples
                if not pending:
                    return
                block = np.concatenate(pending).astype("<i2", copy=False)
                pending.clear()
                pending_samples = 0
                wav.writeframesraw(block.tobytes())
                samples += block.size
                wide = block.astype(np.int64)  # exact: at most 2^30 per sample, summed in int64
                sum_squares += int(wide @ wide)

            def add(frames: list[av.AudioFrame]) -> None:
                nonlocal pending_samples
                for out in frames:
                    if out.samples:  # the plane itself (packed mono s16): to_ndarray() costs a vstack a frame
                        pending.append(np.frombuffer(out.planes[0], dtype=np.int16, count=out.samples))
                        pending_samples += out.samples
                if pending_samples >= _BLOCK_SAMPLES:
                    flush()

            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    skipped += 1
                    continue
                for frame in frames:
                    frame.pts = None  # let the resampler follow sample counts, not broken timestamps
                    add(resampler.resample(frame))
                done_s = (samples + pending_samples) / SAMPLE_RATE
                if on_progress and total_s and done_s - last_reported >= 1.0:
                    last_reported = done_s
                    on_progress(min(1.0, last_reported / total_s))
            add(resampler.resample(None))
            flush()  # wave's close() then writes the final sizes into the header once
    if samples == 0:
        tmp_path.unlink(missing_ok=True)
        raise InvalidMedia("The audio stream cannot be decoded")
    os.replace(tmp_path, out_path)
    if on_progress:
        on_progress(1.0)
    rms = math.sqrt(sum_squares / samples) / 32768.0
    rms_dbfs = 20 * math.log10(rms) if rms > 0 else float("-inf")
    return AudioTrack(
        path=str(out_path), has_audio=True, samples=samples, rms_dbfs=rms_dbfs, skipped_packets=skipped
    )


def _stream_seconds(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def read_audio_windows(wav_path: str | os.PathLike[str], window_s: float) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(offset_seconds, float32 samples in [-1, 1])`` windows of a WAV written by :func:`extract_audio`."""
    with wave.open(media_path(wav_path), "rb") as wav:
        if wav.getframerate() != SAMPLE_RATE or wav.getnchannels() != 1 or wav.getsampwidth() != _SAMPLE_WIDTH:
            raise InvalidMedia("Expected a 16 kHz mono 16-bit WAV")
        window = max(1, int(window_s * SAMPLE_RATE))
        offset = 0
        while True:
            raw = wav.readframes(window)
            if not raw:
                return
            yield offset / SAMPLE_RATE, np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
            offset += len(raw) // _SAMPLE_WIDTH


def load_audio(wav_path: str | os.PathLike[str]) -> np.ndarray:
    """The whole WAV as one float32 array (for short inputs and tests)."""
    parts = [chunk for _offset, chunk in read_audio_windows(wav_path, 600.0)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
