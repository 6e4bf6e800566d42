"""Several converters at once: one LibreOffice per core, each with its own profile.

A batch is split into contiguous parts, one per converter, converted concurrently (threads: each
waits on its own soffice process), and the results are joined back in input order. Each
``DocumentConverter`` keeps its own private profile directory (STACK-NOTES: two soffice on one
profile make one fail silently) and its own robustness rules (timeouts, crash isolation, profile
resets), so a part behaves exactly as a batch on a lone converter does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from resources.converter import ConversionResult, DocumentConverter


def converter_count(setting: int | None) -> int:
    """Converters to run: the setting, or one per core."""
    return max(1, setting or os.cpu_count() or 1)


class ConverterPool:
    """``convert_batch`` like ``DocumentConverter``'s, spread over ``size`` converters."""

    def __init__(self, size: int, factory: Callable[[], DocumentConverter] = DocumentConverter) -> None:
        self.converters = [factory() for _ in range(max(1, size))]
        self._threads = ThreadPoolExecutor(max_workers=len(self.converters), thread_name_prefix="kiln-convert")

    @property
    def size(self) -> int:
        return len(self.converters)

    @property
    def batch_size(self) -> int:
        """Documents worth handing over at once: a full batch for every converter."""
        return self.converters[0].batch_size * self.size

    def available(self) -> bool:
        return self.converters[0].available()

    def convert_batch(self, paths: Sequence[str | Path]) -> list[ConversionResult]:
        paths = list(paths)
        parts = _split(paths, self.size)
        if len(parts) <= 1:
            return self.converters[0].convert_batch(paths)
        futures = [self._threads.submit(conv.convert_batch, part) for conv, part in zip(self.converters, parts)]
        return [result for future in futures for result in future.result()]

    def convert_one(self, docx_path: str | Path) -> Path:
        return self.converters[0].convert_one(docx_path)

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        for conv in self.converters:
            conv.close()


def _split(items: list, parts: int) -> list[list]:
    """``items`` in at most ``parts`` contiguous, non-empty parts of near-equal size."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return [part for part in out if part]
