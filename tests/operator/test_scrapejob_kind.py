"""The ScrapeJob kind's pure parts: its Job, validation, refused changes, the chained
AnalysisRun - and that both kinds go through the same Job builder."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rap_operator import kinds, manifests
from rap_operator.config import OperatorConfig
from rap_operator.kinds.scrapejob import (
    SCRAPE,
    analysis_name,
    chained_analysis,
    check_scrape_spec,
    note_events,
)
from rap_operator.validation import InvalidRun

from analyzer_runtime.contract.scrape_status import (
    AUDIO_FEATURES_OFF,
    GENIUS_BLOCKED,
    SPOTIFY_UNAVAILABLE,
    Note,
)

UID = "5c1d8a1e-0000-4a7e-9d43-2f1e7f0e9a11"
GENIUS = {"tokenSecretRef": {"name": "genius", "key": "token"}}


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "ScrapeJob",
        "metadata": {"name": "scrape", "namespace": "rap", "uid": UID, "generation": 1,
                     "resourceVersion": "9", "managedFields": [{"manager": "kubectl"}]},
        "spec": {"artists": ["A", "B", "C"], "genius": GENIUS, "shards": 3,
                 "parallelism": 2, **spec},
    }  # fmt: skip


def test_both_kinds_are_registered_with_their_subcommands() -> None:
    reg = kinds.registry()
    assert {k: v.subcommand for k, v in reg.items()} == {
        "AnalysisRun": "analyze",
        "ScrapeJob": "scrape",
    }
    assert kinds.of(body()) is SCRAPE


def test_scrapejob_job_runs_scrape_with_credentials_from_secrets() -> None:
    spotify = {
        "clientIdSecretRef": {"name": "sp", "key": "id"},
        "clientSecretSecretRef": {"name": "sp", "key": "secret"},
    }
    job = manifests.kind_job(body(spotify=spotify), OperatorConfig(image="img:1"), SCRAPE)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 2)
    (c,) = spec["template"]["spec"]["containers"]
    assert c["command"] == ["python", "-m", "analyzer_runtime", "scrape", "--run-id", UID]
    env = {e["name"]: e for e in c["env"]}
    assert env["GENIUS_ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "genius",
        "key": "token",
    }
    assert env["SPOTIFY_CLIENT_ID"]["valueFrom"]["secretKeyRef"] == {"name": "sp", "key": "id"}
    assert env["SPOTIFY_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "secret"
    assert all("value" not in e for n, e in env.items() if n.startswith(("GENIUS", "SPOTIFY")))
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner["kind"] == "ScrapeJob" and owner["uid"] == UID
    assert job["metadata"]["labels"]["rapanalyzer.io/kind"] == "scrapejob"


def test_an_old_style_runtime_command_still_gets_the_right_subcommand() -> None:
    old = OperatorConfig(runtime_command=["python", "-m", "analyzer_runtime", "analyze"])
    assert old.command_for("scrape") == ["python", "-m", "analyzer_runtime", "scrape"]
    assert OperatorConfig().command_for("analyze")[-1] == "analyze"


def test_secrets_the_pods_need_include_the_templates_llm_key() -> None:
    llm = {"analyzer": "llm", "llm": {"provider": "ollama",
                                      "apiKeySecretRef": {"name": "llm", "key": "k"}}}  # fmt: skip
    assert SCRAPE.secret_refs(body(analyze=llm)["spec"]) == [("genius", "token"), ("llm", "k")]


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ({"maxSongsPerArtist": 0}, "spec.maxSongsPerArtist: must be >= 1, got 0"),
        ({"artists": []}, "spec.artists: must not be empty"),
        ({"parallelism": 9}, "spec.parallelism: must be <= spec.shards (3), got 9"),
    ],
)
def test_check_spec_refuses_with_a_message(spec: dict[str, Any], expect: str) -> None:
    with pytest.raises(InvalidRun) as err:
        check_scrape_spec(body(**spec))
    assert expect in str(err.value)


def test_refused_changes_name_the_field() -> None:
    planned = body()["spec"]
    assert SCRAPE.refused_changes(planned, planned | {"suspend": True, "parallelism": 1}) is None
    msg = SCRAPE.refused_changes(planned, planned | {"artists": ["Z"]})
    assert msg and "artists" in msg and "new ScrapeJob" in msg


def test_chained_analysis_selects_this_jobs_tracks_in_its_database() -> None:
    b = body(
        analyze={"analyzer": "algorithmic", "shards": 2, "selection": {"minWords": 10}},
        database={"secretRef": {"name": "db2", "key": "url"}},
    )
    ar = chained_analysis(b)
    assert ar["kind"] == "AnalysisRun" and ar["metadata"]["name"] == "scrape-analysis"
    assert ar["metadata"]["namespace"] == "rap"
    (owner,) = ar["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ScrapeJob", UID, True)
    assert ar["spec"]["selection"] == {"minWords": 10, "scrapeRun": UID}
    assert ar["spec"]["database"] == {"secretRef": {"name": "db2", "key": "url"}}
    assert b["spec"]["analyze"]["selection"] == {"minWords": 10}  # the template is untouched
    taken = analysis_name("scrape", UID, taken=True)
    assert taken.startswith("scrape-analysis-") and taken != analysis_name("scrape", UID)
    assert len(analysis_name("x" * 253, UID, taken=True)) <= 253


def test_a_queued_scrapejob_gets_a_job_kueue_manages() -> None:
    b = body(queueName="scrapers", shards=3)
    check_scrape_spec(b)  # the model takes spec.queueName
    job = manifests.kind_job(b, OperatorConfig(image="img:1"), SCRAPE)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "scrapers"
    assert job["spec"]["suspend"] is True
    with pytest.raises(InvalidRun, match="set one of them"):
        check_scrape_spec(
            body(queueName="a", podTemplate={"labels": {"kueue.x-k8s.io/queue-name": "b"}})
        )


def test_each_claimed_note_becomes_one_event_for_the_act_step_to_post() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    notes = [
        Note(SPOTIFY_UNAVAILABLE, 0, "403 from Spotify", at, announced=False),
        Note(GENIUS_BLOCKED, 1, "song 7", at, announced=False),
        Note(AUDIO_FEATURES_OFF, 2, "deprecated", at, announced=False),
    ]
    got = note_events(notes)
    assert [(e.type, e.reason) for e in got] == [
        ("Warning", "SpotifyUnavailable"),
        ("Warning", "GeniusBlocked"),
        ("Normal", "AudioFeaturesOff"),
    ]
    assert (
        got[1].message.startswith("Genius answers Cloudflare challenges")
        and "song 7" in got[1].message
    )
    assert (
        note_events([Note(SPOTIFY_UNAVAILABLE, 0, "x" * 5000, at, announced=False)])[0].message
        == "x" * 1000
    )
