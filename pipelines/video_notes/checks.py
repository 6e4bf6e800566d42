"""The asset checks of the video notes, as plain functions over independent facts.

Each compares what a stage stored with something it did not compute itself, so it can fail:
- :func:`transcript_coverage`: the decoded audio against the probed stream (a decode that stopped early, a dropped
  tail), and the windows the transcriber actually decoded against the audio (a window skipped or cut short);
- :func:`highlights_coverage`: the highlight rows as stored in the database against the probed duration and
  ``highlights.json`` (ranks, ranges, overlaps, a row lost or added).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.video_notes.transcript import Transcript

SLACK_S = 0.05  # rounding of stored times (ms) and of the WAV's last partial frame
# Decoded audio vs the probed stream: AAC priming and the last frame's padding differ by tens of ms; a long file
# may also lose a few undecodable packets (tolerated by the decoder), hence a small share of the duration on top.
AUDIO_TOLERANCE_S = 0.5
AUDIO_TOLERANCE_SHARE = 0.001


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    problems: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def probed_audio_seconds(info: dict[str, Any]) -> float | None:
    """The audio stream's duration from ``probe.json`` (the container's when the stream has none)."""
    stream = next((s for s in info.get("streams", ()) if s.get("type") == "audio"), None)
    if stream is None:
        return None
    return float(stream.get("duration_s") or info["duration_s"])


def _uncovered(windows: Sequence[Sequence[float]], duration: float) -> list[str]:
    """Stretches of 0..duration that no window covers."""
    gaps, reached = [], 0.0
    for start, end in sorted((float(a), float(b)) for a, b in windows):
        if start > reached + SLACK_S:
            gaps.append(f"{reached:.2f}-{start:.2f} s")
        reached = max(reached, end)
    if reached < duration - SLACK_S:
        gaps.append(f"{reached:.2f}-{duration:.2f} s")
    return gaps


def transcript_coverage(
    transcript: Transcript, *, probed_duration_s: float, probed_audio_s: float | None, decoded_audio_s: float | None,
) -> CheckOutcome:
    """Does the transcript cover the media's whole audio?

    ``probed_*`` come from the probe (container and audio stream headers or packets), ``decoded_audio_s`` from
    the WAV the audio stage wrote (None without an audio stream). A transcript skipped for silence or for a
    missing stream must still span the audio (or the media); one that was transcribed must record its windows.
    """
    problems: list[str] = []
    has_audio = probed_audio_s is not None
    reference = probed_audio_s if has_audio else probed_duration_s
    if has_audio:
        if decoded_audio_s is None:
            problems.append("the probe found an audio stream but no audio was decoded")
        else:
            tolerance = AUDIO_TOLERANCE_S + AUDIO_TOLERANCE_SHARE * probed_audio_s
            if abs(decoded_audio_s - probed_audio_s) > tolerance:
                problems.append(f"decoded audio is {decoded_audio_s:.2f} s, the stream {probed_audio_s:.2f} s")
            if abs(transcript.duration - decoded_audio_s) > SLACK_S:
                problems.append(f"transcript spans {transcript.duration:.2f} s of {decoded_audio_s:.2f} s decoded")
    elif abs(transcript.duration - probed_duration_s) > AUDIO_TOLERANCE_S:
        problems.append(f"transcript spans {transcript.duration:.2f} s of a {probed_duration_s:.2f} s file")
    skipped = transcript.settings.get("skipped")
    windows = transcript.settings.get("windows")
    if skipped:
        if transcript.segments:
            problems.append(f"the transcript was skipped ({skipped}) but has segments")
    elif not windows:
        problems.append("the transcript records no decoded windows")
    else:
        problems += [f"not transcribed: {gap}" for gap in _uncovered(windows, transcript.duration)]
    outside = [s.id for s in transcript.segments if not 0 <= s.start <= s.end <= transcript.duration + SLACK_S]
    if outside:
        problems.append(f"segments outside the audio: {outside[:5]}")
    return CheckOutcome(not problems, problems, {
        "transcript_s": transcript.duration, "reference_s": reference, "decoded_audio_s": decoded_audio_s,
        "windows": len(windows or ()), "skipped": skipped or "no",
    })


def highlights_coverage(
    rows: Sequence[tuple[int, int, int]], *, duration_s: float, manifest_count: int
) -> CheckOutcome:
    """Are the stored highlight rows ``(rank, start_ms, end_ms)`` ranges inside the probed duration, ranked
    1..n, without overlaps, and as many as ``highlights.json`` lists?"""
    problems: list[str] = []
    duration_ms = int(round(duration_s * 1000))
    if len(rows) != manifest_count:
        problems.append(f"{len(rows)} stored rows for {manifest_count} highlights in highlights.json")
    if sorted(r[0] for r in rows) != list(range(1, len(rows) + 1)):
        problems.append("ranks are not 1..n")
    outside = [rank for rank, start, end in rows if not 0 <= start < end <= duration_ms]
    if outside:
        problems.append(f"highlights outside 0..{duration_ms} ms: ranks {outside}")
    ordered = sorted(rows, key=lambda r: r[1])
    # 1 ms: a start is floored and an end rounded to milliseconds, so touching ranges may share one.
    overlapping = [b[0] for a, b in zip(ordered, ordered[1:]) if b[1] < a[2] - 1]
    if overlapping:
        problems.append(f"overlapping highlights: ranks {overlapping}")
    return CheckOutcome(not problems, problems, {"duration_ms": duration_ms, "count": len(rows)})
