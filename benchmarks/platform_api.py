"""Platform benchmarks (issue 2): job listing latency at 100,000 jobs, and upload memory.

1. ``GET /v1/jobs`` p95 with 100,000 jobs in PostgreSQL, served by uvicorn and measured over
   loopback (target: <= 20 ms). Baseline in the same run: ``GET /healthz`` (the framework's floor).
2. Streaming a 1 GiB upload grows the API process RSS by <= 50 MiB. Baseline: RSS after a warm-up
   upload of 1 MiB.

Needs ``KILN_TEST_POSTGRES_URL`` (or ``KILN_BENCH_POSTGRES_URL``): a role that may CREATE DATABASE
(`.ci/postgres-setup.sh` provisions one). Run: ``.venv/bin/python benchmarks/platform_api.py``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.provisioning import create_workspace  # noqa: E402
from warehouse.db import make_engine, normalize_url  # noqa: E402
from warehouse.migrate import upgrade  # noqa: E402

SECRET = "benchmark-secret-" + "x" * 32
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def start_api(env: dict[str, str], port: int, factory: str = "api.main:create_app") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, **env},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the API did not start")


def seed_jobs(owner_url: str, workspace_id: uuid.UUID, count: int) -> None:
    """Insert ``count`` finished jobs spread over 30 days in one server-side statement.

    (COPY is refused on tables with row-level security, even for their owner.)
    """
    engine = make_engine(owner_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO job (id, workspace_id, kind, status, payload, attempt, max_attempts, next_attempt_at,
                                 progress, event_seq, partition_key, created_at, updated_at)
                SELECT g.id, :ws, 'selftest',
                       (ARRAY['succeeded','succeeded','succeeded','succeeded','succeeded','succeeded',
                              'succeeded','succeeded','failed','canceled'])[1 + g.i % 10],
                       '{"message": "bench"}'::json, 1, 3, g.created, 100, 3, g.id::text, g.created, g.created
                  FROM (SELECT i, gen_random_uuid() AS id,
                               now() - (:n - i) * interval '26 seconds' AS created
                          FROM generate_series(1, :n) AS i) AS g
                """
            ),
            {"ws": workspace_id, "n": count},
        )
        conn.execute(text("ANALYZE job"))
    engine.dispose()


def bench_list_jobs(pg_admin_url: str, jobs: int, requests: int) -> dict:
    admin = create_engine(normalize_url(pg_admin_url), isolation_level="AUTOCOMMIT")
    name = f"kiln_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        owner_url = make_url(normalize_url(pg_admin_url)).set(database=name).render_as_string(hide_password=False)
        upgrade(owner_url)
        app_url = make_url(owner_url).set(username="kiln_api", password="kiln").render_as_string(hide_password=False)
        owner_engine = make_engine(owner_url)
        issued = create_workspace(owner_engine, "bench", "bench@example.test", secret_key=SECRET)
        # A second tenant with as many rows: row-level security and the workspace filter must skip them cheaply.
        other = create_workspace(owner_engine, "other", "other@example.test", secret_key=SECRET)
        owner_engine.dispose()
        t0 = time.perf_counter()
        seed_jobs(owner_url, issued.workspace_id, jobs)
        seed_jobs(owner_url, other.workspace_id, jobs // 10)
        seed_s = time.perf_counter() - t0

        port = free_port()
        with tempfile.TemporaryDirectory() as home:
            proc = start_api({"KILN_DATABASE_URL": app_url, "KILN_SECRET_KEY": SECRET, "KILN_HOME": home,
                              "KILN_ENV": "test", "KILN_LOG_LEVEL": "WARNING",
                              # Latency, not the per-token limiter, is measured: thousands of requests a minute.
                              "KILN_RATE_LIMIT_REQUESTS_PER_MINUTE": "0", "KILN_RATE_LIMIT_BURST": "0"}, port)
            try:
                headers = {"Authorization": f"Bearer {issued.token}"}
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as client:
                    for _ in range(30):  # warm-up: connections, plans, caches
                        client.get("/v1/jobs", params={"limit": 50}).raise_for_status()
                        client.get("/healthz").raise_for_status()
                    health, first, deep = [], [], []
                    cursor = None
                    for i in range(requests):
                        t = time.perf_counter(); client.get("/healthz").raise_for_status(); health.append(time.perf_counter() - t)
                        t = time.perf_counter(); client.get("/v1/jobs", params={"limit": 50}).raise_for_status(); first.append(time.perf_counter() - t)
                        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
                        t = time.perf_counter(); page = client.get("/v1/jobs", params=params); deep.append(time.perf_counter() - t)
                        page.raise_for_status()
                        cursor = page.json()["next_cursor"]
                    filtered = []
                    for _ in range(requests // 2):
                        t = time.perf_counter()
                        client.get("/v1/jobs", params={"limit": 50, "status": "failed"}).raise_for_status()
                        filtered.append(time.perf_counter() - t)
            finally:
                proc.terminate(); proc.wait(10)
        ms = lambda xs, q: round(percentile(xs, q) * 1000, 2)  # noqa: E731
        return {
            "jobs_in_workspace": jobs, "jobs_other_workspace": jobs // 10, "seed_seconds": round(seed_s, 1),
            "requests_each": requests,
            "healthz_p50_ms": ms(health, 50), "healthz_p95_ms": ms(health, 95),
            "first_page_p50_ms": ms(first, 50), "first_page_p95_ms": ms(first, 95),
            "paging_p50_ms": ms(deep, 50), "paging_p95_ms": ms(deep, 95),
            "status_filter_p95_ms": ms(filtered, 95),
            "ratio_first_page_p95_to_healthz_p95": round(percentile(first, 95) / percentile(health, 95), 2),
            "mean_first_page_ms": round(statistics.mean(first) * 1000, 2),
        }
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def multipart_body(size: int, boundary: str, chunk: int = MiB):
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
           "Content-Type: application/octet-stream\r\n\r\n").encode()
    block = os.urandom(chunk)
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        yield block[:n]
        sent += n
    yield f"\r\n--{boundary}--\r\n".encode()


def bench_upload_rss(size: int) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        sqlite = f"sqlite:///{home}/kiln.db"
        upgrade(sqlite)
        proc = start_api({"KILN_DATABASE_URL": sqlite, "KILN_SECRET_KEY": SECRET, "KILN_HOME": home,
                          "KILN_ENV": "test", "KILN_LOG_LEVEL": "WARNING"}, port, "benchmarks._bench_app:create_bench_app")
        try:
            server = psutil.Process(proc.pid)
            boundary = uuid.uuid4().hex

            def upload(n: int) -> dict:
                headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
                response = httpx.post(f"http://127.0.0.1:{port}/bench/upload", content=multipart_body(n, boundary),
                                      headers=headers, timeout=600)
                response.raise_for_status()
                return response.json()

            upload(MiB)
            upload(MiB)
            baseline = server.memory_info().rss
            peak = baseline
            stop = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, server.memory_info().rss)
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            result = upload(size)
            elapsed = time.perf_counter() - t0
            stop.set(); sampler.join()
            assert result["size_bytes"] == size
        finally:
            proc.terminate(); proc.wait(10)
    return {
        "upload_bytes": size, "baseline_rss_mib": round(baseline / MiB, 1), "peak_rss_mib": round(peak / MiB, 1),
        "rss_growth_mib": round((peak - baseline) / MiB, 1), "throughput_mib_s": round(size / MiB / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--upload-mib", type=int, default=1024)
    parser.add_argument("--skip-list", action="store_true")
    parser.add_argument("--skip-upload", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, {round(psutil.virtual_memory().total / 1024**3)} GiB")
    if not args.skip_list:
        pg = os.environ.get("KILN_BENCH_POSTGRES_URL") or os.environ.get("KILN_TEST_POSTGRES_URL")
        if not pg:
            raise SystemExit("set KILN_TEST_POSTGRES_URL (see .ci/postgres-setup.sh)")
        r = bench_list_jobs(pg, args.jobs, args.requests)
        print("GET /v1/jobs:", r)
        print(f"  p95 first page {r['first_page_p95_ms']} ms, paging {r['paging_p95_ms']} ms (target <= 20 ms); "
              f"ratio to /healthz p95: {r['ratio_first_page_p95_to_healthz_p95']}")
    if not args.skip_upload:
        r = bench_upload_rss(args.upload_mib * MiB)
        print("upload:", r)
        print(f"  RSS growth {r['rss_growth_mib']} MiB for {args.upload_mib} MiB (target <= 50 MiB)")


if __name__ == "__main__":
    main()
