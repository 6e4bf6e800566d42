"""Video notes domain without Whisper: probe, audio, screenshots, scenes, clips, formats, highlights, summary, LLM."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines.errors import PermanentError
from pipelines.video_notes.audio import SAMPLE_RATE, extract_audio, load_audio
from pipelines.video_notes.clips import clip_duration, cut_clip
from pipelines.video_notes.errors import InvalidMedia
from pipelines.video_notes.formats import (
    build_cues, parse_srt, parse_vtt, srt_timestamp, to_srt, to_txt, to_vtt, vtt_timestamp,
)
from pipelines.video_notes.frames import capture_screenshots, detect_scene_changes, frame_at
from pipelines.video_notes.highlights import rank_highlights
from pipelines.video_notes.probe import probe
from pipelines.video_notes.summary import (
    PROMPT_VERSION, build_summary, cited_timestamps_exist,
)
from pipelines.video_notes.transcript import Segment, Transcript, Word
from resources.llm import LLM, LLMUnavailable
from tests.support.video_fixtures import ChatEmulator, chat_emulator, corpus_dir, expected, make_scene_video  # noqa: F401


# -- probe ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["video/example.mp4", "video/big_buck_bunny_small.mp4", "video/example_no_audio.mp4",
                                  "video/webvtt.mkv", "audio/jfk.flac", "audio/ES2011a.Headset-0-40s-46s.wav"])
def test_probe_matches_ffprobe_facts(corpus_dir, expected, name):
    info = probe(corpus_dir / name)
    media = expected[name]["media"]
    assert info.container == media["container"]
    assert info.duration_s == pytest.approx(media["duration_s"], abs=0.1)
    assert info.has_audio is media["has_audio"] and info.has_video is media["has_video"]
    assert [(s.type, s.codec) for s in info.streams] == [(s["type"], s["codec"]) for s in media["streams"]]
    for got, want in zip(info.streams, media["streams"]):
        if want["type"] == "video":
            assert (got.width, got.height, got.fps_fraction) == (want["width"], want["height"], want["fps"])
        if want["type"] == "audio":
            assert (got.sample_rate, got.channels) == (want["sample_rate"], want["channels"])
    assert info.to_dict()["has_video"] is media["has_video"]


def test_container_without_duration_is_handled_from_packets(corpus_dir):
    # Decision: no_duration.webm is readable media whose header lacks a duration; the packets give it.
    info = probe(corpus_dir / "video/no_duration.webm")
    assert info.duration_source == "packets"
    assert 4.5 < info.duration_s < 5.5
    assert info.has_video and info.has_audio


def test_non_media_bytes_are_invalid_media(tmp_path, corpus_dir):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(random.Random(7).randbytes(64 * 1024))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (junk, empty, corpus_dir / "csv/country-codes.csv"):
        with pytest.raises(InvalidMedia) as info:
            probe(path)
        assert info.value.code == "invalid_media" and isinstance(info.value, PermanentError)
        assert info.value.retryable is False


def test_truncated_file_is_invalid_media(tmp_path, corpus_dir):
    data = (corpus_dir / "video/example.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(InvalidMedia, match="truncated"):
        probe(truncated)


@pytest.mark.parametrize("hostile", ["-rf.mp4", "../x.mp4", "concat:a.mp4"])
def test_hostile_file_names_are_plain_files(tmp_path, corpus_dir, hostile):
    workdir = tmp_path / "work" / "sub"
    workdir.mkdir(parents=True)
    target = (workdir / hostile).resolve()
    shutil.copy(corpus_dir / "video/example_no_audio.mp4", target)
    assert probe(workdir / hostile).duration_s == pytest.approx(2.0, abs=0.05)
    assert capture_screenshots(workdir / hostile, [0.5], tmp_path / "shots")[0].actual_s == pytest.approx(0.5, abs=0.05)


# -- audio ------------------------------------------------------------------------------------------------------
def test_audio_is_16k_mono_and_matches_faster_whisper_decoder(tmp_path, corpus_dir):
    from faster_whisper import decode_audio

    source = corpus_dir / "audio/jfk.flac"
    progress: list[float] = []
    track = extract_audio(source, tmp_path / "audio.wav", on_progress=progress.append)
    assert track.has_audio and track.sample_rate == SAMPLE_RATE and track.duration_s == pytest.approx(11.0, abs=0.01)
    assert progress == sorted(progress) and progress[-1] == 1.0
    ours, theirs = load_audio(track.path), decode_audio(str(source))
    assert ours.shape == theirs.shape and float(np.abs(ours - theirs).max()) < 1e-4
    assert not track.is_silent


def test_video_without_audio_gives_no_audio_result(tmp_path, corpus_dir):
    track = extract_audio(corpus_dir / "video/example_no_audio.mp4", tmp_path / "audio.wav")
    assert track.has_audio is False and track.path is None and track.is_silent
    assert not (tmp_path / "audio.wav").exists()


def test_digital_silence_is_reported_silent(tmp_path, corpus_dir):
    track = extract_audio(corpus_dir / "video/no_duration.webm", tmp_path / "audio.wav")
    assert track.has_audio and track.is_silent and track.duration_s > 4


# -- screenshots, scenes, clips ----------------------------------------------------------------------------------
def _mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        a = cv2.resize(a, (b.shape[1], b.shape[0]))
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_screenshots_land_on_the_requested_frames(tmp_path, corpus_dir):
    video = corpus_dir / "video/big_buck_bunny_small.mp4"
    shots = capture_screenshots(video, [1.0, 3.3, 0.0, 1.0], tmp_path)
    assert [s.requested_s for s in shots] == [0.0, 1.0, 3.3]  # sorted, duplicates collapsed
    for shot in shots:
        assert Path(shot.path).name == shot.name and shot.name.endswith(".jpg")
        frame_time, exact = frame_at(video, shot.requested_s)
        assert abs(shot.actual_s - shot.requested_s) <= 0.05  # one frame at 25 fps
        image = cv2.imread(shot.path)
        _, later = frame_at(video, shot.requested_s + 0.6)
        assert _mean_diff(image, exact) < 6  # JPEG noise only
        assert _mean_diff(image, exact) < _mean_diff(image, later)


def test_scene_changes_found_at_cuts(tmp_path):
    video = make_scene_video(tmp_path / "scenes.mp4", [(200, 20, 20), (20, 20, 200), (20, 200, 20)])
    assert detect_scene_changes(video, mode="keyframes") == [2.0, 4.0]
    sampled = detect_scene_changes(video, mode="sampled", sample_fps=5)
    assert len(sampled) == 2 and all(abs(a - b) <= 0.2 for a, b in zip(sampled, [2.0, 4.0]))
    assert detect_scene_changes(tmp_path / "scenes.mp4", threshold=1.01) == []


def test_stream_copy_clip_starts_at_keyframe_and_exact_clip_is_exact(tmp_path, corpus_dir):
    video = corpus_dir / "video/example.mp4"
    copy = cut_clip(video, 13.7, 24.0, tmp_path / "copy.mp4")
    assert copy.start <= 13.7 and copy.end == pytest.approx(24.0, abs=0.05)
    assert clip_duration(copy.path) == pytest.approx(copy.end - copy.start, abs=0.1)
    assert probe(copy.path).has_audio and probe(copy.path).has_video
    exact = cut_clip(video, 13.7, 24.0, tmp_path / "exact.mp4", mode="exact")
    assert exact.start == pytest.approx(13.7, abs=0.05)
    assert clip_duration(exact.path) == pytest.approx(10.3, abs=0.1)
    # The exact clip's first frame is the source frame at 13.7 s.
    _, first = frame_at(exact.path, 0.0)
    _, source = frame_at(video, 13.7)
    _, other = frame_at(video, 20.0)
    assert _mean_diff(first, source) < _mean_diff(first, other)
    with pytest.raises(ValueError):
        cut_clip(video, 5.0, 5.0, tmp_path / "bad.mp4")


# -- formats ----------------------------------------------------------------------------------------------------
def _long_transcript() -> Transcript:
    words = [Word(0.5 + i * 0.4, 0.5 + i * 0.4 + 0.35, f" word{i}", 0.9) for i in range(40)]
    return Transcript(
        language="en", language_probability=0.99, duration=30.0, model="base",
        segments=(
            Segment(0, 0.5, 16.5, " ".join(w.word.strip() for w in words), tuple(words)),
            Segment(1, 20.0, 23.0, "No word timings in this one at all, it is split by length instead."),
        ),
    )


def test_timestamp_formats():
    assert srt_timestamp(1.5) == "00:00:01,500" and vtt_timestamp(1.5) == "00:00:01.500"
    assert srt_timestamp(3723.0456) == "01:02:03,046"


def test_cues_respect_line_length_and_duration_and_round_trip():
    transcript = _long_transcript()
    cues = build_cues(transcript)
    assert len(cues) > 3
    for cue in cues:
        assert len(cue.lines) <= 2 and all(len(line) <= 42 for line in cue.lines)
        assert 0 < cue.end - cue.start <= 7.0 + 1e-9
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:]))
    for parsed in (parse_srt(to_srt(transcript)), parse_vtt(to_vtt(transcript))):
        assert [(c.start, c.end, c.lines) for c in parsed] == [(c.start, c.end, c.lines) for c in cues]
    assert to_txt(transcript).splitlines()[1].startswith("No word timings")
    assert Transcript.from_dict(transcript.to_dict()) == transcript


# -- highlights and summary --------------------------------------------------------------------------------------
def _lecture() -> Transcript:
    texts = [
        "Welcome to this talk about compilers and how they work.",
        "First we look at parsing, the parser turns tokens into a syntax tree.",
        "The parser handles precedence with a Pratt parser, which is simple.",
        "Next comes type checking of the syntax tree.",
        "Now a short break, thanks for staying with me.",
        "Register allocation assigns registers with graph colouring.",
        "Graph colouring of the interference graph decides the registers.",
        "To conclude, compilers are pipelines of simple passes.",
    ]
    segments = tuple(Segment(i, i * 15.0, i * 15.0 + 12.0, t) for i, t in enumerate(texts))
    return Transcript(language="en", language_probability=0.98, duration=125.0, segments=segments, model="base")


def test_highlights_are_ranked_inside_duration_and_deterministic():
    transcript = _lecture()
    highlights = rank_highlights(transcript, duration=125.0, limit=3)
    assert 1 <= len(highlights) <= 3
    assert highlights == rank_highlights(transcript, duration=125.0, limit=3)
    assert [h.start_ms for h in highlights] == sorted(h.start_ms for h in highlights)
    for h in highlights:
        assert 0 <= h.start_ms < h.end_ms <= 125_000 and 0 < h.score <= 1
        assert h.end_ms - h.start_ms <= 60_000 and h.title
    assert max(h.score for h in highlights) == 1.0
    assert all(a.end_ms <= b.start_ms for a, b in zip(highlights, highlights[1:]))
    assert rank_highlights(Transcript.empty(10.0)) == []
    clipped = rank_highlights(transcript, duration=100.0)
    assert all(h.end_ms <= 100_000 for h in clipped)


def test_extractive_summary_cites_only_real_timestamps_and_says_so(tmp_path, corpus_dir):
    transcript = _lecture()
    highlights = rank_highlights(transcript, limit=2)
    shots = capture_screenshots(corpus_dir / "video/example.mp4", [h.start for h in highlights], tmp_path)
    result = build_summary(transcript, highlights, shots)
    assert result.method == "extractive" and "Extractive summary" in result.markdown
    for heading in ("# ", "## Overview", "## Key points", "## Chapters", "## Highlights"):
        assert heading in result.markdown
    assert cited_timestamps_exist(result.markdown, transcript) == []
    for shot in shots:
        assert f"(screenshots/{shot.name})" in result.markdown
    assert cited_timestamps_exist(result.markdown + "\nSee [09:59].", transcript) == ["[09:59]"]


def test_no_speech_summary(corpus_dir):
    result = build_summary(Transcript.empty(2.0), has_audio=False)
    assert result.method == "no_speech" and "no audio track" in result.markdown


def test_llm_summary_over_real_http_with_retries(chat_emulator):
    transcript = _lecture()
    chat = LLM(base_url=chat_emulator.base_url, model="emulated-1", api_key="sk-test", max_retries=3).chat_model()
    assert chat is not None and "sk-test" not in repr(chat)
    result = build_summary(transcript, rank_highlights(transcript), chat=chat)
    assert chat_emulator.statuses[:3] == [429, 503, 200]  # retried twice, then answered
    assert result.method == "llm" and result.prompt_version == PROMPT_VERSION == "summary_v1"
    assert result.model == "emulated-1" and "Emulated notes" in result.markdown
    assert result.dropped_citations == ["[59:59]"] and "[59:59]" not in result.markdown
    assert cited_timestamps_exist(result.markdown, transcript) == []
    system = chat_emulator.requests[-1]["messages"][0]["content"]
    assert "JSON" in system and "[00:15] First we look at parsing" in chat_emulator.requests[-1]["messages"][1]["content"]


def test_llm_gives_up_after_retries_and_is_optional(monkeypatch):
    monkeypatch.delenv("KILN_LLM_BASE_URL", raising=False)
    assert LLM().chat_model() is None  # not configured: the offline summary is used
    with ChatEmulator(fail_first=[429, 429, 429]) as emulator:
        chat = LLM(base_url=emulator.base_url, model="m", max_retries=1).chat_model()
        with pytest.raises(LLMUnavailable) as info:
            chat.complete([{"role": "user", "content": "hi"}])
        assert info.value.retryable and emulator.statuses == [429, 429]


def test_scene_detection_decodes_a_bounded_sample_of_keyframes(tmp_path):
    # Keyframes every second, cuts at 2 s and 4 s. Capped at 2 keyframes on 6 s, only those at 0 s and 3 s are
    # decoded: the cut at 2 s is reported at the first sampled keyframe after it, the one at 4 s is not seen.
    video = make_scene_video(tmp_path / "scenes.mp4", [(200, 20, 20), (20, 20, 200), (20, 200, 20)])
    assert detect_scene_changes(video, max_keyframes=3) == [2.0, 4.0]  # spacing 2 s still lands on both cuts
    assert detect_scene_changes(video, max_keyframes=2) == [3.0]
