"""The production client against the emulator over real HTTP: OAuth, posting, versions, limits, faults."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from pipelines.linkedin.commentary import build_post_body, validate_commentary, visible_text
from pipelines.linkedin.outcomes import ClassifyContext, OutcomeKind, TransportFailure, classify, find_matching_post
from resources.linkedin_client import LinkedInAuthError, LinkedInPermissionError
from resources.linkedin_emulator import FAULT_KINDS
from tests.linkedin.support import API_VERSION, client_for, connect, consent, running_emulator

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server():
    with running_emulator() as emu:
        yield emu


@pytest.fixture()
def emu(server):
    server.config.update({"member_daily_limit": 150, "app_daily_limit": 100_000, "granted_scopes": None,
                          "issue_refresh_tokens": False, "sunset_versions": [], "fault_rate": 0.0,
                          "fault_kinds": list(FAULT_KINDS)})
    server.state.reset()
    return server


@pytest.fixture()
def client(emu):
    with client_for(emu) as c:
        yield c


def posted(emu) -> dict:
    return httpx.get(f"{emu.base_url}/_emulator/posts").json()


def test_oauth_round_trip(emu, client, caplog):
    url = client.authorization_url("state-123")
    assert url.startswith(f"{emu.base_url}/oauth/v2/authorization?")
    assert "scope=openid+profile+w_member_social" in url and "state=state-123" in url
    back = consent(emu, url)
    assert back["state"] == "state-123"
    with caplog.at_level(logging.DEBUG):
        tokens = client.exchange_code(back["code"])
        assert tokens.scopes == {"openid", "profile", "w_member_social"}
        assert tokens.refresh_token is None  # self-serve apps get none
        assert abs(tokens.expires_at - (datetime.now(UTC) + timedelta(days=60))) < timedelta(minutes=1)
        me = client.userinfo(tokens.access_token)
        assert (me.sub, me.name, me.author_urn) == ("EmuMember1", "Ada Lovelace", "urn:li:person:EmuMember1")
        # The code is single-use; the error names neither the code nor the client secret.
        with pytest.raises(LinkedInAuthError) as reused:
            client.exchange_code(back["code"])
    secret_values = (back["code"], tokens.access_token.get_secret_value(), emu.config.client_secret)
    for value in secret_values:
        assert value not in str(reused.value) and value not in caplog.text and value not in repr(tokens)


def test_wrong_client_secret_and_cancelled_consent(emu):
    with client_for(emu, client_secret=SecretStr("not-the-secret-value")) as bad:
        back = consent(emu, bad.authorization_url("s1"))
        with pytest.raises(LinkedInAuthError) as info:
            bad.exchange_code(back["code"])
        assert info.value.error == "invalid_client" and "not-the-secret-value" not in str(info.value)
    with client_for(emu) as good:
        refused = consent(emu, good.authorization_url("s2"), decision="deny")
        assert refused == {"error": "user_cancelled_authorize", "state": "s2",
                           "error_description": "The user cancelled the authorization"}


def test_refresh_keeps_the_refresh_token_and_its_expiry(emu, client):
    emu.config.update({"issue_refresh_tokens": True})
    first = connect(emu, client)
    assert first.refresh_token is not None
    again = client.refresh(first.refresh_token)
    assert again.refresh_token.get_secret_value() == first.refresh_token.get_secret_value()
    assert again.refresh_token_expires_at <= first.refresh_token_expires_at + timedelta(seconds=2)
    assert client.userinfo(again.access_token).sub == "EmuMember1"
    with pytest.raises(LinkedInAuthError) as info:
        client.refresh(SecretStr("emu_rt_forged-token-value"))
    assert "forged-token-value" not in str(info.value)


TRICKY = "Step 1) ship -- then (x) check #tag @ noon with @[Grace Hopper](urn:li:person:gh42) 🚀 {a|b} <ok> *bold* _u_ ~t~ \\ [link]"


def test_post_with_reserved_characters_lands_intact(emu, client):
    tokens = connect(emu, client)
    me = client.userinfo(tokens.access_token)
    body = build_post_body(me.author_urn, TRICKY)
    obs = client.create_post(tokens.access_token, body)
    outcome = classify(obs, ClassifyContext(now=NOW))
    assert outcome.kind is OutcomeKind.published and outcome.post_urn.startswith("urn:li:share:")
    [post] = posted(emu)["posts"]
    assert post["id"] == outcome.post_urn and not post["truncated"]
    assert post["text"] == visible_text(TRICKY)  # the mention shows its name; every other character as written


def test_three_thousand_characters_land_intact(emu, client):
    tokens = connect(emu, client)
    unit = "1) (x) -- #tag @ 🚀 "  # the emoji counts 2 (UTF-16)
    text = ""
    while len((text + unit).encode("utf-16-le")) // 2 <= 2990:
        text += unit
    text += "é" * (3000 - len(text.encode("utf-16-le")) // 2)
    assert len(text.encode("utf-16-le")) // 2 == 3000 and validate_commentary(text) == []
    obs = client.create_post(tokens.access_token, build_post_body("urn:li:person:EmuMember1", text))
    assert classify(obs, ClassifyContext(now=NOW)).kind is OutcomeKind.published
    assert posted(emu)["posts"][0]["text"] == text
    # One more character is refused before approval, and by the emulator.
    assert [i.code for i in validate_commentary(text + "!")] == ["commentary_too_long"]
    too_long = client.create_post(tokens.access_token, build_post_body("urn:li:person:EmuMember1", text + "!"))
    assert too_long.status == 422


def test_unescaped_commentary_is_truncated_like_linkedin_does(emu, client):
    tokens = connect(emu, client)
    body = build_post_body("urn:li:person:EmuMember1", "placeholder")
    body["commentary"] = "Three steps: 1) plan (carefully) 2) ship"
    obs = client.create_post(tokens.access_token, body)
    assert obs.status == 201  # accepted, silently cut
    [post] = posted(emu)["posts"]
    assert post["truncated"] and post["text"] == "Three steps: 1" and post["commentary"] == "Three steps: 1"


@pytest.mark.parametrize("version", ["202510", "202612", "2026-11"])
def test_sunset_or_unknown_version_answers_426(emu, version):
    with client_for(emu) as fresh:
        tokens = connect(emu, fresh)
    try:
        old = client_for(emu, api_version=version)
    except ValueError:
        assert version == "2026-11"  # malformed versions are refused by configuration, before any call
        return
    with old:
        obs = old.create_post(tokens.access_token, build_post_body("urn:li:person:EmuMember1", "hello"))
    assert obs.status == 426 and obs.body["code"] == "NONEXISTENT_VERSION"
    outcome = classify(obs, ClassifyContext(now=NOW))
    assert (outcome.kind, outcome.code, outcome.setting) == (
        OutcomeKind.failed, "linkedin_version_sunset", "KILN_LINKEDIN_API_VERSION")
    assert version in outcome.message and posted(emu)["count"] == 0


def test_declared_sunset_version(emu, client):
    tokens = connect(emu, client)
    emu.config.update({"sunset_versions": [API_VERSION]})
    obs = client.create_post(tokens.access_token, build_post_body("urn:li:person:EmuMember1", "hello"))
    assert obs.status == 426


def test_duplicate_post_names_the_existing_share(emu, client):
    tokens = connect(emu, client)
    body = build_post_body("urn:li:person:EmuMember1", "Same words (twice)")
    first = classify(client.create_post(tokens.access_token, body), ClassifyContext(now=NOW))
    second_obs = client.create_post(tokens.access_token, body)
    assert second_obs.status == 422 and second_obs.body["code"] == "DUPLICATE_POST"
    assert classify(second_obs, ClassifyContext(now=NOW, reconciling=True)).post_urn == first.post_urn
    fresh = classify(second_obs, ClassifyContext(now=NOW))
    assert fresh.kind is OutcomeKind.failed and fresh.code == "linkedin_duplicate_post"
    assert posted(emu)["count"] == 1


def test_daily_limit_answers_429_and_backs_off_to_midnight(emu, client):
    tokens = connect(emu, client)
    emu.config.update({"member_daily_limit": 2})
    for n in range(2):
        assert client.create_post(tokens.access_token, build_post_body("urn:li:person:EmuMember1", f"post {n}")).status == 201
    obs = client.create_post(tokens.access_token, build_post_body("urn:li:person:EmuMember1", "post 3"))
    assert obs.status == 429
    outcome = classify(obs, ClassifyContext(now=NOW, daily_budget_exhausted=True))
    assert outcome.kind is OutcomeKind.backoff and outcome.retry_at == datetime(2026, 11, 21, tzinfo=UTC)
    assert posted(emu)["count"] == 2


@pytest.mark.parametrize("fault, failure", [("reset_after_commit", TransportFailure.reset_after_send),
                                            ("timeout_after_commit", TransportFailure.timeout_after_send)])
def test_fault_after_commit_then_reconciliation_by_resend(emu, client, fault, failure):
    tokens = connect(emu, client)
    body = build_post_body("urn:li:person:EmuMember1", "Launch day (finally) #shipit")
    httpx.post(f"{emu.base_url}/_emulator/faults", json={"queue": [fault]}).raise_for_status()
    obs = client.create_post(tokens.access_token, body)
    assert obs.failure is failure
    assert classify(obs, ClassifyContext(now=NOW)).kind is OutcomeKind.ambiguous
    # Reconcile: the identical resend is answered DUPLICATE_POST naming the post that exists.
    outcome = classify(client.create_post(tokens.access_token, body), ClassifyContext(now=NOW, reconciling=True))
    summary = posted(emu)
    assert outcome.kind is OutcomeKind.published and outcome.post_urn == summary["posts"][0]["id"]
    assert (summary["count"], summary["duplicates"], summary["faults_injected"]) == (1, 0, {fault: 1})


def test_reconciliation_by_reading_the_authors_posts(emu, client):
    tokens = connect(emu, client, scopes=("openid", "profile", "w_member_social", "r_member_social"))
    body = build_post_body("urn:li:person:EmuMember1", "Read me back (please)")
    httpx.post(f"{emu.base_url}/_emulator/faults", json={"queue": ["reset_after_commit"]}).raise_for_status()
    assert client.create_post(tokens.access_token, body).failure is TransportFailure.reset_after_send
    recent = client.list_posts(tokens.access_token, "urn:li:person:EmuMember1")
    urn = find_matching_post(body, [p.raw for p in recent])
    assert urn == posted(emu)["posts"][0]["id"]
    # Without r_member_social (LinkedIn restricts it) reading is refused: reconcile by resend instead.
    plain = connect(emu, client)
    with pytest.raises(LinkedInPermissionError):
        client.list_posts(plain.access_token, "urn:li:person:EmuMember1")


def test_server_error_before_commit_stores_nothing(emu, client):
    tokens = connect(emu, client)
    body = build_post_body("urn:li:person:EmuMember1", "try again")
    httpx.post(f"{emu.base_url}/_emulator/faults", json={"queue": ["server_error", "unauthorized"]}).raise_for_status()
    first = client.create_post(tokens.access_token, body)
    assert first.status == 500 and classify(first, ClassifyContext(now=NOW)).kind is OutcomeKind.ambiguous
    second = client.create_post(tokens.access_token, body)
    assert classify(second, ClassifyContext(now=NOW)).kind is OutcomeKind.refresh
    assert classify(second, ClassifyContext(now=NOW, refreshed_already=True)).kind is OutcomeKind.needs_reauth
    assert posted(emu)["count"] == 0
    third = classify(client.create_post(tokens.access_token, body), ClassifyContext(now=NOW, reconciling=True))
    assert third.kind is OutcomeKind.published and posted(emu)["count"] == 1


def test_unreachable_api_is_a_safe_retry(emu):
    with client_for(emu, api_base_url="http://127.0.0.1:9") as offline:
        obs = offline.create_post(SecretStr("t"), build_post_body("urn:li:person:EmuMember1", "x"))
    assert obs.failure is TransportFailure.before_send
    assert classify(obs, ClassifyContext(now=NOW)).kind is OutcomeKind.retry


def test_token_for_one_member_cannot_post_as_another(emu, client):
    tokens = connect(emu, client, member="Alice1")
    obs = client.create_post(tokens.access_token, build_post_body("urn:li:person:Bob2", "hi"))
    assert obs.status == 403 and classify(obs, ClassifyContext(now=NOW)).kind is OutcomeKind.failed


def test_missing_scope_is_not_granted(emu, client):
    emu.config.update({"granted_scopes": ["openid", "profile"]})
    tokens = connect(emu, client)
    assert "w_member_social" not in tokens.scopes  # the callback must refuse this connection
    obs = client.create_post(tokens.access_token, build_post_body("urn:li:person:EmuMember1", "x"))
    assert obs.status == 403


def test_random_faults_with_a_seed_are_reproducible(emu, client):
    tokens = connect(emu, client)

    def run(seed: int) -> list[str]:
        emu.state.reset()
        emu.config.update({"fault_rate": 0.5, "fault_seed": seed, "fault_kinds": ["server_error", "unauthorized"]})
        emu.state.rng.seed(seed)
        return [str(client.create_post(tokens.access_token,
                                       build_post_body("urn:li:person:EmuMember1", f"n{i}")).status) for i in range(12)]

    first, second = run(7), run(7)
    assert first == second and {"201", "500"} <= set(first)


def test_slow_answer_times_out_and_reconciliation_still_posts_once(emu):
    emu.config.update({"slow_s": 1.0})
    body = build_post_body("urn:li:person:EmuMember1", "Slow day (really)")
    with client_for(emu, read_timeout_s=0.3) as client:
        tokens = connect(emu, client)
        httpx.post(f"{emu.base_url}/_emulator/faults", json={"queue": ["slow"]}).raise_for_status()
        obs = client.create_post(tokens.access_token, body)
        assert obs.failure is TransportFailure.timeout_after_send
        outcome = classify(client.create_post(tokens.access_token, body), ClassifyContext(now=NOW, reconciling=True))
        assert outcome.kind is OutcomeKind.published
    import time

    time.sleep(1.0)  # let the slow request finish: it finds the post and stores nothing
    summary = posted(emu)
    assert (summary["count"], summary["duplicates"]) == (1, 0) and summary["posts"][0]["id"] == outcome.post_urn


def test_latency_setting_delays_answers(emu, client):
    tokens = connect(emu, client)
    emu.config.update({"latency_s": 0.3})
    try:
        import time

        started = time.monotonic()
        client.userinfo(tokens.access_token)
        assert time.monotonic() - started >= 0.3
    finally:
        emu.config.update({"latency_s": 0.0})


def test_posting_loop_with_random_faults_posts_each_draft_exactly_once(emu):
    """A preview of the scheduler's rule on 30 drafts over 3 members with 40 % faults of every kind:
    ambiguous outcomes are reconciled by an identical resend, never counted as a new post."""
    emu.config.update({"fault_rate": 0.4, "fault_seed": 11, "slow_s": 0.6, "hang_s": 0.6})
    emu.state.rng.seed(11)
    decided: dict[str, str] = {}
    with client_for(emu, read_timeout_s=0.3) as client:
        tokens = {m: connect(emu, client, member=m).access_token for m in ("Ann1", "Ben2", "Cat3")}
        for n in range(30):
            member = ("Ann1", "Ben2", "Cat3")[n % 3]
            body = build_post_body(f"urn:li:person:{member}", f"Post {n}: step 1) (x) #tag{n} -- 🚀")
            reconciling = refreshed = False
            for _attempt in range(8):
                outcome = classify(client.create_post(tokens[member], body),
                                   ClassifyContext(now=NOW, reconciling=reconciling, refreshed_already=refreshed))
                if outcome.kind is OutcomeKind.published:
                    decided[body["commentary"]] = outcome.post_urn
                    break
                reconciling = reconciling or outcome.kind is OutcomeKind.ambiguous
                refreshed = outcome.kind is OutcomeKind.refresh  # the emulated 401 is transient: "refresh" and go on
                assert outcome.kind in (OutcomeKind.ambiguous, OutcomeKind.refresh, OutcomeKind.retry), outcome
            else:
                decided[body["commentary"]] = "needs_review"
    import time

    time.sleep(0.7)  # slow requests still in flight finish (and find their post already there)
    summary = posted(emu)
    published = {urn for urn in decided.values() if urn != "needs_review"}
    assert summary["duplicates"] == 0 and summary["count"] == len(published) == len(decided) == 30
    assert published == {p["id"] for p in summary["posts"]}
    assert sum(summary["faults_injected"].values()) >= 10
