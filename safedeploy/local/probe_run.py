"""One run of the standing synthetic probe, locally: the child process the runtime starts on the probe's clock.

``safedeploy/runtime/main.py`` asks :func:`safedeploy.monitoring.probe.due` every second and, for a due fire time,
starts ``python -m safedeploy.local.probe_run --state-dir DIR --canary NAME --fire ISO``. That process plays the
part of the scheduled Lambda on AWS: it reads production's REST API and key as the pipeline side does
(:class:`~safedeploy.local.host.LocalServingHost`'s outputs), invokes ``lambdas/probe/app.py``'s handler in-process
with local clients (the artifact store for the known rows, :class:`MetricLogCloudWatch` for ``CloudWatchSynthetics``
``SuccessPercent``/``Duration``), records the run and evaluates the alarm (:mod:`safedeploy.monitoring.probe`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safedeploy import naming
from safedeploy.filemodes import use_private_umask
from safedeploy.lambda_invoke import LambdaContext, load_handler_factory
from safedeploy.ledger import DeploymentLedger
from safedeploy.local.host import LocalServingHost
from safedeploy.metric_log import Datum, MetricLog
from safedeploy.monitoring.probe import (
    FAILED,
    PASSED,
    PROBE_HANDLER,
    SKIPPED,
    ProbeRunRecord,
    ProbeSchedule,
    append_run,
    evaluate_alarm,
    probe_dir,
)
from safedeploy.spec import PipelineSpec
from safedeploy.store import LocalArtifactStore

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricLogCloudWatch:
    """``PutMetricData`` into the local metric log: the probe handler's CloudWatch client."""

    log: MetricLog

    def put_metric_data(self, *, Namespace: str, MetricData: Sequence[Mapping[str, Any]]) -> None:  # noqa: N803
        """Append each datum (``Value`` with ``Dimensions`` and ``Unit``) now."""
        now = datetime.now(UTC)
        self.log.put(
            [
                Datum(
                    Namespace,
                    str(item["MetricName"]),
                    tuple((str(d["Name"]), str(d["Value"])) for d in item.get("Dimensions", ())),
                    now,
                    float(item["Value"]),
                    str(item.get("Unit", "None")),
                )
                for item in MetricData
            ]
        )


def probe_once(spec: PipelineSpec, state_dir: Path, fire: datetime) -> ProbeRunRecord:
    """One run at ``fire`` (model time): skipped without production, else the handler against the REST API."""
    probe = spec.monitoring.synthetic_canary
    canary = naming.probe_canary_name(spec)
    served = DeploymentLedger(state_dir / "deployments", spec.pipeline_name).live()
    now = datetime.now(UTC)
    if served is None:
        return ProbeRunRecord(canary, fire, now, SKIPPED, "no production yet: nothing to probe (no datapoint)")
    store = LocalArtifactStore(state_dir / "s3")
    rows_uri = naming.probe_rows_uri(spec, served.version)
    if store.head(rows_uri) is None:
        reason = f"v{served.version} has no known rows at {rows_uri} (deployed before the probe): no datapoint"
        return ProbeRunRecord(canary, fire, now, SKIPPED, reason, ModelVersion=served.version)
    host = LocalServingHost(state_dir, spec.region, spec.account_id, model_name=spec.model_name)
    outputs = host.outputs()
    if "ApiUrl" not in outputs:
        reason = "the production REST API is not published (a first deployment rolled back?): no datapoint"
        return ProbeRunRecord(canary, fire, now, SKIPPED, reason, ModelVersion=served.version)
    environ = {
        "API_URL": outputs["ApiUrl"],
        "API_KEY": outputs.get("ApiKey", "") if spec.serving.api_key_required else "",
        "CHECKS_URI": str(rows_uri),
        "CANARY_NAME": canary,
        "METRICS_NAMESPACE": probe.alarm.metric.namespace,
        "ROWS": str(probe.rows),
        "TOLERANCE": repr(probe.tolerance),
        "LATENCY_BUDGET_MS": repr(probe.latency_budget_ms),
        "TIMEOUT_SECONDS": str(probe.timeout_seconds),
    }
    factory = load_handler_factory(f"{PROBE_HANDLER}:create_handler")
    module = sys.modules[factory.__module__]
    clients = module.ProbeClients(cloudwatch=MetricLogCloudWatch(MetricLog(state_dir / "metrics")), store=store)
    handler = factory(environ, clients)
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "id": f"probe-{fire.isoformat()}"}
    event["time"] = fire.strftime("%Y-%m-%dT%H:%M:%SZ")
    result = handler(event, LambdaContext(function_name=naming.function_name(spec, "probe"), region=spec.region))
    return ProbeRunRecord(
        canary,
        fire,
        now,
        PASSED if result["passed"] else FAILED,
        str(result["reason"]),
        SuccessPercent=float(result["successPercent"]),
        DurationMs=float(result["durationMs"]),
        ModelVersion=served.version,
        EndpointName=served.endpoint,
    )


def run_scheduled(state_dir: Path, canary: str, fire: datetime) -> int:
    """Run the probe of ``canary`` due at ``fire``, record it, evaluate the alarm; 0 unless it could not run."""
    path = probe_dir(state_dir, canary) / "schedule.json"
    if not path.is_file():
        LOG.error("probe schedule %s is gone", canary)
        return 1
    schedule = ProbeSchedule.from_json(json.loads(path.read_text("utf-8")))
    spec = PipelineSpec.model_validate(schedule.Spec)
    try:
        record = probe_once(spec, state_dir, fire)
    except Exception as exc:  # the probe itself broke (not the API): recorded, no datapoint
        LOG.exception("probe %s could not run", canary)
        record = ProbeRunRecord(canary, fire, datetime.now(UTC), SKIPPED, f"the probe could not run: {exc}")
    if not path.is_file():  # the probe was disabled or its model destroyed meanwhile: nothing to record it in
        LOG.info("probe %s at %s: its schedule was removed during the run; not recorded", canary, fire)
        return 0
    runs_path = probe_dir(state_dir, canary) / "runs.jsonl"
    append_run(runs_path, record)
    state = evaluate_alarm(spec, state_dir, fire)
    LOG.info("probe %s at %s: %s (%s); alarm %s", canary, fire, record.Status, record.Reason, state)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of one scheduled probe run (started by the runtime)."""
    parser = argparse.ArgumentParser(prog="safedeploy-probe", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--canary", required=True)
    parser.add_argument("--fire", required=True, help="the fire time (model time, ISO-8601)")
    args = parser.parse_args(argv)
    use_private_umask()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    return run_scheduled(args.state_dir.resolve(), args.canary, datetime.fromisoformat(args.fire).astimezone(UTC))


if __name__ == "__main__":
    sys.exit(main())
