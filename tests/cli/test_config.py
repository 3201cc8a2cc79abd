"""Configuration precedence: defaults < TOML file < WALRUS_* environment < flags."""

from pathlib import Path

import pytest

from broker.cli import parse_config
from broker.config import BrokerConfig, ConfigError, Peer, build_config

pytestmark = pytest.mark.unit


def test_no_arguments_is_the_one_node_default() -> None:
    config = build_config({}, environ={})
    assert config.listen == ("127.0.0.1", 9092)
    assert config.advertised == ("127.0.0.1", 9092)
    assert config.data_dir == Path("walrus-data")
    assert config.peers == ()
    assert config.max_request_bytes == 100 * 1024 * 1024


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    toml = tmp_path / "walrus.toml"
    toml.write_text(
        'node_id = 3\nlisten = "0.0.0.0:9000"\ndata_dir = "/srv/a"\nnum_partitions = 4\n'
        '[topic_defaults]\n"retention.ms" = 1000\n'
    )
    config = build_config(
        {"listen": "127.0.0.1:9100"},
        config_file=toml,
        environ={"WALRUS_DATA_DIR": "/srv/b", "UNRELATED": "x"},
    )
    assert config.node_id == 3
    assert config.num_partitions == 4
    assert config.data_dir == Path("/srv/b")
    assert config.listen == ("127.0.0.1", 9100)
    assert config.topic_defaults["retention.ms"] == "1000"
    # Defaults not named in the file stay.
    assert config.topic_defaults["cleanup.policy"] == "delete"


def test_peers_and_raft_from_flags() -> None:
    config = parse_config(
        ["--node-id", "2", "--raft", "127.0.0.1:7002", "--peers", "1@127.0.0.1:7001,3@h3:7003"]
    )
    assert config.node_id == 2
    assert config.raft == ("127.0.0.1", 7002)
    assert config.peers == (Peer(1, "127.0.0.1", 7001), Peer(3, "h3", 7003))


@pytest.mark.parametrize(
    "settings",
    [
        {"listen": "nohostport"},
        {"listen": "h:99999"},
        {"peers": "x@h:1"},
        {"num_partitions": 0},
        {"io_backend": "magic"},
        {"peers": "2@h:1"},  # peers without --raft
        {"log_level": "LOUD"},
        {"raft": "h:1", "peers": "1@h:2"},  # this node (id 1) among its own peers
        {"raft": "h:1", "peers": "2@h:1"},  # its own Raft address among its peers
        {"raft": "h:1", "peers": "2@h:2,2@h:3"},  # one id twice
        {"metadata_ready_timeout_ms": 0},
        {"queued_max_request_bytes": 1024 * 1024},  # below max_request_bytes
    ],
)
def test_bad_settings_are_refused_with_a_reason(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        build_config(settings, environ={})


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("no_such_setting = 1\n")
    with pytest.raises(ConfigError, match="no_such_setting"):
        build_config({}, config_file=toml, environ={})


def test_boolean_from_environment() -> None:
    config = build_config({}, environ={"WALRUS_AUTO_CREATE_TOPICS": "false"})
    assert config.auto_create_topics is False
    assert BrokerConfig().auto_create_topics is True


def test_unknown_walrus_variables_are_named_and_known_ones_are_not() -> None:
    from broker.config import unknown_environment

    environ = {"WALRUS_DATA_DRI": "x", "WALRUS_NODE_ID": "2", "WALRUS_TOPIC_DEFAULTS": "x",
               "PATH": "/bin"}
    assert unknown_environment(environ) == ["WALRUS_DATA_DRI", "WALRUS_TOPIC_DEFAULTS"]
