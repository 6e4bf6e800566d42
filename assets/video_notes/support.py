"""Helpers of the video notes assets (assets/video_notes/assets.py): the job's video, its stored outputs, scratch files,
artifact storage with content types, throttled progress. Every query is scoped by the job's workspace.

Scratch files (``pipelines.video_notes.scratch``) are removed when the job no longer needs them on this worker:
once both final stages stored their outputs, when a step fails for good (a permanent error, a canceled job, the
last attempt), and by a later final stage of a run that already failed. A retryable failure keeps them for the
retry; what a killed worker leaves is swept by age at the start of later runs.

Data moves between the assets through the object store and the database (artifacts of the job), never through
Dagster's IO manager: a 10-minute WAV pickled between steps would cost memory and time, and artifacts are what the
API serves anyway.
"""

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import cv2
import dagster as dg

from assets._job_context import JobHandle, kiln_job
from pipelines.run_tags import ERROR_CODE_KEY, JOB_ID_TAG, RETRYABLE_KEY
from pipelines.video_notes.bundle import write_notes_bundle
from pipelines.video_notes.errors import InvalidMedia
from pipelines.video_notes.highlights import Highlight as HighlightData
from pipelines.video_notes.product import VideoNotesPayload
from pipelines.video_notes.scratch import remove_scratch, scratch_root
from pipelines.video_notes.transcript import Transcript
from resources.dagster_resources import DatabaseResource
from resources.objectstore import ObjectStore, file_chunks
from warehouse import jobs as job_rows
from warehouse import video_notes as video_rows
from warehouse.models import Artifact
from warehouse.video_notes import JOB_KIND, VideoAsset, job_outputs, load_video

T = TypeVar("T")
CONTENT_TYPES = {".json": "application/json", ".srt": "application/x-subrip; charset=utf-8",
                 ".vtt": "text/vtt; charset=utf-8", ".txt": "text/plain; charset=utf-8",
                 ".md": "text/markdown; charset=utf-8", ".jpg": "image/jpeg", ".mp4": "video/mp4", ".wav": "audio/wav",
                 ".zip": "application/zip"}


@contextmanager
def video_job(context: dg.AssetExecutionContext, database: DatabaseResource,
              object_store: ObjectStore) -> Iterator[JobHandle]:
    """``kiln_job`` for a video notes step, removing the job's scratch folder when the step ends the job."""
    handle: JobHandle | None = None
    try:
        with kiln_job(context, database, object_store, kind=JOB_KIND) as job:
            handle = job
            yield job
    except BaseException as exc:
        if handle is not None:
            if _ends_job(handle, exc):
                remove_scratch(handle.job_id)
        elif _failure_value(exc, ERROR_CODE_KEY) == "canceled" and JOB_ID_TAG in context.run.tags:
            # Canceled between two steps of this run. Other refusals to claim (the job is another run's) must
            # leave the files alone: that run may be using them on this worker.
            remove_scratch(context.run.tags[JOB_ID_TAG])
        raise


def _failure_value(exc: BaseException, key: str) -> object:
    """A metadata value of the Failure ``kiln_job`` raises for a KilnError (None for anything else)."""
    value = (exc.metadata or {}).get(key) if isinstance(exc, dg.Failure) else None
    return getattr(value, "value", value)


def _ends_job(job: JobHandle, exc: BaseException) -> bool:
    """Will no later attempt of this job need its scratch files? A permanent error (kiln_job raises it as a
    Failure saying not retryable), a canceled job, or the last attempt failing."""
    if _failure_value(exc, RETRYABLE_KEY) is False:
        return True
    return _no_attempt_left(job)


def _no_attempt_left(job: JobHandle) -> bool:
    try:
        with job.database.tenant_session(job.workspace_id) as session:
            row = job_rows.attempts_state(session, job.job_id, job.workspace_id)
    except Exception:  # the database is what failed: keep the files, the age sweep gets them
        return False
    return row is None or row.status == "canceled" or row.attempt >= row.max_attempts


def video_of(job: JobHandle) -> VideoAsset:
    video_id = job.params(VideoNotesPayload).video_id  # the card's payload model, as the video routes wrote it
    with job.database.tenant_session(job.workspace_id) as session:
        video = load_video(session, job.workspace_id, video_id)
        if video is None:
            raise InvalidMedia("The video of this job no longer exists.")
        session.expunge(video)
    return video


def outputs_of(job: JobHandle) -> dict[str, Artifact]:
    with job.database.tenant_session(job.workspace_id) as session:
        found = job_outputs(session, job.workspace_id, job.job_id)
        for artifact in found.values():
            session.expunge(artifact)
    return found


def json_of(job: JobHandle, artifact: Artifact) -> object:
    return json.loads(job.store.get_bytes(artifact.storage_key))


def stored_or_computed(job: JobHandle, name: str, compute: Callable[[], T],
                       load: Callable[[Artifact], T] | None = None) -> tuple[T, bool]:
    """(value, reused): what an earlier attempt of this job stored as ``name`` (``load`` it, by default as
    JSON), else ``compute()``, which stores it. A retried run so skips the stages that already finished."""
    existing = outputs_of(job).get(name)
    if existing is not None:
        return (load(existing) if load is not None else json_of(job, existing)), True
    return compute(), False


def required(job: JobHandle, name: str) -> Artifact:
    artifact = outputs_of(job).get(name)
    if artifact is None:  # an upstream stage of this job did not finish: not the user's fault
        raise RuntimeError(f"{name} of job {job.job_id} is missing; its stage has to run first")
    return artifact


def scratch_dir(job: JobHandle) -> Path:
    """Working files of this job on this worker (reused across its assets in one in-process run)."""
    folder = scratch_root() / str(job.job_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def local_copy(job: JobHandle, artifact: Artifact, name: str) -> Path:
    """The artifact's bytes as a local file (server-made name, never the user's); downloaded once per job."""
    target = scratch_dir(job) / name
    if not (target.is_file() and target.stat().st_size == artifact.size_bytes):
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        job.store.download_to(artifact.storage_key, str(partial))
        partial.replace(target)
    return target


def source_file(job: JobHandle, video: VideoAsset) -> Path:
    with job.database.tenant_session(job.workspace_id) as session:
        artifact = session.get(Artifact, video.input_artifact_id)
        session.expunge(artifact)
    return local_copy(job, artifact, "source.media")


def store_bytes(job: JobHandle, name: str, data: bytes, *, kind: str = "output", parents=()) -> Artifact:
    return job.store_artifact(kind=kind, name=name, data=data, content_type=CONTENT_TYPES[Path(name).suffix],
                              parents=list(parents))


def store_file(job: JobHandle, name: str, path: Path, *, kind: str = "output", parents=()) -> Artifact:
    return job.store_artifact(kind=kind, name=name, chunks=file_chunks(path), content_type=CONTENT_TYPES[Path(name).suffix],
                              parents=list(parents))


def progress_between(job: JobHandle, start: int, end: int) -> Callable[[float], None]:
    """A fraction callback that writes progress when the whole percent moves, at most once a second.

    Each write is a committed transaction; on a 10-minute video a write per segment cost ~0.3 s.
    """
    last = [start, 0.0]

    def report(fraction: float) -> None:
        value = int(start + (end - start) * max(0.0, min(1.0, fraction)))
        now = time.monotonic()
        if value > last[0] and now - last[1] >= 1.0:
            last[0], last[1] = value, now
            job.progress(value)

    return report


def update_video(job: JobHandle, video_id: uuid.UUID, **values) -> None:
    with job.database.tenant_session(job.workspace_id) as session:
        video_rows.update_video(session, job.workspace_id, video_id, **values)


def adopt_job(job: JobHandle, video_id: uuid.UUID) -> bool:
    with job.database.tenant_session(job.workspace_id) as session:
        return video_rows.adopt_job(session, job.workspace_id, video_id, job.job_id)


def transcript_of(job: JobHandle) -> Transcript:
    return Transcript.from_dict(json_of(job, required(job, "transcript.json")))


def highlights_of(job: JobHandle) -> list[HighlightData]:
    return [
        HighlightData(h["start_ms"], h["end_ms"], h["title"], h["score"], h["text"], tuple(h["segment_ids"]))
        for h in json_of(job, required(job, "highlights.json"))["highlights"]
    ]


def store_notes_bundle(job: JobHandle, markdown: str, manifest: dict) -> list[str]:
    """Store ``notes.zip`` (Summary.md + its screenshots, from this run's files or the object store); return the
    screenshot names Summary.md links that it could not include."""
    outputs = outputs_of(job)
    shots = {entry["name"]: outputs[entry["name"]] for entry in manifest["screenshots"] if entry["name"] in outputs}
    files = {name: local_copy(job, artifact, f"screenshots/{name}") for name, artifact in shots.items()}
    bundle = scratch_dir(job) / "notes.zip"
    unresolved = write_notes_bundle(bundle, markdown, files)
    parents = [outputs["Summary.md"].id, *(a.id for a in shots.values())]
    store_file(job, "notes.zip", bundle, parents=parents)
    return unresolved


def thumbnail_markdown(path: Path, width: int = 320) -> str:
    """A small inline JPEG (data URI) the Dagster UI shows in the materialization's metadata."""
    image = cv2.imread(str(path))
    if image is None:
        return ""
    height = max(1, int(image.shape[0] * width / image.shape[1]))
    ok, encoded = cv2.imencode(".jpg", cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA),
                               [cv2.IMWRITE_JPEG_QUALITY, 70])
    return f"![thumbnail](data:image/jpeg;base64,{base64.b64encode(encoded.tobytes()).decode()})" if ok else ""


def finish_if_done(job: JobHandle, context: dg.AssetExecutionContext) -> None:
    """Drop the job's scratch folder once both final stages have stored their outputs, or, at the end of a final
    stage, when a step of this run already failed for good: the other final stage then never comes in this run."""
    outputs = outputs_of(job)
    if ("Summary.md" in outputs and "clips.json" in outputs) or _failure_ends_job(job, context):
        remove_scratch(job.job_id)


def _failure_ends_job(job: JobHandle, context: dg.AssetExecutionContext) -> bool:
    """Did a step of this run fail in a way no later attempt recovers from? A retryable failure keeps the
    files for the retry (the source download and the WAV are the expensive part of an attempt)."""
    failures = context.instance.all_logs(context.run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    if not failures:
        return False
    for record in failures:
        data = record.dagster_event.step_failure_data if record.dagster_event else None
        metadata = (data.user_failure_data.metadata or {}) if data and data.user_failure_data else {}
        retryable = metadata.get(RETRYABLE_KEY)
        if getattr(retryable, "value", retryable) is False:
            return True
    return _no_attempt_left(job)
