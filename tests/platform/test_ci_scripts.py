"""The shell scripts under `.ci/` that `make test`, `make run` and `.ci/run` call.

They run here against stand-ins for the system tools on PATH: the real PostgreSQL cluster belongs to
the rest of the suite and must not be restarted, and apt-get must not run from a test.

`.ci/postgres-setup.sh` is eval'ed: its stdout must be exactly the export line. CI once failed with
`Removed: command not found` because pg_ctlcluster prints "Removed stale pid file." on stdout when a
previous cluster left its pid file behind.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "postgres-setup.sh"
SYSTEM_DEPS = ROOT / ".ci" / "system-deps.sh"


def _tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _fake_postgres_tools(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    started = tmp_path / "started"
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("host    all             all             127.0.0.1/32            scram-sha-256\n")
    _tool(bin_dir, "id", 'echo 0\n')
    _tool(bin_dir, "pg_isready", f'[[ -e "{started}" ]]\n')
    # Like the real one: chatter on stdout, and a daemon that outlives it, logs elsewhere and keeps any other
    # inherited descriptor open.
    _tool(
        bin_dir,
        "pg_ctlcluster",
        f'echo "Removed stale pid file."\ntouch "{started}"\n(sleep 30 >/dev/null 2>&1 &)\n',
    )
    _tool(bin_dir, "runuser", f'if [[ "$*" == *"SHOW hba_file"* ]]; then echo "{hba}"; else cat >/dev/null; echo "GRANT ROLE"; fi\n')
    _tool(bin_dir, "psql", "echo 1\n")
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_stdout_is_only_the_export_line_even_when_pg_ctlcluster_talks(tmp_path: Path) -> None:
    env = _fake_postgres_tools(tmp_path)

    # timeout: a daemon holding the stdout pipe would make `$(...)` hang, which is the other way this breaks.
    result = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=20, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["export KILN_TEST_POSTGRES_URL=postgresql://kiln_owner:kiln@127.0.0.1:5432/postgres"]
    assert "Removed stale pid file." in result.stderr


def test_eval_of_its_output_exports_the_url(tmp_path: Path) -> None:
    env = _fake_postgres_tools(tmp_path)

    result = subprocess.run(
        ["bash", "-c", f'set -euo pipefail; out="$({SCRIPT})"; eval "$out"; printf %s "$KILN_TEST_POSTGRES_URL"'],
        env=env, capture_output=True, text=True, timeout=20, check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "postgresql://kiln_owner:kiln@127.0.0.1:5432/postgres"


def _fake_installed_system(tmp_path: Path, *, fonts: list[str]) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt_calls = tmp_path / "apt-calls"
    # Many fonts after the wanted ones, as on a real desktop: more than a pipe buffer of output, so a
    # reader that stops at the first match leaves fc-list to die of SIGPIPE.
    listing = tmp_path / "fonts.txt"
    listing.write_text("".join(f"{name}\n" for name in fonts) + "".join(f"Filler Sans {i}\n" for i in range(20000)))
    _tool(bin_dir, "fc-list", f'cat "{listing}"\n')
    _tool(bin_dir, "soffice", "echo LibreOffice 7.4\n")
    _tool(bin_dir, "pdftotext", "true\n")
    _tool(bin_dir, "id", "echo 0\n")
    _tool(bin_dir, "apt-get", f'echo "$*" >> "{apt_calls}"\n')
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, apt_calls


def test_system_deps_is_a_no_op_when_everything_is_installed(tmp_path: Path) -> None:
    env, apt_calls = _fake_installed_system(tmp_path, fonts=["Carlito", "Caladea", "Liberation Sans"])

    result = subprocess.run(["bash", str(SYSTEM_DEPS)], env=env, capture_output=True, text=True, timeout=20, check=False)

    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout
    assert not apt_calls.exists()


def test_system_deps_installs_when_a_font_is_missing(tmp_path: Path) -> None:
    env, apt_calls = _fake_installed_system(tmp_path, fonts=["Carlito", "Liberation Sans"])

    result = subprocess.run(["bash", str(SYSTEM_DEPS)], env=env, capture_output=True, text=True, timeout=20, check=False)

    assert result.returncode == 0, result.stderr
    calls = apt_calls.read_text().splitlines()
    assert any(c.startswith("install") and "fonts-crosextra-caladea" in c for c in calls), calls
