"""The animatic: the render plan of a built package as a 720p H.264 + AAC MP4 (PyAV; no subprocess, no shell).

Each shot shows its images: a stored reference still (by SHA-256, from the package's ``references/``) or, for an
image still to generate, a titled card naming it: nothing is silently dropped. The camera note and, on request,
the shot's dialogue line (burned-in subtitles) are drawn on the frame. Shot boundaries are placed on the frame
grid by rounding the plan's cumulative times, so each shot is within one frame of the plan and the whole video
within one frame of its total.

Voices: no text-to-speech engine ships with Kiln yet (Piper is GPL and must stay an optional extra; espeak-ng is
not installed), so the audio track is silence of the plan's length and ``tts`` says ``none``. The subtitles are
in the package (``subtitles.srt``), and burned in when asked.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipelines.episodes.errors import ImageInvalid
from pipelines.errors import InvalidInput

WIDTH, HEIGHT = 1280, 720
AUDIO_RATE = 48_000
AUDIO_FRAME = 1024  # AAC's frame size
BACKGROUND = (24, 26, 32)


class PackageUnreadable(InvalidInput):
    code = "package_unreadable"
    title = "The episode package cannot be rendered"


@dataclass(frozen=True)
class AnimaticResult:
    duration_ms: int
    frames: int
    fps: int
    shots: int
    tts: str
    shot_frames: tuple[int, ...]


def read_package(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """``package.json`` and the reference images (by SHA-256) of a package ZIP."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            document = json.loads(archive.read("package.json"))
            images = {}
            for name in archive.namelist():
                if name.startswith("references/"):
                    images[Path(name).stem] = archive.read(name)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise PackageUnreadable(f"The episode package could not be read ({type(exc).__name__}).") from None
    return document, images


def shot_frames(shots: list[dict[str, Any]], fps: int) -> list[int]:
    """Frames per shot: boundaries are the plan's times rounded to the frame grid (no drift across shots)."""
    counts = []
    for shot in shots:
        start = round(shot["start_ms"] * fps / 1000)
        end = round(shot["end_ms"] * fps / 1000)
        counts.append(max(1, end - start))
    return counts


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines[:3]


def _still(data: bytes, box: tuple[int, int]) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"]) as image:
            image.thumbnail(box)
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError):
        raise ImageInvalid("A reference image of the package could not be decoded.") from None


def draw_shot(shot: dict[str, Any], items: dict[str, dict[str, Any]], images: dict[str, bytes],
              subtitle: str | None) -> Image.Image:
    canvas = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((40, 30), shot["camera"][:110], fill=(230, 230, 230), font=_font(28))
    uses = shot["images"][:4]
    slot_w = (WIDTH - 80) // max(1, len(uses))
    for index, use in enumerate(uses):
        x, y, box = 40 + index * slot_w, 110, (slot_w - 20, 430)
        data = images.get(use.get("sha256") or "")
        if data is not None:
            canvas.paste(_still(data, box), (x, y))
        else:  # to generate (or not shipped): a titled card, never a silent blank
            item = items.get(use["item"], {})
            draw.rectangle((x, y, x + box[0], y + box[1]), outline=(120, 120, 140), width=3)
            label = f"{use['kind']}: {item.get('description', use['item'])}"
            for row, text in enumerate(_wrap(label, 28)):
                draw.text((x + 16, y + 20 + row * 34), text, fill=(200, 200, 210), font=_font(26))
    if subtitle:
        for row, text in enumerate(_wrap(subtitle, 60)):
            draw.text((WIDTH // 2, 580 + row * 40), text, fill=(255, 255, 255), font=_font(32), anchor="mt",
                      stroke_width=2, stroke_fill=(0, 0, 0))
    return canvas


def render_animatic(document: dict[str, Any], images: dict[str, bytes], out: Path, *, fps: int = 10,
                    burn_subtitles: bool = False) -> AnimaticResult:
    """Encode the package's render plan to ``out`` (MP4: H.264 yuv420p 1280x720, AAC mono silence)."""
    plan = document["render_plan"]
    shots = list(plan["shots"])
    if not shots:
        raise PackageUnreadable("The render plan has no shots.")
    items = {item["key"]: item for scene in document["asset_plan"]["scenes"] for item in scene["items"]}
    lines = {(a["scene"], a["line"]): a["text"] for a in plan["audio"]}
    counts = shot_frames(shots, fps)
    total_frames = sum(counts)
    with av.open(str(out), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "tune": "stillimage"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        pts = 0
        for shot, count in zip(shots, counts):
            subtitle = lines.get((shot["scene"], shot["dialogue_line"])) if burn_subtitles else None
            picture = draw_shot(shot, items, images, subtitle)
            frame = av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24").reformat(format="yuv420p")
            for _ in range(count):
                frame.pts = pts
                frame.time_base = Fraction(1, fps)
                container.mux(video.encode(frame))
                pts += 1
        container.mux(video.encode(None))
        samples = total_frames * AUDIO_RATE // fps
        silence = np.zeros((1, AUDIO_FRAME), dtype=np.float32)
        for start in range(0, samples, AUDIO_FRAME):
            chunk = silence if samples - start >= AUDIO_FRAME else np.zeros((1, samples - start), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return AnimaticResult(duration_ms=round(total_frames * 1000 / fps), frames=total_frames, fps=fps,
                          shots=len(shots), tts="none", shot_frames=tuple(counts))
