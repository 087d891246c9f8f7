"""The chart's database-Secret hook (templates/postgres-secret-job.yaml).

Runs as a Helm pre-install/pre-upgrade hook Job (an Argo CD PreSync hook) in
the project image, as `python -c <this file>`, configured by environment:

  NAMESPACE                          the release namespace
  PASSWORD_SECRET / PASSWORD_KEY     the Secret (and key) holding the Postgres password
  PASSWORD_GENERATE                  "true": create PASSWORD_SECRET with a random
                                     password if it does not exist; never change it
                                     once it does. "false": it must exist
                                     (postgres.auth.existingSecret).
  URL_SECRET / URL_KEY               the Secret the operator and the runs read the
                                     database URL from (database.secretName/secretKey)
  POSTGRES_USER, POSTGRES_HOST,
  POSTGRES_PORT, POSTGRES_DB         the rest of the URL
  SECRET_LABELS, SECRET_ANNOTATIONS  JSON objects put on the Secrets it writes
  POOLER_URL_SECRET, POOLER_HOST,    optional (pgbouncer.enabled): a second URL Secret
  POOLER_PORT                        (key "url"), the same credentials through PgBouncer
  ROLES_SECRET                       optional (database.roles): the Secret of the roles'
                                     passwords (keys owner-password, runtime-password,
                                     search-password), each generated once, never changed
  ROLE_OWNER, ROLE_RUNTIME,          the roles' names; with ROLES_SECRET the URL Secrets
  ROLE_SEARCH                        carry the runtime role (URL_SECRET, POOLER_URL_SECRET)
  OWNER_URL_SECRET,                  and the owner's and the search role's URLs go to
  SEARCH_URL_SECRET                  these Secrets (key "url"); the superuser's URL to none

It makes the URL Secret agree with the password (creates or patches that one key).
A password is generated here, in the cluster, once: never by a render, so
`helm template` (Argo CD) output stays the same from one render to the next.

It uses `kubernetes_asyncio` (the operator's client, which the image has); the
sync `kubernetes` client is a development dependency only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import string
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from kubernetes_asyncio.client.exceptions import ApiException

# JSON merge patch (RFC 7386; null deletes a key), named explicitly: some
# versions of the generated client would send a dict as a JSON patch.
MERGE_PATCH = "application/merge-patch+json"
ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 32


def new_password() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(PASSWORD_LENGTH))


def database_url(
    env: Mapping[str, str], password: str, *, pooler: bool = False, user: str | None = None
) -> str:
    """The URL of the database for `user` (POSTGRES_USER), or (`pooler`) of PgBouncer
    in front of it."""
    user = quote(user or env["POSTGRES_USER"], safe="")
    db = quote(env["POSTGRES_DB"], safe="")
    host, port = (
        (env["POOLER_HOST"], env["POOLER_PORT"])
        if pooler
        else (env["POSTGRES_HOST"], env.get("POSTGRES_PORT") or "5432")
    )
    return f"postgresql://{user}:{quote(password, safe='')}@{host}:{port}/{db}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def _read(core: Any, namespace: str, name: str) -> Any | None:
    try:
        return await core.read_namespaced_secret(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _value(secret: Any, key: str) -> str | None:
    data = secret.data or {}
    return base64.b64decode(data[key]).decode() if data.get(key) else None


# Argo CD's default tracking label: a Secret written here is not part of the
# rendered manifest, so it must not carry it (Argo CD would want to prune it).
TRACKING_LABEL = "app.kubernetes.io/instance"


def _metadata(env: Mapping[str, str], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "labels": json.loads(env.get("SECRET_LABELS") or "{}"),
        "annotations": json.loads(env.get("SECRET_ANNOTATIONS") or "{}"),
    }


def _metadata_patch(secret: Any, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The metadata patch that gives a live Secret our labels and annotations
    (and drops the tracking label); None when it has them already."""
    labels = secret.metadata.labels or {}
    annotations = secret.metadata.annotations or {}
    if (
        all(labels.get(k) == v for k, v in meta["labels"].items())
        and all(annotations.get(k) == v for k, v in meta["annotations"].items())
        and TRACKING_LABEL not in labels
    ):
        return None
    new_labels: dict[str, Any] = dict(meta["labels"])
    if TRACKING_LABEL in labels:
        new_labels[TRACKING_LABEL] = None  # merge patch: null deletes the key
    return {"labels": new_labels, "annotations": meta["annotations"]}


async def ensure_password(core: Any, env: Mapping[str, str], log: Any = print) -> str:
    """The password in PASSWORD_SECRET, creating that Secret first if allowed.
    An existing password is never changed (the data volume was initialised with it)."""
    ns, name, key = env["NAMESPACE"], env["PASSWORD_SECRET"], env.get("PASSWORD_KEY") or "password"
    generate = env.get("PASSWORD_GENERATE", "false").lower() == "true"
    secret = await _read(core, ns, name)
    if secret is None and generate:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(env, name),
            "type": "Opaque",
            "data": {key: _b64(new_password())},
        }
        try:
            await core.create_namespaced_secret(ns, body)
            log(f"created Secret {ns}/{name} with a generated password")
        except ApiException as e:
            if e.status != 409:  # 409: created meanwhile (a concurrent hook): use that one
                raise
        secret = await _read(core, ns, name)
    elif secret is not None and generate:
        # A Secret this hook (or an earlier chart version) made: keep its password,
        # bring its metadata up to date (resource-policy keep, no tracking label).
        patch = _metadata_patch(secret, _metadata(env, name))
        if patch is not None:
            secret = await core.patch_namespaced_secret(
                name, ns, {"metadata": patch}, _content_type=MERGE_PATCH
            )
            log(f"updated the metadata of Secret {ns}/{name}")
    if secret is None:
        raise SystemExit(
            f"Secret {ns}/{name} does not exist: create it with the Postgres password "
            f"under the key {key!r} (postgres.auth.existingSecret), then retry"
        )
    password = _value(secret, key)
    if not password:
        raise SystemExit(f"Secret {ns}/{name} has no (or an empty) key {key!r}")
    return password


async def ensure_url(
    core: Any,
    env: Mapping[str, str],
    password: str,
    log: Any = print,
    *,
    pooler: bool = False,
    user: str | None = None,
    secret: str | None = None,
) -> str:
    """Create URL_SECRET (POOLER_URL_SECRET, or `secret` with key "url"), or patch
    its key (and metadata) when they differ."""
    ns = env["NAMESPACE"]
    if secret:
        name, key = secret, "url"
    elif pooler:
        name, key = env["POOLER_URL_SECRET"], "url"
    else:
        name, key = env["URL_SECRET"], env.get("URL_KEY") or "url"
    url = database_url(env, password, pooler=pooler, user=user)
    meta = _metadata(env, name)
    secret = await _read(core, ns, name)
    if secret is None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "data": {key: _b64(url)},
        }
        await core.create_namespaced_secret(ns, body)
        log(f"created Secret {ns}/{name} (key {key})")
        return url
    patch: dict[str, Any] = {}
    metadata = _metadata_patch(secret, meta)
    if metadata is not None:
        patch["metadata"] = metadata
    if _value(secret, key) != url:
        patch["data"] = {key: _b64(url)}
    if patch:
        await core.patch_namespaced_secret(name, ns, patch, _content_type=MERGE_PATCH)
        log(f"updated Secret {ns}/{name} (key {key})")
    else:
        log(f"Secret {ns}/{name} is up to date")
    return url


ROLE_KEYS = {"owner": "owner-password", "runtime": "runtime-password", "search": "search-password"}


async def ensure_role_passwords(
    core: Any, env: Mapping[str, str], log: Any = print
) -> dict[str, str]:
    """The roles' passwords in ROLES_SECRET ({"owner": ..., ...}): the Secret is created,
    or a missing key added, with a generated password; an existing one never changes
    (the db-roles hook set it in the database)."""
    ns, name = env["NAMESPACE"], env["ROLES_SECRET"]
    secret = await _read(core, ns, name)
    if secret is None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(env, name),
            "type": "Opaque",
            "data": {key: _b64(new_password()) for key in ROLE_KEYS.values()},
        }
        try:
            await core.create_namespaced_secret(ns, body)
            log(f"created Secret {ns}/{name} with generated role passwords")
        except ApiException as e:
            if e.status != 409:  # created meanwhile (a concurrent hook): use that one
                raise
        secret = await _read(core, ns, name)
    else:
        patch: dict[str, Any] = {}
        missing = {k: _b64(new_password()) for k in ROLE_KEYS.values() if not _value(secret, k)}
        if missing:
            patch["data"] = missing
        metadata = _metadata_patch(secret, _metadata(env, name))
        if metadata is not None:
            patch["metadata"] = metadata
        if patch:
            secret = await core.patch_namespaced_secret(name, ns, patch, _content_type=MERGE_PATCH)
            log(f"updated Secret {ns}/{name}")
    out = {role: _value(secret, key) for role, key in ROLE_KEYS.items()}
    if not all(out.values()):
        raise SystemExit(f"Secret {ns}/{name} lacks a role password")
    return {role: pw for role, pw in out.items() if pw}


async def ensure(core: Any, env: Mapping[str, str], log: Any = print) -> str:
    """The password and URL Secrets (and PgBouncer's URL); returns the URL of
    URL_SECRET (the superuser's, or with ROLES_SECRET the runtime role's)."""
    password = await ensure_password(core, env, log)
    if not env.get("ROLES_SECRET"):
        url = await ensure_url(core, env, password, log)
        if env.get("POOLER_URL_SECRET"):
            await ensure_url(core, env, password, log, pooler=True)
        return url
    roles = await ensure_role_passwords(core, env, log)
    runtime = env["ROLE_RUNTIME"]
    url = await ensure_url(core, env, roles["runtime"], log, user=runtime)
    if env.get("POOLER_URL_SECRET"):
        await ensure_url(core, env, roles["runtime"], log, pooler=True, user=runtime)
    await ensure_url(
        core, env, roles["owner"], log, user=env["ROLE_OWNER"], secret=env["OWNER_URL_SECRET"]
    )
    await ensure_url(
        core, env, roles["search"], log, user=env["ROLE_SEARCH"], secret=env["SEARCH_URL_SECRET"]
    )
    return url


async def _main() -> None:
    from kubernetes_asyncio import client, config

    config.load_incluster_config()
    async with client.ApiClient() as api:
        await ensure(client.CoreV1Api(api), os.environ)


def main() -> None:
    asyncio.run(_main())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
