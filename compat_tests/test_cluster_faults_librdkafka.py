"""librdkafka's own suite, the allowlisted tests, against a three-node cluster.

compat_tests/test_librdkafka.py runs the allowlist (compat_tests/librdkafka/allowlist.txt)
against one broker; here the same tests bootstrap from one node of a three-node
cluster, so partitions, group coordinators and the controller are spread over nodes
the client learns about only from Metadata. A test that passes against one node and
fails here is a cluster bug.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compat_tests.cluster import Cluster
from compat_tests.librdkafka.build import Build, BuildError, ensure_built
from compat_tests.librdkafka.catalog import SuiteTest, load_catalog
from compat_tests.librdkafka.execute import RunOptions, run_tests
from compat_tests.librdkafka.results import PASSED, SuiteResult, failed_log_tails
from compat_tests.librdkafka.run import (
    ALLOWLIST_FILE,
    CLUSTER_EXCLUSIONS_FILE,
    WALRUS_ARGS,
    read_name_list,
    read_reasons,
    select,
)
from compat_tests.librdkafka.source import SourceError

pytestmark = [pytest.mark.compat, pytest.mark.slow]

PER_TEST_TIMEOUT_S = 300.0
# Test numbers run at once, as against one node: most tests wait on group timers.
PARALLEL = 3


def run_on_cluster(base_dir: Path, build: Build, tests: list[SuiteTest]) -> tuple[list[SuiteResult], str]:
    """Run `tests` against a fresh three-node cluster bootstrapped from node 1; the
    results and the tail of each node's log."""
    with Cluster(base_dir / "cluster", 3, extra_args=list(WALRUS_ARGS)) as cluster:
        cluster.wait_for_brokers(3)
        options = RunOptions(bootstrap=cluster.nodes[1].bootstrap, timeout_s=PER_TEST_TIMEOUT_S,
                             parallel=PARALLEL)
        results = run_tests(build, tests, options, base_dir / "run")
        logs = "\n".join(f"--- node {n}\n{_warnings(node.log_tail(100_000))}\n{node.log_tail(20)}"
                         for n, node in cluster.nodes.items())
    return results, logs


def _warnings(log: str, keep: int = 20) -> str:
    """The last `keep` WARNING-or-worse lines of a node's log: the tail alone is mostly
    routine rebalances."""
    lines = [line for line in log.splitlines() if " WARNING " in line or " ERROR " in line]
    return "\n".join([f"(last {keep} warnings and errors of {len(lines)})", *lines[-keep:]])


# The whole allowlist takes ~4 min (against one node or three), far above the suite-wide 600 s.
@pytest.mark.timeout(1500)
def test_allowlisted_suite_tests_pass_against_a_three_node_cluster(tmp_path: Path) -> None:
    excluded = read_reasons(CLUSTER_EXCLUSIONS_FILE)
    for name, why in excluded.items():
        print(f"not run against the cluster: {name}: {why}")
    names = [n for n in read_name_list(ALLOWLIST_FILE) if n not in excluded]
    if not names:
        print("allowlist.txt is empty: no librdkafka suite test ran against the cluster")
        pytest.skip("allowlist.txt is empty: no librdkafka suite test ran against the cluster")
    try:
        build = ensure_built()
    except (SourceError, BuildError) as error:
        pytest.fail(f"librdkafka's test suite could not be fetched or built: {error}")
    tests = select(load_catalog(build.tests_dir), ",".join(names))
    results, logs = run_on_cluster(tmp_path, build, tests)
    failed = [f"{r.name}: {r.state} {r.reason} {r.location}".rstrip() for r in results if r.state != PASSED]
    print(f"{len(results) - len(failed)}/{len(results)} allowlisted librdkafka tests passed against "
          f"three nodes; logs in {tmp_path / 'run' / 'logs'}")
    assert not failed, (f"{len(failed)} allowlisted librdkafka tests did not pass against the cluster "
                        f"(logs in {tmp_path / 'run' / 'logs'}):\n" + "\n".join(failed)
                        + f"\n{failed_log_tails(results, tmp_path / 'run' / 'logs')}\n{logs}")
