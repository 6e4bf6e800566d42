"""A generated block inside a hand-written document, between two HTML comment markers.

``docs/architecture.md`` holds two (the schema reference from the models, the products table from the cards);
each generator names its markers and its ``render`` function, and gets ``current_block``, ``write`` and a
``main`` for ``python -m ... [--write]``. The drift tests compare ``current_block`` with ``render()``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


@dataclass(frozen=True)
class GeneratedBlock:
    doc: Path
    begin: str
    end: str
    render: Callable[[], str]

    def current_block(self, text: str | None = None) -> str | None:
        text = self.doc.read_text() if text is None else text
        if self.begin not in text or self.end not in text:
            return None
        return text[text.index(self.begin): text.index(self.end) + len(self.end)]

    def write(self) -> None:
        text = self.doc.read_text()
        old = self.current_block(text)
        if old is None:
            raise SystemExit(f"{self.doc} has no {self.begin} ... {self.end} markers")
        self.doc.write_text(text.replace(old, self.render()))

    def main(self, argv: list[str] | None = None) -> None:
        if "--write" in (sys.argv if argv is None else argv):
            self.write()
        else:
            print(self.render())
