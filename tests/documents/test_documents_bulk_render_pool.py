"""Bulk rows render on every core: a process pool, batches back in row order, bounded in flight, a row
that kills its worker fails alone, and the run's results are the same as rendering in process."""

from __future__ import annotations

import io
import os
import uuid
import zipfile
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from assets.documents.bulk_render import BatchRenderer, render_processes, render_row
from pipelines.documents.render import prepare_template
from resources.dagster_resources import DatabaseResource
from resources.settings import get_settings
from tests.support.api import api, path_of  # noqa: F401 - fixture
from tests.support.documents_product import docx_text, name_email_template, run_bulk_cycle
from tests.support.render_hooks import crashing_render, pid_render
from warehouse.db import system_session
from warehouse.documents import BulkRow

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _rows(n: int, start: int = 1) -> list[tuple[int, dict[str, str]]]:
    return [(i, {"name": f"P{i}", "email": f"p{i}@example.test"}) for i in range(start, start + n)]


def test_render_processes_default_to_the_cores_and_never_exceed_the_batches():
    assert render_processes(None, 10_000, 50) == (os.cpu_count() or 1)
    assert render_processes(4, 10_000, 50) == 4
    assert render_processes(4, 120, 50) == 3, "one worker per batch at most"
    assert render_processes(8, 4, 50) == 1, "a run of one batch renders in process (no pool start-up)"
    assert render_processes(1, 10_000, 50) == 1
    assert render_processes(None, 0, 50) == 1


def test_the_pool_renders_batches_in_order_on_several_processes(tmp_path):
    template = prepare_template(name_email_template())
    with BatchRenderer(template, tmp_path, 2, render=pid_render) as renderer:
        assert renderer.depth == 3
        tickets = [renderer.submit(_rows(5, start)) for start in (1, 6, 11, 16)]
        results = [renderer.result(t) for t in tickets]
    indexes = [p.index for batch in results for p in batch]
    assert indexes == list(range(1, 21)), "batches and rows come back in submission order"
    pids = {p.values["pid"] for batch in results for p in batch}
    assert str(os.getpid()) not in pids and 1 <= len(pids) <= 2
    for p in (p for batch in results for p in batch):
        assert p.error is None and f"P{p.index}" in docx_text(p.docx.read_bytes())


def test_one_process_renders_in_process(tmp_path):
    with BatchRenderer(prepare_template(name_email_template()), tmp_path, 1, render=pid_render) as renderer:
        assert renderer.depth == 1
        (pending,) = renderer.result(renderer.submit(_rows(1)))
    assert pending.values["pid"] == str(os.getpid())


def test_a_row_that_kills_its_worker_fails_alone_and_the_pool_carries_on(tmp_path):
    template = prepare_template(name_email_template())
    crash_batch = _rows(2, 1) + [(3, {"name": "crash", "email": "c@example.test"})] + _rows(2, 4)
    with BatchRenderer(template, tmp_path, 2, render=crashing_render) as renderer:
        tickets = [renderer.submit(crash_batch), renderer.submit(_rows(5, 6)), renderer.submit(_rows(5, 11))]
        results = [renderer.result(t) for t in tickets]
        after = renderer.result(renderer.submit(_rows(3, 16)))
    rows = [p for batch in results for p in batch] + after
    assert [p.index for p in rows] == list(range(1, 19))
    failed = {p.index: p.error.code for p in rows if p.error is not None}
    assert failed == {3: "render_crashed"}, failed
    assert all(p.docx.exists() for p in rows if p.error is None)


def test_workers_leave_when_their_owner_dies(tmp_path):
    """A SIGKILLed run worker must not leave renderer processes blocked on their queue for ever."""
    import subprocess
    import sys
    import time

    script = (
        "import os, sys, time\n"
        "from assets.documents.bulk_render import BatchRenderer\n"
        "from pipelines.documents.render import prepare_template\n"
        "from tests.support.documents_product import name_email_template\n"
        "from pathlib import Path\n"
        "r = BatchRenderer(prepare_template(name_email_template()), Path(sys.argv[1]), 2)\n"
        "r.result(r.submit([(1, {'name': 'a', 'email': 'b'})]))\n"
        "print(' '.join(str(p.pid) for p in r._pool._processes.values()), flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert pids, "the owner started its workers"
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in pids if _alive(p)]
    assert alive == [], "workers outlived their owner"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_bulk_run_renders_on_the_pool_with_the_same_outputs_and_bad_rows_failing_alone(api, db_url, monkeypatch):
    monkeypatch.setenv("KILN_DOCUMENTS_ROWS_PER_COMMIT", "7")
    monkeypatch.setenv("KILN_DOCUMENTS_RENDER_PROCESSES", "2")
    started = []
    real_init = BatchRenderer.__init__

    def spy(self, template, scratch, processes, render=render_row):
        started.append(processes)
        real_init(self, template, scratch, processes, render)

    monkeypatch.setattr(BatchRenderer, "__init__", spy)
    get_settings.cache_clear()
    owner = api.tenant()
    r = api.client.post("/v1/templates", headers=owner.headers, files={"file": ("t.docx", name_email_template(), DOCX)})
    lines = ["name,email"] + [f"P{i},p{i}@example.test" if i % 10 else f"P{i}," for i in range(1, 41)]
    r = api.client.post(f"/v1/templates/{r.json()['id']}/bulk-runs", headers=owner.headers,
                        data={"filename_pattern": "{name}"},
                        files={"file": ("rows.csv", ("\r\n".join(lines) + "\r\n").encode(), "text/csv")})
    assert r.status_code == 202, r.text
    run = r.json()
    try:
        with dg.instance_for_test() as instance:
            ((_, result),) = run_bulk_cycle(instance, {"database": DatabaseResource(url=db_url), "object_store": api.store})
    finally:
        get_settings.cache_clear()
    assert result.success and started == [2]
    done = api.client.get(f"/v1/bulk-runs/{run['id']}", headers=owner.headers).json()
    assert (done["status"], done["succeeded_rows"], done["failed_rows"]) == ("partially_succeeded", 36, 4)
    with system_session(api.system) as s:
        rows = s.execute(select(BulkRow.row_index, BulkRow.status, BulkRow.error_code, BulkRow.docx_filename)
                         .where(BulkRow.bulk_run_id == uuid.UUID(run["id"])).order_by(BulkRow.row_index)).all()
    assert [r.row_index for r in rows] == list(range(1, 41))
    assert {r.row_index for r in rows if r.status == "failed"} == {10, 20, 30, 40}
    assert {r.error_code for r in rows if r.status == "failed"} == {"missing_values"}
    with zipfile.ZipFile(io.BytesIO(api.client.get(path_of(done["zip_url"])).content)) as z:
        assert len(z.namelist()) == 36
        assert "P7" in docx_text(z.read("P7.docx"))
