"""Self-contained HTML reports: plotly embedded, no CDN, opened offline."""

from circuitscope.report.html import Report

__all__ = ["Report"]
