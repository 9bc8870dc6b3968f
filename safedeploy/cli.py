"""Command line: ``safedeploy run | retry | approve | reject | status | registry | outputs | console | runtime | ...``.

Every command accepts ``--config FILE`` and repeated ``--set key=value`` (dotted spec keys; values parsed as
JSON when they parse), which take precedence over ``SAFEDEPLOY_*`` variables and the config file.

``approve``, ``reject``, ``status`` and ``destroy`` take ``--target local|aws`` (default ``local``): with ``aws``
they act on the pipeline's AWS CodePipeline and stacks, with boto3's default credentials (``AWS_PROFILE``...) in the
spec's region.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from safedeploy import constants as C
from safedeploy.approval import ApprovalOutcome, Decision, choose_approver
from safedeploy.aws.clients import AwsClients, aws_error_line, connect
from safedeploy.control import TARGETS, ControlReport, DestroyOptions
from safedeploy.errors import ConfigError
from safedeploy.filemodes import use_private_umask
from safedeploy.hints import ROLLBACK, Failure, failure_of_exception, failure_of_execution, is_expected
from safedeploy.local import daemon
from safedeploy.local.host import format_outputs
from safedeploy.pipeline import Pipeline
from safedeploy.progress import ProgressReporter
from safedeploy.runner import PipelineExecution, Status
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.spec import PipelineSpec, load_spec, parse_assignment, spec_for_model
from safedeploy.terminal import configure_logging, render_failure, reporter, stderr_console, wants_rich

if TYPE_CHECKING:
    from rich.console import Console

    from safedeploy.monitoring.monitor import Monitor

LOG = logging.getLogger("safedeploy")
EXIT_FAILED = 1
EXIT_ERROR = 2
WHERE = {"rollback": ROLLBACK, "monitor": "monitoring (outside the pipeline)"}
"""Where a command's failure happens when it is not a pipeline stage (default: before the pipeline started)."""


def _console(args: argparse.Namespace) -> Console | None:
    """The rich console on a terminal (set by :func:`main`), else ``None``: plain lines."""
    console: Console | None = getattr(args, "console", None)
    return console


def _progress(args: argparse.Namespace) -> ProgressReporter:
    progress: ProgressReporter = getattr(args, "progress", None) or reporter(None)
    return progress


def _fail(args: argparse.Namespace, failure: Failure) -> None:
    render_failure(failure, _console(args))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = dict(parse_assignment(item) for item in args.set)
    if getattr(args, "data", None) is not None:
        overrides["data.source"] = str(args.data)
    return overrides


def aws_clients(spec: PipelineSpec) -> AwsClients:
    """The AWS clients ``--target aws`` uses, credentials checked first (tests replace this)."""
    return connect(spec)


def _spec(args: argparse.Namespace) -> PipelineSpec:
    """The spec: a resolved spec file (``--spec``, as the console's decisions pass it), else config and overrides."""
    spec_file: Path | None = getattr(args, "spec", None)
    if spec_file is None:
        return load_spec(args.config, _overrides(args))
    try:
        return PipelineSpec.model_validate_json(spec_file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the spec file {spec_file}: {exc}") from None


def _pipeline(args: argparse.Namespace) -> Pipeline:
    approver = choose_approver(getattr(args, "auto_approve", False))
    return Pipeline(
        _spec(args),
        approver=approver,
        target=getattr(args, "target", "local"),
        aws_clients=lambda spec: aws_clients(spec),
        progress=_progress(args),
    )


def _print(report: ControlReport[object], args: argparse.Namespace | None = None) -> int:
    """The report on stdout; a failed execution's stage, cause and next command on stderr."""
    print(report.text)
    if report.ok:
        return 0
    failure = failure_of_execution(report.value) if isinstance(report.value, PipelineExecution) else None
    if failure is not None and args is not None:
        _fail(args, failure)
    return EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    """Start a new execution (on AWS: upload the prepared data, whose contract starts CodePipeline)."""
    return _print(_pipeline(args).start(trigger=args.trigger), args)


def cmd_retry(args: argparse.Namespace) -> int:
    """Resume a failed execution."""
    return _print(_pipeline(args).retry_execution(args.execution_id), args)


def cmd_decide(args: argparse.Namespace) -> int:
    """Approve or reject the execution waiting at the approval gate, resuming (or ending) it."""
    if not args.comment.strip():
        raise ConfigError(
            f"{args.command} needs a comment saying why: --comment 'why' (make {args.command} COMMENT='why')"
        )
    outcome: ApprovalOutcome = "Approved" if args.command == "approve" else "Rejected"
    return _print(_pipeline(args).decide(Decision(outcome, args.by, args.comment), args.execution_id), args)


def cmd_rollback(args: argparse.Namespace) -> int:
    """Return production to the version that served before the current one (or to ``--version``)."""
    report = _pipeline(args).rollback(args.version, by=args.by)
    if not report.ok:  # the rollback was itself rolled back: production is unchanged
        failure = report.value if isinstance(report.value, BaseException) else None
        _fail(args, failure_of_exception(failure or RuntimeError(report.text), WHERE["rollback"], cause=report.text))
        return EXIT_FAILED
    print(report.text)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the self-contained HTML report of the local pipeline's state; print its path."""
    print(Pipeline(load_spec(args.config, _overrides(args)), progress=_progress(args)).write_report(args.out))
    return 0


def cmd_deployments(args: argparse.Namespace) -> int:
    """Print the production deployment ledger."""
    for entry in _pipeline(args).deployments():
        green = entry["green"]
        blue = entry.get("blue") or {}
        reason = f": {entry['reason']}" if entry.get("reason") else ""
        rehearsal = f" [rehearsal {entry['rehearsal']}]" if entry.get("rehearsal") else ""
        trigger = f" (trigger: {entry['trigger']})" if entry.get("trigger") else ""
        print(
            f"{entry['time'][:19]}  {entry['deployment_id']}  v{blue.get('version', '-')} -> v{green['version']}  "
            f"{entry['outcome']}{rehearsal}{reason}{trigger}"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show the latest (or a given) execution, or every execution."""
    pipeline = _pipeline(args)
    if args.all:
        return _print(pipeline.history())
    report = pipeline.status(args.execution_id, as_json=args.json)
    code = _print(report)
    execution = report.value if isinstance(report.value, PipelineExecution) else None
    failure = failure_of_execution(execution) if execution is not None and execution.status == Status.FAILED else None
    if failure is not None and not args.json:
        print(f"\nNext: {failure.next_step}")
    return code


def _confirmed(spec: PipelineSpec, plan: str) -> bool:
    """Show what will be destroyed and ask for the pipeline name on the terminal."""
    print(plan)
    sys.stdout.write(f"This cannot be undone. Type the pipeline name ({spec.pipeline_name}) to confirm: ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    if answer != spec.pipeline_name:
        print(f"not confirmed ({answer!r} is not {spec.pipeline_name!r}): nothing was destroyed", file=sys.stderr)
        return False
    return True


def cmd_destroy(args: argparse.Namespace) -> int:
    """Delete everything the pipeline created: local runtime and state, or the AWS stacks and base infrastructure."""
    pipeline = _pipeline(args)
    if not args.yes and not sys.stdin.isatty():
        print(
            "error: destroy asks you to type the pipeline name on a terminal, and there is none: "
            "pass --yes to destroy without asking (make destroy YES=1)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    options = DestroyOptions(
        keep_base_infra=args.keep_base_infra,
        terraform_dir=args.terraform_dir,
        stack_timeout_s=args.timeout,
        model=args.model,
    )
    confirm = spec_for_model(pipeline.spec, args.model) if args.model else pipeline.spec
    if not args.yes and not _confirmed(confirm, pipeline.destroy_plan(options)):
        return EXIT_ERROR
    report = pipeline.destroy(options, progress=lambda line: print(line, flush=True))
    print(report.text)
    if not report.ok:
        print("\nsome resources remain (see above); fix what blocks them and run destroy again", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    """List, describe, approve or reject model package versions."""
    pipeline = _pipeline(args)
    if args.action == "list":
        return _print(pipeline.registry())
    if args.action == "describe":
        print(pipeline.backend.registry.describe(pipeline.spec.model_name, args.version).model_dump_json(indent=2))
    else:
        change = pipeline.approve if args.action == "approve" else pipeline.reject
        package = change(args.version, by=args.by, reason=args.reason)
        print(f"{package.ModelPackageArn}: {package.ModelApprovalStatus} by {args.by} ({args.reason})")
    return 0


def cmd_outputs(args: argparse.Namespace) -> int:
    """Print the stack outputs (ApiUrl, ApiKey, EndpointName, RuntimeUrl, ...) as JSON."""
    print(format_outputs(_pipeline(args).outputs()))
    return 0


def cmd_runtime(args: argparse.Namespace) -> int:
    """Start, stop or show the local runtime that serves endpoints and the REST API."""
    spec = load_spec(args.config, _overrides(args))
    paths = RuntimePaths(spec.state_dir.resolve())
    if args.action == "start":
        ports = (spec.serving.runtime_port, spec.serving.gateway_port)
        info = daemon.ensure_running(spec.state_dir, spec.region, spec.account_id, ports)
        print(f"runtime pid {info.pid}: runtime API {info.runtime_url}, gateway {info.gateway_url}")
    elif args.action == "stop":
        pid = daemon.stop(spec.state_dir)
        print(f"runtime pid {pid} stopped" if pid else "no runtime is running")
    else:
        running = daemon.read_info(paths)
        if running is None:
            print(f"no runtime is running for {paths.state_dir}; start it: .venv/bin/safedeploy runtime start")
            return EXIT_FAILED
        print(f"runtime pid {running.pid}: API {running.runtime_url}, gateway {running.gateway_url}; log {paths.log}")
    return 0


def _monitor(args: argparse.Namespace) -> Monitor:
    return _pipeline(args).monitor()


def _time(text: str | None) -> Any:
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO-8601 time such as 2026-12-03T10:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_console(args: argparse.Namespace) -> int:
    """Make sure the runtime runs, and print a one-time link to its live console for this pipeline."""
    spec = load_spec(args.config, _overrides(args))
    ports = (spec.serving.runtime_port, spec.serving.gateway_port)
    info = daemon.ensure_running(spec.state_dir, spec.region, spec.account_id, ports)
    link = daemon.console_link(info, spec)
    print(
        f"Live console of {spec.pipeline_name} (one-time link, valid for {C.CONSOLE_TOKEN_TTL_S / 60:.0f} minutes; "
        "`make console` prints a new one):"
    )
    print(link)
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """Data-quality monitoring: suggest a baseline, run the monitor, list executions and alarms."""
    from safedeploy.monitoring import summary

    if args.action == "suggest-baseline":
        from safedeploy.monitoring.analyzer.job import JobError, suggest_baseline
        from safedeploy.monitoring.analyzer.statistics import BaselineError
        from safedeploy.monitoring.analyzer.table import DatasetError

        try:
            done = suggest_baseline(args.dataset, args.output)
        except (JobError, DatasetError, BaselineError) as exc:
            raise ConfigError(str(exc)) from None
        print(
            f"baseline of {done['item_count']} rows x {done['features']} columns: "
            f"{args.output / 'statistics.json'}, {args.output / 'constraints.json'}"
        )
        return 0
    if args.action in ("ground-truth", "quality"):
        return _model_quality(args)
    monitor = _monitor(args)
    if args.action == "executions":
        executions = monitor.executions()
        quality = _pipeline(args).model_quality_monitor().executions()
        if args.json:
            print(json.dumps([e.model_dump(mode="json") for e in [*executions, *quality]], indent=2))
        else:
            print(summary.format_executions(executions))
            if quality:
                print("model quality:")
                print(summary.format_executions(quality))
        return 0
    if args.action == "alarms":
        alarms = {**monitor.alarm_states(), **_pipeline(args).model_quality_monitor().alarm_states()}
        print(summary.format_alarms(alarms))
        return 0
    if args.action in ("start", "stop"):
        schedule = monitor.set_status("Scheduled" if args.action == "start" else "Stopped")
        print(f"{schedule.MonitoringScheduleName}: {schedule.MonitoringScheduleStatus}")
        return 0
    with _progress(args).task("monitoring execution: analysing production's capture"):
        execution = monitor.run(start=_time(args.start), end=_time(args.end), trigger=args.trigger)
    print(summary.format_execution(execution))
    print("alarms:")
    print(summary.format_alarms(monitor.alarm_states()))
    return _monitoring_outcome(args, execution.MonitoringExecutionStatus, execution.FailureReason)


def _monitoring_outcome(args: argparse.Namespace, status: str, reason: str | None) -> int:
    """0, or the failed monitoring execution's cause and what to run next."""
    if status != "Failed":
        return 0
    cause = f"the monitoring execution failed: {reason or 'no reason given'}"
    _fail(args, Failure(WHERE["monitor"], cause, "make monitor", "runs it again once the cause is fixed"))
    return EXIT_FAILED


def cmd_retraining(args: argparse.Namespace) -> int:
    """Retraining on new data: its state, the decision log, or one look now (as after a scheduled execution)."""
    pipeline = _pipeline(args)
    if args.action == "check":
        return _print(pipeline.check_retraining(args.trigger or "", args.alarm or "", args.since or ""))
    if args.action == "decisions" and pipeline.target == "local":
        from safedeploy.retraining.trigger import RetrainingPaths, read_decisions

        for record in read_decisions(RetrainingPaths(pipeline.spec.state_dir.resolve())):
            print(f"{record.time:%Y-%m-%d %H:%M:%S}  {record.action}: {record.reason}")
        return 0
    return _print(pipeline.retraining_status())  # on AWS the record keeps the latest decision; the build logs all


def _model_quality(args: argparse.Namespace) -> int:
    """``monitor ground-truth`` (validate, then upload labels) and ``monitor quality`` (one execution now)."""
    from safedeploy.monitoring import summary

    pipeline = _pipeline(args)
    if args.action == "ground-truth":
        from safedeploy.monitoring.labels import upload_labels

        uploaded = upload_labels(pipeline.spec, pipeline.backend.store, args.file)
        repeated = (
            f" ({uploaded.duplicates_in_file} repeated ids: the later line wins)" if uploaded.duplicates_in_file else ""
        )
        print(f"{uploaded.labels} labels uploaded to {uploaded.uri}{repeated}")
        return 0
    monitor = pipeline.model_quality_monitor()
    with _progress(args).task("model-quality execution: joining labels and predictions"):
        execution = monitor.run(start=_time(args.start), end=_time(args.end), trigger=args.trigger)
    print(summary.format_execution(execution))
    print("alarms:")
    print(summary.format_alarms(monitor.alarm_states()))
    return _monitoring_outcome(args, execution.MonitoringExecutionStatus, execution.FailureReason)


def cmd_spec(args: argparse.Namespace) -> int:
    """Print the resolved spec."""
    print(json.dumps(load_spec(args.config, _overrides(args)).model_dump(mode="json"), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, help="pipeline config file (default: $SAFEDEPLOY_CONFIG, ./pipeline.toml)"
    )
    common.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec field")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = argparse.ArgumentParser(prog="safedeploy", description="Safe ML deployment pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", parents=[common], help="start a pipeline execution (Data -> Train -> Baseline -> Register -> DeployDev)"
    )
    run.add_argument("--data", type=Path, help="raw churn table (seed format); sets data.source")
    run.add_argument("--trigger", default="cli", help="what started this execution (recorded)")
    run.add_argument(
        "--auto-approve", action="store_true", help="answer the approval gate yes, explicitly (unattended runs)"
    )
    _add_target(run)
    run.set_defaults(func=cmd_run)

    retry = sub.add_parser("retry", parents=[common], help="resume a failed execution from its failed stage")
    retry.add_argument("execution_id", nargs="?", help="execution id or prefix (default: the latest)")
    retry.add_argument("--auto-approve", action="store_true", help="answer the approval gate yes")
    _add_target(retry)
    retry.set_defaults(func=cmd_retry)

    for action, what in (("approve", "approve and resume it into production"), ("reject", "reject it")):
        decide = sub.add_parser(action, parents=[common], help=f"the execution waiting at the approval gate: {what}")
        decide.add_argument("execution_id", nargs="?", help="execution id or prefix (default: the latest waiting)")
        decide.add_argument("--comment", required=True, help="why (recorded with the decision and in the registry)")
        decide.add_argument("--by", default=getpass.getuser(), help="who decides (default: the current user)")
        decide.add_argument(
            "--spec", type=Path, help="a resolved spec (JSON) instead of --config/--set (the console passes one)"
        )
        _add_target(decide)
        decide.set_defaults(func=cmd_decide)

    rollback = sub.add_parser(
        "rollback", parents=[common], help="return production to the version that served before the current one"
    )
    rollback.add_argument("--by", default=getpass.getuser(), help="who rolls back (recorded in the ledger)")
    rollback.add_argument(
        "--version", type=int, help="return to this version instead (any version that served production before)"
    )
    _add_target(rollback)
    rollback.set_defaults(func=cmd_rollback)

    deployments = sub.add_parser("deployments", parents=[common], help="the production deployment ledger")
    deployments.set_defaults(func=cmd_deployments)

    report = sub.add_parser(
        "report", parents=[common], help="write one self-contained HTML report: executions, metrics, traffic, drift"
    )
    report.add_argument("--out", type=Path, default=Path(C.REPORT_FILE), help=f"where (default: {C.REPORT_FILE})")
    report.set_defaults(func=cmd_report)

    status = sub.add_parser("status", parents=[common], help="show the latest execution, stage by stage")
    status.add_argument("execution_id", nargs="?", help="execution id or prefix (default: the latest)")
    status.add_argument("--json", action="store_true", help="print the full execution record")
    status.add_argument("--all", action="store_true", help="list every execution")
    _add_target(status)
    status.set_defaults(func=cmd_status)

    history = sub.add_parser("history", parents=[common], help="every execution, with what triggered it")
    _add_target(history)
    history.set_defaults(func=cmd_status, all=True, execution_id=None, json=False)

    registry = sub.add_parser("registry", parents=[common], help="model registry: list, describe, approve, reject")
    actions = registry.add_subparsers(dest="action", required=True)
    _add_target(actions.add_parser("list", parents=[common], help="list versions (* marks production)"))
    describe = actions.add_parser("describe", parents=[common], help="show one version")
    describe.add_argument("version", type=int)
    for action in ("approve", "reject"):
        change = actions.add_parser(action, parents=[common], help=f"{action} a version")
        change.add_argument("version", type=int)
        change.add_argument("--reason", required=True, help="why (recorded in the approval history)")
        change.add_argument("--by", default=getpass.getuser(), help="who (default: the current user)")
    registry.set_defaults(func=cmd_registry)

    outputs = sub.add_parser("outputs", parents=[common], help="print ApiUrl, ApiKey, EndpointName, ... as JSON")
    outputs.set_defaults(func=cmd_outputs)

    console = sub.add_parser(
        "console", parents=[common], help="print a one-time link to the runtime's live console (starts the runtime)"
    )
    console.set_defaults(func=cmd_console)

    runtime = sub.add_parser("runtime", parents=[common], help="the local runtime: start, stop, status")
    runtime.add_argument("action", choices=["start", "stop", "status"])
    runtime.set_defaults(func=cmd_runtime)

    destroy = sub.add_parser(
        "destroy",
        parents=[common],
        help="delete everything the pipeline created (asks for the pipeline name): local runtime and state, "
        "or the AWS stacks then the base infrastructure",
    )
    _add_target(destroy)
    destroy.add_argument("--yes", action="store_true", help="do not ask (required when there is no terminal)")
    destroy.add_argument(
        "--model",
        help="only this model's pipeline (local: its state, endpoints, REST APIs and key; aws: its stacks)",
    )
    destroy.add_argument(
        "--keep-base-infra", action="store_true", help="aws: delete the per-model stacks only, keep the base infra"
    )
    destroy.add_argument(
        "--terraform-dir", type=Path, help="aws: the base infrastructure's Terraform root (default terraform/<env>)"
    )
    destroy.add_argument(
        "--timeout",
        type=float,
        default=C.STACK_DELETE_TIMEOUT_S,
        help="aws: seconds to wait for each stack's delete (default %(default).0f)",
    )
    destroy.set_defaults(func=cmd_destroy)

    monitor = sub.add_parser("monitor", parents=[common], help="data-quality monitoring of production")
    monitor_actions = monitor.add_subparsers(dest="action", required=True)
    suggest = monitor_actions.add_parser(
        "suggest-baseline", parents=[common], help="statistics.json and constraints.json for a CSV with a header row"
    )
    suggest.add_argument("--dataset", type=Path, required=True, help="CSV with a header row (or a folder of them)")
    suggest.add_argument("--output", type=Path, required=True, help="folder for statistics.json, constraints.json")
    run_monitor = monitor_actions.add_parser(
        "run", parents=[common], help="analyse production's capture now (default: since the previous execution)"
    )
    run_monitor.add_argument("--start", help="window start, ISO-8601 UTC (default: the previous execution's end)")
    run_monitor.add_argument("--end", help="window end, ISO-8601 UTC (default: now)")
    run_monitor.add_argument("--trigger", default="safedeploy monitor run", help="what started it (recorded)")
    executions = monitor_actions.add_parser("executions", parents=[common], help="the schedule's executions")
    executions.add_argument("--json", action="store_true", help="full records (ListMonitoringExecutions + reports)")
    monitor_actions.add_parser("alarms", parents=[common], help="the drift alarms' states")
    monitor_actions.add_parser("start", parents=[common], help="start the schedule (StartMonitoringSchedule)")
    monitor_actions.add_parser("stop", parents=[common], help="stop the schedule; `monitor run` still works")
    labels = monitor_actions.add_parser(
        "ground-truth", parents=[common], help="upload ground-truth labels (every line checked first)"
    )
    labels.add_argument("--file", type=Path, required=True, help="JSONL of SageMaker ground-truth records")
    quality = monitor_actions.add_parser(
        "quality", parents=[common], help="one model-quality execution now (default: up to the label delay)"
    )
    quality.add_argument("--start", help="window start (inference time), ISO-8601 UTC")
    quality.add_argument("--end", help="window end (inference time), ISO-8601 UTC (default: now - label delay)")
    quality.add_argument("--trigger", default="safedeploy monitor quality", help="what started it (recorded)")
    monitor.set_defaults(func=cmd_monitor)

    retraining = sub.add_parser("retraining", parents=[common], help="retraining on new data when an alarm fires")
    retraining_actions = retraining.add_subparsers(dest="action", required=True)
    for action, text in (
        ("status", "the last decision, retraining and cooldown"),
        ("decisions", "every decision recorded, with its reason (on AWS: the latest)"),
    ):
        _add_target(retraining_actions.add_parser(action, parents=[common], help=text))
    check = retraining_actions.add_parser(
        "check", parents=[common], help="look at the trigger alarms now and start a retraining if due"
    )
    _add_target(check)
    check.add_argument("--trigger", help="AWS: what started the look, as the execution records it")
    check.add_argument("--alarm", help="AWS: the alarm that started it (empty: the retrain schedule)")
    check.add_argument("--since", help="AWS: when that alarm went to ALARM (the event's time)")
    retraining.set_defaults(func=cmd_retraining)

    spec = sub.add_parser("spec", parents=[common], help="print the resolved pipeline spec")
    spec.set_defaults(func=cmd_spec)
    return parser


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="local",
        help="local: this machine's pipeline (default); aws: the AWS CodePipeline and stacks",
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``safedeploy`` command."""
    use_private_umask()  # state holds customer data and keys: everything created is owner-only
    args = build_parser().parse_args(argv)
    args.console = stderr_console() if wants_rich() else None  # live progress and red panels on a terminal only
    args.progress = reporter(args.console)
    configure_logging(args.verbose, args.console)
    signal.signal(signal.SIGTERM, _terminate)  # a stopped run is recorded as Failed, not left InProgress
    try:
        code: int = args.func(args)
    except Exception as exc:  # an expected failure names stage, cause and next command; a bug keeps its traceback
        if not is_expected(exc):
            raise
        # --target aws: credentials gone mid-way, a refused call... in one line
        cause = aws_error_line(exc) if isinstance(exc, BotoCoreError | ClientError) else None
        _fail(args, failure_of_exception(exc, WHERE.get(args.command), cause=cause))
        return EXIT_ERROR
    return code


if __name__ == "__main__":
    sys.exit(main())
