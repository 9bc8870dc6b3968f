"""The notebook's helpers without a kernel: the approval widget's buttons, the live view, following, traffic."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from safedeploy.approval import Decision
from safedeploy.aws import codepipeline as cp
from safedeploy.control import ControlReport
from safedeploy.control.aws import AwsStatus
from safedeploy.errors import ExecutionError, SafeDeployError
from safedeploy.notebook.approval_panel import ApprovalPanel
from safedeploy.notebook.endpoints import Answer, RestApi
from safedeploy.notebook.follow import follow, is_settled
from safedeploy.notebook.traffic import describe_answers
from safedeploy.notebook.views import LiveView
from safedeploy.runner import PipelineExecution, StageExecution, Status


def _execution(status: Status, started: datetime | None = None) -> PipelineExecution:
    return PipelineExecution(
        pipeline_name="p",
        execution_id="e-1",
        status=status,
        trigger="test",
        started_at=started or datetime.now(UTC),
        pid=1,
        host="h",
        spec={},
        stages=[StageExecution(name="Data", status=status)],
    )


@dataclass
class FakePipeline:
    """What the panel and ``follow`` use of the facade: ``target``, ``status()`` and ``decide()``."""

    target: str = "local"
    decisions: list[Decision] = field(default_factory=list)
    refuse: str | None = None
    status_calls: int = 0

    def status(self) -> ControlReport[object]:
        self.status_calls += 1
        return ControlReport(_execution(Status.SUCCEEDED), f"status #{self.status_calls}")

    def decide(self, decision: Decision) -> ControlReport[object]:
        if self.refuse:
            raise ExecutionError(self.refuse)
        self.decisions.append(decision)
        return ControlReport(decision, f"{decision.outcome} recorded")


def _panel(pipeline: FakePipeline, comment: str = "") -> ApprovalPanel:
    return ApprovalPanel(pipeline, approver="alice", comment=comment)  # type: ignore[arg-type]


def test_clicking_approve_calls_decide_with_the_comment_and_shows_the_outcome() -> None:
    pipeline = FakePipeline()
    panel = _panel(pipeline)
    panel.comment.value = "  metrics reviewed  "
    panel.approve_button.click()  # what a person's click does: the button's handlers run
    assert pipeline.decisions == [Decision("Approved", "alice", "metrics reviewed")]
    assert panel.report is not None and panel.report.text == "Approved recorded"
    assert "Approved by alice: metrics reviewed" in panel.result.value
    assert panel.approve_button.disabled and panel.reject_button.disabled  # decided once


def test_clicking_reject_records_a_rejection() -> None:
    pipeline = FakePipeline()
    panel = _panel(pipeline, comment="recall too low")
    panel.reject_button.click()
    assert pipeline.decisions == [Decision("Rejected", "alice", "recall too low")]


def test_no_comment_decides_nothing_and_says_why() -> None:
    pipeline = FakePipeline()
    panel = _panel(pipeline, comment="   ")
    panel.approve_button.click()
    assert pipeline.decisions == [] and panel.report is None
    assert "A comment is required" in panel.result.value
    assert not panel.approve_button.disabled


def test_a_refused_decision_is_shown_and_the_buttons_stay_usable() -> None:
    pipeline = FakePipeline(refuse="no execution of p is waiting for approval")
    panel = _panel(pipeline, comment="ok")
    assert panel.decide("Approved") is None
    assert "Not decided: no execution of p is waiting for approval" in panel.result.value
    assert not panel.approve_button.disabled and not panel.reject_button.disabled


def test_follow_redraws_while_the_call_runs_and_returns_its_result() -> None:
    pipeline = FakePipeline()
    release = threading.Event()
    shown: list[str] = []

    def action() -> str:
        release.wait(5)
        return "done"

    def view(text: str) -> None:
        shown.append(text)
        if len(shown) == 3:
            release.set()

    assert follow(pipeline, action, view, poll_s=0.01) == "done"  # type: ignore[arg-type]
    assert len(shown) >= 4 and shown[-1].startswith(f"status #{pipeline.status_calls}")
    assert "running after" in shown[0] and "settled after" in shown[-1]


def test_follow_raises_what_the_call_raised() -> None:
    def action() -> None:
        raise SafeDeployError("gate failed")

    with pytest.raises(SafeDeployError, match="gate failed"):
        follow(FakePipeline(), action, lambda _text: None, poll_s=0.01)  # type: ignore[arg-type]


def test_settled_means_ended_or_waiting_and_new_enough() -> None:
    assert is_settled(_execution(Status.SUCCEEDED)) and is_settled(_execution(Status.FAILED))
    assert not is_settled(_execution(Status.IN_PROGRESS))
    old = _execution(Status.SUCCEEDED, datetime.now(UTC) - timedelta(minutes=5))
    assert not is_settled(old, since=datetime.now(UTC))  # the previous execution, not the one just started
    assert not is_settled(None)


def test_the_live_view_prints_each_new_text_once_outside_a_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    view = LiveView()
    view("a")
    view("a")
    view("b")
    assert capsys.readouterr().out == "a\nb\n" and view.text == "b"


def test_answers_are_counted_per_version_with_the_recent_share() -> None:
    answers = [Answer(0.1 * i, 200, "1", "blue", 0.1) for i in range(20)]
    answers += [Answer(2.0 + 0.1 * i, 200, "2", "green", 0.2) for i in range(5)]
    answers.append(Answer(2.6, 403, None, None, None, "Forbidden"))
    text = describe_answers(answers)
    assert "26 requests in 2.6 s" in text
    assert "v1:    20 answers" in text and "v2:     5 answers" in text
    assert "not 200: 403 x 1" in text
    assert describe_answers([]) == "no answers yet"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "http:///no-host"])
def test_the_rest_api_client_refuses_a_url_that_is_not_http(url: str) -> None:
    with pytest.raises(SafeDeployError, match="must be http"):
        RestApi(url, "key")


def _aws(status: str, *, pending: bool = False, started: datetime | None = None) -> AwsStatus:
    now = datetime.now(UTC)
    execution = cp.ExecutionSummary("x-1", status, started or now, now, "StartPipelineExecution")
    approval = cp.PendingApproval("p", "ApproveDeployment", "Approve", "token", "x-1", now, None, None)
    return AwsStatus("p", execution, [], approval if pending else None)


def test_on_aws_settled_means_waiting_at_the_approval_or_ended() -> None:
    assert is_settled(_aws("InProgress", pending=True)) and is_settled(_aws("Succeeded"))
    assert is_settled(_aws("Failed")) and not is_settled(_aws("InProgress"))
    old = _aws("Succeeded", started=datetime.now(UTC) - timedelta(hours=1))
    assert not is_settled(old, since=datetime.now(UTC))
    assert not is_settled(AwsStatus("p", None, [], None))


@dataclass
class FakeAwsPipeline:
    """CodePipeline takes the upload at once; the execution shows up, runs, then waits at the approval."""

    statuses: list[AwsStatus]
    target: str = "aws"
    polls: int = 0

    def status(self) -> ControlReport[object]:
        value = self.statuses[min(self.polls, len(self.statuses) - 1)]
        self.polls += 1
        return ControlReport(value, f"poll {self.polls}")


def test_on_aws_follow_polls_after_the_call_returned_until_the_new_execution_settles() -> None:
    earlier = datetime.now(UTC) - timedelta(hours=1)
    pipeline = FakeAwsPipeline(
        [_aws("Succeeded", started=earlier), _aws("InProgress"), _aws("InProgress"), _aws("InProgress", pending=True)]
    )
    shown: list[str] = []
    result = follow(pipeline, lambda: "uploaded", shown.append, new_execution=True, poll_s=0.01)  # type: ignore[arg-type]
    assert result == "uploaded" and pipeline.polls == 4  # the previous (succeeded) execution did not count
    assert shown[-1].startswith("poll 4") and "settled after" in shown[-1]


def test_on_aws_follow_gives_up_after_its_timeout() -> None:
    pipeline = FakeAwsPipeline([_aws("InProgress")])
    with pytest.raises(TimeoutError, match="did not settle"):
        follow(pipeline, lambda: None, lambda _t: None, poll_s=0.01, timeout_s=0.05)  # type: ignore[arg-type]
