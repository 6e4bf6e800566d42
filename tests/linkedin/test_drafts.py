"""The draft/schedule state machines and the approval rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.linkedin.drafts import (
    DRAFT_TERMINAL,
    DRAFT_TRANSITIONS,
    SCHEDULE_TRANSITIONS,
    ApprovalRefused,
    DraftState,
    DraftStatus,
    IllegalTransition,
    ScheduleStatus,
    approval_holds,
    approve,
    check_draft_transition,
    check_schedule_transition,
    content_sha256,
    edit,
    reject,
    require_postable,
    submit,
)

AT = datetime(2026, 12, 1, tzinfo=UTC)
D, S = DraftStatus, ScheduleStatus


def _approved(text: str = "Hello (world)") -> DraftState:
    return approve(submit(DraftState(D.draft, text, author_id="u-author")), approver_id="u-admin", at=AT)


def test_the_documented_path_and_only_it():
    path = [D.draft, D.in_review, D.approved, D.scheduled, D.publishing, D.published]
    for a, b in zip(path, path[1:]):
        assert check_draft_transition(a, b) is b
    assert check_draft_transition(D.in_review, D.rejected) is D.rejected
    assert check_draft_transition(D.publishing, D.failed) is D.failed
    for status in (D.draft, D.in_review, D.approved, D.rejected, D.scheduled, D.failed):
        assert D.canceled in DRAFT_TRANSITIONS[status]
    assert DRAFT_TERMINAL == {D.published, D.canceled}
    # Every state is reachable from draft, and nothing skips review.
    for illegal in [(D.draft, D.approved), (D.draft, D.scheduled), (D.rejected, D.approved),
                    (D.published, D.publishing), (D.publishing, D.canceled), (D.in_review, D.scheduled)]:
        with pytest.raises(IllegalTransition) as info:
            check_draft_transition(*illegal)
        assert info.value.code == "illegal_transition" and illegal[0].value in str(info.value)


def test_state_tables_are_closed():
    assert set(DRAFT_TRANSITIONS) == set(D)
    assert set(SCHEDULE_TRANSITIONS) == set(S)
    for targets in (*DRAFT_TRANSITIONS.values(), *SCHEDULE_TRANSITIONS.values()):
        assert all(t in D or t in S for t in targets)


def test_schedule_machine_needs_review_is_never_resent():
    assert check_schedule_transition(S.scheduled, S.claimed) is S.claimed
    assert check_schedule_transition(S.claimed, S.needs_review) is S.needs_review
    assert SCHEDULE_TRANSITIONS[S.needs_review] == {S.published, S.failed}  # a person decides; no re-claim
    with pytest.raises(IllegalTransition):
        check_schedule_transition(S.needs_review, S.scheduled)
    with pytest.raises(IllegalTransition):
        check_schedule_transition(S.published, S.claimed)
    assert check_schedule_transition(S.claimed, S.blocked_reauth) is S.blocked_reauth
    assert check_schedule_transition(S.blocked_reauth, S.scheduled) is S.scheduled


def test_approval_records_the_content_hash():
    draft = _approved()
    assert draft.status is D.approved and draft.approval.content_sha256 == content_sha256("Hello (world)")
    assert approval_holds(draft) and require_postable(draft) == "Hello (world)"


@pytest.mark.parametrize("status", [D.approved, D.scheduled])
def test_any_edit_voids_the_approval(status):
    draft = _approved()
    if status is D.scheduled:
        draft = DraftState(D.scheduled, draft.text, draft.author_id, draft.approval)
    edited = edit(draft, "Hello (world)!")
    assert edited.status is D.draft and edited.approval is None and not approval_holds(edited)
    with pytest.raises(ApprovalRefused) as info:
        require_postable(edited)
    assert info.value.code == "approval_missing"
    assert edit(draft, draft.text) is draft  # saving the same text changes nothing


def test_an_approval_of_other_text_does_not_hold():
    draft = _approved()
    tampered = DraftState(D.approved, "Hello (world) and more", draft.author_id, draft.approval)
    assert not approval_holds(tampered)
    with pytest.raises(ApprovalRefused):
        require_postable(tampered)
    # Invisible differences are differences: NFC vs NFD.
    nfc = _approved("café")
    assert not approval_holds(DraftState(D.approved, "cafe\u0301", nfc.author_id, nfc.approval))


def test_approve_refusals():
    in_review = submit(DraftState(D.draft, "text", author_id="u1"))
    with pytest.raises(ApprovalRefused) as own:
        approve(in_review, approver_id="u1", at=AT)
    assert own.value.code == "approval_self"
    assert approve(in_review, approver_id="u1", at=AT, allow_self_approval=True).status is D.approved
    with pytest.raises(ApprovalRefused) as stale:
        approve(in_review, approver_id="u2", at=AT, expected_sha256=content_sha256("what the approver saw"))
    assert stale.value.code == "approval_stale"
    with pytest.raises(IllegalTransition):
        approve(DraftState(D.draft, "text", author_id="u1"), approver_id="u2", at=AT)


def test_reject_then_edit_goes_back_to_draft():
    rejected = reject(submit(DraftState(D.draft, "v1", author_id="u1")))
    assert rejected.status is D.rejected
    assert edit(rejected, "v2").status is D.draft
    with pytest.raises(IllegalTransition):
        edit(DraftState(D.publishing, "v1", author_id="u1"), "v2")
