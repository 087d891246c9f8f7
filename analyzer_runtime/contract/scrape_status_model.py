"""Schema of `ScrapeJob.status`, for the CRD only (like status_model.py for AnalysisRun).

The status is the common run status (`RunStatus`: phase, conditions, counts of work
items - here artists -, shards, times, the Job) plus what scraping found. It is
built by `contract.status.compute_status` and `contract.scrape_status.scrape_fields`;
a unit test validates that output against this model so the two cannot drift.
"""

from __future__ import annotations

from pydantic import Field

from analyzer_runtime.contract.status_model import (
    SHARD_DETAIL_RULE,
    RunStatus,
    ShardDetail,
    ShardSummary,
    StatusModel,
)


class ScrapeShardDetail(ShardDetail):
    """One shard in detail (one index of the Indexed Job); its items are artists."""

    total: int = Field(description="Artists assigned to the shard.")
    processed: int = Field(description="Artists scraped.")
    failed: int = Field(description="Artists that failed (not found on Genius, or gave up).")
    skipped: int = Field(description="Artists skipped.")
    progress: str = Field(description="Finished/total artists of the shard.")


class ScrapeShardSummary(ShardSummary):
    """The shards of the job, compact whatever their number (see ShardSummary)."""

    # Narrows ShardSummary.detail (a list is invariant, hence the ignore): a scrape
    # shard's detail counts artists, and nothing adds an analysis shard's to it.
    detail: list[ScrapeShardDetail] = Field(description=SHARD_DETAIL_RULE)  # type: ignore[assignment]


class FailedArtist(StatusModel):
    """An artist that could not be scraped, and why."""

    name: str = Field(description="The artist name as given in the spec.")
    reason: str = Field(description="Why it failed (e.g. no exact-name match on Genius).")


class SpotifyCounts(StatusModel):
    """Spotify enrichment of the new and updated tracks."""

    matched: int = Field(description="Tracks matched on Spotify (spotify_data filled).")
    missed: int = Field(description="Tracks without a confident Spotify match (recorded).")
    unavailable: str | None = Field(
        default=None,
        description="Why Spotify refused the app (token or search answered 400/401/403):"
        " enrichment stopped, the tracks were stored from Genius (see the"
        " SpotifyUnavailable condition).",
    )
    audio_features_off: str | None = Field(
        default=None,
        description="Why audio features were turned off during the run (Spotify answered"
        " 403 on audio-features, as it does for new and development-mode apps since"
        " Nov 2024).",
    )


class ScrapeJobStatus(RunStatus):
    """Observed state of the ScrapeJob, refreshed by the operator from the shard counters."""

    total: int = Field(default=0, description="Artists in the job.")
    processed: int = Field(default=0, description="Artists scraped.")
    failed: int = Field(default=0, description="Artists that failed (see failedArtists).")
    skipped: int = Field(default=0, description="Artists skipped.")
    progress: str = Field(
        default="0/0 (0.0%)", description="Finished artists / total, with percent."
    )
    shards: ScrapeShardSummary | None = Field(
        default=None,
        description="Shards by state (count and index ranges), a few of them in detail.",
    )
    artists: str = Field(default="0/0", description="Finished artists / total (printer column).")
    songs_found: int = Field(
        default=0, description="Songs listed for the artists (up to maxSongsPerArtist each)."
    )
    new_tracks: int = Field(default=0, description="Tracks inserted into the corpus.")
    updated_tracks: int = Field(
        default=0, description="Existing tracks re-fetched and changed (refreshExisting)."
    )
    duplicates_skipped: int = Field(
        default=0, description="Songs already in the corpus (not re-fetched, or unchanged)."
    )
    songs_skipped: int = Field(default=0, description="Songs whose page had no lyrics.")
    song_failures: int = Field(
        default=0, description="Songs that could not be fetched after retries (blocked included)."
    )
    blocked: int = Field(
        default=0,
        description="Songs failed because Genius (Cloudflare) kept answering a challenge"
        " page after retries; counted in songFailures too, never in songsSkipped.",
    )
    non_songs: int = Field(
        default=0, description="Entries skipped as not songs (tracklists, interviews, ...)."
    )
    spotify: SpotifyCounts | None = Field(
        default=None, description="Spotify enrichment counts (when spec.spotify is set)."
    )
    failed_artists: list[FailedArtist] | None = Field(
        default=None, description="The first failed artists with the reason (up to 10)."
    )
    analysis_run: str | None = Field(
        default=None, description="Name of the AnalysisRun created from spec.analyze."
    )
