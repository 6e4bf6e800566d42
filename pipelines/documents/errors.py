"""Typed errors of the Document generation product, each with a stable ``code``."""

from __future__ import annotations

import re
from typing import Any

from pipelines.errors import InvalidInput, PayloadTooLarge, PermanentError, RetryableError

# Python reprs that library exceptions put in their messages ("file '<_io.BytesIO object at 0x7f..>'
# is not a Word file", "<class 'int'>", "<zipfile.ZipFile filename=... mode='r'>"): meaningless to a
# user and they leak internals, so every error of this product drops them from its message.
_REPR = re.compile(r"<[^<>\n]{0,300}? at 0x[0-9a-fA-F]+>|<(?:class|function|module|method|bound method|built-in "
                   r"function) [^<>\n]{0,300}>|<[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+(?: [^<>\n]{0,300})?>")


def clean_message(text: str) -> str:
    return _REPR.sub("(internal object)", text)


class _CleanMessage:
    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(clean_message(message) if message else message, **kwargs)  # type: ignore[call-arg]


class TemplateInvalid(_CleanMessage, InvalidInput):
    code = "template_invalid"
    title = "The template is not a valid Word document"


class NotDocx(TemplateInvalid):
    code = "not_docx"
    title = "The upload is not a .docx file"


class ZipBomb(TemplateInvalid):
    code = "zip_bomb"
    title = "The archive expands too much"
    http_status = 413


class MacroEnabled(TemplateInvalid):
    code = "macro_enabled"
    title = "Macro-enabled documents are refused"


class UnsafeZipEntry(TemplateInvalid):
    code = "unsafe_zip_entry"
    title = "The archive holds an unsafe entry name"


class TemplateSyntaxInvalid(TemplateInvalid):
    """Broken template tags; ``extra['errors']`` lists located errors (part, paragraph, message)."""

    code = "template_syntax"
    title = "The template has broken tags"


class MissingFields(_CleanMessage, InvalidInput):
    """Values for required fields are missing; ``extra['missing']`` lists them."""

    code = "missing_fields"
    title = "Required fields are missing"


class MissingColumns(_CleanMessage, InvalidInput):
    """The spreadsheet lacks columns for required fields; ``extra['missing']`` lists them."""

    code = "missing_columns"
    title = "The spreadsheet lacks columns for required fields"


class TabularInvalid(_CleanMessage, InvalidInput):
    code = "tabular_invalid"
    title = "The spreadsheet cannot be read"


class RenderFailed(_CleanMessage, PermanentError):
    code = "render_failed"
    title = "The document could not be filled"


class ConversionFailed(_CleanMessage, PermanentError):
    """The converter refused this document (corrupt input): retrying the same bytes will not help."""

    code = "conversion_failed"
    title = "The document could not be converted to PDF"


class ConversionTimeout(_CleanMessage, RetryableError):
    code = "conversion_timeout"
    title = "The PDF conversion timed out"


class ConverterUnavailable(_CleanMessage, RetryableError):
    code = "converter_unavailable"
    title = "No PDF converter is available on this worker"


__all__ = [
    "clean_message", "ConversionFailed", "ConversionTimeout", "ConverterUnavailable", "MacroEnabled", "MissingColumns",
    "MissingFields", "NotDocx", "PayloadTooLarge", "RenderFailed", "TabularInvalid", "TemplateInvalid",
    "TemplateSyntaxInvalid", "UnsafeZipEntry", "ZipBomb",
]


class XlsxBomb(TabularInvalid):
    code = "xlsx_zip_bomb"
    title = "The XLSX file expands too much"


class TooManyRows(TabularInvalid):
    """More data rows than ``KILN_DOCUMENTS_MAX_ROWS``; ``extra['max_rows']`` is the limit."""

    code = "too_many_rows"
    title = "The spreadsheet has too many rows"


class ParseBudgetExceeded(TabularInvalid):
    """Reading the spreadsheet took longer than its time budget (``KILN_DOCUMENTS_PARSE_SECONDS``)."""

    code = "parse_budget_exceeded"
    title = "The spreadsheet takes too long to read"


class ExternalReference(TemplateInvalid):
    """The template references content outside its package (a URL, a local file); ``extra`` names
    the ``part`` and the (truncated) ``target``."""

    code = "external_reference"
    title = "The template references content outside the document"
