"""Presentation: every figure and every self-contained HTML page (plotly embedded, no CDN, opened offline).

One module per report, each drawn from result objects; nothing here measures anything.
"""

from circuitscope.report.html import Report

__all__ = ["Report"]
