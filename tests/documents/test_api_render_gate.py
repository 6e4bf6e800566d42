"""Single-fill PDF renders wait for the converter without a database connection or a thread, in a
bounded queue (security review #7: 45 concurrent PDF renders made 24 answers 500 on the pool timeout
and unrelated requests wait ~30 s).

A real server (uvicorn on loopback) with a two-connection pool and a stand-in converter that takes
0.4 s a document, so the test is about the gate, not LibreOffice (tests/documents/test_documents_product_api.py
converts for real).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import api.routes.templates as templates_route
from api.problems import ApiProblem
from api.render_gate import RenderGate
from tests.support.documents_product import name_email_template
from tests.support.server import serve
from tests.support.api import api  # noqa: F401 - fixture
from warehouse.db import make_engine

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
QUEUE_MAX = 3
RETRY_AFTER = 7
CONVERSION_SECONDS = 0.4


class SlowConverter:
    """Writes a tiny PDF after a pause; records how many conversions ever overlapped."""

    def __init__(self) -> None:
        self.active = self.most_active = self.done = 0
        self._lock = threading.Lock()

    def convert_one(self, source: Path) -> Path:
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        time.sleep(CONVERSION_SECONDS)
        pdf = Path(source).with_suffix(".pdf")
        pdf.write_bytes(b"%PDF-1.4\n%fake\n%%EOF\n")
        with self._lock:
            self.active -= 1
            self.done += 1
        return pdf


@pytest.fixture
def converter(monkeypatch) -> SlowConverter:
    fake = SlowConverter()
    monkeypatch.setattr(templates_route, "api_converter", lambda: fake)
    return fake


def test_pdf_render_burst_gets_200_or_503_and_other_routes_stay_fast(api, db_url, converter):
    api.settings.render_queue_max = QUEUE_MAX
    api.settings.render_retry_after_seconds = RETRY_AFTER
    old_engine = api.app.state.engine
    # A small pool, with a timeout shorter than the renders' total wait: holding a connection while
    # waiting for the converter (the old behaviour) exhausts it and answers 500.
    api.app.state.engine = make_engine(api.settings.resolved_database_url, pool_size=2, max_overflow=0,
                                       pool_timeout=2)
    old_engine.dispose()
    owner = api.tenant()
    r = api.client.post("/v1/templates", headers=owner.headers,
                        files={"file": ("t.docx", name_email_template(), DOCX)})
    assert r.status_code == 201, r.text
    url = f"/v1/templates/{r.json()['id']}/render"
    body = {"values": {"name": "Ann", "email": "a@b.c"}, "format": "pdf"}
    burst = 30
    with serve(api.app) as base, httpx.Client(base_url=base, timeout=60,
                                             limits=httpx.Limits(max_connections=burst + 5)) as client:
        assert client.get("/healthz").status_code == 200

        def render_once(_: int) -> httpx.Response:
            return client.post(url, headers=owner.headers, json=body)

        started = time.perf_counter()
        with ThreadPoolExecutor(burst) as pool:
            futures = [pool.submit(render_once, i) for i in range(burst)]
            side_times = []
            while converter.done == 0 and time.perf_counter() - started < 10:
                time.sleep(0.05)  # until renders are in flight
            while not all(f.done() for f in futures) and len(side_times) < 40:
                for path in ("/healthz", "/v1/jobs"):
                    t0 = time.perf_counter()
                    answer = client.get(path, headers=owner.headers)
                    side_times.append(time.perf_counter() - t0)
                    assert answer.status_code == 200, (path, answer.text)
            answers = [f.result() for f in futures]
        elapsed = time.perf_counter() - started
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 503}, statuses  # never a 500 (pool timeout) or anything else
    ok = [a for a in answers if a.status_code == 200]
    busy = [a for a in answers if a.status_code == 503]
    assert len(ok) >= QUEUE_MAX + 1 and busy, statuses
    for a in ok:
        assert a.content.startswith(b"%PDF-") and a.headers["content-type"] == "application/pdf"
    for a in busy:
        assert a.headers["content-type"].startswith("application/problem+json")
        assert a.json()["code"] == "converter_busy" and a.headers["retry-after"] == str(RETRY_AFTER)
    assert converter.most_active == 1  # one conversion at a time per process
    assert side_times and max(side_times) < 1.0, side_times
    assert elapsed < 20


def test_docx_renders_do_not_queue_for_the_converter(api, converter):
    api.settings.render_queue_max = 0
    owner = api.tenant()
    r = api.client.post("/v1/templates", headers=owner.headers,
                        files={"file": ("t.docx", name_email_template(), DOCX)})
    url = f"/v1/templates/{r.json()['id']}/render"
    r = api.client.post(url, headers=owner.headers, json={"values": {"name": "Ann", "email": "a@b.c"}})
    assert r.status_code == 200 and r.headers["content-type"] == DOCX
    r = api.client.post(url, headers=owner.headers, json={"values": {"name": "Ann"}, "format": "pdf"})
    assert r.status_code == 422 and r.json()["code"] == "missing_fields"  # bad input is still 422, not 503
    assert converter.done == 0


def test_gate_refuses_beyond_the_queue_and_after_the_wait():
    gate = RenderGate(queue_max=1, wait_seconds=0.2, retry_after_seconds=3)
    outcomes: list[str] = []

    async def render(hold: float) -> None:
        try:
            async with gate.admit():
                async with gate.turn():
                    await asyncio.sleep(hold)
            outcomes.append("ok")
        except ApiProblem as problem:
            assert problem.status == 503 and problem.code == "converter_busy"
            assert problem.headers == {"Retry-After": "3"}
            outcomes.append("busy")

    async def main() -> None:
        first = asyncio.create_task(render(0.5))  # holds the converter past the second's wait
        await asyncio.sleep(0.01)
        second = asyncio.create_task(render(0))  # admitted, then gives up after 0.2 s
        await asyncio.sleep(0.01)
        await render(0)  # the queue is full: refused at once
        await asyncio.gather(first, second)
        assert gate.admitted == 0
        await render(0)  # and the converter is free again

    asyncio.run(main())
    assert outcomes == ["busy", "busy", "ok", "ok"]


def test_single_fills_share_a_bounded_number_of_threads_and_refuse_beyond_the_queue():
    """A burst of long fills waits on the event loop (no thread each) and, past the queue, answers 503 at once."""
    import threading
    import time
    from types import SimpleNamespace

    import anyio

    from api.problems import ApiProblem
    from api.render_gate import run_fill
    from resources.settings import Settings

    app = SimpleNamespace(state=SimpleNamespace(settings=Settings(render_fill_concurrency=2, render_queue_max=3)))
    running, peak, lock = [0], [0], threading.Lock()

    def fill() -> bytes:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return b"docx"

    outcomes: list[object] = []

    async def one() -> None:
        try:
            outcomes.append(await run_fill(app, fill))
        except ApiProblem as exc:
            outcomes.append((exc.status, exc.code, exc.headers.get("Retry-After")))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
                await anyio.sleep(0.01)

    anyio.run(main)
    assert peak[0] == 2  # never more fills at once than the setting
    assert outcomes.count(b"docx") == 5  # two running + three waiting
    assert outcomes.count((503, "renderer_busy", "10")) == 3
