"""Monitoring schedules and their executions, as ``DescribeMonitoringSchedule``/``ListMonitoringExecutions`` say.

Kept as JSON files under ``<state>/monitoring/<schedule>/``, written atomically.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from safedeploy.atomic import atomic_write_text
from safedeploy.errors import SafeDeployError

ExecutionStatus = Literal["InProgress", "Completed", "CompletedWithViolations", "Failed", "InsufficientData"]


class MonitoringError(SafeDeployError):
    """Monitoring cannot run (no schedule, no baseline, a failed job); the message says what to do."""


class BaselineFiles(BaseModel):
    """A version's baseline, as the registry records it (URIs and sha256)."""

    statistics: str
    constraints: str
    feature_schema: str
    output_statistics: str | None = None
    output_constraints: str | None = None
    sha256: dict[str, str] = {}


class MonitoringSchedule(BaseModel):
    """One endpoint's data-quality schedule."""

    MonitoringScheduleName: str
    MonitoringScheduleStatus: Literal["Scheduled", "Stopped"] = "Scheduled"
    MonitoringType: Literal["DataQuality", "ModelQuality"] = "DataQuality"
    ScheduleExpression: str
    EndpointName: str
    VariantName: str
    ModelPackageVersion: int
    Baseline: BaselineFiles
    CaptureUri: str
    CreationTime: datetime
    LastModifiedTime: datetime
    EndpointSince: datetime | None = None
    """When the schedule was pointed at ``EndpointName`` (a new production endpoint starts a new history)."""
    TimeScale: float = 1.0
    Anchor: datetime
    """Wall time at which the schedule's model clock equals the wall clock (the scaled clock's origin)."""
    GroundTruthUri: str | None = None
    """ModelQuality: where labels are uploaded (``naming.ground_truth_uri``)."""
    LabelDelaySeconds: float = 0.0
    """ModelQuality: wall seconds a window waits for its labels (``label_delay_periods`` on the scaled clock)."""
    Spec: dict[str, Any] = Field(default_factory=dict)
    """The resolved pipeline spec the schedule was created with (the runtime's scheduler runs executions with it)."""


class MonitoringExecution(BaseModel):
    """One execution (``MonitoringExecutionSummary`` fields, plus the window and what the job found)."""

    MonitoringScheduleName: str
    ScheduledTime: datetime
    CreationTime: datetime
    LastModifiedTime: datetime
    MonitoringExecutionStatus: ExecutionStatus
    ProcessingJobName: str
    ProcessingJobArn: str
    EndpointName: str
    MonitoringType: Literal["DataQuality", "ModelQuality"] = "DataQuality"
    FailureReason: str | None = None
    ExitMessage: str | None = None
    ModelPackageVersion: int
    Trigger: str
    WindowStart: datetime
    WindowEnd: datetime
    ReportUri: str | None = None
    Summary: dict[str, Any] = Field(default_factory=dict)
    Violations: list[dict[str, Any]] = Field(default_factory=list)
    Metrics: dict[str, float] = Field(default_factory=dict)


class MonitoringRecords:
    """``<root>/<schedule>/schedule.json`` and ``<root>/<schedule>/executions/*.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def schedule_path(self, name: str) -> Path:
        """The schedule's file."""
        return self.root / name / "schedule.json"

    def lock_path(self, name: str) -> Path:
        """Held while an execution of the schedule runs (one at a time)."""
        return self.root / name / "execution.lock"

    def save_schedule(self, schedule: MonitoringSchedule) -> None:
        """Create or replace the schedule."""
        atomic_write_text(self.schedule_path(schedule.MonitoringScheduleName), schedule.model_dump_json(indent=2))

    def schedule(self, name: str) -> MonitoringSchedule | None:
        """The schedule, if it exists."""
        path = self.schedule_path(name)
        if not path.is_file():
            return None
        return MonitoringSchedule.model_validate(json.loads(path.read_text("utf-8")))

    def schedules(self) -> list[MonitoringSchedule]:
        """Every schedule."""
        return [
            MonitoringSchedule.model_validate(json.loads(p.read_text("utf-8")))
            for p in sorted(self.root.glob("*/schedule.json"))
        ]

    def save_execution(self, execution: MonitoringExecution) -> None:
        """Create or update an execution's record."""
        name = f"{execution.CreationTime:%Y%m%dT%H%M%S%f}-{execution.ProcessingJobName}.json"
        path = self.root / execution.MonitoringScheduleName / "executions" / name
        atomic_write_text(path, execution.model_dump_json(indent=2))

    def executions(self, name: str) -> list[MonitoringExecution]:
        """Every execution of a schedule, oldest first."""
        directory = self.root / name / "executions"
        if not directory.is_dir():
            return []
        return [
            MonitoringExecution.model_validate(json.loads(p.read_text("utf-8")))
            for p in sorted(directory.glob("*.json"))
        ]
