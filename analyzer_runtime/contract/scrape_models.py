"""Pydantic models of the `ScrapeJob` custom resource (the source of crds/scrapejob.yaml).

Same conventions as the AnalysisRun models (models.py): camelCase on the wire, unknown
fields refused, strict scalars, a description on every field, and each cross-field
rule written twice - a Python validator (operator) next to its CEL rule (`kubectl
apply`). The optional `analyze` template IS an AnalysisRunSpec, so a template is
validated exactly like an AnalysisRun a person would apply.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from analyzer_runtime.contract.models import (
    PARALLELISM_RULE,
    POD_RESOURCES_RULE,
    QUEUE_RULE,
    ActiveDeadlineSeconds,
    AnalysisRunSpec,
    DatabaseOverride,
    ImageOverride,
    Parallelism,
    PodImagePullPolicy,
    PodResources,
    PodTemplate,
    PodTemplateOverride,
    QueueName,
    RateLimit,
    RetryPolicy,
    RunMetadata,
    SecretKeyRef,
    Shards,
    SpecModel,
    TtlSecondsAfterFinished,
    changed_fields,
    one_queue,
    one_resources,
    parallelism_within_shards,
)
from analyzer_runtime.contract.types import GROUP_VERSION, cel_rule

SCRAPE_KIND = "ScrapeJob"
GENIUS_API = "https://api.genius.com"
SPOTIFY_API = "https://api.spotify.com/v1"
SPOTIFY_TOKEN_URL = "https://accounts.spotify.com/api/token"

ArtistName = Annotated[str, Field(min_length=1, max_length=200)]


class ConfigMapKeyRef(SpecModel):
    """A key of a ConfigMap in the ScrapeJob's namespace."""

    name: str = Field(min_length=1, description="Name of the ConfigMap.")
    key: str = Field(
        default="artists",
        min_length=1,
        description="Key holding the artists: one name per line ('#' starts a comment).",
    )


class ArtistsSource(SpecModel):
    """Where the artist list comes from when it is not written inline."""

    config_map_key_ref: ConfigMapKeyRef = Field(
        description="ConfigMap key with one artist name per line; read once, at planning."
    )


class GeniusOptions(SpecModel):
    """The Genius API (song metadata) and genius.com song pages (lyrics)."""

    token_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the Genius API access token (GENIUS_ACCESS_TOKEN)."
    )
    api_base_url: str = Field(
        default=GENIUS_API,
        alias="apiBaseURL",
        min_length=1,
        description="Base URL of the Genius API (a test server's URL in tests).",
    )
    timeout_seconds: int = Field(
        default=20, ge=1, le=300, description="Timeout of one request (API call or song page)."
    )


class SpotifyOptions(SpecModel):
    """Optional Spotify enrichment: popularity, explicit flag and audio features."""

    client_id_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the Spotify client id (SPOTIFY_CLIENT_ID)."
    )
    client_secret_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the Spotify client secret (SPOTIFY_CLIENT_SECRET)."
    )
    api_base_url: str = Field(
        default=SPOTIFY_API, alias="apiBaseURL", min_length=1, description="Spotify Web API URL."
    )
    token_url: str = Field(
        default=SPOTIFY_TOKEN_URL,
        alias="tokenURL",
        min_length=1,
        description="Client-credentials token endpoint.",
    )
    audio_features: bool = Field(
        default=False,
        description="Also fetch audio features (one more request per match). Off by"
        " default: since Nov 2024 Spotify answers 403 to new and development-mode apps;"
        " the first 403 turns it off for the rest of the run.",
    )
    timeout_seconds: int = Field(default=20, ge=1, le=300, description="Timeout of one request.")


class UpstreamRateLimits(SpecModel):
    """A global request budget per upstream API, shared by all shards of the job."""

    genius: RateLimit | None = Field(
        default=None,
        description="Genius budget (API calls and song pages together); unlimited if unset.",
    )
    spotify: RateLimit | None = Field(
        default=None, description="Spotify budget (token, search, audio features)."
    )


class ScrapeRetryPolicy(RetryPolicy):
    """Retries of pods (per Job index), of artists, and of single HTTP requests."""

    max_item_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Attempts per artist (a pod dying while scraping it) before it is failed.",
    )
    request_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries of a request that timed out or got a 5xx (429s do not count).",
    )


class ScrapeJobSpec(SpecModel):
    """Which artists to scrape, from where, and how to split the work."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "has(self.artists) != has(self.artistsFrom)",
                    "set exactly one of spec.artists (a list) or spec.artistsFrom (a ConfigMap)",
                ),
                PARALLELISM_RULE,
                POD_RESOURCES_RULE,
                QUEUE_RULE,
            ]
        }
    )

    # Field order matters: validators read earlier fields through `info.data`.
    artists: list[ArtistName] | None = Field(
        default=None,
        min_length=1,
        max_length=100_000,
        description="Artist names, matched exactly against Genius (one work item each).",
    )
    artists_from: ArtistsSource | None = Field(
        default=None,
        validate_default=True,
        description="Read the artist names from a ConfigMap instead of spec.artists.",
    )
    max_songs_per_artist: int = Field(
        default=50, ge=1, le=10_000, description="Songs scraped per artist, most popular first."
    )
    refresh_existing: bool = Field(
        default=False,
        description="Re-fetch songs already in the corpus and update them if they changed "
        "(default: skip them as duplicates without a request).",
    )
    genius: GeniusOptions = Field(description="Genius access: token Secret and API URL.")
    spotify: SpotifyOptions | None = Field(
        default=None, description="Spotify enrichment of new tracks; off when unset."
    )
    rate_limit: UpstreamRateLimits | None = Field(
        default=None, description="Requests per minute per upstream API, across all shards."
    )
    shards: Shards = 1
    parallelism: Parallelism = None
    batch_size: int = Field(
        default=20, ge=1, le=1000, description="Songs committed per database transaction."
    )
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Requests in flight at once per shard pod."
    )
    retry: ScrapeRetryPolicy = Field(
        default_factory=ScrapeRetryPolicy,
        json_schema_extra={"default": {}},
        description="Retry and backoff settings.",
    )
    suspend: bool = Field(
        default=False, description="Pause the job (the Job is suspended); false resumes it."
    )
    queue_name: QueueName = None
    database: DatabaseOverride = None
    image: ImageOverride = None
    image_pull_policy: PodImagePullPolicy = None
    resources: PodResources = None
    pod_template: PodTemplateOverride = None
    ttl_seconds_after_finished: TtlSecondsAfterFinished = None
    active_deadline_seconds: ActiveDeadlineSeconds = None
    analyze: AnalysisRunSpec | None = Field(
        default=None,
        description="An AnalysisRun spec the operator applies when scraping succeeds, over "
        "exactly the tracks this job inserted or updated (its selection.scrapeRun is set).",
    )

    @field_validator("artists_from")
    @classmethod
    def _one_artist_source(cls, v: ArtistsSource | None, info: ValidationInfo) -> Any:
        has_list = info.data.get("artists") is not None
        if "artists" not in info.data:  # artists itself is invalid; that error is enough
            return v
        if v is None and not has_list:
            raise PydanticCustomError(
                "artists", "no artists: set spec.artists (a list) or spec.artistsFrom"
            )
        if v is not None and has_list:
            raise PydanticCustomError("artists", "set spec.artists or spec.artistsFrom, not both")
        return v

    @field_validator("parallelism")
    @classmethod
    def _parallelism_within_shards(cls, v: int | None, info: ValidationInfo) -> int | None:
        return parallelism_within_shards(v, info)

    @field_validator("pod_template")
    @classmethod
    def _one_resources(cls, v: PodTemplate | None, info: ValidationInfo) -> PodTemplate | None:
        return one_queue(one_resources(v, info), info)


# Fields a planned ScrapeJob may still change (the artists were fixed at planning).
SCRAPE_MUTABLE_AFTER_PLANNING: frozenset[str] = frozenset(
    {"suspend", "parallelism", "ttlSecondsAfterFinished", "activeDeadlineSeconds"}
)


def scrape_immutable_changes(old: ScrapeJobSpec, new: ScrapeJobSpec) -> list[str]:
    """camelCase names of top-level spec fields changed that a planned job cannot take."""
    return changed_fields(old, new, SCRAPE_MUTABLE_AFTER_PLANNING)


class ScrapeJobManifest(SpecModel):
    """A whole `ScrapeJob` object: what `kubectl apply -f` sends, or what the API returns."""

    api_version: Literal["rapanalyzer.io/v1alpha1"] = Field(description="Must be " + GROUP_VERSION)
    kind: Literal["ScrapeJob"] = Field(description="Must be " + SCRAPE_KIND)
    metadata: RunMetadata
    spec: ScrapeJobSpec
    status: dict[str, Any] | None = Field(default=None, strict=False)

    text_unchecked_fields = frozenset({"status"})


def parse_artist_list(text: str) -> list[str]:
    """Artist names from a ConfigMap value: one per line, blank lines and '#' comments
    ignored, surrounding whitespace trimmed."""
    names = [line.strip() for line in text.splitlines()]
    return [n for n in names if n and not n.startswith("#")]


def normalize_name(name: str) -> str:
    """The form names are compared in: NFKC, casefolded, typographic apostrophes and
    whitespace runs unified, outer whitespace dropped."""
    text = unicodedata.normalize("NFKC", name).replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(text.casefold().split())
