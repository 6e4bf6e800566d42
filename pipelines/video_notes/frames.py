"""Screenshots (OpenCV) at given times and scene-change detection (PyAV + colour histograms).

Screenshots: seek with ``CAP_PROP_POS_MSEC``, read one frame, write a JPEG (measured ~86 ms a shot on 720p,
cheaper than spawning ffmpeg per shot). File names come from the time only (``shot_00012500.jpg``), never from
user input. Where OpenCV cannot seek (a WebM without cues: every seek lands on 0 s) the remaining times are
decoded with PyAV in one sequential pass; no requested time is dropped (see :func:`capture_screenshots`).

Scene changes: the distance between normalised RGB histograms (total variation, 0..1) of consecutive sampled
frames. ``mode="keyframes"`` decodes only keyframes (encoders place keyframes at cuts), and at most about
``MAX_KEYFRAMES`` of them evenly spread, so the cost is bounded on long videos; ``mode="sampled"`` decodes
everything and compares ``sample_fps`` frames a second.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from pipelines.video_notes.errors import InvalidMedia
from pipelines.video_notes.probe import media_path, open_media

SCENE_THRESHOLD = 0.35
# Keyframes decoded for scene detection, at most (about): evenly spread over the video, see detect_scene_changes.
MAX_KEYFRAMES = 150
_HIST_BINS = 8
_BIN_SHIFT = 5  # 256 / 8 = 2**5 values a bin
# An OpenCV seek landing further than one frame interval plus this from its target counts as failed.
SEEK_TOLERANCE_S = 0.02
# Frame times are rounded to the millisecond: a frame this close after a requested time is shown "at" it.
_SAME_INSTANT_S = 1e-6


@dataclass(frozen=True)
class Screenshot:
    path: str
    name: str  # file name, e.g. "shot_00012500.jpg"; Summary.md links screenshots/<name>
    requested_s: float
    actual_s: float  # timestamp of the decoded frame
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def screenshot_name(seconds: float, prefix: str = "shot") -> str:
    return f"{prefix}_{int(round(seconds * 1000)):08d}.jpg"


def capture_screenshots(
    video: str | os.PathLike[str],
    times_s: list[float],
    out_dir: str | os.PathLike[str],
    *,
    prefix: str = "shot",
    max_width: int = 1280,
    jpeg_quality: int = 85,
) -> list[Screenshot]:
    """A JPEG per requested time (duplicates collapse), in time order; no requested time is ever dropped.

    Fast path: OpenCV seeks to each time. A seek that fails, or lands more than a frame interval plus
    :data:`SEEK_TOLERANCE_S` away from the target (a WebM without cues, ``no_duration.webm``, always lands
    on the first frame), hands that time *and every later one* to :func:`_decode_sequentially`: one PyAV
    pass over the stream for all of them, never one pass per screenshot.

    A time past the last decodable frame gets a screenshot of that last frame; its ``actual_s`` (the
    frame's own time, earlier than ``requested_s``) is what tells the two apart. A video stream without
    a single decodable frame raises :class:`InvalidMedia`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted = sorted({round(max(0.0, t), 3) for t in times_s})
    if not wanted:
        return []
    writer = _ShotWriter(out, prefix, max_width, jpeg_quality)
    capture = cv2.VideoCapture(media_path(video), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise InvalidMedia("The video stream cannot be opened for screenshots")
    shots: list[Screenshot] = []
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if 0 < fps < 1000 else 25.0
        frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        # OpenCV reports a garbage (negative) count for a container without a duration.
        last_s = max(0.0, (frames - 1) / fps) if frames and frames > 0 else None
        allowed_error = 1.0 / fps + SEEK_TOLERANCE_S
        for position, requested in enumerate(wanted):
            target = min(requested, last_s) if last_s is not None else requested
            capture.set(cv2.CAP_PROP_POS_MSEC, target * 1000.0)
            ok, image = capture.read()
            actual = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if not ok or image is None or abs(actual - target) > allowed_error:
                # This file does not seek (or ends earlier than announced): later times would fail alike.
                pending = wanted[position:]
                break
            shots.append(writer.write(image, requested, actual))
        else:
            pending = []
    finally:
        capture.release()
    if pending:
        shots.extend(writer.write(image, requested, actual)
                     for requested, actual, image in _decode_sequentially(video, pending))
    return shots


class _ShotWriter:
    """Scale to ``max_width`` (INTER_AREA) and write the JPEG, identically for both decoding paths."""

    def __init__(self, out: Path, prefix: str, max_width: int, jpeg_quality: int) -> None:
        self._out, self._prefix, self._max_width, self._quality = out, prefix, max_width, jpeg_quality

    def write(self, image: np.ndarray, requested: float, actual: float) -> Screenshot:
        height, width = image.shape[:2]
        if width > self._max_width:
            height = int(round(height * self._max_width / width))
            width = self._max_width
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        name = screenshot_name(requested, self._prefix)
        path = self._out / name
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, self._quality]):
            raise OSError(f"Could not write {name}")
        return Screenshot(str(path), name, requested, round(actual, 3), width, height)


def _decode_sequentially(video: str | os.PathLike[str],
                         times: list[float]) -> Iterator[tuple[float, float, np.ndarray]]:
    """``(requested, frame time, BGR image)`` for each of the sorted ``times``, from ONE decoding pass.

    The frame for a time is the one on screen then: the last frame starting at or before it (the first
    frame when the video starts later). PyAV first tries a backward seek to the earliest time and keeps it
    only when it lands at or before that time (on ``no_duration.webm`` it lands on 0 s, which is still
    correct); when the seek fails or overshoots, the file is reopened and decoded from the beginning (a
    failed seek can leave the demuxer unable to seek back to 0). Only frames that are kept are converted.
    A damaged tail ends the pass like the end of the stream: later times get the last good frame.
    """
    remaining = list(times)
    container = open_media(video)
    try:
        first = None
        if remaining[0] > 0:
            frames = _decoded_frames(container, seek_to_s=remaining[0])
            first = next(frames, None)
            if first is None or first.time > remaining[0] + _SAME_INSTANT_S:
                frames.close()
                container.close()
                container, first = open_media(video), None
        if first is None:
            frames = _decoded_frames(container, seek_to_s=None)
            first = next(frames, None)
        if first is None:
            raise InvalidMedia("The video stream has no decodable frame for screenshots")
        shown = first
        for frame in frames:
            while remaining and frame.time > remaining[0] + _SAME_INSTANT_S:
                # ``frame`` starts after this time, so ``shown`` was on screen then.
                yield remaining.pop(0), float(shown.time), shown.to_ndarray(format="bgr24")
            if not remaining:
                return
            shown = frame
        image = shown.to_ndarray(format="bgr24")
        for requested in remaining:  # at or past the last decodable frame
            yield requested, float(shown.time), image
    finally:
        container.close()


def _decoded_frames(container: av.container.InputContainer, seek_to_s: float | None) -> Iterator[av.VideoFrame]:
    """Decoded video frames that have a time, after a backward seek to ``seek_to_s`` when given.

    Yields nothing when the seek fails. A decoding error ends the frames: what decoded before it stands.
    """
    stream = next((s for s in container.streams if s.type == "video"), None)
    if stream is None:
        raise InvalidMedia("The file has no video stream for screenshots")
    stream.thread_type = "AUTO"
    try:
        if seek_to_s is not None:
            container.seek(int(seek_to_s / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time is not None:
                yield frame
    except av.error.FFmpegError:
        return


class _Histograms:
    """Normalised RGB histograms of frames shrunk to 96x54, with one scaler reused for every frame.

    ``frame.to_ndarray(width=..., height=...)`` builds a new swscale context per call (measured ~2 ms a 720p
    frame, more than decoding the keyframe); a shared :class:`VideoReformatter` builds it once.
    """

    def __init__(self) -> None:
        self._scaler = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        small = self._scaler.reformat(frame, width=96, height=54, format="rgb24").to_ndarray().reshape(-1, 3)
        # 8 bins a channel: the top 3 bits of R, G, B form one bin index (np.histogramdd is ~10x slower).
        bins = small >> _BIN_SHIFT
        index = (bins[:, 0].astype(np.intp) * _HIST_BINS + bins[:, 1]) * _HIST_BINS + bins[:, 2]
        hist = np.bincount(index, minlength=_HIST_BINS**3).astype(np.float64)
        return hist / hist.sum()


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else None


def detect_scene_changes(
    video: str | os.PathLike[str],
    *,
    mode: Literal["keyframes", "sampled"] = "keyframes",
    sample_fps: float = 2.0,
    threshold: float = SCENE_THRESHOLD,
    min_gap_s: float = 1.0,
    max_scenes: int = 200,
    max_keyframes: int = MAX_KEYFRAMES,
) -> list[float]:
    """Seconds at which a new scene starts (the first frame after a cut), in time order. [] without video.

    ``mode="keyframes"`` demuxes every packet (cheap: nothing is decoded) but decodes at most about
    ``max_keyframes`` keyframes, evenly spread: a keyframe is decoded only when it lies at least
    ``max(min_gap_s, duration / max_keyframes)`` after the last decoded one. Trade-off: the cost is bounded
    (~150 keyframes, ~0.2 s on 720p, whatever the length) but on long videos a cut is reported at the first
    *sampled* keyframe after it (up to one spacing late: 4 s on a 10-minute video, 48 s on two hours), and a
    scene shorter than the spacing can be missed. Screenshots of scene changes are illustrations, not an index.
    """
    changes: list[float] = []
    histogram = _Histograms()
    with open_media(video) as container:
        stream = next((s for s in container.streams if s.type == "video"), None)
        if stream is None:
            return []
        if mode == "keyframes":
            duration = _duration_s(container, stream)
            spacing = max(min_gap_s, duration / max_keyframes) if duration and max_keyframes > 0 else min_gap_s
            frames = _spaced_keyframes(container, stream, spacing)
        else:
            stream.thread_type = "AUTO"
            frames = _sampled_frames(container, stream, sample_fps)
        previous: np.ndarray | None = None
        try:
            for t, frame in frames:
                hist = histogram(frame)
                if previous is not None:
                    distance = 0.5 * float(np.abs(hist - previous).sum())
                    if distance >= threshold and (not changes or t - changes[-1] >= min_gap_s) and t >= min_gap_s:
                        changes.append(round(float(t), 3))
                        if len(changes) >= max_scenes:
                            break
                previous = hist
        except av.error.InvalidDataError:
            pass  # a damaged tail: the scenes found so far stand
    return changes


def _spaced_keyframes(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                      spacing: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded keyframes at least ``spacing`` seconds apart; the packets in between are never decoded."""
    stream.codec_context.skip_frame = "NONKEY"
    next_wanted = float("-inf")
    for packet in container.demux(stream):
        if not packet.is_keyframe or packet.pts is None or packet.time_base is None:
            continue
        at = float(packet.pts * packet.time_base)
        if at < next_wanted:
            continue
        # Spaced by packet time: H.264 decoders hand a frame back a packet late (reordering delay).
        next_wanted = at + spacing
        for frame in packet.decode():
            if frame.time is not None:
                yield float(frame.time), frame
    for frame in stream.codec_context.decode(None):  # the frame still held back by that delay
        if frame.time is not None:
            yield float(frame.time), frame


def _sampled_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                    sample_fps: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """Every frame decoded, ``sample_fps`` of them a second handed on."""
    next_sample = 0.0
    for frame in container.decode(stream):
        if frame.time is None or frame.time < next_sample:
            continue
        next_sample = frame.time + 1.0 / sample_fps
        yield float(frame.time), frame


def frame_at(video: str | os.PathLike[str], seconds: float) -> tuple[float, np.ndarray]:
    """The decoded frame shown at ``seconds`` (PyAV, exact): ``(frame time, BGR image)``. For checks and tests."""
    with open_media(video) as container:
        stream = next(s for s in container.streams if s.type == "video")
        container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
        chosen = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if frame.time > seconds + 1e-6 and chosen is not None:
                break
            chosen = frame
        if chosen is None:
            raise InvalidMedia("No frame at that time")
        return float(chosen.time), chosen.to_ndarray(format="bgr24")
