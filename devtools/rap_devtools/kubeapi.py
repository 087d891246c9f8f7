"""A deliberately small Kubernetes REST client for the dev tools.

The process kubelet talks plain JSON through it (dicts in, dicts out) instead
of the generated ``kubernetes`` client: status patches, bindings and watch
streams are easier to get exactly right without a model layer in between, and
the dev tools then do not break when the generated client changes shape.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

JSON = dict[str, Any]
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, body: Any, what: str = "") -> None:
        self.status = status
        self.body = body
        message = body.get("message", "") if isinstance(body, dict) else str(body)[:300]
        super().__init__(f"{what}: HTTP {status}: {message}")


def _material(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """``<key>-data`` (base64) or ``<key>`` (a path relative to the kubeconfig)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base / entry[key]).read_bytes()
    return None


class KubeApi:
    """JSON over HTTPS with the credentials of a kubeconfig's current context."""

    def __init__(self, kubeconfig: Path, *, timeout: float = 30.0) -> None:
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = cfg["current-context"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        base = Path(kubeconfig).parent
        self.server = cluster["server"].rstrip("/")
        ssl_ctx = ssl.create_default_context()
        ca = _material(cluster, "certificate-authority", base)
        if ca:
            ssl_ctx.load_verify_locations(cadata=ca.decode())
        cert, key = _material(user, "client-certificate", base), _material(user, "client-key", base)
        if cert and key:
            # ssl only loads key material from files; keep them only briefly.
            with tempfile.TemporaryDirectory(prefix="rap-kubeapi-") as tmp:
                (Path(tmp) / "c.pem").write_bytes(cert)
                (Path(tmp) / "k.pem").write_bytes(key)
                ssl_ctx.load_cert_chain(str(Path(tmp) / "c.pem"), str(Path(tmp) / "k.pem"))
        headers = {"Accept": "application/json", "User-Agent": "rap-devtools"}
        if user.get("token"):
            headers["Authorization"] = f"Bearer {user['token']}"
        self._ssl = ssl_ctx
        self._headers = headers
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.server,
            verify=ssl_ctx,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        for attempt in range(4):
            try:
                r = self._http.request(
                    method, path, content=content, params=params, headers=headers
                )
            except httpx.TransportError as e:
                # A connect error means nothing was sent: always safe to retry.
                # Otherwise only retry what is idempotent (not POST: a create
                # that went through would come back as 409 AlreadyExists).
                if attempt == 3 or (method == "POST" and not isinstance(e, httpx.ConnectError)):
                    raise
            else:
                if r.status_code not in (429, 500, 502, 503, 504) or attempt == 3:
                    break
            time.sleep(0.2 * 2**attempt)
        try:
            data = r.json() if r.content else {}
        except ValueError:
            data = {"message": r.text}
        if r.status_code >= 400:
            raise ApiError(r.status_code, data, f"{method} {path}")
        return data

    def get(self, path: str, **params: Any) -> JSON:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any) -> JSON:
        return self.request("POST", path, body)

    def put(self, path: str, body: Any) -> JSON:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any, content_type: str = STRATEGIC) -> JSON:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str, body: Any = None) -> JSON:
        return self.request("DELETE", path, body)

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 60) -> Iterator[JSON]:
        """Yield watch events (dicts with ``type`` and ``object``) until the
        server closes the stream; ERROR events are yielded, not raised, so the
        caller can tell 410 Gone (relist) from other failures."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        # Its own connection with a read timeout past the server's, so a
        # silently dead stream is noticed.
        timeout = httpx.Timeout(10.0, read=timeout_seconds + 15.0)
        with (
            httpx.Client(
                base_url=self.server, verify=self._ssl, headers=self._headers, timeout=timeout
            ) as client,
            client.stream("GET", path, params=params) as r,
        ):
            if r.status_code >= 400:
                r.read()
                try:
                    body: Any = r.json()
                except ValueError:
                    body = r.text
                raise ApiError(r.status_code, body, f"WATCH {path}")
            for line in r.iter_lines():
                if line.strip():
                    yield json.loads(line)
