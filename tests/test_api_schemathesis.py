"""Schemathesis over the OpenAPI document: generated requests never produce a server error,
and every answer matches its documented status codes and schemas.

The app runs on a throwaway SQLite database with one authenticated owner, so requests reach
the handlers instead of stopping at 401.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from api.security import create_api_token
from resources.objectstore import LocalObjectStore
from resources.settings import Settings
from warehouse import jobs as job_machine
from warehouse.db import make_engine, system_session
from warehouse.migrate import upgrade
from warehouse.models import AppUser, Membership, Workspace

SECRET = "schemathesis-secret-0123456789abcdef0123456789"


def _build_app():
    root = Path(tempfile.mkdtemp(prefix="kiln-schemathesis-"))
    url = f"sqlite:///{root / 'kiln.db'}"
    upgrade(url)
    engine = make_engine(url)
    ws_id, user_id = uuid.uuid4(), uuid.uuid4()
    with system_session(engine) as s:
        s.add(Workspace(id=ws_id, name="fuzz", slug="fuzz"))
        s.add(AppUser(id=user_id, email="fuzz@example.test"))
        s.flush()
        s.add(Membership(workspace_id=ws_id, user_id=user_id, role="owner"))
        s.flush()
        _, token = create_api_token(s, ws_id, user_id, "fuzz", ["*"], None, secret_key=SECRET)
        job_machine.submit_job(s, workspace_id=ws_id, kind="selftest", payload={"message": "seed"})
    engine.dispose()
    app_settings = Settings(env="test", home=root, secret_key=SECRET, database_url=url, objects_dir=root / "objects")
    app = create_app(app_settings, store=LocalObjectStore(root=str(root / "objects")), configure_logs=False)
    return app, token


APP, TOKEN = _build_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_and_never_errors(case):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
