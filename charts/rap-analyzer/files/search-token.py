"""The chart's search-token hook (templates/search-token-job.yaml).

Runs as a Helm pre-install/pre-upgrade hook Job (an Argo CD PreSync hook) in
the project image, as `python -c <this file>`, configured by environment:

  NAMESPACE                          the release namespace
  TOKEN_SECRET / TOKEN_KEY           the Secret (and key) the search API reads its
                                     bearer token from
  SECRET_LABELS, SECRET_ANNOTATIONS  JSON objects put on the Secret when it is created

It creates TOKEN_SECRET with a random token if it does not exist, and never
touches an existing one (its RBAC may only get it): the token is generated here,
in the cluster, once, never by a render, so `helm template` (Argo CD) output
stays the same from one render to the next. Rotating it: delete the Secret and
upgrade (or sync), then restart the search pods.

The token itself is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import sys
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

# 32 random bytes (256 bits), URL-safe base64: fits an Authorization header as is.
TOKEN_BYTES = 32


async def ensure_token(core: Any, env: Mapping[str, str], log: Any = print) -> bool:
    """Create TOKEN_SECRET with a new token unless it exists; True when it was created."""
    ns, name, key = env["NAMESPACE"], env["TOKEN_SECRET"], env.get("TOKEN_KEY") or "token"
    try:
        existing = await core.read_namespaced_secret(name, ns)
    except ApiException as e:
        if e.status != 404:
            raise
    else:
        # A missing key would keep the search pods in CreateContainerConfigError;
        # fail the hook (and so the upgrade) with the reason rather than repair
        # someone's Secret.
        if not (existing.data or {}).get(key):
            raise SystemExit(
                f"Secret {ns}/{name} exists without the key {key!r}: add it, or delete "
                "the Secret to have a token generated, then retry"
            )
        log(f"Secret {ns}/{name} exists: left as it is")
        return False
    token = secrets.token_urlsafe(TOKEN_BYTES)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "labels": json.loads(env.get("SECRET_LABELS") or "{}"),
            "annotations": json.loads(env.get("SECRET_ANNOTATIONS") or "{}"),
        },
        "type": "Opaque",
        "data": {key: base64.b64encode(token.encode()).decode()},
    }
    try:
        await core.create_namespaced_secret(ns, body)
    except ApiException as e:
        if e.status != 409:
            raise
        # Created meanwhile (a concurrent hook): that one stands.
        log(f"Secret {ns}/{name} was created meanwhile: left as it is")
        return False
    log(f"created Secret {ns}/{name} with a generated token (key {key})")
    return True


async def _main() -> None:
    from kubernetes_asyncio import client, config

    config.load_incluster_config()
    async with client.ApiClient() as api:
        await ensure_token(client.CoreV1Api(api), os.environ)


def main() -> None:
    asyncio.run(_main())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
