"""Working files of video jobs on a worker: ``$TMPDIR/kiln-video/<job_id>/`` (the source copy, the WAV, frames, clips).

A folder is removed when its job is done with it (see ``assets/video_notes/support.py``); what a killed worker
or a retry that went elsewhere leaves behind is swept by age (:func:`sweep_scratch`) at the start of later runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Collection
from pathlib import Path

# Older than this without a write, a job folder belongs to no live run: the longest step (transcription) writes
# nothing while it runs, but takes minutes per hour of audio, not a day.
SCRATCH_MAX_AGE_S = 24 * 3600


def scratch_root() -> Path:
    return Path(tempfile.gettempdir()) / "kiln-video"


def remove_scratch(job_id: object, root: Path | None = None) -> None:
    shutil.rmtree((root or scratch_root()) / str(job_id), ignore_errors=True)


def _last_write(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(base, name)).st_mtime)
            except FileNotFoundError:  # removed meanwhile by its own run
                continue
    return newest


def sweep_scratch(root: Path | None = None, *, max_age_s: float = SCRATCH_MAX_AGE_S, now: float | None = None,
                  keep: Collection[str] = ()) -> list[str]:
    """Remove job folders under ``root`` with no write for ``max_age_s``; return their names."""
    root = root or scratch_root()
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return removed
    for folder in entries:
        if folder.name in keep or not folder.is_dir() or folder.is_symlink():
            continue
        try:
            stale = now - _last_write(folder) > max_age_s
        except FileNotFoundError:
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return sorted(removed)
