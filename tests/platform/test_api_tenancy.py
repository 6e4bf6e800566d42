"""Cross-tenant isolation over EVERY route of the app.

The test walks ``app.routes``: each route with a path parameter is called, with the owner token
of workspace A, on objects of workspace B, and must answer 404; with a viewer's narrow token it must
answer exactly what it answers for ids that exist nowhere. A new route whose parameter
names a resource this test cannot build fails loudly until the test learns it, so nothing new
escapes the check.
"""

from __future__ import annotations

import re
import uuid

from fastapi.routing import APIRoute
from sqlalchemy import select

from tests.support.api import api  # noqa: F401 - fixture
from tests.video_notes.test_video_product_api import make_foreign_video
from warehouse.db import system_session
from warehouse.models import ApiToken, Job, Membership

# Routes whose path parameter is not an object id of a workspace.
NOT_TENANT_IDS = {
    "/v1/downloads/{token}": "the signed link is the credential; tampering is covered in test_api_downloads",
    "/v1/config-packs/{name}/versions": "publishing makes the pack in the caller's workspace (names are per workspace)",
}

# Valid bodies, so the request reaches the id check instead of failing validation first.
BODIES = {
    ("PATCH", "/v1/workspace/members/{user_id}"): {"role": "viewer"},
    ("POST", "/v1/artifacts/{id}/download-link"): {"expires_in_seconds": 60},
    ("POST", "/v1/templates/{id}/render"): {"values": {"name": "x", "email": "y"}, "format": "docx"},
    ("PATCH", "/v1/characters/{id}"): {"description": "changed"},
    ("POST", "/v1/series/{id}/episodes"): {"number": 9, "title": "T", "story": "Mira waved."},
    ("PATCH", "/v1/drafts/{id}"): {"text": "changed"},
    ("POST", "/v1/drafts/{draft_id}/schedule"): {"account_id": str(uuid.uuid4()), "publish_at": "2099-01-01T00:00:00Z"},
    ("POST", "/v1/drafts/{id}/resolve"): {"outcome": "failed"},
    ("PATCH", "/v1/personas/{id}"): {"tone": "dry"},
    ("PUT", "/v1/config-packs/{name}/channels/{channel}"): {"version": 1},
}


def _foreign_objects(api, victim):
    job_id = api.job(victim)
    artifact_id = api.artifact(victim, b"victim data", job_id=job_id)
    second_member = api.member(victim, "editor")
    with system_session(api.system) as s:
        token_id = s.scalar(select(ApiToken.id).where(ApiToken.user_id == second_member.user_id))
    documents = _foreign_documents(api, victim)
    linkedin = _foreign_linkedin(api, victim)
    invitation = api.client.post("/v1/workspace/members", headers=victim.headers,
                                 json={"email": f"{uuid.uuid4().hex[:10]}@example.test"})
    assert invitation.status_code == 201, invitation.text
    return {
        **documents,
        **linkedin,
        "invitations": invitation.json()["id"],
        "jobs": str(job_id),
        "artifacts": str(artifact_id),
        "tokens": str(token_id),
        "members": str(second_member.user_id),
        "videos": str(make_foreign_video(api, victim)),
        **_foreign_episodes(api, victim),
    }


def _foreign_episodes(api, victim) -> dict[str, str]:
    """Characters (with versions), a series and an episode of the victim's, made through the API."""
    from tests.support.episodes_product import create_episode, sample_series

    ids = sample_series(api, victim)
    episode = create_episode(api, victim, ids["series"])
    assert episode.status_code == 202, episode.text
    return {"characters": ids["mira"], "series": ids["series"], "episodes": episode.json()["id"]}


def _foreign_documents(api, victim) -> dict[str, str]:
    """A template (with version 1) and a bulk run of the victim's, made through the API."""
    from tests.support.documents_product import name_email_template

    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    template = api.client.post("/v1/templates", headers=victim.headers,
                               files={"file": ("t.docx", name_email_template(), docx)}).json()
    run = api.client.post(f"/v1/templates/{template['id']}/bulk-runs", headers=victim.headers,
                          files={"file": ("r.csv", b"name,email\nAnn,a@b.c\n", "text/csv")}).json()
    return {"templates": template["id"], "versions": "1", "bulk-runs": run["id"]}


def _foreign_linkedin(api, victim) -> dict[str, str]:
    """A LinkedIn account (seeded: connecting needs the emulator), a draft, a persona and a pack with a channel."""
    from warehouse.linkedin_models import LinkedInAccount

    account_id = uuid.uuid4()
    with system_session(api.system) as s:
        s.add(LinkedInAccount(id=account_id, workspace_id=victim.workspace_id, member_urn="urn:li:person:victim",
                              status="connected", scopes=[], access_token_ciphertext=b"sealed"))
    draft = api.client.post("/v1/drafts", headers=victim.headers, json={"text": "victim's draft"}).json()
    persona = api.client.post("/v1/personas", headers=victim.headers, json={"name": "victim"}).json()
    pack = {"schema_version": 1, "name": "default", "system_prompt": "s", "user_prompt_template": "{topic}",
            "style": {"max_characters": 500}}
    published = api.client.post("/v1/config-packs/default/versions", headers=victim.headers,
                                json={"content": pack, "channel": "production"})
    assert published.status_code == 201, published.text
    return {"accounts": str(account_id), "drafts": draft["id"], "personas": persona["id"],
            "config-packs": "default", "channels": "production"}


def all_api_routes(app) -> list[APIRoute]:
    """Every APIRoute, including those of included routers (FastAPI >= 0.13x includes lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI flattens included routers into app.routes
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [c.original_route for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def _resource_of(path: str, param: str) -> str:
    segments = path.strip("/").split("/")
    index = segments.index("{" + param + "}")
    return segments[index - 1]


def _tenant_routes(api, foreign: dict[str, str]):
    """(method, path, url with the victim's ids, url with ids nobody has) for every route taking an object id."""
    routes = all_api_routes(api.app)
    assert any(r.path == "/v1/jobs/{id}" for r in routes), "route discovery is broken"
    for route in routes:
        if route.path in NOT_TENANT_IDS:
            continue
        params = re.findall(r"{(\w+)}", route.path)
        if not params:
            continue
        values, unknown = {}, {}
        for param in params:
            resource = _resource_of(route.path, param)
            assert resource in foreign, (
                f"{route.path}: teach this test how to make another workspace's {resource!r} "
                f"(add it to _foreign_objects) so the route is checked for cross-tenant access"
            )
            values[param] = foreign[resource]
            unknown[param] = "987654" if resource == "versions" else str(uuid.uuid4())
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            body = BODIES.get((method, route.path))
            if route.body_field is not None and route.body_field.field_info.is_required() and body is None:
                raise AssertionError(f"{method} {route.path}: add a valid body to BODIES")
            yield method, route.path, route.path.format(**values), route.path.format(**unknown), body


def test_every_route_answers_404_for_another_workspaces_ids(api):
    attacker, victim = api.tenant("owner"), api.tenant("owner")
    foreign = _foreign_objects(api, victim)
    checked = []
    for method, path, url, _, body in _tenant_routes(api, foreign):
        r = api.client.request(method, url, headers=attacker.headers, json=body)
        assert r.status_code == 404, f"{method} {url} answered {r.status_code}: {r.text}"
        assert r.json()["code"] == "not_found"
        checked.append(f"{method} {path}")
    assert len(checked) >= 8, checked

    # And nothing of the victim's changed.
    with system_session(api.system) as s:
        assert s.get(Job, uuid.UUID(foreign["jobs"])).status == "queued"
        assert s.scalar(select(ApiToken.revoked_at).where(ApiToken.id == uuid.UUID(foreign["tokens"]))) is None
        assert s.scalar(select(Membership.role).where(Membership.user_id == uuid.UUID(foreign["members"]))) == "editor"


def test_a_low_role_narrow_token_learns_nothing_about_another_workspaces_ids(api):
    """A viewer with a jobs:read token: for every route, another workspace's id answers exactly what an id that
    exists nowhere answers (404, or the same 403 a role/scope check gives before any lookup), never success."""
    attacker, victim = api.tenant("viewer", scopes=["jobs:read"]), api.tenant("owner")
    foreign = _foreign_objects(api, victim)
    checked = 0
    for method, _, url, unknown_url, body in _tenant_routes(api, foreign):
        r = api.client.request(method, url, headers=attacker.headers, json=body)
        nobody = api.client.request(method, unknown_url, headers=attacker.headers, json=body)
        assert r.status_code in (403, 404), f"{method} {url} answered {r.status_code}: {r.text}"
        assert (r.status_code, r.json()["code"]) == (nobody.status_code, nobody.json()["code"]), (
            f"{method} {url}: {r.status_code} {r.json()['code']} for a foreign id but "
            f"{nobody.status_code} {nobody.json()['code']} for an unknown one: the difference leaks existence")
        checked += 1
    assert checked >= 8


def test_listings_never_show_another_workspaces_rows(api):
    attacker, victim = api.tenant("owner"), api.tenant("owner")
    _foreign_objects(api, victim)
    own_job = api.job(attacker)
    jobs = api.client.get("/v1/jobs", headers=attacker.headers).json()["items"]
    assert [j["id"] for j in jobs] == [str(own_job)]
    members = api.client.get("/v1/workspace/members", headers=attacker.headers).json()["items"]
    assert [m["user_id"] for m in members] == [str(attacker.user_id)]
    tokens = api.client.get("/v1/tokens", headers=attacker.headers).json()["items"]
    assert {t["user_id"] for t in tokens} == {str(attacker.user_id)}
    assert api.client.get("/v1/workspace", headers=attacker.headers).json()["id"] == str(attacker.workspace_id)


def test_non_admin_cannot_see_or_revoke_a_colleagues_token(api):
    owner = api.tenant("owner")
    editor = api.member(owner, "editor")
    with system_session(api.system) as s:
        owner_token = s.scalar(select(ApiToken.id).where(ApiToken.user_id == owner.user_id))
    assert api.client.delete(f"/v1/tokens/{owner_token}", headers=editor.headers).status_code == 404
    assert api.client.get("/v1/jobs", headers=owner.headers).status_code == 200
