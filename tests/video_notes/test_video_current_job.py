"""The video's current job (``latest_job_id``) has two writers with one rule each (warehouse/video_notes.py):
the reprocess route's compare-and-set, and a run adopting its own job only when no newer job is current."""

from __future__ import annotations

import uuid
from datetime import timedelta

from warehouse import video_notes as video_rows
from warehouse.db import system_session, utcnow
from warehouse.jobs import submit_job
from warehouse.models import Artifact, Job


def _video_with_jobs(engine, tenant, count: int):
    with system_session(engine) as s:
        artifact = Artifact(workspace_id=tenant.workspace_id, kind="input", storage_key=f"ws/{uuid.uuid4()}/in",
                            sha256="0" * 64, size_bytes=1, filename="in.mp4")
        s.add(artifact)
        s.flush()
        video = video_rows.VideoAsset(workspace_id=tenant.workspace_id, input_artifact_id=artifact.id, sha256="0" * 64,
                                      size_bytes=1, filename="in.mp4", content_type="video/mp4")
        s.add(video)
        s.flush()
        jobs = []
        for n in range(count):
            job = submit_job(s, workspace_id=tenant.workspace_id, kind=video_rows.VIDEO_NOTES_KIND,
                             payload={"video_id": str(video.id)}, subject_id=video.id).job
            job.created_at = utcnow() - timedelta(minutes=10 - n)  # oldest first
            jobs.append(job.id)
        return video.id, jobs


def _current(engine, tenant, video_id):
    with system_session(engine) as s:
        return s.get(video_rows.VideoAsset, video_id).latest_job_id


def test_a_run_of_an_older_job_never_takes_the_pointer_from_a_newer_one(engine, make_tenant):
    tenant = make_tenant()
    video_id, (older, newer) = _video_with_jobs(engine, tenant, 2)
    with system_session(engine) as s:
        assert video_rows.set_current_job(s, tenant.workspace_id, video_id, newer, expected=None)
    with system_session(engine) as s:  # a backfill run of the older job starts after the reprocess
        assert not video_rows.adopt_job(s, tenant.workspace_id, video_id, older)
    assert _current(engine, tenant, video_id) == newer


def test_a_run_of_a_newer_job_adopts_the_pointer(engine, make_tenant):
    tenant = make_tenant()
    video_id, (older, newer) = _video_with_jobs(engine, tenant, 2)
    with system_session(engine) as s:
        assert video_rows.adopt_job(s, tenant.workspace_id, video_id, older)  # none current yet
    with system_session(engine) as s:
        assert video_rows.adopt_job(s, tenant.workspace_id, video_id, newer)
    assert _current(engine, tenant, video_id) == newer


def test_the_reprocess_compare_and_set_loses_to_a_moved_pointer(engine, make_tenant):
    tenant = make_tenant()
    video_id, (first, second, third) = _video_with_jobs(engine, tenant, 3)
    with system_session(engine) as s:
        assert video_rows.set_current_job(s, tenant.workspace_id, video_id, first, expected=None)
    with system_session(engine) as s:
        assert video_rows.set_current_job(s, tenant.workspace_id, video_id, second, expected=first)
    with system_session(engine) as s:  # a second reprocess that read `first` before the move
        assert not video_rows.set_current_job(s, tenant.workspace_id, video_id, third, expected=first)
    assert _current(engine, tenant, video_id) == second


def test_update_video_records_media_facts_only(engine, make_tenant):
    import pytest

    tenant = make_tenant()
    video_id, (job,) = _video_with_jobs(engine, tenant, 1)
    with system_session(engine) as s, pytest.raises(ValueError):
        video_rows.update_video(s, tenant.workspace_id, video_id, latest_job_id=job)
    with system_session(engine) as s:
        video_rows.update_video(s, tenant.workspace_id, video_id, duration_ms=1000, language="en")
    assert _current(engine, tenant, video_id) is None
