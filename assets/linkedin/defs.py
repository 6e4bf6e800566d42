"""Definitions of the LinkedIn publishing product (merged into pipelines/definitions.py)."""

import dagster as dg

from assets.linkedin.assets import generated_draft, scheduled_post
from sensors.linkedin import (
    generate_draft_dispatch_sensor,
    linkedin_generate_job,
    linkedin_post_job,
    linkedin_scheduler_sensor,
    linkedin_token_refresh_job,
    linkedin_token_refresh_schedule,
)

defs = dg.Definitions(
    assets=[scheduled_post, generated_draft],
    jobs=[linkedin_post_job, linkedin_generate_job, linkedin_token_refresh_job],
    sensors=[linkedin_scheduler_sensor, generate_draft_dispatch_sensor],
    schedules=[linkedin_token_refresh_schedule],
)
