"""``python -m safedeploy.retraining run --spec FILE --trigger TEXT``: one retraining, started detached by the trigger.

The spec file is the pipeline's spec with ``data.source`` pointing at the combined table; the execution records
``--trigger`` (the alarm and since when). The approval gate is answered yes only with ``retraining.auto_approve``;
otherwise the execution waits there (``make approve`` / ``make reject``), as any unattended run does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from safedeploy.approval import Approver, AutoApprove, Deferred
from safedeploy.filemodes import use_private_umask


def run(spec_file: Path, trigger: str) -> int:
    """Run the retraining's execution to the end or to the approval gate; 0 unless it failed."""
    from safedeploy.pipeline import Pipeline  # the child process only
    from safedeploy.runner import Status
    from safedeploy.spec import PipelineSpec

    spec = PipelineSpec.model_validate_json(spec_file.read_text("utf-8"))
    approver: Approver = (
        AutoApprove("retraining (retraining.auto_approve)", "approved automatically (retraining.auto_approve)")
        if spec.retraining.auto_approve
        else Deferred()
    )
    pipeline = Pipeline(spec, approver=approver)
    log = logging.getLogger(__name__)
    waiting = pipeline.waiting_execution()
    if waiting is not None:  # started since the trigger looked: a new execution would supersede someone's gate
        log.error(
            "not retraining: execution %s waits at the approval gate (make approve / make reject)", waiting.execution_id
        )
        return 1
    execution = pipeline.run(trigger=trigger)
    log.info("retraining execution %s: %s", execution.execution_id, execution.status)
    return 0 if execution.status == Status.SUCCEEDED or execution.awaiting_approval is not None else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m safedeploy.retraining", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("run", help="run one retraining execution")
    start.add_argument("--spec", type=Path, required=True, help="the spec (JSON) with data.source set")
    start.add_argument("--trigger", required=True, help="what triggered it (recorded on the execution)")
    args = parser.parse_args(argv)
    use_private_umask()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    return run(args.spec, args.trigger)


if __name__ == "__main__":
    sys.exit(main())
