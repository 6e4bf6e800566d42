"""Posting exactly once against the emulator over HTTP: faults, a dead worker, 426, 429, 401, the sensor."""

from __future__ import annotations

import uuid
from datetime import timedelta

import dagster as dg
from sqlalchemy import select

from resources.dagster_resources import DatabaseResource
from resources.linkedin_tokens import ACCESS, REFRESH, associated, build_cipher, unseal
from resources.settings import get_settings
from tests.support.dagster_runs import add_requested_partitions, report_run_to_sensors
from tests.support.linkedin_product import li  # noqa: F401 - fixture
from warehouse import linkedin as store
from warehouse import linkedin_posting as posting
from warehouse.db import system_session
from warehouse.linkedin_models import LinkedInAccount, PostAttempt, Schedule
from warehouse.models import AuditLog, Job

TRICKY = "Step {i}) plan -- (x) #tag @ C# 🚀 \\ | {{ }} [a] <b> * _ ~"


def _setup(li, n: int, accounts: int = 1, text: str = TRICKY):
    owner = li.tenant()
    approver = li.member(owner, "admin")
    account_ids = [li.connect(owner, member=f"Member{a}") for a in range(accounts)]
    drafts = []
    for i in range(n):
        draft = li.approved_draft(owner, approver, text.format(i=i))
        li.schedule(owner, draft["id"], account_ids[i % accounts])
        drafts.append(draft)
    li.make_due()
    return owner, account_ids, drafts


def _drive(li, rounds: int = 12, **settings):
    """Daemon cycles by hand: claim what is due (deferred ones made due at once) and run each claim."""
    for _ in range(rounds):
        li.make_due()
        claims = li.claim()
        if not claims:
            return
        li.run_claims(claims, **settings)
    raise AssertionError("schedules still due after the rounds")


def _schedules(li) -> list[Schedule]:
    with system_session(li.api.system) as s:
        return list(s.scalars(select(Schedule)))


def test_scheduled_posts_with_injected_faults_are_posted_exactly_once(li):
    n = 200  # the issue's scale: 200 scheduled posts over 10 accounts, 30 % of requests faulted
    app = li.api.app  # setting up 200 approved, scheduled drafts takes ~1,000 API calls in a few seconds
    app.state.settings = app.state.settings.model_copy(update={"rate_limit_burst": 0,
                                                                "rate_limit_requests_per_minute": 0})
    owner, _, drafts = _setup(li, n, accounts=10)
    li.emulator_config(fault_rate=0.3, fault_seed=11)
    _drive(li, linkedin_reconcile_attempts=8)
    # An injected 401 whose refresh also failed leaves the account needing re-authorization and its posts waiting
    # (blocked_reauth), as LinkedIn's would. The member reconnects (the OAuth flow itself without faults), the
    # waiting posts resume, and the drive goes on under the same fault rate.
    blocked = {s.account_id for s in _schedules(li) if s.status == "blocked_reauth"}
    if blocked:
        li.emulator_config(fault_rate=0.0)
        for index in range(10):
            li.connect(owner, member=f"Member{index}")  # reconnecting a connected member only refreshes its tokens
        li.emulator_config(fault_rate=0.3, fault_seed=12)
        _drive(li, linkedin_reconcile_attempts=8)

    emulated = li.emulator_posts()
    assert emulated["count"] == n and emulated["duplicates"] == 0 and sum(emulated["faults_injected"].values()) > 0
    assert not any(p["truncated"] for p in emulated["posts"])  # escaped: nothing cut at "1)" or "("
    shown = {p["text"] for p in emulated["posts"]}
    assert shown == {TRICKY.format(i=i) for i in range(n)}
    schedules = _schedules(li)
    assert {s.status for s in schedules} == {"published"}
    urns = {s.post_urn for s in schedules}
    assert urns == {p["id"] for p in emulated["posts"]} and len(urns) == n
    for draft in drafts:
        got = li.client.get(f"/v1/drafts/{draft['id']}", headers=owner.headers).json()
        assert got["status"] == "published" and got["post_urn"] in urns
    with system_session(li.api.system) as s:
        attempts = list(s.scalars(select(PostAttempt)))
        assert not [a for a in attempts if a.status == "sending"]
        assert len([a for a in attempts if a.status == "published"]) == n
        assert any(a.reconciling for a in attempts)  # some faults were ambiguous and got reconciled


def test_a_worker_killed_between_send_and_record_reconciles_without_a_second_post(li):
    owner, _, (draft,) = _setup(li, 1)
    (claim,) = li.claim()
    # The run: attempt committed, the request sent and accepted by LinkedIn ... then the process dies.
    with li.posting_env() as env, system_session(li.api.system) as s:
        schedule = s.get(Schedule, claim.schedule_id)
        account = s.get(LinkedInAccount, schedule.account_id)
        from assets.linkedin.posting import account_token
        from pipelines.linkedin.commentary import build_post_body, request_fingerprint

        body = build_post_body(account.member_urn, TRICKY.format(i=0))
        posting.begin_attempt(s, schedule, fingerprint=request_fingerprint(body), reconciling=False, api_version="x")
        token = account_token(env, schedule.workspace_id, account.id, ACCESS)
        assert env.client.create_post(token, body).status == 201
    assert li.emulator_posts()["count"] == 1

    # The claim goes stale; the sensor reclaims it (run number 2) and the new run reconciles.
    (again,) = li.claim(claim_timeout=timedelta(0))
    assert again.reclaimed and again.claims == 2
    assert li.run_claims([again]) == ["published"]
    assert li.run_claims([claim]) == ["stale"]  # the dead run's number no longer acts
    emulated = li.emulator_posts()
    assert emulated["count"] == 1 and emulated["duplicates"] == 0
    got = li.client.get(f"/v1/drafts/{draft['id']}", headers=owner.headers).json()
    assert got["status"] == "published" and got["post_urn"] == emulated["posts"][0]["id"]
    attempts = li.client.get(f"/v1/drafts/{draft['id']}/attempts", headers=owner.headers).json()
    assert [(a["attempt"], a["status"], a["reconciling"]) for a in attempts] == [
        (1, "ambiguous", False), (2, "published", True)]


def test_reconciliation_by_reading_the_authors_posts_when_the_app_may(li):
    li.api.app.state.settings = li.api.settings.model_copy(
        update={"linkedin_scopes": ("openid", "profile", "w_member_social", "r_member_social")})
    owner, _, (draft,) = _setup(li, 1)
    li.queue_faults("timeout_after_commit")
    (claim,) = li.claim()
    assert li.run_claims([claim]) == ["published"]
    emulated = li.emulator_posts()
    assert emulated["count"] == 1 and emulated["duplicates"] == 0
    with system_session(li.api.system) as s:
        schedule = s.get(Schedule, claim.schedule_id)
        assert schedule.post_urn == emulated["posts"][0]["id"]
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "linkedin.post_published"))["code"] == (
            "reconciled_by_read")


def test_an_undecidable_outcome_becomes_needs_review_never_a_second_post(li):
    owner, _, _ = _setup(li, 1)
    li.queue_faults("server_error", "server_error", "server_error")
    (claim,) = li.claim()
    assert li.run_claims([claim], linkedin_reconcile_attempts=2) == ["needs_review"]
    (schedule,) = _schedules(li)
    assert schedule.error_code == "linkedin_outcome_unknown" and schedule.evidence["checks"]
    assert li.emulator_posts()["count"] == 0
    li.make_due()
    assert li.claim() == []  # never picked up again automatically
    draft_id = li.client.get("/v1/drafts", headers=owner.headers).json()["items"][0]["id"]
    editor = li.member(owner, "editor")
    path = f"/v1/drafts/{draft_id}/resolve"
    assert li.client.post(path, headers=editor.headers, json={"outcome": "failed"}).status_code == 403
    assert li.client.post(path, headers=owner.headers, json={"outcome": "published"}).json()["code"] == (
        "post_urn_required")
    resolved = li.client.post(path, headers=owner.headers, json={"outcome": "failed", "note": "not on LinkedIn"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "failed"
    assert resolved.json()["schedule"]["status"] == "failed"
    assert li.client.post(path, headers=owner.headers, json={"outcome": "failed"}).status_code == 409


def test_a_sunset_linkedin_version_fails_with_the_setting_to_change(li):
    owner, _, (draft,) = _setup(li, 1)
    li.emulator_config(sunset_versions=[li.api.settings.linkedin_api_version])
    (claim,) = li.claim()
    assert li.run_claims([claim]) == ["failed"]
    (schedule,) = _schedules(li)
    assert schedule.error_code == "linkedin_version_sunset" and "KILN_LINKEDIN_API_VERSION" in schedule.error_message
    got = li.client.get(f"/v1/drafts/{draft['id']}", headers=owner.headers).json()
    assert got["status"] == "failed" and got["schedule"]["error_code"] == "linkedin_version_sunset"
    assert li.emulator_posts()["count"] == 0


def test_429_backs_off_with_an_account_cooldown_and_posts_later(li):
    owner, (account_id,), (draft,) = _setup(li, 1)
    li.emulator_config(member_daily_limit=0)
    (claim,) = li.claim()
    assert li.run_claims([claim]) == ["scheduled"]
    (schedule,) = _schedules(li)
    assert schedule.backoffs == 1 and schedule.error_code == "linkedin_rate_limited"
    with system_session(li.api.system) as s:
        assert s.get(LinkedInAccount, account_id).cooldown_until is not None
    assert li.client.get(f"/v1/drafts/{draft['id']}", headers=owner.headers).json()["status"] == "scheduled"
    li.emulator_config(member_daily_limit=150)
    with system_session(li.api.system) as s:
        s.get(LinkedInAccount, account_id).cooldown_until = None
    _drive(li)
    assert li.emulator_posts()["count"] == 1 and _schedules(li)[0].status == "published"


def test_kilns_own_daily_budget_defers_to_midnight_without_sending(li):
    _setup(li, 2)
    li.emulator_config()
    claims = li.claim()
    assert li.run_claims(claims, linkedin_member_daily_budget=1) == ["published", "scheduled"]
    deferred = [s for s in _schedules(li) if s.status == "scheduled"][0]
    assert deferred.error_code == "linkedin_daily_budget"
    assert deferred.next_attempt_at.hour == 0 and deferred.next_attempt_at.minute == 0
    assert li.emulator_posts()["count"] == 1


def test_401_refreshes_once_and_without_a_refresh_token_blocks_for_reauth(li, caplog):
    owner, (account_id,), _ = _setup(li, 1)
    li.queue_faults("unauthorized")
    caplog.set_level("DEBUG")
    assert li.run_claims(li.claim()) == ["published"]
    with system_session(li.api.system) as s:
        assert s.scalar(select(AuditLog.id).where(AuditLog.action == "linkedin.token_refreshed"))
        account = s.get(LinkedInAccount, account_id)
        cipher = build_cipher(li.api.settings)
        tokens = [unseal(cipher, store.sealed(account, prefix), associated(account.workspace_id, account.id, purpose))
                  .get_secret_value() for prefix, purpose in (("access_token", ACCESS), ("refresh_token", REFRESH))]
        trail = repr([(a.action, a.detail) for a in s.scalars(select(AuditLog))])
    for token in tokens:  # neither the refreshed access token nor the refresh token leaks anywhere
        assert token not in caplog.text and token not in li.api.log.getvalue() and token not in trail

    li.emulator_config(issue_refresh_tokens=False)
    other = li.tenant()
    account = li.connect(other, member="NoRefresh")
    draft = li.approved_draft(other, li.member(other, "admin"), "Needs a token")
    li.schedule(other, draft["id"], account)
    li.make_due()
    li.queue_faults("unauthorized")
    assert li.run_claims(li.claim()) == ["blocked_reauth"]
    listing = li.client.get("/v1/linkedin/accounts", headers=other.headers).json()["items"]
    assert listing[0]["status"] == "needs_reauth" and listing[0]["reconnect_route"] == "POST /v1/linkedin/connect"
    assert li.client.get(f"/v1/drafts/{draft['id']}", headers=other.headers).json()["schedule"]["status"] == (
        "blocked_reauth")
    assert li.emulator_posts()["count"] == 1

    li.connect(other, member="NoRefresh")  # reconnecting resumes the blocked post (within the grace window)
    assert li.client.get("/v1/linkedin/accounts", headers=other.headers).json()["items"][0]["status"] == "connected"
    _drive(li)
    got = li.client.get(f"/v1/drafts/{draft['id']}", headers=other.headers).json()
    assert got["status"] == "published" and li.emulator_posts()["count"] == 2


def test_the_sensor_claims_once_and_requests_a_run_per_claim_in_the_linkedin_pool(li, monkeypatch):
    from sensors.linkedin import linkedin_post_job, linkedin_scheduler_sensor
    from assets.linkedin.assets import scheduled_post

    for key, value in {"KILN_LINKEDIN_AUTH_BASE_URL": li.emulator.base_url,
                       "KILN_LINKEDIN_API_BASE_URL": li.emulator.base_url,
                       "KILN_LINKEDIN_API_VERSION": li.api.settings.linkedin_api_version,
                       "KILN_LINKEDIN_REDIRECT_URI": li.api.settings.linkedin_redirect_uri,
                       "KILN_KEYRING_PATH": str(li.api.settings.keyring_path),
                       "KILN_DATABASE_URL": li.db_url}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        _, _, (draft,) = _setup(li, 1)
        resources = {"database": DatabaseResource(url=li.db_url), "object_store": li.api.store}
        with dg.instance_for_test() as instance:
            tick = linkedin_scheduler_sensor(dg.build_sensor_context(instance=instance, resources=resources))
            (request,) = tick.run_requests
            (schedule,) = _schedules(li)
            assert request.run_key == f"{schedule.id}:1" and request.partition_key == str(schedule.id)
            assert request.tags["kiln/pool"] == "linkedin" and request.tags["kiln/kind"] == "linkedin_post"
            again = linkedin_scheduler_sensor(dg.build_sensor_context(instance=instance, resources=resources))
            assert not again.run_requests  # claimed already: no second run
            add_requested_partitions(instance, tick)
            defs = dg.Definitions(assets=[scheduled_post], jobs=[linkedin_post_job], resources=resources)
            result = defs.resolve_job_def(request.job_name).execute_in_process(
                partition_key=request.partition_key, tags=request.tags, instance=instance, raise_on_error=False)
            report_run_to_sensors(instance, result, resources)
            assert result.success
        assert _schedules(li)[0].status == "published" and li.emulator_posts()["count"] == 1
        with system_session(li.api.system) as s:
            job = s.scalar(select(Job).where(Job.kind == "linkedin_post"))
            assert job.status == "succeeded" and job.partition_key == str(schedule.id)
    finally:
        get_settings.cache_clear()
    assert uuid.UUID(draft["id"])


def test_a_token_that_does_not_decrypt_on_its_row_blocks_for_reauth_and_sends_nothing(li):
    owner, (account_id,), _ = _setup(li, 1)
    other = li.connect(owner, member="Other")
    with system_session(li.api.system) as s:  # another account's ciphertext copied onto this row
        victim, donor = s.get(LinkedInAccount, account_id), s.get(LinkedInAccount, other)
        store.apply_sealed(victim, "access_token", store.sealed(donor, "access_token"))
    assert li.run_claims(li.claim()) == ["blocked_reauth"]
    assert li.emulator_posts()["count"] == 0
    with system_session(li.api.system) as s:
        assert s.get(LinkedInAccount, account_id).status == "needs_reauth"
