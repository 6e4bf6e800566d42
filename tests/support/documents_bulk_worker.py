"""A bulk-run worker in its own process, for the crash test: ``python -m tests.support.documents_bulk_worker``.

Executes the bulk-run Dagster job in process (as a run worker does) against the database, object
directory and Dagster instance named in the environment; argv[1] is the RunRequest as JSON.
"""

import json
import sys

import dagster as dg

from assets.documents.assets import bulk_run_outputs
from resources.converter import DocumentConverter
from resources.dagster_resources import DatabaseResource
from resources.objectstore_local import LocalObjectStore
from resources.settings import get_settings
from sensors.documents import bulk_docx_job, bulk_pdf_job


def main() -> int:
    request = json.loads(sys.argv[1])
    settings = get_settings()
    resources = {"database": DatabaseResource(url=settings.resolved_database_url),
                 "object_store": LocalObjectStore(root=str(settings.resolved_objects_dir)),
                 "document_converter": DocumentConverter()}
    defs = dg.Definitions(assets=[bulk_run_outputs], jobs=[bulk_docx_job, bulk_pdf_job], resources=resources)
    instance = dg.DagsterInstance.get()
    result = defs.resolve_job_def(request["job_name"]).execute_in_process(
        partition_key=request["partition_key"], tags=request["tags"], instance=instance, raise_on_error=False)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
