"""Who may see the console: one-time link tokens, server-side sessions and their CSRF tokens.

``safedeploy console`` asks the runtime (a SigV4-signed ``POST /_local/console/tokens``) for a **link token**:
random (256 bits), good for one first visit within :data:`~safedeploy.constants.CONSOLE_TOKEN_TTL_S`. The first
``GET /console?token=...`` redeems it (it is gone afterwards, used or not) for a **session**: a new random id kept
only by the runtime and in an HttpOnly, SameSite=Strict cookie, with its own expiry and its own **CSRF token**,
which the page sends back with every state-changing POST.

Secrets are kept as their SHA-256 digests and looked up by digest, then compared with :func:`hmac.compare_digest`:
neither the dictionary lookup nor the comparison depends on how much of a guessed secret is right. Every session
remembers the pipeline (its spec) whose ``safedeploy console`` created the link: one runtime may serve several.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from safedeploy import constants as C

T = TypeVar("T")
TOKEN_BYTES = 32


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class ConsoleAuthError(Exception):
    """A console request is refused; ``reason`` says why (shown on the 401/403 page)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Session(Generic[T]):
    """A signed-in browser: its id and CSRF token (secrets), what it watches, and until when."""

    session_id: str
    csrf_token: str
    subject: T
    expires_at: datetime


@dataclass(frozen=True)
class _Pending(Generic[T]):
    digest: str
    subject: T
    expires_at: datetime


class ConsoleSessions(Generic[T]):
    """Link tokens and sessions, in the runtime's memory only (a restarted runtime needs a new link).

    ``T`` is what a link gives access to (the runtime's console: the pipeline's spec).
    """

    def __init__(
        self,
        token_ttl: timedelta = timedelta(seconds=C.CONSOLE_TOKEN_TTL_S),
        session_ttl: timedelta = timedelta(seconds=C.CONSOLE_SESSION_TTL_S),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.token_ttl = token_ttl
        self.session_ttl = session_ttl
        self.clock = clock
        self._tokens: dict[str, _Pending[T]] = {}
        self._sessions: dict[str, tuple[str, Session[T]]] = {}
        self._lock = threading.Lock()

    def issue_token(self, subject: T) -> tuple[str, datetime]:
        """A new one-time link token for ``subject`` and when it expires."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires = self.clock() + self.token_ttl
        with self._lock:
            self._forget_expired()
            self._tokens[_digest(token)] = _Pending(_digest(token), subject, expires)
        return token, expires

    def redeem(self, token: str) -> Session[T]:
        """Exchange a link token for a new session; the token is spent whatever the outcome.

        Raises:
            ConsoleAuthError: unknown, already used or expired token.
        """
        digest = _digest(token)
        with self._lock:
            pending = self._tokens.pop(digest, None)
            if pending is None or not hmac.compare_digest(pending.digest, digest):
                raise ConsoleAuthError("this console link is not valid: it was already used, or never issued")
            if self.clock() >= pending.expires_at:
                raise ConsoleAuthError("this console link has expired (links are good for one visit within minutes)")
            session = Session(
                session_id=secrets.token_urlsafe(TOKEN_BYTES),
                csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
                subject=pending.subject,
                expires_at=self.clock() + self.session_ttl,
            )
            self._sessions[_digest(session.session_id)] = (_digest(session.session_id), session)
            return session

    def session(self, session_id: str | None) -> Session[T]:
        """The live session whose id the cookie carries.

        Raises:
            ConsoleAuthError: no cookie, an unknown session, or an expired one (then forgotten).
        """
        if not session_id:
            raise ConsoleAuthError("no console session (open the link `make console` prints)")
        digest = _digest(session_id)
        with self._lock:
            entry = self._sessions.get(digest)
            if entry is None or not hmac.compare_digest(entry[0], digest):
                raise ConsoleAuthError("this console session is not known to the runtime (it may have restarted)")
            session = entry[1]
            if self.clock() >= session.expires_at:
                del self._sessions[digest]
                raise ConsoleAuthError("this console session has expired")
            return session

    def check_csrf(self, session: Session[T], csrf_token: str | None) -> None:
        """Refuse a state-changing request whose CSRF token is not the session's own.

        Raises:
            ConsoleAuthError: missing or wrong token.
        """
        if not csrf_token:
            raise ConsoleAuthError("the request carries no CSRF token: reload the console page")
        if not hmac.compare_digest(_digest(session.csrf_token), _digest(csrf_token)):
            raise ConsoleAuthError("the request's CSRF token is not this session's: reload the console page")

    def _forget_expired(self) -> None:
        now = self.clock()
        for digest in [d for d, p in self._tokens.items() if now >= p.expires_at]:
            del self._tokens[digest]
        for digest in [d for d, (_, s) in self._sessions.items() if now >= s.expires_at]:
            del self._sessions[digest]
