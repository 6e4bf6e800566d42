"""Transcription with the shipped whisper base model against corpus references (WER with jiwer)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jiwer
import pytest

from pipelines.video_notes.audio import extract_audio
from pipelines.video_notes.checks import transcript_coverage
from pipelines.video_notes.formats import parse_srt, parse_vtt, render_all
from pipelines.video_notes.highlights import rank_highlights
from pipelines.video_notes.probe import probe
from pipelines.video_notes.summary import build_summary, cited_timestamps_exist
from pipelines.video_notes.transcript import Transcript
from resources.transcriber import EMBEDDED_MODEL_SHA256, Transcriber, ensure_embedded_model
from tests.support.video_fixtures import corpus_dir, expected  # noqa: F401


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text.lower())).strip()


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("whisper-cache")


@pytest.fixture(scope="module")
def transcriber(model_cache) -> Transcriber:
    transcriber = Transcriber(model="base", device="cpu", compute_type="int8", cpu_threads=2, beam_size=5,
                              cache_dir=str(model_cache))
    transcriber.load_model()  # once per module; later calls hit the per-process cache
    return transcriber


@pytest.fixture(scope="module")
def transcribe(transcriber, corpus_dir, tmp_path_factory):
    cache: dict[str, Transcript] = {}

    def run(name: str, **overrides) -> Transcript:
        if name not in cache:
            track = extract_audio(corpus_dir / name, tmp_path_factory.mktemp("audio") / "audio.wav")
            engine = transcriber.model_copy(update=overrides) if overrides else transcriber
            cache[name] = engine.transcribe(track.path)
        return cache[name]

    return run


def test_embedded_model_is_reassembled_once_and_verified(transcriber, model_cache):
    folder = ensure_embedded_model(model_cache)
    model_bin = folder / "model.bin"
    assert {p.name for p in folder.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    digest = hashlib.sha256(model_bin.read_bytes()).hexdigest()
    assert digest == EMBEDDED_MODEL_SHA256
    mtime = model_bin.stat().st_mtime_ns
    assert ensure_embedded_model(model_cache) == folder and model_bin.stat().st_mtime_ns == mtime
    assert transcriber.load_model() is transcriber.load_model()


def test_jfk_wer_and_word_timestamps(transcribe, expected):
    transcript = transcribe("audio/jfk.flac")
    wer = jiwer.wer(normalise(expected["audio/jfk.flac"]["reference"]), normalise(transcript.text))
    assert wer <= 0.15, transcript.text
    assert transcript.language == "en" and transcript.language_probability > 0.9
    assert transcript.duration == pytest.approx(11.0, abs=0.01)
    assert transcript.settings["vad_filter"] is True and transcript.settings["word_timestamps"] is True
    assert transcript.settings["beam_size"] == 5 and transcript.model == "base"
    americans = next(w for s in transcript.segments for w in s.words if "Americans" in w.word)
    assert americans.start <= 1.8 + 0.5 and americans.end >= 1.8 - 0.5  # openai/whisper asserts t=1.8 s
    data = json.loads(json.dumps(transcript.to_dict()))  # plain floats: JSON-serialisable
    assert Transcript.from_dict(data) == transcript
    assert all(type(s.start) is float for s in transcript.segments)


def test_meeting_excerpt_wer_looser(transcribe, expected):
    item = expected["audio/ES2011a.Headset-0-40s-46s.wav"]
    transcript = transcribe("audio/ES2011a.Headset-0-40s-46s.wav")
    assert jiwer.wer(normalise(item["reference"]), normalise(transcript.text)) <= 0.4, transcript.text
    # The speech lies where the reference segments are.
    first, last = item["segments"][0], item["segments"][-1]
    assert transcript.segments[0].start <= first["start"] + 0.5 and transcript.segments[-1].end >= last["end"] - 0.5


def test_example_video_end_to_end_outputs(transcribe, corpus_dir, tmp_path):
    transcript = transcribe("video/example.mp4")
    assert "banana" in transcript.text.lower()
    # "When the time reaches 40 seconds, I will say banana" (at ~16 s) ... and the last "Banana" comes at ~40 s.
    bananas = [w for s in transcript.segments for w in s.words if "banana" in w.word.lower()]
    assert 38.0 <= bananas[-1].start <= 42.5, bananas
    files = render_all(transcript)
    srt, vtt = parse_srt(files["transcript.srt"]), parse_vtt(files["transcript.vtt"])
    assert [(c.start, c.end) for c in srt] == [(c.start, c.end) for c in vtt] and len(srt) >= len(transcript.segments)
    assert all(0 <= c.start < c.end <= transcript.duration + 0.01 for c in srt)
    duration = probe(corpus_dir / "video/example.mp4").duration_s
    highlights = rank_highlights(transcript, duration=duration)
    assert highlights and all(0 <= h.start_ms < h.end_ms <= duration * 1000 for h in highlights)
    summary = build_summary(transcript, highlights)
    assert cited_timestamps_exist(summary.markdown, transcript) == []


def test_music_without_speech_gives_near_empty_transcript(transcribe, expected):
    transcript = transcribe("video/big_buck_bunny_small.mp4", beam_size=1)
    # Not silent (about -45 dBFS of music), so it is transcribed, and whisper (VAD on) hears no words in it.
    assert transcript.text == "" and not transcript.has_speech, transcript.text
    assert transcript.duration == pytest.approx(expected["video/big_buck_bunny_small.mp4"]["duration_s"], abs=0.1)
    assert transcript.settings["windows"] == [[0.0, transcript.duration]]
    summary = build_summary(transcript)
    assert summary.method == "no_speech" and "No speech was detected" in summary.markdown


def test_long_audio_in_windows_keeps_every_word(transcriber, corpus_dir, tmp_path):
    # Windows of 8 s over the 11 s JFK clip: the one segment crosses the window edge and must survive whole.
    track = extract_audio(corpus_dir / "audio/jfk.flac", tmp_path / "a.wav")
    windowed = transcriber.model_copy(update={"window_seconds": 8.0, "beam_size": 1}).transcribe(track.path)
    assert "ask what you can do for your country" in normalise(windowed.text)
    assert all(a.end <= b.start + 0.01 for a, b in zip(windowed.segments, windowed.segments[1:]))
    # The windows it decoded are recorded, and together they cover the whole clip (what the asset check reads).
    windows = windowed.settings["windows"]
    assert len(windows) >= 2 and windows[0][0] == 0.0 and windows[-1][1] == pytest.approx(11.0, abs=0.01)
    coverage = transcript_coverage(windowed, probed_duration_s=11.0, probed_audio_s=11.0, decoded_audio_s=track.duration_s)
    assert coverage.passed, coverage.problems


def test_speech_clips_pack_close_chunks_and_skip_long_silences(monkeypatch):
    """Chunks within one 30 s window decode together; a long silence starts a new clip (true timestamps)."""
    import faster_whisper.vad as vad

    from resources.transcriber import speech_clips

    chunks = [(0.0, 10.0), (12.0, 20.0), (25.0, 29.5), (50.0, 55.0), (95.0, 96.0)]
    monkeypatch.setattr(vad, "get_speech_timestamps",
                        lambda audio, options: [{"start": int(a * 16000), "end": int(b * 16000)} for a, b in chunks])
    assert speech_clips(object()) == [(0.0, 29.5), (50.0, 55.0), (95.0, 96.0)]
