"""The draft-generation engine behind the ``linkedin_generate_draft`` asset (no Dagster here).

Reads the persona's latest version and the pack version a channel points at, writes the text with the
configured language model (the pack's prompts) or, without one, the deterministic offline generator (whose
text says it is offline), and stores a ``draft`` recording both versions. Idempotent per job: a retried run
finds the draft its job already made.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy.orm import Session

from pipelines.errors import PermanentError
from pipelines.linkedin.commentary import validate_commentary
from pipelines.linkedin.packs import Persona, generate_offline_draft, pack_sha256
from pipelines.linkedin.product import GenerateDraftPayload
from warehouse import linkedin as store
from warehouse import linkedin_posting as posting


class ChatModel(Protocol):
    def complete(self, messages: list[dict[str, str]]) -> str: ...


class GenerationInputMissing(PermanentError):
    code = "generation_input_missing"
    title = "The persona or the pack channel no longer exists"


def _persona(content: dict[str, Any], name: str) -> Persona:
    return Persona(name=name, tone=content.get("tone", "clear and friendly"),
                   audience=content.get("audience", "professionals"), topics=tuple(content.get("topics", ())),
                   do=tuple(content.get("do", ())), dont=tuple(content.get("dont", ())),
                   sample_posts=tuple(content.get("sample_posts", ())))


def generate(tenant: Callable[[uuid.UUID], AbstractContextManager[Session]], workspace_id: uuid.UUID,
             job_id: uuid.UUID, raw_payload: dict[str, Any], chat: ChatModel | None = None) -> dict[str, Any]:
    """Make (or find) the job's draft; returns its generation record (ids, versions, generator)."""
    payload = GenerateDraftPayload.model_validate(raw_payload)
    with tenant(workspace_id) as s:
        existing = posting.draft_of_job(s, workspace_id, job_id)
        if existing is not None:
            return {"draft_id": str(existing.id), "reused": True}
        persona_row = store.persona_of(s, workspace_id, payload.persona_id)
        pack_version = store.channel_pack_version(s, workspace_id, payload.pack, payload.channel)
        if persona_row is None or pack_version is None:
            raise GenerationInputMissing("The persona or the config pack channel is gone.")
        persona_version = store.persona_version(s, workspace_id, persona_row.id, persona_row.latest_version)
        persona = _persona(persona_version.content, persona_row.name)
        pack = dict(pack_version.content)
        ids = (persona_version.id, pack_version.id, pack_version.version, persona_version.version)
    text, generator, offline = None, "offline", True
    if chat is not None:
        prompt = pack["user_prompt_template"].replace("{topic}", payload.topic).replace(
            "{persona}", persona.name).replace("{audience}", persona.audience)
        candidate = chat.complete([{"role": "system", "content": pack["system_prompt"]},
                                   {"role": "user", "content": prompt}]).strip()
        if candidate and not validate_commentary(candidate, max_chars=pack["style"]["max_characters"]):
            text, generator, offline = candidate, "llm", False
    if text is None:  # no model, or its text broke the pack's rules: the deterministic draft, marked offline
        text = generate_offline_draft(persona, payload.topic, pack).text
    with tenant(workspace_id) as s:
        draft = posting.create_draft(s, workspace_id=workspace_id, text=text, source="generated", author_id=None,
                                     persona_version_id=ids[0], pack_version_id=ids[1], generation_job_id=job_id,
                                     offline=offline)
        store.audit_event(s, workspace_id, "draft.generated", "draft", draft.id, generator=generator,
                          pack_version=ids[2], persona_version=ids[3])
        draft_id = draft.id
    return {"draft_id": str(draft_id), "generator": generator, "offline": offline, "topic": payload.topic,
            "pack": payload.pack, "channel": payload.channel, "pack_version": ids[2], "pack_sha256": pack_sha256(pack),
            "persona_version": ids[3], "reused": False}
