"""The one sanitiser for every file name Kiln writes: ZIP entries, artifact names, Content-Disposition
and report names. It lives in ``pipelines/`` (the bottom layer) so that ``pipelines.documents``,
``resources`` and ``warehouse`` all call this same code.

A safe name has no path separator (nor a look-alike slash), no control, format or bidirectional
character (U+202E turns ``evil\u202etxt.exe`` into what reads as ``evilexe.txt``; U+200B hides a
difference between two names), no line or paragraph separator, none of ``<>:"|?*;%`` (reserved on
Windows, or awkward in a Content-Disposition header), does not start with ``-`` or ``.`` (read as a
command-line option, or hidden), is not a reserved Windows device name (``CON``, ``com1.txt``...),
is at most ``max_bytes`` bytes of UTF-8 (file systems count bytes: 255 on ext4 and NTFS's UTF-16
limit is wider), and is never empty. Sanitising a safe name returns it unchanged.
"""

from __future__ import annotations

import re
import unicodedata

# Dropped outright: invisible characters that only disguise a name. Cf holds the bidi controls
# (U+202A-202E, U+2066-2069, U+200E/F, U+061C) and zero-width characters; Cs/Co/Cn are lone
# surrogates, private-use and unassigned code points (a later Unicode may make them format characters).
_DROPPED_CATEGORIES = frozenset(("Cf", "Cs", "Co", "Cn"))
# Replaced (by ``replacement``): characters that break a name apart or mean something to a file system.
_BREAKING_CATEGORIES = frozenset(("Cc", "Zl", "Zp"))
_UNSAFE = frozenset('<>:"/\\|?*;%' "\u2215\u2044\u29f8\uff0f\uff3c")  # with look-alike slashes
_RESERVED_WINDOWS = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$", "clock$"]
    + [f"{p}{n}" for p in ("com", "lpt") for n in "0123456789\u00b9\u00b2\u00b3"])
DEFAULT_MAX_BYTES = 200
_SPACES = re.compile(" {2,}")
MAX_EXTENSION_CHARS = 16  # a suffix this short is kept when a long name is cut


def _clean_chars(text: str, replacement: str) -> str:
    out: list[str] = []
    substituted = False  # a run of unsafe characters, or of spaces, becomes one replacement / one space
    for ch in unicodedata.normalize("NFC", text):
        category = unicodedata.category(ch)
        if category in _DROPPED_CATEGORIES:
            continue
        if category in _BREAKING_CATEGORIES or ch in _UNSAFE:
            if not (substituted and out and out[-1] == replacement):
                out.append(replacement)
            substituted = True
            continue
        if ch.isspace():
            if out and out[-1] == " ":
                continue
            ch = " "
        substituted = False
        out.append(ch)
    # A dropped run between two spaces ("0 \x00 0" with replacement "") leaves them side by side: one space, so
    # that sanitising a sanitised name changes nothing. NFC again: a dropped character may have split a pair.
    return unicodedata.normalize("NFC", _SPACES.sub(" ", "".join(out)))


def _trim(name: str) -> str:
    # Until stable: " - .rf" must lose its spaces, dashes and dots in any order.
    previous = None
    while previous != name:
        previous, name = name, name.strip(" ").lstrip(".-").rstrip(".")
    return name


def _is_reserved(name: str) -> bool:
    # Windows ignores the extension and trailing spaces: "nul.txt" and "CON .docx" are devices too.
    return name.split(".", 1)[0].rstrip(" ").lower() in _RESERVED_WINDOWS


def _cut(name: str, max_bytes: int) -> str:
    """At most ``max_bytes`` of UTF-8, never splitting a character; a short extension is kept."""
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and stem and len(ext) <= MAX_EXTENSION_CHARS else ""
    keep = name[: len(name) - len(suffix)] if suffix else name
    room = max(max_bytes - len(suffix.encode("utf-8")), 1)
    cut = keep.encode("utf-8")[:room].decode("utf-8", "ignore")
    return _trim(cut) + suffix if _trim(cut) else _trim(name.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))


def safe_name(text: str, *, default: str = "download", replacement: str = "",
              max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """``text`` made into a safe file name (see the module docstring); ``default`` when nothing is left.

    ``replacement`` stands in for each run of separators, control characters and reserved punctuation
    (``""`` drops them). ``default`` must itself be safe.
    """
    name = _trim(_clean_chars(text, replacement))
    name = _cut(name, max_bytes)
    if _is_reserved(name):
        name = _cut("_" + name, max_bytes)
    name = _trim(name)
    return name or default


def safe_basename(path: str, *, default: str = "download", max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The last component of a client-sent path (``../../etc/passwd`` -> ``passwd``), made safe."""
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    return safe_name(base, default=default, max_bytes=max_bytes)
