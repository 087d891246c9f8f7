"""ScrapeJob end to end on the real control plane: the operator (chart RBAC), Job pods
as local processes, a real Postgres, and the fake Genius/Spotify as its own process
that the pods reach over loopback."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rap_devtools.fake_genius import FakeGeniusServer
from rap_devtools.waiting import wait_for

from analyzer_runtime.ratelimit import max_in_window
from tests.e2e.runs.operator_env import CORPUS, Env

pytestmark = pytest.mark.e2e
JSON = dict[str, Any]
TOKEN = "genius-e2e-token"
SCRAPED = "SELECT count(*) FROM tracks WHERE genius_id >= 5000000"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGeniusServer]:
    with FakeGeniusServer(genius_token=TOKEN) as server:
        yield server


@pytest.fixture
def genius(fake: FakeGeniusServer) -> FakeGeniusServer:
    fake.reset()
    return fake


def secret(env: Env, ns: str, name: str, data: dict[str, str]) -> None:
    body = {"metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}  # fmt: skip
    env.kube.post(f"/api/v1/namespaces/{ns}/secrets", body)


def setup(env: Env, ns: str) -> str:
    url = env.new_database()
    env.db_secret(ns, url)
    secret(env, ns, "genius", {"token": TOKEN})
    return url


def scrapejob(name: str, fake: FakeGeniusServer, artists: list[str] | None, **spec: Any) -> JSON:
    body: JSON = {"genius": {"tokenSecretRef": {"name": "genius", "key": "token"},
                             "apiBaseURL": fake.genius_api},
                  "shards": 4, "parallelism": 4, **spec}  # fmt: skip
    if artists is not None:
        body["artists"] = artists
    return {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "ScrapeJob",
            "metadata": {"name": name}, "spec": body}  # fmt: skip


def path(ns: str, name: str, plural: str = "scrapejobs") -> str:
    return f"/apis/rapanalyzer.io/v1alpha1/namespaces/{ns}/{plural}/{name}"


def status(env: Env, ns: str, name: str, plural: str = "scrapejobs") -> JSON:
    return env.status(ns, name, plural)


def wait_status(
    env: Env, ns: str, name: str, pred: Callable[[JSON], bool], timeout: float = 180,
    plural: str = "scrapejobs",
) -> JSON:  # fmt: skip
    """Env.wait_status, of a ScrapeJob unless `plural` says otherwise."""
    return env.wait_status(ns, name, pred, timeout=timeout, plural=plural)


def phase(p: str) -> Callable[[JSON], bool]:
    return lambda st: st.get("phase") == p


def events(env: Env, ns: str, name: str) -> list[JSON]:
    items = env.kube.get(
        f"/api/v1/namespaces/{ns}/events",
        fieldSelector=f"involvedObject.name={name},involvedObject.kind=ScrapeJob",
    )["items"]
    return sorted(items, key=lambda e: int(e["metadata"]["resourceVersion"]))


def test_20_artists_in_4_shards_then_a_rerun_adds_nothing(
    env: Env, namespace: str, genius: FakeGeniusServer
) -> None:
    url = setup(env, namespace)
    names = genius.catalog.names(20)
    want = genius.catalog.expected(names, 8)
    new: dict[int, Any] = want["new"]
    res = env.apply(namespace, scrapejob("twenty", genius, names, maxSongsPerArtist=8))
    assert res.returncode == 0, res.stderr
    st = wait_status(env, namespace, "twenty", phase("Succeeded"))
    assert st["artists"] == "20/20" and st["progress"] == "20/20 (100.0%)"
    assert (st["total"], st["processed"], st["failed"]) == (20, 20, 0)
    assert (st["songsFound"], st["newTracks"], st["updatedTracks"]) == (
        want["songs_found"],
        len(new),
        0,
    )
    assert (st["duplicatesSkipped"], st["songsSkipped"], st["nonSongs"], st["songFailures"]) == (
        0, want["skipped"], want["non_songs"], 0)  # fmt: skip
    assert st["shards"]["done"] == {"count": 4, "indexes": "0-3"}
    assert env.sql(url, SCRAPED) == len(new)
    assert env.sql(url, "SELECT count(*) FROM tracks") == CORPUS + len(new)
    assert env.sql(url, "SELECT count(DISTINCT genius_id) FROM tracks") == CORPUS + len(new)
    assert env.sql(url, "SELECT count(*) FROM scrape_artists WHERE ambiguous") == 1

    header = env.kubectl("get", "scrapejobs", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "ARTISTS", "TRACKS", "AGE"]
    row = env.kubectl("get", "sj", "twenty", "-n", namespace, "--no-headers").stdout.split()
    assert row[:4] == ["twenty", "Succeeded", "20/20", str(len(new))]
    wait = env.kubectl("wait", "--for=condition=Succeeded", "sj/twenty", "-n", namespace,
                       "--timeout=10s")  # fmt: skip
    assert wait.returncode == 0, wait.stderr
    reasons = [e["reason"] for e in events(env, namespace, "twenty")]
    assert reasons[:2] == ["Planned", "JobCreated"] and reasons[-1] == "Succeeded", reasons
    planned = next(e for e in events(env, namespace, "twenty") if e["reason"] == "Planned")
    assert planned["message"] == "20 artists in 4 shards"

    # The same spec again: every song is already there - no new track, no page fetched.
    genius.reset()
    assert (
        env.apply(namespace, scrapejob("again", genius, names, maxSongsPerArtist=8)).returncode == 0
    )
    st = wait_status(env, namespace, "again", phase("Succeeded"))
    assert (st["newTracks"], st["duplicatesSkipped"], st["songsFound"]) == (
        0, len(new), want["songs_found"])  # fmt: skip
    assert env.sql(url, SCRAPED) == len(new)
    pages = [e for e in genius.log() if e["path"].endswith("-lyrics")]
    assert len(pages) <= want["skipped"]  # only pages that had no lyrics are re-read


def test_sigkill_mid_artist_is_retried_without_duplicates(
    env: Env, namespace: str, genius: FakeGeniusServer
) -> None:
    url = setup(env, namespace)
    names = genius.catalog.names(6)
    want = genius.catalog.expected(names, 10)
    genius.configure(page_latency=0.15)
    m = scrapejob("killed", genius, names, maxSongsPerArtist=10, shards=2, parallelism=2,
                  batchSize=2, concurrency=1, retry={"backoffLimitPerIndex": 2})  # fmt: skip
    assert env.apply(namespace, m).returncode == 0
    uid = env.kube.get(path(namespace, "killed"))["metadata"]["uid"]

    def shard_mid_artist() -> tuple[int] | None:
        # A shard that committed songs of an artist it has not finished.
        shard = env.sql(url, """SELECT min(s.shard) FROM scrape_songs s JOIN run_items i
                                  ON i.run_id = s.run_id AND i.item_id = s.artist_item
                                 WHERE i.state = 'pending'""")  # fmt: skip
        return None if shard is None else (shard,)

    (shard,) = wait_for(shard_mid_artist, timeout=90, what="a shard mid-artist")

    def pid_of_shard() -> int | None:
        for pod in env.pods(namespace, uid):
            idx = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            if int(idx) == shard and pod["status"].get("phase") == "Running":
                return env.cluster.kubelet.pid_of(namespace, pod["metadata"]["name"])
        return None

    os.kill(wait_for(pid_of_shard, timeout=30, what=f"shard {shard}'s process"), signal.SIGKILL)
    genius.configure(page_latency=0.0)
    st = wait_status(env, namespace, "killed", phase("Succeeded"), timeout=240)
    new: dict[int, Any] = want["new"]
    assert (st["newTracks"], st["songsFound"], st["duplicatesSkipped"]) == (
        len(new), want["songs_found"], 0)  # fmt: skip
    assert env.sql(url, SCRAPED) == len(new)
    assert (
        env.sql(url, "SELECT count(*) FROM scrape_songs") == want["songs_found"] + want["non_songs"]
    )
    assert next(s for s in st["shards"]["detail"] if s["index"] == shard)["attempt"] >= 2


def test_429_and_500_bursts_complete_within_the_rate_limit(
    env: Env, namespace: str, genius: FakeGeniusServer
) -> None:
    url = setup(env, namespace)
    names = genius.catalog.names(4)
    want = genius.catalog.expected(names, 5)
    genius.configure(throttle_every=15, fail_every=17, retry_after=1.0)
    rpm = 40
    m = scrapejob("limited", genius, names, maxSongsPerArtist=5, shards=2, parallelism=2,
                  rateLimit={"genius": {"requestsPerMinute": rpm}},
                  retry={"initialBackoffSeconds": 0.5, "maxBackoffSeconds": 2})  # fmt: skip
    assert env.apply(namespace, m).returncode == 0
    # Over a minute by design (more requests than one window allows), and each 429
    # shrinks the run's adaptive share, which grows back slowly (AIMD): 2-3 minutes
    # on a quiet machine, more on a loaded one.
    st = wait_status(env, namespace, "limited", phase("Succeeded"), timeout=480)
    assert (st["newTracks"], st["songFailures"], st["failed"]) == (len(want["new"]), 0, 0)
    assert env.sql(url, SCRAPED) == len(want["new"])
    log = genius.log()
    codes = [e["status"] for e in log]
    assert codes.count(429) >= 2 and codes.count(500) >= 2
    times = [e["t"] for e in log if e["upstream"] == "genius"]
    assert len(times) > rpm  # more requests than one window allows ...
    assert max_in_window(times, 60.0) <= rpm  # ... and never more than R in any minute


def test_artists_from_a_configmap_and_the_chained_analysis(
    env: Env, namespace: str, genius: FakeGeniusServer
) -> None:
    url = setup(env, namespace)
    names = genius.catalog.names(3)
    new = set(genius.catalog.expected(names, 6)["new"])
    env.kube.post(f"/api/v1/namespaces/{namespace}/configmaps",
                  {"metadata": {"name": "roster"},
                   "data": {"artists": "# demo roster\n" + "\n".join(names) + "\n"}})  # fmt: skip
    m = scrapejob("chain", genius, None, maxSongsPerArtist=6, shards=2, parallelism=2,
                  artistsFrom={"configMapKeyRef": {"name": "roster"}},
                  analyze={"analyzer": "algorithmic", "shards": 2})  # fmt: skip
    assert env.apply(namespace, m).returncode == 0
    st = wait_status(env, namespace, "chain", phase("Succeeded"))
    assert st["newTracks"] == len(new) and st["analysisRun"] == "chain-analysis"
    ar = env.kube.get(path(namespace, "chain-analysis", "analysisruns"))
    (owner,) = ar["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("ScrapeJob", "chain")
    assert (
        ar["spec"]["selection"]["scrapeRun"]
        == env.kube.get(path(namespace, "chain"))["metadata"]["uid"]
    )
    ar_st = wait_status(env, namespace, "chain-analysis", phase("Succeeded"), plural="analysisruns")
    assert (ar_st["total"], ar_st["processed"]) == (len(new), len(new))
    analyzed = env.sql(
        url,
        """SELECT array_agg(t.genius_id ORDER BY t.genius_id)
                                 FROM analysis_results r JOIN tracks t ON t.id = r.track_id""",
    )
    assert set(analyzed) == new  # exactly the new tracks, none of the seeded corpus
    assert "AnalysisRunCreated" in [e["reason"] for e in events(env, namespace, "chain")]


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ({}, "set exactly one of spec.artists (a list) or spec.artistsFrom (a ConfigMap)"),
        ({"artists": []}, "spec.artists: Invalid value: 0: spec.artists in body should have at least 1 items"),
        ({"artists": ["A"], "maxSongsPerArtist": 0},
         "spec.maxSongsPerArtist: Invalid value: 0: spec.maxSongsPerArtist in body should be greater than or equal to 1"),
    ],
    ids=["no-artists", "empty-artists", "max-songs-0"],
)  # fmt: skip
def test_api_server_refuses_bad_specs(
    env: Env, namespace: str, fake: FakeGeniusServer, spec: JSON, expect: str
) -> None:
    rest = dict(spec)
    res = env.apply(namespace, scrapejob("bad", fake, rest.pop("artists", None), **rest))
    assert res.returncode != 0
    assert expect in res.stderr, res.stderr


def test_a_missing_secret_or_configmap_keeps_the_job_pending_saying_so(
    env: Env, namespace: str, fake: FakeGeniusServer
) -> None:
    env.db_secret(namespace, env.new_database())
    cases = [
        ("nosecret", scrapejob("nosecret", fake, ["A"]),
         f"Secret {namespace}/genius does not exist"),
        ("nocm", scrapejob("nocm", fake, None, artistsFrom={"configMapKeyRef": {"name": "gone"}}),
         f"spec.artistsFrom: ConfigMap {namespace}/gone does not exist"),
    ]  # fmt: skip
    for name, manifest, message in cases:
        assert env.apply(namespace, manifest).returncode == 0

        def waiting(st: dict[str, Any]) -> bool:
            valid = next((c for c in st.get("conditions") or [] if c["type"] == "Valid"), None)
            return (
                st.get("phase") == "Pending" and bool(valid) and valid["reason"] == "InputMissing"
            )

        st = wait_status(env, namespace, name, waiting, timeout=60)
        valid = next(c for c in st["conditions"] if c["type"] == "Valid")
        assert (valid["status"], valid["message"]) == ("False", message)
        assert "Traceback" not in json.dumps(st)
        warnings = [e for e in events(env, namespace, name) if e["type"] == "Warning"]
        assert any(e["reason"] == "InputMissing" and message in e["message"] for e in warnings)
        uid = env.kube.get(path(namespace, name))["metadata"]["uid"]
        assert env.jobs(namespace, uid) == []
        if name == "nosecret":
            secret(env, namespace, "genius", {"token": TOKEN})  # present for the next case


def test_songs_behind_a_cloudflare_challenge_are_blocked_not_skipped(
    env: Env, namespace: str, genius: FakeGeniusServer
) -> None:
    """Genius's song pages behind Cloudflare's challenge (issue 11): the status and the
    Events say `blocked`; the skipped count stays what the catalog really has."""
    setup(env, namespace)
    names = genius.catalog.names(4)
    want = genius.catalog.expected(names, 6)
    # The 200 "Just a moment..." interstitial: the page that used to pass for a song
    # without lyrics.
    genius.configure(cloudflare="interstitial", cloudflare_every=3)
    try:
        res = env.apply(
            namespace,
            scrapejob("cf", genius, names, maxSongsPerArtist=6, retry={"requestRetries": 1,
                      "initialBackoffSeconds": 0.05}),
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        st = wait_status(env, namespace, "cf", phase("Succeeded"))
    finally:
        genius.configure(cloudflare="off")
    assert st["blocked"] > 0, json.dumps(st, indent=1)
    assert st["songFailures"] >= st["blocked"]
    # Only the catalog's empty and instrumental songs are skipped (some of those were
    # challenged too, and count as blocked).
    assert st["songsSkipped"] <= want["skipped"]
    assert "GeniusBlocked" in [e["reason"] for e in events(env, namespace, "cf")]
