"""Deployment benchmark: `make deploy AUTO_APPROVE=1` wall time, from data to production at 100 %.

Runs the pipeline the way `make deploy AUTO_APPROVE=1` does (the CLI, a fresh state directory, the demo data),
``--runs`` times: the first run is a first deployment, the later ones shift blue to green through the canary.
Reports each run's wall time and its stages' durations next to the seed workshop's 30-35 minutes, in
``build/bench/deploy.json`` and ``build/bench/deploy.md``. The canary and bake run on the scalable clock
(the spec's ``production.time_scale``, 60 by default: 5 minutes take 5 s); the logic is the same as on AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safedeploy.local import daemon  # noqa: E402
from safedeploy.runner import PipelineExecution  # noqa: E402

SEED_MINUTES = (30, 35)
"""The seed workshop's end-to-end time for the same pipeline on AWS (its README)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    args = parser.parse_args()
    state = (args.out / "deploy-state").resolve()
    shutil.rmtree(state, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEDEPLOY_")}
    env["SAFEDEPLOY_STATE_DIR"] = str(state)
    runs = []
    try:
        for number in range(1, args.runs + 1):
            started = time.monotonic()
            result = subprocess.run(
                [str(ROOT / ".venv" / "bin" / "safedeploy"), "run", "--data", str(args.data), "--auto-approve",
                 "--trigger", "make bench"],
                env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            wall = time.monotonic() - started
            status = subprocess.run(
                [str(ROOT / ".venv" / "bin" / "safedeploy"), "status", "--json"],
                env=env, cwd=ROOT, capture_output=True, text=True, check=True,
            )  # fmt: skip
            execution = PipelineExecution.model_validate_json(status.stdout)
            stages = {s.name: round(s.duration_seconds or 0.0, 2) for s in execution.stages}
            runs.append({"run": number, "exit": result.returncode, "status": execution.status, "wall_s": round(wall, 2),
                         "stages_s": stages, "first_deployment": number == 1})  # fmt: skip
            print(
                f"run {number}: exit {result.returncode}, {execution.status}, {wall:.1f} s wall, {stages}", flush=True
            )
            if result.returncode != 0:
                print(result.stdout[-2000:], result.stderr[-2000:], sep="\n")
    finally:
        daemon.stop(state)
    walls = [r["wall_s"] for r in runs]
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "make bench (bench/deploy.py): safedeploy run --auto-approve, as make deploy AUTO_APPROVE=1",
        "target_s": 60,
        "seed_minutes": SEED_MINUTES,
        "max_wall_s": max(walls),
        "met": all(r["exit"] == 0 for r in runs) and max(walls) <= 60,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "deploy.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
    names = list(runs[0]["stages_s"])
    lines = [
        "# Deployment benchmark",
        "",
        f"{meta['date']} on {meta['machine']}; {meta['command']}. Data -> Train -> gate -> Register -> DeployDev "
        "(smoke test) -> approval (auto) -> DeployPrd (pre-traffic hook, Canary10Percent5Minutes, 5-minute bake, "
        "post-traffic hook) at time scale 60. Run 1 is a first deployment; later runs shift blue to green.",
        "",
        "| run | result | wall s | " + " | ".join(f"{n} s" for n in names) + " |",
        "| ---: | --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    lines += [
        f"| {r['run']} | {r['status']} | {r['wall_s']} | " + " | ".join(str(r["stages_s"][n]) for n in names) + " |"
        for r in runs
    ]
    lines += [
        "",
        f"Target: within 60 s wall: {'met' if meta['met'] else 'NOT met'} (slowest run {meta['max_wall_s']} s). "
        f"The seed workshop takes {SEED_MINUTES[0]}-{SEED_MINUTES[1]} minutes for the same path on AWS.",
    ]
    (args.out / "deploy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if meta["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
