"""ErrorCode against independent sources of Kafka's error table.

The copy of protocol.html beside the repository pulls Kafka's error table in with a
server-side include and holds no rows, so the codes are checked against the tables
compiled into two real clients: kafka-python (codes and retriability) and librdkafka
via confluent-kafka (codes and names).
"""

from __future__ import annotations

import confluent_kafka
import kafka.errors
import pytest

from broker.protocol.errors import ErrorCode

pytestmark = pytest.mark.unit

# Kafka's Java client treats a corrupt message as retriable (CorruptRecordException is a
# RetriableException); kafka-python classifies it as fatal. Kafka's table is followed.
KAFKA_PYTHON_RETRIABLE_DIFFERENCES = {ErrorCode.CORRUPT_MESSAGE}

# librdkafka shortens some of Kafka's names.
LIBRDKAFKA_NAMES = {
    "UNKNOWN": "UNKNOWN_SERVER_ERROR",
    "NO_ERROR": "NONE",
    "INVALID_MSG": "CORRUPT_MESSAGE",
    "UNKNOWN_TOPIC_OR_PART": "UNKNOWN_TOPIC_OR_PARTITION",
    "INVALID_MSG_SIZE": "INVALID_FETCH_SIZE",
    "NOT_LEADER_FOR_PARTITION": "NOT_LEADER_OR_FOLLOWER",
    "MSG_SIZE_TOO_LARGE": "MESSAGE_TOO_LARGE",
    "STALE_CTRL_EPOCH": "STALE_CONTROLLER_EPOCH",
    "TOPIC_EXCEPTION": "INVALID_TOPIC_EXCEPTION",
}


def kafka_python_codes() -> dict[int, type[kafka.errors.BrokerResponseError]]:
    found = {}
    for value in vars(kafka.errors).values():
        if (
            isinstance(value, type)
            and issubclass(value, kafka.errors.BrokerResponseError)
            and value.errno is not None
        ):
            found[value.errno] = value
    return found


def test_every_code_kafka_python_knows_is_here_with_the_same_retriability() -> None:
    codes = kafka_python_codes()
    assert len(codes) > 120  # the lookup itself found the table
    for code, error_class in codes.items():
        member = ErrorCode(code)
        expected = error_class.retriable != (member in KAFKA_PYTHON_RETRIABLE_DIFFERENCES)
        assert member.retriable is expected, (member.name, error_class.__name__)


def test_every_code_librdkafka_knows_is_here_under_the_same_name() -> None:
    error = confluent_kafka.KafkaError
    broker_codes = {
        name: getattr(error, name)
        for name in dir(error)
        if name.isupper() and isinstance(getattr(error, name), int) and getattr(error, name) >= -1
    }
    assert len(broker_codes) > 100
    for name, code in broker_codes.items():
        assert ErrorCode(code).name == LIBRDKAFKA_NAMES.get(name, name), name


def test_codes_are_dense_from_minus_one_to_the_highest() -> None:
    values = sorted(int(member) for member in ErrorCode)
    assert values == list(range(-1, values[-1] + 1))
    assert ErrorCode.NONE == 0 and ErrorCode.UNKNOWN_SERVER_ERROR == -1


def test_retriable_examples() -> None:
    assert ErrorCode.NOT_LEADER_OR_FOLLOWER.retriable
    assert ErrorCode.CORRUPT_MESSAGE.retriable
    assert not ErrorCode.NONE.retriable
    assert not ErrorCode.INVALID_RECORD.retriable
    assert not ErrorCode.MESSAGE_TOO_LARGE.retriable


def test_unknown_codes_map_to_unknown_server_error() -> None:
    assert ErrorCode.from_code(3) is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert ErrorCode.from_code(30000) is ErrorCode.UNKNOWN_SERVER_ERROR
