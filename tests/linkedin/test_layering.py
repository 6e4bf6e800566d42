"""The domain package stays plain Python: importing it loads no Dagster, web framework or ORM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_domain_modules_import_no_framework():
    code = (
        "import sys\n"
        "import pipelines.linkedin.commentary, pipelines.linkedin.drafts, pipelines.linkedin.packs, "
        "pipelines.linkedin.outcomes, resources.secrets_envelope, resources.linkedin_client\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'fastapi', 'sqlalchemy', 'starlette', 'uvicorn'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
