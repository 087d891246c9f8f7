"""The fake provider's Files API, as OpenAI documents it
(https://platform.openai.com/docs/api-reference/files), the half of the Batch API that
carries its input and output (batches.py):

    POST   /v1/files               multipart `file` + `purpose`; answers the File object
                                   {id "file-…", object "file", bytes, created_at,
                                   filename, purpose, status "processed"}
    GET    /v1/files               newest first; `purpose`, `limit`, `after`
    GET    /v1/files/{id}          the File object
    GET    /v1/files/{id}/content  the bytes as uploaded (or as the batch wrote them)
    DELETE /v1/files/{id}          {id, object "file", deleted: true}

"The Batch API only supports .jsonl files up to 200 MB in size" (the upload reference):
a `batch` file whose name does not end in .jsonl, or larger than `batch_max_bytes`, is
refused with 400 at upload; any file is refused above 512 MB, the general limit. The
lines themselves are checked when a batch is created from the file (batches.py), as
OpenAI does. Unknown ids answer 404. Files live in memory until `/admin/reset`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import BodyPartReader, web

PURPOSES = frozenset(
    "assistants batch fine-tune vision user_data evals".split()
)  # what an upload may name; batch_output is the Batch API's own
MAX_BYTES = 512 * 1024 * 1024
CHUNK = 1 << 20


class Provider(Protocol):
    """What the Files and Batch APIs use of the fake provider (server.FakeProvider)."""

    config: Any
    log: list[dict[str, Any]]
    t0: float

    def _authorized(self, request: web.Request) -> bool: ...

    def invalid(self, body: dict[str, Any]) -> tuple[int, str, str] | None: ...

    async def completion(
        self,
        body: dict[str, Any],
        tracks: list[dict[str, Any]],
        repair: bool,
        entry: dict[str, Any],
    ) -> dict[str, Any]: ...


def api_error(
    status: int, message: str, code: str | None, param: str | None = None
) -> web.Response:
    """OpenAI's error body (https://platform.openai.com/docs/guides/error-codes)."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": code, "param": param}},
        status=status,
    )


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def page(
    items: list[dict[str, Any]], query: Any, *, default_limit: int, max_limit: int
) -> dict[str, Any] | web.Response:
    """A cursor page of `items` (newest first) as OpenAI's list endpoints answer:
    `data`, `first_id`, `last_id`, `has_more`; `after` is the id the page starts after."""
    try:
        limit = int(query.get("limit", default_limit))
    except ValueError:
        return api_error(400, "Invalid 'limit': must be an integer.", "invalid_value", "limit")
    if not 1 <= limit <= max_limit:
        return api_error(
            400, f"Invalid 'limit': must be between 1 and {max_limit}.", "invalid_value", "limit"
        )
    after = query.get("after")
    if after:
        ids = [i["id"] for i in items]
        if after not in ids:
            return api_error(404, f"No such object: {after!r}", None, "after")
        items = items[ids.index(after) + 1 :]
    data = items[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(items) > limit,
    }


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    created_at: int
    data: bytes

    def obj(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",  # deprecated, still sent
            "status_details": None,
            "expires_at": None,
        }


class FilesApi:
    """The Files API routes, and the store the Batch API reads and writes."""

    def __init__(self, provider: Provider, operations: list[dict[str, Any]]) -> None:
        self.provider = provider
        self.operations = operations  # shared with the Batch API: GET /admin/batches
        self.files: dict[str, StoredFile] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/files", self.create)
        router.add_get("/v1/files", self.list)
        router.add_get("/v1/files/{id}", self.retrieve)
        router.add_get("/v1/files/{id}/content", self.content)
        router.add_delete("/v1/files/{id}", self.delete)

    def reset(self) -> None:
        self.files.clear()

    def store(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        f = StoredFile(new_id("file-"), filename, purpose, int(time.time()), data)
        self.files[f.id] = f
        return f

    def note(self, op: str, status: int, **details: Any) -> None:
        now = time.monotonic()
        self.operations.append(
            {"t": round(now - self.provider.t0, 6), "wall": time.time(), "op": op,
             "status": status, **details}
        )  # fmt: skip

    def refused(self, request: web.Request) -> web.Response | None:
        """The answer to a request the provider will not serve (bad key, down), or None."""
        c = self.provider.config
        if not self.provider._authorized(request):
            return api_error(401, "Incorrect API key provided.", "invalid_api_key")
        if c.down:
            return api_error(c.fail_status, "the fake provider is failing", "server_error")
        return None

    async def create(self, request: web.Request) -> web.Response:
        if (refused := self.refused(request)) is not None:
            self.note("files.create", refused.status)
            return refused
        response, details = await self._create(request)
        self.note("files.create", response.status, **details)
        return response

    async def _create(self, request: web.Request) -> tuple[web.Response, dict[str, Any]]:
        if not request.content_type.startswith("multipart/"):
            return api_error(400, "Expected a multipart/form-data body.", None), {}
        purpose: str | None = None
        filename: str | None = None
        data = bytearray()
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = (await part.text()).strip()
            elif part.name == "file":
                filename = part.filename or "upload"
                while chunk := await part.read_chunk(CHUNK):
                    data += chunk
                    if len(data) > MAX_BYTES:
                        return api_error(400, "File is larger than 512 MB.", None, "file"), {}
        if filename is None:
            return api_error(400, "Missing required parameter: 'file'.", None, "file"), {}
        if purpose not in PURPOSES:
            return api_error(
                400, f"Invalid value for 'purpose': {purpose!r}.", "invalid_value", "purpose"
            ), {}
        details = {"filename": filename, "purpose": purpose, "bytes": len(data)}
        if purpose == "batch":
            if not filename.endswith(".jsonl"):
                return api_error(
                    400, "Invalid file format for Batch API. Must be .jsonl", None, "file"
                ), details
            limit = int(self.provider.config.batch_max_bytes)
            if len(data) > limit:
                return api_error(
                    400, f"File is larger than the Batch API's {limit} bytes.", None, "file"
                ), details
        f = self.store(filename, purpose, bytes(data))
        return web.json_response(f.obj()), {**details, "file": f.id}

    def _get(self, request: web.Request) -> StoredFile | web.Response:
        f = self.files.get(request.match_info["id"])
        if f is None:
            return api_error(404, f"No such File object: {request.match_info['id']}", None, "id")
        return f

    async def list(self, request: web.Request) -> web.Response:
        if (refused := self.refused(request)) is not None:
            return refused
        purpose = request.query.get("purpose")
        items = [
            f.obj()
            for f in reversed(self.files.values())  # insertion order: newest last
            if purpose is None or f.purpose == purpose
        ]
        answer = page(items, request.query, default_limit=10_000, max_limit=10_000)
        return answer if isinstance(answer, web.Response) else web.json_response(answer)

    async def retrieve(self, request: web.Request) -> web.Response:
        if (refused := self.refused(request)) is not None:
            return refused
        f = self._get(request)
        return f if isinstance(f, web.Response) else web.json_response(f.obj())

    async def content(self, request: web.Request) -> web.Response:
        if (refused := self.refused(request)) is not None:
            self.note("files.content", refused.status, file=request.match_info["id"])
            return refused
        f = self._get(request)
        self.note("files.content", f.status if isinstance(f, web.Response) else 200,
                  file=request.match_info["id"])  # fmt: skip
        if isinstance(f, web.Response):
            return f
        return web.Response(body=f.data, content_type="application/octet-stream")

    async def delete(self, request: web.Request) -> web.Response:
        if (refused := self.refused(request)) is not None:
            return refused
        f = self._get(request)
        self.note("files.delete", f.status if isinstance(f, web.Response) else 200,
                  file=request.match_info["id"])  # fmt: skip
        if isinstance(f, web.Response):
            return f
        del self.files[f.id]
        return web.json_response({"id": f.id, "object": "file", "deleted": True})
