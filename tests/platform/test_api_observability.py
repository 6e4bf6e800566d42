from __future__ import annotations

import json
import uuid

from fastapi.testclient import TestClient

from pipelines.selftest.product import SelftestPayload
from api.observability import redact_secrets
from pipelines import products
from pipelines.card import JobKind, ProductCard
from tests.support.api import api  # noqa: F401 - fixture


def _lines(log) -> list[dict]:
    return [json.loads(line) for line in log.getvalue().splitlines() if line.strip()]


def test_request_id_is_echoed_or_generated(api):
    r = api.client.get("/healthz", headers={"X-Request-ID": "abc.DEF-123_x"})
    assert r.headers["x-request-id"] == "abc.DEF-123_x"
    for bad in ("has space", "x" * 65, "semi;colon", ""):
        r = api.client.get("/healthz", headers={"X-Request-ID": bad})
        assert r.headers["x-request-id"] != bad and len(r.headers["x-request-id"]) == 32
    problem = api.client.get("/v1/jobs", headers={"X-Request-ID": "req-401"})
    assert problem.json()["request_id"] == "req-401"


def test_logs_are_json_with_request_and_workspace_ids_and_never_a_token(api):
    t = api.tenant()
    job = api.client.post("/v1/jobs", headers={**t.headers, "X-Request-ID": "req-42"},
                          json={"kind": "selftest", "payload": {"message": f"please do not log {t.token}"}})
    assert job.status_code == 202
    link = api.client.post(f"/v1/artifacts/{api.artifact(t)}/download-link", headers=t.headers).json()["url"]
    api.client.get(link.removeprefix("http://testserver"), headers={"X-Request-ID": "req-dl"})
    api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {t.token}x", "X-Request-ID": "req-bad"})
    import structlog

    structlog.get_logger("test").info("manual", authorization=f"Bearer {t.token}", note=f"token is {t.token}",
                                      password="hunter2", nested={"api_key": "k", "ok": 1})
    text = api.log.getvalue()
    lines = _lines(api.log)
    secret = t.token.split("_", 2)[2]
    assert t.token not in text and secret not in text and "hunter2" not in text
    signature = link.rsplit(".", 1)[1]
    assert signature not in text, "download links are credentials too; only the route template is logged"
    access = {line["request_id"]: line for line in lines if line.get("event") == "request"}
    assert access["req-42"]["workspace_id"] == str(t.workspace_id)
    assert access["req-42"]["status"] == 202 and access["req-42"]["route"] == "/v1/jobs"
    assert access["req-dl"]["route"] == "/v1/downloads/{token}"
    assert access["req-bad"]["status"] == 401
    manual = next(line for line in lines if line.get("event") == "manual")
    assert manual["authorization"] == "[REDACTED]" and manual["password"] == "[REDACTED]"
    assert manual["nested"] == {"api_key": "[REDACTED]", "ok": 1} and "[REDACTED]" in manual["note"]


def test_redaction_processor_directly():
    out = redact_secrets(None, "info", {"event": "x kiln_abc123def456_Zz-_9 y", "token_id": "keep", "Token": "drop"})
    assert out == {"event": "x [REDACTED] y", "token_id": "keep", "Token": "[REDACTED]"}


def test_metrics_count_requests_by_route_template_and_jobs_from_the_db(api, monkeypatch):
    # A kind of its own: on PostgreSQL the database is shared by the whole session.
    kind = f"probe_{uuid.uuid4().hex[:8]}"
    probe = ProductCard(kind, (JobKind(kind, partitions=f"{kind}_jobs", payload_model=SelftestPayload),))
    monkeypatch.setattr(products, "PRODUCTS", (*products.PRODUCTS, probe))
    t = api.tenant()
    for _ in range(2):
        job_id = api.client.post("/v1/jobs", headers=t.headers, json={"kind": kind, "payload": {"message": "m"}}).json()["id"]
    api.client.post(f"/v1/jobs/{job_id}/cancel", headers=t.headers)
    api.client.get(f"/v1/jobs/{job_id}", headers=t.headers)
    text = api.client.get("/metrics").text
    assert 'kiln_http_requests_total{method="GET",route="/v1/jobs/{id}",status="200"} 1.0' in text
    assert 'kiln_http_requests_total{method="POST",route="/v1/jobs",status="202"} 2.0' in text
    assert 'kiln_http_request_duration_seconds_count{method="POST",route="/v1/jobs"} 2.0' in text
    assert f'kiln_jobs{{kind="{kind}",status="queued"}} 1.0' in text
    assert f'kiln_jobs{{kind="{kind}",status="canceled"}} 1.0' in text
    assert f'kiln_job_transitions_total{{kind="{kind}",status="queued"}} 2.0' in text
    assert f'kiln_job_transitions_total{{kind="{kind}",status="canceled"}} 1.0' in text
    assert job_id not in text


def test_health_and_readiness(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    r = api.client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "object_store": "ok"}
    api.app.state.engine.dispose()
    from warehouse.db import make_engine

    api.app.state.engine = make_engine("sqlite:////nonexistent-dir/kiln.db")
    r = api.client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["database"].startswith("error")


def test_job_series_are_absent_not_zero_when_the_api_role_cannot_see_every_workspace(api, db_url):
    """On PostgreSQL without KILN_METRICS_DATABASE_URL the API's RLS role would count one workspace or none."""
    from api.main import create_app

    settings = api.settings.model_copy(update={"metrics_database_url": None})
    app = create_app(settings, store=api.store, configure_logs=False)
    try:
        with TestClient(app) as client:
            api.job(api.tenant())
            text = client.get("/metrics").text
    finally:
        app.state.engine.dispose()
    if db_url.startswith("sqlite"):
        assert "kiln_job_metrics_enabled 1.0" in text and "kiln_jobs{" in text
    else:
        assert "kiln_job_metrics_enabled 0.0" in text and "kiln_jobs{" not in text


def test_job_metrics_are_enabled_with_a_metrics_database(api):
    assert "kiln_job_metrics_enabled 1.0" in api.client.get("/metrics").text
