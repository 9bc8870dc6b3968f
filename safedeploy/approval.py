"""The manual approval gate between DeployDev and DeployPrd (CodePipeline's Manual approval action).

The gate asks the seed's question, "Shall this model be put into production?". Who answers is an
:class:`Approver` the caller picks:

* :class:`AutoApprove` answers yes at once, recording that it did and on whose behalf
  (``make deploy AUTO_APPROVE=1``: unattended runs approve explicitly, never by default);
* :class:`TerminalPrompt` asks on the terminal and waits (plain ``make deploy`` in a terminal);
* :class:`Deferred` does not answer: the execution pauses at the gate with its state saved (and the dev endpoint
  serving) until ``safedeploy approve`` / ``reject`` (``make approve`` / ``make reject``, or
  :meth:`Pipeline.approve_execution` from Python) decides and resumes that same execution.

Every decision records the approver, the comment and the time; the registry's approval status follows it. An
approval left unanswered expires (CodePipeline: after 7 days) and fails the execution with that reason.
"""

from __future__ import annotations

import getpass
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, TextIO

from pydantic import BaseModel

from safedeploy.errors import SafeDeployError

QUESTION = "Shall this model be put into production?"
ApprovalOutcome = Literal["Approved", "Rejected"]


class ApprovalRejectedError(SafeDeployError):
    """The gate was answered no: the model does not go to production."""


class ApprovalExpiredError(SafeDeployError):
    """Nobody answered the gate before it expired."""


class ManualApproval(BaseModel):
    """The gate's record in the execution (CodePipeline's approval action state, plus the decision)."""

    token: str
    question: str = QUESTION
    summary: str
    """What is being approved: model version, its metrics, the dev endpoint and its smoke test."""
    requested_at: datetime
    expires_at: datetime
    status: Literal["InProgress", "Approved", "Rejected", "Expired", "Superseded"] = "InProgress"
    approver: str | None = None
    comment: str | None = None
    decided_at: datetime | None = None

    @classmethod
    def request(cls, summary: str, timeout_seconds: float, now: datetime | None = None) -> ManualApproval:
        """A new, unanswered approval."""
        at = now or datetime.now(UTC)
        expires = at + timedelta(seconds=timeout_seconds)
        return cls(token=str(uuid.uuid4()), summary=summary, requested_at=at, expires_at=expires)

    @property
    def pending(self) -> bool:
        """Still waiting for an answer (it may have expired meanwhile: see :meth:`expired`)."""
        return self.status == "InProgress"

    def expired(self, now: datetime | None = None) -> bool:
        """Unanswered past its expiry time."""
        return self.pending and (now or datetime.now(UTC)) >= self.expires_at

    def decide(self, decision: Decision, now: datetime | None = None) -> None:
        """Record the answer.

        Raises:
            ApprovalExpiredError: the approval expired before the answer came.
            SafeDeployError: it was already answered.
        """
        at = now or datetime.now(UTC)
        if not self.pending:
            raise SafeDeployError(f"this approval was already {self.status} by {self.approver} at {self.decided_at}")
        if self.expired(at):
            raise ApprovalExpiredError(f"the approval expired at {self.expires_at:%Y-%m-%d %H:%M:%S} UTC unanswered")
        if not decision.comment.strip():
            raise SafeDeployError("an approval decision needs a comment (why), as the approval history records it")
        self.status, self.approver, self.comment = decision.outcome, decision.approver, decision.comment
        self.decided_at = at

    def describe(self) -> str:
        """``Approved by alice at 2026-12-01 10:00:00 UTC: looks good``."""
        if self.pending:
            return f"waiting for approval until {self.expires_at:%Y-%m-%d %H:%M:%S} UTC: {self.question}"
        when = f" at {self.decided_at:%Y-%m-%d %H:%M:%S} UTC" if self.decided_at else ""
        return f"{self.status} by {self.approver}{when}: {self.comment}"


@dataclass(frozen=True)
class Decision:
    """An answer to the gate."""

    outcome: ApprovalOutcome
    approver: str
    comment: str


class ApprovalPending(Exception):  # noqa: N818 - a pause, not an error: the runner saves the execution and returns
    """Raised by the gate when nobody has answered yet; the execution waits, saved, for a decision."""

    def __init__(self, approval: ManualApproval) -> None:
        super().__init__(approval.describe())
        self.approval = approval


class Approver(Protocol):
    """Who answers the gate when the execution reaches it."""

    def decide(self, approval: ManualApproval) -> Decision | None:
        """An answer now, or None to pause the execution until one is given."""
        ...


@dataclass(frozen=True)
class Deferred:
    """Nobody answers now: the execution pauses at the gate."""

    def decide(self, approval: ManualApproval) -> Decision | None:
        """No answer."""
        return None


@dataclass(frozen=True)
class AutoApprove:
    """Approve at once, explicitly, on behalf of ``approver`` (unattended runs)."""

    approver: str = ""
    comment: str = "approved automatically (AUTO_APPROVE=1)"

    def decide(self, approval: ManualApproval) -> Decision | None:
        """Yes."""
        who = self.approver or f"{getpass.getuser()} (auto-approve)"
        return Decision("Approved", who, self.comment)


@dataclass(frozen=True)
class TerminalPrompt:
    """Ask on the terminal and wait for the answer."""

    stdin: TextIO = sys.stdin
    stdout: TextIO = sys.stdout
    user: Callable[[], str] = getpass.getuser

    def decide(self, approval: ManualApproval) -> Decision | None:
        """Show what is being approved, ask, and read yes/no and a comment. End of input pauses instead."""
        print(f"\n{approval.summary}\n", file=self.stdout)
        while True:
            print(f"{approval.question} [y/n] ", end="", file=self.stdout, flush=True)
            answer = self.stdin.readline()
            if not answer:
                print("\n(no answer: the execution waits at the gate)", file=self.stdout)
                return None
            choice = answer.strip().lower()
            if choice in ("y", "yes", "n", "no"):
                break
        print("Comment (why): ", end="", file=self.stdout, flush=True)
        comment = self.stdin.readline().strip() or ("approved at the terminal" if choice[0] == "y" else "rejected")
        return Decision("Approved" if choice[0] == "y" else "Rejected", self.user(), comment)


def choose_approver(auto_approve: bool, interactive: bool | None = None) -> Approver:
    """``AutoApprove`` if asked, a terminal prompt when stdin and stdout are a terminal, else ``Deferred``."""
    if auto_approve:
        return AutoApprove()
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    return TerminalPrompt() if interactive else Deferred()
