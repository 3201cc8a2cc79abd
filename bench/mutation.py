"""Mutation testing of the modules where a silent bug loses or duplicates data.

mutmut changes one operator, constant or call at a time in a module and runs the unit
tests that cover the changed function; a mutant the tests still pass on ("survived")
is a change in behaviour nothing notices. Each module runs against its own fast unit
test files only, in a fresh copy of the repository under a temporary directory, so
nothing mutmut writes (its `mutants/` tree, hypothesis' database) lands in the
checkout. One mutant runs at a time (`--max-children 1`): the machine is shared.

    .venv/bin/python bench/mutation.py [--module NAME ...] [--survivors] [--keep]

mutmut is not a dependency of the broker or of its tests. The script uses it when it is
importable at the pinned version (`pip install -e ".[mutation]"`); otherwise it installs
that version once into ~/.cache/walrus-mutation (pip --target) and runs it from there.

The table gives, per module: mutants, killed (a test failed, or the mutant made the
module fail to import), survived, timeouts, mutants no selected test reaches, and
survival % = survived / (mutants - equivalent), where `equivalent` counts the surviving
mutants listed in EQUIVALENT below: changes that cannot alter behaviour. `--survivors`
prints each survivor's diff. The last line is
`RESULT mutation <module>_survived_pct=<...> ... total_survived_pct=<...>`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT_VERSION = "3.8.1"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "walrus-mutation"


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    tests: tuple[str, ...]
    # mutant name globs to run; empty means every mutant of the file
    functions: tuple[str, ...] = ()


def _methods(module: str, cls: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{module}.x\u01c1{cls}\u01c1{name}__mutmut_*" for name in names)


TARGETS = (
    Target(
        "producer_state",
        "broker/partitions/producer_state.py",
        ("tests/partitions/test_producer_state.py", "tests/partitions/test_producer_handover.py"),
    ),
    Target(
        "stamping",
        "broker/log/stamping.py",
        (
            "tests/log/test_stamping.py",
            "tests/log/test_log_append_read.py",
            "tests/log/test_log_timestamps.py",
        ),
    ),
    Target(
        "in_sync",
        "broker/partitions/in_sync.py",
        ("tests/partitions/test_in_sync.py", "tests/partitions/test_in_sync_replica_change.py"),
    ),
    Target(
        "records_contents",
        "broker/protocol/records/contents.py",
        ("tests/protocol/test_records_contents.py",),
    ),
    Target(
        "contents_check",
        "broker/partitions/contents_check.py",
        ("tests/partitions/test_replica_contents.py",),
    ),
    Target(
        "records_batch",
        "broker/protocol/records/batch.py",
        (
            "tests/protocol/test_records_batch.py",
            "tests/protocol/test_records_control.py",
            "tests/protocol/test_records_contents.py",
        ),
    ),
    # The metadata state machine is large; only the commands that move leadership and
    # the ISR (roll, reassign, lease renewal, ISR update) and the lease, segment and
    # producer-handover queries built on them are mutated.
    Target(
        "state_lease_roll_isr",
        "broker/coordination/state.py",
        (
            "tests/coordination/test_cluster_state.py",
            "tests/coordination/test_sealed_resync_state.py",
            "tests/coordination/test_assigned_replicas.py",
        ),
        _methods(
            "broker.coordination.state",
            "ClusterState",
            "_active_for_change",
            "_seal_and_open",
            "_roll_segment",
            "_reassign_leader",
            "_led_by",
            "_renew_lease",
            "_update_isr",
            "active_segment",
            "producers_at",
            "segment_for_offset",
            "holds_lease",
        ),
    ),
)

# Surviving mutants that cannot change behaviour, by mutant name: each with the reason.
# The names hold while the module's source is unchanged; mutmut numbers mutants per
# function, so an edit may renumber them (the run then reports them as survivors again).
_PS = "broker.log.stamping.x_"
_IS = "broker.partitions.in_sync.x\u01c1InSyncTracker\u01c1"
_RC = "broker.protocol.records.contents.x_"
_CC = "broker.partitions.contents_check.x_"
_RB = "broker.protocol.records.batch.x_"
_ST = "broker.coordination.state.x\u01c1ClusterState\u01c1"
_SAME_VIEW = "a view of the same bytes either way; only whether it is copied differs"
EQUIVALENT: dict[str, str] = {
    f"{_PS}prepare_single__mutmut_1": "every view then goes through memoryview(); one whose items are not single bytes, or not 1-D, has a len() that cannot equal its batch length, so None all the same",
    f"{_PS}prepare_single__mutmut_3": "as above: a view that is not 1-D bytes fails the length check instead",
    f"{_PS}prepare_single__mutmut_13": "a 61-byte batch has no records (lastOffsetDelta -1), which is refused anyway",
    f"{_PS}prepare_single__mutmut_23": "a batch of exactly the header size then takes prepare_append, which stamps it the same",
    f"{_PS}prepare_append__mutmut_2": "cast('B') of a 1-D byte view is the same view",
    f"{_PS}prepare_append__mutmut_6": "cast('B') of a 1-D byte view is the same view",
    f"{_PS}prepare_append__mutmut_7": "cast('B') of a 1-D byte view is the same view",
    f"{_PS}prepare_append__mutmut_12": "signed and unsigned byte views unpack and write the same bytes",
    f"{_PS}prepare_append__mutmut_45": "unreachable: parse_header raises for each case that leads there",
    f"{_IS}__init____mutmut_2": "replicas is read only to skip a set_replicas with the same list, which changes nothing anyway",
    f"{_RC}_check_headers__mutmut_26": "codec names are case-insensitive",
    f"{_RC}_check_headers__mutmut_35": "a length of 0 moves the position by 0",
    f"{_RC}check_records__mutmut_122": "a length of 0 moves the position by 0",
    f"{_RC}check_records__mutmut_164": "a length of 0 moves the position by 0",
    f"{_RC}check_records_count__mutmut_7": "for an integer count, count > floor(x) exactly when count > x",
    f"{_RC}records_section__mutmut_2": _SAME_VIEW,
    f"{_RC}records_section__mutmut_3": _SAME_VIEW,
    f"{_CC}_walk__mutmut_23": "when the count is a multiple of the slice, one more empty slice and yield",
    f"{_CC}check_contents__mutmut_27": "at a bound of exactly the inline limit the thread path refuses the same section with the same error",
    f"{_RB}_crc_of__mutmut_2": _SAME_VIEW,
    f"{_RB}_crc_of__mutmut_3": _SAME_VIEW,
    f"{_RB}validate_batch__mutmut_35": _SAME_VIEW,
    f"{_RB}validate_batch__mutmut_36": _SAME_VIEW,
    f"{_RB}validate_batch__mutmut_37": _SAME_VIEW,
    f"{_RB}validate_batch__mutmut_38": _SAME_VIEW,
    f"{_RB}validate_batch__mutmut_3": "parse_header on a whole header at pos 0 raises exactly when the checks after it would",
    f"{_RB}validate_batch__mutmut_4": "parse_header on a whole header at pos 0 raises exactly when the checks after it would",
    f"{_RB}validate_batch__mutmut_6": "a buffer of exactly 61 bytes: parse_header raises exactly when the checks after it would",
    f"{_RB}validate_batch__mutmut_22": "a batch length of exactly the minimum passes parse_header",
    f"{_RB}validate_batch__mutmut_60": "for an integer count, count > floor(x) exactly when count > x",
    f"{_ST}_seal_and_open__mutmut_24": "the partition's own leader is the current one, which next_leader passes over unless it is alone",
}

# mutmut's exit codes per mutant (mutmut/stats.py), folded into the table's columns.
_KILLED = {1, 3, 37}
_SURVIVED = {0}
_TIMEOUT = {36, 24, -24, 152, 255}
_NO_TESTS = {5, 33}


@dataclass
class Tally:
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    timeouts: int = 0
    no_tests: int = 0
    other: int = 0
    equivalent: int = 0
    survivors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def pct(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 * (self.survived - self.equivalent) / counted if counted else 0.0


def mutmut_command() -> list[str]:
    """How to start mutmut: the installed one at the pinned version, else a copy in the
    cache directory, appended to sys.path so the venv's pytest and broker deps win."""
    spec = importlib.util.find_spec("mutmut")
    if spec is not None:
        from importlib.metadata import version

        if version("mutmut") == MUTMUT_VERSION:
            return [sys.executable, "-m", "mutmut"]
    target = CACHE / f"mutmut-{MUTMUT_VERSION}"
    if not (target / "mutmut" / "__main__.py").exists():
        print(f"installing mutmut {MUTMUT_VERSION} into {target}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
             f"mutmut=={MUTMUT_VERSION}"],
            check=True,
        )
    launcher = (
        f"import sys; sys.path.append({str(target)!r}); "
        "sys.argv[0] = 'mutmut'; from mutmut.__main__ import cli; cli()"
    )
    return [sys.executable, "-c", launcher]


def prepare(workdir: Path, target: Target) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / "broker", workdir / "broker", ignore=ignore)
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=ignore)
    # pytest's settings (markers, timeout) come from the project's own file; it has no
    # [tool.mutmut] table, so mutmut reads setup.cfg.
    shutil.copy2(ROOT / "pyproject.toml", workdir / "pyproject.toml")
    lines = [
        "[mutmut]",
        "source_paths = broker",
        f"only_mutate = {target.path}",
        "pytest_add_cli_args_test_selection =",
        *(f"    {test}" for test in target.tests),
        "pytest_add_cli_args =",
        "    -p",
        "    no:cacheprovider",
        "    -o",
        "    addopts=",
        # the temporary copy is no git repository
        "use_git_change_detection = false",
    ]
    (workdir / "setup.cfg").write_text("\n".join(lines) + "\n")


def run_target(mutmut: list[str], target: Target, keep: bool, show: bool) -> Tally:
    workdir = Path(tempfile.mkdtemp(prefix=f"walrus-mutation-{target.name}-"))
    tally = Tally()
    started = time.monotonic()
    try:
        prepare(workdir, target)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        log = workdir / "mutmut.log"
        with log.open("w") as out:
            done = subprocess.run(
                [*mutmut, "run", "--max-children", "1", *target.functions],
                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        meta = workdir / "mutants" / (target.path + ".meta")
        if done.returncode != 0 or not meta.exists():
            sys.stdout.write(log.read_text()[-4000:])
            raise SystemExit(f"mutmut failed on {target.path} (exit {done.returncode})")
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in sorted(codes.items()):
            if target.functions and not _selected(name, target.functions):
                continue
            tally.mutants += 1
            if code in _KILLED:
                tally.killed += 1
            elif code in _SURVIVED:
                tally.survived += 1
                tally.survivors.append(name)
                if name in EQUIVALENT:
                    tally.equivalent += 1
            elif code in _TIMEOUT:
                tally.timeouts += 1
            elif code in _NO_TESTS:
                tally.no_tests += 1
            else:
                tally.other += 1
        if show:
            for name in tally.survivors:
                diff = subprocess.run(
                    [*mutmut, "show", name], cwd=workdir, env=env, capture_output=True,
                    text=True,
                ).stdout
                note = f"  (equivalent: {EQUIVALENT[name]})" if name in EQUIVALENT else ""
                print(f"--- {target.name}: {name}{note}\n{diff.strip()}\n", flush=True)
    finally:
        tally.seconds = time.monotonic() - started
        if keep:
            print(f"kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return tally


def _selected(name: str, globs: tuple[str, ...]) -> bool:
    from fnmatch import fnmatchcase

    return any(fnmatchcase(name, glob) for glob in globs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=[t.name for t in TARGETS],
                        help="run only this module (repeatable)")
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    args = parser.parse_args()
    targets = [t for t in TARGETS if not args.module or t.name in args.module]
    mutmut = mutmut_command()
    tallies: dict[str, Tally] = {}
    for target in targets:
        print(f"mutating {target.path} against {' '.join(target.tests)}", flush=True)
        tallies[target.name] = run_target(mutmut, target, args.keep, args.survivors)

    total = Tally()
    header = ("module", "mutants", "killed", "survived", "timeouts", "no tests", "equiv.",
              "survival %", "seconds")
    rows = []
    for name, t in [*tallies.items(), ("total", total)]:
        if name != "total":
            for attr in ("mutants", "killed", "survived", "timeouts", "no_tests", "other",
                         "equivalent", "seconds"):
                setattr(total, attr, getattr(total, attr) + getattr(t, attr))
        rows.append((name, t.mutants, t.killed, t.survived, t.timeouts, t.no_tests,
                     t.equivalent, f"{t.pct:.1f}", f"{t.seconds:.0f}"))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
    for name, t in tallies.items():
        if t.other:
            print(f"{name}: {t.other} mutants ended otherwise (segfault or suspicious)")
        for survivor in t.survivors:
            if survivor not in EQUIVALENT:
                print(f"survived: {survivor}")
    print("RESULT mutation " + " ".join(
        f"{name}_survived_pct={t.pct:.1f}" for name, t in [*tallies.items(), ("total", total)]
    ))


if __name__ == "__main__":
    main()
