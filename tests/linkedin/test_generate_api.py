"""POST /v1/drafts/generate: a job whose asset writes a draft from the persona and the channel's pack."""

from __future__ import annotations

import uuid

import dagster as dg
from sqlalchemy import select

from pipelines.linkedin.packs import OFFLINE_MARKER
from resources.dagster_resources import DatabaseResource
from tests.support.dagster_runs import add_requested_partitions, report_run_to_sensors
from tests.support.linkedin_product import PACK, li  # noqa: F401 - fixture
from warehouse.db import system_session
from warehouse.models import Artifact


def test_generate_queues_a_job_whose_run_writes_an_offline_draft_with_its_versions(li, monkeypatch):
    from assets.linkedin.assets import generated_draft
    from resources.settings import get_settings
    from sensors.linkedin import generate_draft_dispatch_sensor, linkedin_generate_job

    monkeypatch.delenv("KILN_LLM_BASE_URL", raising=False)
    monkeypatch.setenv("KILN_OBJECTS_DIR", str(li.api.settings.objects_dir))
    get_settings.cache_clear()
    owner = li.tenant()
    persona = li.client.post("/v1/personas", headers=owner.headers,
                             json={"name": "Eng lead", "topics": ["testing"]}).json()
    pack = li.client.post("/v1/config-packs/default/versions", headers=owner.headers,
                          json={"content": PACK, "channel": "production"}).json()
    missing = li.client.post("/v1/drafts/generate", headers=owner.headers,
                             json={"persona_id": persona["id"], "topic": "x", "channel": "staging"})
    assert missing.status_code == 404
    r = li.client.post("/v1/drafts/generate", headers=owner.headers,
                       json={"persona_id": persona["id"], "topic": "Release trains (and why) 1) matter"})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert li.client.post("/v1/jobs", headers=owner.headers,
                          json={"kind": "linkedin_generate_draft", "payload": {}}).json()["code"] == "use_product_route"

    resources = {"database": DatabaseResource(url=li.db_url), "object_store": li.api.store}
    try:
        with dg.instance_for_test() as instance:
            tick = generate_draft_dispatch_sensor(dg.build_sensor_context(instance=instance, resources=resources))
            (request,) = tick.run_requests
            add_requested_partitions(instance, tick)
            defs = dg.Definitions(assets=[generated_draft], jobs=[linkedin_generate_job], resources=resources)
            result = defs.resolve_job_def(linkedin_generate_job.name).execute_in_process(
                partition_key=request.partition_key, tags=request.tags, instance=instance, raise_on_error=False)
            report_run_to_sensors(instance, result, resources)
            assert result.success
    finally:
        get_settings.cache_clear()
    (draft,) = li.client.get("/v1/drafts", headers=owner.headers).json()["items"]
    assert draft["source"] == "generated" and draft["offline"] is True and draft["text"].startswith(OFFLINE_MARKER)
    assert draft["persona_version_id"] == persona["version_id"] and draft["pack_version_id"] == pack["id"]
    assert li.client.get(f"/v1/jobs/{job_id}", headers=owner.headers).json()["status"] == "succeeded"
    submitted = li.client.post(f"/v1/drafts/{draft['id']}/submit", headers=owner.headers)
    assert submitted.status_code == 200  # the generated text passes the commentary rules
    with system_session(li.api.system) as s:
        assert s.scalar(select(Artifact.filename).where(Artifact.job_id == uuid.UUID(job_id))) == "generation.json"
