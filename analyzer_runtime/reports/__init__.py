"""Reports over the stored results (issue 15): the trend report and the LLM agreement
report.

Three layers, each in its own modules:

- SQL I/O (`data.py`): what is read from Postgres, aggregated in SQL where it can be
  (per-group counts and means), sampled deterministically where it cannot (lyrics for
  TF-IDF terms and clustering);
- pure computation on plain rows (`text.py`, `stats.py`, `trends.py`, `agreement.py`):
  the numbers of each report as a JSON-ready dict (what `--json` prints);
- rendering (`charts.py`, `html.py`): one self-contained HTML file, matplotlib PNGs
  embedded as data URIs. matplotlib is optional (the `reports` extra); only these two
  modules import it.
"""

from __future__ import annotations


class ReportError(Exception):
    """A report cannot be made from what is stored (unknown run, no results yet ...):
    the message is one line a person can act on."""
