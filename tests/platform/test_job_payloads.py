"""Job payloads go through their card's model both ways: the route builds them with it, the asset reads them
back with it (``JobHandle.params``), and a payload the model refuses fails the job permanently with a typed error."""

from __future__ import annotations

import uuid

import pytest

from assets._job_context import InvalidPayload, JobHandle
from pipelines import products
from pipelines.errors import PermanentError

# One payload per listed kind, as its route writes it (a new kind must add its own).
WRITTEN = {
    "selftest": {"message": "hello", "fail_times": 1},
    "video_notes": {"video_id": str(uuid.UUID(int=1)), "exact_clips": True, "language": "en"},
    "documents_bulk": {"bulk_run_id": str(uuid.UUID(int=2)), "mode": "resume"},
    "linkedin_post": {"schedule_id": str(uuid.UUID(int=3)), "claims": 2, "reclaimed": True},
    "linkedin_generate_draft": {"persona_id": str(uuid.UUID(int=4)), "topic": "launch", "channel": "staging"},
    "episode_package": {"episode_id": str(uuid.UUID(int=5))},
    "episode_render": {"episode_id": str(uuid.UUID(int=6)), "burn_subtitles": True},
}


def _handle(payload: dict) -> JobHandle:
    return JobHandle(database=None, store=None, job_id=uuid.uuid4(), workspace_id=uuid.uuid4(), kind="k", attempt=1,
                     payload=payload, subject_id=None, partition_key=None, run_id="r", asset_key="a")


def test_every_kind_has_a_written_payload_here():
    assert set(WRITTEN) == set(products.all_job_kinds())


@pytest.mark.parametrize("kind", sorted(WRITTEN))
def test_the_card_model_reads_back_what_the_route_wrote(kind):
    model = products.all_job_kinds()[kind].payload_model
    written = model.model_validate(WRITTEN[kind]).model_dump(mode="json")  # what the route stores
    assert _handle(written).params(model) == model.model_validate(WRITTEN[kind])


@pytest.mark.parametrize("kind", sorted(WRITTEN))
def test_a_payload_the_card_model_refuses_fails_the_job_permanently(kind):
    model = products.all_job_kinds()[kind].payload_model
    with pytest.raises(InvalidPayload) as caught:
        _handle({**WRITTEN[kind], "unexpected": 1}).params(model)
    error = caught.value
    assert isinstance(error, PermanentError) and error.code == "invalid_payload" and not error.retryable
    assert "unexpected" in error.message and model.__name__ in error.message and "{" not in error.message
