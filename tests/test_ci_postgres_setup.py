"""`.ci/postgres-setup.sh` is eval'ed by `.ci/run` and `make test`: its stdout must be exactly the export line.

CI once failed with `Removed: command not found` because pg_ctlcluster prints "Removed stale pid file."
on stdout when a previous cluster left its pid file behind. The script runs here against stand-ins for
the PostgreSQL tools on PATH (the real cluster belongs to the rest of the suite and must not be restarted).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "postgres-setup.sh"


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
