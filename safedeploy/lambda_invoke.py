"""Invoking a Lambda handler in this process: the context object Lambda passes, and loading a handler file.

Used by the local API gateway (the runtime process) for the REST API's handler, and by the deployment
controller (the pipeline's process) for CodeDeploy's lifecycle hooks, which it invokes in-process.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safedeploy import constants as C
from safedeploy.ids import random_uuid

LAMBDA_TIMEOUT_S = 29.0
"""API Gateway's integration timeout."""
Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The context object Lambda passes to a handler."""

    function_name: str
    aws_request_id: str = field(default_factory=random_uuid)
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    region: str = "us-east-1"
    account_id: str = C.LOCAL_ACCOUNT_ID
    deadline: float = field(default_factory=lambda: time.monotonic() + LAMBDA_TIMEOUT_S)

    @property
    def invoked_function_arn(self) -> str:
        """The function's ARN."""
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """Its CloudWatch log group."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """Its log stream."""
        return f"{time.strftime('%Y/%m/%d')}/[{self.function_version}]local"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the timeout."""
        return max(int((self.deadline - time.monotonic()) * 1000), 0)


def load_handler_factory(spec: str) -> Callable[[Mapping[str, str], Any], Handler]:
    """Import ``<file.py>:<factory>`` (a handler file and the function that builds its handler)."""
    file_name, _, factory_name = spec.partition(":")
    path = Path(file_name)
    if not path.is_file() or not factory_name:
        raise ValueError(f"handler {spec!r}: expected <existing file.py>:<factory function>")
    module_name = f"_lambda_{path.parent.name}_{path.stem}_{abs(hash(path))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"handler {spec!r}: cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ValueError(f"handler {spec!r}: {path} has no function {factory_name}")
    return factory  # type: ignore[no-any-return]
