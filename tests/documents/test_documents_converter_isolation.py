"""LibreOffice fetches nothing and reads no file outside its job, even for a template that slipped
past the upload check (the converter is called directly here, validation bypassed).

Each layer is proven on its own (hardened profile; bubblewrap; unshare) and together (the default)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from resources import converter as converter_module
from resources.converter import DocumentConverter
from resources.converter_sandbox import effective_mode
from tests.support.documents_external import external_picture, png

if shutil.which("soffice") is None or shutil.which("pdfimages") is None:
    raise RuntimeError("soffice/pdfimages not found: run .ci/system-deps.sh before these tests")


@pytest.fixture
def server():
    """A loopback HTTP server that serves a PNG and records every request."""
    hits: list[str] = []
    body = png(64, 64, (0, 0, 255))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    srv.shutdown()


@pytest.fixture
def secret():
    """A picture outside the job's scratch folder (standing in for another workspace's object)."""
    folder = Path(__file__).resolve().parents[2] / ".pytest-secret"  # the repository root / str(os.getpid())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shot.png"
    path.write_bytes(png(50, 40, (0, 255, 0)))
    yield path
    shutil.rmtree(folder, ignore_errors=True)


def images_in(pdf: Path) -> list[str]:
    listing = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    return listing.splitlines()[2:]


def convert_both(tmp_path: Path, target: str) -> list[Path]:
    """A linked (r:link) and an embedded-by-external-rel (r:embed) picture of ``target``, converted."""
    paths = []
    for attribute in ("r:link", "r:embed"):
        path = tmp_path / f"{attribute[2:]}.docx"
        path.write_bytes(external_picture(target, attribute))
        paths.append(path)
    conv = DocumentConverter()
    try:
        results = conv.convert_batch(paths)
    finally:
        conv.close()
    assert [r.error for r in results] == [None, None]
    return [r.pdf for r in results]


def layers(monkeypatch, *, mode: str, profile: bool) -> None:
    monkeypatch.setattr(converter_module, "_sandbox_mode", lambda: mode)
    if not profile:
        monkeypatch.setattr(converter_module, "write_profile_settings", lambda path: None)


def test_bubblewrap_is_used_where_it_works():
    # CI installs bubblewrap (.ci/system-deps.sh); there the default confinement must be the full one.
    assert effective_mode("auto") == "bwrap"


@pytest.mark.parametrize("mode,profile", [("auto", True), ("off", True), ("bwrap", False), ("unshare", False)],
                         ids=["default", "profile-only", "bwrap-only", "unshare-only"])
def test_no_request_leaves_for_a_linked_picture(monkeypatch, tmp_path, server, mode, profile):
    layers(monkeypatch, mode=mode, profile=profile)
    url, hits = server
    pdfs = convert_both(tmp_path, f"{url}/x.png")
    assert hits == []
    assert all(images_in(pdf) == [] for pdf in pdfs)


@pytest.mark.parametrize("mode,profile", [("auto", True), ("off", True), ("bwrap", False)],
                         ids=["default", "profile-only", "bwrap-only"])
def test_a_local_file_outside_scratch_is_not_embedded(monkeypatch, tmp_path, secret, mode, profile):
    layers(monkeypatch, mode=mode, profile=profile)
    pdfs = convert_both(tmp_path, secret.as_uri())
    assert all(images_in(pdf) == [] for pdf in pdfs)


def test_without_any_layer_the_attack_works(monkeypatch, tmp_path, server, secret):
    """The control: proves the tests above would catch a missing layer (LibreOffice does fetch)."""
    layers(monkeypatch, mode="off", profile=False)
    url, hits = server
    convert_both(tmp_path, f"{url}/x.png")
    assert hits, "unconfined LibreOffice fetched the linked picture"
    linked = convert_both(tmp_path, secret.as_uri())[0]
    assert images_in(linked), "unconfined LibreOffice embedded the local file"


FAKE = """#!/bin/sh
# Reports what soffice would see: its cwd, TMPDIR, HOME, environment and whether the secret is visible.
while [ "$1" != "--outdir" ]; do shift; done
outdir="$2"; shift 2
for f in "$@"; do
  out="$outdir/$(basename "$f" .docx).pdf"
  { echo "cwd=$(pwd)"; echo "tmpdir=$TMPDIR"; echo "home=$HOME"; env | grep -c '^KILN_' | sed 's/^/kiln_vars=/';
    if [ -e "$PROBE_FILE" ]; then echo secret=visible; else echo secret=hidden; fi;
    if [ -e "$SOURCE_PATH" ]; then echo source=visible; else echo source=hidden; fi; } > "$out"
done
"""


def what_fake_soffice_sees(monkeypatch, tmp_path, probe: Path) -> tuple[dict[str, str], Path]:
    """Run FAKE as soffice under bubblewrap; answers what it reported and the converter's profile."""
    layers(monkeypatch, mode="bwrap", profile=True)
    script = tmp_path / "bin" / "soffice"
    script.parent.mkdir()
    script.write_text(FAKE)
    script.chmod(0o755)
    source = tmp_path / "in" / "doc.docx"
    source.parent.mkdir()
    source.write_bytes(b"stand-in")
    monkeypatch.setenv("PROBE_FILE", str(probe))
    monkeypatch.setenv("SOURCE_PATH", str(source))
    conv = DocumentConverter(soffice_path=str(script))
    try:
        pdf = conv.convert_one(source)
        profile = conv._profile
    finally:
        conv.close()
    return dict(line.split("=", 1) for line in pdf.read_text().splitlines()), profile


def test_soffice_sees_only_its_scratch_folder_and_no_secrets(monkeypatch, tmp_path, secret):
    monkeypatch.setenv("KILN_DATABASE_URL", "postgresql://user:password@db/kiln")
    seen, profile = what_fake_soffice_sees(monkeypatch, tmp_path, secret)
    assert seen["secret"] == "hidden" and seen["source"] == "hidden"
    assert seen["kiln_vars"] == "0"
    assert seen["cwd"] == seen["tmpdir"] and Path(seen["cwd"]).name.startswith("kiln-lo-batch-")
    assert seen["home"] == str(profile)


def test_every_fresh_profile_is_hardened(tmp_path):
    conv = DocumentConverter(profile_dir=str(tmp_path / "profile"))
    try:
        xcu = (conv._profile_path() / "user" / "registrymodifications.xcu").read_text()
    finally:
        conv.close()
    assert '<item oor:path="/org.openoffice.Office.Writer/Content/Update"><prop oor:name="Link" oor:op="fuse">' \
           "<value>0</value>" in xcu
    for name in ("BlockUntrustedRefererLinks", "DisableMacrosExecution"):
        assert f'<prop oor:name="{name}" oor:op="fuse"><value>true</value>' in xcu


def test_kiln_state_under_a_bound_system_folder_stays_hidden(monkeypatch, tmp_path):
    """Kiln installed under /opt (bound read-only for soffice) must not expose its objects or database."""
    import resources.converter_sandbox as sandbox

    state = Path(f"/opt/kiln-isolation-test-{os.getpid()}")
    (state / "objects").mkdir(parents=True, exist_ok=True)
    secret = state / "objects" / "other-workspace.jpg"
    secret.write_bytes(png(4, 4))
    try:
        monkeypatch.setattr(sandbox, "kiln_state_dirs", lambda: [state])
        seen, _ = what_fake_soffice_sees(monkeypatch, tmp_path, secret)
        assert seen["secret"] == "hidden"
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_production_refuses_an_unconfined_libreoffice_unless_turned_off_explicitly(monkeypatch, tmp_path):
    import resources.converter_sandbox as sandbox
    from pipelines.documents.errors import ConverterUnavailable

    monkeypatch.setattr(sandbox, "effective_mode", lambda requested: "off")
    monkeypatch.setattr(sandbox, "_production", lambda: True)
    with pytest.raises(ConverterUnavailable) as refused:
        sandbox.confine(["soffice"], scratch=tmp_path, profile=tmp_path, mode="auto")
    assert "KILN_CONVERTER_SANDBOX=off" in str(refused.value)
    argv, _ = sandbox.confine(["soffice"], scratch=tmp_path, profile=tmp_path, mode="off")  # the operator's choice
    assert argv == ["soffice"]
    monkeypatch.setattr(sandbox, "_production", lambda: False)
    assert sandbox.confine(["soffice"], scratch=tmp_path, profile=tmp_path, mode="auto")[0] == ["soffice"]
