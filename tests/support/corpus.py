"""Where the shared test corpus lives: ``../shared/corpus/public`` beside the checkout.

CI clones the repository into another folder with a copy of ``shared/`` beside it, so the path is
derived from the checkout, never hard-coded; ``KILN_CORPUS_DIR`` overrides it.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLIC = Path(os.environ.get("KILN_CORPUS_DIR") or REPO_ROOT.parent / "shared" / "corpus" / "public")

if not (PUBLIC / "expected.json").is_file():  # a missing corpus is a broken checkout, not a reason to skip
    raise RuntimeError(f"test corpus not found at {PUBLIC}; set KILN_CORPUS_DIR to ../shared/corpus/public")


@cache
def expected() -> dict:
    return json.loads((PUBLIC / "expected.json").read_text())["items"]
