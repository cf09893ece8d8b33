"""The service's request limits (environment variables) and the ASGI middleware that guards its endpoints.

``EXPRFUSION_MAX_FRAMES`` bounds the frames of one video, ``EXPRFUSION_MAX_REQUEST_BYTES`` a request body and
``EXPRFUSION_MAX_JSON_BYTES`` a JSON body, which costs far more memory per value to parse (types, bounds and defaults:
:class:`exprfusion.core.environment.Environment`). A body over its limit is answered 413, and a body of a media type
the endpoint does not read (a form, a pickle) 415, before BentoML parses anything.

A refused body of up to :data:`DRAIN_BYTES` is read and thrown away before the answer goes out: a client that sends
its whole body before it reads the answer (Python's ``urllib``) would otherwise find the connection reset instead of
the 413 or 415. A client that asked ``Expect: 100-continue`` (curl, for large bodies) has sent no body yet and gets
the answer at once; so does a larger body, on a connection closed after the answer.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from exprfusion.core.environment import environment, variable
from exprfusion.service.workers import release_freed_memory

MAX_FRAMES_ENV = variable("max_frames")
MAX_REQUEST_BYTES_ENV = variable("max_request_bytes")
MAX_JSON_BYTES_ENV = variable("max_json_bytes")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Message, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServingLimits:
    """The most frames one video may have, and the most bytes one request body (one JSON body) may hold."""

    max_frames: int
    max_request_bytes: int
    max_json_bytes: int

    @classmethod
    def from_env(cls) -> ServingLimits:
        """The limits the environment variables set, else the defaults; a JSON body's is never above any body's."""
        env = environment()
        return cls(
            max_frames=env.max_frames,
            max_request_bytes=env.max_request_bytes,
            max_json_bytes=min(env.max_json_bytes, env.max_request_bytes),
        )


@dataclass(frozen=True)
class BodyRule:
    """What one route reads: its ``Content-Type`` values (none sent: read as the first) and its body limit."""

    media_types: tuple[str, ...]
    max_bytes: int
    setting: str  # the environment variable that sets ``max_bytes``, for messages


DRAIN_BYTES = 64 * 1024 * 1024
RELEASE_BYTES = 64 * 1024 * 1024
"""After a body at least this large is answered, the memory freed is handed back to the system
(:func:`exprfusion.service.workers.release_freed_memory`)."""
"""The most bytes of a refused body read (and thrown away) so that the client receives the refusal."""


async def _drain(receive: Receive, budget: int) -> bool:
    """Read and discard the rest of the request body, at most ``budget`` bytes; whether the body ended."""
    while budget >= 0:
        message = await receive()
        if message["type"] != "http.request":
            return False
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return budget >= 0
    return False


async def _refuse(send: Send, status: int, message: str, body_read: bool) -> None:
    """Answer ``status`` with the JSON body ``{"error": message}``; close the connection if the request's body was
    not read to its end (the next bytes on it would be the rest of that body)."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if not body_read:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: on the routes of ``rules``, 415 for a body of another media type, 413 for one over the limit.

    Any other request's body is bounded by ``max_bytes``. A declared ``Content-Length`` over the limit is refused
    without keeping any of the body; otherwise the body is read, counting, up to the limit (chunked uploads
    included) and then handed on, in the pieces it came in. A refused body is drained first (:data:`DRAIN_BYTES`).
    """

    def __init__(self, app: App, max_bytes: int, setting: str, rules: dict[str, BodyRule]) -> None:
        self.app = app
        self.rules = rules
        self.default = BodyRule(media_types=(), max_bytes=max_bytes, setting=setting)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        """Pass non-HTTP traffic through; check an HTTP request's media type and body size, then call the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        rule = self.rules.get(path, self.default)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        length = int(declared) if declared.isdigit() else None
        # Expect: 100-continue: the client sends the body only once told to (by the first receive), so not at all.
        drain = headers.get(b"expect", b"").lower() != b"100-continue" and (length or 0) <= DRAIN_BYTES

        async def refuse(status: int, message: str) -> None:
            body_read = length == 0 or (drain and await _drain(receive, DRAIN_BYTES))
            await _refuse(send, status, message, body_read)

        media_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if rule.media_types and media_type and media_type not in rule.media_types:
            await refuse(415, f"{path} reads {' or '.join(rule.media_types)}, not Content-Type {media_type!r}")
            return
        too_large = f"request body over the limit of {rule.max_bytes} bytes for {path} ({rule.setting})"
        if length is not None and length > rule.max_bytes:
            await refuse(413, too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > rule.max_bytes:
                chunks.clear()
                more = message.get("more_body", False)
                await _refuse(send, 413, too_large, not more or await _drain(receive, DRAIN_BYTES))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        # Handed on as it came, piece by piece, each let go of once handed: the app joins the pieces itself (a join
        # here too would copy the body once more and hold it twice).
        pieces = deque(chunks or [b""])
        chunks.clear()

        async def replay() -> Message:
            if not pieces:  # the whole body was handed on: what follows (a disconnect) is the client's
                return await receive()
            piece = pieces.popleft()
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

        await self.app(scope, replay, send)
        if size >= RELEASE_BYTES:  # what reading and answering a large body freed goes back to the system
            release_freed_memory()
