"""Typed errors of the Document generation product, each with a stable ``code``."""

from __future__ import annotations

from pipelines.errors import InvalidInput, PayloadTooLarge, PermanentError, RetryableError


class TemplateInvalid(InvalidInput):
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


class MissingFields(InvalidInput):
    """Values for required fields are missing; ``extra['missing']`` lists them."""

    code = "missing_fields"
    title = "Required fields are missing"


class MissingColumns(InvalidInput):
    """The spreadsheet lacks columns for required fields; ``extra['missing']`` lists them."""

    code = "missing_columns"
    title = "The spreadsheet lacks columns for required fields"


class TabularInvalid(InvalidInput):
    code = "tabular_invalid"
    title = "The spreadsheet cannot be read"


class RenderFailed(PermanentError):
    code = "render_failed"
    title = "The document could not be filled"


class ConversionFailed(PermanentError):
    """The converter refused this document (corrupt input): retrying the same bytes will not help."""

    code = "conversion_failed"
    title = "The document could not be converted to PDF"


class ConversionTimeout(RetryableError):
    code = "conversion_timeout"
    title = "The PDF conversion timed out"


class ConverterUnavailable(RetryableError):
    code = "converter_unavailable"
    title = "No PDF converter is available on this worker"


__all__ = [
    "ConversionFailed", "ConversionTimeout", "ConverterUnavailable", "MacroEnabled", "MissingColumns",
    "MissingFields", "NotDocx", "PayloadTooLarge", "RenderFailed", "TabularInvalid", "TemplateInvalid",
    "TemplateSyntaxInvalid", "UnsafeZipEntry", "ZipBomb",
]


class XlsxBomb(TabularInvalid):
    code = "xlsx_zip_bomb"
    title = "The XLSX file expands too much"


class ExternalReference(TemplateInvalid):
    """The template references content outside its package (a URL, a local file); ``extra`` names
    the ``part`` and the (truncated) ``target``."""

    code = "external_reference"
    title = "The template references content outside the document"
