"""The reports of issue 15 on a real corpus: 300 seeded tracks analyzed by the
algorithmic, emotion and llm analyzers (the fake provider; a second llm run packs 4
tracks per request), then `rap-analyzer report trends` / `report llm` as users run
them: the JSON numbers, the one-line errors, and each HTML rendered by headless
Chromium (tools/install-chromium.sh), its screenshot and its charts not blank."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from rap_devtools.waiting import poll

from analyzer_runtime import worker
from analyzer_runtime.contract import load_manifest
from analyzer_runtime.ledger import planner
from analyzer_runtime.seed import seed
from tests.integration.clirun import cli
from tests.integration.llm.support import fake, fake_server, manifest  # noqa: F401

N = 300
PACKED = 80  # tracks the k=4 run analyzes again
SCREENSHOT_DIR_ENV = "RAP_REPORT_SCREENSHOTS"  # keep the screenshots here (README picture)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run tools/install-chromium.sh (Debian's chromium)")
    return path


def screenshot(html: Path, png: Path, *, within: float = 90.0) -> bytes:
    """Headless Chromium's screenshot of a file; polls for the PNG, no fixed sleep."""
    proc = subprocess.Popen(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={png}", "--window-size=1280,2400", f"file://{html.resolve()}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    sizes = [-1]

    def written() -> bool:
        """The PNG at the same size twice (or chromium gone): done, or never will be."""
        size = png.stat().st_size if png.exists() else -1
        exited = proc.poll() is not None
        done = size > 0 and (size == sizes[-1] or exited)
        sizes.append(size)
        return done or (exited and not png.exists())

    try:
        poll(written, timeout=within, interval=0.2)  # judged below, with chromium's log
    finally:
        if proc.poll() is None:
            proc.terminate()
        log = proc.communicate(timeout=30)[0]
    assert png.exists() and png.stat().st_size > 0, f"chromium wrote no screenshot:\n{log[-2000:]}"
    return png.read_bytes()


def colours(png: bytes) -> tuple[int, float]:
    """(distinct colours, share of pixels that are not near-white) of a PNG."""
    import numpy as np
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.thumbnail((640, 1200))
    px = np.asarray(img).reshape(-1, 3).astype(np.int64)
    distinct = len(np.unique(px[:, 0] * 65536 + px[:, 1] * 256 + px[:, 2]))
    return distinct, float((px.min(axis=1) < 235).mean())


def embedded_pngs(html: str) -> list[bytes]:
    return [
        base64.b64decode(m)
        for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    ]


def assert_self_contained(html: str) -> None:
    assert "<script" not in html
    assert not re.search(r'(src|href)="(?!data:)', html), "a resource outside the file"
    assert "http://" not in html and "https://" not in html


def check_rendering(html_path: Path, tmp_path: Path, charts: int) -> bytes:
    html = html_path.read_text()
    assert_self_contained(html)
    pngs = embedded_pngs(html)
    assert len(pngs) >= charts, f"{len(pngs)} charts in {html_path.name}, expected {charts}"
    for i, png in enumerate(pngs):
        n, inked = colours(png)
        assert n > 30 and inked > 0.03, f"chart {i} of {html_path.name} looks empty ({n} colours)"
    shot = screenshot(html_path, tmp_path / (html_path.stem + ".png"))
    keep = os.environ.get(SCREENSHOT_DIR_ENV)
    if keep:
        (Path(keep) / f"report-{html_path.stem}.png").write_bytes(shot)
    n, inked = colours(shot)
    assert n > 200, f"screenshot of {html_path.name} has {n} colours: blank?"
    assert inked > 0.08, f"screenshot of {html_path.name} is {inked:.0%} inked: blank?"
    return shot


async def run_to_end(pool: asyncpg.Pool, doc: dict[str, Any] | Any, uid: str) -> None:
    m = load_manifest(doc) if isinstance(doc, dict) else doc
    async with pool.acquire() as conn:
        run = (await planner.plan_manifest(conn, m, uid)).run
    await asyncio.gather(*(worker.run_shard(pool, uid, i) for i in range(run.shards)))


def free_run(name: str, analyzer: str) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {"analyzer": analyzer, "shards": 2, "batchSize": 100},
    }


@pytest.fixture
async def corpus(pool: asyncpg.Pool, fake: Any) -> asyncpg.Pool:  # noqa: F811
    await seed(pool, N)
    await run_to_end(pool, free_run("alg", "algorithmic"), "uid-alg")
    await run_to_end(pool, free_run("emo", "emotion"), "uid-emo")
    one = manifest("llm-k1", fake.url, llm={"tracksPerRequest": 1, "concurrency": 8},
                   shards=2, batchSize=50)  # fmt: skip
    await run_to_end(pool, one, "uid-k1")
    # Its own analyzerVersion: the same version would find these tracks done already.
    packed = manifest("llm-k4", fake.url, llm={"tracksPerRequest": 4, "concurrency": 8},
                      shards=1, batchSize=40, selection={"limit": PACKED},
                      analyzerVersion="custom:fake-qwen@p1-k4")  # fmt: skip
    await run_to_end(pool, packed, "uid-k4")
    return pool


async def test_reports_numbers_html_and_chromium(
    corpus: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    # -- trends, as JSON
    r = cli("report", "trends", "--json", db_url=db_url)
    assert r.returncode == 0, r.stderr
    trends = json.loads(r.stdout)
    assert trends["analyzed_tracks"] == {"algorithmic": N, "emotion": N, "llm": N}
    years = [g["group"] for g in trends["groups"]]
    assert years == sorted(years, key=int) and len(years) > 3
    assert sum(g["tracks"] for g in trends["groups"]) == N
    assert all(g["themes_source"] == "llm" and g["themes"] for g in trends["groups"])
    assert trends["theme_matrix"]["themes"]
    cl = trends["clusters"]
    assert cl["source"] == "tfidf" and cl["sample"] == N and cl["k"] >= 2
    assert sum(c["size"] for c in cl["clusters"]) == N
    assert all(c["top_terms"] for c in cl["clusters"])
    by_artist = json.loads(
        cli("report", "trends", "--by", "artist", "--json", db_url=db_url).stdout
    )
    assert by_artist["by"] == "artist" and by_artist["groups"]

    # -- llm, as JSON: the k=1 run, compared with the k=4 run on the packed tracks
    r = cli("report", "llm", "--run", "llm-k1", "--json", db_url=db_url)
    assert r.returncode == 0, r.stderr
    llm = json.loads(r.stdout)
    assert llm["run"]["tracks_per_request"] == 1
    assert llm["outcomes"]["llm_results"] == N and llm["outcomes"]["share_failed"] == 0
    s = llm["sentiment"]
    assert s["tracks"] == N and s["vs_vader_compound"]["spearman"] is not None
    assert sum(sum(row.values()) for row in s["confusion"]["counts"].values()) == N
    assert llm["themes_vs_emotions"]["themes"]
    assert sum(llm["distributions"]["quality"]["counts"]) == N
    assert llm["tokens"]["per_answered_track"] > 0
    (packing,) = llm["packing"]
    assert packing["tracks_per_request"] == {"this": 1, "other": 4}
    assert packing["tracks"] == PACKED
    for key in ("quality_mean_abs_diff", "sentiment_agreement", "theme_jaccard_mean"):
        assert packing[key] is not None, key
    assert packing["tokens_per_track"]["this"] and packing["tokens_per_track"]["other"]

    # -- one-line errors, exit 2
    for args, message in [
        (["--run", "nope"], "no run with uid or name 'nope'"),
        (["--run", "alg"], "is not an llm run"),
    ]:
        r = cli("report", "llm", *args, "--json", db_url=db_url)
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    async with corpus.acquire() as conn:
        m = manifest("llm-later", "http://127.0.0.1:9", llm={"tracksPerRequest": 2})
        await planner.plan_manifest(conn, m, "uid-later")
    r = cli("report", "llm", "--run", "llm-later", db_url=db_url)
    assert r.returncode == 2 and "has no results yet" in r.stderr, r.stderr

    # -- the HTML files, rendered by headless Chromium
    trends_html = tmp_path / "trends.html"
    r = cli("report", "trends", "--out", str(trends_html), db_url=db_url)
    assert r.returncode == 0, r.stderr
    llm_html = tmp_path / "llm.html"
    r = cli("report", "llm", "--run", "llm-k1", "--out", str(llm_html), db_url=db_url)
    assert r.returncode == 0, r.stderr
    check_rendering(trends_html, tmp_path, charts=4)
    check_rendering(llm_html, tmp_path, charts=3)

    # -- with embeddings stored, the clusters are made from them (a sample of 100)
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 384))
    async with corpus.acquire() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM tracks ORDER BY id")]
        await conn.executemany(
            "INSERT INTO track_embeddings (track_id, model, embedding) VALUES ($1, 'test-model', $2)",
            [(i, (centres[i % 3] + 0.1 * rng.normal(size=384)).astype(np.float32)) for i in ids],
        )
    r = cli("report", "trends", "--json", "--sample", "100", "--clusters", "3", db_url=db_url)
    assert r.returncode == 0, r.stderr
    cl = json.loads(r.stdout)["clusters"]
    assert cl["source"] == "embeddings:test-model" and cl["sample"] == 100
    assert cl["population"] == N and cl["k"] == 3
    assert 25 <= min(c["size"] for c in cl["clusters"])  # the three centres, found


async def test_llm_report_counts_fallbacks_and_failures(
    pool: asyncpg.Pool,
    db_url: str,
    tmp_path: Path,
    fake: Any,  # noqa: F811
) -> None:
    await seed(pool, 40)
    await run_to_end(pool, free_run("alg", "algorithmic"), "uid-alg")
    fake.configure(down=True)  # every request fails: the provider is down
    fallback = manifest(
        "llm-fallback", fake.url, shards=1, batchSize=20, fallbackAnalyzer="algorithmic",
        selection={"limit": 20},
    )  # fmt: skip
    await run_to_end(pool, fallback, "uid-fb")
    failing = manifest("llm-failing", fake.url, shards=1, batchSize=20,
                       analyzerVersion="custom:fake-qwen@p1-b")  # fmt: skip
    await run_to_end(pool, failing, "uid-fail")

    r = cli("report", "llm", "--run", "llm-fallback", "--json", db_url=db_url)
    assert r.returncode == 0, r.stderr
    o = json.loads(r.stdout)["outcomes"]
    assert o["fallback_results"] == {"algorithmic": 20} and o["share_fallback"] == 1.0
    assert o["llm_results"] == 0 and o["fallback_used_counter"] == 20

    r = cli("report", "llm", "--run", "uid-fail", "--json", db_url=db_url)  # by uid
    assert r.returncode == 0, r.stderr
    o = json.loads(r.stdout)["outcomes"]
    assert o["share_failed"] == 1.0 and o["states"] == {"failed": 40}
    assert "provider unavailable" in o["failure_reasons"][0]["reason"]
    page = tmp_path / "failing.html"
    r = cli("report", "llm", "--run", "uid-fail", "--out", str(page), db_url=db_url)
    assert r.returncode == 0, r.stderr
    assert "provider unavailable" in page.read_text()
