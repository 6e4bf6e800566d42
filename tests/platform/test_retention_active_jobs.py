"""Retention keeps expired artifacts that an unfinished job may still read, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from resources.objectstore_local import LocalObjectStore
from warehouse.artifacts import add_lineage, store_artifact
from warehouse.db import system_session
from warehouse.jobs import cancel_job, claim_job, fail_job, submit_job, succeed_job
from warehouse.models import Artifact
from warehouse.retention import purge_expired_artifacts

EXPIRED = timedelta(days=-1)
KIND = "retention_active_probe"  # not a dispatched kind: queued jobs left behind are never picked up


def _job(session, ws, status, subject_id=None):
    job = submit_job(session, workspace_id=ws, kind=KIND, payload={"n": uuid.uuid4().hex}, subject_id=subject_id).job
    if status == "queued":
        return job
    if status == "canceled":
        assert cancel_job(session, job.id)
        return job
    assert claim_job(session, job.id, run_id=f"run-{job.id.hex[:8]}")
    if status == "succeeded":
        assert succeed_job(session, job.id)
    elif status in ("failed", "retrying"):
        retryable = status == "retrying"
        assert fail_job(session, job.id, error_code="x", message="m", retryable=retryable) == status
    return job


def _artifact(session, store, ws, job, name, kind="input"):
    return store_artifact(
        session, store, workspace_id=ws, kind=kind, subject_id=job.subject_id or job.id, name=name,
        chunks=[name.encode()], job_id=job.id, ttl=EXPIRED,
    ).id


@pytest.fixture
def world(engine, make_tenant, tmp_path):
    ws = make_tenant().workspace_id
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    video, bulk_run, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with system_session(engine) as s:
        jobs = {
            "first_video_job": _job(s, ws, "succeeded", video),
            "reprocess": _job(s, ws, "queued", video),  # will read the upload the first job recorded
            "bulk_first": _job(s, ws, "failed", bulk_run),
            "bulk_resume": _job(s, ws, "retrying", bulk_run),
            "producer": _job(s, ws, "succeeded", other),
            "consumer": _job(s, ws, "running"),
            "done": _job(s, ws, "succeeded", uuid.uuid4()),
            "failed": _job(s, ws, "failed"),
            "canceled": _job(s, ws, "canceled"),
        }
        arts = {
            "video_upload": _artifact(s, store, ws, jobs["first_video_job"], "video.mp4"),
            "bulk_rows": _artifact(s, store, ws, jobs["bulk_first"], "rows.csv"),
            "bulk_partial": _artifact(s, store, ws, jobs["bulk_resume"], "part-1.zip", "intermediate"),
            "lineage_parent": _artifact(s, store, ws, jobs["producer"], "source.bin", "output"),
            "consumer_output": _artifact(s, store, ws, jobs["consumer"], "derived.bin", "intermediate"),
            "done_input": _artifact(s, store, ws, jobs["done"], "a.txt"),
            "failed_input": _artifact(s, store, ws, jobs["failed"], "b.txt"),
            "canceled_input": _artifact(s, store, ws, jobs["canceled"], "c.txt"),
        }
        add_lineage(s, workspace_id=ws, parents=[arts["lineage_parent"]], child=arts["consumer_output"])
    return {"engine": engine, "store": store, "jobs": jobs, "arts": arts}


def _statuses(engine, arts):
    with system_session(engine) as s:
        return {name: s.get(Artifact, artifact_id).status for name, artifact_id in arts.items()}


def test_purge_keeps_what_unfinished_jobs_still_read_and_deletes_the_rest(world):
    engine, store, arts = world["engine"], world["store"], world["arts"]
    purge_expired_artifacts(engine, store, batch_size=2)
    statuses = _statuses(engine, arts)
    kept = {"video_upload", "bulk_rows", "bulk_partial", "lineage_parent", "consumer_output"}
    assert {name for name, status in statuses.items() if status == "available"} == kept
    with system_session(engine) as s:
        for name, artifact_id in arts.items():
            assert store.exists(s.get(Artifact, artifact_id).storage_key) == (name in kept), name


def test_once_the_jobs_finish_their_expired_artifacts_go(world):
    engine, store, arts, jobs = world["engine"], world["store"], world["arts"], world["jobs"]
    purge_expired_artifacts(engine, store)
    with system_session(engine) as s:
        assert cancel_job(s, jobs["reprocess"].id)
        assert cancel_job(s, jobs["bulk_resume"].id)
        assert succeed_job(s, jobs["consumer"].id)
    purge_expired_artifacts(engine, store)
    assert set(_statuses(engine, arts).values()) == {"deleted"}
