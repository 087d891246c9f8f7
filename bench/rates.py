"""What the rate benchmarks (llm_rate, scrape_rate) measure from a fake server's
request log: requests per minute over the first `windows` minutes against the budget."""

from __future__ import annotations

from typing import Any

from analyzer_runtime.ratelimit import max_in_window

WINDOW = 60.0


def request_rates(log: list[dict[str, Any]], budget: int, windows: int) -> dict[str, Any]:
    """From log entries with a time `t` and a `status`: the requests, the 429s, and the
    rate achieved in the first `windows` windows (from the first request), per minute
    and over the budget."""
    times = sorted(e["t"] for e in log)
    first = times[0]
    measured = [t for t in times if t < first + windows * WINDOW]
    return {
        "requests": len(log),
        "requests_429": sum(e["status"] == 429 for e in log),
        "achieved_per_min": round(len(measured) / windows, 1),
        "achieved_over_budget": round(len(measured) / (windows * budget), 3),
        # The same without the free first window: windows x budget requests took this long
        # to start (the next request is the first of window windows+1).
        "sustained_over_budget": round(
            windows * budget / ((times[windows * budget] - first) / WINDOW) / budget, 3
        )
        if len(times) > windows * budget
        else None,
        "largest_60s_window": max_in_window(times, WINDOW),
    }
