"""Recording artifacts and lineage (warehouse/artifacts.py) on a real database and a local object store."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pipelines.errors import PayloadTooLarge
from resources.objectstore_local import LocalObjectStore
from warehouse.artifacts import add_lineage, expired_artifacts, sanitize_filename, store_artifact
from warehouse.db import system_session, tenant_session, utcnow
from warehouse.jobs import submit_job
from warehouse.models import Artifact, LineageEdge


@pytest.fixture
def store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(root=str(tmp_path / "objects"))


def _files_under(root: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def _artifact_count(session, workspace_id) -> int:
    return session.scalar(select(func.count()).where(Artifact.workspace_id == workspace_id))


def _store(session, store, workspace_id, *, name="out.bin", data=b"payload", **kwargs) -> Artifact:
    return store_artifact(
        session,
        store,
        workspace_id=workspace_id,
        kind=kwargs.pop("kind", "output"),
        subject_id=kwargs.pop("subject_id", uuid.uuid4()),
        name=name,
        chunks=kwargs.pop("chunks", [data]),
        **kwargs,
    )


def test_store_artifact_records_what_was_written(engine, make_tenant, store):
    tenant = make_tenant()
    subject_id = uuid.uuid4()
    data = os.urandom(70_000)
    with tenant_session(engine, tenant.workspace_id) as s:
        job = submit_job(s, workspace_id=tenant.workspace_id, kind="test").job
        artifact = _store(
            s,
            store,
            tenant.workspace_id,
            kind="output",
            subject_id=subject_id,
            name="transcript.json",
            chunks=[data[:30_000], data[30_000:]],
            filename="My Transcript.json",
            content_type="application/json",
            job_id=job.id,
            asset_key="video_notes/transcript",
            run_id="run-1",
            ttl=timedelta(days=3),
        )
        artifact_id = artifact.id

    with tenant_session(engine, tenant.workspace_id) as s:
        row = s.get(Artifact, artifact_id)
        assert row.workspace_id == tenant.workspace_id
        assert row.storage_key == f"ws/{tenant.workspace_id}/output/{subject_id}/{artifact_id}/transcript.json"
        assert row.sha256 == hashlib.sha256(data).hexdigest()
        assert row.size_bytes == len(data)
        assert (row.content_type, row.filename, row.status) == ("application/json", "My Transcript.json", "available")
        assert (row.job_id, row.asset_key, row.run_id) == (job.id, "video_notes/transcript", "run-1")
        assert timedelta(days=2, hours=23) < row.expires_at.replace(tzinfo=None) - utcnow().replace(tzinfo=None)
    assert store.get_bytes(row.storage_key) == data


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("-rf.txt", "rf.txt"),
        ("- -rf.txt", "rf.txt"),
        (".bashrc", "bashrc"),
        ('inv"oice;.pdf', "invoice.pdf"),
        ("report\r\n.pdf", "report.pdf"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("Résumé.pdf", "Résumé.pdf"),
        ("...", "download"),
        ("", "download"),
    ],
)
def test_sanitize_filename(raw, clean):
    assert sanitize_filename(raw) == clean


def test_stored_filename_is_sanitized(engine, make_tenant, store):
    tenant = make_tenant()
    with tenant_session(engine, tenant.workspace_id) as s:
        hostile = _store(s, store, tenant.workspace_id, filename="../../etc/passwd")
        dashed = _store(s, store, tenant.workspace_id, filename="-rf.txt")
        defaulted = _store(s, store, tenant.workspace_id, name="summary.md")
        assert (hostile.filename, dashed.filename, defaulted.filename) == ("passwd", "rf.txt", "summary.md")
        # The user's filename never reaches the storage key.
        assert hostile.storage_key.endswith("/out.bin") and "passwd" not in hostile.storage_key


def test_unsafe_object_name_or_kind_is_refused_and_nothing_is_stored(engine, make_tenant, store):
    tenant = make_tenant()
    with tenant_session(engine, tenant.workspace_id) as s:
        with pytest.raises(ValueError):
            _store(s, store, tenant.workspace_id, name="../escape")
        with pytest.raises(ValueError):
            _store(s, store, tenant.workspace_id, kind="secrets")
        assert _artifact_count(s, tenant.workspace_id) == 0
    assert _files_under(store.root) == []


def test_oversized_artifact_leaves_no_row_and_no_object(engine, make_tenant, store):
    tenant = make_tenant()
    with tenant_session(engine, tenant.workspace_id) as s:
        with pytest.raises(PayloadTooLarge):
            _store(s, store, tenant.workspace_id, chunks=[b"x" * 1000] * 10, max_bytes=5000)
        assert _artifact_count(s, tenant.workspace_id) == 0
    assert _files_under(store.root) == []


def test_rejected_row_removes_the_bytes_it_stored(engine, make_tenant, store):
    owner, other = make_tenant(), make_tenant()
    with tenant_session(engine, other.workspace_id) as s:
        foreign_job_id = submit_job(s, workspace_id=other.workspace_id, kind="test").job.id
    # The composite FK (workspace_id, job_id) refuses a job of another workspace.
    with pytest.raises(IntegrityError), tenant_session(engine, owner.workspace_id) as s:
        _store(s, store, owner.workspace_id, job_id=foreign_job_id)
    assert _files_under(store.root) == []


def test_redo_with_the_same_artifact_id_returns_the_committed_row_and_keeps_its_object(engine, make_tenant, store):
    tenant = make_tenant()
    ws, subject, artifact_id = tenant.workspace_id, uuid.uuid4(), uuid.uuid4()
    with tenant_session(engine, ws) as s:
        first = _store(s, store, ws, subject_id=subject, data=b"first", artifact_id=artifact_id)
        key, sha = first.storage_key, first.sha256
    # A redo after the first attempt committed (a crash after commit, before the caller noticed).
    with tenant_session(engine, ws) as s:
        redo = _store(s, store, ws, subject_id=subject, data=b"second", artifact_id=artifact_id)
        assert (redo.id, redo.storage_key, redo.sha256) == (artifact_id, key, sha)
    with tenant_session(engine, ws) as s:
        row = s.get(Artifact, artifact_id)
        assert row.status == "available" and _artifact_count(s, ws) == 1
    assert store.get_bytes(key) == b"first"  # the bytes the row's SHA-256 describes


def test_reusing_an_artifact_id_for_another_object_is_refused_and_keeps_the_first(engine, make_tenant, store):
    tenant = make_tenant()
    ws, subject, artifact_id = tenant.workspace_id, uuid.uuid4(), uuid.uuid4()
    with tenant_session(engine, ws) as s:
        key = _store(s, store, ws, subject_id=subject, data=b"first", artifact_id=artifact_id).storage_key
    with pytest.raises(ValueError), tenant_session(engine, ws) as s:
        _store(s, store, ws, subject_id=subject, name="other.bin", data=b"second", artifact_id=artifact_id)
    with system_session(engine) as s:
        row = s.get(Artifact, artifact_id)
        row.status, row.deleted_at = "deleted", utcnow()
    with pytest.raises(ValueError), tenant_session(engine, ws) as s:
        _store(s, store, ws, subject_id=subject, data=b"again", artifact_id=artifact_id)
    assert store.get_bytes(key) == b"first"
    assert len(_files_under(store.root)) == 1


def test_a_rejected_row_never_deletes_a_caller_chosen_key(engine, make_tenant, store):
    # A concurrent redo may have committed the row that names this key: the orphan sweep decides later.
    owner, other = make_tenant(), make_tenant()
    with tenant_session(engine, other.workspace_id) as s:
        foreign_job_id = submit_job(s, workspace_id=other.workspace_id, kind="test").job.id
    with pytest.raises(IntegrityError), tenant_session(engine, owner.workspace_id) as s:
        _store(s, store, owner.workspace_id, job_id=foreign_job_id, artifact_id=uuid.uuid4())
    assert len(_files_under(store.root)) == 1


def test_lineage_edges_are_deduplicated(engine, make_tenant, store):
    tenant = make_tenant()
    ws = tenant.workspace_id
    with tenant_session(engine, ws) as s:
        video, audio, transcript = (_store(s, store, ws, name=n).id for n in ("video.mp4", "audio.wav", "t.json"))
        add_lineage(s, workspace_id=ws, parents=[video, audio, video], child=transcript, asset_key="a", run_id="r1")
        add_lineage(s, workspace_id=ws, parents=[audio, transcript], child=transcript, asset_key="a", run_id="r2")
    with tenant_session(engine, ws) as s:
        edges = s.execute(select(LineageEdge.parent_artifact_id, LineageEdge.child_artifact_id, LineageEdge.run_id)).all()
    assert sorted(edges) == sorted([(video, transcript, "r1"), (audio, transcript, "r1")])


def test_lineage_edge_across_workspaces_is_refused(engine, make_tenant, store):
    mine, theirs = make_tenant(), make_tenant()
    with tenant_session(engine, theirs.workspace_id) as s:
        their_artifact = _store(s, store, theirs.workspace_id).id
    with tenant_session(engine, mine.workspace_id) as s:
        my_artifact = _store(s, store, mine.workspace_id).id
    with pytest.raises(IntegrityError), system_session(engine) as s:
        add_lineage(s, workspace_id=mine.workspace_id, parents=[their_artifact], child=my_artifact)
    # The PostgreSQL database is shared by the session's tests: count this workspace's edges only.
    with system_session(engine) as s:
        assert s.scalar(select(func.count()).where(LineageEdge.workspace_id == mine.workspace_id)) == 0


def test_expired_artifacts_oldest_first_skipping_deleted_and_unexpiring(engine, make_tenant, store):
    a, b = make_tenant(), make_tenant()
    with system_session(engine) as s:
        soon = _store(s, store, a.workspace_id, ttl=timedelta(hours=1)).id
        later = _store(s, store, b.workspace_id, ttl=timedelta(hours=5)).id
        _store(s, store, a.workspace_id, ttl=timedelta(days=30))
        _store(s, store, a.workspace_id)  # no TTL: kept until deleted
        already_deleted = _store(s, store, b.workspace_id, ttl=timedelta(minutes=1))
        already_deleted.status = "deleted"
        already_deleted.deleted_at = utcnow()

    def ours(artifacts: list[Artifact]) -> list[uuid.UUID]:  # PostgreSQL's database is shared by the session
        return [x.id for x in artifacts if x.workspace_id in (a.workspace_id, b.workspace_id)]

    with system_session(engine) as s:
        assert ours(expired_artifacts(s)) == []
        in_six_hours = utcnow() + timedelta(hours=6)
        assert ours(expired_artifacts(s, now=in_six_hours)) == [soon, later]  # oldest first, across workspaces
        assert len(expired_artifacts(s, now=in_six_hours, limit=1)) == 1
