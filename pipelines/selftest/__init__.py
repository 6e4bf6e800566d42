"""The built-in "selftest" product: a tiny, real consumer that exercises every platform contract."""

from pipelines.selftest.report import KIND, SelftestRequest, build_report, render_report

__all__ = ["KIND", "SelftestRequest", "build_report", "render_report"]
