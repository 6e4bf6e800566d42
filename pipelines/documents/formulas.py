"""Whether a spreadsheet cell would run as a formula (CSV / DDE injection), for ``tabular``'s row checks.

Every pattern here runs on cells of up to a MiB (``tabular.MAX_CELL_BYTES``), so none may backtrack.
"""

from __future__ import annotations

import re

# What makes a cell a formula (CSV / DDE injection, see OWASP "CSV Injection"). Excel, LibreOffice and
# Google Sheets evaluate a cell typed as text when it starts with '=', and also with '+', '-' or '@'
# (they insert the '='). The last three also start legitimate values (-Smith, +44 20 7946 0958,
# -12.5, @handle), so for them only the shapes a formula needs count: a function call, a DDE pipe,
# a sheet reference, an operator, or a lone cell reference.
_FORMULA_LEAD_WHITESPACE = " \t\r\n"
# Possessive quantifiers (``*+``, ``++``) and runs anchored at their start keep each match linear in
# the cell's length (the old phone/date and function-call patterns were quadratic: minutes on 1 MiB).
_PLAIN_NUMBER = re.compile(r"[+-]?+\s*+(?:\d++(?:[.,\s]\d++)*+|\d*+[.,]\d++)(?:[eE][+-]?+\d++)?+\s*+%?+")
_PHONE_OR_DATE_PUNCTUATION = frozenset("().-/")  # with digits and spaces: a phone number or a date
# A run of name characters that ends in "(" (SUM(, HYPERLINK(, _xlfn.WEBSERVICE(); it is a call when
# the run holds a letter or "_". Starting only where a run starts keeps ``search`` linear.
_NAME_RUN_CALL = re.compile(r"(?<![\w.])[\w.]++\(")
_NAME_START = re.compile(r"[A-Za-z_]")
_DDE_OR_SHEET_REF = re.compile(r"\||!\s*+\$?[A-Za-z]{1,3}\$?\d")  # cmd|'...'  or  Sheet1!A1 / '...'!A0
_OPERATOR = re.compile(r"[+*^=]")
_CELL_REF = re.compile(r"\$?[A-Za-z]{1,3}\$?\d{1,7}(?::\$?[A-Za-z]{1,3}\$?\d{1,7})?")


def is_formula(value: str) -> bool:
    """Whether a spreadsheet would evaluate ``value`` as a formula (the rule in docs/documents.md).

    After leading spaces, tabs, CR and LF: ``=`` always starts a formula. ``+``, ``-`` or ``@``
    start one when what follows holds a function call (``SUM(``), a DDE pipe (``|``), a sheet
    reference (``!A1``), one of the operators ``+ * ^ =``, or is a lone cell reference (``A1``,
    ``$B$2``, ``A1:B9``) - unless the whole cell is a plain number (``-12.5``, ``+1,234.50``,
    ``-3e+5``, ``-20%``) or digits with phone/date punctuation (``+44 (20) 7946-0958``).
    """
    text = value.lstrip(_FORMULA_LEAD_WHITESPACE)
    if not text:
        return False
    lead, rest = text[0], text[1:]
    if lead == "=":
        return True
    if lead not in "+-@":
        return False
    if _PLAIN_NUMBER.fullmatch(text) or _is_phone_or_date(rest):
        return False
    return bool(_has_function_call(rest) or _DDE_OR_SHEET_REF.search(rest) or _OPERATOR.search(rest)
                or _CELL_REF.fullmatch(rest.strip()))


def _is_phone_or_date(text: str) -> bool:
    """Digits, spaces and ( ) . - / only, with at least one digit (``+44 (20) 7946-0958``)."""
    return any(ch.isdecimal() for ch in text) and all(
        ch.isdecimal() or ch.isspace() or ch in _PHONE_OR_DATE_PUNCTUATION for ch in text)


def _has_function_call(text: str) -> bool:
    return any(_NAME_START.search(m.group()) for m in _NAME_RUN_CALL.finditer(text))
