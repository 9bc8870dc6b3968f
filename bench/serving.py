"""Serving benchmark: this project's endpoint, runtime API and REST API side by side with `mlflow models serve`.

Run by ``make bench``: trains on the demo data into ``build/bench/state``, deploys with the pipeline, starts
MLflow's scoring server on the same model (from its own virtualenv, given as ``--mlflow-python``), then drives
every target with the same payloads from a keep-alive HTTP load generator on 127.0.0.1 (bounded in count and
time). Results go to ``build/bench/serving.json`` and ``build/bench/serving.md``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import LoadResult, run  # noqa: E402
from safedeploy.approval import AutoApprove  # noqa: E402
from safedeploy.data.raw_table import read_raw_table  # noqa: E402
from safedeploy.features import FeatureSchema  # noqa: E402
from safedeploy.http.sigv4 import sign  # noqa: E402
from safedeploy.local import daemon  # noqa: E402
from safedeploy.local.host import LocalServingHost  # noqa: E402
from safedeploy.pipeline import Pipeline  # noqa: E402
from safedeploy.spec import load_spec  # noqa: E402
from safedeploy.stage_outputs import TrainOutputs  # noqa: E402
from safedeploy.store import LocalArtifactStore, S3Uri  # noqa: E402


@dataclass
class Result:
    """One cell of the table: medians over interleaved rounds."""

    target: str
    payload: str
    concurrency: int
    capture: str
    rounds: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    p99_range_ms: tuple[float, float]
    throughput_rps: float
    server_cpu_us: float | None
    """Server-side CPU per request (runtime + instances, or MLflow's processes), from /proc."""


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    capture: str
    pids: list[int]
    mlflow: bool = False
    signer: daemon.RuntimeInfo | None = None
    """The runtime API answers signed requests only (SigV4, valid 15 minutes): signed afresh for every run."""

    def headers_for(self, body: bytes) -> dict[str, str]:
        if self.signer is None:
            return self.headers
        signed = sign(self.signer.signing_credentials(), self.signer.region, "POST", self.url, body, self.headers)
        return {name: value for name, value in signed.items() if name != "Host"}  # the load generator sends Host


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU of ``pids`` and their children so far (Linux /proc), or None elsewhere."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (MLflow's server runs its workers as children)."""
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split() if Path(f"/proc/{pid}").exists() else []:
        found += process_tree(int(child))
    return found


def one_round(target: Target, body: bytes, concurrency: int, total: int) -> tuple[LoadResult, float | None]:
    before = cpu_seconds(target.pids)
    result = run(target.url, body, target.headers_for(body), concurrency, total, 30)
    after = cpu_seconds(target.pids)
    cpu = None if before is None or after is None or not result.latencies else (after - before) / len(result.latencies)
    return result, cpu


def measure(
    targets: list[Target], bodies: dict[bool, bytes], payload: str, concurrency: int, total: int, rounds: int
) -> list[Result]:
    """Warm every target up, then run ``rounds`` rounds, each target once per round, and summarise each."""
    per_target: dict[str, list[tuple[LoadResult, float | None]]] = {t.name + t.capture: [] for t in targets}
    for target in targets:
        body = bodies[target.mlflow]
        run(target.url, body, target.headers_for(body), concurrency, max(total // 10, 20), 10)
    for _ in range(rounds):
        for target in targets:
            per_target[target.name + target.capture].append(
                one_round(target, bodies[target.mlflow], concurrency, total)
            )
    results = []
    for target in targets:
        runs = per_target[target.name + target.capture]
        p50s = [statistics.median(r.latencies) * 1000 for r, _ in runs]
        p99s = [percentile(r.latencies, 0.99) * 1000 for r, _ in runs]
        rates = [len(r.latencies) / r.elapsed for r, _ in runs]
        cpus = [c for _, c in runs if c is not None]
        result = Result(
            target.name, payload, concurrency, target.capture, rounds,
            sum(len(r.latencies) for r, _ in runs), sum(r.errors for r, _ in runs),
            round(statistics.median(p50s), 3), round(statistics.median(p99s), 3),
            (round(min(p99s), 3), round(max(p99s), 3)), round(statistics.median(rates), 1),
            round(statistics.median(cpus) * 1e6, 1) if cpus else None,
        )  # fmt: skip
        print(
            f"  {target.name:<22} {payload:<10} c={concurrency:<3} capture={target.capture:<4} p50 {result.p50_ms:8.3f} ms  "
            f"p99 {result.p99_ms:8.3f} ms ({result.p99_range_ms[0]}-{result.p99_range_ms[1]})  {result.throughput_rps:8.1f} req/s  "
            f"server CPU {result.server_cpu_us} us/req  errors {result.errors}",
            flush=True,
        )
        results.append(result)
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow(python: str, model_json: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    model_dir = work / "mlflow-model"
    if not model_dir.exists():
        subprocess.run([python, str(ROOT / "bench" / "mlflow_model.py"), str(model_json), str(model_dir)], check=True)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(python).parent}:{os.environ['PATH']}"}
    mlflow_bin = str(Path(python).parent / "mlflow")
    log = (work / "mlflow-serve.log").open("wb")
    process = subprocess.Popen([mlflow_bin, "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                                "-h", "127.0.0.1", "-p", str(port), "--workers", "1"], stdout=log, stderr=log, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return process, url + "/invocations"
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"mlflow models serve did not start; see {work / 'mlflow-serve.log'}")


def markdown(results: list[Result], meta: dict[str, Any]) -> str:
    lines = [
        "# Serving benchmark",
        "",
        f"{meta['date']} on {meta['machine']}; command: `make bench`. Closed-loop keep-alive HTTP on 127.0.0.1 from "
        "`bench/loadgen.py` (one epoll thread, on the same cores as the servers). Each cell: a warm-up, then "
        f"{meta['rounds']} rounds interleaved with the other targets; latencies and throughput are medians over the "
        "rounds, with the range of p99. Server CPU is user+system time of the serving processes per request (/proc).",
        "",
        "| target | payload | concurrency | capture | requests | errors | p50 ms | p99 ms | p99 range ms | req/s | server CPU µs/req |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.target} | {r.payload} | {r.concurrency} | {r.capture} | {r.requests} | {r.errors} | {r.p50_ms} | {r.p99_ms} "
        f"| {r.p99_range_ms[0]}-{r.p99_range_ms[1]} | {r.throughput_rps} | {r.server_cpu_us if r.server_cpu_us is not None else 'n/a'} |"
        for r in results
    ]
    lines += ["", "## Targets", ""] + [f"- {line}" for line in meta["targets"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--mlflow-python", required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--requests", type=int, default=3000, help="requests per single-row cell and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell (medians are reported)")
    args = parser.parse_args()
    work = args.out.resolve()
    state = work / "state"
    spec = load_spec(overrides={"state_dir": str(state), "data.source": str(args.data.resolve()), "serving.enabled": True})  # fmt: skip
    execution = Pipeline(spec, approver=AutoApprove("make bench")).run(trigger="make bench")
    if execution.status != "Succeeded":
        raise SystemExit(f"pipeline failed: {execution.error}")
    outputs = LocalServingHost(state, spec.region, spec.account_id).outputs()
    info = daemon.ensure_running(state, spec.region, spec.account_id)

    # A second endpoint on the same model with capture off, to price capture.
    sagemaker = daemon.sagemaker_client(info)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=outputs["EndpointConfigName"])
    nocapture = f"bench-nocapture-{int(time.time())}"
    sagemaker.create_endpoint_config(EndpointConfigName=nocapture, ProductionVariants=config["ProductionVariants"])
    sagemaker.create_endpoint(EndpointName=nocapture, EndpointConfigName=nocapture)
    while sagemaker.describe_endpoint(EndpointName=nocapture)["EndpointStatus"] == "Creating":
        time.sleep(0.1)

    store = LocalArtifactStore(state / "s3")
    archive = store.get_bytes(S3Uri.parse(execution.output(TrainOutputs).model_data_url))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(work / "model", filter="data")
    schema = FeatureSchema.from_json((work / "model" / "feature-schema.json").read_text())
    records = read_raw_table(args.data).records
    one_row = ",".join(f"{v:.10g}" for v in schema.encode(records[:1])[0]).encode()
    batch = "\n".join(",".join(f"{v:.10g}" for v in row) for row in schema.encode((records * 2)[:1000])).encode()

    health = daemon.local_get(info, "/_local/health")
    endpoint_url = health["endpoints"][outputs["EndpointName"]]["InstanceUrls"]["AllTraffic"][0] + "/invocations"
    instance_pids = health["endpoints"][outputs["EndpointName"]]["Instances"]["AllTraffic"]
    nocapture_pids = health["endpoints"][nocapture]["Instances"]["AllTraffic"]
    try:
        mlflow, mlflow_url = start_mlflow(args.mlflow_python, work / "model" / "xgboost-model.json", work)
    except BaseException:
        daemon.stop(state)
        raise
    csv = {"Content-Type": "text/csv", "Accept": "text/csv"}
    runtime_url = f"{info.runtime_url}/endpoints/{{}}/invocations"
    targets = [
        Target("endpoint /invocations", endpoint_url, csv, "n/a", instance_pids[:1]),
        Target(
            "runtime API",
            runtime_url.format(outputs["EndpointName"]),
            csv,
            "on",
            [info.pid, *instance_pids],
            signer=info,
        ),
        Target("REST API", outputs["ApiUrl"], csv | {"x-api-key": outputs["ApiKey"]}, "on", [info.pid, *instance_pids]),
        Target(
            "mlflow models serve",
            mlflow_url,
            {"Content-Type": "text/csv"},
            "n/a",
            process_tree(mlflow.pid),
            mlflow=True,
        ),
        Target("runtime API", runtime_url.format(nocapture), csv, "off", [info.pid, *nocapture_pids], signer=info),
    ]
    header = (",".join(schema.features) + "\n").encode()  # MLflow's pandas.read_csv wants a header row
    results: list[Result] = []
    try:
        for payload, body, total in (
            ("1 row", one_row, args.requests),
            ("1000 rows", batch, max(args.requests // 15, 100)),
        ):
            for concurrency in (1, 16):
                results += measure(
                    targets, {False: body, True: header + body}, payload, concurrency, total, args.rounds
                )
    finally:
        mlflow.terminate()
        mlflow.wait()
        sagemaker.delete_endpoint(EndpointName=nocapture)
        daemon.stop(state)

    def cell(target: str, payload: str, concurrency: int, capture: str | None = None) -> Result:
        return next(
            r
            for r in results
            if r.target == target
            and r.payload == payload
            and r.concurrency == concurrency
            and (capture is None or r.capture == capture)
        )

    endpoint_p50 = cell("endpoint /invocations", "1 row", 1).p50_ms
    ours, theirs = cell("runtime API", "1 row", 16, "on"), cell("mlflow models serve", "1 row", 16)
    ratio = ours.throughput_rps / theirs.throughput_rps
    rest = cell("REST API", "1 row", 16)
    on, off = cell("runtime API", "1 row", 16, "on"), cell("runtime API", "1 row", 16, "off")
    overhead = (off.throughput_rps - on.throughput_rps) / off.throughput_rps * 100
    cpu_overhead = (
        (on.server_cpu_us - off.server_cpu_us) / off.server_cpu_us * 100
        if on.server_cpu_us and off.server_cpu_us
        else None
    )

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "rounds": args.rounds,
        "targets": [
            f"endpoint p50, 1 row, c=1: {endpoint_p50} ms (target <= 1 ms): {verdict(endpoint_p50 <= 1)}",
            f"throughput vs MLflow, 1 row, c=16 (runtime API with capture / mlflow): {ratio:.2f}x (target >= 2x): {verdict(ratio >= 2)}",
            f"REST API p99, 1 row, c=16: {rest.p99_ms} ms, median of {args.rounds} rounds (range {rest.p99_range_ms[0]}-{rest.p99_range_ms[1]}) (target <= 10 ms): {verdict(rest.p99_ms <= 10)}",
            f"capture overhead, runtime API, 1 row, c=16: throughput {overhead:.1f} % (target <= 10 %): {verdict(overhead <= 10)}"
            + (f"; server CPU per request +{cpu_overhead:.1f} %" if cpu_overhead is not None else ""),
        ],
    }
    work.mkdir(parents=True, exist_ok=True)
    (work / "serving.json").write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))
    (work / "serving.md").write_text(markdown(results, meta))
    print(markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
