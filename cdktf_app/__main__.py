"""``python -m cdktf_app synth [--out terraform] [--check]`` and ``python -m cdktf_app scan [--out terraform]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUT = Path("terraform")


def _synth(args: argparse.Namespace) -> int:
    from cdktf_app.app import stale, synthesize, write
    from cdktf_app.config import ENVIRONMENTS

    unknown = sorted(set(args.env or ()) - set(ENVIRONMENTS))
    if unknown:
        print(f"unknown environment(s): {', '.join(unknown)} (known: {', '.join(ENVIRONMENTS)})", file=sys.stderr)
        return 2
    environments = {name: ENVIRONMENTS[name] for name in (args.env or ENVIRONMENTS)}
    rendered = synthesize(environments)
    if args.check:
        outdated = stale(args.out, rendered)
        for path in outdated:
            print(f"stale: {path} differs from a fresh synth; run `python -m cdktf_app synth`", file=sys.stderr)
        if not outdated:
            print(f"up to date: {', '.join(str(args.out / name) for name in rendered)}")
        return 1 if outdated else 0
    for path in write(args.out, rendered):
        print(f"wrote {path}")
    return 0


def _scan(args: argparse.Namespace) -> int:
    from cdktf_app.scan import scan_roots
    from safedeploy.infra.policy import PolicyToolMissingError

    try:
        results = scan_roots(sorted(p.parent for p in args.out.glob("*/cdk.tf.json")), checkov=args.checkov)
    except PolicyToolMissingError as exc:
        print(exc, file=sys.stderr)
        return 2
    for result in results:
        print(result.summary())
    return 0 if all(result.ok for result in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m cdktf_app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="write terraform/<env>/cdk.tf.json for every environment")
    synth.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: terraform)")
    synth.add_argument("--check", action="store_true", help="fail, naming the file, if the committed output is stale")
    synth.add_argument("--env", action="append", help="only this environment (repeatable)")
    synth.set_defaults(run=_synth)
    scan = commands.add_parser("scan", help="checkov on terraform/<env>/, with the inline suppressions applied")
    scan.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: terraform)")
    scan.add_argument("--checkov", type=Path, default=None, help="checkov executable (default: .tools/checkov)")
    scan.set_defaults(run=_scan)
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
