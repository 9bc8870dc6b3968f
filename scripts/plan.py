"""`make plan ENV=dev`: synthesize the CDKTF app, then terraform init + plan (against moto without AWS credentials).

Writes build/terraform/<env>/{tfplan,plan.json,plan-summary.json,plan-summary.md} and prints the summary.
With no terraform CLI it says so and stops after synthesizing (exit 0): the synthesized JSON is still reviewable.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safedeploy.atomic import atomic_write_text  # noqa: E402
from safedeploy.infra.plan import apply_saved_plan, plan_environment  # noqa: E402
from safedeploy.infra.terraform_cli import TerraformFailedError, TerraformUnavailableError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev", help="environment directory under terraform/ (dev, prod)")
    parser.add_argument("--against", choices=("auto", "aws", "moto"), default="auto")
    parser.add_argument("--no-synth", action="store_true", help="plan the committed synthesized output as it is")
    parser.add_argument("--apply", action="store_true", help="apply the plan saved by the last `make plan` instead")
    parser.add_argument("--yes", action="store_true", help="with --apply: do not ask first")
    args = parser.parse_args(argv)
    source = ROOT / "terraform" / args.env
    if args.apply:
        return _apply(ROOT / "build" / "terraform" / args.env, args.yes)
    if not args.no_synth:
        env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
        done = subprocess.run([sys.executable, "-m", "cdktf_app", "synth", "--out", "terraform"], cwd=ROOT, env=env)
        if done.returncode != 0:
            print("error: cdktf synth failed (see above)", file=sys.stderr)
            return done.returncode
    if not (source / "cdk.tf.json").is_file():
        known = ", ".join(sorted(p.name for p in (ROOT / "terraform").iterdir() if (p / "cdk.tf.json").is_file()))
        print(f"error: no synthesized environment {args.env!r} (have: {known or 'none'})", file=sys.stderr)
        return 2
    try:
        result = plan_environment(source, ROOT / "build" / "terraform" / args.env, against=args.against)
    except TerraformUnavailableError as exc:
        print(f"synthesized {source.relative_to(ROOT)}/cdk.tf.json; not planning: {exc}")
        return 0
    except TerraformFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    title = f"terraform plan: {args.env} (against {result.against})"
    text = result.summary.markdown(title)
    atomic_write_text(result.workdir / "plan-summary.md", text)
    print(text)
    print(f"saved plan: {result.plan_file.relative_to(ROOT)} (review: terraform show tfplan, in that directory)")
    return 0


def _apply(workdir: Path, yes: bool) -> int:
    summary = workdir / "plan-summary.md"
    if summary.is_file():
        print(summary.read_text(encoding="utf-8"))
    if not yes:
        if not sys.stdin.isatty():
            print("error: applying needs a confirmation: run in a terminal, or pass YES=1", file=sys.stderr)
            return 2
        if input("apply exactly this saved plan? type 'yes': ").strip() != "yes":
            print("not applied", file=sys.stderr)
            return 2
    try:
        print(apply_saved_plan(workdir))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TerraformUnavailableError, TerraformFailedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
