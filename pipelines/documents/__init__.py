"""Document generation domain logic: DOCX template validation, field detection, rendering,
tabular input (CSV/XLSX), bulk report and ZIP output. Plain functions on plain data: no Dagster,
FastAPI or database imports (the assets and the API call these)."""
