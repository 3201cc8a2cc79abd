"""Read the test runner's output into one result per test, and render summaries."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

PASSED, FAILED, SKIPPED = "PASSED", "FAILED", "SKIPPED"
# Outcomes the runner itself cannot print: decided from how its process ended.
TIMEOUT, CRASHED, NOT_RUN = "TIMEOUT", "CRASHED", "NOT_RUN"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\(B")
_BANNER = re.compile(r"={10,} Test (\S+) (PASSED|FAILED|SKIPPED) ={10,}")
_SUMMARY_ROW = re.compile(r"^\|\s*(\S+)\s+\|\s*([A-Z_]+)\s*\|\s*([\d.]+)s\s*\|\s*(.*)$")
_FAILURE = re.compile(r'^### Test "([^"(]+?)(?: \(([^)]*)\))?" failed at (\S+?):(\d+):(\S*?)\(\) at [^#]*###$')
_SKIP_REASON = re.compile(r"^\[(\S+)\s*/\s*[\d.]+s\] WARN: SKIPPING TEST: (.*)$")


@dataclass(slots=True)
class SuiteResult:
    name: str
    state: str
    duration_s: float | None = None
    reason: str = ""
    location: str = ""

    @property
    def passed(self) -> bool:
        return self.state == PASSED


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def parse_output(text: str) -> dict[str, SuiteResult]:
    """Results by test name from one test-runner invocation's combined output.

    The closing summary table is authoritative; the per-test banners and failure
    blocks cover a run that was killed before it printed the table.
    """
    results: dict[str, SuiteResult] = {}
    lines = strip_ansi(text).splitlines()
    for i, line in enumerate(lines):
        banner = _BANNER.search(line)
        if banner:
            name, state = banner.groups()
            result = results.setdefault(name, SuiteResult(name, state))
            result.state = state
            continue
        failure = _FAILURE.match(line.strip())
        if failure and failure.group(1) != "<MAIN>":
            name, subtest, path, lineno, function = failure.groups()
            result = results.setdefault(name, SuiteResult(name, FAILED))
            result.state = FAILED
            if not result.reason:
                message = lines[i + 1].strip() if i + 1 < len(lines) else ""
                where = f" [{subtest}]" if subtest else ""
                result.reason = f"{message}{where}"
                result.location = f"{path}:{lineno}:{function}()"
            continue
        skip = _SKIP_REASON.match(line.strip())
        if skip and skip.group(1) != "<MAIN>":
            result = results.setdefault(skip.group(1), SuiteResult(skip.group(1), SKIPPED))
            result.reason = result.reason or skip.group(2).strip()
    for line in lines:
        row = _SUMMARY_ROW.match(line.strip())
        if not row or row.group(1) == "<MAIN>":
            continue
        name, state, duration, extra = row.groups()
        result = results.setdefault(name, SuiteResult(name, state))
        result.state = state
        result.duration_s = float(duration)
        extra = extra.strip()
        if extra and not result.reason:
            result.reason = extra
    return results


def summary_dict(results: list[SuiteResult], meta: dict[str, object]) -> dict[str, object]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.state] = counts.get(result.state, 0) + 1
    return {**meta, "counts": counts, "tests": [asdict(r) for r in results]}


def write_summary(path: Path, results: list[SuiteResult], meta: dict[str, object]) -> None:
    path.write_text(json.dumps(summary_dict(results, meta), indent=2) + "\n")


def render_table(results: list[SuiteResult]) -> str:
    width = max([len(r.name) for r in results] + [4])
    rows = [f"{'test':<{width}}  {'state':<8}  {'secs':>7}  reason",
            f"{'-' * width}  {'-' * 8}  {'-' * 7}  ------"]
    for r in results:
        secs = f"{r.duration_s:7.1f}" if r.duration_s is not None else "      -"
        reason = r.reason if len(r.reason) <= 110 else r.reason[:107] + "..."
        rows.append(f"{r.name:<{width}}  {r.state:<8}  {secs}  {reason}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.state] = counts.get(r.state, 0) + 1
    rows.append(", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items())))
    return "\n".join(rows)


def failed_log_tails(results: list[SuiteResult], logs_dir: Path, lines: int = 40) -> str:
    """The last `lines` lines of each not-passed test's own output (logs/<number>.log),
    so a failure seen once on a CI machine can be read from the report alone."""
    parts = []
    for number in dict.fromkeys(r.name[:4] for r in results if r.state != PASSED):
        path = logs_dir / f"{number}.log"
        try:
            text = strip_ansi(path.read_text(errors="replace"))
        except OSError as exc:
            text = f"(no log: {exc})"
        parts.append(f"--- {number} output, last {lines} lines\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(parts)
