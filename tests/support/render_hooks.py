"""Row renderers for the render-pool tests. A module of their own, importing only the rendering code:
spawned pool workers import a renderer by name, and importing a test module would pull pytest,
Dagster and the API into every worker."""

from __future__ import annotations

import os
from pathlib import Path

from assets.documents.bulk_render import Pending, render_row
from pipelines.documents.render import PreparedTemplate


def crashing_render(template: PreparedTemplate, index: int, row: dict[str, str], out: Path) -> Pending:
    """A row named 'crash' kills its worker, as a segfault or the OOM killer would."""
    if row.get("name") == "crash":
        os._exit(70)
    return render_row(template, index, row, out)


def pid_render(template: PreparedTemplate, index: int, row: dict[str, str], out: Path) -> Pending:
    """The row rendered, with the id of the process that rendered it in its values."""
    pending = render_row(template, index, row, out)
    pending.values = {**row, "pid": str(os.getpid())}
    return pending
