"""LinkedIn publishing: domain logic (plain Python; no Dagster, FastAPI or database import).

Groundwork for issue #9: commentary escaping and validation, the draft state machine and approval
rule, prompt/config packs, and the classification of ``POST /rest/posts`` outcomes.
"""
