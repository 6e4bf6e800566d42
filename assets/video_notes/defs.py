"""Definitions of the video notes product (merged into pipelines/definitions.py).

The transcriber and the LLM resources resolve their settings (``KILN_WHISPER_*``, ``KILN_LLM_*``)
at run time, so the embedded defaults (whisper base on CPU, the offline summary) need no config.
"""

import dagster as dg

from assets.video_notes.assets import VIDEO_NOTES_ASSETS
from resources.llm import LLM
from resources.transcriber import Transcriber
from sensors.video_notes import video_notes_dispatch_sensor, video_notes_job

defs = dg.Definitions(
    assets=VIDEO_NOTES_ASSETS,
    jobs=[video_notes_job],
    sensors=[video_notes_dispatch_sensor],
    resources={"transcriber": Transcriber(), "llm": LLM()},
)
