"""The video notes' asset checks as plain functions, the scratch sweep, notes.zip and exact clips of odd sizes.

Each check is shown failing on crafted bad data and passing on good data: a check that cannot fail checks nothing.
"""

from __future__ import annotations

import os
import time
import zipfile
from fractions import Fraction

import av
import numpy as np
import pytest

from pipelines.video_notes.bundle import linked_screenshots, write_notes_bundle
from pipelines.video_notes.checks import highlights_coverage, probed_audio_seconds, transcript_coverage
from pipelines.video_notes.clips import cut_clip, even_size
from pipelines.video_notes.scratch import sweep_scratch
from pipelines.video_notes.transcript import Segment, Transcript


def _transcript(duration: float = 11.0, windows=((0.0, 11.0),), segments=None, **settings) -> Transcript:
    segs = segments if segments is not None else (Segment(0, 0.0, 10.6, "And so my fellow Americans."),)
    extra = {"windows": [list(w) for w in windows]} if windows is not None else {}
    return Transcript("en", 0.9, duration, tuple(segs), "base", {**extra, **settings})


# -- transcript_covers_audio ------------------------------------------------------------------------------------
def test_transcript_coverage_passes_when_windows_and_decode_cover_the_stream():
    outcome = transcript_coverage(_transcript(), probed_duration_s=11.0, probed_audio_s=11.0, decoded_audio_s=11.0)
    assert outcome.passed and outcome.problems == []
    two_windows = _transcript(42.4, windows=((0.0, 30.0), (27.5, 42.4)))  # the second resumed inside the first
    assert transcript_coverage(two_windows, probed_duration_s=42.4, probed_audio_s=42.4, decoded_audio_s=42.4).passed


@pytest.mark.parametrize(("transcript", "decoded", "expected"), [
    (_transcript(6.0, windows=((0.0, 6.0),)), 6.0, "decoded audio is 6.00 s, the stream 11.00 s"),  # decode stopped
    (_transcript(windows=((0.0, 5.0), (6.0, 11.0))), 11.0, "not transcribed: 5.00-6.00 s"),  # a skipped stretch
    (_transcript(windows=((0.0, 8.0),)), 11.0, "not transcribed: 8.00-11.00 s"),  # the tail never decoded
    (_transcript(windows=None), 11.0, "the transcript records no decoded windows"),
    (_transcript(10.0, windows=((0.0, 10.0),)), 11.0, "transcript spans 10.00 s of 11.00 s decoded"),
    (_transcript(segments=(Segment(0, 3.0, 12.5, "past the end"),)), 11.0, "segments outside the audio: [0]"),
])
def test_transcript_coverage_fails_on_what_it_guards(transcript, decoded, expected):
    outcome = transcript_coverage(transcript, probed_duration_s=11.0, probed_audio_s=11.0, decoded_audio_s=decoded)
    assert not outcome.passed and expected in outcome.problems, outcome.problems


def test_transcript_coverage_of_skipped_transcripts():
    silent = Transcript.empty(5.0, settings={"skipped": "silence"})
    assert transcript_coverage(silent, probed_duration_s=5.0, probed_audio_s=5.0, decoded_audio_s=5.0).passed
    no_audio = Transcript.empty(2.0, settings={"skipped": "no audio"})
    assert transcript_coverage(no_audio, probed_duration_s=2.0, probed_audio_s=None, decoded_audio_s=None).passed
    short = transcript_coverage(Transcript.empty(0.0, settings={"skipped": "no audio"}), probed_duration_s=2.0,
                                probed_audio_s=None, decoded_audio_s=None)
    assert not short.passed and short.problems == ["transcript spans 0.00 s of a 2.00 s file"]
    lost = transcript_coverage(silent, probed_duration_s=5.0, probed_audio_s=5.0, decoded_audio_s=None)
    assert not lost.passed and "no audio was decoded" in lost.problems[0]


def test_probed_audio_seconds_prefers_the_stream():
    info = {"duration_s": 2.023, "streams": [{"type": "video", "duration_s": 2.023}, {"type": "audio", "duration_s": 1.95}]}
    assert probed_audio_seconds(info) == 1.95
    assert probed_audio_seconds({"duration_s": 4.9, "streams": [{"type": "audio", "duration_s": None}]}) == 4.9
    assert probed_audio_seconds({"duration_s": 2.0, "streams": [{"type": "video"}]}) is None


# -- highlights_inside_duration ---------------------------------------------------------------------------------
def test_highlights_coverage_passes_on_stored_rows_inside_the_probe():
    rows = [(1, 0, 14_800), (2, 14_800, 40_000)]
    assert highlights_coverage(rows, duration_s=42.45, manifest_count=2).passed
    assert highlights_coverage([], duration_s=3.0, manifest_count=0).passed


@pytest.mark.parametrize(("rows", "count", "expected"), [
    ([(1, 1_000, 43_000)], 1, "highlights outside 0..42450 ms: ranks [1]"),
    ([(1, 5_000, 5_000)], 1, "highlights outside 0..42450 ms: ranks [1]"),
    ([(1, 0, 20_000), (2, 10_000, 30_000)], 2, "overlapping highlights: ranks [2]"),
    ([(1, 0, 10_000), (3, 20_000, 30_000)], 2, "ranks are not 1..n"),
    ([(1, 0, 10_000)], 2, "1 stored rows for 2 highlights in highlights.json"),
])
def test_highlights_coverage_fails_on_bad_rows(rows, count, expected):
    outcome = highlights_coverage(rows, duration_s=42.45, manifest_count=count)
    assert not outcome.passed and expected in outcome.problems, outcome.problems


# -- scratch ----------------------------------------------------------------------------------------------------
def test_sweep_removes_only_job_folders_idle_for_longer_than_the_limit(tmp_path):
    now = time.time()
    for name, age in (("old", 30 * 3600), ("fresh", 60), ("mine", 30 * 3600), ("old-but-touched", 30 * 3600)):
        folder = tmp_path / name
        (folder / "clips").mkdir(parents=True)
        (folder / "source.media").write_bytes(b"x")
        for path in (folder / "clips", folder / "source.media", folder):
            os.utime(path, (now - age, now - age))
    os.utime(tmp_path / "old-but-touched" / "source.media", (now - 10, now - 10))  # a live run still writes here
    (tmp_path / "stray-file").write_bytes(b"not a job folder")
    assert sweep_scratch(tmp_path, max_age_s=24 * 3600, now=now, keep={"mine"}) == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "mine", "old-but-touched", "stray-file"]
    assert sweep_scratch(tmp_path / "missing") == []


# -- notes.zip --------------------------------------------------------------------------------------------------
def test_notes_bundle_resolves_every_screenshot_link(tmp_path):
    markdown = "# Notes\n\n![first](screenshots/shot_00001000.jpg)\n\n- 2.0 s: ![x](screenshots/shot_00002000.jpg)\n"
    shots = {}
    for name in ("shot_00001000.jpg", "shot_00002000.jpg", "shot_00009000.jpg"):
        shots[name] = tmp_path / name
        shots[name].write_bytes(b"\xff\xd8\xff" + name.encode())
    assert linked_screenshots(markdown) == ["shot_00001000.jpg", "shot_00002000.jpg"]
    assert write_notes_bundle(tmp_path / "notes.zip", markdown, shots) == []
    with zipfile.ZipFile(tmp_path / "notes.zip") as archive:
        assert archive.read("Summary.md").decode() == markdown
        for name in linked_screenshots(markdown):
            assert archive.read(f"screenshots/{name}") == shots[name].read_bytes()
        assert "screenshots/shot_00009000.jpg" in archive.namelist()  # scene shots come along too
    del shots["shot_00002000.jpg"]
    assert write_notes_bundle(tmp_path / "partial.zip", markdown, shots) == ["shot_00002000.jpg"]


# -- exact clips ------------------------------------------------------------------------------------------------
def _odd_video(path, width=321, height=241, seconds=4, fps=25):
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=22050)
        audio.layout = "mono"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), i * 2 % 256, np.uint8), format="rgb24")
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        t = np.arange(seconds * 22050) / 22050
        tone = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
        for start in range(0, tone.size, 1024):
            frame = av.AudioFrame.from_ndarray(tone[start : start + 1024].reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 22050, start, Fraction(1, 22050)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


def test_exact_clip_of_an_odd_sized_video_is_cropped_to_even_dimensions(tmp_path):
    source = _odd_video(tmp_path / "odd.mp4")
    clip = cut_clip(source, 1.0, 3.0, tmp_path / "clip.mp4", mode="exact")
    assert clip.start == pytest.approx(1.0, abs=0.05) and clip.end == pytest.approx(3.0, abs=0.05)
    with av.open(str(tmp_path / "clip.mp4")) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 240)
        assert video.codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(video))
        assert 45 <= frames <= 51  # 2 s at 25 fps
    with av.open(str(tmp_path / "clip.mp4")) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
        assert samples / container.streams.audio[0].codec_context.sample_rate == pytest.approx(2.0, abs=0.1)
    assert even_size(321, 241) == (320, 240) and even_size(1, 1) == (2, 2) and even_size(640, 360) == (640, 360)
