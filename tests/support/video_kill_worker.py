"""A video notes run worker in its own process, for the kill test: ``python -m tests.support.video_kill_worker``.

Executes ``video_notes_job`` in process (as a run worker does) against the database, object directory
and Dagster instance named in the environment; argv[1] is the RunRequest as JSON, argv[2] a file the
transcriber creates once transcription has begun, after which it blocks until the test kills the process.
"""

import json
import sys
import time
from pathlib import Path

import dagster as dg

from assets.video_notes.assets import VIDEO_NOTES_ASSETS
from resources.dagster_resources import DatabaseResource
from resources.llm import LLM
from resources.objectstore_local import LocalObjectStore
from resources.settings import get_settings
from resources.transcriber import Transcriber
from sensors.video_notes import video_notes_job


class HangingTranscriber(Transcriber):
    """Says it has started (touches ``ready_file``) and never finishes: the kill lands mid-transcription."""

    ready_file: str

    def transcribe(self, wav_path, *, on_progress=None):
        Path(self.ready_file).touch()
        while True:
            time.sleep(60)


def main() -> int:
    request = json.loads(sys.argv[1])
    settings = get_settings()
    resources = {"database": DatabaseResource(url=settings.resolved_database_url),
                 "object_store": LocalObjectStore(root=str(settings.resolved_objects_dir)),
                 "transcriber": HangingTranscriber(ready_file=sys.argv[2]),
                 "llm": LLM()}
    defs = dg.Definitions(assets=VIDEO_NOTES_ASSETS, jobs=[video_notes_job], resources=resources)
    instance = dg.DagsterInstance.get()
    result = defs.resolve_job_def(video_notes_job.name).execute_in_process(
        partition_key=request["partition_key"], tags=request["tags"], instance=instance, raise_on_error=False)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
