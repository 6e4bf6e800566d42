"""Screenshots on files OpenCV cannot seek: the one-pass PyAV fallback, past-the-end and damaged files."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import pipelines.video_notes.frames as frames
from pipelines.video_notes.errors import InvalidMedia
from pipelines.video_notes.frames import capture_screenshots, frame_at
from tests.support.corpus import PUBLIC

UNSEEKABLE = PUBLIC / "video/no_duration.webm"  # a WebM without cues or duration: OpenCV seeks land on 0 s


def _every_frame(video: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame, decoded from the start with PyAV: the reference that needs no seeking at all."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        return [(float(f.time), f.to_ndarray(format="bgr24")) for f in container.decode(stream)]


def _on_screen_at(decoded: list[tuple[float, np.ndarray]], seconds: float) -> tuple[float, np.ndarray]:
    return [entry for entry in decoded if entry[0] <= seconds + 1e-6][-1]


def _mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        a = cv2.resize(a, (b.shape[1], b.shape[0]))
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def _count_media_opens(monkeypatch) -> list[str]:
    opened: list[str] = []
    real_open = frames.open_media

    def counting_open(path):
        opened.append(str(path))
        return real_open(path)

    monkeypatch.setattr(frames, "open_media", counting_open)
    return opened


def test_unseekable_webm_gets_every_requested_frame_in_one_pass(tmp_path, monkeypatch):
    opened = _count_media_opens(monkeypatch)
    shots = capture_screenshots(UNSEEKABLE, [4.0, 0.5, 2.0], tmp_path)

    assert [s.requested_s for s in shots] == [0.5, 2.0, 4.0]
    assert len(opened) == 1  # one PyAV pass for all three times, not one per screenshot
    decoded = _every_frame(UNSEEKABLE)
    frame_interval = decoded[1][0] - decoded[0][0]
    for shot in shots:
        expected_time, expected_image = _on_screen_at(decoded, shot.requested_s)
        assert shot.actual_s == pytest.approx(expected_time, abs=1e-3)
        assert abs(shot.actual_s - shot.requested_s) <= frame_interval + 1e-3
        image = cv2.imread(shot.path)
        assert (shot.width, shot.height) == (image.shape[1], image.shape[0])
        _, other_image = _on_screen_at(decoded, shot.requested_s + 0.6)
        assert _mean_diff(image, expected_image) < 6  # JPEG noise only
        assert _mean_diff(image, expected_image) < _mean_diff(image, other_image)


def test_time_past_the_decodable_end_gets_the_last_frame(tmp_path):
    shots = capture_screenshots(UNSEEKABLE, [0.0, 30.0], tmp_path)

    decoded = _every_frame(UNSEEKABLE)
    last_time, last_image = decoded[-1]
    assert [s.requested_s for s in shots] == [0.0, 30.0]
    assert shots[0].actual_s == 0.0
    assert shots[1].actual_s == pytest.approx(last_time, abs=1e-3)  # earlier than requested: the flag
    assert _mean_diff(cv2.imread(shots[1].path), last_image) < 6


def test_screenshots_are_scaled_to_max_width_on_the_fallback_path(tmp_path):
    shots = capture_screenshots(UNSEEKABLE, [1.0, 3.0], tmp_path, max_width=320)

    assert [(s.width, s.height) for s in shots] == [(320, 180), (320, 180)]
    assert cv2.imread(shots[1].path).shape[:2] == (180, 320)


def test_damaged_tail_keeps_the_frames_before_it(tmp_path):
    damaged = tmp_path / "damaged.webm"
    damaged.write_bytes(UNSEEKABLE.read_bytes()[: UNSEEKABLE.stat().st_size // 2])

    shots = capture_screenshots(damaged, [0.5, 4.0], tmp_path / "shots")

    assert [s.requested_s for s in shots] == [0.5, 4.0]
    decoded = _every_frame(UNSEEKABLE)
    assert shots[0].actual_s == pytest.approx(_on_screen_at(decoded, 0.5)[0], abs=1e-3)
    assert 0.5 <= shots[1].actual_s < 4.0  # the last frame that still decodes


def test_stream_without_a_decodable_frame_is_invalid_media(tmp_path):
    headers_only = tmp_path / "headers_only.webm"
    headers_only.write_bytes(UNSEEKABLE.read_bytes()[: UNSEEKABLE.stat().st_size // 100])

    with pytest.raises(InvalidMedia):
        capture_screenshots(headers_only, [0.5], tmp_path / "shots")


def test_seekable_file_stays_on_the_opencv_path(tmp_path, monkeypatch):
    def no_fallback(video, times):
        raise AssertionError(f"fell back to sequential decoding for {times}")

    monkeypatch.setattr(frames, "_decode_sequentially", no_fallback)
    video = PUBLIC / "video/example.mp4"
    shots = capture_screenshots(video, [1.0 + 4 * i for i in range(10)] + [60.0], tmp_path)

    assert len(shots) == 11
    assert shots[-1].requested_s == 60.0 and shots[-1].actual_s < 42.5  # past the end: the last frame


def test_fallback_seeks_forward_when_the_container_allows_it(tmp_path, monkeypatch):
    # Called directly on a seekable MP4: the backward seek lands before 3.3 s and is kept.
    opened = _count_media_opens(monkeypatch)
    video = PUBLIC / "video/big_buck_bunny_small.mp4"

    results = list(frames._decode_sequentially(video, [3.3, 4.0]))

    assert len(opened) == 1
    for requested, actual, image in results:
        exact_time, exact_image = frame_at(video, requested)
        assert actual == pytest.approx(exact_time, abs=1e-3)
        assert _mean_diff(image, exact_image) == 0
