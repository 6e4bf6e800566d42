"""Classification of POST /rest/posts outcomes (pure: observations in, decisions out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.linkedin.outcomes import (
    ClassifyContext,
    OutcomeKind,
    PostObservation,
    TransportFailure,
    classify,
    find_matching_post,
    next_utc_midnight,
)

NOW = datetime(2026, 11, 20, 23, 59, 30, tzinfo=UTC)
K = OutcomeKind


def obs(status, body=None, **headers):
    return PostObservation(status=status, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()},
                           api_version="202611")


def test_created_with_urn_is_published():
    out = classify(obs(201, x_restli_id="urn:li:share:123"), ClassifyContext(now=NOW))
    assert (out.kind, out.post_urn) == (K.published, "urn:li:share:123")
    via_location = classify(obs(201, location="/rest/posts/urn%3Ali%3Ashare%3A77"), ClassifyContext(now=NOW))
    assert via_location.post_urn == "urn:li:share:77"


@pytest.mark.parametrize("observation", [
    PostObservation(failure=TransportFailure.timeout_after_send),
    PostObservation(failure=TransportFailure.reset_after_send),
    obs(500), obs(502), obs(503, {"message": "busy"}),
    obs(201),  # created, but which post? reconcile
    obs(201, x_restli_id="not-a-urn"),
    obs(302),
])
def test_anything_that_may_have_posted_is_ambiguous(observation):
    assert classify(observation, ClassifyContext(now=NOW)).kind is K.ambiguous


def test_nothing_sent_is_a_safe_retry():
    assert classify(PostObservation(failure=TransportFailure.before_send), ClassifyContext(now=NOW)).kind is K.retry


def test_duplicate_post_is_success_only_when_reconciling():
    body = {"status": 422, "code": "DUPLICATE_POST", "message": "Content is a duplicate of urn:li:share:7142"}
    assert classify(obs(422, body), ClassifyContext(now=NOW, reconciling=True)).post_urn == "urn:li:share:7142"
    first_send = classify(obs(422, body), ClassifyContext(now=NOW))
    assert first_send.kind is K.failed and first_send.code == "linkedin_duplicate_post"
    assert first_send.post_urn == "urn:li:share:7142"


def test_429_backs_off_to_midnight_or_exponentially():
    spent = classify(obs(429), ClassifyContext(now=NOW, daily_budget_exhausted=True))
    assert spent.kind is K.backoff and spent.retry_at == datetime(2026, 11, 21, tzinfo=UTC) and spent.daily_budget_exhausted
    waits = [classify(obs(429), ClassifyContext(now=NOW, backoff_attempt=n)).retry_at - NOW for n in range(8)]
    assert waits[:3] == [timedelta(seconds=60), timedelta(seconds=120), timedelta(seconds=240)]
    assert max(waits) == timedelta(seconds=3600)
    honoured = classify(obs(429, retry_after="900"), ClassifyContext(now=NOW))
    assert honoured.retry_at - NOW == timedelta(seconds=900)


def test_401_refreshes_once_then_needs_reauth():
    assert classify(obs(401), ClassifyContext(now=NOW)).kind is K.refresh
    assert classify(obs(401), ClassifyContext(now=NOW, refreshed_already=True)).kind is K.needs_reauth


def test_426_names_the_setting():
    out = classify(obs(426, {"code": "NONEXISTENT_VERSION", "message": "Requested version 202301 is not active"}),
                   ClassifyContext(now=NOW))
    assert (out.kind, out.code, out.setting) == (K.failed, "linkedin_version_sunset", "KILN_LINKEDIN_API_VERSION")
    assert "202611" in out.message and "KILN_LINKEDIN_API_VERSION" in out.message


def test_other_4xx_fail_with_linkedins_message_cleaned():
    out = classify(obs(422, {"message": "/commentary :: too long\x00\x1b[31m" + "x" * 2000}), ClassifyContext(now=NOW))
    assert out.kind is K.failed and out.code == "linkedin_rejected"
    assert out.message.startswith("/commentary :: too long") and "\x00" not in out.message and len(out.message) <= 500
    assert classify(obs(403, "not json"), ClassifyContext(now=NOW)).message == "LinkedIn refused the post (HTTP 403)."


def test_next_utc_midnight_from_other_zones():
    from datetime import timezone

    plus2 = datetime(2026, 11, 21, 1, 0, tzinfo=timezone(timedelta(hours=2)))  # 23:00 UTC on the 20th
    assert next_utc_midnight(plus2) == datetime(2026, 11, 21, tzinfo=UTC)


def test_find_matching_post():
    body = {"author": "urn:li:person:a", "commentary": "Hi \\(x\\)"}
    posts = [{"id": "urn:li:share:1", "author": "urn:li:person:a", "commentary": "Hi"},
             {"id": "urn:li:share:2", "author": "urn:li:person:b", "commentary": "Hi \\(x\\)"},
             {"id": "urn:li:share:3", "author": "urn:li:person:a", "commentary": "Hi \\(x\\)"}]
    assert find_matching_post(body, posts) == "urn:li:share:3"
    assert find_matching_post(body, posts[:2]) is None
