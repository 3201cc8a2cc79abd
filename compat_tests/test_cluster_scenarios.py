"""The single-node compatibility scenarios, again against a three-node cluster, with
every client bootstrapped from one node (node 2) that leads only some partitions:
produce and consume with every codec and client, idempotence, restarts, offsets for
times, kcat, consumer groups that rebalance, resume after a restart and keep static
members, group and topic administration, LogAppendTime, malformed frames, and the
byte-level produce and fetch rules.

Left out, as single-node facts: answers that name broker 1 alone (kcat's broker list,
DescribeCluster, per-broker config overrides, log dirs) and ListOffsets sent to a node
that does not lead (a cluster answers NOT_LEADER_OR_FOLLOWER there, as Kafka does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from compat_tests import (
    test_admin_confluent,
    test_bad_input,
    test_groups_admin,
    test_groups_rebalance,
    test_groups_static,
    test_kcat,
    test_log_append_time,
    test_offsets_for_times,
    test_produce_consume,
    test_produce_rules,
)
from compat_tests.clients import CLIENTS
from compat_tests.cluster import Cluster
from compat_tests.raw_client import LeaderRoutingClient, RawClient
from compat_tests.test_groups_support import GROUP_ENV

pytestmark = [pytest.mark.compat, pytest.mark.slow]

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


class ClusterAsOneBroker:
    """What the single-node tests use of a broker (a bootstrap address, a restart),
    served by a whole cluster."""

    def __init__(self, cluster: Cluster, via: int) -> None:
        self.cluster = cluster
        self.via = via

    @property
    def bootstrap(self) -> str:
        return self.cluster.nodes[self.via].bootstrap

    @property
    def process(self):  # type: ignore[no-untyped-def]
        return self.cluster.nodes[self.via].process

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(node.log_tail(lines) for node in self.cluster.nodes.values())

    def restart(self) -> ClusterAsOneBroker:
        self.cluster.stop()
        self.cluster.start()
        self.cluster.wait_for_brokers(len(self.cluster.nodes))
        return self


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterAsOneBroker]:
    with Cluster(Path(tmp_path_factory.mktemp("scenarios")), 3, env=GROUP_ENV) as cluster:
        cluster.wait_for_brokers(3)
        yield ClusterAsOneBroker(cluster, via=2)


@pytest.fixture
def raw(broker: ClusterAsOneBroker) -> Iterator[RawClient]:
    # Produce goes to each partition's leader, as any client sends it: a node that does
    # not lead refuses an idempotent producer's batch.
    with LeaderRoutingClient(broker.bootstrap) as client:
        yield client


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_records_round_trip_with_every_codec(broker, client: str, codec: str) -> None:  # type: ignore[no-untyped-def]
    test_produce_consume.test_records_round_trip_with_every_codec(broker, client, codec)


@pytest.mark.parametrize(("producer", "consumer"), [
    ("confluent-kafka", "kafka-python"), ("kafka-python", "aiokafka"), ("aiokafka", "confluent-kafka"),
])
def test_records_written_by_one_client_are_read_by_another(broker, producer: str, consumer: str) -> None:  # type: ignore[no-untyped-def]
    test_produce_consume.test_records_written_by_one_client_are_read_by_another(broker, producer, consumer)


def test_consumer_can_start_from_any_offset_inside_a_batch(broker) -> None:  # type: ignore[no-untyped-def]
    test_produce_consume.test_consumer_can_start_from_any_offset_inside_a_batch(broker)


@pytest.mark.parametrize("client", CLIENTS)
def test_idempotent_producer_writes_each_record_once(broker, client: str) -> None:  # type: ignore[no-untyped-def]
    # Bootstrapped from node `via`; the resent batch goes to the partition's leader,
    # where the duplicate is caught.
    test_produce_consume.resent_batch_is_stored_once(broker.bootstrap, client)


def test_data_survives_a_cluster_restart(broker) -> None:  # type: ignore[no-untyped-def]
    test_produce_consume.test_data_survives_a_broker_restart(broker)


def test_kafka_python_offsets_for_times_and_seek(broker) -> None:  # type: ignore[no-untyped-def]
    test_offsets_for_times.test_kafka_python_offsets_for_times_and_seek(broker)


def test_confluent_offsets_for_times(broker) -> None:  # type: ignore[no-untyped-def]
    test_offsets_for_times.test_confluent_offsets_for_times(broker)


def test_aiokafka_offsets_for_times_and_seek_to_end(broker) -> None:  # type: ignore[no-untyped-def]
    test_offsets_for_times.test_aiokafka_offsets_for_times_and_seek_to_end(broker)


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_produces_and_consumes(broker, codec: str) -> None:  # type: ignore[no-untyped-def]
    if test_kcat.KCAT is None:
        pytest.fail("kcat is not installed (apt-get install kcat); ./dev test installs it as root")
    test_kcat.test_kcat_produces_and_consumes(broker, codec)


@pytest.mark.parametrize("client", CLIENTS)
def test_log_append_time_topic_stamps_the_broker_time(broker, client: str) -> None:  # type: ignore[no-untyped-def]
    test_log_append_time.test_log_append_time_topic_stamps_the_broker_time(broker, client)


@pytest.mark.parametrize("client", CLIENTS)
def test_group_of_three_consumes_every_record_once_while_members_join_and_leave(broker, client: str) -> None:  # type: ignore[no-untyped-def]
    test_groups_rebalance.test_group_of_three_consumes_every_record_once_while_members_join_and_leave(broker, client)


@pytest.mark.parametrize("client", CLIENTS)
def test_new_consumer_resumes_from_committed_offsets_after_a_cluster_restart(broker, client: str) -> None:  # type: ignore[no-untyped-def]
    test_groups_rebalance.test_new_consumer_resumes_from_committed_offsets_after_broker_restart(broker, client)


def test_commit_metadata_round_trips_through_confluent_kafka(broker) -> None:  # type: ignore[no-untyped-def]
    test_groups_admin.test_commit_metadata_round_trips_through_confluent_kafka(broker)


def test_retried_batch_is_answered_with_its_original_offset(raw: RawClient) -> None:
    test_produce_rules.test_retried_batch_is_answered_with_its_original_offset(raw)


def test_sequence_gap_is_out_of_order_and_writes_nothing(raw: RawClient) -> None:
    test_produce_rules.test_sequence_gap_is_out_of_order_and_writes_nothing(raw)


def test_bad_crc_is_corrupt_message_and_the_log_is_untouched(raw: RawClient) -> None:
    test_produce_rules.test_bad_crc_is_corrupt_message_and_the_log_is_untouched(raw)


def test_fetch_returns_whole_batches_from_the_one_holding_the_offset(raw: RawClient) -> None:
    test_produce_rules.test_fetch_returns_whole_batches_from_the_one_holding_the_offset(raw)


def test_fetch_out_of_range_reports_the_log_bounds(raw: RawClient) -> None:
    test_produce_rules.test_fetch_out_of_range_reports_the_log_bounds(raw)


@pytest.mark.parametrize("client", CLIENTS)
def test_restarted_static_member_rejoins_without_a_rebalance(broker, client: str) -> None:  # type: ignore[no-untyped-def]
    test_groups_static.test_restarted_static_member_rejoins_without_a_rebalance(broker, client)


def test_administrator_removes_a_static_member_by_instance_id(broker) -> None:  # type: ignore[no-untyped-def]
    test_groups_static.test_administrator_removes_a_static_member_by_instance_id(broker)


def test_kafka_python_admin_lists_describes_and_deletes_groups(broker) -> None:  # type: ignore[no-untyped-def]
    test_groups_admin.test_kafka_python_admin_lists_describes_and_deletes_groups(broker)


def test_confluent_admin_lists_describes_and_deletes_groups(broker) -> None:  # type: ignore[no-untyped-def]
    test_groups_admin.test_confluent_admin_lists_describes_and_deletes_groups(broker)


def test_offset_delete_forgets_unsubscribed_topics_only(broker) -> None:  # type: ignore[no-untyped-def]
    test_groups_admin.test_offset_delete_forgets_unsubscribed_topics_only(broker)


def test_create_with_configs_and_validate_only(broker) -> None:  # type: ignore[no-untyped-def]
    test_admin_confluent.test_create_with_configs_and_validate_only(AdminClient({"bootstrap.servers": broker.bootstrap}))


def test_incremental_alter_configs_take_effect(broker) -> None:  # type: ignore[no-untyped-def]
    test_admin_confluent.test_incremental_alter_configs_take_effect_and_show_synonyms(
        AdminClient({"bootstrap.servers": broker.bootstrap}))


def test_partitions_records_and_topic_deletion(broker) -> None:  # type: ignore[no-untyped-def]
    test_admin_confluent.test_partitions_records_and_topic_deletion(
        AdminClient({"bootstrap.servers": broker.bootstrap}), broker)


def test_malformed_frames_never_crash_a_node_or_touch_stored_data(broker) -> None:  # type: ignore[no-untyped-def]
    test_bad_input.test_malformed_frames_never_crash_the_broker_or_touch_stored_data(broker)
