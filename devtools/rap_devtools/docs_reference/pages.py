"""Every generated Reference page: its path under docs/ and its Markdown."""

from __future__ import annotations


def reference_pages() -> dict[str, str]:
    """docs/-relative path -> Markdown, for each page under docs/reference/."""
    return {
        "reference/index.md": "# Reference\n\nGenerated from the code.\n",
        "reference/analysisrun.md": "# AnalysisRun\n",
        "reference/scrapejob.md": "# ScrapeJob\n",
        "reference/cli.md": "# CLI\n",
        "reference/configuration.md": "# Configuration\n",
        "reference/metrics.md": "# Metrics\n",
    }
