"""The converter when soffice crashes or skips documents mid-batch, with a stand-in soffice.

The stand-in converts its inputs in order and looks at each input's real name (the converter stages
symlinks): ``crash-in-batch*`` kills soffice only when it shares the call with other documents,
``torn*`` writes half a PDF and then kills it (in a batch), ``crash-always*`` always kills it, and
``bad*`` is skipped with a clean exit, as LibreOffice does with a file it cannot load. Each call is
logged (number of documents, profile) so the tests can see the one-by-one retries and the reset.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipelines.documents.errors import ConversionFailed
from resources.converter import ConversionCrashed, DocumentConverter

FAKE = """#!{python}
import json, os, signal, sys
from pathlib import Path
args = sys.argv[1:]
outdir = Path(args[args.index("--outdir") + 1])
files = args[args.index("--outdir") + 2:]
profile = next(a for a in args if a.startswith("-env:UserInstallation="))
with open(os.environ["FAKE_SOFFICE_LOG"], "a") as log:
    log.write(json.dumps({{"files": [Path(f).read_text() for f in files], "profile": profile}}) + "\\n")
for f in files:
    name = Path(f).read_text()  # the converter stages copies: each stand-in holds its own name
    out = outdir / (Path(f).stem + ".pdf")
    if name.startswith("bad"):
        continue
    if name.startswith("crash-always") or (name.startswith("crash-in-batch") and len(files) > 1):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("torn") and len(files) > 1:
        out.write_bytes(b"%PDF-1.4 half written")
        os.kill(os.getpid(), signal.SIGSEGV)
    out.write_bytes(b"%PDF-1.4\\n1 0 obj <<>> endobj\\ntrailer <<>>\\n%%EOF\\n")
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "soffice"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_SOFFICE_LOG", str(log))
    # The fake runs on the test's Python and logs into tmp_path, which bubblewrap would hide:
    # a network namespace only (the file confinement has its own tests).
    monkeypatch.setattr("resources.converter._sandbox_mode", lambda: "unshare")
    conv = DocumentConverter(soffice_path=str(script), backend="libreoffice", batch_size=25)

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    yield conv, calls
    conv.close()


def docs(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / f"{name}.docx"
        path.write_text(path.name)
        paths.append(path)
    return paths


def test_a_crash_mid_batch_finishes_the_missing_documents_one_by_one_on_a_fresh_profile(fake, tmp_path):
    conv, calls = fake
    paths = docs(tmp_path, "a", "crash-in-batch", "c", "d")
    results = conv.convert_batch(paths)
    assert [r.error for r in results] == [None] * 4
    assert [r.pdf for r in results] == [p.with_suffix(".pdf") for p in paths]
    assert all(r.pdf.read_bytes().rstrip().endswith(b"%%EOF") for r in results)
    log = calls()
    assert [c["files"] for c in log] == [["a.docx", "crash-in-batch.docx", "c.docx", "d.docx"],
                                         ["crash-in-batch.docx"], ["c.docx"], ["d.docx"]]
    assert log[1]["profile"] != log[0]["profile"], "the profile is reset after a crash"


def test_a_pdf_half_written_by_a_crashing_soffice_is_not_kept(fake, tmp_path):
    conv, calls = fake
    results = conv.convert_batch(docs(tmp_path, "torn", "b"))
    assert [r.error for r in results] == [None, None]
    assert results[0].pdf.read_bytes().rstrip().endswith(b"%%EOF"), "converted again, alone"
    assert [c["files"] for c in calls()] == [["torn.docx", "b.docx"], ["torn.docx"], ["b.docx"]]


def test_a_document_that_crashes_soffice_alone_fails_retryable_and_alone(fake, tmp_path):
    conv, _ = fake
    results = conv.convert_batch(docs(tmp_path, "crash-always", "b"))
    assert isinstance(results[0].error, ConversionCrashed)
    assert results[0].error.retryable and results[0].error.code == "conversion_crashed"
    assert results[1].error is None and results[1].pdf.exists()


def test_a_skipped_document_is_retried_alone_then_fails_for_good(fake, tmp_path):
    conv, calls = fake
    results = conv.convert_batch(docs(tmp_path, "a", "bad", "c"))
    assert results[0].error is None and results[2].error is None
    assert isinstance(results[1].error, ConversionFailed) and not results[1].error.retryable
    assert [c["files"] for c in calls()] == [["a.docx", "bad.docx", "c.docx"], ["bad.docx"]]
    assert calls()[1]["profile"] == calls()[0]["profile"], "a clean exit keeps the warm profile"
