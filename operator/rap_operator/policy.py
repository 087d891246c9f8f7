"""The admin's policy over what a run may make its pods do (pure: no I/O).

Without it, creating an AnalysisRun or ScrapeJob is as powerful as creating pods
and reading the namespace's Secrets: the spec picks the image, the endpoints the
pods send credentials to, and the Secrets those credentials come from. The policy
bounds the three:

- images (`allowedImages`): `spec.image` (and a ScrapeJob's `spec.analyze.image`)
  is the operator's own runtime image, or matches an entry: an entry ending in `/`
  or `:` is a prefix (`registry.example.com/team/` allows every image under that
  path, `repo:` every tag of one repository), any other entry is the exact
  reference. `*` allows any image.
- endpoint hosts per provider (`allowedHosts.llm|genius|spotify`): the hostname of
  every URL the pods send a credential to - `spec.llm.baseURL` or, without it, the
  preset's own URL; `spec.genius.apiBaseURL`; `spec.spotify.apiBaseURL` and
  `tokenURL` - equals an entry (case-insensitive), or is a subdomain of a
  `*.example.com` entry. `*` allows any host. Only http and https URLs without
  userinfo, spaces or backslashes are taken; http or https is the admin's concern
  (in-cluster endpoints such as the `ollama` preset are plain http).
- Secrets (`secrets`): every Secret the spec names (the database's, the LLM key,
  the Genius token, the Spotify id and secret) carries the label (default
  `rapanalyzer.io/usable-by-runs: "true"`) or is listed by name. The operator's
  default database Secret is always allowed. A Secret that does not exist yet is
  not judged here: the run waits for it (MissingInput) and is judged once it
  exists.

`check` returns every violation, each naming its rule and the field, never a
Secret's value (it never sees one).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from analyzer_runtime.contract import labels
from analyzer_runtime.contract.llm_presets import PRESETS
from analyzer_runtime.contract.scrape_models import GENIUS_API, SPOTIFY_API, SPOTIFY_TOKEN_URL

JSON = dict[str, Any]
ANY = "*"


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


# The presets' official hosts (what a run reaches without naming a URL).
DEFAULT_HOSTS: dict[str, tuple[str, ...]] = {
    "llm": tuple(sorted({_host(p.base_url) for p in PRESETS.values() if p.base_url})),
    "genius": (_host(GENIUS_API),),
    "spotify": (_host(SPOTIFY_API), _host(SPOTIFY_TOKEN_URL)),
}


@dataclass(frozen=True)
class Policy:
    # Besides the operator's own runtime image (always allowed).
    images: tuple[str, ...] = ()
    hosts: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_HOSTS))
    # Empty: no label makes a Secret usable; only `secrets` (and the default
    # database Secret) are.
    secret_label: str = labels.USABLE_LABEL
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Violation:
    rule: str  # allowedImages, allowedHosts.<provider>, secrets
    field: str  # where in the spec
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.field}: {self.message}"


def image_allowed(image: str, allowed: tuple[str, ...], own: str) -> bool:
    if image == own or ANY in allowed:
        return True
    return any(image == a or (a.endswith(("/", ":")) and image.startswith(a)) for a in allowed)


def host_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    if not url.isprintable() or any(c in url for c in " \\"):
        return False  # where HTTP clients' parsers may disagree with this one
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() not in ("http", "https") or not host or "@" in parts.netloc:
        return False  # no userinfo: nothing to confuse a reader of the URL
    for a in (a.lower() for a in allowed):
        if a == ANY or host == a or (a.startswith("*.") and host.endswith(a[1:])):
            return True
    return False


def images(spec: JSON) -> Iterator[tuple[str, str]]:
    """(field, image) of every image the spec asks for."""
    if spec.get("image"):
        yield "spec.image", spec["image"]
    if (spec.get("analyze") or {}).get("image"):
        yield "spec.analyze.image", spec["analyze"]["image"]


def _llm_endpoint(spec: JSON, prefix: str) -> Iterator[tuple[str, str, str]]:
    llm = spec.get("llm") or {}
    if llm.get("baseURL"):
        yield "llm", f"{prefix}.llm.baseURL", llm["baseURL"]
    elif spec.get("analyzer") == "llm":
        preset = PRESETS.get(llm.get("provider") or "novita")
        if preset is not None and preset.base_url:
            provider = llm.get("provider") or "novita"
            yield "llm", f"{prefix}.llm.provider ({provider}: {preset.base_url})", preset.base_url


def endpoints(spec: JSON) -> Iterator[tuple[str, str, str]]:
    """(provider, field, URL) of every endpoint the pods will send a credential to."""
    yield from _llm_endpoint(spec, "spec")
    if "genius" in spec:
        g = spec.get("genius") or {}
        yield "genius", "spec.genius.apiBaseURL", g.get("apiBaseURL") or GENIUS_API
    if "spotify" in spec:
        s = spec.get("spotify") or {}
        yield "spotify", "spec.spotify.apiBaseURL", s.get("apiBaseURL") or SPOTIFY_API
        yield "spotify", "spec.spotify.tokenURL", s.get("tokenURL") or SPOTIFY_TOKEN_URL
    if analyze := spec.get("analyze"):
        yield from _llm_endpoint(analyze, "spec.analyze")


def secret_refs(spec: JSON) -> Iterator[tuple[str, str]]:
    """(field, Secret name) of every Secret the spec names, for either kind."""
    refs = [
        ("spec.database.secretRef", (spec.get("database") or {}).get("secretRef")),
        ("spec.llm.apiKeySecretRef", (spec.get("llm") or {}).get("apiKeySecretRef")),
        ("spec.genius.tokenSecretRef", (spec.get("genius") or {}).get("tokenSecretRef")),
        ("spec.spotify.clientIdSecretRef", (spec.get("spotify") or {}).get("clientIdSecretRef")),
        ("spec.spotify.clientSecretSecretRef",
         (spec.get("spotify") or {}).get("clientSecretSecretRef")),
    ]  # fmt: skip
    analyze = spec.get("analyze") or {}
    refs += [
        ("spec.analyze.database.secretRef", (analyze.get("database") or {}).get("secretRef")),
        ("spec.analyze.llm.apiKeySecretRef", (analyze.get("llm") or {}).get("apiKeySecretRef")),
    ]
    for where, ref in refs:
        if ref and ref.get("name"):
            yield where, ref["name"]


def judged_secrets(policy: Policy, spec: JSON, default_secret: str) -> set[str]:
    """The Secret names whose labels `check` needs (the listed ones need none)."""
    free = {default_secret, *policy.secrets}
    return {name for _, name in secret_refs(spec) if name not in free}


def check(
    policy: Policy,
    spec: JSON,
    *,
    own_image: str,
    default_secret: str,
    secret_labels: Mapping[str, Mapping[str, str] | None],
) -> list[Violation]:
    """Every violation of `policy` by a run's `spec` (camelCase, as applied).
    `secret_labels`: the labels of the judged Secrets that exist (a name missing
    from it is not judged: it does not exist yet)."""
    out: list[Violation] = []
    for where, image in images(spec):
        if not image_allowed(image, policy.images, own_image):
            out.append(Violation("allowedImages", where, f"image {image!r} is not allowed"))
    for provider, where, url in endpoints(spec):
        if not host_allowed(url, policy.hosts.get(provider, ())):
            what = f"host {_host(url) or url!r} is not allowed for {provider}"
            out.append(Violation(f"allowedHosts.{provider}", where, what))
    free = {default_secret, *policy.secrets}
    for where, name in secret_refs(spec):
        if name in free or name not in secret_labels:
            continue
        labels = secret_labels[name] or {}
        if policy.secret_label and labels.get(policy.secret_label) == "true":
            continue
        how = (
            f"carries no label {policy.secret_label}=true and is not listed"
            if policy.secret_label
            else "is not listed"
        )
        out.append(Violation("secrets", where, f"Secret {name!r} {how}"))
    return out


def describe(violations: list[Violation]) -> str:
    """The Valid=False message: each rule and field; the admin's policy decides."""
    return "denied by the admin's policy: " + "; ".join(str(v) for v in violations)
