#!/usr/bin/env bash
# System packages for the Document generation product: LibreOffice (DOCX -> PDF), metric-compatible
# fonts (Carlito ~ Calibri, Caladea ~ Cambria, Liberation ~ Arial/Times/Courier) so Word layouts keep
# their shape, python3-uno (unoserver's server side), poppler-utils (pdftotext, used by tests),
# bubblewrap (bwrap: soffice runs without network and sees only its scratch folder).
# Idempotent: does nothing when soffice and the fonts are already there. Needs root (or sudo).
set -euo pipefail

# The font list is read once into a variable: `fc-list | grep -q` dies of SIGPIPE under pipefail
# when grep stops reading early, which made this check fail (and apt-get run) on every call.
have_fonts() {
  local fonts
  fonts="$(fc-list : family 2>/dev/null)" || return 1
  grep -qi carlito <<<"$fonts" && grep -qi caladea <<<"$fonts" && grep -qi liberation <<<"$fonts"
}

if command -v soffice >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1 && command -v bwrap >/dev/null 2>&1 \
    && have_fonts; then
  echo "system-deps: LibreOffice, fonts, poppler-utils and bubblewrap already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "system-deps: not root and no sudo. Install manually (Debian/Ubuntu):" >&2
    echo "  apt-get install -y --no-install-recommends libreoffice-writer-nogui fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation2 python3-uno poppler-utils bubblewrap" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: apt-get not found. Install LibreOffice (soffice on PATH) and the Carlito, Caladea and Liberation fonts with your package manager." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  libreoffice-writer-nogui fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation2 python3-uno poppler-utils bubblewrap
echo "system-deps: installed LibreOffice $(soffice --version 2>/dev/null | head -1)"
