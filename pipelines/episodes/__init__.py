"""Episodes: domain logic (plain Python; no Dagster, FastAPI or database import).

Issue #10: characters pinned as immutable versions, the offline script writer and the
LLM script schema, scene rows, the asset plan (reuse by content hash or generation key), the render
plan, continuity findings, reference-image inspection, and the deterministic episode package (ZIP); the
card is ``product.py``. See README.md in this folder and docs/episodes.md.
"""
