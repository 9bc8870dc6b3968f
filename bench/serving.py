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
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safedeploy.data.raw_table import read_raw_table  # noqa: E402
from safedeploy.features import FeatureSchema  # noqa: E402
from safedeploy.pipeline import Pipeline  # noqa: E402
from safedeploy.serving import daemon  # noqa: E402
from safedeploy.serving.host import LocalServingHost  # noqa: E402
from safedeploy.spec import load_spec  # noqa: E402
from safedeploy.store import LocalArtifactStore, S3Uri  # noqa: E402


@dataclass
class Result:
    """One cell of the table."""

    target: str
    payload: str
    concurrency: int
    capture: str
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    throughput_rps: float


def load(
    url: str, body: bytes, headers: dict[str, str], concurrency: int, total: int, max_s: float
) -> tuple[list[float], int, float]:
    """Send ``total`` requests (or stop after ``max_s``) over ``concurrency`` keep-alive connections."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1", url
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    remaining = [total]
    deadline = time.monotonic() + max_s

    def worker() -> None:
        nonlocal errors
        connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=60)
        connection.connect()
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mine: list[float] = []
        failed = 0
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            started = time.perf_counter()
            connection.request("POST", parts.path, body=body, headers=headers)
            reply = connection.getresponse()
            reply.read()
            mine.append(time.perf_counter() - started)
            failed += reply.status != 200
        with lock:
            latencies.extend(mine)
            errors += failed

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - started


def measure(
    target: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    payload: str,
    concurrency: int,
    capture: str,
    total: int,
) -> Result:
    load(url, body, headers, concurrency, max(total // 10, 20), 10)  # warm-up
    latencies, errors, elapsed = load(url, body, headers, concurrency, total, 30)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    result = Result(target, payload, concurrency, capture, len(latencies), errors,
                    round(statistics.median(ordered) * 1000, 3), round(p99 * 1000, 3), round(len(latencies) / elapsed, 1))  # fmt: skip
    print(
        f"  {target:<22} {payload:<10} c={concurrency:<3} capture={capture:<4} p50 {result.p50_ms:8.3f} ms  p99 {result.p99_ms:8.3f} ms  {result.throughput_rps:8.1f} req/s  errors {errors}",
        flush=True,
    )
    return result


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
        f"{meta['date']} on {meta['machine']}; command: `make bench`. Latencies are client-side (keep-alive HTTP on "
        "127.0.0.1, Python load generator on the same 2 cores); each cell is one run after a warm-up.",
        "",
        "| target | payload | concurrency | capture | requests | errors | p50 ms | p99 ms | req/s |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {r.target} | {r.payload} | {r.concurrency} | {r.capture} | {r.requests} | {r.errors} | {r.p50_ms} | {r.p99_ms} | {r.throughput_rps} |" for r in results]  # fmt: skip
    lines += ["", "## Targets", ""] + [f"- {line}" for line in meta["targets"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--mlflow-python", required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--requests", type=int, default=3000, help="requests per single-row cell")
    args = parser.parse_args()
    work = args.out.resolve()
    state = work / "state"
    spec = load_spec(overrides={"state_dir": str(state), "data.source": str(args.data.resolve()), "serving.enabled": True})  # fmt: skip
    execution = Pipeline(spec).run(trigger="make bench")
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
    archive = store.get_bytes(S3Uri.parse(execution.stage("Train").outputs["model_data_url"]))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(work / "model", filter="data")
    schema = FeatureSchema.from_json((work / "model" / "feature-schema.json").read_text())
    records = read_raw_table(args.data).records
    one_row = ",".join(f"{v:.10g}" for v in schema.encode(records[:1])[0]).encode()
    batch = "\n".join(",".join(f"{v:.10g}" for v in row) for row in schema.encode((records * 2)[:1000])).encode()

    mlflow_batch = (",".join(schema.features) + "\n").encode() + batch  # pandas.read_csv wants a header
    mlflow_row = (",".join(schema.features) + "\n").encode() + one_row
    health = json.loads(http_get(f"{info.runtime_url}/_local/health"))
    endpoint_url = health["endpoints"][outputs["EndpointName"]]["InstanceUrls"]["AllTraffic"][0] + "/invocations"
    try:
        mlflow, mlflow_url = start_mlflow(args.mlflow_python, work / "model" / "xgboost-model.json", work)
    except BaseException:
        daemon.stop(state)
        raise
    csv = {"Content-Type": "text/csv", "Accept": "text/csv"}
    targets = {
        "endpoint /invocations": (endpoint_url, csv),
        "runtime API": (f"{info.runtime_url}/endpoints/{outputs['EndpointName']}/invocations", csv),
        "REST API": (outputs["ApiUrl"], csv | {"x-api-key": outputs["ApiKey"]}),
        "mlflow models serve": (mlflow_url, {"Content-Type": "text/csv"}),
    }
    results: list[Result] = []
    try:
        for payload, body, base in (
            ("1 row", one_row, args.requests),
            ("1000 rows", batch, max(args.requests // 15, 100)),
        ):
            for concurrency in (1, 16):
                for name, (url, headers) in targets.items():
                    sent = (
                        body if name != "mlflow models serve" else (mlflow_row if payload == "1 row" else mlflow_batch)
                    )
                    results.append(
                        measure(
                            name,
                            url,
                            sent,
                            headers,
                            payload,
                            concurrency,
                            "on" if name in ("runtime API", "REST API") else "n/a",
                            base,
                        )
                    )
                results.append(
                    measure(
                        "runtime API",
                        f"{info.runtime_url}/endpoints/{nocapture}/invocations",
                        body,
                        csv,
                        payload,
                        concurrency,
                        "off",
                        base,
                    )
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
    ratio = (
        cell("runtime API", "1 row", 16, "on").throughput_rps / cell("mlflow models serve", "1 row", 16).throughput_rps
    )
    rest_p99 = cell("REST API", "1 row", 16).p99_ms
    on, off = (
        cell("runtime API", "1 row", 16, "on").throughput_rps,
        cell("runtime API", "1 row", 16, "off").throughput_rps,
    )
    overhead = (off - on) / off * 100
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "targets": [
            f"endpoint p50, 1 row, c=1: {endpoint_p50} ms (target <= 1 ms): {'met' if endpoint_p50 <= 1 else 'NOT met'}",
            f"throughput vs MLflow, 1 row, c=16 (runtime API with capture / mlflow): {ratio:.2f}x (target >= 2x): {'met' if ratio >= 2 else 'NOT met'}",
            f"REST API p99, 1 row, c=16: {rest_p99} ms (target <= 10 ms): {'met' if rest_p99 <= 10 else 'NOT met'}",
            f"capture overhead, runtime API throughput, 1 row, c=16: {overhead:.1f} % (target <= 10 %): {'met' if overhead <= 10 else 'NOT met'}",
        ],
    }
    work.mkdir(parents=True, exist_ok=True)
    (work / "serving.json").write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))
    (work / "serving.md").write_text(markdown(results, meta))
    print(markdown(results, meta))
    return 0


def http_get(url: str) -> str:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=10)
    connection.request("GET", parts.path)
    return connection.getresponse().read().decode()


if __name__ == "__main__":
    sys.exit(main())
