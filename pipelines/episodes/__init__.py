"""Episodes: domain logic (plain Python; no Dagster, FastAPI or database import).

Groundwork for issue #10: characters pinned as immutable versions, the offline script writer and the
LLM script schema, scene rows, the asset plan (reuse by content hash or generation key), the render
plan, continuity findings, and the deterministic episode package (ZIP). See README.md in this folder.
"""
