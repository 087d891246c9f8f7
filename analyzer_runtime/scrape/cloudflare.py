"""Cloudflare challenge pages: what a request to a Cloudflare-protected site (Genius)
gets instead of the page when Cloudflare decides to challenge it.

Signals, after Cloudflare's documentation "Detect a Challenge Page response"
(https://developers.cloudflare.com/cloudflare-challenges/challenge-types/challenge-pages/detect-response):
every Challenge Page response carries the header `cf-mitigated: challenge` ("challenge
is the only valid value; the header is set for all Challenge Page types"). Without
the header (a proxy dropped it, an older edge) the interstitial itself is recognised:
its title "Just a moment...", the `_cf_chl_opt` / `cf-chl` markers and the scripts
under `/cdn-cgi/challenge-platform/`. On a 403/429/503 any of them marks a
challenge; on a 200 only the interstitial's title or `_cf_chl_opt` count, and only
when the page has no lyrics markup - Cloudflare also injects
`/cdn-cgi/challenge-platform/` scripts into ordinary pages (JavaScript detections).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

# Sent on song-page requests: a current desktop browser's headers. python-httpx's
# default User-Agent is challenged by Cloudflare's bot rules far more often.
BROWSER_HEADERS = {
    "User-Agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/131.0.0.0 Safari/537.36"
    ),
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
}

# Strong markers: only the interstitial has them.
_INTERSTITIAL = ("<title>just a moment...</title>", "_cf_chl_opt", "cf-chl-")
# Weak: also injected into ordinary pages.
_ANY = (*_INTERSTITIAL, "/cdn-cgi/challenge-platform/", "cf-chl")
_LYRICS_MARKUP = ("data-lyrics-container", 'class="lyrics"')
_CHALLENGE_STATUSES = (403, 429, 503)


def is_challenge(status: int, headers: Mapping[str, str], text: str) -> bool:
    """True when the answer is a Cloudflare challenge, not the page asked for."""
    if headers.get("cf-mitigated", "").strip().lower() == "challenge":
        return True
    body = text.lower()
    if status in _CHALLENGE_STATUSES:
        return any(m in body for m in _ANY)
    if 200 <= status < 300:
        return any(m in body for m in _INTERSTITIAL) and not any(m in body for m in _LYRICS_MARKUP)
    return False


def challenged(resp: httpx.Response) -> bool:
    """`is_challenge` of an httpx response (its body is read already)."""
    return is_challenge(resp.status_code, resp.headers, resp.text)
