"""The animatic asset: the episode package's render plan encoded as an MP4 (runs in pool ``render``).

Thin: it refuses an episode whose continuity fails (the block the package's check records), reads the package
ZIP the episode points at, calls ``pipelines.episodes.animatic`` and stores the MP4 as the job's output.

No ``from __future__ import annotations``: Dagster inspects the real parameter annotations.
"""

import tempfile
from pathlib import Path

import dagster as dg

from assets._job_context import kiln_job
from assets.episodes.assets import episode_package, episodes_partitions
from assets.episodes.support import write_rows
from pipelines.episodes.animatic import read_package, render_animatic
from pipelines.episodes.product import RENDER_KIND, EpisodeRenderPayload
from pipelines.errors import Conflict
from resources.dagster_resources import DatabaseResource
from resources.objectstore import ObjectStore, file_chunks
from resources.settings import get_settings
from warehouse import episodes as rows
from warehouse.models import Artifact


class ContinuityFailed(Conflict):
    code = "continuity_failed"
    title = "The episode's continuity check fails"
    retryable = False


@dg.asset(partitions_def=episodes_partitions, group_name="episodes", kinds={"pyav", "mp4"}, deps=[episode_package])
def episode_animatic(context: dg.AssetExecutionContext, database: DatabaseResource,
                     object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """720p H.264 + AAC: each shot's stills (or a titled card for an image still to generate), shot times from
    the render plan; subtitles burned in on request. Silent audio: no TTS engine ships yet (metadata ``tts``)."""
    with kiln_job(context, database, object_store, kind=RENDER_KIND) as job:
        payload = job.params(EpisodeRenderPayload)  # the card's payload model, as the render route wrote it
        episode_id = payload.episode_id
        with database.tenant_session(job.workspace_id) as session:
            episode = rows.load_episode(session, job.workspace_id, episode_id)
            package = session.get(Artifact, episode.package_artifact_id) if episode and episode.package_artifact_id \
                else None
            status = episode.status if episode else None
            available = package is not None and package.status == "available"
            storage_key, package_id = (package.storage_key, package.id) if available else (None, None)
        if status != "ready" or storage_key is None:
            raise ContinuityFailed("The episode has no package whose continuity passes; fix the findings, re-pin, "
                                   "then render.")
        document, images = read_package(job.store.get_bytes(storage_key))
        job.progress(10)
        with tempfile.TemporaryDirectory(prefix="kiln-animatic-") as scratch:
            out = Path(scratch) / "animatic.mp4"
            result = render_animatic(document, images, out, fps=get_settings().episodes_animatic_fps,
                                     burn_subtitles=payload.burn_subtitles)
            job.progress(90)
            stored = job.store_artifact(kind="output", name="animatic.mp4", chunks=file_chunks(out),
                                        content_type="video/mp4",
                                        filename=f"episode-{document['episode']['number']}-animatic.mp4",
                                        parents=[package_id])
        write_rows(job, lambda s, ws, eid: rows.record_animatic(s, ws, eid, job.job_id, stored.id))
        job.progress(100)
    return dg.MaterializeResult(metadata={
        "job_id": str(job.job_id), "animatic_artifact_id": str(stored.id), "duration_s": result.duration_ms / 1000,
        "plan_duration_s": document["render_plan"]["total_ms"] / 1000, "frames": result.frames, "fps": result.fps,
        "shots": result.shots, "tts": result.tts, "bytes": stored.size_bytes,
        "burned_subtitles": payload.burn_subtitles})
