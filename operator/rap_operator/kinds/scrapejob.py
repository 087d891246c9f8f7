"""The ScrapeJob kind: its parts of the shared run flow (the RunKind protocol,
base.py), and chaining.

- validation: the ScrapeJob models (same readable errors as AnalysisRun), the
  `analyze` template's analyzer available; Secrets: Genius token, Spotify id/secret,
  the template's LLM key; the artists' ConfigMap (read once, at planning).
- pods: `python -m analyzer_runtime scrape`, credentials from their Secrets as
  GENIUS_ACCESS_TOKEN / SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET.
- status: artists are the items; songs found, new/updated tracks, duplicates,
  failures, blocked songs from the per-shard scrape counters (O(shards)); with
  spec.spotify the `SpotifyUnavailable` condition. What shards noted once (Spotify
  refused the app, audio features off, Genius blocking songs) becomes one Event each
  (Warning for the first and the last).
- chaining: when the job succeeds and has `spec.analyze`, the operator creates that
  AnalysisRun, owned by the ScrapeJob, with `selection.scrapeRun` = the job's uid
  (exactly the tracks it inserted or updated) and the job's database, and names it
  in `status.analysisRun`.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from typing import Any

import asyncpg

from analyzer_runtime.contract import load_scrape_manifest
from analyzer_runtime.contract.env import (
    GENIUS_ACCESS_TOKEN,
    SPOTIFY_CLIENT_ID,
    SPOTIFY_CLIENT_SECRET,
)
from analyzer_runtime.contract.labels import LABEL_SCRAPEJOB
from analyzer_runtime.contract.scrape_models import (
    ScrapeJobManifest,
    ScrapeJobSpec,
    parse_artist_list,
    scrape_immutable_changes,
)
from analyzer_runtime.contract.scrape_status import (
    AUDIO_FEATURES_OFF,
    GENIUS_BLOCKED,
    SPOTIFY_UNAVAILABLE,
    Note,
    scrape_fields,
    spotify_condition,
)
from analyzer_runtime.contract.status import StatusOptions
from analyzer_runtime.contract.wording import SCRAPE_WORDING
from analyzer_runtime.ledger import scrape_store as store
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.scrape_planning import plan_scrape
from rap_operator import events, kube, manifests
from rap_operator.kinds.analysisrun import analysis_secrets
from rap_operator.kinds.base import JSON, KindEvent, SecretRef
from rap_operator.validation import MissingInput, check_analyzer, load_checked

ANALYSIS_PLURAL = "analysisruns"


def check_scrape_spec(body: JSON) -> ScrapeJobManifest:
    manifest = load_checked(body, load_scrape_manifest)
    if (analyze := manifest.spec.analyze) is not None:
        check_analyzer(analyze.analyzer.value, "spec.analyze.analyzer")
    return manifest


def _credentials(spec: JSON) -> list[tuple[str, SecretRef]]:
    """(env var, Secret ref) of every credential the pods need."""
    g = (spec.get("genius") or {}).get("tokenSecretRef") or {}
    out = [(GENIUS_ACCESS_TOKEN, (g.get("name", ""), g.get("key", "")))]
    if sp := spec.get("spotify"):
        for env, field in ((SPOTIFY_CLIENT_ID, "clientIdSecretRef"),
                           (SPOTIFY_CLIENT_SECRET, "clientSecretSecretRef")):  # fmt: skip
            ref = sp.get(field) or {}
            out.append((env, (ref.get("name", ""), ref.get("key", ""))))
    return out


_NOTE_EVENTS = {
    SPOTIFY_UNAVAILABLE: ("Warning", "SpotifyUnavailable"),
    AUDIO_FEATURES_OFF: ("Normal", "AudioFeaturesOff"),
    GENIUS_BLOCKED: ("Warning", "GeniusBlocked"),
}


def note_events(notes: Sequence[Note]) -> list[KindEvent]:
    """The Event each newly claimed note becomes."""
    out = []
    for n in notes:
        etype, reason = _NOTE_EVENTS.get(n.kind, ("Normal", "ScrapeNote"))
        message = n.message
        if n.kind == GENIUS_BLOCKED:
            message = (
                f"Genius answers Cloudflare challenges; songs are failed as blocked ({n.message})"
            )
        out.append(KindEvent(etype, reason, message[:1000]))
    return out


# ---- chaining ----------------------------------------------------------------------


def analysis_name(name: str, uid: str, taken: bool = False) -> str:
    """`<scrapejob>-analysis`, or with a hash of the uid when that name is taken by
    an AnalysisRun this job does not own (names stay within 253 characters)."""
    suffix = "-analysis" + (f"-{hashlib.sha256(uid.encode()).hexdigest()[:6]}" if taken else "")
    return name[: 253 - len(suffix)].rstrip("-.") + suffix


def chained_analysis(body: JSON, *, taken: bool = False) -> JSON:
    """The AnalysisRun of `spec.analyze`: over the tracks this job inserted or updated,
    in the job's database, owned by the job (deleting the job deletes it)."""
    meta, spec = body["metadata"], body["spec"]
    run_spec = copy.deepcopy(spec["analyze"])
    run_spec.setdefault("selection", {})["scrapeRun"] = meta["uid"]
    if "database" in spec and "database" not in run_spec:
        run_spec["database"] = copy.deepcopy(spec["database"])
    return {
        "apiVersion": manifests.GROUP_VERSION,
        "kind": "AnalysisRun",
        "metadata": {
            "name": analysis_name(meta["name"], meta["uid"], taken),
            "namespace": meta["namespace"],
            "labels": {LABEL_SCRAPEJOB: meta["name"][:63]},
            "ownerReferences": [manifests.owner_reference(body)],
        },
        "spec": run_spec,
    }


def _owned_by(obj: JSON, uid: str) -> bool:
    return any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or [])


class ScrapeJob:
    """The ScrapeJob kind (implements base.RunKind)."""

    kind = "ScrapeJob"
    plural = "scrapejobs"
    subcommand = "scrape"
    wording = SCRAPE_WORDING

    def check_spec(self, body: JSON) -> ScrapeJobManifest:
        return check_scrape_spec(body)

    def secret_refs(self, spec: JSON) -> list[SecretRef]:
        # The chained AnalysisRun's Secrets are checked now: failing after the scrape
        # would waste it.
        return [ref for _, ref in _credentials(spec)] + analysis_secrets(spec.get("analyze") or {})

    async def prepare(self, body: JSON, manifest: ScrapeJobManifest) -> list[str]:
        """The artists: the spec's list, or the ConfigMap's (read once, at planning)."""
        spec = manifest.spec
        if spec.artists is not None:
            return list(spec.artists)
        assert spec.artists_from is not None
        ref = spec.artists_from.config_map_key_ref
        try:
            text = await kube.configmap_value(body["metadata"]["namespace"], ref.name, ref.key)
        except kube.SecretProblem as exc:
            raise MissingInput(f"spec.artistsFrom: {exc}") from None
        names = parse_artist_list(text)
        if not names:
            raise MissingInput(
                f"spec.artistsFrom: ConfigMap {ref.name} key {ref.key!r} lists no artists"
                " (one name per line; lines starting with # are comments)"
            )
        return names

    async def plan(
        self, conn: asyncpg.Connection, manifest: Any, uid: str, inputs: Any
    ) -> shard_ledger.PlanResult:
        return await plan_scrape(conn, manifest, uid, inputs)

    def planned_message(self, run: shard_ledger.Run) -> str:
        return f"{run.total} artists in {run.shards} shards"

    def pod_env(self, spec: JSON) -> list[JSON]:
        return [
            {"name": env, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
            for env, (name, key) in _credentials(spec)
        ]

    def refused_changes(self, planned: JSON, current: JSON) -> str | None:
        try:
            changes = scrape_immutable_changes(
                ScrapeJobSpec.model_validate(planned), ScrapeJobSpec.model_validate(current)
            )
        except ValueError:
            return "the spec no longer validates; revert it or create a new ScrapeJob"
        if not changes:
            return None
        return (
            f"{', '.join(changes)} cannot change after planning; the job continues with the"
            " planned spec. Revert the change, or create a new ScrapeJob"
        )

    def dry_run(self, spec: JSON) -> bool:
        return False  # a ScrapeJob has no dry run

    def status_args(self, run: shard_ledger.Run) -> StatusOptions:
        return {}

    async def extra_status(
        self, conn: asyncpg.Connection, run: shard_ledger.Run, status: JSON
    ) -> JSON:
        counters = await store.read_counters(conn, run.id)
        failed = await store.failed_artists(conn, run.id) if status.get("failed") else []
        notes = await store.read_notes(conn, run.id)
        spotify = bool(run.spec.get("spotify"))
        out = scrape_fields(status, counters, spotify=spotify, failed_artists=failed, notes=notes)
        if spotify:
            conditions = list(status.get("conditions") or [])
            generation = conditions[0].get("observedGeneration", 1) if conditions else 1
            cond = spotify_condition(notes, generation=generation, since=run.created_at)
            out["conditions"] = [c for c in conditions if c.get("type") != cond["type"]] + [cond]
        return out

    async def claim_events(
        self, conn: asyncpg.Connection, run: shard_ledger.Run
    ) -> list[KindEvent]:
        # Read first: the claim is a write, and most refreshes have nothing new.
        notes = await store.read_notes(conn, run.id)
        if all(n.announced for n in notes.values()):
            return []
        return note_events(await store.claim_announcements(conn, run.id))

    async def on_succeeded(self, body: JSON, status: JSON) -> JSON:
        """Chaining: the AnalysisRun of spec.analyze, created once (named in
        status.analysisRun)."""
        if not (body.get("spec") or {}).get("analyze"):
            return {}
        uid = body["metadata"]["uid"]
        obj, created = await kube.create_custom_object(ANALYSIS_PLURAL, chained_analysis(body))
        if not _owned_by(obj, uid):  # someone else's AnalysisRun has that name
            obj, created = await kube.create_custom_object(
                ANALYSIS_PLURAL, chained_analysis(body, taken=True)
            )
        name = obj["metadata"]["name"]
        if created:
            events.info(
                body,
                reason="AnalysisRunCreated",
                message=f"AnalysisRun {name} over the {status.get('newTracks', 0)} new and"
                f" {status.get('updatedTracks', 0)} updated tracks",
            )
        return {"analysisRun": name}


SCRAPE = ScrapeJob()
