"""`make mutate`: mutation testing (mutmut 3) of the safety-critical modules, each against its own tests.

Every group below is one mutmut run in its own scratch copy of the project (``build/mutate/work/<group>/``, whose
``pyproject.toml`` gets the group's ``[tool.mutmut]`` table): mutmut 3 reads its configuration from the working
directory, mutates the listed files only, and runs each mutant against the tests of that group that execute the
mutated function (its own per-function coverage, from a first "stats" run of the group's tests). Results:

* ``build/mutate/survivors.txt``: every surviving mutant (file, line, diff), equivalent ones marked with why;
* ``build/mutate/summary.json``: killed / survived / equivalent / timeout / ... per module, and the run times;
* ``build/mutate/logs/<group>.log``: mutmut's own output.

Exit status 1 when a mutant survived that is not listed in :data:`EQUIVALENT`.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "mutate"
COPIED = ("safedeploy", "model", "lambdas", "tests")
"""What a scratch copy holds besides pyproject.toml (mutmut copies the same again into its ``mutants/``)."""
SOURCE_PATHS = ("safedeploy", "model", "lambdas")
"""Importable by the tests from mutmut's ``mutants/`` copy; only the group's files are mutated."""

KEY_CHECK_LINES = (
    r"presented = request\.headers\.get",
    r"if route\.ApiKeyRequired",
    r"_message\(403,",
    r"self\.api_keys = \{",
    r"route\.Path: api_keys\.get\(",
    r"def _key_matches",
    r"if not presented or not expected",
    r"^        return False$",
    r"hmac\.compare_digest",
    r"token_urlsafe",
)
"""The lines of ``safedeploy/runtime/apigateway/gateway.py`` that check the API key
(mutmut mutates files, not functions:
every other line of the module is excluded with a ``do_not_mutate_patterns`` regular expression)."""


ORDER_MODULE = "tests._mutation_order"
ORDER_PLUGIN = '''"""Written by scripts/mutate.py into its scratch copies: a mutant's tests run fastest first.

mutmut hands pytest a mutant's tests in no particular order and stops at the first failure (-x); with the
durations it measured in its stats run (``mutmut-stats.json`` in its working directory), a mutant that a quick
test kills does not wait for the slow blue/green deployments first.
"""

import json
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    stats = Path("mutmut-stats.json")
    if stats.is_file():
        durations = json.loads(stats.read_text(encoding="utf-8")).get("duration_by_test", {})
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
'''


@dataclass(frozen=True)
class Group:
    """One module (or two) and the tests that judge its mutants."""

    name: str
    files: tuple[str, ...]
    tests: tuple[str, ...]
    only_lines: tuple[str, ...] = ()
    """If given, only lines matching one of these regular expressions are mutated."""
    mutants: tuple[str, ...] = ()
    """If given, only the mutants whose names match one of these globs are run (and reported)."""
    default: bool = True
    """Part of a plain ``make mutate`` (else only when named: ``GROUPS=...``)."""


def _methods(cls: str, *names: str) -> tuple[str, ...]:
    return tuple(f"*ǁ{cls}ǁ{name}__mutmut_*" for name in names)


BLUE_GREEN_DECISIONS = (
    "*ǁAlarmSettingsǁ*",
    "*ǁSyntheticTrafficǁ*",
    "*ǁLeaseHeartbeatǁ*",
    *_methods("BlueGreenDeployment", "_hook", "_shift", "_real_period", "_watch", "_judge_window", "_stalled"),
    *_methods("BlueGreenDeployment", "_datapoints", "_prediction_shift", "_roll_back", "_release_lease", "_record"),
    *_methods("BlueGreenDeployment", "_lease_lost"),
)
"""Everything in blue_green.py but the orchestration of ``run``/``_run`` (their ~200 mutants are judged only by
whole deployments, 1-5 s each: ``GROUPS=blue_green_orchestration`` runs them, about half an hour on 2 cores)."""
BLUE_GREEN_TESTS = (
    "tests/test_blue_green.py",
    "-k",
    "not Linear10PercentEvery1Minute and not stalled_machine_is_extended",
)
"""Its two ~11 s ten-step deployments would double what every surviving mutant costs; the same logic is covered by
the one-step deployments and the unit tests of the watch loop."""


GROUPS = (
    Group("gate", ("safedeploy/training/gate.py",), ("tests/test_gate.py", "-m", "not slow")),
    Group("alarms", ("safedeploy/alarms.py",), ("tests/test_alarms.py",)),
    Group("blue_green", ("safedeploy/blue_green.py",), BLUE_GREEN_TESTS, mutants=BLUE_GREEN_DECISIONS),
    Group(
        "gateway_api_key",
        ("safedeploy/runtime/apigateway/gateway.py",),
        ("tests/test_gateway_api_key.py",),
        only_lines=KEY_CHECK_LINES,
    ),
    Group("atomic", ("safedeploy/atomic.py",), ("tests/test_store.py",)),
    Group(
        "smoke",
        ("safedeploy/smoke.py",),
        ("tests/test_smoke.py", "-m", "not slow", "-k", "not live_deploy_dev and not source_archive"),
    ),
    Group(
        "blue_green_orchestration",
        ("safedeploy/blue_green.py",),
        BLUE_GREEN_TESTS,
        mutants=_methods("BlueGreenDeployment", "run", "_run"),
        default=False,
    ),
)

_CODEC = "codec names are case-insensitive: 'UTF-8' is the same codec as 'utf-8'"
_FLOAT64 = "the array is float64 either way: np.full's fill NaN / None and astype(None) give float64"
_BREACHING = (
    "with 'breaching' and no datapoint present all N missing datapoints breach, N >= datapoints_to_alarm, so the "
    "ALARM branch above has already returned"
)
_ALARMS_OK_LINE = 'if present or rule.treat_missing_data in ("notBreaching", "breaching"):'
_GOT = "got = np.full(len(rows), np.nan, dtype=np.float64)"
_GATEWAY = "safedeploy/runtime/apigateway/gateway.py"
_PREDICT = "return np.asarray(booster.inplace_predict(rows, validate_features=False), dtype=np.float32).reshape(-1)"
_ONE_D = "a binary:logistic booster's inplace_predict is already one score per row (1-D)"
_NO_NAMES = "XGBoost checks feature names of data frames only; these rows are a numpy array"
_PREDICT_MUTANTS = (
    (".reshape(-1)", ".reshape(None)", _ONE_D),
    (".reshape(-1)", ".reshape(-2)", _ONE_D),
    ("dtype=np.float32", "dtype=None", "inplace_predict already returns float32"),
    (", dtype=np.float32)", ", )", "inplace_predict already returns float32"),
    ("validate_features=False", "validate_features=None", _NO_NAMES),
    ("validate_features=False", "validate_features=True", _NO_NAMES),
    ("rows, validate_features=False)", "rows, )", _NO_NAMES),
)
_KEY_LOOKUP = 'if route.ApiKeyRequired and not _key_matches(presented, self.api_keys.get(route.Path, b"")):'
_EVERY_ROUTE_HAS_A_KEY = (
    "configure() gives every route it installs an entry in api_keys (b'' when its plan has none), so this default "
    "is never used"
)
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("safedeploy/alarms.py", _ALARMS_OK_LINE, _ALARMS_OK_LINE.replace('"breaching"', '"XXbreachingXX"')): _BREACHING,
    ("safedeploy/alarms.py", _ALARMS_OK_LINE, _ALARMS_OK_LINE.replace('"breaching"', '"BREACHING"')): _BREACHING,
    (
        "safedeploy/blue_green.py",
        "weights = {blue.endpoint: round(1.0 - weight, 4), green.endpoint: weight}",
        "weights = {blue.endpoint: round(1.0 - weight, 5), green.endpoint: weight}",
    ): "the step's percent is an integer, so 1 - percent/100 rounds to the same value at 4 or 5 decimals",
    (
        "safedeploy/blue_green.py",
        "if feeder is None or not self.synthetic or feeder.rate <= 0:",
        "if feeder is None or not self.synthetic or feeder.rate < 0:",
    ): "a feeder at rate 0 asked for 0 requests, and no count of answers is below half of 0: not stalled either way",
    (
        "safedeploy/blue_green.py",
        "end = max(window_start + real_period, start + (index + 1) * real_period)",
        "end = max(window_start + real_period, start - (index + 1) * real_period)",
    ): "window_start is the previous window's end, never before start + index periods, so window_start + period "
    "is always the larger: the second term of max() never decides",
    (
        "safedeploy/blue_green.py",
        "end = max(window_start + real_period, start + (index + 1) * real_period)",
        "end = max(window_start + real_period, start + (index - 1) * real_period)",
    ): "window_start is the previous window's end, never before start + index periods, so window_start + period "
    "is always the larger: the second term of max() never decides",
    (
        "safedeploy/blue_green.py",
        "if delay > 0 and not self.clock.sleep(delay * self.clock.scale):",
        "if delay >= 0 and not self.clock.sleep(delay * self.clock.scale):",
    ): "a delay of exactly 0 s: sleeping 0 s is no wait, and an interrupt is seen at the next sleep",
    (
        "safedeploy/blue_green.py",
        '"GreaterThanThreshold",',
        "",
    ): "GreaterThanThreshold is AlarmRule's default comparison",
    **{
        (_GATEWAY, _KEY_LOOKUP, _KEY_LOOKUP.replace('b"")', mutated)): _EVERY_ROUTE_HAS_A_KEY
        for mutated in ("None)", ")", 'b"XXXX")')
    },
    (
        "safedeploy/runtime/apigateway/gateway.py",
        'return hmac.compare_digest(presented.encode("utf-8", "replace"), expected)',
        'return hmac.compare_digest(presented.encode("UTF-8", "replace"), expected)',
    ): _CODEC,
    (
        "safedeploy/smoke.py",
        'text = store.get_bytes(uri).decode("utf-8")',
        'text = store.get_bytes(uri).decode("UTF-8")',
    ): _CODEC,
    ("safedeploy/blue_green.py", "if delay > 0:", "if delay >= 0:"): "waiting 0 s is no wait",
    **{
        ("safedeploy/blue_green.py", 'raise AssertionError("unreachable")  # pragma: no cover', mutated): (
            "unreachable: the loop returns at its last extension"
        )
        for mutated in (
            "raise AssertionError(None)  # pragma: no cover",
            'raise AssertionError("XXunreachableXX")  # pragma: no cover',
            'raise AssertionError("UNREACHABLE")  # pragma: no cover',
        )
    },
    (
        "safedeploy/blue_green.py",
        "for extension in range(MAX_WINDOW_EXTENSIONS + 1):",
        "for extension in range(MAX_WINDOW_EXTENSIONS + 2):",
    ): "the loop returns at extension == MAX_WINDOW_EXTENSIONS, so a longer range is never reached",
    **{("safedeploy/smoke.py", _PREDICT, _PREDICT.replace(old, new)): why for old, new, why in _PREDICT_MUTANTS},
    **{
        ("safedeploy/smoke.py", 'booster.set_param({"nthread": 1})', mutated): (
            "the thread count changes how fast XGBoost predicts, not what (an unknown parameter is ignored)"
        )
        for mutated in (
            'booster.set_param({"XXnthreadXX": 1})',
            'booster.set_param({"NTHREAD": 1})',
            'booster.set_param({"nthread": 2})',
        )
    },
    ("safedeploy/blue_green.py", "green: ServedModel | None = None", 'green: ServedModel | None = ""'): (
        "green is only read as `green or ServedModel(...)`: an empty string is as falsy as None"
    ),
    (
        "safedeploy/atomic.py",
        'return atomic_write_bytes(dest, text.encode("utf-8"))',
        'return atomic_write_bytes(dest, text.encode("UTF-8"))',
    ): _CODEC,
    (
        "safedeploy/smoke.py",
        'lines = reply["Body"].read().decode("utf-8").split()',
        'lines = reply["Body"].read().decode("UTF-8").split()',
    ): _CODEC,
    ("safedeploy/smoke.py", _GOT, "got = np.full(len(rows), None, dtype=np.float64)"): _FLOAT64,
    ("safedeploy/smoke.py", _GOT, "got = np.full(len(rows), np.nan, dtype=None)"): _FLOAT64,
    ("safedeploy/smoke.py", _GOT, "got = np.full(len(rows), np.nan, )"): _FLOAT64,
    (
        "safedeploy/smoke.py",
        "errors = np.abs(got - expected.astype(np.float64))",
        "errors = np.abs(got - expected.astype(None))",
    ): _FLOAT64,
}
"""(file, original line, mutated line), stripped -> why no test can tell the mutant from the original."""


_TEN_SECOND_JOIN = (
    "the join only bounds a feeder send or lease renewal that hangs (the threads end as soon as the stop event is "
    "set): telling 10 s from 11 s or forever takes a test that hangs a thread for 10 s"
)
ACCEPTED: dict[tuple[str, str, str], str] = {
    ("safedeploy/blue_green.py", "self._thread.join(timeout=10)", "self._thread.join(timeout=None)"): _TEN_SECOND_JOIN,
    ("safedeploy/blue_green.py", "self._thread.join(timeout=10)", "self._thread.join(timeout=11)"): _TEN_SECOND_JOIN,
    ("safedeploy/blue_green.py", "thread.join(timeout=10)", "thread.join(timeout=None)"): _TEN_SECOND_JOIN,
    ("safedeploy/blue_green.py", "thread.join(timeout=10)", "thread.join(timeout=11)"): _TEN_SECOND_JOIN,
    ("safedeploy/blue_green.py", "next_at += 1.0 / rate", "next_at += 2.0 / rate"): (
        "the feeder at half its pace still fills the test windows; a wall-clock bound tight enough to tell would be "
        "flaky on a loaded 2-core machine"
    ),
}
"""Surviving mutants that do change behaviour but that no reasonable test tells apart, with why (not counted as
unexplained)."""


@dataclass
class Mutant:
    """One mutant's outcome."""

    name: str
    status: str
    file: str = ""
    line: int = 0
    diff: str = ""
    equivalent: str | None = None
    accepted: str | None = None


@dataclass
class GroupResult:
    """A group's mutants and how long mutmut took."""

    group: Group
    seconds: float
    mutants: list[Mutant] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Mutants per status; equivalent survivors counted apart."""
        counts = Counter("equivalent" if m.equivalent else "accepted" if m.accepted else m.status for m in self.mutants)
        return {"total": len(self.mutants), **dict(sorted(counts.items()))}


def _toml_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def mutmut_table(group: Group) -> str:
    """The group's ``[tool.mutmut]`` table (mutmut 3's option names)."""
    options = {
        "source_paths": _toml_list(SOURCE_PATHS),
        "only_mutate": _toml_list(group.files),
        "pytest_add_cli_args_test_selection": _toml_list(group.tests),
        "pytest_add_cli_args": _toml_list(["-p", "no:cacheprovider", "-n", "0", "-p", ORDER_MODULE]),
        "use_git_change_detection": "false",
        "timeout_multiplier": "5.0",
    }
    if group.only_lines:
        options["do_not_mutate_patterns"] = _toml_list([rf"^(?!.*({'|'.join(group.only_lines)}))"])
    return "\n[tool.mutmut]\n" + "".join(f"{key} = {value}\n" for key, value in options.items())


def prepare(group: Group, keep: bool = False) -> Path:
    """A fresh scratch copy of the project for one group.

    With ``keep`` an existing copy keeps its code and mutmut's verdicts and only gets the current tests: mutmut then
    checks what it has not checked yet (and the mutants named on its command line) against them.
    """
    work = OUT / "work" / group.name
    if keep and (work / "mutants").is_dir():
        shutil.rmtree(work / "tests")
        shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (work / (ORDER_MODULE.replace(".", "/") + ".py")).write_text(ORDER_PLUGIN, encoding="utf-8")
        return work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in COPIED:
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if "[tool.mutmut]" in pyproject:
        raise SystemExit("pyproject.toml has a [tool.mutmut] table: the groups here configure mutmut")
    (work / "pyproject.toml").write_text(pyproject + mutmut_table(group), encoding="utf-8")
    (work / (ORDER_MODULE.replace(".", "/") + ".py")).write_text(ORDER_PLUGIN, encoding="utf-8")
    return work


def _mutmut(work: Path, *args: str, log: Path | None = None) -> str:
    command = [str(Path(sys.executable).with_name("mutmut")), *args]
    # One OpenMP thread: mutmut forks each mutant from a process that ran XGBoost, and a forked child of a process
    # with an OpenMP thread pool hangs in its next parallel region.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("CI", None)  # mutmut's own CI-mode output is not what the log needs; tests do not read it
    if log is None:
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    with log.open("w", encoding="utf-8") as stream:
        code = subprocess.run(command, cwd=work, env=env, stdout=stream, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"mutmut {' '.join(args)} failed in {work} (exit {code}); see {log}")
    return ""


_RESULT = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")
_HUNK = re.compile(r"^@@ -(?P<start>\d+)")


def _function_span(source: str, function: str) -> tuple[int, int]:
    """First and last line of ``function`` (``name``, or ``Class.name``) in ``source``."""
    cls, _, name = function.rpartition(".")
    scope: list[ast.stmt] = ast.parse(source).body
    if cls:
        scope = next(n.body for n in scope if isinstance(n, ast.ClassDef) and n.name == cls)
    node = next(n for n in scope if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return first, node.end_lineno or node.lineno


def locate(mutant: Mutant, file: str, source: str) -> None:
    """Fill in the mutant's file and its line in the original source (the diff is relative to the function)."""
    mutant.file = file
    function = mutant.name.rpartition(".")[2].split("__mutmut_")[0]
    function = function.replace("ǁ", ".").removeprefix("x.").removeprefix("x_")
    try:
        first, last = _function_span(source, function)
    except (StopIteration, SyntaxError):
        return
    lines = source.splitlines()
    offset, removed = 0, None
    for text in mutant.diff.splitlines():
        hunk = _HUNK.match(text)
        if hunk:
            offset = int(hunk["start"])
            continue
        if text.startswith(("---", "+++")):
            continue
        if text.startswith("-"):
            removed = text[1:].strip()
            break
        if text.startswith(" "):
            offset += 1
    if removed is None:
        return
    guess = first + offset - 1
    if 0 < guess <= len(lines) and lines[guess - 1].strip() == removed:
        mutant.line = guess
        return
    matches = [n for n in range(first, last + 1) if lines[n - 1].strip() == removed]
    mutant.line = matches[0] if matches else first


def _changed_lines(diff: str) -> tuple[str, str]:
    removed = [t[1:].strip() for t in diff.splitlines() if t.startswith("-") and not t.startswith("---")]
    added = [t[1:].strip() for t in diff.splitlines() if t.startswith("+") and not t.startswith("+++")]
    return " / ".join(removed), " / ".join(added)


def collect(group: Group, work: Path, seconds: float) -> GroupResult:
    """Read mutmut's verdicts (and the survivors' diffs) from the scratch copy."""
    result = GroupResult(group, seconds)
    for text in _mutmut(work, "results", "--all", "true").splitlines():
        match = _RESULT.match(text)
        if match and (not group.mutants or any(fnmatch.fnmatchcase(match["name"], g) for g in group.mutants)):
            result.mutants.append(Mutant(match["name"], match["status"].strip()))
    sources = {file: (ROOT / file).read_text(encoding="utf-8") for file in group.files}
    for mutant in result.mutants:
        if mutant.status == "killed":
            continue
        mutant.diff = _mutmut(work, "show", mutant.name).split("\n", 1)[-1].strip()
        module = mutant.name.split(".x")[0]
        file = next((f for f in group.files if f.removesuffix(".py").replace("/", ".") == module), group.files[0])
        locate(mutant, file, sources[file])
        if mutant.status == "survived":
            key = (file, *_changed_lines(mutant.diff))
            mutant.equivalent = EQUIVALENT.get(key)
            mutant.accepted = ACCEPTED.get(key)
    return result


def write_reports(results: list[GroupResult], total_seconds: float) -> tuple[Path, Path]:
    """``survivors.txt`` and ``summary.json`` under build/mutate/."""
    OUT.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for result in results:
        for mutant in sorted(result.mutants, key=lambda m: (m.file, m.line, m.name)):
            if mutant.status != "survived" and mutant.status != "timeout":
                continue
            label = mutant.status.upper()
            if mutant.equivalent or mutant.accepted:
                label = f"EQUIVALENT ({mutant.equivalent})" if mutant.equivalent else f"ACCEPTED ({mutant.accepted})"
            lines += [f"{mutant.file}:{mutant.line}  {mutant.name}  {label}", mutant.diff, ""]
    survivors = OUT / "survivors.txt"
    survivors.write_text("\n".join(lines) or "no surviving mutants\n", encoding="utf-8")
    summary = {
        "command": "make mutate",
        "mutmut": importlib.metadata.version("mutmut"),
        "seconds": round(total_seconds, 1),
        "modules": {
            result.group.name: {
                "files": list(result.group.files),
                "tests": list(result.group.tests),
                "seconds": round(result.seconds, 1),
                **result.counts(),
            }
            for result in results
        },
    }
    summary_file = OUT / "summary.json"
    summary_file.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return survivors, summary_file


def main(argv: list[str] | None = None) -> int:
    """Run every group (or the ones named), then write the reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"default: all of {', '.join(g.name for g in GROUPS)}")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="mutants run in parallel")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="reuse the scratch copies and mutmut's verdicts (new tests only): e.g. with --mutants naming survivors",
    )
    parser.add_argument(
        "--mutants", nargs="+", default=[], metavar="GLOB", help="only these mutant names (e.g. '*blue_green*run__*')"
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="re-check only the previous run's surviving and timed-out mutants against the current tests (--keep)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.groups) - {g.name for g in GROUPS}
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}")
    chosen = [g for g in GROUPS if g.name in args.groups or (not args.groups and g.default)]
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = []
    for group in chosen:
        work = prepare(group, keep=args.keep or args.survivors)
        print(f"mutate: {group.name} ({', '.join(group.files)}) against {' '.join(group.tests)}", flush=True)
        began = time.monotonic()
        names = list(args.mutants or group.mutants)
        if args.survivors:
            names = [m.name for m in collect(group, work, 0.0).mutants if m.status in ("survived", "timeout")]
        if names or not args.survivors:
            run = ["run", "--max-children", str(args.max_children), *names]
            _mutmut(work, *run, log=OUT / "logs" / f"{group.name}.log")
        result = collect(group, work, time.monotonic() - began)
        results.append(result)
        print(f"mutate: {group.name}: {result.counts()} in {result.seconds:.0f} s", flush=True)
    survivors, summary = write_reports(results, time.monotonic() - started)
    unexplained = [m for r in results for m in r.mutants if m.status == "survived" and not (m.equivalent or m.accepted)]
    print(f"mutate: {len(unexplained)} unexplained survivor(s); {survivors}, {summary}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main())
