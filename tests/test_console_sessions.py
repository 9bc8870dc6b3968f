"""Console link tokens, sessions and CSRF tokens: single use, expiry, wrong secrets (safedeploy/runtime/console)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from safedeploy.runtime.console.sessions import ConsoleAuthError, ConsoleSessions


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sessions(clock: Clock) -> ConsoleSessions[str]:
    return ConsoleSessions(token_ttl=timedelta(minutes=5), session_ttl=timedelta(hours=1), clock=clock)


def test_a_token_is_exchanged_once_for_a_session_with_its_own_secrets(sessions: ConsoleSessions[str]) -> None:
    token, expires = sessions.issue_token("pipeline-a")
    assert expires == sessions.clock() + timedelta(minutes=5) and len(token) >= 40
    session = sessions.redeem(token)
    assert session.subject == "pipeline-a"
    assert len({token, session.session_id, session.csrf_token}) == 3  # three independent secrets
    assert sessions.session(session.session_id) == session
    with pytest.raises(ConsoleAuthError, match="already used"):
        sessions.redeem(token)


def test_tokens_are_random_and_each_names_its_own_subject(sessions: ConsoleSessions[str]) -> None:
    first, _ = sessions.issue_token("a")
    second, _ = sessions.issue_token("b")
    assert first != second
    assert sessions.redeem(second).subject == "b" and sessions.redeem(first).subject == "a"


def test_an_expired_token_is_refused_and_spent(sessions: ConsoleSessions[str], clock: Clock) -> None:
    token, _ = sessions.issue_token("a")
    clock.now += timedelta(minutes=5)
    with pytest.raises(ConsoleAuthError, match="expired"):
        sessions.redeem(token)
    clock.now -= timedelta(minutes=1)  # even back in its lifetime, a refused token stays spent
    with pytest.raises(ConsoleAuthError, match="already used"):
        sessions.redeem(token)


def test_a_token_just_inside_its_lifetime_works(sessions: ConsoleSessions[str], clock: Clock) -> None:
    token, _ = sessions.issue_token("a")
    clock.now += timedelta(minutes=5) - timedelta(microseconds=1)
    assert sessions.redeem(token).subject == "a"


@pytest.mark.parametrize("wrong", ["", "x", "not-a-token-at-all-" * 3, "\udcff"])
def test_wrong_tokens_are_refused(sessions: ConsoleSessions[str], wrong: str) -> None:
    token, _ = sessions.issue_token("a")
    with pytest.raises(ConsoleAuthError, match="not valid"):
        sessions.redeem(wrong)
    with pytest.raises(ConsoleAuthError, match="not valid"):
        sessions.redeem(token[:-1])  # almost right is wrong, and spends nothing of the real one
    assert sessions.redeem(token).subject == "a"


def test_sessions_expire_and_unknown_or_missing_ones_are_refused(sessions: ConsoleSessions[str], clock: Clock) -> None:
    session = sessions.redeem(sessions.issue_token("a")[0])
    with pytest.raises(ConsoleAuthError, match="no console session"):
        sessions.session(None)
    with pytest.raises(ConsoleAuthError, match="no console session"):
        sessions.session("")
    with pytest.raises(ConsoleAuthError, match="not known"):
        sessions.session(session.csrf_token)  # the CSRF token is not a session id
    clock.now += timedelta(hours=1)
    with pytest.raises(ConsoleAuthError, match="expired"):
        sessions.session(session.session_id)
    with pytest.raises(ConsoleAuthError, match="not known"):  # forgotten once expired
        sessions.session(session.session_id)


def test_the_csrf_token_must_be_the_sessions_own(sessions: ConsoleSessions[str]) -> None:
    one = sessions.redeem(sessions.issue_token("a")[0])
    other = sessions.redeem(sessions.issue_token("a")[0])
    sessions.check_csrf(one, one.csrf_token)
    for wrong in (None, "", other.csrf_token, one.session_id, one.csrf_token + "x"):
        with pytest.raises(ConsoleAuthError, match="CSRF"):
            sessions.check_csrf(one, wrong)
