"""`rap-analyzer report llm` label quality (issue 25), as users run it: an llm run
against the fake provider through the real openai SDK, then the schema-valid rate,
agreement with a reference file (--reference), self-consistency (--consistency, the
run's tracks asked again through the run's own client settings, with the fake
answering like a model sampled at temperature > 0) and a cascade's agreement with
the LLM on tracks it kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from rap_devtools.fake_llm import expected

from analyzer_runtime.seed import seed
from tests.integration.clirun import cli
from tests.integration.llm.support import fake, fake_server, manifest  # noqa: F401
from tests.integration.test_reports import free_run, run_to_end

N = 40
SAMPLE = 12


@pytest.fixture
async def llm_run(pool: asyncpg.Pool, fake: Any) -> dict[str, Any]:  # noqa: F811
    """An llm run over N tracks: one answers valid only after a repair, one never."""
    await seed(pool, N)
    async with pool.acquire() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM tracks ORDER BY id")]
        await conn.execute(
            "UPDATE tracks SET lyrics = lyrics || ' @@MALFORMED_ONCE@@' WHERE id = $1", ids[0]
        )
        await conn.execute(
            "UPDATE tracks SET lyrics = lyrics || ' @@MALFORMED@@' WHERE id = $1", ids[1]
        )
    await run_to_end(pool, free_run("alg", "algorithmic"), "uid-alg")
    m = manifest("llm-q", fake.url, llm={"tracksPerRequest": 1, "concurrency": 4},
                 shards=1, batchSize=20)  # fmt: skip
    await run_to_end(pool, m, "uid-q")
    async with pool.acquire() as conn:
        tracks = [dict(r) for r in await conn.fetch("SELECT * FROM tracks ORDER BY id")]
        version = await conn.fetchval("SELECT model_version FROM runs WHERE uid = 'uid-q'")
    return {"tracks": tracks, "version": version}


def report(db_url: str, *args: str) -> dict[str, Any]:
    r = cli("report", "llm", "--run", "llm-q", "--json", *args, db_url=db_url)
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)["label_quality"]
    return out


async def test_schema_validity_and_reference(
    llm_run: dict[str, Any], db_url: str, tmp_path: Path
) -> None:
    q = report(db_url)
    v = q["schema_validity"]
    # N - 1 answered (one repaired), the @@MALFORMED@@ track never valid.
    assert (v["valid_first_request"], v["valid_after_second_request"], v["never_valid"]) == (
        N - 2, 1, 1,
    )  # fmt: skip
    assert v["share_never"] == round(1 / N, 4)
    assert q["reference"] is None and q["consistency"] is None and q["cascade"] is None

    # A reference set: the fake's own labels, every third flipped to another label;
    # half named by id, half by artist and title (case and spaces differing).
    tracks = llm_run["tracks"][2:]  # the answered ones
    lines, agree, flipped = [], 0, 0
    for i, t in enumerate(tracks):
        label = expected(t)["sentiment"]
        if i % 3 == 0:
            label = "neutral" if label != "neutral" else "positive"
            flipped += 1
        else:
            agree += 1
        themes = ";".join(expected(t)["themes"])
        if i % 2:
            lines.append(f"{t['id']},,,{label},{themes}")
        else:
            lines.append(f',"  {t["artist"].upper()} ","{t["title"]}",{label},{themes}')
    lines.append(",Nobody,No Such Song,positive,")
    ref = tmp_path / "reference.csv"
    ref.write_text("track_id,artist,title,sentiment,themes\n" + "\n".join(lines) + "\n")
    r = report(db_url, "--reference", str(ref))["reference"]
    assert r["rows"] == len(tracks) + 1 and r["unmatched_rows"] == 1
    assert r["with_llm_label"] == len(tracks)
    s = r["sentiment"]
    assert s["n"] == len(tracks) and s["accuracy"] == round(agree / len(tracks), 4)
    assert sum(c["both"] for c in s["per_class"].values()) == agree
    assert 0 < s["kappa"] < s["accuracy"]  # chance agreement taken out
    assert r["themes_jaccard_mean"] == 1.0
    page = tmp_path / "ref.html"
    out = cli("report", "llm", "--run", "llm-q", "--reference", str(ref), "--out", str(page),
              db_url=db_url)  # fmt: skip
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert "Agreement with the reference set" in html and "reference.csv: 1 rows name no" in html

    bad = tmp_path / "bad.csv"
    bad.write_text("track_id,sentiment\n1,ecstatic\n")
    out = cli("report", "llm", "--run", "llm-q", "--json", "--reference", str(bad), db_url=db_url)
    assert out.returncode == 2 and "bad.csv:2" in out.stderr


async def test_consistency_asks_again_through_the_run_settings(
    llm_run: dict[str, Any],
    db_url: str,
    fake: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    fake.reset()
    c = report(db_url, "--consistency", str(SAMPLE), "--repeats", "2")["consistency"]
    assert c["tracks"] == SAMPLE and c["answered_repeats"] == 2 * SAMPLE
    assert c["sentiment_all_match"] == 1.0 and c["themes_jaccard_vs_stored"] == 1.0
    log = fake.log()
    # k = 1: one request per track and repeat (and a repair for @@MALFORMED_ONCE@@).
    assert sum(not e["repair"] for e in log) == 2 * SAMPLE
    assert all(e["body"]["model"] == "fake-qwen" for e in log)
    assert c["tokens"]["prompt"] == sum(e["usage"]["prompt"] for e in log)
    assert c["tokens"]["cost_usd"] > 0

    # A model that answers every repeat differently: nothing matches.
    fake.configure(sentiment_noise=1.0, theme_noise=1.0)
    c = report(db_url, "--consistency", str(SAMPLE), "--repeats", "3")["consistency"]
    assert c["answered_repeats"] == 3 * SAMPLE
    assert c["sentiment_all_match"] == 0.0 and c["sentiment_vs_stored"] == 0.0
    assert c["themes_jaccard_vs_stored"] < 1.0

    # Half the time: in between, and the HTML says what it cost.
    fake.configure(sentiment_noise=0.5, theme_noise=0.0)
    page = tmp_path / "q.html"
    r = cli("report", "llm", "--run", "llm-q", "--consistency", str(SAMPLE), "--out", str(page),
            db_url=db_url)  # fmt: skip
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    assert "Self-consistency" in html and "An extra spend" in html and "schema-valid" in html

    r = cli("report", "llm", "--analyzer", "llm", "--consistency", "3", "--json", db_url=db_url)
    assert r.returncode == 2 and "--consistency goes with --run" in r.stderr


async def test_cascade_agreement_on_kept_tracks(
    llm_run: dict[str, Any], pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    """Rows shaped as the cascade stores them (analysis_data.cascade_for) for four of
    the run's tracks that also have an LLM answer: three agree on sentiment."""
    version = llm_run["version"]
    async with pool.acquire() as conn:
        llm = await conn.fetch(
            """SELECT track_id, sentiment FROM analysis_results
                WHERE analyzer_type = 'llm' AND model_version = $1 ORDER BY track_id LIMIT 4""",
            version,
        )
        for i, r in enumerate(llm):
            label = r["sentiment"] if i else ("mixed" if r["sentiment"] != "mixed" else "neutral")
            await conn.execute(
                """INSERT INTO analysis_results
                       (track_id, analyzer_type, model_version, sentiment, analysis_data)
                   VALUES ($1, 'algorithmic', 'cascade-test', $2, $3)""",
                r["track_id"],
                label,
                json.dumps({"cascade_for": {"analyzer": "llm", "model_version": version,
                                            "confidence": 0.9}}),
            )  # fmt: skip
    k = report(db_url)["cascade"]
    assert k["kept"] == {"algorithmic": 4} and k["tracks"] == 4
    assert k["sentiment_agreement"] == 0.75 and k["llm_versions"] == {version: 4}
    page = tmp_path / "c.html"
    r = cli("report", "llm", "--run", "llm-q", "--out", str(page), db_url=db_url)
    assert r.returncode == 0, r.stderr
    assert "Cascade vs LLM on the tracks it kept" in page.read_text()
