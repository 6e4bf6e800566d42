"""DOCX -> PDF conversion: LibreOffice on Linux, docx2pdf (Microsoft Word) on Windows/macOS.

Choice (see STACK-NOTES "DOCX -> PDF"): LibreOffice is kept warm by *batching*: one
``soffice --convert-to pdf a.docx b.docx ...`` call per batch costs ~0.14 s a document, against
~1.1 s for one call per file; a long-running unoserver is no faster per document (~0.13 s) and
needs a server on Debian's own python3 (the only one with ``uno``), a second process to supervise,
and a port. Batching needs nothing but ``soffice`` and recovers from anything by construction: each
batch is a fresh process, so a hang or crash can't poison the next batch.

Confinement (``converter_sandbox.py``): every fresh profile gets hardened settings (no link updates,
no macros, untrusted links blocked), and soffice runs without network and, under bubblewrap, sees
only its batch's scratch folder (inputs are copied in) and its profile.

Robustness rules:
- every converter instance has its own LibreOffice profile directory (two soffice processes on one
  profile make one fail silently); a lock keeps one conversion per instance at a time;
- each batch has a timeout (base + per document); on timeout the whole process group is killed,
  the profile is wiped (it may be half-written) and the batch is retried one document at a time,
  so one bad document fails alone with a typed error instead of failing or hanging the batch;
- a batch of several documents that ends with some PDFs missing (soffice crashed: non-zero exit,
  or it skipped a document) is finished one document at a time for the missing ones, after a
  fresh profile when soffice crashed; after a crash, PDFs count only when complete (``%%EOF``);
- the profile is recreated after ``restart_after`` conversions, bounding cache growth;
- one document alone: no PDF with a clean exit means LibreOffice could not load it
  (``ConversionFailed``, permanent: the same bytes fail again); no PDF because soffice crashed
  gives ``ConversionCrashed`` (retryable: a crash is as often the process as the document, so the
  caller's bounded per-row retries decide, and a row that keeps crashing fails with that code);
  a timeout gives ``ConversionTimeout`` (retryable); no soffice gives ``ConverterUnavailable``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, PrivateAttr

from pipelines.documents.errors import ConversionFailed, ConversionTimeout, ConverterUnavailable
from pipelines.errors import KilnError, RetryableError
from resources.converter_sandbox import confine, write_profile_settings

INSTALL_HINT = (
    "Install LibreOffice and metric-compatible fonts: `.ci/system-deps.sh`, or on Debian/Ubuntu "
    "`apt-get install libreoffice-writer-nogui fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation2`."
)


class ConversionCrashed(RetryableError):
    code = "conversion_crashed"
    title = "LibreOffice stopped while converting the document"


@dataclass
class ConversionResult:
    source: Path
    pdf: Path | None
    error: KilnError | None = None


class DocumentConverter(BaseModel):
    """Converts DOCX files to PDF. One instance = one LibreOffice profile = one conversion at a time;
    scale out with more workers (a Dagster pool limits how many run at once). A plain class (the API
    uses it without Dagster); runs get one per run from ``resources.dagster_resources.document_converter``."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    backend: str = "auto"  # auto | libreoffice | docx2pdf
    soffice_path: str = "soffice"
    profile_dir: str | None = None  # None: a private temporary directory per instance
    batch_size: int = 25
    timeout_base_s: float = 30.0  # LibreOffice start-up allowance per batch
    timeout_per_document_s: float = 20.0
    restart_after: int = 500  # conversions before the profile is recreated

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _profile: Path | None = PrivateAttr(default=None)
    _conversions: int = PrivateAttr(default=0)

    # --- public API ---------------------------------------------------------------------

    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        if sys.platform in ("win32", "darwin") and importlib.util.find_spec("docx2pdf") is not None:
            return "docx2pdf"
        return "libreoffice"

    def available(self) -> bool:
        if self.resolved_backend() == "docx2pdf":
            return True
        return shutil.which(self.soffice_path) is not None

    def convert_one(self, docx_path: str | Path) -> Path:
        """Convert one file; the PDF lands next to it (same stem). Raises a typed error."""
        result = self.convert_batch([docx_path])[0]
        if result.error is not None:
            raise result.error
        assert result.pdf is not None
        return result.pdf

    def convert_many(self, paths: Sequence[str | Path]) -> list[Path]:
        """Convert many files (batched); raises the first typed error if any file fails."""
        results = self.convert_batch(paths)
        for result in results:
            if result.error is not None:
                raise result.error
        return [r.pdf for r in results if r.pdf is not None]

    def convert_batch(self, paths: Sequence[str | Path]) -> list[ConversionResult]:
        """Convert many files, one result per input (in order): a failure is reported, not raised."""
        sources = [Path(p).resolve() for p in paths]
        if self.resolved_backend() == "docx2pdf":
            return [self._convert_with_word(src) for src in sources]
        if shutil.which(self.soffice_path) is None:
            raise ConverterUnavailable(f"LibreOffice (soffice) is not installed on this worker. {INSTALL_HINT}")
        results: list[ConversionResult] = []
        with self._lock:
            for start in range(0, len(sources), max(self.batch_size, 1)):
                results.extend(self._convert_chunk(sources[start:start + self.batch_size]))
        return results

    def close(self) -> None:
        """Remove a private profile directory (a configured one is kept)."""
        if self._profile is not None and self.profile_dir is None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # --- LibreOffice ----------------------------------------------------------------------

    def _profile_path(self) -> Path:
        if self._profile is None or self._conversions >= self.restart_after:
            self._reset_profile()
        assert self._profile is not None
        return self._profile

    def _reset_profile(self) -> None:
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
        if self.profile_dir:
            self._profile = Path(self.profile_dir)
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile.mkdir(parents=True, exist_ok=True)
        else:
            self._profile = Path(tempfile.mkdtemp(prefix="kiln-lo-profile-"))
        write_profile_settings(self._profile)  # link updates off, macros off (converter_sandbox.py)
        self._conversions = 0

    def _run_soffice(self, staged: list[Path], outdir: Path, timeout: float) -> int:
        """soffice's exit status; raises ``TimeoutExpired`` after killing it."""
        command = [
            self.soffice_path, f"-env:UserInstallation={self._profile_path().as_uri()}",
            "--headless", "--invisible", "--nodefault", "--nolockcheck", "--nologo", "--norestore",
            "--convert-to", "pdf:writer_pdf_Export", "--outdir", str(outdir), *map(str, staged),
        ]
        # No network, no files but its scratch folder and profile (see resources/converter_sandbox.py).
        scratch = outdir.parent
        executable = shutil.which(self.soffice_path)
        argv, env = confine(command, scratch=scratch, profile=self._profile_path(), mode=_sandbox_mode(),
                            readable=[Path(executable).resolve().parent] if executable else [])
        # Own session: on timeout we kill soffice and every helper it forked (oosplash, soffice.bin).
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True, env=env, cwd=scratch)
        try:
            process.communicate(timeout=timeout)
            return process.returncode
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.communicate()
            self._reset_profile()
            raise
        finally:
            self._conversions += len(staged)

    def _convert_chunk(self, sources: list[Path]) -> list[ConversionResult]:
        if not all(src.is_file() for src in sources):
            present = [src for src in sources if src.is_file()]
            done = dict(zip(present, self._convert_chunk(present))) if present else {}
            return [done.get(src) or ConversionResult(src, None, ConversionFailed(f"{src.name} does not exist."))
                    for src in sources]
        with tempfile.TemporaryDirectory(prefix="kiln-lo-batch-") as tmp:
            indir, outdir = Path(tmp, "in"), Path(tmp, "out")
            indir.mkdir()
            outdir.mkdir()
            # Stage copies under unique names (inputs from different folders may share a stem): a
            # confined soffice sees only this folder, not where the sources live.
            staged = []
            for i, src in enumerate(sources):
                link = indir / f"{i:05d}.docx"
                shutil.copyfile(src, link)
                staged.append(link)
            timeout = self.timeout_base_s + self.timeout_per_document_s * len(staged)
            try:
                returncode = self._run_soffice(staged, outdir, timeout)
            except subprocess.TimeoutExpired:
                if len(sources) > 1:
                    # Isolate the document that hangs: the others still convert.
                    return [r for src in sources for r in self._convert_chunk([src])]
                return [ConversionResult(sources[0], None, ConversionTimeout(
                    f"Converting {sources[0].name} took longer than {timeout:.0f} s.", timeout_s=timeout))]
            if returncode != 0:
                self._reset_profile()  # a crashed soffice may leave its profile half-written
            results: list[ConversionResult | None] = []
            for src, link in zip(sources, staged):
                produced = outdir / (link.stem + ".pdf")
                if _complete_pdf(produced, crashed=returncode != 0):
                    target = src.with_suffix(".pdf")
                    shutil.move(str(produced), target)
                    results.append(ConversionResult(src, target))
                else:
                    results.append(None)
        if len(sources) > 1:
            # Whatever the batch left out (a crash ends it early) is done alone, so a document is
            # only judged on its own run, never on a neighbour's.
            return [r if r is not None else self._convert_chunk([src])[0] for src, r in zip(sources, results)]
        if results[0] is not None:
            return [results[0]]
        if returncode != 0:
            return [ConversionResult(sources[0], None, ConversionCrashed(
                f"LibreOffice stopped (exit status {returncode}) while converting {sources[0].name}; "
                "the conversion may succeed when retried.", exit_status=returncode))]
        return [ConversionResult(sources[0], None, ConversionFailed(
            f"LibreOffice could not convert {sources[0].name}: the file is damaged or not a Word document."))]

    # --- Microsoft Word (Windows / macOS) -------------------------------------------------

    def _convert_with_word(self, source: Path) -> ConversionResult:
        try:
            from docx2pdf import convert  # type: ignore[import-not-found]

            target = source.with_suffix(".pdf")
            convert(str(source), str(target))
        except Exception as exc:  # docx2pdf surfaces Word automation errors untyped
            return ConversionResult(source, None, ConversionFailed(f"Word could not convert {source.name}: {exc}"))
        if not target.exists():
            return ConversionResult(source, None, ConversionFailed(f"Word produced no PDF for {source.name}."))
        return ConversionResult(source, target)


def _sandbox_mode() -> str:
    from resources.settings import get_settings

    return get_settings().converter_sandbox


def _complete_pdf(path: Path, *, crashed: bool) -> bool:
    """A usable PDF: non-empty and, when soffice crashed while writing, ending with ``%%EOF``."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size == 0:
        return False
    if not crashed:
        return True
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 1024))
        return b"%%EOF" in fh.read()
