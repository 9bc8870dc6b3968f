"""Pipeline control: start, retry, status, decide, registry, rollback and destroy, the same verbs on every target.

:class:`PipelineControl` is the interface; :mod:`safedeploy.control.local` implements it with this machine's runner
and :mod:`safedeploy.control.aws` with the pipeline's AWS CodePipeline. The :class:`safedeploy.pipeline.Pipeline`
facade picks one from its target, and the CLI and the notebook talk only to the facade: no caller branches on the
target.

Every call returns a :class:`ControlReport`: the typed result (a local execution record, an upload, a CodePipeline
decision...), the text a person reads, and whether it went as asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar

from safedeploy import constants as C
from safedeploy.approval import Decision

Target = Literal["local", "aws"]
TARGETS: tuple[Target, ...] = ("local", "aws")

T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class ControlReport(Generic[T_co]):
    """What one control call did.

    Attributes:
        value: The typed result, for code (the notebook, tests).
        text: The same, for a person.
        ok: Whether it went as asked (an execution waiting at the approval gate is ok; a failed one is not).
    """

    value: T_co
    text: str
    ok: bool = True


@dataclass(frozen=True)
class DestroyOptions:
    """How far ``destroy`` goes.

    Attributes:
        keep_base_infra: AWS: delete the per-model stacks only, keep the Terraform base infrastructure.
        terraform_dir: AWS: the base infrastructure's Terraform root (default ``terraform/<environment>``).
        stack_timeout_s: AWS: how long to wait for each stack's deletion.
        model: Only this model's pipeline (``make destroy MODEL=name``): locally its state, endpoints, REST APIs
            and key, leaving every other model's pipeline serving; on AWS its per-model stacks (the base
            infrastructure stays). ``None``: everything, as before.
    """

    keep_base_infra: bool = False
    terraform_dir: Path | None = None
    stack_timeout_s: float = C.STACK_DELETE_TIMEOUT_S
    model: str | None = None


Progress = Callable[[str], None]
"""Receives a line as soon as a long call has something to say (a stack deleted, ...)."""


class PipelineControl(Protocol):
    """The verbs of a pipeline, on one target."""

    @property
    def target(self) -> Target:
        """Where the pipeline runs."""
        ...

    def start(self, trigger: str) -> ControlReport[object]:
        """Start an execution on the spec's data source (locally it runs to the end or to the approval gate)."""
        ...

    def retry(self, execution_id: str | None = None) -> ControlReport[object]:
        """Resume the latest (or the given) failed execution from its failed stage."""
        ...

    def status(self, execution_id: str | None = None, *, as_json: bool = False) -> ControlReport[object]:
        """The latest (or the given) execution, stage by stage."""
        ...

    def history(self) -> ControlReport[object]:
        """Every execution, oldest first (on AWS: the latest hundred)."""
        ...

    def decide(self, decision: Decision, execution_id: str | None = None) -> ControlReport[object]:
        """Answer the approval gate of the execution waiting there (the latest one by default)."""
        ...

    def registry(self) -> ControlReport[object]:
        """The model's registered versions: which serves where, which were rolled back."""
        ...

    def check_retraining(self, trigger: str, alarm: str = "", since: str = "") -> ControlReport[object]:
        """One retraining look: decide (debounce, one at a time, cooldown) and start one on new data if due.

        Locally the trigger alarms' records say what fired; on AWS the retraining build passes the alarm the state
        machine was started for (``alarm``, in ALARM since ``since``; none for the retrain schedule).
        """
        ...

    def retraining_status(self) -> ControlReport[object]:
        """The last retraining decision and the last retraining started, with its trigger."""
        ...

    def rollback(self, version: int | None, by: str) -> ControlReport[object]:
        """Return production to the version that served before the current one, or to ``version``.

        Not ok (nothing changed) when the rollback itself was rolled back; a version that cannot be chosen raises.
        """
        ...

    def destroy_plan(self, options: DestroyOptions) -> str:
        """What :meth:`destroy` would delete, for a person to confirm."""
        ...

    def destroy(self, options: DestroyOptions, progress: Progress) -> ControlReport[object]:
        """Delete what the pipeline created; a second call finishes what the first could not."""
        ...
