"""What a request body may be, checked before any endpoint reads it (issue 19).

Every AidMesh API takes JSON and nothing else, of a bounded size:
- a body larger than `http_max_body_bytes` is refused with 413 naming the limit, whether
  its Content-Length says so or it is sent in chunks (counted as it arrives); nothing of it
  is kept (a 10 MB body used to be stored whole as a rejected Kobo submission);
- a body sent as anything but JSON is refused with 415 (it used to reach the endpoint as a
  missing body and come back as a 422 about missing fields).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Documented on every route of a service's API (service.py).
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body could not be read (FastAPI's answer to a broken body)"},
    413: {"description": "The body is larger than the service accepts: `detail` names the limit"},
    415: {"description": "The body is not JSON (Content-Type application/json)"},
}

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class _TooLarge(HTTPException):
    """Raised while the endpoint reads the body: FastAPI passes an HTTPException through
    (any other error while reading the body becomes its 400)."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class RequestBodyLimits:
    """ASGI middleware: JSON bodies only, of at most `max_bytes`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if length is not None and length.isdigit() and int(length) > self._max_bytes:
            await self._refuse(send, 413, self._too_large())
            return
        has_body = chunked or (length is not None and length != b"0")
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if has_body and not _is_json(content_type):
            await self._refuse(send, 415, "send the body as JSON: Content-Type application/json")
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_bytes:
                    raise _TooLarge(self._too_large())
            return message

        async def noting(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, counted, noting)
        except _TooLarge as exc:
            if not started:
                await self._refuse(send, 413, exc.detail)

    def _too_large(self) -> str:
        return f"the body is larger than {self._max_bytes} bytes, the most this service accepts"

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _is_json(content_type: bytes) -> bool:
    return content_type == b"application/json" or content_type.endswith(b"+json")
