"""The approval gate as a widget: a comment, Approve and Reject, answered through the facade's ``decide``."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

from safedeploy.approval import ApprovalOutcome, Decision
from safedeploy.errors import SafeDeployError
from safedeploy.notebook.follow import follow
from safedeploy.notebook.views import as_html

if TYPE_CHECKING:
    from safedeploy.control import ControlReport
    from safedeploy.pipeline import Pipeline


class ApprovalPanel:
    """Approve or reject the execution waiting at the gate, with a comment (required), from the notebook.

    A click calls :meth:`decide`, the same ``pipeline.decide(Decision(...))`` a plain cell calls: the approval is
    recorded with the approver and the comment, and the execution resumes (locally into DeployPrd, shown live in
    the panel while it runs).
    """

    def __init__(self, pipeline: Pipeline, approver: str | None = None, comment: str = "") -> None:
        import ipywidgets as widgets  # the notebook dependency group

        self.pipeline = pipeline
        self.approver = approver or getpass.getuser()
        self.comment = widgets.Textarea(
            value=comment, placeholder="Why? (recorded with the decision)", description="Comment", rows=2
        )
        self.approve_button = widgets.Button(description="Approve", button_style="success", icon="check")
        self.reject_button = widgets.Button(description="Reject", button_style="danger", icon="times")
        self.result = widgets.HTML()
        self.approve_button.on_click(lambda _button: self.decide("Approved"))
        self.reject_button.on_click(lambda _button: self.decide("Rejected"))
        self.widget = widgets.VBox(
            [
                widgets.HTML(f"<b>Shall this model be put into production?</b> (deciding as {self.approver})"),
                self.comment,
                widgets.HBox([self.approve_button, self.reject_button]),
                self.result,
            ]
        )
        self.report: ControlReport[object] | None = None

    def _show(self, text: str) -> None:
        self.result.value = as_html(text)

    def decide(self, outcome: ApprovalOutcome) -> ControlReport[object] | None:
        """Record ``outcome`` with the comment typed in the panel and resume the execution.

        Returns:
            The facade's report, or None when nothing was decided (no comment, nothing waiting, a refusal): the
            panel says why and its buttons stay usable.
        """
        comment = self.comment.value.strip()
        if not comment:
            self._show("A comment is required: say why, it is recorded with the decision.")
            return None
        buttons = (self.approve_button, self.reject_button)
        for button in buttons:
            button.disabled = True
        try:
            decision = Decision(outcome, self.approver, comment)
            self.report = follow(self.pipeline, lambda: self.pipeline.decide(decision), self._show)
        except SafeDeployError as exc:
            self._show(f"Not decided: {exc}")
            for button in buttons:
                button.disabled = False
            return None
        self._show(f"{outcome} by {self.approver}: {comment}\n\n{self.report.text}")
        return self.report

    def _ipython_display_(self, **kwargs: Any) -> None:
        from IPython.display import display

        display(self.widget)  # type: ignore[no-untyped-call]
