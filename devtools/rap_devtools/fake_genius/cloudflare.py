"""The fake Genius's Cloudflare mode: song pages answered with a Challenge Page.

Modelled on Cloudflare's documentation of Challenge Pages - "Detect a Challenge Page
response" (https://developers.cloudflare.com/cloudflare-challenges/challenge-types/challenge-pages/detect-response):
every Challenge Page response carries `cf-mitigated: challenge`; and "Challenge
Pages" / "How Challenges work"
(https://developers.cloudflare.com/cloudflare-challenges/concepts/how-challenges-work):
the interstitial page ("Just a moment...") that loads the challenge from
`/cdn-cgi/challenge-platform/` with its `window._cf_chl_opt` settings. Cloudflare
answers it with 403 (managed challenge), plus `server: cloudflare` and a `cf-ray`.

Modes (FakeConfig.cloudflare):
- "challenge": the 403 + `cf-mitigated: challenge` + interstitial answer;
- "interstitial": a 200 "Just a moment..." page without the header (what a client
  sees behind a proxy that drops it, or an edge that serves the page as 200);
- "bots": the "challenge" answer only to clients whose User-Agent is not a browser's
  (no "Mozilla/"), as Bot Fight Mode does to python-httpx's default.
Which songs: those with `_h("cf", id) % cloudflare_every == 0` (1 = every song page),
deterministic, so a retry of a blocked song is blocked again.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

MODES = ("off", "challenge", "interstitial", "bots")

_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow">
<meta name="viewport" content="width=device-width,initial-scale=1">
</head><body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">genius.com</h1>
<h2 id="challenge-running" class="h2">Verifying you are human. This may take a few seconds.</h2>
<noscript><div class="h2"><span id="challenge-error-text">Enable JavaScript and cookies to
continue</span></div></noscript></div></div>
<script>(function(){{window._cf_chl_opt={{cvId: '3',cZone: "genius.com",cType: 'managed',
cRay: '{ray}',cH: '{h}',cUPMDTk: "/{path}?__cf_chl_tk={h}",cFPWv: 'g',cITimeS: '1733000000'}};
var cpo=document.createElement('script');
cpo.src='/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray={ray}';
document.getElementsByTagName('head')[0].appendChild(cpo);}}());</script>
<div class="footer" role="contentinfo"><div class="footer-inner"><div class="clearfix
diagnostic-wrapper"><div class="ray-id">Ray ID: <code>{ray}</code></div></div>
<div class="text-center" id="footer-text">Performance &amp; security by Cloudflare</div>
</div></div></body></html>"""


def _ray(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:16]


def challenge_page(path: str) -> str:
    ray = _ray(path)
    return _PAGE.format(ray=ray, h=ray * 2, path=path.lstrip("/"))


def answer(mode: str, request: web.Request) -> web.Response | None:
    """The challenge answer for this page request, or None to serve the page."""
    if mode == "bots" and "Mozilla/" in request.headers.get("User-Agent", ""):
        return None
    html = challenge_page(request.path)
    if mode == "interstitial":
        return web.Response(status=200, text=html, content_type="text/html")
    headers = {"cf-mitigated": "challenge", "server": "cloudflare", "cf-ray": f"{_ray(request.path)}-AMS",
               "cache-control": "private, max-age=0, no-store, no-cache, must-revalidate"}  # fmt: skip
    return web.Response(status=403, text=html, content_type="text/html", headers=headers)
