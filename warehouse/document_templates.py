"""Templates, their immutable versions and analysed fields: the SQL behind ``api/routes/templates.py``.

This module owns ``template.latest_version`` (a new version takes the next number). Every lookup is scoped by
workspace; a foreign id finds nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from warehouse.db import utcnow
from warehouse.documents import Template, TemplateField, TemplateVersion
from warehouse.models import Artifact


def template_by_id(session: Session, workspace_id: uuid.UUID, template_id: uuid.UUID) -> Template | None:
    return session.scalar(select(Template).where(Template.workspace_id == workspace_id, Template.id == template_id))


def templates_query(workspace_id: uuid.UUID) -> Select:
    return select(Template).where(Template.workspace_id == workspace_id)


def version_by_number(session: Session, template: Template, number: int) -> TemplateVersion | None:
    return session.scalar(select(TemplateVersion).where(
        TemplateVersion.workspace_id == template.workspace_id, TemplateVersion.template_id == template.id,
        TemplateVersion.version == number))


def version_by_sha256(session: Session, template: Template, sha256: str) -> TemplateVersion | None:
    return session.scalar(select(TemplateVersion).where(
        TemplateVersion.workspace_id == template.workspace_id, TemplateVersion.template_id == template.id,
        TemplateVersion.content_sha256 == sha256))


def fields_by_version(session: Session, workspace_id: uuid.UUID,
                      version_ids: set[uuid.UUID]) -> dict[uuid.UUID, list[TemplateField]]:
    """Each version's fields in template order, in one query."""
    by_version: dict[uuid.UUID, list[TemplateField]] = {v: [] for v in version_ids}
    if version_ids:
        for f in session.scalars(select(TemplateField).where(
                TemplateField.workspace_id == workspace_id, TemplateField.template_version_id.in_(version_ids)
        ).order_by(TemplateField.template_version_id, TemplateField.position)):
            by_version[f.template_version_id].append(f)
    return by_version


def latest_versions(session: Session, workspace_id: uuid.UUID,
                    template_ids: set[uuid.UUID]) -> dict[uuid.UUID, TemplateVersion]:
    """Template id -> its latest version, in one query."""
    if not template_ids:
        return {}
    rows = session.scalars(select(TemplateVersion).join(Template, (Template.workspace_id == TemplateVersion
                           .workspace_id) & (Template.id == TemplateVersion.template_id)).where(
        TemplateVersion.workspace_id == workspace_id, TemplateVersion.template_id.in_(template_ids),
        TemplateVersion.version == Template.latest_version))
    return {v.template_id: v for v in rows}


def add_template(session: Session, template: Template) -> None:
    session.add(template)
    session.flush()


def insert_version(session: Session, template: Template, source: Artifact, *, syntax: str, status: str,
                   errors: list[dict[str, Any]], fields: list[dict[str, Any]], user_id: uuid.UUID) -> TemplateVersion:
    """Store the next version of ``template`` (its source artifact, the version row, its fields).

    Two uploads at once both read the same ``latest_version``: the loser hits the unique version number, so
    callers run this in a savepoint and retry after re-reading the template.
    """
    session.add(source)
    session.flush()  # no ORM relationships: flush parents before the rows that reference them
    template.latest_version = (template.latest_version or 0) + 1
    version = TemplateVersion(
        workspace_id=template.workspace_id, template_id=template.id, version=template.latest_version,
        content_sha256=source.sha256, artifact_id=source.id, size_bytes=source.size_bytes, filename=source.filename,
        syntax=syntax, status=status, errors=errors, created_by=user_id, created_at=utcnow())
    session.add(version)
    session.flush()
    for position, f in enumerate(fields):
        session.add(TemplateField(workspace_id=template.workspace_id, template_version_id=version.id,
                                  position=position, **f))
    template.updated_at = utcnow()
    session.flush()
    return version
