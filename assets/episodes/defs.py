"""Definitions of the Episodes product (merged into pipelines/definitions.py)."""

import dagster as dg

from assets.episodes.animatic import episode_animatic
from assets.episodes.assets import EPISODE_ASSETS
from sensors.episodes import (
    episode_package_job,
    episode_render_dispatch_sensor,
    episode_render_job,
    episodes_dispatch_sensor,
)

defs = dg.Definitions(assets=[*EPISODE_ASSETS, episode_animatic], jobs=[episode_package_job, episode_render_job],
                      sensors=[episodes_dispatch_sensor, episode_render_dispatch_sensor])
