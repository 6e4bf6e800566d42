"""Video notes assets: probe -> audio -> transcript -> highlights -> screenshots -> summary, clips.

Partitioned by ``videos`` (one partition per video id). Thin: each asset loads its inputs from the
object store, calls ``pipelines.video_notes``, stores artifacts with lineage and reports progress.

Data moves between assets as artifacts of the job (object store + database; helpers in
``assets/video_notes/support.py``), never through Dagster's IO manager. Each asset first looks for its own
outputs of this job: when a retried run (same job, next attempt) finds them, it reuses them instead of
recomputing, so a worker killed mid-transcription does not redo the probe or the audio decode.

No ``from __future__ import annotations``: Dagster inspects the real parameter annotations.
"""

import json
import uuid
from pathlib import Path

import av
import dagster as dg
from assets.video_notes.support import (
    adopt_job,
    finish_if_done,
    highlights_of,
    json_of,
    local_copy,
    outputs_of,
    progress_between,
    required,
    scratch_dir,
    source_file,
    store_bytes,
    store_file,
    store_notes_bundle,
    stored_or_computed,
    thumbnail_markdown,
    transcript_of,
    update_video,
    video_job,
    video_of,
)
from pipelines.video_notes.audio import extract_audio
from pipelines.video_notes.checks import highlights_coverage, probed_audio_seconds, transcript_coverage
from pipelines.video_notes.clips import clip_name, cut_clip
from pipelines.video_notes.errors import InvalidMedia
from pipelines.video_notes.formats import render_all
from pipelines.video_notes.frames import Screenshot, capture_screenshots, detect_scene_changes
from pipelines.video_notes.highlights import rank_highlights
from pipelines.video_notes.probe import probe
from pipelines.video_notes.product import PARTITIONS, VideoNotesPayload
from pipelines.video_notes.scratch import sweep_scratch
from pipelines.video_notes.summary import build_summary, cited_timestamps_exist
from pipelines.video_notes.transcript import Transcript
from resources.dagster_resources import DatabaseResource
from resources.llm import LLM
from resources.objectstore import ObjectStore
from resources.transcriber import Transcriber
from warehouse.video_notes import highlights_of_job, link_highlight_clips, replace_highlights

videos_partitions = dg.DynamicPartitionsDefinition(name=PARTITIONS)

GROUP = "video_notes"
MAX_SCENE_SHOTS = 12  # scene-change screenshots beyond the highlights' own


# -- assets ---------------------------------------------------------------------------------------------------
@dg.asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"pyav"})
def video_probe(context: dg.AssetExecutionContext, database: DatabaseResource,
                object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """Container, duration, streams and codecs; rejects what is not usable media (invalid_media)."""
    with video_job(context, database, object_store) as job:
        # The first step of every run, on the worker that holds the files: what killed runs left behind goes.
        swept = sweep_scratch(keep={str(job.job_id)})
        if swept:
            context.log.info("removed %d stale scratch folders: %s", len(swept), ", ".join(swept[:10]))
        video = video_of(job)
        if video.latest_job_id != job.job_id:
            # A job the API did not create (a backfill or a materialization from the UI): it becomes the
            # video's current job, so status, progress and the reprocess guard follow it.
            adopt_job(job, video.id)

        def compute() -> dict:
            info = probe(source_file(job, video)).to_dict()
            store_bytes(job, "probe.json", json.dumps(info, indent=2).encode(), kind="intermediate",
                        parents=[video.input_artifact_id])
            update_video(job, video.id, duration_ms=int(round(info["duration_s"] * 1000)), media=info)
            return info

        info, reused = stored_or_computed(job, "probe.json", compute)
        job.progress(5)
    video_stream = next((s for s in info["streams"] if s["type"] == "video"), None)
    return dg.MaterializeResult(metadata={
        "duration_s": info["duration_s"], "container": info["container"],
        "streams": ", ".join(f"{s['type']}:{s['codec']}" for s in info["streams"]),
        "resolution": f"{video_stream['width']}x{video_stream['height']}" if video_stream else "audio only",
        "reused": reused, "job_id": str(job.job_id), "stale_scratch_removed": len(swept),
    })


@dg.asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"pyav"}, deps=[video_probe])
def video_audio(context: dg.AssetExecutionContext, database: DatabaseResource,
                object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """The audio track as 16 kHz mono WAV, decoded with PyAV (streamed: flat memory on long videos)."""
    with video_job(context, database, object_store) as job:
        video = video_of(job)

        def compute() -> dict:
            wav = scratch_dir(job) / "audio.wav"
            result = extract_audio(source_file(job, video), wav, on_progress=progress_between(job, 5, 15))
            track = result.to_dict()
            track.pop("path")
            if result.has_audio:
                stored = store_file(job, "audio.wav", wav, kind="intermediate", parents=[video.input_artifact_id])
                track["artifact_id"] = str(stored.id)
            store_bytes(job, "audio.json", json.dumps(track, indent=2).encode(), kind="intermediate",
                        parents=[video.input_artifact_id])
            return track

        track, reused = stored_or_computed(job, "audio.json", compute)
        job.progress(15)
    return dg.MaterializeResult(metadata={
        "has_audio": track["has_audio"], "audio_duration_s": round(track["duration_s"], 3),
        "rms_dbfs": track["rms_dbfs"], "silent": track["is_silent"], "reused": reused,
    })


@dg.asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"whisper"}, deps=[video_audio],
          check_specs=[dg.AssetCheckSpec("transcript_covers_audio", asset="video_transcript")])
def video_transcript(context: dg.AssetExecutionContext, database: DatabaseResource, object_store: dg.ResourceParam[ObjectStore],
                     transcriber: Transcriber) -> dg.MaterializeResult:
    """faster-whisper (VAD, word timestamps, language detection) -> transcript.json / .srt / .vtt / .txt."""
    with video_job(context, database, object_store) as job:
        video = video_of(job)
        outputs = outputs_of(job)
        track = json_of(job, outputs["audio.json"]) if "audio.json" in outputs else json_of(job, required(job, "audio.json"))
        info = json_of(job, required(job, "probe.json"))
        reused = all(f"transcript.{ext}" in outputs for ext in ("json", "srt", "vtt", "txt"))
        if reused:
            transcript = Transcript.from_dict(json_of(job, outputs["transcript.json"]))
        else:
            if track["has_audio"] and not track["is_silent"]:
                wav = local_copy(job, required(job, "audio.wav"), "audio.wav")
                language = job.params(VideoNotesPayload).language
                engine = transcriber.model_copy(update={"language": language}) if language else transcriber
                transcript = engine.transcribe(wav, on_progress=progress_between(job, 15, 70))
            else:  # nothing to hear: an empty transcript that says so, not a crash
                cfg = transcriber.resolved()
                transcript = Transcript.empty(track["duration_s"] if track["has_audio"] else info["duration_s"],
                                              model=cfg["model"], settings={"skipped": "no audio" if not track["has_audio"] else "silence"})
            parent = track.get("artifact_id") or str(video.input_artifact_id)
            for name, text in render_all(transcript).items():
                store_bytes(job, name, text.encode("utf-8"), parents=[uuid.UUID(parent)])
            update_video(job, video.id, language=transcript.language)
        job.progress(70)
    coverage = transcript_coverage(transcript, probed_duration_s=info["duration_s"],
                                   probed_audio_s=probed_audio_seconds(info),
                                   decoded_audio_s=track["duration_s"] if track["has_audio"] else None)
    # None when nothing was transcribed (no audio, silence): a factor of 0 would read as infinitely fast.
    rtf = (transcript.processing_seconds / transcript.duration
           if transcript.processing_seconds is not None and transcript.duration else None)
    return dg.MaterializeResult(
        metadata={"language": transcript.language or "none", "segments": len(transcript.segments),
                  "duration_s": transcript.duration, "model": transcript.model,
                  "real_time_factor": round(rtf, 4) if rtf is not None else None,
                  "speed_x_real_time": round(1 / rtf, 2) if rtf else None, "reused": reused},
        check_results=[dg.AssetCheckResult(
            check_name="transcript_covers_audio", passed=coverage.passed,
            metadata={**coverage.metadata, "problems": "; ".join(coverage.problems) or "none"})],
    )


@dg.asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"}, deps=[video_transcript],
          check_specs=[dg.AssetCheckSpec("highlights_inside_duration", asset="video_highlights")])
def video_highlights(context: dg.AssetExecutionContext, database: DatabaseResource,
                     object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """Ranked segments (start, end, title, score) -> the ``highlight`` table and highlights.json."""
    with video_job(context, database, object_store) as job:
        video = video_of(job)
        info = json_of(job, required(job, "probe.json"))

        def compute() -> list:
            transcript_artifact = required(job, "transcript.json")
            transcript = Transcript.from_dict(json_of(job, transcript_artifact))
            ranked = rank_highlights(transcript, duration=info["duration_s"])
            with job.database.tenant_session(job.workspace_id) as session:
                replace_highlights(session, job.workspace_id, video.id, job.job_id, ranked)
            body = {"video_id": str(video.id), "duration_s": info["duration_s"],
                    "highlights": [h.to_dict() for h in ranked]}
            store_bytes(job, "highlights.json", json.dumps(body, indent=2, ensure_ascii=False).encode(),
                        parents=[transcript_artifact.id])
            return ranked

        ranked, reused = stored_or_computed(job, "highlights.json", compute, load=lambda _: highlights_of(job))
        with job.database.tenant_session(job.workspace_id) as session:  # what the API serves, not what was ranked
            rows = [(r.rank, r.start_ms, r.end_ms) for r in highlights_of_job(session, job.workspace_id, job.job_id)]
        job.progress(75)
    coverage = highlights_coverage(rows, duration_s=info["duration_s"], manifest_count=len(ranked))
    return dg.MaterializeResult(
        metadata={"highlights": len(ranked), "top": ranked[0].title if ranked else "none",
                  "reused": reused},
        check_results=[dg.AssetCheckResult(check_name="highlights_inside_duration", passed=coverage.passed,
                                           metadata={**coverage.metadata,
                                                     "problems": "; ".join(coverage.problems) or "none"})],
    )


@dg.asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"opencv"}, deps=[video_highlights])
def video_screenshots(context: dg.AssetExecutionContext, database: DatabaseResource,
                      object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """JPEG frames at each highlight and at scene changes (OpenCV), with their timestamps."""
    with video_job(context, database, object_store) as job:
        video = video_of(job)
        info = json_of(job, required(job, "probe.json"))

        def compute() -> tuple[dict, str]:
            thumbnail = ""
            manifest = {"screenshots": []}
            if info["has_video"]:
                source = source_file(job, video)
                ranked = highlights_of(job)
                reasons = {round(h.start, 3): "highlight" for h in ranked}
                for t in detect_scene_changes(source)[:MAX_SCENE_SHOTS]:
                    reasons.setdefault(round(t, 3), "scene_change")
                if not reasons:  # no speech and no cuts: a few evenly spaced frames still show the video
                    reasons = {round(info["duration_s"] * f, 3): "overview" for f in (0.1, 0.35, 0.6, 0.85)}
                shots = capture_screenshots(source, sorted(reasons), scratch_dir(job) / "screenshots")
                by_start: dict[int, uuid.UUID] = {}
                for shot in shots:
                    stored = store_file(job, shot.name, Path(shot.path), parents=[video.input_artifact_id])
                    entry = {**shot.to_dict(), "artifact_id": str(stored.id),
                             "reason": reasons.get(shot.requested_s, "scene_change")}
                    entry.pop("path")
                    manifest["screenshots"].append(entry)
                    by_start[int(round(shot.requested_s * 1000))] = (stored.id, int(round(shot.actual_s * 1000)))
                with job.database.tenant_session(job.workspace_id) as session:
                    for row in highlights_of_job(session, job.workspace_id, job.job_id):
                        hit = by_start.get(row.start_ms)
                        if hit is not None:
                            row.screenshot_artifact_id, row.screenshot_ms = hit
                if shots:
                    thumbnail = thumbnail_markdown(Path(shots[0].path))
            # An output: the API lists the screenshots (kept 90 days) from it.
            store_bytes(job, "screenshots.json", json.dumps(manifest, indent=2).encode(),
                        parents=[video.input_artifact_id])
            return manifest, thumbnail

        (manifest, thumbnail), reused = stored_or_computed(
            job, "screenshots.json", compute, load=lambda artifact: (json_of(job, artifact), ""))
        job.progress(85)
    return dg.MaterializeResult(metadata={
        "screenshots": len(manifest["screenshots"]),
        "thumbnail": dg.MetadataValue.md(thumbnail or "_no video stream or reused_"),
        "reused": reused,
    })


@dg.asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"python"},
          deps=[video_transcript, video_highlights, video_screenshots],
          check_specs=[dg.AssetCheckSpec("summary_cites_real_timestamps", asset="video_summary")])
def video_summary(context: dg.AssetExecutionContext, database: DatabaseResource, object_store: dg.ResourceParam[ObjectStore],
                  llm: LLM) -> dg.MaterializeResult:
    """Summary.md: title, overview, key points citing [mm:ss], chapters, highlights with screenshots; notes.zip:
    Summary.md with the screenshots it links, so its relative links resolve."""
    with video_job(context, database, object_store) as job:
        outputs = outputs_of(job)
        transcript = transcript_of(job)
        manifest = json_of(job, required(job, "screenshots.json"))
        if "Summary.md" in outputs and "summary.json" in outputs:
            markdown = job.store.get_bytes(outputs["Summary.md"].storage_key).decode("utf-8")
            record = json_of(job, outputs["summary.json"])
        else:
            info = json_of(job, required(job, "probe.json"))
            shots = [Screenshot("", s["name"], s["requested_s"], s["actual_s"], s["width"], s["height"])
                     for s in manifest["screenshots"]]
            result = build_summary(transcript, highlights_of(job), shots, chat=llm.chat_model(),
                                   has_audio=info["has_audio"], max_input_chars=llm.input_budget())
            markdown = result.markdown
            record = {"method": result.method, "prompt_version": result.prompt_version, "model": result.model,
                      "dropped_citations": result.dropped_citations, "notes": result.notes}
            parents = [outputs[n].id for n in ("transcript.json", "highlights.json") if n in outputs]
            store_bytes(job, "summary.json", json.dumps(record, indent=2).encode(), parents=parents)
            store_bytes(job, "Summary.md", markdown.encode("utf-8"), parents=parents)
        unresolved = [] if "notes.zip" in outputs else store_notes_bundle(job, markdown, manifest)
        job.progress(92)
        finish_if_done(job, context)
    invalid = cited_timestamps_exist(markdown, transcript)
    return dg.MaterializeResult(
        metadata={"Summary.md": dg.MetadataValue.md(markdown), "method": record["method"],
                  "prompt_version": record["prompt_version"] or "none", "model": record["model"] or "none",
                  "notes": "; ".join(record.get("notes") or ()) or "none",
                  "unresolved_screenshot_links": ", ".join(unresolved) or "none"},
        check_results=[dg.AssetCheckResult(check_name="summary_cites_real_timestamps", passed=not invalid,
                                           metadata={"invalid_citations": ", ".join(invalid) or "none"})],
    )


@dg.asset(partitions_def=videos_partitions, group_name=GROUP, kinds={"pyav"}, deps=[video_highlights])
def video_clips(context: dg.AssetExecutionContext, database: DatabaseResource,
                object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """An MP4 per highlight: stream copy from the keyframe before it, or an exact re-encode when asked."""
    with video_job(context, database, object_store) as job:
        video = video_of(job)
        mode = "exact" if job.params(VideoNotesPayload).exact_clips else "copy"

        def compute() -> list:
            clips, links = [], []
            source = source_file(job, video)
            with job.database.tenant_session(job.workspace_id) as session:
                rows = [(r.id, r.rank, r.start_ms, r.end_ms) for r in highlights_of_job(session, job.workspace_id, job.job_id)]
            for row_id, rank, start_ms, end_ms in rows:
                start, end = start_ms / 1000, end_ms / 1000
                out = scratch_dir(job) / "clips" / clip_name(start, end)
                try:
                    clip = cut_clip(source, start, end, out, mode=mode)
                except (InvalidMedia, av.error.FFmpegError, ValueError):
                    # e.g. an audio codec MP4 cannot carry by stream copy (FLAC): re-encode instead
                    clip = cut_clip(source, start, end, out, mode="exact")
                stored = store_file(job, clip.name, Path(clip.path), parents=[video.input_artifact_id])
                clip_start_ms = int(round(clip.start * 1000))
                links.append((row_id, {"clip_artifact_id": stored.id, "clip_start_ms": clip_start_ms,
                                       "clip_end_ms": max(clip_start_ms + 1, int(round(clip.end * 1000)))}))
                entry = {**clip.to_dict(), "artifact_id": str(stored.id), "rank": rank}
                entry.pop("path")
                clips.append(entry)
            with job.database.tenant_session(job.workspace_id) as session:  # one transaction for all the links
                link_highlight_clips(session, job.workspace_id, links)
            store_bytes(job, "clips.json", json.dumps({"mode": mode, "clips": clips}, indent=2).encode(),
                        kind="intermediate", parents=[video.input_artifact_id])
            return clips

        clips, reused = stored_or_computed(job, "clips.json", compute,
                                           load=lambda artifact: json_of(job, artifact)["clips"])
        job.progress(96)
        finish_if_done(job, context)
    return dg.MaterializeResult(metadata={"clips": len(clips), "mode": mode, "reused": reused})


VIDEO_NOTES_ASSETS = [video_probe, video_audio, video_transcript, video_highlights, video_screenshots,
                      video_summary, video_clips]
