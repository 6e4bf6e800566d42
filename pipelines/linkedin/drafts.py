"""The draft and schedule state machines, as data, and the approval rule.

Draft: ``draft → in_review → approved | rejected``; ``approved → scheduled → publishing →
published | failed``; ``canceled`` from any state before publishing. An edit that changes the
content voids an approval: an edited ``in_review``/``approved``/``scheduled`` draft goes back to
``draft`` (a scheduled one's schedule must be canceled by the caller in the same transaction).

Schedule (one live schedule per draft): ``scheduled → claimed → published | failed | needs_review``;
``claimed → scheduled`` when the send is deferred (429 backoff) and ``claimed → blocked_reauth`` when
the account needs re-authorization; ``needs_review`` is for an outcome Kiln could not decide (never
resent automatically): a person resolves it to ``published`` or ``failed``.

Approval records the SHA-256 of the exact UTF-8 bytes of the approved text (no normalisation: a
change a person could see, or not, is still a change). Only that text may be posted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class DraftStatus(StrEnum):
    draft = "draft"
    in_review = "in_review"
    approved = "approved"
    rejected = "rejected"
    scheduled = "scheduled"
    publishing = "publishing"
    published = "published"
    failed = "failed"
    canceled = "canceled"


class ScheduleStatus(StrEnum):
    scheduled = "scheduled"
    claimed = "claimed"
    blocked_reauth = "blocked_reauth"
    published = "published"
    failed = "failed"
    needs_review = "needs_review"
    canceled = "canceled"
    paused = "paused"


D, S = DraftStatus, ScheduleStatus

DRAFT_TRANSITIONS: dict[DraftStatus, frozenset[DraftStatus]] = {
    D.draft: frozenset({D.in_review, D.canceled}),
    D.in_review: frozenset({D.approved, D.rejected, D.draft, D.canceled}),
    D.approved: frozenset({D.scheduled, D.draft, D.canceled}),
    D.rejected: frozenset({D.draft, D.canceled}),
    # scheduled → approved: unscheduled before the sensor claimed it.
    D.scheduled: frozenset({D.publishing, D.approved, D.draft, D.canceled}),
    # publishing → scheduled: the send was deferred (backoff, re-auth) with nothing sent.
    D.publishing: frozenset({D.published, D.failed, D.scheduled}),
    D.failed: frozenset({D.scheduled, D.canceled}),
    D.published: frozenset(),
    D.canceled: frozenset(),
}

SCHEDULE_TRANSITIONS: dict[ScheduleStatus, frozenset[ScheduleStatus]] = {
    S.scheduled: frozenset({S.claimed, S.canceled, S.paused, S.blocked_reauth}),
    S.claimed: frozenset({S.published, S.failed, S.needs_review, S.scheduled, S.blocked_reauth}),
    S.blocked_reauth: frozenset({S.scheduled, S.canceled, S.failed}),
    S.paused: frozenset({S.scheduled, S.canceled}),
    S.needs_review: frozenset({S.published, S.failed}),
    S.published: frozenset(),
    S.failed: frozenset(),
    S.canceled: frozenset(),
}

DRAFT_TERMINAL = frozenset(s for s, nxt in DRAFT_TRANSITIONS.items() if not nxt)
SCHEDULE_TERMINAL = frozenset(s for s, nxt in SCHEDULE_TRANSITIONS.items() if not nxt)
# States in which the text may be edited (publishing onward the text is what was, or is being, sent).
EDITABLE = frozenset({D.draft, D.in_review, D.approved, D.rejected, D.scheduled})


class IllegalTransition(ValueError):
    """A status change the state machine does not allow. ``code`` is stable for API problems."""

    code = "illegal_transition"

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"A {kind} cannot go from {current} to {target}.")
        self.kind, self.current, self.target = kind, current, target


class ApprovalRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_draft_transition(current: DraftStatus | str, target: DraftStatus | str) -> DraftStatus:
    cur, tgt = DraftStatus(current), DraftStatus(target)
    if tgt not in DRAFT_TRANSITIONS[cur]:
        raise IllegalTransition("draft", cur.value, tgt.value)
    return tgt


def check_schedule_transition(current: ScheduleStatus | str, target: ScheduleStatus | str) -> ScheduleStatus:
    cur, tgt = ScheduleStatus(current), ScheduleStatus(target)
    if tgt not in SCHEDULE_TRANSITIONS[cur]:
        raise IllegalTransition("schedule", cur.value, tgt.value)
    return tgt


def content_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Approval:
    content_sha256: str
    approved_by: str
    approved_at: datetime


@dataclass(frozen=True)
class DraftState:
    """What the rules need to know of a draft (the warehouse row maps onto this)."""

    status: DraftStatus
    text: str
    author_id: str
    approval: Approval | None = None


def approval_holds(draft: DraftState) -> bool:
    """True when the draft carries an approval of exactly its current text."""
    return draft.approval is not None and draft.approval.content_sha256 == content_sha256(draft.text)


def submit(draft: DraftState) -> DraftState:
    return replace(draft, status=check_draft_transition(draft.status, D.in_review))


def approve(
    draft: DraftState,
    *,
    approver_id: str,
    at: datetime,
    expected_sha256: str | None = None,
    allow_self_approval: bool = False,
) -> DraftState:
    """Approve the text as it is now. ``expected_sha256`` (what the approver saw) closes the edit/approve race."""
    check_draft_transition(draft.status, D.approved)
    if approver_id == draft.author_id and not allow_self_approval:
        raise ApprovalRefused("approval_self", "The draft's author cannot approve it in this workspace.")
    current = content_sha256(draft.text)
    if expected_sha256 is not None and expected_sha256 != current:
        raise ApprovalRefused("approval_stale", "The draft changed after it was shown; review the new text.")
    return replace(draft, status=D.approved, approval=Approval(current, approver_id, at))


def reject(draft: DraftState) -> DraftState:
    return replace(draft, status=check_draft_transition(draft.status, D.rejected), approval=None)


def edit(draft: DraftState, new_text: str) -> DraftState:
    """Apply an edit. A change of text voids any approval and sends a reviewed draft back to ``draft``."""
    if draft.status not in EDITABLE:
        raise IllegalTransition("draft", draft.status.value, "edited")
    if new_text == draft.text:
        return draft
    status = draft.status
    if status in (D.in_review, D.approved, D.scheduled, D.rejected):
        status = check_draft_transition(status, D.draft)
    return replace(draft, text=new_text, status=status, approval=None)


def require_postable(draft: DraftState) -> str:
    """The text to post, or ApprovalRefused: checked by the worker right before a send."""
    if not approval_holds(draft):
        raise ApprovalRefused("approval_missing", "The draft has no approval of its current text.")
    return draft.text
