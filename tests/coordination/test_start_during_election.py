"""What a node proposes while it starts (its cluster id, its registration) gets through
an election that is under way, instead of ending the start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker.coordination import ClusterState, MetadataRaft, RaftBindError, RaftTuning
from broker.coordination.commands import CreateTopic, SetClusterId
from broker.coordination.results import ClusterIdSet

from .processes import free_port

pytestmark = pytest.mark.unit

FAST = RaftTuning(election_timeout_min_s=0.3, election_timeout_max_s=0.6,
                  connection_timeout_s=0.6, propose_timeout_s=1.0)


async def _members(base: Path, count: int) -> list[MetadataRaft]:
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(count)]
    return [MetadataRaft(i + 1, addr, addrs, base / f"m{i + 1}", ClusterState(), FAST)
            for i, addr in enumerate(addrs)]


def test_cluster_id_proposed_during_an_election_is_applied(tmp_path: Path) -> None:
    async def main() -> None:
        members = await _members(tmp_path, 3)
        try:
            for m in members:
                await m.wait_ready(15)
            first = await members[0].propose(SetClusterId("first-id"))
            assert first == ClusterIdSet("first-id")
            for round_no in range(3):
                leader = next(m for m in members if m.is_leader)
                others = [m for m in members if m is not leader]
                # The leader goes away; the next proposals start before a successor exists.
                leader.close()
                members.remove(leader)
                results = await asyncio.gather(*(
                    m.propose_until_applied(SetClusterId(f"late-{round_no}"), timeout=20)
                    for m in others
                ))
                # The id chosen first stays, whoever proposes later.
                assert results == [ClusterIdSet("first-id")] * len(others)
                if len(members) < 3:
                    break
        finally:
            for m in members:
                m.close()

    asyncio.run(main())


def test_only_repeatable_commands_are_proposed_until_applied(tmp_path: Path) -> None:
    async def main() -> None:
        addr = f"127.0.0.1:{free_port()}"
        raft = MetadataRaft(1, addr, [addr], tmp_path, ClusterState(), FAST)
        try:
            await raft.wait_ready(10)
            with pytest.raises(ValueError, match="not repeatable"):
                await raft.propose_until_applied(CreateTopic("t", b"\0" * 16, 1, 1), 5)
        finally:
            raft.close()

    asyncio.run(main())


def test_a_raft_port_in_use_is_a_clear_error_within_seconds(tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        addr = f"127.0.0.1:{holder.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(RaftBindError, match=addr):
            MetadataRaft(1, addr, [addr], tmp_path, ClusterState(), FAST)
        assert time.monotonic() - started < 5
