"""Confine LibreOffice to its job: no network, no files but the system's and its own scratch.

Templates are refused at upload when they reference anything outside their package
(``pipelines/documents/external_refs.py``); this is the second line, for whatever that check misses
(LibreOffice follows many kinds of links). Three layers:

1. the profile: a fresh ``registrymodifications.xcu`` in every profile turns link updates off
   (Writer ``Content/Update/Link`` = 0, never: sw's ``UpdateLinks`` enum is NEVER, MANUAL, AUTOMATIC),
   blocks links from untrusted documents (``BlockUntrustedRefererLinks``), and disables macros
   (``MacroSecurityLevel`` 3 = very high, ``DisableMacrosExecution``);
2. the process: ``bwrap`` (bubblewrap) gives soffice its own network namespace (only a loopback that
   is down: no request leaves, not even to 127.0.0.1), its own PID namespace, and a filesystem of
   ``/usr``, ``/etc`` and a few system folders read-only, plus the job's scratch folder and profile:
   the object store, other workspaces' files, the code and its settings are not there. Without
   bubblewrap, ``unshare --net`` still takes the network away (files stay readable: residual risk,
   see docs/architecture.md). Neither available (no permission): soffice runs as is, with a warning
   logged once;
3. the environment: cwd and ``TMPDIR`` are the scratch folder, ``HOME`` the profile, and variables
   that may hold secrets (``KILN_*``, ``AWS_*``, ``*TOKEN*``, ``*PASSWORD*``...) are not passed on.

``KILN_CONVERTER_SANDBOX`` = auto (default: the strongest that works here) | bwrap | unshare | off.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from pipelines.documents.errors import ConverterUnavailable

log = logging.getLogger(__name__)

# Values: https://help.libreoffice.org (Tools > Options > Security / Writer > General); sw/inc/linkenum.hxx.
PROFILE_SETTINGS = {
    ("/org.openoffice.Office.Common/Security/Scripting", "MacroSecurityLevel"): ("xs:int", "3"),
    ("/org.openoffice.Office.Common/Security/Scripting", "DisableMacrosExecution"): ("xs:boolean", "true"),
    ("/org.openoffice.Office.Common/Security/Scripting", "BlockUntrustedRefererLinks"): ("xs:boolean", "true"),
    ("/org.openoffice.Office.Writer/Content/Update", "Link"): ("xs:int", "0"),
}
_SECRET_VAR = re.compile(r"^(KILN_|AWS_|PG|DAGSTER_)|SECRET|TOKEN|PASSW|CREDENTIAL|_KEY$|DATABASE", re.IGNORECASE)
_SYSTEM_DIRS = ("/usr", "/etc", "/opt", "/var/cache/fontconfig", "/var/lib/dpkg/alternatives")
_TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def _production() -> bool:
    from resources.settings import get_settings

    return get_settings().env == "production"


def write_profile_settings(profile: Path) -> Path:
    """Write the hardened settings into a fresh LibreOffice profile (read at soffice's start)."""
    items = "\n".join(
        f'<item oor:path="{path}"><prop oor:name="{name}" oor:op="fuse"><value>{value}</value></prop></item>'
        for (path, name), (_type, value) in PROFILE_SETTINGS.items())
    xcu = profile / "user" / "registrymodifications.xcu"
    xcu.parent.mkdir(parents=True, exist_ok=True)
    xcu.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n' + items + "\n</oor:items>\n", encoding="utf-8")
    return xcu


def _probe(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@cache
def effective_mode(requested: str) -> str:
    """The strongest confinement that works here, at most ``requested``; probed once per process."""
    if requested == "off":
        return "off"
    if requested in ("auto", "bwrap") and shutil.which("bwrap") and _probe(
            [*_bwrap_prefix(Path("/"), Path("/"), ()), "--", "true"]):
        return "bwrap"
    if requested in ("auto", "bwrap", "unshare") and shutil.which("unshare") and _probe(["unshare", "--net", "true"]):
        if requested == "bwrap":
            log.warning("bubblewrap is unavailable: LibreOffice runs without network but can read local files")
        return "unshare"
    log.warning("Neither bubblewrap nor unshare works here: LibreOffice runs with network and file access; "
                "templates are still checked for external references at upload")
    return "off"


def kiln_state_dirs() -> list[Path]:
    """Kiln's own state and code: never visible to soffice, even when they lie under a bound system folder
    (Kiln installed under /opt, a site-packages install under /usr, KILN_HOME under /etc...)."""
    from resources.settings import PROJECT_ROOT, get_settings

    settings = get_settings()
    paths = [PROJECT_ROOT, settings.home, settings.resolved_objects_dir, settings.resolved_warehouse_path.parent]
    database = settings.resolved_database_url
    if database.startswith("sqlite:///"):
        paths.append(Path(database.removeprefix("sqlite:///")).parent)
    return [Path(os.path.realpath(p)) for p in paths]


def _masked(system_dirs: Iterable[str], hidden: Iterable[Path]) -> list[str]:
    """The hidden paths that a bound system folder would otherwise expose (each becomes an empty tmpfs)."""
    masked = []
    for path in hidden:
        text = str(path)
        if path.is_dir() and any(text == d or text.startswith(d.rstrip("/") + "/") for d in system_dirs):
            masked.append(text)
    return sorted(dict.fromkeys(masked))


def _bwrap_prefix(scratch: Path, profile: Path, readable: Iterable[Path], hidden: Iterable[Path] = ()) -> list[str]:
    argv = ["bwrap", "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc"]
    for top in _TOP_LINKS:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for folder in _SYSTEM_DIRS:
        argv += ["--ro-bind-try", folder, folder]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in _masked((*_SYSTEM_DIRS, *_TOP_LINKS), hidden):
        argv += ["--tmpfs", path]  # before the scratch and profile binds, which may lie inside
    for path in readable:
        argv += ["--ro-bind", str(path), str(path)]
    for path in dict.fromkeys((str(scratch), str(profile))):
        if path != "/":
            argv += ["--bind", path, path]
    return argv


def confine(command: list[str], *, scratch: Path, profile: Path, mode: str,
            readable: Iterable[Path] = ()) -> tuple[list[str], dict[str, str]]:
    """``(argv, env)`` to run ``command`` confined (run it with ``cwd=scratch``).

    ``readable``: extra folders soffice must read (an executable installed outside ``/usr``).
    """
    env = {k: v for k, v in os.environ.items() if not _SECRET_VAR.search(k)}
    env.update(HOME=str(profile), TMPDIR=str(scratch))
    effective = effective_mode(mode)
    if effective == "off" and mode != "off" and _production():
        # Production fails closed: an unconfined LibreOffice is a choice an operator makes explicitly.
        raise ConverterUnavailable(
            "LibreOffice cannot be confined on this worker (neither bubblewrap nor unshare works): install "
            "bubblewrap or allow user namespaces, or set KILN_CONVERTER_SANDBOX=off to accept the risk.")
    if effective == "bwrap":
        extra = [p for p in readable if not any(str(p).startswith(d + "/") for d in _SYSTEM_DIRS)]
        return [*_bwrap_prefix(scratch, profile, extra, kiln_state_dirs()), "--chdir", str(scratch), "--",
                *command], env
    if effective == "unshare":
        return ["unshare", "--net", "--", *command], env
    return list(command), env
