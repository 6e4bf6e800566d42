"""The transcript as plain data: what the transcriber produces and every later stage reads.

Plain Python floats only (faster-whisper hands back ``numpy.float64``), so ``to_dict`` is JSON-ready and
``from_dict(to_dict(t)) == t``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TRANSCRIPT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str  # as Whisper emits it, usually with its leading space
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float | None = None
    no_speech_prob: float | None = None


@dataclass(frozen=True)
class Transcript:
    language: str | None
    language_probability: float | None
    duration: float  # seconds of audio transcribed
    segments: tuple[Segment, ...] = ()
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # beam_size, vad, compute_type, device, ...
    duration_after_vad: float | None = None
    processing_seconds: float | None = None

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def has_speech(self) -> bool:
        return any(s.text.strip() for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema_version"] = TRANSCRIPT_SCHEMA_VERSION
        data["text"] = self.text
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = tuple(
            Segment(
                id=int(s["id"]),
                start=float(s["start"]),
                end=float(s["end"]),
                text=str(s["text"]),
                words=tuple(
                    Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w["probability"]))
                    for w in s.get("words") or ()
                ),
                avg_logprob=s.get("avg_logprob"),
                no_speech_prob=s.get("no_speech_prob"),
            )
            for s in data.get("segments") or ()
        )
        return cls(
            language=data.get("language"),
            language_probability=data.get("language_probability"),
            duration=float(data["duration"]),
            segments=segments,
            model=data.get("model", ""),
            settings=dict(data.get("settings") or {}),
            duration_after_vad=data.get("duration_after_vad"),
            processing_seconds=data.get("processing_seconds"),
        )

    @classmethod
    def empty(cls, duration: float, *, model: str = "", settings: dict[str, Any] | None = None) -> Transcript:
        """The transcript of media without an audio stream (or with nothing to hear)."""
        return cls(language=None, language_probability=None, duration=float(duration), model=model,
                   settings=dict(settings or {}))
