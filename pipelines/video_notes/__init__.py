"""Video notes: the domain logic of the first Kiln product (plain functions on plain data).

Nothing here imports Dagster, FastAPI or a database session: the assets under ``assets/`` are thin
wrappers that call these functions and record artifacts, lineage and progress.

Stages: :mod:`.probe` -> :mod:`.audio` -> transcription (``resources.transcriber``) -> :mod:`.formats`
-> :mod:`.highlights` -> :mod:`.frames` (screenshots, scene changes) -> :mod:`.clips` -> :mod:`.summary`.
"""
