"""The runner's parts that need neither the built suite nor a broker."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from compat_tests.librdkafka.build import Build, BuildInfo
from compat_tests.librdkafka.catalog import SuiteTest, parse_table, reachable_code, scan_needs
from compat_tests.librdkafka.execute import STALE_OFFSET_FILE_S, remove_stale_offset_files
from compat_tests.librdkafka.results import (
    FAILED,
    PASSED,
    SKIPPED,
    SuiteResult,
    failed_log_tails,
    parse_output,
    render_table,
)
from compat_tests.librdkafka.run import read_name_list
from compat_tests.librdkafka.source import SourceError, dsc_checksums, verify_download

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"

TABLE = """
struct test tests[] = {
    {.name = "<MAIN>", .flags = TEST_F_LOCAL},
    _TEST(0001_multiobj, 0),
    _TEST(0028_long_topicnames,
          TEST_F_KNOWN_ISSUE,
          TEST_BRKVER(0, 9, 0, 0),
          .extra = "https://example.org/issues/529"),
    _TEST(0045_subscribe_update_topic_remove,
          0,
          TEST_BRKVER(0, 9, 0, 0),
          .scenario = "noautocreate"),
    _TEST(0066_plugins,
          TEST_F_LOCAL | TEST_F_KNOWN_ISSUE_WIN32 | TEST_F_KNOWN_ISSUE_OSX,
          .extra = "dynamic loading"),
#if WITH_SOCKEM
    _TEST(0068_produce_timeout, TEST_F_SOCKEM),
#endif
    _TEST(0107_topic_recreate, 0, TEST_BRKVER_TOPIC_ADMINAPI, .scenario = "noautocreate"),
    {NULL}};
"""


def _by_name(tests: list[SuiteTest]) -> dict[str, SuiteTest]:
    return {t.name: t for t in tests}


def test_table_entries_keep_flags_versions_and_scenarios() -> None:
    tests = _by_name(parse_table(TABLE, {"TEST_BRKVER_TOPIC_ADMINAPI": "0.10.2.0"}))
    assert list(tests) == ["0001_multiobj", "0028_long_topicnames", "0045_subscribe_update_topic_remove",
                           "0066_plugins", "0068_produce_timeout", "0107_topic_recreate"]
    # A URL's '//' inside a string must not be read as a comment.
    assert tests["0028_long_topicnames"].flags == ["known_issue"]
    assert tests["0028_long_topicnames"].min_version == "0.9.0.0"
    assert tests["0045_subscribe_update_topic_remove"].scenario == "noautocreate"
    assert tests["0066_plugins"].flags == ["local"]
    assert tests["0068_produce_timeout"].flags == ["sockem"]
    assert tests["0107_topic_recreate"].min_version == "0.10.2.0"


def test_target_set_keeps_plain_broker_tests_only() -> None:
    tests = _by_name(parse_table(TABLE, {}))
    assert tests["0001_multiobj"].in_target
    assert tests["0028_long_topicnames"].exclusion_reasons() == ["known_issue"]
    assert tests["0045_subscribe_update_topic_remove"].exclusion_reasons() == ["scenario:noautocreate"]
    assert tests["0066_plugins"].exclusion_reasons() == ["local"]
    plain = SuiteTest("0090_idempotence", "0090", [], "0.11.0.0", "default",
                      needs={"transactions": "uses init_transactions"})
    assert plain.exclusion_reasons() == ["transactions"]


SOURCE = """
static void uses_java(void) {
        test_kafka_topics("--alter --topic %s --partitions 4", "t");
}

static void plain_produce(const char *topic) {
        /* test_socket_enable(conf) in a comment does not count */
        test_produce_msgs_easy(topic, 0, 0, 100);
}

static void with_txn(rd_kafka_t *rk) {
        rd_kafka_init_transactions(rk, 1000);
}

int main_0099_plain(int argc, char **argv) {
        plain_produce("t");
        return 0;
}

int main_0099_txn(int argc, char **argv) {
        plain_produce("t");
        with_txn(NULL);
        return 0;
}

int main_0099_mock(int argc, char **argv) {
        rd_kafka_mock_cluster_t *mcluster = test_mock_cluster_new(1, NULL);
        if (*test_conf_get(NULL, "sasl.mechanism") != '\\0')
                return 0;
        return 0;
}
"""


def test_needs_come_from_code_reachable_from_the_test_only() -> None:
    assert scan_needs(reachable_code(SOURCE, "main_0099_plain")) == {}
    assert set(scan_needs(reachable_code(SOURCE, "main_0099_txn"))) == {"transactions"}
    # Reading sasl.mechanism to skip is not a need for SASL.
    assert set(scan_needs(reachable_code(SOURCE, "main_0099_mock"))) == {"mock_cluster"}
    assert "uses_java" not in reachable_code(SOURCE, "main_0099_txn")


def test_output_with_summary_table_gives_every_test() -> None:
    results = parse_output((FIXTURES / "summary_all_passed.log").read_text())
    assert [(r.name, r.state) for r in results.values()] == [
        ("0004_conf", PASSED), ("0006_symbols", PASSED), ("0025_timers", PASSED)]
    assert results["0025_timers"].duration_s == pytest.approx(6.001)


def test_output_of_an_aborted_run_still_gives_the_failure_and_its_place() -> None:
    results = parse_output((FIXTURES / "failed_then_aborted.log").read_text())
    assert list(results) == ["0012_produce_consume"]
    failure = results["0012_produce_consume"]
    assert failure.state == FAILED
    assert failure.reason == "Message delivery failed: Local: Unknown partition"
    assert failure.location == "0012-produce_consume.c:57:dr_cb()"


def test_skip_and_subtest_failure_lines() -> None:
    text = (
        "\x1b[33m[0011_produce_batch          /  3.100s] WARN: SKIPPING TEST: Cannot create topics\n"
        "\x1b[31m### Test \"0081_admin (do_test_CreateTopics:101: admin)\" failed at 0081-admin.c:120:"
        "do_test_CreateTopics() at Sat Nov 28 00:05:08 2026: ###\n"
        "CreateTopics failed: Broker: Invalid request\n"
        "|\x1b[36m 0011_produce_batch                       |    SKIPPED |   3.100s \x1b[0m|"
        "\x1b[36m Cannot create topics\x1b[0m\n"
    )
    results = parse_output(text)
    assert results["0011_produce_batch"].state == SKIPPED
    assert results["0011_produce_batch"].reason == "Cannot create topics"
    admin = results["0081_admin"]
    assert admin.state == FAILED
    assert admin.reason == "CreateTopics failed: Broker: Invalid request [do_test_CreateTopics:101: admin]"
    assert "0081_admin" in render_table(list(results.values()))


def test_name_lists_ignore_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("# header\n0001_multiobj\n\n0002_unkpart  # trailing note\n")
    assert read_name_list(path) == ["0001_multiobj", "0002_unkpart"]


def _write_dsc(directory: Path, payload: bytes, version: str = "2.0.2-1") -> None:
    digest = hashlib.sha256(payload).hexdigest()
    (directory / "librdkafka_2.0.2.orig.tar.gz").write_bytes(payload)
    (directory / "librdkafka_2.0.2-1.dsc").write_text(
        f"Format: 3.0 (quilt)\nSource: librdkafka\nVersion: {version}\n"
        f"Checksums-Sha256:\n {digest} {len(payload)} librdkafka_2.0.2.orig.tar.gz\nFiles:\n x\n")


def test_download_is_checked_against_the_dsc(tmp_path: Path) -> None:
    _write_dsc(tmp_path, b"source bytes")
    assert verify_download(tmp_path).name == "librdkafka_2.0.2-1.dsc"
    assert list(dsc_checksums((tmp_path / "librdkafka_2.0.2-1.dsc").read_text())) == [
        "librdkafka_2.0.2.orig.tar.gz"]
    (tmp_path / "librdkafka_2.0.2.orig.tar.gz").write_bytes(b"tampered")
    with pytest.raises(SourceError, match="does not match"):
        verify_download(tmp_path)


def test_download_of_another_version_is_refused(tmp_path: Path) -> None:
    _write_dsc(tmp_path, b"source bytes", version="2.3.0-1")
    with pytest.raises(SourceError, match="expected Version"):
        verify_download(tmp_path)


def test_offset_files_other_runs_left_are_removed_and_a_running_ones_kept(tmp_path: Path) -> None:
    # 0014_reconsume_191 stores offsets in files named after its topic; a file an earlier
    # run left under a repeated topic name made the consumer start at that run's end.
    source = tmp_path / "librdkafka"
    tests_dir = source / "tests"
    tests_dir.mkdir(parents=True)
    build = Build(tmp_path, source, BuildInfo("2.0.2", [], [], 0.0, 0.0, ""), reused=True)
    now = time.time()
    old = tests_dir / "rdkafkatest_rnd1_0014-0.offset"
    fresh = tests_dir / "rdkafkatest_rnd2_0014-0.offset"
    other = tests_dir / "test.conf"
    for path in (old, fresh, other):
        path.write_text("100")
    os.utime(old, (now - STALE_OFFSET_FILE_S - 1, now - STALE_OFFSET_FILE_S - 1))
    os.utime(other, (now - STALE_OFFSET_FILE_S - 1, now - STALE_OFFSET_FILE_S - 1))
    assert remove_stale_offset_files(build, now) == 1
    assert not old.exists() and fresh.exists() and other.exists()


LEDGER = Path(__file__).parent


def test_the_allowlist_is_part_of_the_target_set_and_every_gap_is_a_finding() -> None:
    """A regenerated allowlist that lost tests (a bad run) fails here, not silently: each
    target test it does not hold must be explained in FINDINGS.md."""
    target = read_name_list(LEDGER / "target.txt")
    allowed = read_name_list(LEDGER / "allowlist.txt")
    assert target and allowed
    assert len(set(target)) == len(target) and len(set(allowed)) == len(allowed)
    assert set(allowed) <= set(target), sorted(set(allowed) - set(target))
    findings = (LEDGER / "FINDINGS.md").read_text()
    unexplained = [name for name in target if name not in allowed and name not in findings]
    assert unexplained == []
    excluded = read_name_list(LEDGER / "cluster_exclusions.txt")
    assert set(excluded) <= set(allowed)
    assert [name for name in excluded if name not in findings] == []


def test_a_failure_report_carries_the_failed_tests_own_output_only(tmp_path: Path) -> None:
    (tmp_path / "0130.log").write_text("\x1b[36mstep one\x1b[0m\n" + "".join(f"line {i}\n" for i in range(50)))
    (tmp_path / "0001.log").write_text("passing test output\n")
    results = [SuiteResult("0001_multiobj", PASSED), SuiteResult("0130_store_offsets", FAILED),
               SuiteResult("0131_missing", FAILED)]
    report = failed_log_tails(results, tmp_path, lines=5)
    assert "--- 0130 output, last 5 lines\nline 45\nline 46\nline 47\nline 48\nline 49" in report
    assert "passing test output" not in report and "step one" not in report
    assert "--- 0131 output, last 5 lines\n(no log:" in report
