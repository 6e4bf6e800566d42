"""The posting engine behind the ``linkedin_post`` asset: one claimed schedule, posted at most once.

No Dagster here (the asset is a thin wrapper), so tests drive it directly against the emulator.

The order that makes it exactly-once:

1. The schedule was claimed by the sensor (one conditional update; run number ``claims``). A run whose
   payload names an older run number does nothing.
2. A ``post_attempt`` row (status ``sending``, request fingerprint) is committed BEFORE the request.
3. The outcome, the attempt, the schedule and the draft are recorded in ONE transaction.

A run that finds an attempt still ``sending`` (its run died between 2 and 3) or ``ambiguous`` (timeout or
reset after sending, 5xx) never sends blindly: it reconciles. By reading the author's posts where the
account may (``r_member_social``), else by resending the identical body and taking LinkedIn's
``422 DUPLICATE_POST`` naming the existing post as success. After ``KILN_LINKEDIN_RECONCILE_ATTEMPTS``
undecided reconciliations the schedule becomes ``needs_review`` with the evidence; never a second post.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from pipelines.linkedin import drafts as rules
from pipelines.linkedin.commentary import build_post_body, request_fingerprint
from pipelines.linkedin.outcomes import ClassifyContext, Outcome, OutcomeKind, classify, find_matching_post, next_utc_midnight
from resources.linkedin_client import LinkedInAuthError, LinkedInClient, LinkedInError
from resources.objectstore import as_utc
from resources.linkedin_tokens import ACCESS, REFRESH, associated, seal, unseal
from resources.secrets_envelope import EnvelopeCipher, SecretsError
from resources.settings import Settings
from warehouse import linkedin as accounts
from warehouse import linkedin_posting as posting
from warehouse.db import utcnow

log = structlog.get_logger("kiln.linkedin.posting")
OPEN_ATTEMPTS = ("sending", "ambiguous")  # may have reached LinkedIn with no decided outcome
RETRY_DELAY = timedelta(seconds=60)


@dataclass
class PostingEnv:
    tenant: Callable[[uuid.UUID], AbstractContextManager[Session]]  # one committed transaction per call
    system: Callable[[], AbstractContextManager[Session]]  # for the per-app daily count across workspaces
    client: LinkedInClient
    cipher: EnvelopeCipher
    settings: Settings
    now: Callable[[], datetime] = utcnow


@dataclass
class _Snapshot:
    workspace_id: uuid.UUID
    schedule_id: uuid.UUID
    account_id: uuid.UUID
    account_status: str
    member_urn: str
    scopes: list[str]
    cooldown_until: datetime | None
    backoffs: int
    text: str
    approval_ok: bool
    open_attempt: bool
    reconciliations: int


def _load(env: PostingEnv, workspace_id: uuid.UUID, schedule_id: uuid.UUID, claims: int) -> _Snapshot | None:
    with env.tenant(workspace_id) as s:
        schedule = posting.schedule_of(s, workspace_id, schedule_id)
        if schedule is None or schedule.status != "claimed" or schedule.claims != claims:
            return None  # a newer run owns it, or it is decided
        draft = posting.draft_of(s, workspace_id, schedule.draft_id)
        account = accounts.account_of(s, workspace_id, schedule.account_id)
        tries = posting.attempts_of(s, schedule_id)
        state = rules.DraftState(rules.DraftStatus(draft.status), draft.text, str(draft.author_id),
                                 rules.Approval(draft.approved_sha256, "", utcnow()) if draft.approved_sha256 else None)
        return _Snapshot(workspace_id, schedule_id, account.id, account.status, account.member_urn,
                         list(account.scopes or []), as_utc(account.cooldown_until) if account.cooldown_until else None,
                         schedule.backoffs, draft.text,
                         rules.approval_holds(state), any(a.status in OPEN_ATTEMPTS for a in tries),
                         sum(1 for a in tries if a.reconciling))


def _finish(env: PostingEnv, snap: _Snapshot, claims: int, target: str, *, draft_status: str | None,
            attempt_id: uuid.UUID | None = None, attempt_status: str | None = None, outcome: Outcome | None = None,
            http_status: int | None = None, close_open: bool = False, **schedule_values: Any) -> str:
    """Record attempt + schedule + draft (+ audit) in one transaction."""
    with env.tenant(snap.workspace_id) as s:
        schedule = posting.schedule_of(s, snap.workspace_id, snap.schedule_id)
        if schedule is None or schedule.status != "claimed" or schedule.claims != claims:
            return "stale"
        urn = outcome.post_urn if outcome and outcome.kind is OutcomeKind.published else None
        if attempt_id is not None:
            posting.finish_attempt(s, attempt_id, attempt_status or target, http_status=http_status, post_urn=urn,
                                   error_code=outcome.code if outcome else None,
                                   message=outcome.message if outcome else None)
        if close_open:  # an earlier ambiguous/sending attempt is now decided by this one
            for earlier in posting.attempts_of(s, snap.schedule_id):
                if earlier.status in OPEN_ATTEMPTS and earlier.id != attempt_id:
                    posting.finish_attempt(s, earlier.id, "ambiguous", error_code="reconciled",
                                           message=f"Decided by a later attempt: {target}.")
        posting.finish_schedule(s, schedule, target, draft_status=draft_status, post_urn=urn, **schedule_values)
        accounts.audit_event(s, snap.workspace_id, f"linkedin.post_{target}", "schedule", snap.schedule_id,
                             post_urn=urn, code=outcome.code if outcome else schedule_values.get("error_code"))
    log.info("linkedin_schedule_finished", schedule_id=str(snap.schedule_id), status=target)
    return target


def _defer(env, snap, claims, until: datetime, *, reason: str, backoff: bool = False, **kw) -> str:
    return _finish(env, snap, claims, "scheduled", draft_status="scheduled", next_attempt_at=until,
                   error_code=reason, backoff=backoff, **kw)


def _budget_spent(env: PostingEnv, snap: _Snapshot, now: datetime) -> bool:
    midnight = next_utc_midnight(now) - timedelta(days=1)
    with env.tenant(snap.workspace_id) as s:
        member = posting.sends_since(s, midnight, account_id=snap.account_id)
    if member >= env.settings.linkedin_member_daily_budget:
        return True
    with env.system() as s:
        return posting.sends_since(s, midnight) >= env.settings.linkedin_app_daily_budget


def account_token(env: PostingEnv, workspace_id: uuid.UUID, account_id: uuid.UUID, purpose: str):
    """The decrypted token (``SecretStr``) of an account, or None; bound to its row by the associated data."""
    with env.tenant(workspace_id) as s:
        account = accounts.account_of(s, workspace_id, account_id)
        sealed = accounts.sealed(account, "access_token" if purpose == ACCESS else "refresh_token")
    return unseal(env.cipher, sealed, associated(workspace_id, account_id, purpose)) if sealed else None


def refresh_account(env: PostingEnv, workspace_id: uuid.UUID, account_id: uuid.UUID) -> str:
    """``ok`` | ``reauth`` (no refresh token, or LinkedIn refused it) | ``transient``."""
    refresh = account_token(env, workspace_id, account_id, REFRESH)
    if refresh is None:
        return "reauth"
    try:
        tokens = env.client.refresh(refresh)
    except LinkedInAuthError:
        return "reauth"
    except LinkedInError:
        return "transient"  # a transient refresh failure never disconnects the account
    with env.tenant(workspace_id) as s:
        account = accounts.account_of(s, workspace_id, account_id)
        access = seal(env.cipher, tokens.access_token, associated(workspace_id, account_id, ACCESS))
        accounts.replace_access_token(s, account, access, tokens.expires_at)
        accounts.audit_event(s, workspace_id, "linkedin.token_refreshed", "linkedin_account", account_id)
    return "ok"


def _reauth(env: PostingEnv, snap: _Snapshot, claims: int, **kw) -> str:
    with env.tenant(snap.workspace_id) as s:
        if accounts.mark_needs_reauth(s, snap.workspace_id, snap.account_id):
            accounts.audit_event(s, snap.workspace_id, "linkedin.needs_reauth", "linkedin_account", snap.account_id)
    return _finish(env, snap, claims, "blocked_reauth", draft_status="scheduled",
                   error_code="linkedin_needs_reauth", error_message="Reconnect the LinkedIn account.", **kw)


def post_schedule(env: PostingEnv, workspace_id: uuid.UUID, schedule_id: uuid.UUID, claims: int) -> str:
    """Work one claimed schedule to a recorded outcome; returns the schedule's new status (or ``stale``)."""
    snap = _load(env, workspace_id, schedule_id, claims)
    if snap is None:
        return "stale"
    now = env.now()
    if snap.account_status != "connected":
        return _reauth(env, snap, claims) if snap.account_status == "needs_reauth" else _finish(
            env, snap, claims, "failed", draft_status="failed", error_code="linkedin_account_disconnected")
    if not snap.approval_ok:
        return _finish(env, snap, claims, "failed", draft_status="failed", error_code="approval_missing",
                       error_message="The draft has no approval of its current text.")
    body = build_post_body(snap.member_urn, snap.text)
    fingerprint = request_fingerprint(body)
    reconciling, refreshed = snap.open_attempt, False
    evidence: list[dict[str, Any]] = []
    while True:
        try:
            access = account_token(env, workspace_id, snap.account_id, ACCESS)
        except SecretsError:  # the stored token cannot be read (key gone, row tampered): only a reconnect helps
            return _reauth(env, snap, claims)
        if reconciling and "r_member_social" in snap.scopes:
            found = None
            try:
                posts = env.client.list_posts(access, snap.member_urn)
                found = find_matching_post(body, [p.raw | {"id": p.urn} for p in posts])
                evidence.append({"read": "not_found" if found is None else "found"})
            except LinkedInError as exc:
                evidence.append({"read": exc.code})
            if found:
                return _finish(env, snap, claims, "published", draft_status="published", close_open=True,
                               outcome=Outcome(OutcomeKind.published, post_urn=found, code="reconciled_by_read"))
        if reconciling and snap.reconciliations >= env.settings.linkedin_reconcile_attempts:
            return _finish(env, snap, claims, "needs_review", draft_status=None, error_code="linkedin_outcome_unknown",
                           error_message="LinkedIn may or may not have the post; a person must check.",
                           evidence={"fingerprint": fingerprint, "checks": evidence})
        if snap.cooldown_until and snap.cooldown_until > now:
            return _defer(env, snap, claims, snap.cooldown_until, reason="linkedin_cooldown")
        if _budget_spent(env, snap, now):
            return _defer(env, snap, claims, next_utc_midnight(now), reason="linkedin_daily_budget")
        with env.tenant(workspace_id) as s:  # committed BEFORE the send
            schedule = posting.schedule_of(s, workspace_id, schedule_id)
            attempt_id = posting.begin_attempt(s, schedule, fingerprint=fingerprint, reconciling=reconciling,
                                               api_version=env.settings.linkedin_api_version).id
        if reconciling:
            snap.reconciliations += 1
        observation = env.client.create_post(access, body)
        outcome = classify(observation, ClassifyContext(now=env.now(), reconciling=reconciling,
                                                        refreshed_already=refreshed, backoff_attempt=snap.backoffs))
        evidence.append({"attempt_status": observation.status, "failure": observation.failure, "outcome": outcome.kind})
        done = dict(attempt_id=attempt_id, outcome=outcome, http_status=observation.status, close_open=True)
        kind = outcome.kind
        if kind is OutcomeKind.published:
            return _finish(env, snap, claims, "published", draft_status="published", **done)
        if kind is OutcomeKind.ambiguous:
            with env.tenant(workspace_id) as s:
                posting.finish_attempt(s, attempt_id, "ambiguous", http_status=observation.status,
                                       error_code=outcome.code, message=outcome.message)
            reconciling = True
            continue
        if reconciling and kind is OutcomeKind.failed:
            # LinkedIn refused the identical resend for another reason than DUPLICATE_POST: undecided.
            return _finish(env, snap, claims, "needs_review", draft_status=None, attempt_status="failed",
                           attempt_id=attempt_id, outcome=outcome, http_status=observation.status,
                           error_code="linkedin_outcome_unknown", error_message=outcome.message,
                           evidence={"fingerprint": fingerprint, "checks": evidence})
        if kind is OutcomeKind.retry:  # nothing reached LinkedIn
            return _defer(env, snap, claims, now + RETRY_DELAY, reason=outcome.code, attempt_id=attempt_id,
                          attempt_status="retry", outcome=outcome)
        if kind is OutcomeKind.backoff:
            with env.tenant(workspace_id) as s:
                accounts.set_cooldown(s, workspace_id, snap.account_id, outcome.retry_at)
            return _defer(env, snap, claims, outcome.retry_at, reason=outcome.code, backoff=True,
                          attempt_id=attempt_id, attempt_status="backoff", outcome=outcome,
                          http_status=observation.status)
        if kind is OutcomeKind.refresh:
            with env.tenant(workspace_id) as s:
                posting.finish_attempt(s, attempt_id, "refresh", http_status=observation.status,
                                       error_code=outcome.code)
            result = refresh_account(env, workspace_id, snap.account_id)
            if result == "ok":
                refreshed = True
                continue
            if result == "transient":
                return _defer(env, snap, claims, now + RETRY_DELAY, reason="linkedin_refresh_unavailable")
            return _reauth(env, snap, claims)
        if kind is OutcomeKind.needs_reauth:
            return _reauth(env, snap, claims, attempt_id=attempt_id, attempt_status="needs_reauth", outcome=outcome,
                           http_status=observation.status)
        return _finish(env, snap, claims, "failed", draft_status="failed", error_code=outcome.code,
                       error_message=outcome.message, **done, attempt_status="failed")
