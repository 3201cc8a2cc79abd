"""librdkafka's own test suite (Debian's 2.0.2 source package) against a Walrus broker.

The suite is downloaded and built once into a cache outside the repository
($WALRUS_CACHE or ~/.cache/walrus); later runs reuse it. Every test named in
compat_tests/librdkafka/allowlist.txt must pass against a fresh one-node broker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compat_tests.harness import BrokerProcess
from compat_tests.librdkafka.build import Build, BuildError, ensure_built
from compat_tests.librdkafka.catalog import SuiteTest, load_catalog
from compat_tests.librdkafka.execute import RunOptions, run_tests
from compat_tests.librdkafka.results import PASSED, SuiteResult, failed_log_tails
from compat_tests.librdkafka.run import ALLOWLIST_FILE, WALRUS_ARGS, read_name_list, select
from compat_tests.librdkafka.source import SourceError

pytestmark = [pytest.mark.compat, pytest.mark.slow]

# Quick tests that need no broker: proof that the build runs and its results are read.
BUILD_CHECK_TESTS = "0006_symbols,0009_mock_cluster,0043_no_connection,0072_headers_ut,0074_producev"
# A hung test is killed after this long; the suite's own timeouts are shorter.
PER_TEST_TIMEOUT_S = 300.0
# Test numbers run at once: the allowlist takes ~4 min this way instead of ~12, since most
# tests wait on group timers; the allowlist was confirmed with this setting.
PARALLEL = 3


@pytest.fixture(scope="module")
def suite() -> tuple[Build, list[SuiteTest]]:
    try:
        build = ensure_built()
    except (SourceError, BuildError) as error:
        pytest.fail(f"librdkafka's test suite could not be fetched or built: {error}")
    how = "reused" if build.reused else "built"
    print(f"librdkafka {build.info.debian_version} suite {how} in {build.cache_dir} "
          f"(cold build {build.info.build_seconds}s)")
    return build, load_catalog(build.tests_dir)


def _not_passed(results: list[SuiteResult]) -> list[str]:
    return [f"{r.name}: {r.state} {r.reason} {r.location}".rstrip() for r in results if r.state != PASSED]


def test_suite_builds_and_its_local_tests_pass(suite: tuple[Build, list[SuiteTest]], tmp_path: Path) -> None:
    build, catalog = suite
    tests = select(catalog, BUILD_CHECK_TESTS)
    results = run_tests(build, tests, RunOptions(bootstrap=None, timeout_s=PER_TEST_TIMEOUT_S), tmp_path)
    assert [r.name for r in results] == [t.name for t in tests]
    assert not _not_passed(results), _not_passed(results)


# Above the suite-wide 600 s: ~4 min here, more on a loaded machine.
@pytest.mark.timeout(1200)
def test_allowlisted_suite_tests_pass_against_walrus(
        suite: tuple[Build, list[SuiteTest]], tmp_path: Path) -> None:
    build, catalog = suite
    names = read_name_list(ALLOWLIST_FILE)
    if not names:
        print("allowlist.txt is empty: no librdkafka suite test ran against the broker")
        pytest.skip("allowlist.txt is empty: no librdkafka suite test ran against the broker")
    tests = select(catalog, ",".join(names))
    broker = BrokerProcess(tmp_path / "data", extra_args=list(WALRUS_ARGS)).start()
    try:
        options = RunOptions(bootstrap=broker.bootstrap, timeout_s=PER_TEST_TIMEOUT_S, parallel=PARALLEL)
        results = run_tests(build, tests, options, tmp_path / "run")
    finally:
        broker.stop()
    failed = _not_passed(results)
    passed = len(results) - len(failed)
    print(f"{passed}/{len(results)} allowlisted librdkafka tests passed; logs in {tmp_path / 'run' / 'logs'}")
    assert not failed, (f"{len(failed)} allowlisted librdkafka tests did not pass "
                        f"(logs in {tmp_path / 'run' / 'logs'}):\n" + "\n".join(failed)
                        + f"\n{failed_log_tails(results, tmp_path / 'run' / 'logs')}"
                        + f"\nbroker log tail:\n{broker.log_tail(40)}")
