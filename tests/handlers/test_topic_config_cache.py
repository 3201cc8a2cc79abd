"""A node's effective topic configuration is kept between changes and follows every
change (Node.topic_config)."""

from __future__ import annotations

import pytest
from node_runner import NodeRunner

from broker.coordination.commands import (
    AlterClusterConfig,
    AlterTopicConfig,
    CreateTopic,
    DeleteTopic,
)

pytestmark = pytest.mark.unit


def test_every_kind_of_change_is_seen(runner: NodeRunner) -> None:
    node = runner.node
    runner.run(node.propose(CreateTopic("c", (7).to_bytes(16, "big"), 1, 1)))
    assert node.topic_config("c")["retention.ms"] == node.config.topic_defaults["retention.ms"]
    assert node.topic_config("c") is node.topic_config("c"), "kept while nothing changes"

    runner.run(node.propose(AlterTopicConfig("c", {"retention.ms": "1234"})))
    assert node.topic_config("c")["retention.ms"] == "1234"
    runner.run(node.propose(AlterClusterConfig({"segment.ms": "4321"})))
    assert node.topic_config("c")["segment.ms"] == "4321"
    runner.run(node.propose(AlterClusterConfig({f"{node.node_id}/segment.ms": "999"})))
    assert node.topic_config("c")["segment.ms"] == "999", "this broker's own override"

    runner.run(node.propose(DeleteTopic("c")))
    runner.run(node.propose(CreateTopic("c", (8).to_bytes(16, "big"), 1, 1)))
    assert node.topic_config("c")["retention.ms"] == node.config.topic_defaults["retention.ms"], \
        "a topic created again does not inherit the old one's settings"
    with pytest.raises(TypeError):
        node.topic_config("c")["retention.ms"] = "1"  # type: ignore[index]
