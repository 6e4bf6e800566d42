"""MP4 clips of a time range, with PyAV (no ffmpeg CLI).

- ``mode="copy"`` (default): stream copy, ~0.08 s per 10 s clip. The clip starts at the last keyframe at or before
  the requested start (a decoder needs it), so it may begin a little early; it ends at the requested end.
- ``mode="exact"``: decode and re-encode (H.264 + AAC) exactly the requested range (~2 s per 10 s of 720p).
  H.264 in 4:2:0 needs even dimensions, so an odd width or height loses its last pixel column or row.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av

from pipelines.video_notes.errors import InvalidMedia
from pipelines.video_notes.probe import open_media

ClipMode = Literal["copy", "exact"]


@dataclass(frozen=True)
class Clip:
    path: str
    name: str
    requested_start: float
    requested_end: float
    start: float  # where the clip's content really begins in the source (a keyframe in copy mode)
    end: float
    mode: str

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration"] = self.duration
        return data


def clip_name(start: float, end: float, prefix: str = "clip") -> str:
    return f"{prefix}_{int(round(start * 1000)):08d}_{int(round(end * 1000)):08d}.mp4"


def cut_clip(
    source: str | os.PathLike[str],
    start: float,
    end: float,
    out_path: str | os.PathLike[str],
    *,
    mode: ClipMode = "copy",
) -> Clip:
    if not end > start >= 0:
        raise ValueError(f"A clip needs end > start >= 0, got {start}..{end}")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    try:
        if mode == "copy":
            real_start, real_end = _copy(source, start, end, tmp)
        elif mode == "exact":
            real_start, real_end = _reencode(source, start, end, tmp)
        else:
            raise ValueError(f"Unknown clip mode {mode!r}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return Clip(str(out), out.name, start, end, round(real_start, 3), round(real_end, 3), mode)


def _copy(source: str | os.PathLike[str], start: float, end: float, out: Path) -> tuple[float, float]:
    with open_media(source) as inp:
        video = next((s for s in inp.streams if s.type == "video"), None)
        audio = next((s for s in inp.streams if s.type == "audio"), None)
        anchor = video or audio
        if anchor is None:
            raise InvalidMedia("Nothing to clip: no audio or video stream")
        inp.seek(int(start / anchor.time_base), stream=anchor, backward=True, any_frame=False)
        with av.open(str(out), mode="w", format="mp4") as output:
            mapping = {s.index: output.add_stream_from_template(s) for s in (video, audio) if s is not None}
            origin: float | None = None  # source time of the clip's first (key)frame
            real_end = start
            for packet in inp.demux([s for s in (video, audio) if s is not None]):
                if packet.dts is None or packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                stream = packet.stream
                if origin is None:
                    if stream is not anchor or (video is not None and not packet.is_keyframe):
                        continue
                    origin = t
                if stream is anchor and float(packet.dts * packet.time_base) >= end:
                    break
                if t < origin - 1e-3 or t >= end:
                    continue
                shift = int(round(origin / packet.time_base))
                packet.pts -= shift
                packet.dts -= shift
                packet.stream = mapping[stream.index]
                output.mux(packet)
                real_end = max(real_end, min(end, t + float((packet.duration or 0) * packet.time_base)))
            if origin is None:
                raise InvalidMedia(f"No keyframe found before {start:.2f} s")
    return origin, real_end


def _reencode(source: str | os.PathLike[str], start: float, end: float, out: Path) -> tuple[float, float]:
    with open_media(source) as inp:
        video = next((s for s in inp.streams if s.type == "video"), None)
        audio = next((s for s in inp.streams if s.type == "audio"), None)
        if video is None and audio is None:
            raise InvalidMedia("Nothing to clip: no audio or video stream")
        with av.open(str(out), mode="w", format="mp4") as output:
            v_out = a_out = None
            v_rate = Fraction(video.average_rate or 25).limit_denominator(1001) if video is not None else Fraction(25)
            width = height = 0
            if video is not None:
                width, height = even_size(video.codec_context.width, video.codec_context.height)
                v_out = output.add_stream("libx264", rate=v_rate)
                v_out.width, v_out.height = width, height
                v_out.pix_fmt = "yuv420p"
                v_out.options = {"preset": "veryfast", "crf": "23"}
            if audio is not None:
                a_out = output.add_stream("aac", rate=audio.codec_context.sample_rate or 48000)
                a_out.layout = "stereo" if (audio.codec_context.channels or 2) >= 2 else "mono"
            first: float | None = None
            last = start
            for stream, encoder in ((video, v_out), (audio, a_out)):
                if stream is None or encoder is None:
                    continue
                inp.seek(int(start / stream.time_base), stream=stream, backward=True)
                resampler = (
                    av.AudioResampler(format="fltp", layout=encoder.layout, rate=encoder.codec_context.sample_rate)
                    if stream.type == "audio" else None
                )
                count = 0
                for frame in inp.decode(stream):
                    t = frame.time
                    if t is None or t < start - 1e-3:
                        continue
                    if t >= end:
                        break
                    first = t if first is None else min(first, t)
                    last = max(last, t + (1.0 / float(v_rate) if stream.type == "video" else frame.samples / frame.sample_rate))
                    if resampler is not None:
                        for piece in resampler.resample(frame):
                            piece.pts = None
                            output.mux(encoder.encode(piece))
                    else:
                        image = frame.reformat(width=width, height=height, format="yuv420p")
                        image.pts = count
                        image.time_base = 1 / v_rate
                        count += 1
                        output.mux(encoder.encode(image))
                if resampler is not None:  # samples the resampler still holds (rate conversion keeps a tail)
                    for piece in resampler.resample(None):
                        piece.pts = None
                        output.mux(encoder.encode(piece))
                output.mux(encoder.encode(None))
    if first is None:
        raise InvalidMedia(f"No frames between {start:.2f} s and {end:.2f} s")
    return first, min(last, end)


def even_size(width: int, height: int) -> tuple[int, int]:
    """The largest even size within ``width`` x ``height`` (libx264 refuses odd sizes in yuv420p)."""
    return max(2, width - width % 2), max(2, height - height % 2)


def clip_duration(path: str | os.PathLike[str]) -> float:
    """Duration of a written clip, from its packets (for checks and tests)."""
    with open_media(path) as container:
        ends = []
        for packet in container.demux():
            if packet.pts is not None:
                ends.append(float((packet.pts + (packet.duration or 0)) * packet.time_base))
        starts = [0.0]
        return max(ends) - min(starts) if ends else 0.0
