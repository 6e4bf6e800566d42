"""KilnError -> problem+json: simple extras become RFC 9457 extension members; nothing else leaks."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.problems import PROBLEM_CONTENT_TYPE, Problem, install_problem_handlers, kiln_error_extensions
from pipelines.documents.errors import MissingColumns
from pipelines.errors import Conflict, InvalidInput


class _Secret:
    def __repr__(self) -> str:
        return "password=hunter2"


def _client(error: Exception) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    def boom():
        raise error

    return TestClient(app, raise_server_exceptions=False)


def test_list_and_scalar_extras_are_extension_members():
    r = _client(MissingColumns("No column for: email, name.", missing=["email", "name"], rows=3)).get("/boom")
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = r.json()
    assert body["code"] == "missing_columns" and body["type"].endswith("/missing_columns")
    assert body["missing"] == ["email", "name"] and body["rows"] == 3
    assert body["detail"] == "No column for: email, name."


def test_exceptions_objects_dicts_and_nested_lists_are_dropped():
    error = InvalidInput(
        "bad", cause=ValueError("internal path /srv/x"), secret=_Secret(), mapping={"a": 1},
        nested=[["x"]], mixed=["ok", object()], nan=float("nan"), flag=False, nothing=None, ratio=0.5)
    body = _client(error).get("/boom").json()
    for dropped in ("cause", "secret", "mapping", "nested", "mixed", "nan", "nothing"):
        assert dropped not in body
    assert body["flag"] is False and body["ratio"] == 0.5
    assert "hunter2" not in str(body) and "/srv/x" not in str(body)


def test_extras_cannot_replace_the_standard_members_and_sizes_are_capped():
    error = Conflict("taken", status=200, type="x", title="x", detail="x", job_id="j-1",
                     many=list(range(1000)), long="y" * 50_000)
    r = _client(error).get("/boom")
    body = r.json()
    assert (r.status_code, body["status"], body["code"], body["detail"]) == (409, 409, "conflict", "taken")
    assert body["type"].endswith("/conflict") and body["title"] == "Conflict" and body["job_id"] == "j-1"
    assert len(body["many"]) == 100 and len(body["long"]) == 1000
    assert len(kiln_error_extensions({f"k{i}": i for i in range(100)})) == 16


def test_problem_schema_allows_extension_members():
    schema = Problem.model_json_schema()
    assert schema.get("additionalProperties") is True and "missing" in schema["properties"]
