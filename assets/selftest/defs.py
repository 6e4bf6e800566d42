"""Definitions of the built-in selftest consumer (merged into pipelines/definitions.py)."""

import dagster as dg

from assets.selftest.assets import selftest_report
from sensors.selftest import selftest_dispatch_sensor, selftest_job

defs = dg.Definitions(assets=[selftest_report], jobs=[selftest_job], sensors=[selftest_dispatch_sensor])
