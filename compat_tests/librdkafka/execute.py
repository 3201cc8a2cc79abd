"""Run chosen tests of the suite against one broker, one runner process per test number.

A process per number keeps a crash or a hang in one test from taking the rest of the
run with it, and lets a hard timeout kill exactly that test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from compat_tests.librdkafka.build import Build
from compat_tests.librdkafka.catalog import SuiteTest
from compat_tests.librdkafka.results import CRASHED, NOT_RUN, TIMEOUT, SuiteResult, parse_output

# The broker's codec is generated from Kafka 3.9-era message specs.
DEFAULT_KAFKA_VERSION = "3.9.0"
DEFAULT_PARALLEL = 3


# librdkafka's harness for its own test clusters (tests/LibrdkafkaTestApp.py, which
# broker_version_tests.py runs against trivup's Kafka clusters) writes
# test.timeout.multiplier=2 into test.conf: the suite's time budgets assume it. Without
# it, 0018_cgrp_term's second sub-test overruns its budget whenever the consumer polled
# first is handed the two partitions with messages (see FINDINGS.md), on any broker that
# keeps Kafka's 3 s group.initial.rebalance.delay.ms.
REFERENCE_TIMEOUT_MULTIPLIER = 2.0


@dataclass(slots=True)
class RunOptions:
    bootstrap: str | None
    kafka_version: str = DEFAULT_KAFKA_VERSION
    timeout_s: float = 600.0
    timeout_multiplier: float | None = REFERENCE_TIMEOUT_MULTIPLIER
    extra_conf: dict[str, str] = field(default_factory=dict)
    # Test numbers run at once. Most suite tests spend their time waiting on the
    # broker's timers (rebalance delays, session timeouts), not on the CPU: 3 at once
    # runs the target set in ~4 min instead of ~12, and is how the allowlist was confirmed.
    parallel: int = DEFAULT_PARALLEL
    # The suite's SUBTESTS filter: a substring of the sub-test names to run.
    subtests: str | None = None


def write_test_conf(build: Build, options: RunOptions, out_dir: Path) -> Path:
    """The run's test.conf, in its own directory so that runs can overlap.

    tests/test.conf gets a copy: the last run's settings, for running a test by hand.
    """
    lines = ["# Written by compat_tests/librdkafka/run.py for each run."]
    if options.bootstrap:
        lines.append(f"bootstrap.servers={options.bootstrap}")
    if options.timeout_multiplier is not None:
        lines.append(f"test.timeout.multiplier={options.timeout_multiplier}")
    lines.extend(f"{key}={value}" for key, value in options.extra_conf.items())
    text = "\n".join(lines) + "\n"
    path = out_dir / "test.conf"
    path.write_text(text)
    (build.tests_dir / "test.conf").write_text(text)
    return path


# The file offset store (0014_reconsume_191's "file" half) keeps its files, named after
# the topic, in the runner's working directory, the build's tests directory. The suite's
# "random" topic names do repeat across runs, and a file an earlier run left makes that
# consumer start at the earlier run's end and wait for records until the test times out.
# (Pointing topic.offset.store.path elsewhere through test.conf crashes some 2.0.2 tests.)
# A run reads its own files within seconds of writing them, so a file older than a
# minute was left by an earlier run.
STALE_OFFSET_FILE_S = 60.0


def remove_stale_offset_files(build: Build, now: float | None = None) -> int:
    """Delete file-store offsets left in the tests directory by earlier runs."""
    cutoff = (time.time() if now is None else now) - STALE_OFFSET_FILE_S
    removed = 0
    for path in build.tests_dir.glob("*.offset"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def group_by_number(tests: Iterable[SuiteTest]) -> dict[str, list[SuiteTest]]:
    groups: dict[str, list[SuiteTest]] = {}
    for test in tests:
        groups.setdefault(test.number, []).append(test)
    return groups


def _runner_args(wanted: list[SuiteTest]) -> list[str]:
    # Sequential within the process; only local tests, or none, when all wanted tests
    # agree, so that a number's other variants do not run for nothing.
    args = ["-p1"]
    if all(t.local for t in wanted):
        args.append("-l")
    elif not any(t.local for t in wanted):
        args.append("-L")
    return args


def run_number(build: Build, number: str, wanted: list[SuiteTest], options: RunOptions,
               conf_path: Path, log_path: Path) -> list[SuiteResult]:
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": build.library_path + os.pathsep + os.environ.get("LD_LIBRARY_PATH", ""),
        "TESTS": number,
        "TEST_KAFKA_VERSION": options.kafka_version,
        "RDKAFKA_TEST_CONF": str(conf_path),
    }
    if options.subtests:
        env["SUBTESTS"] = options.subtests
    cmd = [str(build.test_runner), *_runner_args(wanted)]
    started = time.monotonic()
    with log_path.open("wb") as log:
        log.write(f"$ TESTS={number} TEST_KAFKA_VERSION={options.kafka_version} {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=build.tests_dir, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        timed_out = False
        try:
            returncode = proc.wait(timeout=options.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
        except BaseException:
            # Interrupted: the runner is in its own session, so take it down here.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    elapsed = time.monotonic() - started
    parsed = parse_output(log_path.read_text(errors="replace"))
    results = []
    for test in wanted:
        result = parsed.get(test.name)
        if result is None or result.state == "RUNNING" or (timed_out and result.state not in ("PASSED", "FAILED", "SKIPPED")):
            if timed_out:
                result = SuiteResult(test.name, TIMEOUT, round(elapsed, 1),
                                    f"killed after {options.timeout_s:.0f}s")
            elif returncode < 0:
                result = SuiteResult(test.name, CRASHED, round(elapsed, 1),
                                    f"runner died of signal {signal.Signals(-returncode).name}")
            else:
                result = SuiteResult(test.name, NOT_RUN, None,
                                    f"no result in the runner's output (exit {returncode})")
        results.append(result)
    return results


def run_tests(build: Build, tests: list[SuiteTest], options: RunOptions, out_dir: Path,
              progress: Callable[[SuiteResult], None] | None = None) -> list[SuiteResult]:
    """Run the tests, options.parallel test numbers at a time; results in the given order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "logs").mkdir(exist_ok=True)
    remove_stale_offset_files(build)
    conf_path = write_test_conf(build, options, out_dir)
    groups = group_by_number(tests)

    def run_one(number: str) -> list[SuiteResult]:
        results = run_number(build, number, groups[number], options, conf_path,
                             out_dir / "logs" / f"{number}.log")
        if progress:
            for result in results:
                progress(result)
        return results

    with ThreadPoolExecutor(max_workers=max(1, options.parallel)) as pool:
        by_number = dict(zip(groups, pool.map(run_one, groups), strict=True))
    return [result for number in groups for result in by_number[number]]
