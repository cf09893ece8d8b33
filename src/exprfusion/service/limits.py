"""The service's request limits (environment variables) and the ASGI middleware that guards its endpoints.

``EXPRFUSION_MAX_FRAMES`` bounds the frames of one video, ``EXPRFUSION_MAX_REQUEST_BYTES`` a request body and
``EXPRFUSION_MAX_JSON_BYTES`` a JSON body, which costs far more memory per value to parse (types, bounds and defaults:
:class:`exprfusion.core.environment.Environment`). A body over its limit is answered 413, and a body of a media type
the endpoint does not read (a form, a pickle) 415, before BentoML parses anything.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from exprfusion.core.environment import environment, variable

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


async def _refuse(send: Send, status: int, message: str) -> None:
    """Answer ``status`` with the JSON body ``{"error": message}``."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: on the routes of ``rules``, 415 for a body of another media type, 413 for one over the limit.

    Any other request's body is bounded by ``max_bytes``. A declared ``Content-Length`` over the limit is refused
    at once; otherwise the body is read, counting, up to the limit (chunked uploads included) and handed on whole.
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
        media_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if rule.media_types and media_type and media_type not in rule.media_types:
            await _refuse(send, 415, f"{path} reads {' or '.join(rule.media_types)}, not Content-Type {media_type!r}")
            return
        too_large = f"request body over the limit of {rule.max_bytes} bytes for {path} ({rule.setting})"
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > rule.max_bytes:
            await _refuse(send, 413, too_large)
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
                await _refuse(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
