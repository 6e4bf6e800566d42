"""``notes.zip``: Summary.md with the screenshots it links, so its relative ``screenshots/<name>`` links resolve
once unpacked (or in any Markdown viewer that opens the archive's folder)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

from pipelines.video_notes.summary import SCREENSHOT_DIR

_LINK_RE = re.compile(r"\]\(" + re.escape(SCREENSHOT_DIR) + r"/([^)\s]+)\)")


def linked_screenshots(markdown: str) -> list[str]:
    """The screenshot names ``markdown`` links to (``![…](screenshots/<name>)``), in order, once each."""
    return list(dict.fromkeys(_LINK_RE.findall(markdown)))


def write_notes_bundle(out: Path, markdown: str, screenshots: Mapping[str, Path]) -> list[str]:
    """Write the zip to ``out``: ``Summary.md`` plus ``screenshots/<name>`` for each of ``screenshots`` (name ->
    local JPEG). Returns the linked names that have no file (empty when every link resolves)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    with zipfile.ZipFile(partial, "w") as archive:
        archive.writestr("Summary.md", markdown, compress_type=zipfile.ZIP_DEFLATED)
        for name, path in sorted(screenshots.items()):
            # JPEGs do not compress further: stored, streamed from the file in blocks.
            archive.write(path, f"{SCREENSHOT_DIR}/{name}", compress_type=zipfile.ZIP_STORED)
    partial.replace(out)
    return [name for name in linked_screenshots(markdown) if name not in screenshots]
