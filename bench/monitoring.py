"""Monitoring benchmark: the monitoring job over 1,000,000 captured records, a baseline of 2,333 x 70, Evidently.

1. Baseline: ``suggest-baseline`` of the SageMaker churn example's 2,333-row x 70-column training set (the
   conformance fixture), as a Processing job would run it (a child process), repeated; AWS's analyzer takes about
   5.5 minutes end to end for it (a Spark job on an ml.m5.xlarge).
2. Monitoring: 1,000,000 capture records of this model (raw customer records as the REST API receives them,
   JSON in and out, in SageMaker's capture JSONL, 5,000 per file, one hour folder) against the model's baseline:
   the job's wall time and peak RSS (the job's whole process tree, summed, sampled every 20 ms from /proc).
   Targets: <= 10 s and <= 1.5 GB.
3. Evidently (bench environment only, ``--evidently-python``): its data-drift report on the same records,
   already decoded to the same encoded columns (pandas frames, so Evidently gets no parsing work), side by side;
   the goal is our job >= 10x faster.

Results: ``build/bench/monitoring.json`` and ``build/bench/monitoring.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safedeploy.data.prepare import prepare_dataset  # noqa: E402
from safedeploy.features import FeatureSchema  # noqa: E402
from safedeploy.monitoring.analyzer import formats as F  # noqa: E402
from safedeploy.spec import load_spec  # noqa: E402
from safedeploy.store import LocalArtifactStore, S3Uri  # noqa: E402

FIXTURE = (
    ROOT
    / "tests"
    / "fixtures"
    / "model_monitor"
    / "sagemaker-examples-churn-intro"
    / "training-dataset-with-header.csv"
)
AWS_BASELINE_SECONDS = 5.5 * 60
NUMERIC = {"Account Length", "VMail Message", "Day Mins", "Day Calls", "Day Charge", "Eve Mins", "Eve Calls",
           "Eve Charge", "Night Mins", "Night Calls", "Night Charge", "Intl Mins", "Intl Calls", "Intl Charge",
           "CustServ Calls", "Area Code"}  # fmt: skip
START = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, summed (from /proc), in MB."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        stack.extend(int(child) for child in children)
    return total / 1024


def _child(argv: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run a child; return wall seconds, the peak of its process tree's summed RSS in MB, and the result."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, _tree_rss_mb(process.pid))
        time.sleep(0.02)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if peak == 0 else peak)
    result = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{argv} failed: {stderr[-2000:]}")
    return wall, peak, result


def _job_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(values)
    env["PYTHONPATH"] = str(ROOT)
    return env


def bench_baseline(work: Path, runs: int) -> dict[str, Any]:
    times = []
    for run in range(runs):
        out = work / f"baseline-{run}"
        wall, rss, _ = _child(
            [sys.executable, "-m", "safedeploy.monitoring.analyzer.job"],
            _job_env(
                SAGEMAKER_BASE_DIR=str(work / f"opt-ml-baseline-{run}"),
                analysis_type="SUGGEST_BASELINE",
                dataset_source=str(FIXTURE),
                output_path=str(out),
            ),
        )
        times.append(wall)
    return {"rows": 2333, "columns": 70, "wall_s": sorted(times), "median_s": float(np.median(times)), "peak_rss_mb": rss,
            "aws_analyzer_s": AWS_BASELINE_SECONDS}  # fmt: skip


def prepare_model_data(data: Path, work: Path) -> tuple[Path, FeatureSchema, list[dict[str, Any]]]:
    """The Data stage on the demo table: the model's baseline dataset, suggested baseline, schema, raw records."""
    spec = load_spec(overrides={"state_dir": str(work / "state")})
    store = LocalArtifactStore(work / "state" / "s3")
    prepared = prepare_dataset(spec, store, data)
    baseline_csv = store.path_of(S3Uri.parse(prepared.input_data["BaselineUri"]))
    schema = FeatureSchema.from_json(store.get_bytes(S3Uri.parse(prepared.input_data["FeatureSchemaUri"])))
    out = work / "model-baseline"
    _child([sys.executable, "-m", "safedeploy.monitoring.analyzer.job"],
           _job_env(SAGEMAKER_BASE_DIR=str(work / "opt-ml-mb"), analysis_type="SUGGEST_BASELINE",
                    dataset_source=str(baseline_csv), output_path=str(out)))  # fmt: skip
    (out / "feature-schema.json").write_text(schema.to_json())
    with data.open(newline="") as handle:
        records = []
        for row in csv.DictReader(handle):
            record: dict[str, Any] = {}
            for key, value in row.items():
                if key in ("Churn?",):
                    continue
                record[key] = (float(value) if "." in value else int(value)) if key in NUMERIC else value
            records.append(record)
    return out, schema, records


def write_capture(root: Path, records: list[dict[str, Any]], count: int, per_file: int = 5000) -> Path:
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(records), count)
    scores = rng.random(count)
    folder = root / "customerchurn-prd-v1" / "AllTraffic" / START.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    for first in range(0, count, per_file):
        lines = []
        for i in range(first, min(first + per_file, count)):
            at = START + timedelta(microseconds=int(i * 3_000_000_000 / count))
            lines.append(orjson.dumps({
                "captureData": {
                    "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                      "data": orjson.dumps(records[picks[i]]).decode(), "encoding": "JSON"},
                    "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                       "data": f'{{"predictions": [{{"score": {scores[i]:.6f}}}]}}', "encoding": "JSON"},
                },
                "eventMetadata": {"eventId": f"e{i}", "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                                  "inferenceId": f"r{i}"},
                "eventVersion": "0",
            }))  # fmt: skip
        (folder / f"{first // per_file:05d}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return root


def bench_monitoring(work: Path, baseline: Path, capture: Path, runs: int) -> dict[str, Any]:
    results = []
    for run in range(runs):
        base = work / f"opt-ml-monitor-{run}"
        wall, rss, _ = _child(
            [sys.executable, "-m", "safedeploy.monitoring.analyzer.job"],
            _job_env(
                SAGEMAKER_BASE_DIR=str(base),
                dataset_format=F.DATASET_FORMAT_CAPTURE,
                dataset_source=str(capture),
                output_path=str(work / f"report-{run}"),
                start_time="2026-12-03T10:00:00Z",
                end_time="2026-12-03T11:00:00Z",
                baseline_statistics=str(baseline / F.STATISTICS_FILE),
                baseline_constraints=str(baseline / F.CONSTRAINTS_FILE),
                feature_schema=str(baseline / "feature-schema.json"),
                publish_cloudwatch_metrics="Enabled",
                sagemaker_endpoint_name="customerchurn-prd-v1",
                sagemaker_monitoring_schedule_name="bench",
            ),
        )
        summary = json.loads((work / f"report-{run}" / F.EXECUTION_SUMMARY_FILE).read_text())
        results.append({"wall_s": round(wall, 3), "peak_rss_mb": round(rss, 1), "rows": summary["rows"],
                        "status": summary["status"], "job_seconds": summary["seconds"]})  # fmt: skip
    walls = [r["wall_s"] for r in results]
    return {"records": results[0]["rows"], "runs": results, "median_wall_s": float(np.median(walls)),
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in results)}  # fmt: skip


def bench_evidently(python: str, work: Path, baseline_csv: Path, capture_matrix: Path, runs: int) -> dict[str, Any]:
    script = work / "evidently_drift.py"
    script.write_text(
        "import sys, time, numpy as np, pandas as pd\n"
        "from evidently import Report\n"
        "from evidently.presets import DataDriftPreset\n"
        "reference = pd.read_csv(sys.argv[1])\n"
        "current = pd.DataFrame(np.load(sys.argv[2]), columns=reference.columns)\n"
        "started = time.perf_counter()\n"
        "result = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)\n"
        "result.dict()\n"
        "print(time.perf_counter() - started)\n"
    )
    walls, inner = [], []
    for _ in range(runs):
        wall, rss, result = _child([python, str(script), str(baseline_csv), str(capture_matrix)], dict(os.environ))
        walls.append(wall)
        inner.append(float(result.stdout.strip().splitlines()[-1]))
    return {"median_wall_s": float(np.median(walls)), "median_report_s": float(np.median(inner)), "peak_rss_mb": rss,
            "walls_s": walls}  # fmt: skip


def bench_verdicts(data: Path, windows: int = 200, seed: int = 0) -> dict[str, Any]:
    """False alarms on undrifted windows and detections of a 0.5 sigma shift, by window size.

    Baseline: the raw table's first 70 % (its numeric features); windows: rows resampled from the other 30 %.
    "Model Monitor" flags a window when any feature's distance exceeds 0.1 (Simple or Robust, as its analyzer);
    ours flags only a distance above 0.1 and above the family-wise noise floor, and otherwise says
    insufficient data when the floor is above 0.1.
    """
    from safedeploy.monitoring.analyzer.distance import minimum_detectable_distance, numerical_distance
    from safedeploy.monitoring.analyzer.kll import QuantileSketch

    with data.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = sorted(NUMERIC - {"Area Code"})
    table = np.array([[float(r[n]) for n in names] for r in rows])
    cut = int(len(table) * 0.7)
    base, pool = table[:cut], table[cut:]
    sketches = []
    for column in base.T:
        sketch = QuantileSketch()
        sketch.update(column)
        sketches.append(sketch)
    shift_column = names.index("Day Mins")
    sigma = float(base[:, shift_column].std())
    rng = np.random.default_rng(seed)
    threshold = 0.1
    result: dict[str, Any] = {"features": len(names), "windows_per_size": windows, "threshold": threshold, "sizes": {}}
    for size in (20, 50, 100, 200, 500, 1000):
        counts = {"simple_false": 0, "robust_false": 0, "ours_false": 0, "ours_insufficient": 0,
                  "simple_detect": 0, "robust_detect": 0, "ours_detect": 0}  # fmt: skip
        alpha = 0.05 / len(names)
        floor = minimum_detectable_distance(cut, size, alpha)
        for _ in range(windows):
            window = pool[rng.integers(0, len(pool), size)]
            for shifted in (False, True):
                sample = window.copy()
                if shifted:
                    sample[:, shift_column] += 0.5 * sigma
                simple_any = robust_any = ours_any = False
                for index, column in enumerate(sample.T):
                    sketch = QuantileSketch()
                    sketch.update(column)
                    simple = numerical_distance(sketches[index], sketch, "Simple").distance
                    robust = numerical_distance(sketches[index], sketch, "Robust").distance
                    simple_any |= simple > threshold
                    robust_any |= robust > threshold
                    ours_any |= robust > threshold and simple > floor
                key = "detect" if shifted else "false"
                counts[f"simple_{key}"] += simple_any
                counts[f"robust_{key}"] += robust_any
                counts[f"ours_{key}"] += ours_any
                if not shifted and floor > threshold:
                    counts["ours_insufficient"] += 1
        result["sizes"][str(size)] = {
            **{k: v / windows for k, v in counts.items()},
            "min_detectable_distance": floor,
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the raw churn table (make bench: the demo data)")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--evidently-python", help="interpreter of the bench environment with evidently installed")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    args = parser.parse_args()
    work = (args.out / "monitoring-work").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    report: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                              "time": datetime.now(UTC).isoformat()}  # fmt: skip
    try:
        report["baseline"] = bench_baseline(work, args.runs)
        print(f"baseline 2,333 x 70: median {report['baseline']['median_s']:.2f} s", flush=True)
        report["verdicts"] = bench_verdicts(args.data)
        model_baseline, schema, records = prepare_model_data(args.data, work)
        capture = write_capture(work / "capture", records, args.records)
        report["monitoring"] = bench_monitoring(work, model_baseline, capture, args.runs)
        print(f"monitoring {args.records:,} records: median {report['monitoring']['median_wall_s']:.2f} s, "
              f"peak RSS {report['monitoring']['max_peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
        if args.evidently_python:
            # Evidently gets the window already decoded, in the same encoded columns (no JSON parsing for it).
            from safedeploy.monitoring.analyzer.capture import CaptureDecoder, capture_files

            columns = schema.features
            data = CaptureDecoder(columns, schema, start=None, end=None).read(capture_files(capture))
            matrix = work / "window.npy"
            np.save(matrix, np.concatenate([chunk.matrix for chunk in data.chunks]), allow_pickle=False)
            report["evidently"] = bench_evidently(args.evidently_python, work, _baseline_csv(work), matrix, args.runs)
            ratio = report["evidently"]["median_report_s"] / report["monitoring"]["median_wall_s"]
            report["evidently"]["ratio_evidently_over_ours"] = ratio
            print(f"evidently: {report['evidently']['median_report_s']:.2f} s for the report alone; ours is {ratio:.1f}x faster",
                  flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work / "capture", ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "monitoring.json").write_text(json.dumps(report, indent=2))
    (args.out / "monitoring.md").write_text(_markdown(report, args.records))
    return 0


def _baseline_csv(work: Path) -> Path:
    found = sorted((work / "state" / "s3").rglob("baseline.csv"))
    return found[0]


def _markdown(report: dict[str, Any], records: int) -> str:
    baseline, monitoring = report["baseline"], report["monitoring"]
    lines = [
        "# Monitoring benchmark", "",
        f"{report['time']}, Python {report['machine']['python']}, {report['machine']['cpus']} CPUs", "",
        "| measure | result | target |", "| --- | --- | --- |",
        f"| suggest-baseline, 2,333 x 70 (median of {len(baseline['wall_s'])}) | {baseline['median_s']:.2f} s | AWS analyzer about 330 s |",
        f"| monitoring job, {records:,} records (median wall) | {monitoring['median_wall_s']:.2f} s | <= 10 s |",
        f"| monitoring job, peak RSS | {monitoring['max_peak_rss_mb']:.0f} MB | <= 1,536 MB |",
    ]  # fmt: skip
    if "evidently" in report:
        evidently = report["evidently"]
        lines.append(f"| Evidently DataDriftPreset on the decoded window (report only) | {evidently['median_report_s']:.2f} s "
                     f"({evidently['ratio_evidently_over_ours']:.1f}x ours) | ours >= 10x faster |")  # fmt: skip
    verdicts = report.get("verdicts")
    if verdicts:
        lines += [
            "",
            f"Drift verdicts by window size ({verdicts['windows_per_size']} windows each, {verdicts['features']} numeric "
            f"features, threshold {verdicts['threshold']}): share of undrifted windows flagged, and of windows with Day "
            "Mins shifted by 0.5 sigma detected.",
            "",
            "| records | Simple: false alarms | Robust: false alarms | ours: false alarms | ours: insufficient data "
            "| Simple: detected | Robust: detected | ours: detected | smallest detectable distance |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for size, row in verdicts["sizes"].items():
            lines.append(
                f"| {size} | {row['simple_false']:.0%} | {row['robust_false']:.0%} | {row['ours_false']:.0%} | "
                f"{row['ours_insufficient']:.0%} | {row['simple_detect']:.0%} | {row['robust_detect']:.0%} | "
                f"{row['ours_detect']:.0%} | {row['min_detectable_distance']:.3f} |"
            )
    lines += ["", "Per run: " + json.dumps(monitoring["runs"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
