"""Streaming sessions of the service: a bounded set of open :class:`~exprfusion.inference.streaming.StreamingPredictor`.

A session is opened, fed chunks in order, and closed. Sessions idle for longer than ``idle_seconds`` are dropped
(checked on every call); at most ``max_sessions`` are open at once, and opening one more is refused (the service
answers 429). Sessions live in the memory of the worker process that opened them: serve streaming with one worker
per service instance (the default), or route a session's requests to one worker.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from exprfusion.inference.streaming import FinalLabels, StreamingPredictor


class TooManySessions(Exception):
    """Every session slot is taken."""


class UnknownSession(Exception):
    """No open session has this id (never opened, closed, or dropped for being idle)."""


@dataclass
class Session:
    """One open stream and when it was last used."""

    predictor: StreamingPredictor
    last_used: float
    fps: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Face and audio masks of the frames received but not yet released, in order (for monitoring).
    pending_masks: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    )

    def receive_masks(self, face_mask: np.ndarray, audio_mask: np.ndarray) -> None:
        """Queue a chunk's masks until its frames' labels are released."""
        face, audio = self.pending_masks
        self.pending_masks = (np.concatenate([face, face_mask]), np.concatenate([audio, audio_mask]))

    def release_masks(self, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """The masks of the next ``n_frames`` released frames (labels are released in frame order)."""
        face, audio = self.pending_masks
        self.pending_masks = (face[n_frames:], audio[n_frames:])
        return face[:n_frames], audio[:n_frames]


class SessionStore:
    """Open, feed and close streaming sessions, at most ``max_sessions`` at a time.

    Args:
        factory: makes the predictor of a new session.
        max_sessions: open sessions allowed at once.
        idle_seconds: a session unused for this long is dropped.
        clock: seconds, monotonic (injectable for tests of the expiry).
        on_release: called with the session and each batch of labels it finalises, in frame order (monitoring).
    """

    def __init__(
        self,
        factory: Callable[[], StreamingPredictor],
        max_sessions: int,
        idle_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_release: Callable[[Session, FinalLabels], None] | None = None,
    ) -> None:
        self.factory = factory
        self.on_release = on_release  # called under the session's lock with each batch of final labels
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._sessions)

    def _expire(self) -> None:
        """Drop idle sessions (the caller holds the lock)."""
        now = self.clock()
        for key in [key for key, s in self._sessions.items() if now - s.last_used > self.idle_seconds]:
            del self._sessions[key]

    def open(self, fps: float | None = None) -> tuple[str, Session]:
        """A new session's id and the session; :class:`TooManySessions` when every slot is taken."""
        with self._lock:
            self._expire()
            if len(self._sessions) >= self.max_sessions:
                raise TooManySessions(
                    f"{self.max_sessions} streaming sessions are open (the limit); close one, or retry once an idle "
                    f"one expires after {self.idle_seconds:g} s"
                )
            key = uuid.uuid4().hex
            session = Session(predictor=self.factory(), last_used=self.clock(), fps=fps)
            self._sessions[key] = session
            return key, session

    def _get(self, key: str, remove: bool = False) -> Session:
        with self._lock:
            self._expire()
            session = self._sessions.pop(key, None) if remove else self._sessions.get(key)
            if session is None:
                raise UnknownSession(f"no open streaming session {key!r} (closed, expired when idle, or never opened)")
            session.last_used = self.clock()
            return session

    def append(self, key: str, **chunk) -> tuple[Session, FinalLabels]:
        """Feed the next chunk (``visual``, ``audio``, ``face_mask``, ``audio_mask``) to a session, in order."""
        session = self._get(key)
        with session.lock:
            labels = session.predictor.append(**chunk)
            session.receive_masks(np.asarray(chunk["face_mask"], bool), np.asarray(chunk["audio_mask"], bool))
            if self.on_release is not None:
                self.on_release(session, labels)
            session.last_used = self.clock()
        return session, labels

    def close(self, key: str) -> tuple[Session, FinalLabels]:
        """End a session: its remaining labels; the slot is freed."""
        session = self._get(key, remove=True)
        with session.lock:
            labels = session.predictor.close()
            if self.on_release is not None:
                self.on_release(session, labels)
            return session, labels
