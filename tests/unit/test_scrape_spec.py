"""ScrapeJob: spec models with readable errors, the generated CRD, and its status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from analyzer_runtime.contract import describe_error, load_scrape_manifest
from analyzer_runtime.contract.crd import generated_files, structural_problems
from analyzer_runtime.contract.scrape_models import (
    ScrapeJobSpec,
    parse_artist_list,
    scrape_immutable_changes,
)
from analyzer_runtime.contract.scrape_status import ScrapeCounters, scrape_fields
from analyzer_runtime.contract.scrape_status_model import ScrapeJobStatus
from analyzer_runtime.contract.status import JobObservation
from analyzer_runtime.contract.wording import SCRAPE_WORDING
from tests import builders
from tests.builders import T0, shard

ROOT = Path(__file__).resolve().parents[2]
GENIUS = {"tokenSecretRef": {"name": "genius", "key": "token"}}


def doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "ScrapeJob",
        "metadata": {"name": "s"},
        "spec": {"genius": GENIUS, "artists": ["A", "B"], **spec},
    }


def error_of(d: dict[str, Any]) -> str:
    with pytest.raises((ValidationError, ValueError)) as err:
        load_scrape_manifest(d)
    return describe_error(err.value)


def test_example_is_valid_and_defaults_apply() -> None:
    m = load_scrape_manifest((ROOT / "examples" / "scrapejob.yaml").read_text())
    s = m.spec
    assert s.artists and s.genius.api_base_url == "https://api.genius.com"
    assert s.spotify is not None and s.rate_limit is not None
    assert s.analyze is not None and s.analyze.analyzer.value == "algorithmic"
    minimal = load_scrape_manifest(doc()).spec
    assert (minimal.max_songs_per_artist, minimal.shards, minimal.parallelism) == (50, 1, 1)
    assert minimal.batch_size == 20 and minimal.retry.request_retries == 3


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ({"artists": None}, "spec.artistsFrom: no artists: set spec.artists (a list) or spec.artistsFrom"),
        ({"artists": []}, "spec.artists: must not be empty"),
        ({"artists": [""]}, "spec.artists[0]: must not be empty"),
        ({"maxSongsPerArtist": 0}, "spec.maxSongsPerArtist: must be >= 1, got 0"),
        ({"artistsFrom": {"configMapKeyRef": {"name": "a"}}}, "set spec.artists or spec.artistsFrom, not both"),
        ({"shards": 2, "parallelism": 3}, "spec.parallelism: must be <= spec.shards (2), got 3"),
        ({"genius": {}}, "spec.genius.tokenSecretRef: required"),
        ({"maxSongPerArtist": 5}, "unknown field 'maxSongPerArtist'; did you mean 'maxSongsPerArtist'?"),
        ({"analyze": {"analyzer": "nope"}}, "spec.analyze.analyzer: unknown analyzer 'nope'"),
        ({"rateLimit": {"genius": {"requestsPerMinute": 0}}}, "spec.rateLimit.genius.requestsPerMinute: must be >= 1"),
    ],
    ids=["no-artists", "empty-list", "empty-name", "max-songs-0", "both-sources",
         "parallelism", "no-token", "typo", "bad-template", "rate-0"],
)  # fmt: skip
def test_bad_specs_are_refused_readably(spec: dict[str, Any], expect: str) -> None:
    d = doc(**spec)
    d["spec"] = {k: v for k, v in d["spec"].items() if v is not None}
    msg = error_of(d)
    assert expect in msg, msg
    assert "Traceback" not in msg and "pydantic" not in msg


def test_artist_list_from_a_configmap_value() -> None:
    text = "# our roster\nKendrick Lamar\n\n  J. Cole  \n#1 fan\nLittle Simz\n"
    assert parse_artist_list(text) == ["Kendrick Lamar", "J. Cole", "Little Simz"]


def test_only_suspend_and_parallelism_may_change_after_planning() -> None:
    a = ScrapeJobSpec.model_validate(doc(shards=2)["spec"])
    b = ScrapeJobSpec.model_validate(doc(shards=2, suspend=True, parallelism=1)["spec"])
    assert scrape_immutable_changes(a, b) == []
    c = ScrapeJobSpec.model_validate(doc(shards=2, maxSongsPerArtist=9)["spec"])
    assert scrape_immutable_changes(a, c) == ["maxSongsPerArtist"]


def crd() -> dict[str, Any]:
    return yaml.safe_load(generated_files()["scrapejob.yaml"])


def test_crd_is_structural_with_printer_columns_and_cel() -> None:
    c = crd()
    assert c["metadata"]["name"] == "scrapejobs.rapanalyzer.io"
    assert c["spec"]["names"]["shortNames"] == ["sj"]
    (version,) = c["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    assert structural_problems(root) == []
    cols = [col["name"] for col in version["additionalPrinterColumns"] if "priority" not in col]
    assert cols == ["Phase", "Artists", "Tracks", "Age"]
    spec = root["properties"]["spec"]
    assert spec["required"] == ["genius"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert "has(self.artists) != has(self.artistsFrom)" in rules
    assert spec["properties"]["artists"]["minItems"] == 1
    assert spec["properties"]["maxSongsPerArtist"]["minimum"] == 1
    # The analyze template is the AnalysisRun spec, CEL rules included.
    analyze = spec["properties"]["analyze"]
    assert analyze["required"] == ["analyzer"]
    assert any("parallelism" in r["rule"] for r in analyze["x-kubernetes-validations"])
    assert "scrapeRun" in analyze["properties"]["selection"]["properties"]
    assert root["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True


def test_committed_scrapejob_crd_is_current() -> None:
    for where in (ROOT / "crds", ROOT / "charts" / "rap-analyzer" / "crds"):
        assert (where / "scrapejob.yaml").read_text() == generated_files()["scrapejob.yaml"]


def test_status_counts_artists_and_scrape_results_and_fits_the_schema() -> None:
    shards = [shard(0, "done", total=3, done=3, finished_at=T0),
              shard(1, "done", total=2, done=1, failed=1, finished_at=T0)]  # fmt: skip
    job = JobObservation(exists=True, completed_indexes={0, 1}, complete=True)
    status = builders.status(shards, job, wording=SCRAPE_WORDING, job_name="j", schema=None)
    counters = [
        ScrapeCounters(0, songs_found=30, tracks_new=25, duplicates=3, songs_skipped=1,
                       songs_failed=1, non_songs=2, spotify_matched=15, spotify_missed=10),
        ScrapeCounters(1, songs_found=10, tracks_new=4, tracks_updated=1, duplicates=5),
    ]  # fmt: skip
    failed = [{"name": "Nobody", "reason": "no Genius artist named exactly 'Nobody'"}]
    status.update(scrape_fields(status, counters, spotify=True, failed_artists=failed))
    ScrapeJobStatus.model_validate(status | {"analysisRun": "x-analysis"})
    assert status["phase"] == "Succeeded" and status["artists"] == "5/5"
    assert (status["songsFound"], status["newTracks"], status["updatedTracks"]) == (40, 29, 1)
    assert (status["duplicatesSkipped"], status["songFailures"], status["nonSongs"]) == (8, 1, 2)
    assert status["spotify"] == {"matched": 15, "missed": 10}
    cond = {c["type"]: c for c in status["conditions"]}
    assert cond["Succeeded"]["message"] == "all 2 shards finished 5 artists"
    assert cond["CompletedWithErrors"]["message"].startswith("1 of 5 artists failed")
    assert "tracks" not in cond["CompletedWithErrors"]["message"].split(";")[0]
