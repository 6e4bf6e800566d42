"""Integers beyond 64 bits anywhere in a request answer 422, never 500 (SQLite OverflowError).

Walks every operation of the OpenAPI document: each integer path or query parameter, and each
integer property of a JSON request body, gets 2**64 and -2**63-1.
"""

from __future__ import annotations

import uuid

import pytest
from fastapi import Request

from tests.support.api import api  # noqa: F401 - fixture

HUGE_VALUES = (2**64, -(2**63) - 1)


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _is_int(schema: dict, spec: dict) -> bool:
    schema = _resolve(schema, spec)
    options = schema.get("anyOf", [schema])
    return any(_resolve(o, spec).get("type") == "integer" for o in options)


def _fill(path: str, params: list[dict], spec: dict, override: tuple[str, int] | None) -> str:
    for p in params:
        if p["in"] == "path":
            value = override[1] if override and override[0] == p["name"] else (
                1 if _is_int(p.get("schema", {}), spec) else uuid.uuid4())
            path = path.replace("{" + p["name"] + "}", str(value))
    return path


def _cases(spec: dict):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            params = op.get("parameters", [])
            for p in params:
                if p["in"] in ("path", "query") and _is_int(p.get("schema", {}), spec):
                    for value in HUGE_VALUES:
                        url = _fill(path, params, spec, (p["name"], value) if p["in"] == "path" else None)
                        query = {p["name"]: str(value)} if p["in"] == "query" else {}
                        yield method, url, query, None, f"{method} {path} {p['name']}={value}"
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                schema = _resolve(body["schema"], spec)
                for option in schema.get("anyOf", [schema]):
                    option = _resolve(option, spec)
                    for name, prop in option.get("properties", {}).items():
                        if _is_int(prop, spec):
                            for value in HUGE_VALUES:
                                yield (method, _fill(path, params, spec, None), {}, {name: value},
                                       f"{method} {path} body.{name}={value}")


def test_every_integer_parameter_and_body_field_refuses_huge_values(api):
    t = api.tenant()
    spec = api.client.get("/openapi.json").json()
    cases = list(_cases(spec))
    names = " ".join(c[-1] for c in cases)
    assert "limit=" in names and "/versions/{n} n=" in names and "body.version=" in names  # the walk sees them
    for method, url, query, body, label in cases:
        r = api.client.request(method.upper(), url, params=query, json=body, headers=t.headers)
        assert r.status_code == 422, (label, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), label


def test_an_unbounded_integer_reaching_the_database_is_422_not_500(api):
    """The central mapping, for an int a future route forgets to bound."""
    from sqlalchemy import text

    @api.app.get("/test-only/lookup/{n}")
    def lookup(n: int, request: Request):
        with api.app.state.engine.connect() as conn:
            return {"n": conn.execute(text("SELECT :n"), {"n": n}).scalar()}

    assert api.client.get("/test-only/lookup/5").json() == {"n": 5}
    r = api.client.get(f"/test-only/lookup/{2**64}")
    if api.app.state.engine.dialect.name == "sqlite":  # PostgreSQL binds it as numeric and answers
        assert r.status_code == 422 and r.json()["code"] == "invalid_value", r.text
