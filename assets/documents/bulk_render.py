"""Rendering the rows of a bulk run: one row (``render_row``) and whole batches on every core.

``BatchRenderer`` renders batches in a process pool sized by ``KILN_DOCUMENTS_RENDER_PROCESSES``
(default: the machine's cores), or in this process when that is 1 or the run is too small to pay
for starting workers. docxtpl rendering is pure Python under the GIL, so threads would not help;
processes do. Each worker receives the prepared template once, through the pool initializer, and
renders it once there so Jinja compiles its parts once per worker (``jinja_env``'s cache), not
per row. Batches come back in submission order; at most ``depth`` batches are in flight (their
rows in memory, their files in the run's scratch folder), so memory stays bounded.

A row whose fill kills its worker (a crash, the OOM killer) must not stop the run: when the pool
breaks, the batches it held are rendered again one row per task on a fresh pool, and a row that
breaks that pool too fails alone (``render_crashed``). Workers exit when the process that owns
them dies (a SIGKILLed run worker leaves no renderers behind).

No Dagster, no database here: workers import only the rendering code. Workers are spawned, so a
*script* that drives ``run_bulk`` must keep its entry point under ``if __name__ == "__main__":``
(multiprocessing imports the main script in each worker; ``python -m dagster``/``pytest`` are fine).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.documents.errors import clean_message
from pipelines.documents.fields import TemplateAnalysis
from pipelines.documents.render import PreparedTemplate, render_docx
from pipelines.documents.tabular import RowError, unescape_literal, validate_row
from pipelines.errors import KilnError

Batch = list[tuple[int, dict[str, str]]]


@dataclass
class Pending:
    """A row rendered in this batch, waiting for conversion and storing."""

    index: int
    values: dict[str, str]
    docx: Path
    pdf: Path | None = None
    error: RowError | None = None
    attempts: int = 1


def typed_values(row: dict[str, str], analysis: TemplateAnalysis) -> dict[str, Any] | RowError:
    """Cells are text ("'=1+1" is the escaped literal "=1+1"); a loop field's cell must hold a JSON
    array (of objects or values). Image fields' cells go to the renderer, which checks them."""
    values: dict[str, Any] = {name: unescape_literal(value) for name, value in row.items()}
    for f in analysis.fields:
        if f.kind == "loop" and f.name in row and row[f.name].strip():
            try:
                parsed = json.loads(row[f.name])
            except (ValueError, RecursionError):  # RecursionError: a cell of 100,000 nested '['
                parsed = None
            if not isinstance(parsed, list):
                return RowError("wrong_type", f"Column {f.name!r} must hold a JSON array for the loop it feeds.")
            values[f.name] = parsed
    return values


def render_row(template: PreparedTemplate, index: int, row: dict[str, str], out: Path) -> Pending:
    """One row's document, or its error: whatever goes wrong with one row fails that row, never the run."""
    pending = Pending(index, row, out)
    try:
        problem = validate_row(row, template.analysis.required_names())
        if problem is None:
            values = typed_values(row, template.analysis)
            if isinstance(values, RowError):
                problem = values
            else:
                render_docx(template, values, str(out), check_required=False)
    except KilnError as exc:
        problem = RowError(exc.code, exc.message)
    except Exception as exc:  # noqa: BLE001 - a row's data must not stop the run (nor retry it for ever)
        problem = RowError("render_failed",
                           clean_message(f"The row could not be filled: {type(exc).__name__}: {exc}")[:2000])
    pending.error = problem
    return pending


RenderRow = Callable[[PreparedTemplate, int, dict[str, str], Path], Pending]
CRASHED = RowError("render_crashed", "Filling this row stopped the process rendering it (it crashed or ran out of "
                                     "memory); the other rows are not affected.")

# --- the pool's worker side -------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(template: PreparedTemplate, render: RenderRow, parent: int) -> None:
    _WORKER.update(template=template, render=render)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="kiln-render-parent").start()
    try:  # compile the template's parts now, once for this worker (the values do not matter)
        render_docx(template, {}, io.BytesIO(), check_required=False)
    except Exception:  # noqa: BLE001, S110 - a template that needs values fails here; rows compile it then
        pass


def _exit_with_parent(parent: int) -> None:
    # A pool worker blocks on its task queue for ever if its owner is SIGKILLed: leave with it.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _render_batch(batch: Batch, scratch: Path) -> list[Pending]:
    render, template = _WORKER["render"], _WORKER["template"]
    return [render(template, index, row, scratch / f"{index:07d}.docx") for index, row in batch]


# --- the owner's side -------------------------------------------------------------------------

def render_processes(setting: int | None, rows: int, batch_size: int) -> int:
    """Workers worth starting: the setting (default: the cores), at most one per batch of the run."""
    wanted = setting or os.cpu_count() or 1
    return max(1, min(wanted, -(-rows // max(batch_size, 1))))


class BatchRenderer:
    """``submit(batch)`` then ``result(ticket)`` in the same order: rendered rows, whatever happened."""

    def __init__(self, template: PreparedTemplate, scratch: Path, processes: int, render: RenderRow = render_row):
        self._template, self._scratch, self._render = template, scratch, render
        self.processes = processes
        self.depth = processes + 1 if processes > 1 else 1  # batches in flight (each a few MB at most)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> BatchRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the owner (a Dagster run worker) has threads whose locks a fork would copy.
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(self._template, self._render, os.getpid()))
        return self._pool

    def submit(self, batch: Batch) -> tuple:
        """Start rendering ``batch``; hand the ticket to ``result``, tickets in submission order."""
        if self.processes <= 1:
            return batch, [self._render(self._template, i, row, self._scratch / f"{i:07d}.docx") for i, row in batch], None
        try:
            pool = self._executor()
            return batch, pool.submit(_render_batch, batch, self._scratch), pool
        except BrokenProcessPool:  # broken since its last result: start a fresh one
            self._discard_pool()
            pool = self._executor()
            return batch, pool.submit(_render_batch, batch, self._scratch), pool

    def result(self, ticket: tuple) -> list[Pending]:
        batch, work, pool = ticket
        if isinstance(work, list):
            return work
        try:
            return work.result()
        except BrokenProcessPool:
            if pool is self._pool:  # (a batch of an older, already replaced pool keeps the fresh one)
                self._discard_pool()
            return self._row_by_row(batch)

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _row_by_row(self, batch: Batch) -> list[Pending]:
        """A batch whose pool broke: each row alone on a fresh pool, so only the culprit fails."""
        out = []
        for index, row in batch:
            try:
                out.extend(self._executor().submit(_render_batch, [(index, row)], self._scratch).result())
            except BrokenProcessPool:
                self._discard_pool()
                out.append(Pending(index, row, self._scratch / f"{index:07d}.docx", error=CRASHED))
        return out
