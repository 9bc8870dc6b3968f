"""Errors the pipeline raises on purpose. Each names what is wrong and, where it helps, what to do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class SafeDeployError(Exception):
    """Base class: an expected failure with a message meant for the person running the pipeline."""


class ConfigError(SafeDeployError):
    """The pipeline spec (file, environment or arguments) is invalid."""


class OverrideError(ConfigError):
    """A ``--set KEY=VALUE`` argument is malformed or conflicts with another."""


class ConfigFileError(ConfigError):
    """The config file (``pipeline.toml``, ``--config``, ``$SAFEDEPLOY_CONFIG``) is missing or unreadable TOML."""


class AwsCredentialsError(ConfigError):
    """``--target aws``: no, refused or expired credentials, no region, or another account's."""


@dataclass(frozen=True)
class DataProblem:
    """One problem found in an input table: where it is and what is wrong."""

    line: int | None
    """1-based line in the file (the header is line 1); ``None`` for whole-file problems."""
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class DataValidationError(SafeDeployError):
    """An input table breaks the data contract. Nothing has been written when this is raised."""

    MAX_SHOWN = 10

    def __init__(self, path: Path | str, problems: Sequence[DataProblem], total: int | None = None) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        self.total = total if total is not None else len(self.problems)
        shown = "\n".join(f"  {self.path}: {p}" for p in self.problems[: self.MAX_SHOWN])
        more = self.total - min(len(self.problems), self.MAX_SHOWN)
        tail = f"\n  ... and {more} more problem(s)" if more > 0 else ""
        super().__init__(f"invalid input data in {self.path} ({self.total} problem(s)):\n{shown}{tail}")


class ArtifactError(SafeDeployError):
    """An artifact is missing, unreadable or fails its recorded checksum."""


class TrainingJobError(SafeDeployError):
    """A training job failed; the message carries the job's FailureReason."""


class GateFailedError(SafeDeployError):
    """The trained model did not pass the quality gate and was not registered."""


class PipelineLockedError(SafeDeployError):
    """Another execution of the same pipeline holds the lock."""


class ExecutionError(SafeDeployError):
    """A pipeline execution cannot be started, found or retried."""


class RegistryError(SafeDeployError):
    """A model-registry request is invalid (unknown package, illegal transition, missing reason)."""


class DeploymentError(SafeDeployError):
    """An endpoint could not be created or updated; the message carries its FailureReason."""
