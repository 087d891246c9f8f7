"""How the operator logs in to the API, said once in its log.

In a pod: the ServiceAccount token the kubelet projects (kopf re-reads it on a
401, so rotated tokens work). Elsewhere: the kubeconfig ($KUBECONFIG). The log
line names who we are and where we connect, never the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from pathlib import Path
from typing import Any

import kopf

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def token_subject(token: str) -> str | None:
    """The `sub` claim of a ServiceAccount JWT (system:serviceaccount:NS:NAME),
    read without verifying: it only labels a log line."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not os.environ.get("KUBECONFIG")


@kopf.on.login()
def login(logger: logging.Logger | Any, **kwargs: Any) -> kopf.ConnectionInfo | None:
    if in_cluster() and (SA_DIR / "token").exists():
        info = kopf.login_with_service_account(**kwargs)
        if info is not None:
            who = token_subject(info.token or "") or "an unnamed ServiceAccount"
            logger.info("logged in in-cluster as %s, API server %s", who, info.server)
        return info
    info = kopf.login_with_kubeconfig(**kwargs)
    if info is not None:
        who = f" as {info.username}" if info.username else ""
        logger.info("logged in with kubeconfig%s, API server %s", who, info.server)
    return info
