"""Definitions of the Episodes product (merged into pipelines/definitions.py)."""

import dagster as dg

from assets.episodes.assets import EPISODE_ASSETS
from sensors.episodes import episode_package_job, episodes_dispatch_sensor

defs = dg.Definitions(assets=EPISODE_ASSETS, jobs=[episode_package_job], sensors=[episodes_dispatch_sensor])
